//! The writer of per-request usage records: [`UsageEvent`]s as CloudWatch Embedded Metric Format
//! (the format is [`aigov_ledger::record`]), written to a log group (aws-sdk-cloudwatchlogs) in
//! batches, retried, and bounded in memory; the metrics CloudWatch extracts from them are what
//! the `aigov_alarm` presets watch.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aigov_ledger::record::{UsageEvent, document};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;

/// Events held at most; older ones are dropped (and counted) past this.
pub const MAX_QUEUED: usize = 100_000;
/// Events per PutLogEvents call (the API allows 10,000 and 1 MiB).
pub const BATCH: usize = 1_000;
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
        let target = LogStream {
            client,
            group,
            stream,
        };
        tokio::spawn(target.write_forever(writer.queue.clone()));
        writer
    }

    /// Waits until every queued event is written, or `deadline` (a graceful stop). Returns the
    /// events still queued.
    pub async fn flush(&self, deadline: tokio::time::Instant) -> usize {
        loop {
            let queued = self.queue.lock().unwrap_or_else(|e| e.into_inner()).len();
            if queued == 0 || tokio::time::Instant::now() >= deadline {
                if queued > 0 {
                    tracing::warn!(queued, "usage records not written before stopping");
                }
                return queued;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

/// Where the events go.
struct LogStream {
    client: aws_sdk_cloudwatchlogs::Client,
    group: String,
    stream: String,
}

impl LogStream {
    /// Once a second: makes sure the stream exists, then writes the queue out in batches.
    /// A batch is removed from the queue only once CloudWatch has taken it (retried, not lost).
    async fn write_forever(self, queue: Arc<Mutex<VecDeque<UsageEvent>>>) {
        let mut stream_ready = false;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stream_ready = stream_ready || self.create_stream().await;
            while stream_ready {
                let batch: Vec<UsageEvent> = {
                    let q = queue.lock().unwrap_or_else(|e| e.into_inner());
                    q.iter().take(BATCH).cloned().collect()
                };
                if batch.is_empty() {
                    break;
                }
                stream_ready = self.put(&batch).await;
                if stream_ready {
                    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                    let n = batch.len().min(q.len());
                    q.drain(..n);
                }
            }
        }
    }

    /// Creates the log stream; true when it exists.
    async fn create_stream(&self) -> bool {
        let created = self
            .client
            .create_log_stream()
            .log_group_name(&self.group)
            .log_stream_name(&self.stream)
            .send()
            .await;
        match created.map_err(|e| e.into_service_error()) {
            Ok(_) => true,
            Err(e) if e.is_resource_already_exists_exception() => true,
            Err(e) => {
                tracing::warn!(group = self.group, error = %e, "EMF log stream");
                false
            }
        }
    }

    /// Writes one batch; false when CloudWatch refused it (the stream is checked again).
    async fn put(&self, batch: &[UsageEvent]) -> bool {
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
        let put = self
            .client
            .put_log_events()
            .log_group_name(&self.group)
            .log_stream_name(&self.stream)
            .set_log_events(Some(events))
            .send()
            .await;
        match put {
            Ok(_) => true,
            Err(e) => {
                let error = aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e);
                tracing::warn!(group = self.group, %error, "EMF put");
                false
            }
        }
    }
}
