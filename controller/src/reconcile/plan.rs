//! The pure half of a reconcile: from the budget object, the ledger's account, the time and
//! what this controller last wrote and published, [`plan`] decides everything: the status, the
//! escalation, the Events and alerts, whether to write now or coalesce, the ledger
//! [`Transition`] to commit once the status is written, and when to come back. No I/O, no
//! clock, no lock: every decision is unit-tested here without a cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use aigov_api::budget::{EscalationStatus, ExtensionStatus, PeriodSummary};
use aigov_api::period::Window;
use aigov_api::{AIBudget, AIBudgetStatus, Usd};
use aigov_ledger::ledger::{Account, RollOver, Transition};
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use super::notices::{self, Alerting, EventNotice, Notices, Step};
use super::validity::Unevaluable;
use super::{ACKNOWLEDGED_ANNOTATION, EXTENSION_ANNOTATION, REFRESH};
use crate::alerts::Channel;
use crate::ledger_service::Notable;
use crate::outbox::{self, DropReason, Outcomes, Retry};
use crate::status::{self, Replicas, StatusInputs, StatusOutcome, summarize};

/// The condition saying whether alerts are being delivered.
pub const ALERT_DELIVERY_FAILING: &str = "AlertDeliveryFailing";
/// Requeues are never shorter than this (a budget due "now" still waits a moment).
pub const MIN_REQUEUE: Duration = Duration::from_millis(20);
/// Margin added to a requeue for a period end or an escalation step, so that the reconcile
/// lands after it rather than a hair before.
const PAST_DUE: Duration = Duration::from_millis(50);

/// The limit in force and the extension that raised it.
#[derive(Clone, Debug, PartialEq)]
pub struct Terms {
    /// The extension in force this period, from the annotation and what status recorded.
    pub extension: Option<ExtensionStatus>,
    /// The extension is new (not yet in status): an `ExtensionGranted` Event is due.
    pub extension_granted: bool,
    /// The effective limit: spec plus extension, plus what was carried into the period.
    pub limit: Usd,
    /// What `spec.rollover` carried into the period (part of `limit`).
    pub rolled_over: Usd,
}

impl Terms {
    /// These terms with `carried` brought into the period by `spec.rollover` ([`carried`]).
    pub fn carrying(self, carried: Usd) -> Terms {
        Terms {
            limit: self.limit + carried,
            rolled_over: carried,
            ..self
        }
    }
}

/// The effective limit of `budget` in the period starting at `window`, given its spec limit.
pub fn terms(budget: &AIBudget, spec_limit: Usd, window: &Window) -> Terms {
    let previous = budget.status.as_ref().and_then(|p| p.extension.as_ref());
    let extension = extension_for(
        budget.annotations().get(EXTENSION_ANNOTATION),
        previous,
        &window.start.to_string(),
    );
    let extra = extension
        .as_ref()
        .and_then(|e| Usd::parse(&e.amount).ok())
        .unwrap_or(Usd::ZERO);
    Terms {
        extension_granted: extension.is_some() && extension.as_ref() != previous,
        extension,
        limit: spec_limit + extra,
        rolled_over: Usd::ZERO,
    }
}

/// What `spec.rollover` carries into the period `window` of a budget whose spec limit is
/// `spec_limit`. The amount is fixed when the period begins, from the exact spend and limit
/// of the period that ended, as the plan's snapshot of the account has them (the ledger
/// commits the rollover only if the account has not moved since); while the period runs,
/// it is the account's, which a new leader restores from `status.rolledOver`. So a change to
/// `spec.rollover` applies from the next period on. Periods that passed with no leader
/// running spent nothing, so each carried everything up to the cap.
pub fn carried(budget: &AIBudget, spec_limit: Usd, window: &Window, ledgered: &Ledgered) -> Usd {
    let account = &ledgered.account;
    let ended = match &ledgered.unopened {
        Some(restored) => {
            let status = budget.status.as_ref();
            match status.and_then(|s| status::status_window(s).map(|w| (s, w))) {
                Some((status, old)) if old.end <= window.start => {
                    let figure = |f: &Option<String>| f.as_deref().and_then(|v| Usd::parse(v).ok());
                    let limit = figure(&status.effective_limit).unwrap_or(spec_limit);
                    (old, limit, figure(&status.spent).unwrap_or(Usd::ZERO))
                }
                _ => return restored.rolled_over,
            }
        }
        None if account.is_for_another_object(object_uid(budget)) => return Usd::ZERO,
        None if account.window == *window => return account.rolled_over,
        None => (account.window.clone(), account.limit, account.spent),
    };
    let Some(rule) = budget.spec.rollover else {
        return Usd::ZERO;
    };
    let (old, limit, spent) = ended;
    let carried = rule.carried(limit, spent, spec_limit);
    if old.end < window.start {
        return rule.carried(spec_limit + carried, Usd::ZERO, spec_limit);
    }
    carried
}

/// A budget's extension this period, from its annotation and what status recorded.
pub fn extension_for(
    annotation: Option<&String>,
    previous: Option<&ExtensionStatus>,
    window_start: &str,
) -> Option<ExtensionStatus> {
    let text = annotation?.trim();
    let (amount, reason) = match text.split_once(char::is_whitespace) {
        Some((a, r)) => (a, Some(r.trim().to_owned())),
        None => (text, None),
    };
    let amount = Usd::parse(amount).ok()?.to_api_string();
    match previous {
        // The same annotation, recorded for an earlier period: it has expired.
        Some(p) if p.amount == amount && p.reason == reason && p.period_start != window_start => {
            None
        }
        Some(p) if p.amount == amount && p.reason == reason => Some(p.clone()),
        _ => Some(ExtensionStatus {
            amount,
            period_start: window_start.to_owned(),
            reason,
        }),
    }
}

/// The budget's account as the ledger held it when the reconcile began (copies: the plan
/// never touches the ledger).
#[derive(Clone, Debug)]
pub struct Ledgered {
    /// The ledger's account; when it has none yet (a leader just elected, a budget just
    /// created), what opening it will create: restored from status, with the records waiting
    /// for it counted ([`aigov_ledger::ledger::Ledger::preview`]).
    pub account: Account,
    /// When the ledger has no account yet: the account restored from status, as
    /// [`Transition::open`] opens it (the waiting records are counted on opening).
    pub unopened: Option<Account>,
    /// The gateway replicas as the ledger last heard from them (for `status.holdings`).
    pub replicas: Replicas,
}

/// What the reconciler remembers of a budget between reconciles, as the plan needs it.
#[derive(Clone, Debug, Default)]
pub struct Recollection {
    /// Since this controller last wrote the status (`None`: never).
    pub since_write: Option<Duration>,
    /// The period start whose `PeriodRolledOver` Event this controller already published
    /// (a rollover whose commit was held back is planned again, but not announced again).
    pub announced_rollover: Option<String>,
    /// Refusals and downgrades not yet told in an Event.
    pub refusals: Notable,
    /// How long until refusal Events may go out again (`None`: now).
    pub refusal_wait: Option<Duration>,
    /// Events queued for the budget from outside its reconciles (`PriceChanged`,
    /// `HoldingsReturned`).
    pub queued_events: Vec<EventNotice>,
    /// What alert deliveries found that the budget's status may not show yet.
    pub alert_outcomes: Outcomes,
}

/// Everything a plan depends on.
#[derive(Clone, Copy, Debug)]
pub struct PlanInputs<'a> {
    /// The AIBudget as the watch cache has it.
    pub budget: &'a AIBudget,
    /// `namespace/name`.
    pub key: &'a str,
    /// The period `now` falls in.
    pub window: &'a Window,
    /// The limit in force.
    pub terms: &'a Terms,
    /// The ledger's account.
    pub ledgered: &'a Ledgered,
    /// Now, by the injectable clock.
    pub now: Timestamp,
    /// What was last written and published.
    pub recollection: &'a Recollection,
    /// `--status-interval`: non-urgent writes at most this often.
    pub status_interval: Duration,
    /// How alerts are retried (`None`: alerts are disabled, nothing is queued).
    pub alerts: Option<Retry>,
}

/// Whether the plan writes the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Now: urgent, or the interval since the last write has passed.
    Now,
    /// Not yet: the status changed inside the interval; the plan's requeue comes back for it.
    Coalesced,
    /// Nothing to write.
    Unchanged,
}

impl Write {
    /// The reconcile's outcome as its span records it.
    pub fn outcome(self) -> &'static str {
        match self {
            Write::Now => "written",
            Write::Coalesced => "coalesced",
            Write::Unchanged => "requeue",
        }
    }
}

/// What one reconcile does, decided.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The status to write.
    pub status: AIBudgetStatus,
    /// The account the status describes (for the metrics).
    pub account: Account,
    /// The forecast the status shows (for the metrics).
    pub forecast: Option<Usd>,
    /// Whether to write it.
    pub write: Write,
    /// The ledger change, committed after the write succeeds (at once without a write);
    /// `persisted` is left empty for the writer to fill with what it wrote.
    pub transition: Transition,
    /// Events and alerts, sent after the write.
    pub notices: Notices,
    /// The finished period's summary, when a period ended (it is in `status.history`).
    pub finished: Option<PeriodSummary>,
    /// The period start whose `PeriodRolledOver` Event `notices` holds.
    pub announces_rollover: Option<String>,
    /// `notices` tells the pending refusals: the gate is reset once they went out.
    pub publishes_refusals: bool,
    /// How many of the queued Events `notices` tells.
    pub queued_events: usize,
    /// When to reconcile again.
    pub requeue: Duration,
    /// `spec.alerts.cooldown`, for the delivery task.
    pub alert_cooldown: Duration,
    /// Alerts the written status drops undelivered, and why (counted once written).
    pub dropped_alerts: Vec<DropReason>,
}

/// Plans one reconcile.
pub fn plan(inputs: &PlanInputs<'_>) -> Plan {
    let budget = inputs.budget;
    let previous = budget.status.as_ref();
    let next = next_account(inputs);
    let escalation = escalate(inputs, &next.account);
    let mut outcome = status::build(StatusInputs {
        spec: &budget.spec,
        generation: budget.metadata.generation,
        previous,
        account: &next.account,
        limit: inputs.terms.limit,
        extension: inputs.terms.extension.clone(),
        escalation: escalation.status.clone(),
        history: history_with(previous, next.finished.as_ref()),
        replicas: &inputs.ledgered.replicas,
        now: inputs.now,
    });
    let announces_rollover = next
        .finished
        .as_ref()
        .map(|s| &s.start)
        .filter(|start| inputs.recollection.announced_rollover.as_ref() != Some(*start))
        .cloned();
    let recollection = inputs.recollection;
    let publishes_refusals =
        !recollection.refusals.is_empty() && recollection.refusal_wait.is_none();
    let mut notices = notices_for(
        inputs,
        &next,
        &outcome,
        &escalation,
        announces_rollover.is_some(),
        publishes_refusals,
    );
    let to = alerting(budget, inputs);
    let dropped_alerts = fold_outbox(inputs, &mut outcome.status, &mut notices, to.cooldown);
    let urgent = outcome.urgent()
        || next.finished.is_some()
        || next.transition.replaces.is_some()
        || inputs.terms.extension_granted
        || !escalation.due.is_empty()
        || previous.is_none()
        || previous.and_then(|p| p.observed_generation) != budget.metadata.generation
        || escalation.status.as_ref() != previous.and_then(|p| p.escalation.as_ref())
        || outcome.status.alerts.as_ref() != previous.and_then(|p| p.alerts.as_ref());
    let (write, requeue) = decide_write(inputs, &outcome, urgent);
    let next_due = escalation
        .next_due
        .into_iter()
        .chain(first_expiry(&outcome.status, inputs.alerts))
        .min();
    let requeue = requeue_for(inputs, &next.account, requeue, next_due);
    Plan {
        forecast: aigov_api::evaluation::forecast(
            next.account.spent,
            &next.account.window,
            inputs.now,
        ),
        status: outcome.status,
        account: next.account,
        write,
        transition: next.transition,
        notices,
        finished: next.finished,
        announces_rollover,
        publishes_refusals,
        queued_events: recollection.queued_events.len(),
        requeue,
        alert_cooldown: to.cooldown,
        dropped_alerts,
    }
}

/// Folds the alert outbox into `status` ([`outbox::advance`]): the alerts this reconcile
/// decided, recorded in the same write as what they tell, and what deliveries reported; its
/// `AlertDeliveryFailing` condition; and the Events of what changed in it (a channel failing,
/// delivered after failing, an alert dropped). Returns why alerts were dropped. With alerts
/// disabled nothing is queued and the outbox stays as it is.
fn fold_outbox(
    inputs: &PlanInputs<'_>,
    status: &mut AIBudgetStatus,
    notices: &mut Notices,
    cooldown: Duration,
) -> Vec<DropReason> {
    let Some(retry) = inputs.alerts else {
        return Vec::new();
    };
    let previous = inputs.budget.status.as_ref();
    let before = previous.and_then(|p| p.alerts.as_ref());
    let outcomes = &inputs.recollection.alert_outcomes;
    let (now, new) = (inputs.now, &notices.alerts);
    let advanced = outbox::advance(before, new, outcomes, now, retry, cooldown);
    let failing = outbox::failing(advanced.outbox.as_ref());
    outbox_events(notices, before, &failing, &advanced, retry);
    if inputs.budget.spec.alerts.is_some() || advanced.outbox.is_some() {
        let told_drop = previously_dropped(previous).filter(|_| advanced.delivered.is_empty());
        let (on, reason, message) = match (failing.is_empty(), advanced.dropped.as_slice()) {
            (true, [_, ..]) => notices::dropped_condition(&advanced.dropped, now),
            // A drop stays told until something is delivered or fails.
            (true, []) if told_drop.is_some() => {
                let message = told_drop.map(|c| c.message.clone()).unwrap_or_default();
                (false, notices::DROPPED, message)
            }
            _ => notices::delivery_condition(&failing, advanced.outbox.as_ref(), retry),
        };
        let generation = inputs.budget.metadata.generation;
        let (type_, previous) = (ALERT_DELIVERY_FAILING, previous);
        let condition = status::condition(previous, type_, on, reason, message, generation, now);
        status.conditions.push(condition);
    }
    status.alerts = advanced.outbox;
    advanced.dropped.iter().map(|(_, r)| *r).collect()
}

/// The Events of what changed in the outbox: a channel that started failing, a channel that
/// had failed and delivered, each alert dropped.
fn outbox_events(
    notices: &mut Notices,
    before: Option<&aigov_api::budget::AlertOutbox>,
    failing: &[outbox::Failing],
    advanced: &outbox::Advanced,
    retry: Retry,
) {
    let was_failing: Vec<String> = outbox::failing(before)
        .iter()
        .map(|f| outbox::channel_key(&f.channel))
        .collect();
    for f in failing {
        if !was_failing.contains(&outbox::channel_key(&f.channel)) {
            notices.event(notices::delivery_failing(f, retry));
        }
    }
    let mut recovered: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for d in advanced.delivered.iter().filter(|(_, d)| d.attempts > 1) {
        let channel = outbox::channel_key(&d.0.channel);
        recovered.entry(channel).or_default().push(d);
    }
    let groups = recovered.values();
    notices
        .events
        .extend(groups.filter_map(|g| notices::delivered_after_failing(g)));
    for (p, reason) in &advanced.dropped {
        notices.event(notices::alert_dropped(p, *reason, retry));
    }
}

/// The `AlertDeliveryFailing` condition of `previous` when it tells of dropped alerts.
fn previously_dropped(
    previous: Option<&AIBudgetStatus>,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    previous?
        .conditions
        .iter()
        .find(|c| c.type_ == ALERT_DELIVERY_FAILING && c.reason == notices::DROPPED)
}

/// When the first pending alert passes the retry horizon (a reconcile then drops it).
fn first_expiry(status: &AIBudgetStatus, retry: Option<Retry>) -> Option<Timestamp> {
    let retry = retry?;
    let pending = &status.alerts.as_ref()?.pending;
    pending
        .iter()
        .filter_map(outbox::created)
        .min()
        .map(|c| outbox::later(c, retry.horizon))
}

/// What a reconcile of a budget the controller cannot evaluate does: `Ready` False saying
/// why, and a Warning Event saying the same, both only when that is news (a new problem or a
/// new generation), so a budget that stays broken is neither rewritten nor re-announced.
#[derive(Clone, Debug)]
pub struct NotReadyPlan {
    /// The status to write: the last one, with `Ready` False.
    pub status: AIBudgetStatus,
    /// [`Write::Now`] when it differs from what the budget shows, else [`Write::Unchanged`].
    pub write: Write,
    /// The Warning Event, when the status is written.
    pub notices: Notices,
    /// When to look again: a fix to the spec arrives through the watch at once; time or a
    /// newer controller may fix the rest, so look again every [`REFRESH`].
    pub requeue: Duration,
}

/// Plans the reconcile of a budget that cannot be evaluated, for `why`.
pub fn plan_not_ready(
    budget: &AIBudget,
    key: &str,
    why: &Unevaluable,
    now: Timestamp,
) -> NotReadyPlan {
    let previous = budget.status.as_ref();
    let status = status::not_ready(
        previous,
        budget.metadata.generation,
        why.reason,
        why.message.clone(),
        now,
    );
    let news = previous != Some(&status);
    let mut out = Notices::default();
    if news {
        out.event(notices::not_ready(key, why));
    }
    NotReadyPlan {
        status,
        write: if news { Write::Now } else { Write::Unchanged },
        notices: out,
        requeue: REFRESH,
    }
}

/// The account after this reconcile, and the ledger change that makes it so.
#[derive(Clone, Debug)]
struct Next {
    account: Account,
    finished: Option<PeriodSummary>,
    transition: Transition,
}

/// Opens the account (from status), rolls it over into the current period, applies the
/// limit: on copies, the ledger's own change left to [`Transition`].
fn next_account(inputs: &PlanInputs<'_>) -> Next {
    let limit = inputs.terms.limit;
    let previous = inputs.budget.status.as_ref();
    if let Some(restored) = &inputs.ledgered.unopened {
        // A status from an earlier period: that period ended while no leader ran.
        let spec_limit = Usd::parse(&inputs.budget.spec.limit).unwrap_or(Usd::ZERO);
        let carrying = |account: &Account| {
            let mut account = account.clone();
            account.limit = limit;
            account.rolled_over = inputs.terms.rolled_over;
            account
        };
        return Next {
            account: carrying(&inputs.ledgered.account),
            finished: previous.and_then(|p| status::ended_while_away(p, inputs.window, spec_limit)),
            transition: Transition {
                open: Some(carrying(restored)),
                replaces: None,
                roll_over: None,
                limit,
                persisted: Vec::new(),
            },
        };
    }
    let uid = object_uid(inputs.budget);
    if inputs.ledgered.account.is_for_another_object(uid) {
        return new_budget(inputs, uid);
    }
    let mut account = inputs.ledgered.account.clone();
    let mut finished = None;
    let mut roll_over = None;
    if account.window != *inputs.window {
        finished = Some(summarize(&account));
        roll_over = Some(RollOver {
            from: account.window.clone(),
            to: inputs.window.clone(),
            version: account.version,
            carried: inputs.terms.rolled_over,
        });
        account.roll_over(inputs.window.clone(), limit, inputs.terms.rolled_over);
    }
    if account.limit != limit {
        account.limit = limit;
        account.version += 1;
    }
    Next {
        account,
        finished,
        transition: Transition {
            open: None,
            replaces: None,
            roll_over,
            limit,
            persisted: Vec::new(),
        },
    }
}

/// The UID of the AIBudget object (empty when not known).
pub fn object_uid(budget: &AIBudget) -> &str {
    budget.metadata.uid.as_deref().unwrap_or_default()
}

/// When the AIBudget object was created.
pub fn object_created(budget: &AIBudget) -> Option<Timestamp> {
    // `creationTimestamp` is whole seconds; k8s-openapi has its own jiff.
    let created = budget.metadata.creation_timestamp.as_ref()?;
    Timestamp::from_second(created.0.as_second()).ok()
}

/// The ledger's account is another object's: the budget was deleted and created again under
/// the same name, and a new object is a new budget. Its account starts at zero, opened from
/// nothing rather than from the object's status: only this leader, which held the old
/// object's account, can have written that status, and a write of the old figures that raced
/// the re-creation must not bring the old spend back. It succeeds the old account's
/// watermarks and holdings ([`Account::succeeding`]); records answered before the object was
/// created are not charged to it ([`Account::for_object`]). As everything else, the ledger
/// replaces the account only once the status showing the new budget is written.
fn new_budget(inputs: &PlanInputs<'_>, uid: &str) -> Next {
    let old = &inputs.ledgered.account;
    let fresh = Account::restore(inputs.window.clone(), inputs.terms.limit, None)
        .for_object(uid, object_created(inputs.budget));
    Next {
        account: fresh.clone().succeeding(old),
        finished: None,
        transition: Transition {
            open: Some(fresh),
            replaces: Some(old.uid.clone()),
            roll_over: None,
            limit: inputs.terms.limit,
            persisted: Vec::new(),
        },
    }
}

/// `status.history` with the finished period first. A period already there (a retry after
/// a rollover whose commit was held back) is replaced by the fresher summary.
fn history_with(
    previous: Option<&AIBudgetStatus>,
    finished: Option<&PeriodSummary>,
) -> Vec<PeriodSummary> {
    let mut history: Vec<PeriodSummary> = previous.map(|p| p.history.clone()).unwrap_or_default();
    if let Some(summary) = finished {
        match history.iter_mut().find(|h| h.start == summary.start) {
            Some(entry) => *entry = summary.clone(),
            None => {
                history.insert(0, summary.clone());
                history.truncate(status::HISTORY_LEN);
            }
        }
    }
    history
}

/// Where escalation stands after this reconcile.
#[derive(Clone, Debug, Default)]
struct Escalation {
    /// For status.
    status: Option<EscalationStatus>,
    /// Steps (indices into `spec.escalation`) that fell due now.
    due: Vec<usize>,
    /// When the next step falls due.
    next_due: Option<Timestamp>,
}

/// Escalation: from the moment spend reaches the limit, each step fires after its delay
/// unless someone acknowledged (the annotation).
fn escalate(inputs: &PlanInputs<'_>, account: &Account) -> Escalation {
    let (budget, now) = (inputs.budget, inputs.now);
    let previous = budget.status.as_ref();
    let exhausted = account.exhausted();
    let window_start = inputs.window.start.to_string();
    let same_period =
        previous.and_then(|p| p.period_start.as_deref()) == Some(window_start.as_str());
    let mut status = previous
        .filter(|_| same_period)
        .and_then(|p| p.escalation.clone());
    if exhausted && status.is_none() {
        status = Some(EscalationStatus {
            limit_reached_at: now.to_string(),
            steps_notified: 0,
            acknowledged_by: None,
        });
    }
    if !exhausted && status.as_ref().is_some_and(|e| e.steps_notified == 0) {
        status = None;
    }
    let mut escalation = Escalation::default();
    if let Some(e) = status.as_mut() {
        if let Some(who) = budget.annotations().get(ACKNOWLEDGED_ANNOTATION) {
            e.acknowledged_by = Some(who.clone());
        }
        let reached_at: Timestamp = e.limit_reached_at.parse().unwrap_or(now);
        let steps = budget.spec.escalation.iter().enumerate();
        for (i, step) in steps.skip(e.steps_notified as usize) {
            if e.acknowledged_by.is_some() {
                break;
            }
            let due = reached_at + step.after.parse::<SignedDuration>().unwrap_or_default();
            if now < due {
                escalation.next_due = Some(due);
                break;
            }
            e.steps_notified = i as u32 + 1;
            escalation.due.push(i);
        }
    }
    escalation.status = status;
    escalation
}

/// Writes at once when urgent, else at most once per status interval (bursts coalesce), and
/// refreshes the forecast every [`REFRESH`] even without usage. Returns the write and the
/// requeue it asks for.
fn decide_write(
    inputs: &PlanInputs<'_>,
    outcome: &StatusOutcome,
    urgent: bool,
) -> (Write, Duration) {
    let previous = inputs.budget.status.as_ref();
    let mut comparable = outcome.status.clone();
    comparable.forecast = None;
    let mut before = previous.cloned().unwrap_or_default();
    before.forecast = None;
    let since_write = inputs.recollection.since_write;
    let interval_passed = since_write.is_none_or(|e| e >= inputs.status_interval);
    let stale = since_write.is_none_or(|e| e >= REFRESH)
        && outcome.status.forecast != previous.and_then(|p| p.forecast.clone());
    let changed = comparable != before;
    if urgent || (changed && interval_passed) || stale {
        (Write::Now, REFRESH)
    } else if changed {
        let wait = inputs
            .status_interval
            .saturating_sub(since_write.unwrap_or_default());
        (Write::Coalesced, wait)
    } else {
        (Write::Unchanged, REFRESH)
    }
}

/// Where `spec.alerts` sends this budget's alerts.
fn alerting(budget: &AIBudget, inputs: &PlanInputs<'_>) -> Alerting {
    let alerts = budget.spec.alerts.as_ref();
    let key = inputs.key;
    let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
    Alerting {
        key: key.to_owned(),
        scope: (
            object_uid(budget).to_owned(),
            inputs.window.start.to_string(),
        ),
        channels: alerts
            .map(|a| {
                Channel::from_parts(
                    namespace,
                    a.sns_topic_arn.as_ref(),
                    a.webhook_secret_ref.as_ref(),
                )
            })
            .unwrap_or_default(),
        cooldown: alerts
            .and_then(|a| a.cooldown.parse::<SignedDuration>().ok())
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or(Duration::from_secs(900)),
    }
}

/// The Events and alerts of this reconcile, in the order they go out.
fn notices_for(
    inputs: &PlanInputs<'_>,
    next: &Next,
    outcome: &StatusOutcome,
    escalation: &Escalation,
    announce_rollover: bool,
    publish_refusals: bool,
) -> Notices {
    let (budget, account, limit) = (inputs.budget, &next.account, inputs.terms.limit);
    let namespace = inputs.key.split_once('/').map_or("", |(ns, _)| ns);
    let figures = notices::figures(account, limit);
    let mut out = Notices::default();
    if let Some(summary) = next.finished.as_ref().filter(|_| announce_rollover) {
        out.event(notices::rolled_over(
            summary,
            &account.window.end.to_string(),
        ));
    }
    if inputs.terms.extension_granted
        && let Some(e) = &inputs.terms.extension
    {
        out.event(notices::extension_granted(e, limit, &figures));
    }
    let to = alerting(budget, inputs);
    for threshold in &outcome.newly_crossed {
        notices::threshold_crossed(&mut out, &to, *threshold, &figures);
    }
    let was_exhausted = budget
        .status
        .as_ref()
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == "BudgetExhausted"))
        .is_some_and(|c| c.status == "True")
        && next.finished.is_none();
    if account.exhausted() && !was_exhausted {
        notices::exhausted(&mut out, &to, account, &budget.spec.thresholds, &figures);
    }
    for &index in &escalation.due {
        let step = &budget.spec.escalation[index];
        let channels = Channel::from_parts(
            namespace,
            step.sns_topic_arn.as_ref(),
            step.webhook_secret_ref.as_ref(),
        );
        let step = Step {
            index,
            after: &step.after,
            channels,
        };
        notices::escalated(&mut out, &to, step, &budget.name_any(), &figures);
    }
    if publish_refusals {
        let refusals = notices::refusals(&inputs.recollection.refusals, &figures);
        out.events.extend(refusals);
        notices::bypassed(&mut out, &to, &inputs.recollection.refusals);
    }
    out.events
        .extend(inputs.recollection.queued_events.iter().cloned());
    out
}

/// The next reconcile: for the coalesced write or the forecast refresh, but no later than the
/// period's end, the next escalation step, or the refusal Events held back.
fn requeue_for(
    inputs: &PlanInputs<'_>,
    account: &Account,
    requeue: Duration,
    next_step_due: Option<Timestamp>,
) -> Duration {
    let now = inputs.now;
    let until_end = Duration::try_from(account.window.end.duration_since(now)).unwrap_or_default();
    let until_step = next_step_due
        .and_then(|d| Duration::try_from(d.duration_since(now)).ok())
        .unwrap_or(REFRESH);
    let refusals = &inputs.recollection;
    let until_refusals = refusals
        .refusal_wait
        .filter(|_| !refusals.refusals.is_empty())
        .unwrap_or(REFRESH);
    requeue
        .min(until_end + PAST_DUE)
        .min(until_step + PAST_DUE)
        .min(until_refusals)
        .max(MIN_REQUEUE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigov_ledger::policy::BudgetPolicy;

    const NOV: &str = "2026-11-01T00:00:00Z";
    const DEC: &str = "2026-12-01T00:00:00Z";

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn budget(spec: &str) -> AIBudget {
        let mut budget = AIBudget::new("chat", serde_yaml::from_str(spec).unwrap());
        budget.metadata.namespace = Some("team".into());
        budget.metadata.generation = Some(1);
        budget
    }

    const ALERTS: &str = "limit: '100'\nalerts:\n  snsTopicArn: arn:aws:sns:us-east-1:123456789012:spend\n  cooldown: 10m\n";

    /// One budget's reconciles over time, the status each wrote fed to the next as the watch
    /// would.
    struct Budget {
        budget: AIBudget,
        account: Account,
        recollection: Recollection,
    }

    impl Budget {
        fn new(spec: &str, spent: &str) -> Budget {
            let budget = budget(spec);
            let policy = BudgetPolicy::from_budget(&budget).unwrap();
            let window = policy.window_at(at("2026-11-15T00:00:00Z")).unwrap();
            let mut account = Account::restore(window, policy.limit, None);
            account.spent = usd(spent);
            Budget {
                budget,
                account,
                recollection: Recollection::default(),
            }
        }

        fn plan(&self, now: &str) -> Plan {
            let policy = BudgetPolicy::from_budget(&self.budget).unwrap();
            let window = policy.window_at(at(now)).unwrap();
            let ledgered = Ledgered {
                account: self.account.clone(),
                unopened: None,
                replicas: Replicas::default(),
            };
            let carried = carried(&self.budget, policy.limit, &window, &ledgered);
            let terms = terms(&self.budget, policy.limit, &window).carrying(carried);
            plan(&PlanInputs {
                budget: &self.budget,
                key: "team/chat",
                window: &window,
                terms: &terms,
                ledgered: &ledgered,
                now: at(now),
                recollection: &self.recollection,
                status_interval: Duration::from_secs(1),
                alerts: Some(Retry::default()),
            })
        }

        /// Plans, and takes the plan's status as written `since` ago.
        fn written(&mut self, now: &str, since: Duration) -> Plan {
            let plan = self.plan(now);
            assert_eq!(plan.write, Write::Now);
            self.budget.status = Some(plan.status.clone());
            self.recollection.since_write = Some(since);
            plan
        }
    }

    fn reasons(plan: &Plan) -> Vec<&'static str> {
        plan.notices.events.iter().map(|e| e.reason).collect()
    }

    #[test]
    fn a_budget_past_its_threshold_plans_one_threshold_event_and_alert() {
        let mut b = Budget::new(ALERTS, "40");
        b.written("2026-11-15T00:00:00Z", Duration::from_secs(5));
        b.account.spent = usd("60");
        let plan = b.plan("2026-11-15T00:00:05Z");
        assert_eq!(plan.write, Write::Now, "a threshold is urgent");
        let [event] = plan.notices.events.as_slice() else {
            panic!("one Event: {:?}", plan.notices.events)
        };
        assert_eq!(
            (event.reason, event.action.as_str(), event.warning),
            ("ThresholdCrossed", "Threshold50", false)
        );
        let note = "AIBudget team/chat: 50% threshold crossed: spent $60.00 of $100.00 (60.0%); resets at 2026-12-01T00:00:00Z";
        assert_eq!(event.note, note);
        let [alert] = plan.notices.alerts.as_slice() else {
            panic!("one alert: {:?}", plan.notices.alerts)
        };
        assert_eq!(
            (alert.subject.as_str(), alert.message.as_str(), alert.urgent),
            ("AIBudget team/chat at 50%", note, false)
        );
        assert_eq!(
            (&alert.channel, plan.alert_cooldown),
            (
                &Channel::Sns("arn:aws:sns:us-east-1:123456789012:spend".into()),
                Duration::from_secs(600)
            )
        );
        assert_eq!(plan.status.thresholds_crossed, [50]);
        let pending = &plan.status.alerts.as_ref().unwrap().pending;
        assert_eq!(
            pending.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            [alert.id.as_str()],
            "the alert is in the outbox of the very status that records the threshold"
        );
        assert!(alert.id.starts_with("threshold50-"));
    }

    /// A budget past 50% whose alert is pending, as written at 00:00:05.
    fn pending_alert() -> (Budget, String) {
        let mut b = Budget::new(ALERTS, "40");
        b.written("2026-11-15T00:00:00Z", Duration::from_secs(5));
        b.account.spent = usd("60");
        let plan = b.written("2026-11-15T00:00:05Z", Duration::from_secs(5));
        let id = plan.status.alerts.unwrap().pending[0].id.clone();
        (b, id)
    }

    fn condition(plan: &Plan) -> (&str, &str, &str) {
        let c = plan
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == ALERT_DELIVERY_FAILING)
            .expect("the condition");
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    #[test]
    fn a_failing_channel_is_a_true_condition_with_one_warning_event_and_its_delivery_turns_it_false()
     {
        let (mut b, id) = pending_alert();
        let failed = |attempts| outbox::Failed {
            attempts,
            at: at("2026-11-15T00:00:06Z"),
            next_at: at("2026-11-15T00:00:08Z"),
            error: "webhook: client error (Connect): tcp connect error: Connection refused".into(),
        };
        b.recollection
            .alert_outcomes
            .failed
            .insert(id.clone(), failed(2));
        let plan = b.written("2026-11-15T00:00:07Z", Duration::from_secs(5));
        assert_eq!(reasons(&plan), ["AlertDeliveryFailing"]);
        let (status, reason, message) = condition(&plan);
        assert_eq!((status, reason), ("True", "DeliveryFailing"));
        assert_eq!(
            message,
            "SNS topic arn:aws:sns:us-east-1:123456789012:spend: 1 alert(s) pending since \
             2026-11-15T00:00:05Z, 2 attempt(s) failed, last error: webhook: client error (Connect): \
             tcp connect error: Connection refused; next attempt at 2026-11-15T00:00:08Z; each dropped 24h after it was recorded"
        );
        b.recollection
            .alert_outcomes
            .failed
            .insert(id.clone(), failed(3));
        let again = b.written("2026-11-15T00:00:09Z", Duration::from_secs(5));
        assert!(
            reasons(&again).is_empty(),
            "one Event while it keeps failing"
        );

        b.recollection.alert_outcomes.delivered.insert(
            id,
            outbox::Delivered {
                at: at("2026-11-15T00:01:00Z"),
                attempts: 4,
            },
        );
        let delivered = b.plan("2026-11-15T00:01:00Z");
        assert_eq!(delivered.write, Write::Now, "a delivery is written at once");
        assert_eq!(reasons(&delivered), ["AlertDelivered"]);
        assert_eq!(
            delivered.notices.events[0].note,
            "1 alert(s) delivered to SNS topic arn:aws:sns:us-east-1:123456789012:spend after 4 attempt(s), the first recorded at 2026-11-15T00:00:05Z"
        );
        assert_eq!(condition(&delivered).0, "False");
        let outbox = delivered.status.alerts.as_ref().unwrap();
        assert!(outbox.pending.is_empty());
        assert_eq!(outbox.delivered[0].attempts, 4);
    }

    #[test]
    fn an_alert_past_the_horizon_is_dropped_with_a_warning_event_and_counted() {
        let (b, _) = pending_alert();
        let plan = b.plan("2026-11-16T00:00:05Z");
        assert_eq!(reasons(&plan), ["AlertDropped"]);
        assert_eq!(plan.dropped_alerts, [DropReason::Horizon]);
        assert!(plan.status.alerts.as_ref().unwrap().pending.is_empty());
        let told = "1 alert(s) dropped undelivered at 2026-11-16T00:00:05Z, the last to SNS topic \
                    arn:aws:sns:us-east-1:123456789012:spend (see the AlertDropped Events)";
        assert_eq!(condition(&plan), ("False", "Dropped", told));
        let mut b = b;
        b.budget.status = Some(plan.status.clone());
        let later = b.plan("2026-11-16T00:10:00Z");
        assert_eq!(condition(&later), ("False", "Dropped", told), "still told");
        assert!(
            plan.notices.events[0]
                .note
                .contains("not delivered within the retry horizon (24h) after 0 attempt(s)")
        );
    }

    #[test]
    fn a_pending_alert_asks_to_be_reconciled_when_its_horizon_passes() {
        let (b, _) = pending_alert();
        let plan = b.plan("2026-11-15T23:59:05Z");
        assert_eq!(plan.requeue, Duration::from_secs(60) + PAST_DUE);
    }

    #[test]
    fn with_alerts_disabled_nothing_is_queued() {
        let mut b = Budget::new(ALERTS, "40");
        b.written("2026-11-15T00:00:00Z", Duration::from_secs(5));
        b.account.spent = usd("60");
        let policy = BudgetPolicy::from_budget(&b.budget).unwrap();
        let now = at("2026-11-15T00:00:05Z");
        let window = policy.window_at(now).unwrap();
        let terms = terms(&b.budget, policy.limit, &window);
        let plan = plan(&PlanInputs {
            budget: &b.budget,
            key: "team/chat",
            window: &window,
            terms: &terms,
            ledgered: &Ledgered {
                account: b.account.clone(),
                unopened: None,
                replicas: Replicas::default(),
            },
            now,
            recollection: &b.recollection,
            status_interval: Duration::from_secs(1),
            alerts: None,
        });
        assert!(
            plan.status
                .alerts
                .as_ref()
                .is_none_or(|a| a.pending.is_empty())
        );
    }

    #[test]
    fn a_write_inside_the_status_interval_is_coalesced_into_a_requeue() {
        let mut b = Budget::new("limit: '100'", "10");
        b.written("2026-11-15T00:00:00Z", Duration::from_millis(300));
        b.account.spent = usd("11");
        b.account.requests = 1;
        let plan = b.plan("2026-11-15T00:00:00.300Z");
        assert_eq!(plan.write, Write::Coalesced);
        assert_eq!(plan.requeue, Duration::from_millis(700));
        assert!(plan.notices.events.is_empty());
        assert!(plan.transition.persisted.is_empty());
    }

    #[test]
    fn a_change_after_the_status_interval_is_written_and_an_unchanged_budget_only_requeues() {
        let mut b = Budget::new("limit: '100'", "10");
        b.written("2026-11-15T00:00:00Z", Duration::from_secs(2));
        assert_eq!(b.plan("2026-11-15T00:00:02Z").write, Write::Unchanged);
        assert_eq!(b.plan("2026-11-15T00:00:02Z").requeue, REFRESH);
        b.account.spent = usd("11");
        assert_eq!(b.plan("2026-11-15T00:00:02Z").write, Write::Now);
    }

    #[test]
    fn a_new_period_plans_the_finished_periods_summary_its_event_and_the_rollover() {
        let mut b = Budget::new("limit: '100'", "42");
        b.account.requests = 3;
        b.written("2026-11-30T23:00:00Z", Duration::from_secs(5));
        let plan = b.plan("2026-12-01T00:00:05Z");
        assert_eq!(plan.write, Write::Now);
        let summary = plan.finished.clone().unwrap();
        assert_eq!(
            (summary.start.as_str(), summary.spent.as_str()),
            (NOV, "42.00")
        );
        assert_eq!(plan.status.history, [summary]);
        assert_eq!(
            (
                plan.status.period_start.as_deref(),
                plan.status.spent.as_deref()
            ),
            (Some(DEC), Some("0.00"))
        );
        assert_eq!(reasons(&plan), ["PeriodRolledOver"]);
        assert_eq!(
            plan.notices.events[0].note,
            "period 2026-11-01T00:00:00Z to 2026-12-01T00:00:00Z closed at 42.00 of 100.00 (3 requests, 0 refused); the new period runs to 2027-01-01T00:00:00Z"
        );
        assert_eq!(plan.announces_rollover.as_deref(), Some(NOV));
        let roll_over = plan.transition.roll_over.unwrap();
        assert_eq!(
            (roll_over.from.start, roll_over.to.start, roll_over.version),
            (at(NOV), at(DEC), b.account.version)
        );
        assert_eq!(
            b.account.window.start,
            at(NOV),
            "the ledger's copy is untouched"
        );
    }

    #[test]
    fn a_rollover_planned_again_after_a_held_back_commit_updates_the_summary_without_a_second_event()
     {
        let mut b = Budget::new("limit: '100'", "42");
        b.written("2026-11-30T23:00:00Z", Duration::from_secs(5));
        b.written("2026-12-01T00:00:05Z", Duration::from_millis(10));
        b.recollection.announced_rollover = Some(NOV.into());
        // Records counted while the first rollover was written.
        b.account.spent = usd("43");
        let plan = b.plan("2026-12-01T00:00:06Z");
        assert!(reasons(&plan).is_empty(), "{:?}", reasons(&plan));
        assert_eq!(plan.status.history.len(), 1);
        assert_eq!(plan.status.history[0].spent, "43.00");
        assert_eq!(plan.write, Write::Now);
    }

    #[test]
    fn an_unopened_budget_whose_status_is_from_an_earlier_period_plans_that_periods_summary() {
        let mut b = Budget::new("limit: '100'", "7");
        b.written("2026-11-20T00:00:00Z", Duration::from_secs(5));
        let budget = b.budget.clone();
        let window = BudgetPolicy::from_budget(&budget)
            .unwrap()
            .window_at(at("2026-12-02T00:00:00Z"))
            .unwrap();
        let restored = Account::restore(window.clone(), usd("100"), budget.status.as_ref());
        let terms = terms(&budget, usd("100"), &window);
        let plan = plan(&PlanInputs {
            budget: &budget,
            key: "team/chat",
            window: &window,
            terms: &terms,
            ledgered: &Ledgered {
                account: restored.clone(),
                unopened: Some(restored),
                replicas: Replicas::default(),
            },
            now: at("2026-12-02T00:00:00Z"),
            recollection: &Recollection::default(),
            status_interval: Duration::from_secs(1),
            alerts: Some(Retry::default()),
        });
        assert_eq!(plan.finished.as_ref().unwrap().spent, "7.00");
        assert_eq!(reasons(&plan), ["PeriodRolledOver"]);
        assert!(plan.transition.open.is_some() && plan.transition.roll_over.is_none());
    }

    const QUARTERLY_BERLIN: &str =
        "limit: '10'\nperiod: Quarterly\ntimeZone: Europe/Berlin\nrollover: {maxPercent: 50}\n";

    #[test]
    fn a_quarterly_budget_in_berlin_rolls_over_at_local_midnight_carrying_the_capped_unused_amount()
    {
        // Q4 2026 in Berlin: 2026-10-01 00:00 CEST to 2027-01-01 00:00 CET (23:00 UTC).
        let mut b = Budget::new(QUARTERLY_BERLIN, "2.5");
        let before = b.plan("2026-12-31T22:59:59Z");
        assert!(before.transition.roll_over.is_none());
        assert_eq!(before.status.rolled_over.as_deref(), Some("0.00"));
        let plan = b.plan("2026-12-31T23:00:00Z");
        let roll_over = plan.transition.roll_over.clone().unwrap();
        // $7.50 unused, capped at 50% of $10.00.
        assert_eq!(
            (roll_over.carried, plan.transition.limit),
            (usd("5"), usd("15"))
        );
        assert_eq!(roll_over.to.start, at("2026-12-31T23:00:00Z"));
        assert_eq!(
            plan.status.period_start.as_deref(),
            Some("2026-12-31T23:00:00Z")
        );
        assert_eq!(
            plan.status.period_end.as_deref(),
            Some("2027-03-31T22:00:00Z")
        );
        assert_eq!(plan.status.rolled_over.as_deref(), Some("5.00"));
        assert_eq!(plan.status.effective_limit.as_deref(), Some("15.00"));
        assert_eq!(plan.finished.as_ref().unwrap().spent, "2.50");

        // The ledger commits it; later reconciles of the period keep the amount.
        let mut ledger = aigov_ledger::ledger::Ledger::default();
        ledger.insert("team/chat".into(), b.account.clone());
        assert!(!ledger.commit("team/chat", plan.transition.clone()).stale);
        b.account = ledger.account("team/chat").unwrap().clone();
        b.budget.status = Some(plan.status.clone());
        let later = b.plan("2027-02-01T00:00:00Z");
        assert_eq!(later.status.rolled_over.as_deref(), Some("5.00"));
        assert_eq!(later.transition.limit, usd("15"));
    }

    #[test]
    fn a_new_leader_keeps_the_carried_amount_from_status_and_carries_from_a_period_that_ended_while_away()
     {
        let budget = {
            let mut b = budget(QUARTERLY_BERLIN);
            b.status = Some(AIBudgetStatus {
                period_start: Some("2026-12-31T23:00:00Z".into()),
                period_end: Some("2027-03-31T22:00:00Z".into()),
                effective_limit: Some("15.00".into()),
                rolled_over: Some("5.00".into()),
                spent: Some("14.000001".into()),
                ..AIBudgetStatus::default()
            });
            b
        };
        let unopened = |now: &str| {
            let window = BudgetPolicy::from_budget(&budget)
                .unwrap()
                .window_at(at(now))
                .unwrap();
            let restored = Account::restore(window.clone(), usd("10"), budget.status.as_ref());
            let ledgered = Ledgered {
                account: restored.clone(),
                unopened: Some(restored),
                replicas: Replicas::default(),
            };
            carried(&budget, usd("10"), &window, &ledgered)
        };
        assert_eq!(
            unopened("2027-03-01T00:00:00Z"),
            usd("5"),
            "the same quarter"
        );
        // Q1 ended while no leader ran: $15.00 in force, $14.000001 spent.
        assert_eq!(unopened("2027-04-02T00:00:00Z"), usd("0.999999"));
        // Two quarters later: the one between spent nothing and carries the cap.
        assert_eq!(unopened("2027-07-02T00:00:00Z"), usd("5"));
    }

    /// The budget "team/chat" deleted with $42.00 spent (its account, of the object "old",
    /// still in the ledger with g1's record 7 counted and g2 holding $5.00 of it) and created
    /// again under the same name as the object "new", whose status is still empty.
    fn created_again() -> Budget {
        let mut b = Budget::new("limit: '100'", "42");
        b.account = b.account.clone().for_object("old", None);
        b.account.requests = 3;
        b.account.applied.insert("g1".into(), 7);
        b.account.held.insert("g2".into(), usd("5.00"));
        b.budget.metadata.uid = Some("new".into());
        let created = at("2026-11-15T00:00:00Z");
        b.budget.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(created.as_second()).unwrap(),
            ));
        b
    }

    #[test]
    fn a_budget_created_again_under_the_same_name_is_planned_as_a_new_budget_from_zero() {
        let b = created_again();
        let plan = b.plan("2026-11-15T00:00:01Z");
        assert_eq!(plan.write, Write::Now);
        assert_eq!(
            (plan.status.spent.as_deref(), plan.status.requests),
            (Some("0.00"), 0)
        );
        assert_eq!(
            plan.status.ledger,
            [aigov_api::budget::LedgerWatermark {
                gateway: "g1".into(),
                sequence: 7
            }],
            "the old budget's records are acknowledged by the new status"
        );
        assert_eq!(plan.account.grantable(), usd("95.00"), "g2's slice is held");
        assert_eq!(plan.transition.replaces.as_deref(), Some("old"));
        let open = plan.transition.open.as_ref().unwrap();
        assert_eq!((open.uid.as_str(), open.spent), ("new", Usd::ZERO));
        assert_eq!(
            open.not_before,
            Some(at("2026-11-14T23:59:59Z")),
            "records answered before the object existed are the old budget's"
        );
        assert!(reasons(&plan).is_empty(), "{:?}", reasons(&plan));
    }

    #[test]
    fn a_write_of_the_old_figures_that_raced_the_re_creation_does_not_bring_the_old_spend_back() {
        let mut b = created_again();
        b.budget.metadata.uid = Some("old".into());
        b.written("2026-11-15T00:00:00Z", Duration::from_millis(10));
        b.budget.metadata.uid = Some("new".into());
        let plan = b.plan("2026-11-15T00:00:00.010Z");
        assert_eq!(plan.write, Write::Now, "a new budget is written at once");
        assert_eq!(
            (plan.status.spent.as_deref(), plan.status.requests),
            (Some("0.00"), 0)
        );
        assert_eq!(plan.transition.replaces.as_deref(), Some("old"));
    }

    #[test]
    fn the_same_object_reconciled_again_keeps_its_account() {
        let mut b = created_again();
        b.budget.metadata.uid = Some("old".into());
        let plan = b.plan("2026-11-15T00:00:01Z");
        assert_eq!(plan.status.spent.as_deref(), Some("42.00"));
        assert!(plan.transition.open.is_none() && plan.transition.replaces.is_none());
    }

    const ESCALATING: &str = "limit: '100'\nalerts:\n  snsTopicArn: arn:aws:sns:us-east-1:123456789012:spend\nescalation:\n- after: 1h\n  snsTopicArn: arn:aws:sns:us-east-1:123456789012:oncall\n- after: 2h1m\n  snsTopicArn: arn:aws:sns:us-east-1:123456789012:lead\n";

    #[test]
    fn an_escalation_step_past_its_delay_plans_one_escalated_event_and_alert() {
        let mut b = Budget::new(ESCALATING, "100");
        let first = b.written("2026-11-15T00:00:00Z", Duration::from_secs(7200));
        assert!(reasons(&first).contains(&"BudgetExhausted"));
        let plan = b.plan("2026-11-15T02:00:00Z");
        assert_eq!(reasons(&plan), ["Escalated"]);
        assert_eq!(
            plan.notices.events[0].note,
            "AIBudget team/chat has been at its limit for 1h without acknowledgement (escalation step 1): \
             spent $100.00 of $100.00 (100.0%); resets at 2026-12-01T00:00:00Z. Acknowledge with: \
             kubectl annotate aib -n team chat aigov.dev/acknowledged=<your name>"
        );
        let [alert] = plan.notices.alerts.as_slice() else {
            panic!("one alert: {:?}", plan.notices.alerts)
        };
        assert_eq!(
            (alert.subject.as_str(), &alert.channel, alert.urgent),
            (
                "ESCALATION: AIBudget team/chat exhausted",
                &Channel::Sns("arn:aws:sns:us-east-1:123456789012:oncall".into()),
                true
            )
        );
        assert_eq!(plan.status.escalation.as_ref().unwrap().steps_notified, 1);
        assert_eq!(plan.write, Write::Now);
        // The second step is due at 02:01: come back just after it.
        assert_eq!(plan.requeue, Duration::from_secs(60) + PAST_DUE);
    }

    #[test]
    fn an_acknowledged_budget_is_not_escalated() {
        let mut b = Budget::new(ESCALATING, "100");
        b.written("2026-11-15T00:00:00Z", Duration::from_secs(7200));
        b.budget
            .annotations_mut()
            .insert(ACKNOWLEDGED_ANNOTATION.into(), "alice".into());
        let plan = b.plan("2026-11-15T02:00:00Z");
        assert!(reasons(&plan).is_empty(), "{:?}", reasons(&plan));
        let escalation = plan.status.escalation.unwrap();
        assert_eq!(
            (
                escalation.acknowledged_by.as_deref(),
                escalation.steps_notified
            ),
            (Some("alice"), 0)
        );
    }

    #[test]
    fn a_budget_exhausted_short_of_its_limit_is_told_so_with_its_dearest_call() {
        let mut b = Budget::new(ALERTS, "99.50");
        b.account.largest_call = usd("1.00");
        b.account.refused_at_limit = Some(usd("100"));
        let plan = b.plan("2026-11-15T00:00:00Z");
        let exhausted = plan
            .notices
            .events
            .iter()
            .find(|e| e.reason == "BudgetExhausted")
            .unwrap();
        let note = "AIBudget team/chat is exhausted: spent $99.50 of $100.00 (99.5%); resets at 2026-12-01T00:00:00Z; less than its dearest call ($1.00) is left, so calls that do not fit are refused until then";
        assert_eq!((exhausted.note.as_str(), exhausted.warning), (note, true));
        assert!(
            plan.notices
                .alerts
                .iter()
                .any(|a| a.subject == "AIBudget team/chat exhausted" && a.urgent),
            "short of 100%, the 100% threshold's alert does not say it"
        );
        let condition = plan
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "BudgetExhausted")
            .unwrap();
        assert_eq!(condition.reason, "HeadroomExhausted");
    }

    #[test]
    fn a_budget_at_its_limit_is_alerted_by_its_100_percent_threshold_alone() {
        let b = Budget::new(ALERTS, "100");
        let plan = b.plan("2026-11-15T00:00:00Z");
        assert_eq!(
            reasons(&plan),
            [
                "ThresholdCrossed",
                "ThresholdCrossed",
                "ThresholdCrossed",
                "BudgetExhausted"
            ]
        );
        let subjects: Vec<_> = plan
            .notices
            .alerts
            .iter()
            .map(|a| (a.subject.as_str(), a.urgent))
            .collect();
        assert_eq!(
            subjects,
            [
                ("AIBudget team/chat at 50%", false),
                ("AIBudget team/chat at 80%", false),
                ("AIBudget team/chat at 100%", true)
            ]
        );
        assert_eq!(
            plan.notices.events[3].note,
            "AIBudget team/chat reached its limit: spent $100.00 of $100.00 (100.0%); resets at 2026-12-01T00:00:00Z; calls are refused until then"
        );
    }

    #[test]
    fn refusals_inside_the_event_interval_wait_for_it_and_then_go_out_together() {
        let mut b = Budget::new("limit: '100'", "10");
        b.written("2026-11-15T00:00:00Z", Duration::from_secs(5));
        b.recollection.refusals = Notable {
            refused: 2,
            last_pod: Some("team/chat-7".into()),
            ..Notable::default()
        };
        b.recollection.refusal_wait = Some(Duration::from_secs(10));
        let waiting = b.plan("2026-11-15T00:00:05Z");
        assert!(reasons(&waiting).is_empty());
        assert!(!waiting.publishes_refusals);
        assert_eq!(waiting.requeue, Duration::from_secs(10));

        b.recollection.refusal_wait = None;
        let due = b.plan("2026-11-15T00:00:15Z");
        assert_eq!(reasons(&due), ["Throttled"]);
        assert!(due.publishes_refusals);
        assert_eq!(
            due.notices.events[0].note,
            "2 call(s) refused (throttled or over the limit), the last from pod team/chat-7; spent $10.00 of $100.00 (10.0%); resets at 2026-12-01T00:00:00Z"
        );
    }

    #[test]
    fn an_extension_raises_the_limit_and_plans_an_extension_granted_event() {
        let mut b = Budget::new("limit: '100'", "10");
        b.written("2026-11-15T00:00:00Z", Duration::from_millis(10));
        b.budget
            .annotations_mut()
            .insert(EXTENSION_ANNOTATION.into(), "50 launch week".into());
        let plan = b.plan("2026-11-15T00:00:00.010Z");
        assert_eq!(plan.write, Write::Now, "an extension is urgent");
        assert_eq!(plan.transition.limit, usd("150"));
        assert_eq!(plan.status.effective_limit.as_deref(), Some("150.00"));
        assert_eq!(reasons(&plan), ["ExtensionGranted"]);
        assert_eq!(
            plan.notices.events[0].note,
            "limit raised by $50.00 for this period (launch week) (effective limit $150.00); spent $10.00 of $150.00 (6.6%); resets at 2026-12-01T00:00:00Z"
        );
    }

    #[test]
    fn queued_events_are_planned_once_each() {
        let mut b = Budget::new("limit: '100'", "10");
        b.written("2026-11-15T00:00:00Z", Duration::from_secs(5));
        b.recollection.queued_events = vec![notices::price_changed("AIModelPrice p now prices m")];
        let plan = b.plan("2026-11-15T00:00:05Z");
        assert_eq!(reasons(&plan), ["PriceChanged"]);
        assert_eq!(plan.notices.events[0].note, "AIModelPrice p now prices m");
        assert_eq!(plan.queued_events, 1);
    }

    #[test]
    fn a_budget_that_cannot_be_evaluated_is_not_ready_and_told_once() {
        let mut b = Budget::new("limit: '100'", "10");
        b.written("2026-11-15T00:00:00Z", Duration::from_secs(5));
        let why = Unevaluable {
            reason: "InvalidSpec",
            message: "spec.timeZone: unknown time zone \"Local\"".into(),
        };
        let now = at("2026-11-15T00:00:05Z");
        let first = plan_not_ready(&b.budget, "team/chat", &why, now);
        assert_eq!(first.write, Write::Now);
        let ready = &first.status.conditions[0];
        assert_eq!(
            (
                ready.type_.as_str(),
                ready.status.as_str(),
                ready.reason.as_str()
            ),
            ("Ready", "False", "InvalidSpec")
        );
        assert_eq!(
            first.status.spent.as_deref(),
            Some("10.00"),
            "the figures stay"
        );
        let [event] = first.notices.events.as_slice() else {
            panic!("one Event: {:?}", first.notices.events)
        };
        assert_eq!((event.reason, event.warning), ("InvalidSpec", true));
        assert_eq!(
            event.note,
            "AIBudget team/chat cannot be evaluated: spec.timeZone: unknown time zone \"Local\"; until the spec is fixed this budget limits nothing (gateways skip a budget they cannot compile)"
        );
        b.budget.status = Some(first.status);
        let again = plan_not_ready(&b.budget, "team/chat", &why, now);
        assert_eq!(again.write, Write::Unchanged);
        assert!(again.notices.events.is_empty(), "told once");
        assert_eq!(again.requeue, REFRESH);
    }

    #[test]
    fn an_extension_lasts_for_the_period_it_was_granted_in() {
        let granted = extension_for(Some(&"50.00 launch".to_owned()), None, NOV).unwrap();
        assert_eq!(
            (granted.amount.as_str(), granted.reason.as_deref()),
            ("50.00", Some("launch"))
        );
        let same = extension_for(Some(&"50.00 launch".to_owned()), Some(&granted), NOV);
        assert_eq!(same.as_ref(), Some(&granted));
        assert_eq!(
            extension_for(Some(&"50.00 launch".to_owned()), Some(&granted), DEC),
            None
        );
        let again = extension_for(Some(&"20 december".to_owned()), Some(&granted), DEC).unwrap();
        assert_eq!(again.period_start, DEC);
        assert_eq!(extension_for(Some(&"lots".to_owned()), None, "x"), None);
    }
}
