//! The usage-record format: one settled call charged to one budget, as the controller writes it
//! to CloudWatch Logs in Embedded Metric Format and as `kubectl aigov` reads it back. One writer
//! ([`document`]) and one reader ([`UsageEvent::from_emf`]), so the two cannot drift apart.
//! CloudWatch extracts `CostUSD` and token metrics per `Namespace`, `Budget`, `Model` and rolled
//! up per `Namespace`, `Budget` (never the request ID, which stays a plain property).

use aigov_api::Usd;
use aigov_api::request_metadata::{RequestMetadata, bounded};
use serde_json::json;

/// The CloudWatch metric namespace.
pub const METRIC_NAMESPACE: &str = "AIGov";

/// The prefix of the properties that carry the call's request metadata (`meta.feature`):
/// aigov's own properties have no `.`, so a caller's key can never overwrite one of them.
/// At most 16 pairs, keys and values at most 256 characters each
/// ([`aigov_api::request_metadata::bounded`]), so a record stays within about 8 KiB of
/// metadata whatever a workload sends.
pub const METADATA_PREFIX: &str = "meta.";

/// One settled call charged to one budget.
#[derive(Clone, Debug, Default, PartialEq)]
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
    /// The operation (Converse, InvokeModel, ChatCompletions, Responses, Messages,
    /// ApplyGuardrail, StartAsyncInvoke, ...).
    pub operation: String,
    /// The caller's request metadata (the gateway's `aigov.` pairs excluded).
    pub metadata: RequestMetadata,
}

/// The EMF document of one event.
pub fn document(event: &UsageEvent) -> serde_json::Value {
    let cost: f64 = event.cost.as_decimal().try_into().unwrap_or_default();
    let mut doc = json!({
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
    });
    if let Some(object) = doc.as_object_mut() {
        for (key, value) in bounded(&event.metadata) {
            object.insert(format!("{METADATA_PREFIX}{key}"), value.into());
        }
    }
    doc
}

impl UsageEvent {
    /// Reads one EMF log event back; anything that is not an aigov usage record gives None.
    /// The exact cost is `CostUSDExact` (the float `CostUSD` is for CloudWatch's metrics).
    pub fn from_emf(message: &str) -> Option<UsageEvent> {
        let doc: serde_json::Value = serde_json::from_str(message).ok()?;
        let text = |key: &str| doc.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let count = |key: &str| doc.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        let pod = text("Pod").unwrap_or_default();
        Some(UsageEvent {
            timestamp_ms: doc.pointer("/_aws/Timestamp")?.as_i64()?,
            namespace: text("Namespace")?,
            budget: text("Budget")?,
            workload: text("Workload")
                .or_else(|| pod.split_once('/').map(|(_, name)| name.to_owned()))
                .unwrap_or_default(),
            pod,
            model: text("Model")?,
            operation: text("Operation").unwrap_or_default(),
            tokens: [
                count("InputTokens"),
                count("OutputTokens"),
                count("CacheReadTokens"),
                count("CacheWriteTokens"),
            ],
            cost: Usd::parse(&text("CostUSDExact")?).ok()?,
            request_id: text("RequestId").unwrap_or_default(),
            metadata: doc
                .as_object()?
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.strip_prefix(METADATA_PREFIX)?.to_owned(),
                        v.as_str()?.to_owned(),
                    ))
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_reads_back_as_the_event_it_was_written_from() {
        let event = UsageEvent {
            timestamp_ms: 1_764_000_000_123,
            namespace: "team".into(),
            budget: "daily".into(),
            model: "anthropic.claude-3-5-haiku-20241022-v1:0".into(),
            cost: Usd::parse("0.000375").unwrap(),
            tokens: [100, 200, 300, 400],
            request_id: "req-1".into(),
            pod: "team/chat-0".into(),
            workload: "chat".into(),
            operation: "Converse".into(),
            metadata: [("feature", "search"), ("Namespace", "forged")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        let doc = document(&event);
        assert_eq!(
            doc["Namespace"], "team",
            "a caller's key cannot clobber aigov's own"
        );
        assert_eq!(doc["meta.Namespace"], "forged");
        let back = UsageEvent::from_emf(&document(&event).to_string()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{event:?}"));
    }

    #[test]
    fn a_record_carries_at_most_sixteen_pairs_of_bounded_length() {
        let event = UsageEvent {
            metadata: (0..40)
                .map(|i| (format!("k{i:02}"), "v".repeat(1000)))
                .collect(),
            cost: Usd::parse("1").unwrap(),
            ..Default::default()
        };
        let doc = document(&event);
        let meta: Vec<_> = doc
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(METADATA_PREFIX))
            .collect();
        assert_eq!(meta.len(), 16);
        assert!(meta.iter().all(|(_, v)| v.as_str().unwrap().len() == 256));
    }

    #[test]
    fn a_log_line_that_is_not_a_usage_record_reads_as_none() {
        assert!(UsageEvent::from_emf("plain text").is_none());
        assert!(UsageEvent::from_emf(r#"{"_aws":{"Timestamp":1},"Namespace":"n"}"#).is_none());
    }

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
            metadata: Default::default(),
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
