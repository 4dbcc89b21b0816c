//! The writer of per-request usage records: [`UsageEvent`]s as CloudWatch Embedded Metric Format
//! (the format is [`aigov_ledger::record`]), written to a log group (aws-sdk-cloudwatchlogs) in
//! batches, retried, and bounded in memory; the metrics CloudWatch extracts from them are what
//! the `aigov_alarm` presets watch.
//!
//! The ledger hands it only records whose status is written, and acknowledges the gateway's
//! record only once the writer reports it written ([`EmfWriter::take_written`]), so each is
//! written once across leader changes ([`aigov_ledger::outbox`]). A record in doubt (a previous
//! leader counted it and may have written it) is first looked for in the log group.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aigov_ledger::outbox::Outgoing;
use aigov_ledger::record::{UsageEvent, document};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;

/// While the writer has been failing for longer than this, the ledger stops holding back
/// gateways' acknowledgements for it (records stay queued, up to [`MAX_QUEUED`], and go out
/// when CloudWatch Logs answers again): a CloudWatch outage must not stop the data path.
pub const ACK_HOLD: Duration = Duration::from_secs(30);

/// Events held at most; older ones are dropped (and counted) past this.
pub const MAX_QUEUED: usize = 100_000;
/// Events per PutLogEvents call (the API allows 10,000 and 1 MiB).
pub const BATCH: usize = 1_000;
/// A bounded queue drained into one log stream.
#[derive(Clone)]
pub struct EmfWriter {
    queue: Arc<Mutex<VecDeque<Outgoing>>>,
    /// What was written (or dropped) since the ledger last asked: (gateway, sequence).
    written: Arc<Mutex<Vec<(String, u64)>>>,
    /// Since when puts have been failing.
    failing_since: Arc<Mutex<Option<Instant>>>,
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
            written: Arc::default(),
            failing_since: Arc::default(),
            dropped: Arc::default(),
        };
        let target = LogStream {
            client,
            group,
            stream,
        };
        tokio::spawn(target.write_forever(writer.clone()));
        writer
    }

    /// Waits until every queued event is written, or `deadline` (a graceful stop). Returns the
    /// events still queued.
    pub async fn flush(&self, deadline: tokio::time::Instant) -> usize {
        loop {
            let queued = lock(&self.queue).len();
            if queued == 0 || tokio::time::Instant::now() >= deadline {
                if queued > 0 {
                    tracing::warn!(queued, "usage records not written before stopping");
                }
                return queued;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Queues a record whose status is written; drops the oldest when full (counted, and
    /// reported written so that acknowledgements go on).
    pub fn push(&self, outgoing: Outgoing) {
        let mut q = lock(&self.queue);
        if q.len() >= MAX_QUEUED
            && let Some(old) = q.pop_front()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            lock(&self.written).push((old.gateway, old.sequence));
        }
        q.push_back(outgoing);
    }

    /// What was written since the last call.
    pub fn take_written(&self) -> Vec<(String, u64)> {
        std::mem::take(&mut *lock(&self.written))
    }

    /// True when puts have been failing for longer than [`ACK_HOLD`].
    pub fn overdue(&self) -> bool {
        lock(&self.failing_since).is_some_and(|since| since.elapsed() > ACK_HOLD)
    }

    fn wrote(&self, batch: &[Outgoing]) {
        let mut q = lock(&self.queue);
        let n = batch.len().min(q.len());
        q.drain(..n);
        drop(q);
        let mut written = lock(&self.written);
        written.extend(batch.iter().map(|o| (o.gateway.clone(), o.sequence)));
        *lock(&self.failing_since) = None;
    }

    fn failed(&self) {
        lock(&self.failing_since).get_or_insert_with(Instant::now);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
    async fn write_forever(self, writer: EmfWriter) {
        let mut stream_ready = false;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stream_ready = stream_ready || self.create_stream().await;
            if !stream_ready {
                writer.failed();
            }
            while stream_ready {
                let batch: Vec<Outgoing> =
                    lock(&writer.queue).iter().take(BATCH).cloned().collect();
                if batch.is_empty() {
                    break;
                }
                stream_ready = match self.already_written(&batch).await {
                    Some(found) => self.put(&batch, &found).await,
                    None => false,
                };
                if stream_ready {
                    writer.wrote(&batch);
                } else {
                    writer.failed();
                }
            }
        }
    }

    /// The (request ID, namespace, budget) of the batch's records in doubt that the log group
    /// already holds: a previous leader wrote them before it could have them acknowledged.
    /// None when the log group could not be read (the batch waits).
    async fn already_written(
        &self,
        batch: &[Outgoing],
    ) -> Option<HashSet<(String, String, String)>> {
        let doubtful: Vec<&UsageEvent> = batch
            .iter()
            .filter(|o| o.in_doubt)
            .map(|o| &o.event)
            .collect();
        let mut found = HashSet::new();
        let (Some(from), Some(to)) = (
            doubtful.iter().map(|e| e.timestamp_ms).min(),
            doubtful.iter().map(|e| e.timestamp_ms).max(),
        ) else {
            return Some(found);
        };
        let mut pages = self
            .client
            .filter_log_events()
            .log_group_name(&self.group)
            .start_time(from)
            .end_time(to)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    let error = aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e);
                    tracing::warn!(group = self.group, %error, "EMF: reading back records in doubt");
                    return None;
                }
            };
            let events = page.events().iter().filter_map(|e| e.message());
            found.extend(
                events
                    .filter_map(UsageEvent::from_emf)
                    .map(|e| (e.request_id, e.namespace, e.budget)),
            );
        }
        Some(found)
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

    /// Writes one batch, leaving out what `found` says is already there; false when
    /// CloudWatch refused it (the stream is checked again).
    async fn put(&self, batch: &[Outgoing], found: &HashSet<(String, String, String)>) -> bool {
        let mut events: Vec<InputLogEvent> = batch
            .iter()
            .filter(|o| {
                let e = &o.event;
                let key = (e.request_id.clone(), e.namespace.clone(), e.budget.clone());
                !(o.in_doubt && found.contains(&key))
            })
            .map(|o| &o.event)
            .filter_map(|e| {
                InputLogEvent::builder()
                    .timestamp(e.timestamp_ms)
                    .message(document(e).to_string())
                    .build()
                    .ok()
            })
            .collect();
        if events.is_empty() {
            return true;
        }
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
