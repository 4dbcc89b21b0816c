//! Alerts to people: SNS topics (aws-sdk-sns) and Slack-compatible webhooks whose URL is in a
//! Secret, delivered from the outbox in each budget's status ([`crate::outbox`]) by a task of
//! their own, so a slow or failing channel never holds up reconciliation.
//!
//! The task never writes status. The reconciler hands it each budget's outbox as written
//! ([`Alerter::track`]); the task delivers what is due (a channel's pending alerts merged into
//! one message, within the budget's cooldown unless urgent, after the backoff of the last
//! failure), remembers the outcome, and asks for the budget to be reconciled; the reconcile
//! reads the outcomes ([`Alerter::outcomes`]) and writes them into the outbox. What a channel
//! accepted is remembered here until the watch shows it written, so it is never sent again by
//! this leader; a new leader reads the same outbox and resumes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aigov_api::budget::{AlertChannel, AlertOutbox, AlertSecretRef, SecretKeyRef};
use aigov_ledger::clock::Clock;
use aigov_ledger::key;
use aigov_ledger::ledger::BudgetKey;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::outbox::{self, Batch, Delivered, Failed, Outcomes, Retry};

/// Where an alert goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// An SNS topic ARN.
    Sns(String),
    /// A webhook URL in a Secret of the budget's namespace (a ClusterAIBudget's: the
    /// controller's own, where the platform team keeps its Secrets).
    Webhook {
        /// The Secret's namespace.
        namespace: String,
        /// Which Secret and key.
        secret: String,
        /// The key in the Secret.
        key: String,
    },
}

impl Channel {
    /// The channels of an alerts block or escalation step.
    pub fn from_parts(
        namespace: &str,
        sns: Option<&String>,
        webhook: Option<&SecretKeyRef>,
    ) -> Vec<Channel> {
        let mut channels = Vec::new();
        if let Some(arn) = sns {
            channels.push(Channel::Sns(arn.clone()));
        }
        if let Some(r) = webhook {
            channels.push(Channel::Webhook {
                namespace: namespace.to_owned(),
                secret: r.name.clone(),
                key: r.key.clone(),
            });
        }
        channels
    }

    /// The channel as the outbox in status records it (the namespace is the budget's).
    pub fn to_status(&self) -> AlertChannel {
        match self {
            Channel::Sns(arn) => AlertChannel {
                sns_topic_arn: Some(arn.clone()),
                webhook_secret_ref: None,
            },
            Channel::Webhook { secret, key, .. } => AlertChannel {
                sns_topic_arn: None,
                webhook_secret_ref: Some(AlertSecretRef {
                    name: secret.clone(),
                    key: key.clone(),
                }),
            },
        }
    }

    /// A channel recorded in the outbox of a budget in `namespace`.
    pub fn from_status(namespace: &str, channel: &AlertChannel) -> Option<Channel> {
        match (&channel.sns_topic_arn, &channel.webhook_secret_ref) {
            (Some(arn), _) => Some(Channel::Sns(arn.clone())),
            (None, Some(r)) => Some(Channel::Webhook {
                namespace: namespace.to_owned(),
                secret: r.name.clone(),
                key: r.key.clone(),
            }),
            (None, None) => None,
        }
    }

    /// `sns` or `webhook`, the metrics' label.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Sns(_) => "sns",
            Channel::Webhook { .. } => "webhook",
        }
    }
}

/// One alert a reconcile decided, for one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// Unique per alert ([`outbox::alert_id`]).
    pub id: String,
    /// Where to.
    pub channel: Channel,
    /// A one-line subject (SNS subject, webhook title).
    pub subject: String,
    /// The text.
    pub message: String,
    /// Goes out at once, cooldown or not (an exhausted budget, an escalation), taking with it
    /// anything held back by the cooldown.
    pub urgent: bool,
}

/// What the delivery task holds of one budget.
#[derive(Debug, Default)]
struct Tracked {
    /// The outbox as last written (or read, when there was nothing to write).
    outbox: AlertOutbox,
    /// `spec.alerts.cooldown`.
    cooldown: Duration,
    /// What deliveries found that the status may not show yet.
    outcomes: Outcomes,
    /// Channels ([`outbox::channel_key`]) with a delivery in flight.
    busy: Vec<String>,
}

struct Inner {
    budgets: Mutex<HashMap<BudgetKey, Tracked>>,
    retry: Retry,
    clock: Clock,
    metrics: Arc<Metrics>,
    /// Asks for a budget to be reconciled (the ledger's trigger channel).
    changed: mpsc::UnboundedSender<BudgetKey>,
    wake: Notify,
    stopping: AtomicBool,
    /// Where a ClusterAIBudget's webhook Secrets are read from.
    own_namespace: String,
}

impl Inner {
    fn budgets(&self) -> MutexGuard<'_, HashMap<BudgetKey, Tracked>> {
        self.budgets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The delivery task's handle.
#[derive(Clone)]
pub struct Alerter {
    inner: Arc<Inner>,
}

/// What starting the delivery task needs.
pub struct AlerterParts {
    /// SNS.
    pub sns: aws_sdk_sns::Client,
    /// The API (webhook Secrets).
    pub kube: kube::Client,
    /// `--alert-retry-horizon`, `--alert-retry-max-backoff`.
    pub retry: Retry,
    /// Time.
    pub clock: Clock,
    /// Delivery counters.
    pub metrics: Arc<Metrics>,
    /// Where to ask for a reconcile of a budget whose deliveries have news.
    pub changed: mpsc::UnboundedSender<BudgetKey>,
    /// The controller's namespace: a ClusterAIBudget has none, so its webhook Secrets live
    /// here.
    pub own_namespace: String,
}

impl Alerter {
    /// Starts the delivery task.
    pub fn start(parts: AlerterParts) -> Alerter {
        let inner = Arc::new(Inner {
            budgets: Mutex::default(),
            retry: parts.retry,
            clock: parts.clock,
            metrics: parts.metrics,
            changed: parts.changed,
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            own_namespace: parts.own_namespace,
        });
        tokio::spawn(deliver(inner.clone(), parts.sns, parts.kube));
        Alerter { inner }
    }

    /// How long and how often alerts are retried.
    pub fn retry(&self) -> Retry {
        self.inner.retry
    }

    /// What deliveries found for `key` that `observed` (the status as the watch shows it)
    /// does not show yet; what it shows is forgotten here.
    pub fn outcomes(&self, key: &str, observed: Option<&AlertOutbox>) -> Outcomes {
        let now = self.inner.clock.now();
        let mut budgets = self.inner.budgets();
        let Some(tracked) = budgets.get_mut(key) else {
            return Outcomes::default();
        };
        tracked
            .outcomes
            .prune(observed, now, self.inner.retry.horizon);
        tracked.outcomes.clone()
    }

    /// The outbox of `key` as written (or as it is, when nothing was written), to deliver from.
    pub fn track(&self, key: &str, outbox: Option<&AlertOutbox>, cooldown: Duration) {
        let mut budgets = self.inner.budgets();
        let tracked = budgets.entry(key.to_owned()).or_default();
        tracked.outbox = outbox.cloned().unwrap_or_default();
        tracked.cooldown = cooldown;
        // Kept while a delivery is in flight: its outcome must find it.
        if tracked.outbox.pending.is_empty()
            && tracked.outcomes.is_empty()
            && tracked.busy.is_empty()
        {
            budgets.remove(key);
        }
        drop(budgets);
        self.inner.wake.notify_one();
    }

    /// Forgets deleted budgets.
    pub fn forget(&self, keys: &[BudgetKey]) {
        let mut budgets = self.inner.budgets();
        for key in keys {
            budgets.remove(key);
        }
    }

    /// A graceful stop: starts no new delivery, and waits (until `deadline`) for those in
    /// flight to end and for every alert a channel accepted to show in a written status, so
    /// the next leader does not send it again. Alerts still pending stay in status: the next
    /// leader delivers them (held ones when their cooldown ends, as this one would have).
    pub async fn flush(&self, deadline: Instant) {
        self.inner.stopping.store(true, Ordering::Release);
        loop {
            let owed = self
                .inner
                .budgets()
                .values()
                .any(|t| !t.busy.is_empty() || !t.outcomes.delivered.is_empty());
            if !owed {
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    "alerts delivered but not yet in status when the controller stopped: the next leader may send them again"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One delivery's result.
struct Done {
    key: BudgetKey,
    batch: Batch,
    channel: &'static str,
    at: Timestamp,
    result: Result<(), String>,
}

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// The delivery task: every 250 ms (or when an outbox changes), starts what is due; records
/// what ends.
async fn deliver(inner: Arc<Inner>, sns: aws_sdk_sns::Client, kube: kube::Client) {
    let http: Client<Https, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build(),
    );
    let mut deliveries = JoinSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = inner.wake.notified() => {}
            Some(done) = deliveries.join_next(), if !deliveries.is_empty() => {
                if let Ok(done) = done {
                    record(&inner, done);
                }
            }
        }
        if inner.stopping.load(Ordering::Acquire) {
            continue;
        }
        for (key, namespace, batch) in take_due(&inner) {
            let (sns, kube, http, clock) =
                (sns.clone(), kube.clone(), http.clone(), inner.clock.clone());
            deliveries.spawn(async move {
                let channel = Channel::from_status(&namespace, &batch.channel);
                let result = match &channel {
                    Some(c) => send_once(c, &batch, &sns, &kube, &http).await,
                    None => Err("the outbox names no channel".to_owned()),
                };
                Done {
                    key,
                    channel: channel.map_or("none", |c| c.kind()),
                    batch,
                    at: clock.now(),
                    result,
                }
            });
        }
    }
}

/// The batches due now across budgets, their channels marked busy.
fn take_due(inner: &Inner) -> Vec<(BudgetKey, String, Batch)> {
    let now = inner.clock.now();
    let mut out = Vec::new();
    for (key, t) in inner.budgets().iter_mut() {
        // What the next reconcile will write: the written outbox with the outcomes folded in.
        let view = outbox::advance(
            Some(&t.outbox),
            &[],
            &t.outcomes,
            now,
            inner.retry,
            t.cooldown,
        );
        let Some(view) = view.outbox else { continue };
        for batch in outbox::due(&view, t.cooldown, now, &t.busy) {
            t.busy.push(outbox::channel_key(&batch.channel));
            let namespace = key::parts(key).0.unwrap_or(&inner.own_namespace);
            out.push((key.clone(), namespace.to_owned(), batch));
        }
    }
    out
}

/// Remembers what a delivery found and asks for the budget to be reconciled.
fn record(inner: &Inner, done: Done) {
    let ok = done.result.is_ok();
    inner.metrics.alert_delivery(done.channel, ok);
    let channel = outbox::channel_key(&done.batch.channel);
    let mut budgets = inner.budgets();
    let Some(t) = budgets.get_mut(&done.key) else {
        return;
    };
    t.busy.retain(|c| *c != channel);
    let ids = done.batch.ids.iter().zip(&done.batch.attempts);
    match &done.result {
        Ok(()) => {
            tracing::info!(budget = %done.key, channel = %describe(&done.batch.channel), alerts = ?done.batch.ids, "alert delivered");
            for (id, failures) in ids {
                let delivered = Delivered {
                    at: done.at,
                    attempts: failures + 1,
                };
                t.outcomes.delivered.insert(id.clone(), delivered);
                t.outcomes.failed.remove(id);
            }
        }
        Err(error) => {
            tracing::warn!(budget = %done.key, channel = %describe(&done.batch.channel), %error, "alert delivery failed");
            for (id, failures) in ids {
                let attempts = failures + 1;
                let next_at =
                    outbox::later(done.at, outbox::backoff(attempts, inner.retry.max_backoff));
                let failed = Failed {
                    attempts,
                    at: done.at,
                    next_at,
                    error: error.clone(),
                };
                t.outcomes.failed.insert(id.clone(), failed);
            }
        }
    }
    drop(budgets);
    let _ = inner.changed.send(done.key);
}

/// A channel as people read it: never the webhook URL, which is a secret.
pub fn describe(channel: &AlertChannel) -> String {
    match (&channel.sns_topic_arn, &channel.webhook_secret_ref) {
        (Some(arn), _) => format!("SNS topic {arn}"),
        (None, Some(r)) => format!("webhook (Secret {}, key {})", r.name, r.key),
        (None, None) => "no channel".to_owned(),
    }
}

/// Sends one batch once.
async fn send_once(
    channel: &Channel,
    batch: &Batch,
    sns: &aws_sdk_sns::Client,
    kube: &kube::Client,
    http: &Client<Https, Full<Bytes>>,
) -> Result<(), String> {
    let ids = batch.ids.join(",");
    match channel {
        Channel::Sns(arn) => sns
            .publish()
            .topic_arn(arn)
            .subject(batch.subject.chars().take(100).collect::<String>())
            .message(&batch.message)
            .message_attributes(
                "aigov.alert-ids",
                aws_sdk_sns::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(&ids)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{}", aws_sdk_sns::error::DisplayErrorContext(e))),
        Channel::Webhook {
            namespace,
            secret,
            key,
        } => {
            let url = webhook_url(kube, namespace, secret, key).await?;
            post_webhook(http, &url, batch, &ids)
                .await
                .map_err(|e| e.replace(&url, "<webhook URL>"))
        }
    }
}

/// The webhook URL in the Secret.
async fn webhook_url(
    kube: &kube::Client,
    namespace: &str,
    secret: &str,
    key: &str,
) -> Result<String, String> {
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    let found = secrets
        .get(secret)
        .await
        .map_err(|e| format!("secret {namespace}/{secret}: {e}"))?;
    found
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
        .ok_or_else(|| format!("secret {namespace}/{secret} has no key {key}"))
}

/// Posts a Slack-compatible message; the alert IDs go in `X-Aigov-Alert-Ids` so a receiver
/// can de-duplicate. Errors carry their causes (`connection refused`), never the URL.
async fn post_webhook(
    http: &Client<Https, Full<Bytes>>,
    url: &str,
    batch: &Batch,
    ids: &str,
) -> Result<(), String> {
    let body = serde_json::json!({
        "text": format!("*{}*\n{}", batch.subject, batch.message),
    })
    .to_string();
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .header("x-aigov-alert-ids", ids)
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| "the webhook URL in the Secret is not a valid URL".to_owned())?;
    let response = tokio::time::timeout(Duration::from_secs(10), http.request(request))
        .await
        .map_err(|_| "webhook timed out after 10s".to_owned())?
        .map_err(|e| format!("webhook: {}", causes(&e)))?;
    let status = response.status();
    let _ = response.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("webhook answered {status}"))
    }
}

/// An error with its chain of causes, `a: b: c`.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text = format!("{text}: {e}");
        source = e.source();
    }
    text
}
