//! The alert outbox, pure: alerts live in the budget's status (`status.alerts`) from the write
//! that records what they tell until a channel has accepted them, so a failed delivery, a
//! restart or a failover never loses one (see `docs/architecture.md`, "Alerts").
//!
//! The reconciler is the outbox's only writer: it adds the alerts a plan decides in the same
//! status write that records the threshold crossed, and folds in what the delivery task
//! ([`crate::alerts`]) reports ([`Outcomes`]) with [`advance`]. The delivery task only reads
//! the written outbox ([`due`]) and reports. Everything here is a function of its arguments,
//! time included.

use std::collections::BTreeMap;
use std::time::Duration;

use aigov_api::budget::{AlertChannel, AlertOutbox, DeliveredAlert, PendingAlert};
use jiff::{SignedDuration, Timestamp};

use crate::alerts::Alert;

/// Pending alerts a budget's status holds at most; past it the oldest non-urgent one (else
/// the oldest) is dropped, with a Warning Event, so the status stays small.
pub const PENDING_CAP: usize = 32;
/// Delivered alerts remembered at most (their IDs de-duplicate, the newest per channel starts
/// its cooldown).
pub const DELIVERED_KEPT: usize = 20;
/// Delivered alerts are remembered for at least this long (or the cooldown, if longer).
pub const DELIVERED_FOR: Duration = Duration::from_secs(3600);
/// The wait after the first failed attempt; it doubles with each further failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// How long alerts are retried and how far apart, from the controller's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// `--alert-retry-horizon`: an alert not delivered this long after it was recorded is
    /// dropped (Warning Event `AlertDropped`, counted).
    pub horizon: Duration,
    /// `--alert-retry-max-backoff`: the longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            horizon: Duration::from_secs(24 * 3600),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// The wait after `failures` failed attempts: 1s, 2s, 4s, ... capped at `max`.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    FIRST_BACKOFF.saturating_mul(1 << doublings).min(max)
}

/// An alert's ID: what it tells (`threshold50`, `exhausted`, `escalation1`), then a hash of
/// the budget object's UID, the period start, that and the channel. Stable across processes
/// and builds (FNV-1a, not std's hasher), so a new leader recognises what the old one sent.
pub fn alert_id(uid: &str, period_start: &str, kind: &str, channel: &AlertChannel) -> String {
    let channel = channel_key(channel);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [uid, period_start, kind, channel.as_str()] {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{kind}-{hash:016x}")
}

/// A channel as one comparable string (`sns:ARN`, `webhook:SECRET/KEY`).
pub fn channel_key(channel: &AlertChannel) -> String {
    match (&channel.sns_topic_arn, &channel.webhook_secret_ref) {
        (Some(arn), _) => format!("sns:{arn}"),
        (None, Some(r)) => format!("webhook:{}/{}", r.name, r.key),
        (None, None) => "none".to_owned(),
    }
}

/// What the delivery task learnt that the budget's status may not show yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Alerts a channel accepted, by ID.
    pub delivered: BTreeMap<String, Delivered>,
    /// The latest failed attempt, by alert ID.
    pub failed: BTreeMap<String, Failed>,
}

/// An alert a channel accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// When.
    pub at: Timestamp,
    /// Attempts it took, this one included.
    pub attempts: u32,
}

/// A failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    /// Failed attempts so far, this one included.
    pub attempts: u32,
    /// When it failed.
    pub at: Timestamp,
    /// No attempt before this.
    pub next_at: Timestamp,
    /// What the channel said (never a webhook URL).
    pub error: String,
}

impl Outcomes {
    /// Forgets what `observed` (the status as the watch last showed it) already records: it
    /// can only move forward, so what it shows is never lost again. What is older than
    /// `horizon` is forgotten too (an alert dropped meanwhile, a budget gone).
    pub fn prune(&mut self, observed: Option<&AlertOutbox>, now: Timestamp, horizon: Duration) {
        let oldest = earlier(now, horizon);
        let shown = |id: &str| observed.is_some_and(|o| o.delivered.iter().any(|d| d.id == id));
        self.delivered
            .retain(|id, d| !shown(id) && d.at > earlier(now, DELIVERED_FOR.max(horizon)));
        let recorded = |id: &str, attempts: u32| {
            observed.is_some_and(|o| {
                o.pending
                    .iter()
                    .any(|p| p.id == id && p.attempts >= attempts)
                    || o.delivered.iter().any(|d| d.id == id)
            })
        };
        self.failed
            .retain(|id, f| !recorded(id, f.attempts) && f.at > oldest);
    }

    /// True when nothing is to be told.
    pub fn is_empty(&self) -> bool {
        self.delivered.is_empty() && self.failed.is_empty()
    }
}

/// Why an alert was dropped undelivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Not delivered within the retry horizon.
    Horizon,
    /// More than [`PENDING_CAP`] pending.
    Overflow,
}

impl DropReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Horizon => "horizon",
            DropReason::Overflow => "overflow",
        }
    }
}

/// The outbox after a reconcile, and what changed in it that people hear about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Advanced {
    /// The outbox to write (`None` when there never was anything in it).
    pub outbox: Option<AlertOutbox>,
    /// Alerts delivered since the status last showed them pending.
    pub delivered: Vec<(PendingAlert, Delivered)>,
    /// Alerts dropped undelivered.
    pub dropped: Vec<(PendingAlert, DropReason)>,
}

/// The outbox after folding in what the delivery task reported and the alerts this reconcile
/// decided, less what passed the horizon or the cap. An alert whose ID is pending, delivered
/// (in the outbox or in `outcomes`) is not added again, so a reconcile planned again over an
/// older status never queues an alert twice.
pub fn advance(
    previous: Option<&AlertOutbox>,
    new: &[Alert],
    outcomes: &Outcomes,
    now: Timestamp,
    retry: Retry,
    cooldown: Duration,
) -> Advanced {
    let mut outbox = previous.cloned().unwrap_or_default();
    let mut advanced = Advanced::default();
    let (delivered, pending) = std::mem::take(&mut outbox.pending)
        .into_iter()
        .partition::<Vec<_>, _>(|p| outcomes.delivered.contains_key(&p.id));
    outbox.pending = pending;
    for alert in delivered {
        let d = outcomes.delivered[&alert.id].clone();
        outbox.delivered.push(DeliveredAlert {
            id: alert.id.clone(),
            channel: alert.channel.clone(),
            delivered_at: d.at.to_string(),
            attempts: d.attempts,
        });
        advanced.delivered.push((alert, d));
    }
    for p in &mut outbox.pending {
        if let Some(f) = outcomes
            .failed
            .get(&p.id)
            .filter(|f| f.attempts > p.attempts)
        {
            p.attempts = f.attempts;
            p.next_attempt_at = Some(f.next_at.to_string());
            p.last_error = Some(f.error.clone());
        }
    }
    for alert in new {
        let known = outbox.pending.iter().any(|p| p.id == alert.id)
            || outbox.delivered.iter().any(|d| d.id == alert.id)
            || outcomes.delivered.contains_key(&alert.id);
        if !known {
            outbox.pending.push(pending_from(alert, now));
        }
    }
    advanced.dropped = drop_expired_and_excess(&mut outbox.pending, now, retry.horizon);
    keep_recent(&mut outbox.delivered, now, cooldown);
    let empty = outbox == AlertOutbox::default();
    advanced.outbox = (!(empty && previous.is_none())).then_some(outbox);
    advanced
}

/// The pending entry for an alert a reconcile decided.
fn pending_from(alert: &Alert, now: Timestamp) -> PendingAlert {
    PendingAlert {
        id: alert.id.clone(),
        channel: alert.channel.to_status(),
        subject: alert.subject.clone(),
        message: alert.message.clone(),
        urgent: alert.urgent,
        created_at: now.to_string(),
        attempts: 0,
        next_attempt_at: None,
        last_error: None,
    }
}

/// Removes the alerts past the horizon, then the oldest non-urgent ones past the cap.
fn drop_expired_and_excess(
    pending: &mut Vec<PendingAlert>,
    now: Timestamp,
    horizon: Duration,
) -> Vec<(PendingAlert, DropReason)> {
    let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(pending)
        .into_iter()
        .partition(|p| created(p).is_some_and(|c| later(c, horizon) <= now));
    *pending = kept;
    let mut dropped: Vec<_> = expired
        .into_iter()
        .map(|p| (p, DropReason::Horizon))
        .collect();
    while pending.len() > PENDING_CAP {
        let index = pending.iter().position(|p| !p.urgent).unwrap_or(0);
        dropped.push((pending.remove(index), DropReason::Overflow));
    }
    dropped
}

/// Keeps the newest [`DELIVERED_KEPT`] deliveries younger than the cooldown or
/// [`DELIVERED_FOR`], whichever is longer.
fn keep_recent(delivered: &mut Vec<DeliveredAlert>, now: Timestamp, cooldown: Duration) {
    let oldest = earlier(now, DELIVERED_FOR.max(cooldown));
    delivered.sort_by(|a, b| b.delivered_at.cmp(&a.delivered_at));
    delivered.dedup_by(|a, b| a.id == b.id);
    delivered.retain(|d| parse(&d.delivered_at).is_none_or(|t| t > oldest));
    delivered.truncate(DELIVERED_KEPT);
}

/// One delivery to make: a channel's pending alerts merged into one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Where to.
    pub channel: AlertChannel,
    /// The alerts it carries, oldest first.
    pub ids: Vec<String>,
    /// The newest alert's subject.
    pub subject: String,
    /// The alerts' texts, one a line, oldest first.
    pub message: String,
    /// Failed attempts so far, per alert (parallel to `ids`).
    pub attempts: Vec<u32>,
}

/// The deliveries due now: per channel (not in `busy`), every pending alert merged into one
/// message, when the cooldown since the channel's last delivery has passed or one of them is
/// urgent, and the channel's backoff (the latest `nextAttemptAt`) has passed. A fresh urgent
/// alert (never attempted) goes at once, backoff or not: the channel may be back.
pub fn due(
    outbox: &AlertOutbox,
    cooldown: Duration,
    now: Timestamp,
    busy: &[String],
) -> Vec<Batch> {
    let mut channels: BTreeMap<String, Vec<&PendingAlert>> = BTreeMap::new();
    for p in &outbox.pending {
        channels.entry(channel_key(&p.channel)).or_default().push(p);
    }
    channels
        .into_iter()
        .filter(|(key, _)| !busy.contains(key))
        .filter(|(key, alerts)| ready(outbox, key, alerts, cooldown, now))
        .map(|(_, alerts)| Batch {
            channel: alerts[0].channel.clone(),
            ids: alerts.iter().map(|p| p.id.clone()).collect(),
            subject: alerts.last().map(|p| p.subject.clone()).unwrap_or_default(),
            message: alerts
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            attempts: alerts.iter().map(|p| p.attempts).collect(),
        })
        .collect()
}

/// Whether a channel's pending alerts may go now (see [`due`]).
fn ready(
    outbox: &AlertOutbox,
    key: &str,
    alerts: &[&PendingAlert],
    cooldown: Duration,
    now: Timestamp,
) -> bool {
    if alerts.iter().any(|p| p.urgent && p.attempts == 0) {
        return true;
    }
    let backed_off = alerts
        .iter()
        .filter_map(|p| p.next_attempt_at.as_deref().and_then(parse))
        .max()
        .is_none_or(|at| at <= now);
    let last = outbox
        .delivered
        .iter()
        .filter(|d| channel_key(&d.channel) == key)
        .filter_map(|d| parse(&d.delivered_at))
        .max();
    let cooled = last.is_none_or(|t| later(t, cooldown) <= now);
    backed_off && (cooled || alerts.iter().any(|p| p.urgent))
}

/// One channel whose delivery is failing, for the `AlertDeliveryFailing` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failing {
    /// The channel.
    pub channel: AlertChannel,
    /// Its pending alerts.
    pub pending: usize,
    /// The most failed attempts of one of them.
    pub attempts: u32,
    /// When the oldest of them was recorded.
    pub since: String,
    /// The latest error.
    pub error: String,
    /// The next attempt.
    pub next_attempt_at: Option<String>,
}

/// The channels with pending alerts that failed at least once, in channel order.
pub fn failing(outbox: Option<&AlertOutbox>) -> Vec<Failing> {
    let mut channels: BTreeMap<String, Failing> = BTreeMap::new();
    for p in outbox.map(|o| o.pending.as_slice()).unwrap_or_default() {
        let Some(error) = p.last_error.as_ref().filter(|_| p.attempts > 0) else {
            continue;
        };
        let f = channels
            .entry(channel_key(&p.channel))
            .or_insert_with(|| Failing {
                channel: p.channel.clone(),
                pending: 0,
                attempts: 0,
                since: p.created_at.clone(),
                error: error.clone(),
                next_attempt_at: None,
            });
        f.pending += 1;
        if p.attempts >= f.attempts {
            f.attempts = p.attempts;
            f.error = error.clone();
        }
        f.since = f.since.clone().min(p.created_at.clone());
        f.next_attempt_at = f.next_attempt_at.clone().max(p.next_attempt_at.clone());
    }
    channels.into_values().collect()
}

/// When an alert was recorded.
pub fn created(p: &PendingAlert) -> Option<Timestamp> {
    parse(&p.created_at)
}

fn parse(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

/// `at + d`, saturating (a horizon of years must not panic).
pub fn later(at: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// `at - d`, saturating.
fn earlier(at: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| at.checked_sub(d).ok())
        .unwrap_or(Timestamp::MIN)
}

#[cfg(test)]
mod tests;
