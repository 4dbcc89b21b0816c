//! Per-request usage records as CloudWatch Embedded Metric Format, written to a log group
//! (aws-sdk-cloudwatchlogs) in batches, retried, and bounded in memory: CloudWatch extracts
//! `CostUSD` and token metrics per `Namespace`, `Budget`, `Model` and rolled up per `Namespace`,
//! `Budget` (never the request ID, which stays a plain property), which `aigov_alarm` presets watch.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aigov_api::Usd;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use serde_json::json;

/// The CloudWatch metric namespace.
pub const METRIC_NAMESPACE: &str = "AIGov";
/// Events held at most; older ones are dropped (and counted) past this.
pub const MAX_QUEUED: usize = 100_000;
/// Events per PutLogEvents call (the API allows 10,000 and 1 MiB).
pub const BATCH: usize = 1_000;

/// One settled call charged to one budget.
#[derive(Clone, Debug)]
pub struct UsageEvent {
    /// Unix milliseconds.
    pub timestamp_ms: i64,
    /// The budget's namespace.
    pub namespace: String,
    /// The budget's name.
    pub budget: String,
    /// The model billed.
    pub model: String,
    /// Its cost.
    pub cost: Usd,
    /// Tokens: input, output, cache read, cache write.
    pub tokens: [u64; 4],
    /// Bedrock's request ID (a property, never a dimension).
    pub request_id: String,
    /// The calling pod, `namespace/name`.
    pub pod: String,
    /// The calling workload (see `aigov_api::budget::WorkloadSpend`).
    pub workload: String,
    /// The Bedrock operation (Converse, InvokeModel, ...).
    pub operation: String,
}

/// The EMF document of one event.
pub fn document(event: &UsageEvent) -> serde_json::Value {
    let cost: f64 = event.cost.as_decimal().try_into().unwrap_or_default();
    json!({
        "_aws": {
            "Timestamp": event.timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": [["Namespace", "Budget", "Model"], ["Namespace", "Budget"]],
                "Metrics": [
                    {"Name": "CostUSD", "Unit": "None"},
                    {"Name": "InputTokens", "Unit": "Count"},
                    {"Name": "OutputTokens", "Unit": "Count"},
                    {"Name": "CacheReadTokens", "Unit": "Count"},
                    {"Name": "CacheWriteTokens", "Unit": "Count"},
                    {"Name": "Requests", "Unit": "Count"}
                ]
            }]
        },
        "Namespace": event.namespace,
        "Budget": event.budget,
        "Model": event.model,
        "CostUSD": cost,
        "CostUSDExact": event.cost.to_api_string(),
        "InputTokens": event.tokens[0],
        "OutputTokens": event.tokens[1],
        "CacheReadTokens": event.tokens[2],
        "CacheWriteTokens": event.tokens[3],
        "Requests": 1,
        "RequestId": event.request_id,
        "Pod": event.pod,
        "Workload": event.workload,
        "Operation": event.operation,
    })
}

/// A bounded queue drained into one log stream.
#[derive(Clone)]
pub struct EmfWriter {
    queue: Arc<Mutex<VecDeque<UsageEvent>>>,
    /// Events dropped because the queue was full.
    pub dropped: Arc<AtomicU64>,
}

impl EmfWriter {
    /// Starts writing to `group`/`stream`, creating the stream if needed.
    pub fn start(
        client: aws_sdk_cloudwatchlogs::Client,
        group: String,
        stream: String,
    ) -> EmfWriter {
        let writer = EmfWriter {
            queue: Arc::default(),
            dropped: Arc::default(),
        };
        let queue = writer.queue.clone();
        tokio::spawn(async move {
            let mut stream_ready = false;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if !stream_ready {
                    match client
                        .create_log_stream()
                        .log_group_name(&group)
                        .log_stream_name(&stream)
                        .send()
                        .await
                    {
                        Ok(_) => stream_ready = true,
                        Err(e) => {
                            let e = e.into_service_error();
                            if e.is_resource_already_exists_exception() {
                                stream_ready = true;
                            } else {
                                tracing::warn!(group, error = %e, "EMF log stream");
                                continue;
                            }
                        }
                    }
                }
                loop {
                    let batch: Vec<UsageEvent> = {
                        let q = queue.lock().unwrap_or_else(|e| e.into_inner());
                        q.iter().take(BATCH).cloned().collect()
                    };
                    if batch.is_empty() {
                        break;
                    }
                    let mut events: Vec<InputLogEvent> = batch
                        .iter()
                        .filter_map(|e| {
                            InputLogEvent::builder()
                                .timestamp(e.timestamp_ms)
                                .message(document(e).to_string())
                                .build()
                                .ok()
                        })
                        .collect();
                    events.sort_by_key(|e| e.timestamp);
                    match client
                        .put_log_events()
                        .log_group_name(&group)
                        .log_stream_name(&stream)
                        .set_log_events(Some(events))
                        .send()
                        .await
                    {
                        Ok(_) => {
                            let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                            let n = batch.len().min(q.len());
                            q.drain(..n);
                        }
                        Err(e) => {
                            // Kept for the next round: retried, not lost.
                            tracing::warn!(group, error = %aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e), "EMF put");
                            stream_ready = false;
                            break;
                        }
                    }
                }
            }
        });
        writer
    }

    /// Queues an event; drops the oldest when full.
    pub fn push(&self, event: UsageEvent) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= MAX_QUEUED {
            q.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_id_is_a_property_never_a_dimension() {
        let doc = document(&UsageEvent {
            timestamp_ms: 1,
            namespace: "team".into(),
            budget: "chat".into(),
            model: "m".into(),
            cost: Usd::parse("0.012345").unwrap(),
            tokens: [1, 2, 3, 4],
            request_id: "req-1".into(),
            pod: "team/p".into(),
            workload: "chat".into(),
            operation: "Converse".into(),
        });
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Namespace", "Budget", "Model"], ["Namespace", "Budget"]])
        );
        assert_eq!(doc["RequestId"], "req-1");
        assert_eq!(doc["CostUSDExact"], "0.012345");
        assert_eq!(doc["CacheReadTokens"], 3);
        assert_eq!(
            (doc["Workload"].as_str(), doc["Pod"].as_str()),
            (Some("chat"), Some("team/p"))
        );
    }
}
