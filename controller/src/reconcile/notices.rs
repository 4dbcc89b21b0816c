//! What a reconcile tells people: every Event's reason and note and every alert's subject and
//! text, built from plain values so that unit tests read them exactly as they go out (the
//! end-to-end tests grep the same texts). [`RefusalGate`] paces the `Throttled` and
//! `Downgraded` Events.

use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_api::budget::{ExtensionStatus, PeriodSummary};
use aigov_ledger::key;
use aigov_ledger::ledger::Account;

use super::validity::{INVALID_SPEC, Unevaluable};
use super::{ACKNOWLEDGED_ANNOTATION, REFUSAL_EVENT_INTERVAL};
use crate::alerts::{Alert, Channel, describe};
use crate::ledger_service::{Notable, Returned};
use crate::outbox::{self, Delivered, DropReason, Failing, Retry};
use aigov_api::budget::PendingAlert;

/// One Event on the budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNotice {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// The Event's reason (`ThresholdCrossed`, `PeriodRolledOver`, ...).
    pub reason: &'static str,
    /// The Event's action; Events that differ in action are never folded into one series.
    pub action: String,
    /// The note people read.
    pub note: String,
}

impl EventNotice {
    fn new(warning: bool, reason: &'static str, note: String) -> EventNotice {
        EventNotice {
            warning,
            reason,
            action: reason.to_owned(),
            note,
        }
    }
}

/// The Events and alerts one reconcile sends, in order.
#[derive(Clone, Debug, Default)]
pub struct Notices {
    /// Events on the budget.
    pub events: Vec<EventNotice>,
    /// Alerts for the alert task (sent only when alerts are enabled).
    pub alerts: Vec<Alert>,
}

/// Where a budget's alerts go and how often.
#[derive(Clone, Debug)]
pub struct Alerting {
    /// `namespace/name`.
    pub key: String,
    /// The budget object's UID and the period's start: what makes an alert's ID unique.
    pub scope: (String, String),
    /// The channels of `spec.alerts`.
    pub channels: Vec<Channel>,
    /// `spec.alerts.cooldown`.
    pub cooldown: Duration,
}

impl Notices {
    /// Adds an Event.
    pub fn event(&mut self, event: EventNotice) {
        self.events.push(event);
    }

    /// Adds one alert per channel; `kind` (`threshold50`, `exhausted`, ...) and `instance`
    /// (what tells two alerts of one kind apart in a period) make its ID.
    pub fn alert(
        &mut self,
        to: &Alerting,
        channels: &[Channel],
        (kind, instance): (&str, &str),
        urgent: bool,
        subject: String,
        message: String,
    ) {
        let (uid, start) = &to.scope;
        self.alerts.extend(channels.iter().map(|channel| Alert {
            id: outbox::alert_id(
                uid,
                &format!("{start}{instance}"),
                kind,
                &channel.to_status(),
            ),
            channel: channel.clone(),
            subject: subject.clone(),
            message: message.clone(),
            urgent,
        }));
    }
}

/// `"spent $x of $y (z%); resets at t"`, the figures most notices end with.
pub fn figures(account: &Account, limit: Usd) -> String {
    let (spent, limit_shown) = Usd::display_pair(account.spent, limit);
    format!(
        "spent {spent} of {limit_shown} ({:.1}%); resets at {}",
        account.spent.percent_of(limit),
        account.window.end
    )
}

/// `PeriodRolledOver`: the finished period's figures and when the new one ends.
pub fn rolled_over(summary: &PeriodSummary, resets: &str) -> EventNotice {
    EventNotice::new(
        false,
        "PeriodRolledOver",
        format!(
            "period {} to {} closed at {} of {} ({} requests, {} refused); the new period runs to {resets}",
            summary.start,
            summary.end,
            summary.spent,
            summary.limit,
            summary.requests,
            summary.throttled_requests
        ),
    )
}

/// `ExtensionGranted`: the amount, the reason and the new effective limit.
pub fn extension_granted(extension: &ExtensionStatus, limit: Usd, figures: &str) -> EventNotice {
    EventNotice::new(
        false,
        "ExtensionGranted",
        format!(
            "limit raised by ${} for this period{} (effective limit {}); {figures}",
            extension.amount,
            extension
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            limit.display()
        ),
    )
}

/// `ThresholdCrossed` (action `Threshold<n>`) and its alert, urgent from 100%.
pub fn threshold_crossed(notices: &mut Notices, to: &Alerting, threshold: u32, figures: &str) {
    let budget = key::describe(&to.key);
    let message = format!("{budget}: {threshold}% threshold crossed: {figures}");
    notices.event(EventNotice {
        warning: false,
        reason: "ThresholdCrossed",
        action: format!("Threshold{threshold}"),
        note: message.clone(),
    });
    notices.alert(
        to,
        &to.channels,
        (&format!("threshold{threshold}"), ""),
        threshold >= 100,
        format!("{budget} at {threshold}%"),
        message,
    );
}

/// The alerts of calls made around the gateway (their Events are among [`refusals`]'), one
/// per principal and model, known by the first call's request ID.
pub fn bypassed(notices: &mut Notices, to: &Alerting, n: &Notable) {
    let budget = key::describe(&to.key);
    for (first, note) in &n.bypasses {
        notices.alert(
            to,
            &to.channels,
            ("bypass", first),
            false,
            format!("{budget}: Bedrock called around the aigov gateway"),
            format!("{budget}: {note}"),
        );
    }
}

/// `BudgetExhausted` and its alert. The 100% threshold's alert says it already, unless the
/// budget is exhausted short of 100% (too little left for another call).
pub fn exhausted(
    notices: &mut Notices,
    to: &Alerting,
    account: &Account,
    thresholds: &[u32],
    figures: &str,
) {
    let budget = key::describe(&to.key);
    let at_limit = account.at_limit();
    let message = if at_limit {
        format!("{budget} reached its limit: {figures}; calls are refused until then")
    } else {
        format!(
            "{budget} is exhausted: {figures}; less than its dearest call ({}) is left, so calls that do not fit are refused until then",
            account.largest_call.display()
        )
    };
    notices.event(EventNotice::new(true, "BudgetExhausted", message.clone()));
    if !(thresholds.contains(&100) && at_limit) {
        // Exhausted again after an extension ran out is another alert: the limit tells them apart.
        let limit = account.limit.to_api_string();
        notices.alert(
            to,
            &to.channels,
            ("exhausted", &format!(" limit {limit}")),
            true,
            format!("{budget} exhausted"),
            message,
        );
    }
}

/// One escalation step that fell due: `Escalated` and an urgent alert to the step's channels.
pub struct Step<'a> {
    /// Its index in `spec.escalation`.
    pub index: usize,
    /// Its `after`, as written.
    pub after: &'a str,
    /// Its channels.
    pub channels: Vec<Channel>,
}

/// `Escalated` and its alert, saying how to acknowledge.
pub fn escalated(notices: &mut Notices, to: &Alerting, step: Step<'_>, name: &str, figures: &str) {
    let budget = key::describe(&to.key);
    let object = match key::parts(&to.key) {
        (Some(namespace), _) => format!("aib -n {namespace} {name}"),
        (None, _) => format!("caib {name}"),
    };
    let message = format!(
        "{budget} has been at its limit for {} without acknowledgement (escalation step {}): {figures}. \
         Acknowledge with: kubectl annotate {object} {ACKNOWLEDGED_ANNOTATION}=<your name>",
        step.after,
        step.index + 1
    );
    notices.event(EventNotice::new(true, "Escalated", message.clone()));
    notices.alert(
        to,
        &step.channels,
        (&format!("escalation{}", step.index + 1), ""),
        true,
        format!("ESCALATION: {budget} exhausted"),
        message,
    );
}

/// `Throttled`, `UnknownModelPriced` and `Downgraded`, for what gateways reported since the
/// last of them.
pub fn refusals(n: &Notable, figures: &str) -> Vec<EventNotice> {
    let mut events = Vec::new();
    if n.refused > 0 {
        events.push(EventNotice::new(
            true,
            "Throttled",
            format!(
                "{} call(s) refused (throttled or over the limit){}; {figures}",
                n.refused,
                n.last_pod
                    .as_deref()
                    .map(|p| format!(", the last from pod {p}"))
                    .unwrap_or_default()
            ),
        ));
    }
    if !n.unknown_models.is_empty() {
        events.push(EventNotice::new(
            true,
            "UnknownModelPriced",
            format!(
                "no catalog entry or AIModelPrice prices {}: charged at the fallback (Claude \
                 Opus 4's rates, the dearest) until an AIModelPrice names it (see: kubectl \
                 aigov prices MODEL); {figures}",
                n.unknown_models.join(", ")
            ),
        ));
    }
    for (_, note) in &n.bypasses {
        events.push(EventNotice::new(
            true,
            "BypassDetected",
            format!("{note}; {figures}"),
        ));
    }
    if n.downgraded > 0 {
        let (from, to) = n.last_downgrade.clone().unwrap_or_default();
        events.push(EventNotice::new(
            true,
            "Downgraded",
            format!(
                "{} call(s) downgraded, the last from {from} to {to}; {figures}",
                n.downgraded
            ),
        ));
    }
    events
}

/// The Warning Event of a budget the controller cannot evaluate (reason `InvalidSpec` or
/// `EvaluationFailed`, as its `Ready` condition): what is wrong, and what it means meanwhile.
pub fn not_ready(key: &str, why: &Unevaluable) -> EventNotice {
    let meanwhile = if why.reason == INVALID_SPEC {
        "until the spec is fixed this budget limits nothing (gateways skip a budget they cannot compile)"
    } else {
        "until then its spend is not counted and its status is not updated"
    };
    EventNotice::new(
        true,
        why.reason,
        format!(
            "{} cannot be evaluated: {}; {meanwhile}",
            key::describe(key),
            why.message
        ),
    )
}

/// `PriceChanged`, one per note queued by [`super::Context::price_changed`].
pub fn price_changed(note: &str) -> EventNotice {
    EventNotice::new(false, "PriceChanged", note.to_owned())
}

/// `HoldingsReturned`: a gateway replica silent past the expiry had its holdings returned.
pub fn holdings_returned(r: &Returned, expiry: Duration) -> EventNotice {
    EventNotice::new(
        false,
        "HoldingsReturned",
        format!(
            "gateway {} was not heard from for {}: the {} it held (its slice and the worst cases of its calls in flight) is returned to the budget (--gateway-expiry {})",
            r.gateway,
            human(r.silent_for),
            r.amount.display(),
            human(expiry)
        ),
    )
}

/// `AlertDeliveryFailing` (Warning): a channel started failing.
pub fn delivery_failing(f: &Failing, retry: Retry) -> EventNotice {
    EventNotice::new(
        true,
        "AlertDeliveryFailing",
        format!(
            "alerts to {} could not be delivered: {}; retried with backoff (at most {} apart) until delivered or {} after each was recorded",
            describe(&f.channel),
            f.error,
            human(retry.max_backoff),
            human(retry.horizon)
        ),
    )
}

/// `AlertDelivered` (Normal): a channel that had failed accepted its alerts.
pub fn delivered_after_failing(alerts: &[&(PendingAlert, Delivered)]) -> Option<EventNotice> {
    let (first, d) = alerts.first()?;
    let attempts = alerts
        .iter()
        .map(|(_, d)| d.attempts)
        .max()
        .unwrap_or(d.attempts);
    Some(EventNotice::new(
        false,
        "AlertDelivered",
        format!(
            "{} alert(s) delivered to {} after {attempts} attempt(s), the first recorded at {}",
            alerts.len(),
            describe(&first.channel),
            first.created_at
        ),
    ))
}

/// `AlertDropped` (Warning): an alert given up undelivered.
pub fn alert_dropped(p: &PendingAlert, reason: DropReason, retry: Retry) -> EventNotice {
    let why = match reason {
        DropReason::Horizon => format!(
            "not delivered within the retry horizon ({}) after {} attempt(s)",
            human(retry.horizon),
            p.attempts
        ),
        DropReason::Overflow => format!(
            "more than {} alerts were pending on this budget (the oldest is dropped)",
            outbox::PENDING_CAP
        ),
    };
    let last = p
        .last_error
        .as_deref()
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default();
    EventNotice::new(
        true,
        "AlertDropped",
        format!(
            "alert {:?} to {} (recorded at {}) dropped: {why}{last}",
            p.subject,
            describe(&p.channel),
            p.created_at
        ),
    )
}

/// The `AlertDeliveryFailing` condition: `(status, reason, message)`.
pub fn delivery_condition(
    failing: &[Failing],
    outbox: Option<&aigov_api::budget::AlertOutbox>,
    retry: Retry,
) -> (bool, &'static str, String) {
    if !failing.is_empty() {
        let channels: Vec<String> = failing
            .iter()
            .map(|f| {
                format!(
                    "{}: {} alert(s) pending since {}, {} attempt(s) failed, last error: {}; next attempt at {}; each dropped {} after it was recorded",
                    describe(&f.channel),
                    f.pending,
                    f.since,
                    f.attempts,
                    f.error,
                    f.next_attempt_at.as_deref().unwrap_or("once due"),
                    human(retry.horizon)
                )
            })
            .collect();
        return (true, "DeliveryFailing", channels.join("; "));
    }
    let pending = outbox.map_or(0, |o| o.pending.len());
    let last = outbox.and_then(|o| o.delivered.first());
    let message = match (pending, last) {
        (0, Some(d)) => format!(
            "every alert delivered, the last to {} at {}",
            describe(&d.channel),
            d.delivered_at
        ),
        (0, None) => "no alert pending".to_owned(),
        (n, _) => format!("{n} alert(s) pending (held by the cooldown or being sent), none failed"),
    };
    (false, "Delivered", message)
}

/// The `AlertDeliveryFailing` reason after alerts were dropped undelivered.
pub const DROPPED: &str = "Dropped";

/// The `AlertDeliveryFailing` condition just after alerts were dropped: False (nothing is
/// failing any more), reason [`DROPPED`], saying so until something is delivered or fails.
pub fn dropped_condition(
    dropped: &[(PendingAlert, DropReason)],
    now: jiff::Timestamp,
) -> (bool, &'static str, String) {
    let channel = dropped
        .last()
        .map(|(p, _)| describe(&p.channel))
        .unwrap_or_default();
    (
        false,
        DROPPED,
        format!(
            "{} alert(s) dropped undelivered at {now}, the last to {channel} (see the AlertDropped Events)",
            dropped.len()
        ),
    )
}

/// A duration as people write it (`24h`, `5m`, `90s`).
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 && s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s >= 60 && s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Paces one budget's `Throttled` and `Downgraded` Events to one of each per
/// [`REFUSAL_EVENT_INTERVAL`]: what gateways report in between accumulates here.
///
/// "Never published" is `None`, not an instant an interval before now: `Instant` cannot go
/// below the monotonic clock's origin, and `Instant::now() - REFUSAL_EVENT_INTERVAL`
/// panicked on a host up for less than a minute.
#[derive(Debug, Default)]
pub struct RefusalGate {
    last_published: Option<Instant>,
    pending: Notable,
}

impl RefusalGate {
    /// Adds what gateways reported.
    pub fn add(&mut self, fresh: Notable) {
        self.pending.add(fresh);
    }

    /// What awaits publishing.
    pub fn pending(&self) -> &Notable {
        &self.pending
    }

    /// How long until the next Events may go out (`None`: at once).
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        let last = self.last_published?;
        let wait = REFUSAL_EVENT_INTERVAL.saturating_sub(now.saturating_duration_since(last));
        (!wait.is_zero()).then_some(wait)
    }

    /// The pending Events went out at `now`.
    pub fn published(&mut self, now: Instant) {
        self.last_published = Some(now);
        self.pending = Notable::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The earliest `Instant` this platform represents, give or take a second: what
    /// `Instant::now()` is on a host that just booted, where the monotonic clock starts.
    fn the_monotonic_clocks_origin() -> Instant {
        let mut at = Instant::now();
        let mut step = Duration::from_secs(1 << 62);
        while step >= Duration::from_secs(1) {
            match at.checked_sub(step) {
                Some(earlier) => at = earlier,
                None => step /= 2,
            }
        }
        at
    }

    #[test]
    fn the_first_refusals_are_published_at_once_even_on_a_host_up_for_seconds() {
        let just_booted = the_monotonic_clocks_origin() + Duration::from_secs(5);
        // What the old code computed for a budget that never published: it panics here.
        assert!(just_booted.checked_sub(REFUSAL_EVENT_INTERVAL).is_none());
        let mut gate = RefusalGate::default();
        gate.add(Notable {
            refused: 1,
            ..Notable::default()
        });
        assert_eq!(gate.wait(just_booted), None);
        gate.published(just_booted);
        assert_eq!(
            gate.wait(just_booted + Duration::from_secs(20)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(gate.wait(just_booted + REFUSAL_EVENT_INTERVAL), None);
        assert!(gate.pending().is_empty());
    }

    #[test]
    fn refusals_unknown_models_bypasses_and_downgrades_are_told_with_the_last_pod_and_models() {
        let events = refusals(
            &Notable {
                refused: 3,
                downgraded: 2,
                last_downgrade: Some(("big".into(), "small".into())),
                last_pod: Some("team/chat-1".into()),
                unknown_models: vec!["acme.frontier-9-v1:0".into()],
                bypasses: vec![("r-1".into(), "1 call(s) made around the gateway".into())],
            },
            "spent $1.00 of $10.00 (10.0%); resets at 2026-12-01T00:00:00Z",
        );
        let notes: Vec<_> = events.iter().map(|e| (e.reason, e.note.as_str())).collect();
        assert_eq!(
            notes,
            [
                (
                    "Throttled",
                    "3 call(s) refused (throttled or over the limit), the last from pod team/chat-1; spent $1.00 of $10.00 (10.0%); resets at 2026-12-01T00:00:00Z"
                ),
                (
                    "UnknownModelPriced",
                    "no catalog entry or AIModelPrice prices acme.frontier-9-v1:0: charged at the fallback (Claude Opus 4's rates, the dearest) until an AIModelPrice names it (see: kubectl aigov prices MODEL); spent $1.00 of $10.00 (10.0%); resets at 2026-12-01T00:00:00Z"
                ),
                (
                    "BypassDetected",
                    "1 call(s) made around the gateway; spent $1.00 of $10.00 (10.0%); resets at 2026-12-01T00:00:00Z"
                ),
                (
                    "Downgraded",
                    "2 call(s) downgraded, the last from big to small; spent $1.00 of $10.00 (10.0%); resets at 2026-12-01T00:00:00Z"
                ),
            ]
        );
        assert!(events.iter().all(|e| e.warning));
    }
}
