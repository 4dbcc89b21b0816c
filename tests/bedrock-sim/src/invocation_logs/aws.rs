//! The AWS side of invocation logging: the logging configuration (Bedrock control plane), the
//! callers' identities (STS) and the writes (CloudWatch Logs), all against one endpoint (moto).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_sts::config::Credentials;
use tokio::sync::mpsc;

use super::{Identity, Invocation, LOG_STREAM, api_key_identity, record};

/// How long a read logging configuration is trusted: a test that turns logging on sees records
/// for the calls served this long after.
pub const CONFIG_TTL: Duration = Duration::from_secs(1);
/// How often queued records are written.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Records kept for retry at most; the oldest are dropped beyond (with a warning).
const MAX_PENDING: usize = 10_000;
/// PutLogEvents takes at most 10,000 events a call; stay well below.
const BATCH: usize = 500;
/// The simulator's own key (moto's default account), for the configuration and API-key calls.
const OWN_KEY: &str = "testing";

/// Where records go, as the configuration said when the call was served.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Destination {
    log_group: String,
    text: bool,
}

/// A served call with its destination, waiting to be written.
struct Queued {
    call: Invocation,
    to: Destination,
}

/// The background writer.
pub struct Writer {
    shared: SdkConfig,
    region: String,
    bedrock: aws_sdk_bedrock::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    config: Option<(Instant, Option<Destination>)>,
    identities: HashMap<String, Identity>,
    streams: HashSet<String>,
}

impl Writer {
    /// Clients for `endpoint` with static test credentials.
    pub async fn new(endpoint: &str, region: &str) -> Writer {
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(OWN_KEY, "testing", None, None, "sim"))
            .load()
            .await;
        Writer {
            bedrock: aws_sdk_bedrock::Client::new(&shared),
            logs: aws_sdk_cloudwatchlogs::Client::new(&shared),
            region: region.to_owned(),
            shared,
            config: None,
            identities: HashMap::new(),
            streams: HashSet::new(),
        }
    }

    /// Receives served calls and writes their records until the server goes away.
    pub async fn run(mut self, mut received: mpsc::UnboundedReceiver<Invocation>) {
        let mut pending: Vec<Queued> = Vec::new();
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                call = received.recv() => match call {
                    Some(call) => {
                        if let Some(to) = self.destination().await {
                            pending.push(Queued { call, to });
                        }
                    }
                    None => break,
                },
                _ = tick.tick(), if !pending.is_empty() => {
                    self.flush(&mut pending).await;
                    if pending.len() > MAX_PENDING {
                        let dropped = pending.len() - MAX_PENDING;
                        tracing::warn!(dropped, "invocation log records dropped after failed writes");
                        pending.drain(..dropped);
                    }
                }
            }
        }
        self.flush(&mut pending).await;
    }

    /// The CloudWatch destination in force, read again when older than [`CONFIG_TTL`]. A failed
    /// read keeps the last known answer (none at first): a moto hiccup is not a config change.
    async fn destination(&mut self) -> Option<Destination> {
        if let Some((read_at, to)) = &self.config
            && read_at.elapsed() < CONFIG_TTL
        {
            return to.clone();
        }
        match self
            .bedrock
            .get_model_invocation_logging_configuration()
            .send()
            .await
        {
            Ok(out) => {
                let to = out.logging_config().and_then(|c| {
                    c.cloud_watch_config().map(|cw| Destination {
                        log_group: cw.log_group_name().to_owned(),
                        text: c.text_data_delivery_enabled().unwrap_or(false),
                    })
                });
                self.config = Some((Instant::now(), to.clone()));
                to
            }
            Err(e) => {
                tracing::warn!(error = %aws_sdk_bedrock::error::DisplayErrorContext(&e),
                    "reading the model invocation logging configuration");
                self.config.as_ref().and_then(|(_, to)| to.clone())
            }
        }
    }

    /// Writes what it can of `pending`, per log group; what failed stays for the next tick.
    async fn flush(&mut self, pending: &mut Vec<Queued>) {
        let mut by_group: BTreeMap<String, Vec<Queued>> = BTreeMap::new();
        for q in pending.drain(..) {
            by_group.entry(q.to.log_group.clone()).or_default().push(q);
        }
        for (group, mut queued) in by_group {
            queued.sort_by_key(|q| q.call.at);
            while !queued.is_empty() {
                let batch: Vec<Queued> = queued.drain(..queued.len().min(BATCH)).collect();
                if let Err(batch) = self.write(&group, batch).await {
                    pending.extend(batch);
                    pending.append(&mut queued);
                }
            }
        }
    }

    /// One PutLogEvents call; gives the batch back when it failed.
    async fn write(&mut self, group: &str, batch: Vec<Queued>) -> Result<(), Vec<Queued>> {
        let mut events = Vec::with_capacity(batch.len());
        for q in &batch {
            let Some(identity) = self.identity(&q.call.served.access_key).await else {
                return Err(batch);
            };
            let message = record(&q.call, &identity, &self.region, q.to.text).to_string();
            let event = InputLogEvent::builder()
                .timestamp(q.call.at.as_millisecond())
                .message(message)
                .build()
                .expect("timestamp and message are set");
            events.push(event);
        }
        if !self.ensure_stream(group).await {
            return Err(batch);
        }
        let sent = self
            .logs
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(LOG_STREAM)
            .set_log_events(Some(events))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(group, error = %aws_sdk_cloudwatchlogs::error::DisplayErrorContext(&e),
                    "writing invocation log records; will retry");
                // The group or stream may have been deleted and made again.
                self.streams.remove(group);
                Err(batch)
            }
        }
    }

    /// Creates the stream in `group` once (it may already exist).
    async fn ensure_stream(&mut self, group: &str) -> bool {
        if self.streams.contains(group) {
            return true;
        }
        let made = self
            .logs
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(LOG_STREAM)
            .send()
            .await;
        match made {
            Err(e)
                if !e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_already_exists_exception()) =>
            {
                tracing::warn!(group, error = %aws_sdk_cloudwatchlogs::error::DisplayErrorContext(&e),
                    "creating the invocation log stream; will retry");
                false
            }
            _ => {
                self.streams.insert(group.to_owned());
                true
            }
        }
    }

    /// Who `access_key` is, asked of STS once per key; an empty key is an API-key call.
    async fn identity(&mut self, access_key: &str) -> Option<Identity> {
        if let Some(known) = self.identities.get(access_key) {
            return Some(known.clone());
        }
        let signer = if access_key.is_empty() {
            OWN_KEY
        } else {
            access_key
        };
        let conf = aws_sdk_sts::config::Builder::from(&self.shared)
            .credentials_provider(Credentials::new(signer, "unchecked", None, None, "caller"))
            .build();
        let asked = aws_sdk_sts::Client::from_conf(conf)
            .get_caller_identity()
            .send()
            .await;
        let out = match asked {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(access_key, error = %aws_sdk_sts::error::DisplayErrorContext(&e),
                    "asking STS who signed a call; will retry");
                return None;
            }
        };
        let account = out.account().unwrap_or_default().to_owned();
        let identity = if access_key.is_empty() {
            api_key_identity(&account)
        } else {
            Identity {
                arn: out.arn().unwrap_or_default().to_owned(),
                account,
            }
        };
        self.identities
            .insert(access_key.to_owned(), identity.clone());
        Some(identity)
    }
}
