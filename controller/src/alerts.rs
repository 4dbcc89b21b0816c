//! Alerts to people: SNS topics (aws-sdk-sns) and Slack-compatible webhooks whose URL is in a
//! Secret. Queued by the reconciler and delivered by a task of their own, with retries and a
//! per-budget, per-channel cooldown (alerts inside it are merged into one), so a slow channel
//! never holds up reconciliation.

use std::collections::HashMap;
use std::time::Duration;

use aigov_api::budget::SecretKeyRef;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Where an alert goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// An SNS topic ARN.
    Sns(String),
    /// A webhook URL in a Secret of the budget's namespace.
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
}

/// One alert.
#[derive(Clone, Debug)]
pub struct Alert {
    /// `namespace/name` of the budget.
    pub budget: String,
    /// Where to.
    pub channel: Channel,
    /// A one-line subject (SNS subject, webhook title).
    pub subject: String,
    /// The text.
    pub message: String,
    /// No two deliveries to this channel for this budget closer than this.
    pub cooldown: Duration,
    /// Goes out at once, cooldown or not (an exhausted budget, an escalation), taking with it
    /// anything held back by the cooldown.
    pub urgent: bool,
}

/// What the alert task is asked to do.
enum Command {
    /// Deliver an alert (merged with others inside its cooldown).
    Send(Alert),
    /// Deliver everything held back at once and answer when every delivery has ended.
    Flush(oneshot::Sender<()>),
}

/// The queue into the alert task.
#[derive(Clone)]
pub struct Alerter {
    sender: mpsc::UnboundedSender<Command>,
}

impl Alerter {
    /// Starts the delivery task.
    pub fn start(sns: aws_sdk_sns::Client, kube: kube::Client) -> Alerter {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(deliver(receiver, sns, kube));
        Alerter { sender }
    }

    /// Queues an alert; never blocks.
    pub fn send(&self, alert: Alert) {
        let _ = self.sender.send(Command::Send(alert));
    }

    /// A graceful stop: delivers every alert held back by a cooldown now, and waits for every
    /// delivery in progress to end, or `deadline`.
    pub async fn flush(&self, deadline: Instant) {
        let (done, delivered) = oneshot::channel();
        if self.sender.send(Command::Flush(done)).is_ok()
            && tokio::time::timeout_at(deadline, delivered).await.is_err()
        {
            tracing::warn!("alerts still being delivered when the controller stopped");
        }
    }
}

/// Attempts per delivery before giving up (logged and counted).
pub const ATTEMPTS: u32 = 5;

async fn deliver(
    mut receiver: mpsc::UnboundedReceiver<Command>,
    sns: aws_sdk_sns::Client,
    kube: kube::Client,
) {
    let mut last_sent: HashMap<(String, Channel), Instant> = HashMap::new();
    let mut held: HashMap<(String, Channel), Alert> = HashMap::new();
    let mut deliveries = JoinSet::new();
    let http = Client::builder(TokioExecutor::new()).build(
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build(),
    );
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let mut flushed = None;
        tokio::select! {
            command = receiver.recv() => match command {
                None => return,
                Some(Command::Send(alert)) => hold(&mut held, alert),
                Some(Command::Flush(done)) => {
                    held.values_mut().for_each(|alert| alert.urgent = true);
                    flushed = Some(done);
                }
            },
            _ = tick.tick() => {}
            Some(_) = deliveries.join_next(), if !deliveries.is_empty() => {}
        }
        let now = Instant::now();
        for alert in take_due(&mut held, &last_sent, now) {
            last_sent.insert((alert.budget.clone(), alert.channel.clone()), now);
            let (sns, kube, http) = (sns.clone(), kube.clone(), http.clone());
            deliveries.spawn(async move { deliver_one(&alert, &sns, &kube, &http).await });
        }
        if let Some(done) = flushed {
            while deliveries.join_next().await.is_some() {}
            let _ = done.send(());
        }
    }
}

/// Holds `alert` for delivery, merged into one already waiting for the same channel.
fn hold(held: &mut HashMap<(String, Channel), Alert>, alert: Alert) {
    let key = (alert.budget.clone(), alert.channel.clone());
    match held.get_mut(&key) {
        Some(waiting) => {
            waiting.subject = alert.subject.clone();
            waiting.message = format!("{}\n{}", waiting.message, alert.message);
            waiting.urgent |= alert.urgent;
        }
        None => {
            held.insert(key, alert);
        }
    }
}

/// The held alerts whose cooldown has passed (or that are urgent), removed from `held`.
fn take_due(
    held: &mut HashMap<(String, Channel), Alert>,
    last_sent: &HashMap<(String, Channel), Instant>,
    now: Instant,
) -> Vec<Alert> {
    let due: Vec<_> = held
        .iter()
        .filter(|(key, alert)| {
            alert.urgent
                || last_sent
                    .get(*key)
                    .is_none_or(|t| now.duration_since(*t) >= alert.cooldown)
        })
        .map(|(key, _)| key.clone())
        .collect();
    due.iter().filter_map(|key| held.remove(key)).collect()
}

/// Delivers one alert, retrying up to [`ATTEMPTS`] times.
async fn deliver_one(
    alert: &Alert,
    sns: &aws_sdk_sns::Client,
    kube: &kube::Client,
    http: &Client<Https, Full<Bytes>>,
) {
    for attempt in 1..=ATTEMPTS {
        match send_once(alert, sns, kube, http).await {
            Ok(()) => {
                tracing::info!(budget = alert.budget, channel = ?alert.channel, "alert delivered");
                return;
            }
            Err(e) => {
                tracing::warn!(budget = alert.budget, attempt, error = %e, "alert delivery failed");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
}

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

async fn send_once(
    alert: &Alert,
    sns: &aws_sdk_sns::Client,
    kube: &kube::Client,
    http: &Client<Https, Full<Bytes>>,
) -> Result<(), String> {
    match &alert.channel {
        Channel::Sns(arn) => sns
            .publish()
            .topic_arn(arn)
            .subject(alert.subject.chars().take(100).collect::<String>())
            .message(&alert.message)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{}", aws_sdk_sns::error::DisplayErrorContext(e))),
        Channel::Webhook {
            namespace,
            secret,
            key,
        } => {
            let secrets: Api<Secret> = Api::namespaced(kube.clone(), namespace);
            let found = secrets
                .get(secret)
                .await
                .map_err(|e| format!("secret {namespace}/{secret}: {e}"))?;
            let url = found
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
                .ok_or_else(|| format!("secret {namespace}/{secret} has no key {key}"))?;
            let body = serde_json::json!({
                "text": format!("*{}*\n{}", alert.subject, alert.message),
            })
            .to_string();
            let request = http::Request::post(&url)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| format!("webhook URL in {namespace}/{secret}: {e}"))?;
            let response = tokio::time::timeout(Duration::from_secs(10), http.request(request))
                .await
                .map_err(|_| "webhook timed out".to_owned())?
                .map_err(|e| format!("webhook: {e}"))?;
            let status = response.status();
            let _ = response.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("webhook answered {status}"))
            }
        }
    }
}
