//! The status an AIBudget should show, from its ledger account: pure, so every figure and
//! condition is unit-tested without a cluster.

use aigov_api::budget::GatewayHolding;
use aigov_api::budget::{AIBudgetSpec, EscalationStatus, ExtensionStatus, PeriodSummary};
use aigov_api::evaluation::{self, Phase, PhaseInputs};
use aigov_api::period::Window;
use aigov_api::{AIBudgetStatus, Usd};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use aigov_ledger::ledger::Account;
use std::collections::HashMap;
use std::time::Duration;

/// How many finished periods `status.history` keeps.
pub const HISTORY_LEN: usize = 12;

/// Everything the status depends on.
#[derive(Clone, Debug)]
pub struct StatusInputs<'a> {
    /// The spec.
    pub spec: &'a AIBudgetSpec,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The status as it is now (for transition times and thresholds already announced).
    pub previous: Option<&'a AIBudgetStatus>,
    /// The ledger account (a snapshot).
    pub account: &'a Account,
    /// The effective limit.
    pub limit: Usd,
    /// The extension in force, if any.
    pub extension: Option<ExtensionStatus>,
    /// Escalation progress.
    pub escalation: Option<EscalationStatus>,
    /// Finished periods, newest first.
    pub history: Vec<PeriodSummary>,
    /// The gateway replicas as the ledger last heard from them.
    pub replicas: &'a Replicas,
    /// Now.
    pub now: Timestamp,
}

/// What the ledger knows of the gateway replicas holding a budget, for `status.holdings`.
#[derive(Clone, Debug, Default)]
pub struct Replicas {
    /// What their calls in flight reserve of the budget, by replica.
    pub in_flight: HashMap<String, Usd>,
    /// The replicas unheard from for a while
    /// ([`SILENT_AFTER`](crate::ledger_service::SILENT_AFTER)), and for how long.
    pub silent: HashMap<String, Duration>,
    /// `--gateway-expiry`: when a silent replica's holdings are returned.
    pub expiry: Duration,
}

/// The new status and what changed that people should hear about.
#[derive(Clone, Debug)]
pub struct StatusOutcome {
    /// The status to write.
    pub status: AIBudgetStatus,
    /// Thresholds crossed since the last status, ascending.
    pub newly_crossed: Vec<u32>,
    /// The phase before, when it changed.
    pub phase_changed: Option<Option<Phase>>,
}

impl StatusOutcome {
    /// True when the status must be written at once rather than coalesced.
    pub fn urgent(&self) -> bool {
        !self.newly_crossed.is_empty() || self.phase_changed.is_some()
    }
}

/// Computes the status.
pub fn build(inputs: StatusInputs<'_>) -> StatusOutcome {
    let account = inputs.account;
    let limit = inputs.limit;
    let spent = account.spent;
    let escalation = Escalation::of(inputs.escalation.as_ref());
    let action = inputs
        .spec
        .enforcement
        .as_ref()
        .map(|e| e.action)
        .unwrap_or_default();
    let phase = evaluation::phase(PhaseInputs {
        spent,
        limit,
        thresholds: &inputs.spec.thresholds,
        action,
        escalated: escalation.escalated,
        refusing: account.exhausted(),
    });
    let (crossed, newly_crossed) = thresholds(&inputs);
    let previous_phase = inputs.previous.and_then(|p| p.phase);
    let conditions = conditions(&inputs, crossed.last().copied(), escalation);
    let status = AIBudgetStatus {
        observed_generation: inputs.generation,
        phase: Some(phase),
        period_start: Some(account.window.start.to_string()),
        period_end: Some(account.window.end.to_string()),
        effective_limit: Some(limit.to_api_string()),
        rolled_over: (inputs.spec.rollover.is_some() || !account.rolled_over.is_zero())
            .then(|| account.rolled_over.to_api_string()),
        spent: Some(spent.to_api_string()),
        reserved: Some(account.held_total().to_api_string()),
        holdings: holdings(account, inputs.replicas, inputs.now),
        percent_used: Some(format!("{:.1}", spent.percent_of(limit))),
        forecast: evaluation::forecast(spent, &account.window, inputs.now).map(Usd::to_api_string),
        largest_call: (!account.largest_call.is_zero())
            .then(|| account.largest_call.to_api_string()),
        tokens: Some(account.tokens.clone()),
        requests: account.requests,
        throttled_requests: account.throttled,
        recovered: account.recovered.status(),
        bypass: account.bypass.status(),
        top_models: account.top_models(),
        top_workloads: account.top_workloads(),
        top_namespaces: account.top_namespaces(),
        attribution: account.top_attribution(),
        value_limits: account.values.status(),
        conditions,
        history: inputs.history,
        thresholds_crossed: crossed,
        extension: inputs.extension,
        escalation: inputs.escalation,
        ledger: account.watermarks(),
        value_ledger: account.values.ledger(),
        // The reconcile folds its alerts and the deliveries' outcomes in (`outbox::advance`).
        alerts: inputs.previous.and_then(|p| p.alerts.clone()),
    };
    StatusOutcome {
        status,
        newly_crossed,
        phase_changed: (previous_phase != Some(phase)).then_some(previous_phase),
    }
}

/// Where escalation stands, as the phase and the `Escalated` condition see it.
#[derive(Clone, Copy, Debug)]
struct Escalation {
    /// Someone acknowledged the exhausted budget.
    acknowledged: bool,
    /// At least one step was notified and no one acknowledged.
    escalated: bool,
}

impl Escalation {
    fn of(escalation: Option<&EscalationStatus>) -> Escalation {
        let acknowledged = escalation.is_some_and(|e| e.acknowledged_by.is_some());
        Escalation {
            acknowledged,
            escalated: escalation.is_some_and(|e| e.steps_notified > 0 && !acknowledged),
        }
    }
}

/// The thresholds reached this period (ascending, for `status.thresholdsCrossed`) and those
/// among them the previous status had not announced yet. A status from another period
/// announced nothing of this one.
/// Each replica's holding, most first, a silent one with when it was last heard from and
/// when what it holds is returned.
fn holdings(account: &Account, replicas: &Replicas, now: Timestamp) -> Vec<GatewayHolding> {
    let mut held: Vec<(&String, Usd)> = account
        .held
        .iter()
        .filter(|(_, amount)| !amount.is_zero())
        .map(|(gateway, amount)| (gateway, *amount))
        .collect();
    held.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let ago = |d: Duration| now - SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    held.into_iter()
        .map(|(gateway, amount)| {
            let since = replicas.silent.get(gateway).map(|silent_for| {
                // Whole seconds: a status that does not change with every reconcile.
                let since = ago(*silent_for).round(jiff::Unit::Second).unwrap_or(now);
                (
                    since,
                    since + SignedDuration::try_from(replicas.expiry).unwrap_or_default(),
                )
            });
            let in_flight = replicas.in_flight.get(gateway).copied();
            GatewayHolding {
                gateway: gateway.clone(),
                reserved: amount.to_api_string(),
                in_flight: in_flight.unwrap_or(Usd::ZERO).to_api_string(),
                silent_since: since.map(|(s, _)| s.to_string()),
                returns_at: since.map(|(_, r)| r.to_string()),
            }
        })
        .collect()
}

fn thresholds(inputs: &StatusInputs<'_>) -> (Vec<u32>, Vec<u32>) {
    let account = inputs.account;
    let same_period = inputs
        .previous
        .and_then(|p| p.period_start.as_deref())
        .and_then(|s| s.parse::<Timestamp>().ok())
        == Some(account.window.start);
    let announced: Vec<u32> = if same_period {
        inputs
            .previous
            .map(|p| p.thresholds_crossed.clone())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let newly_crossed: Vec<u32> = inputs
        .spec
        .thresholds
        .iter()
        .copied()
        .filter(|t| evaluation::reached(account.spent, inputs.limit, *t))
        .filter(|t| !announced.contains(t))
        .collect();
    let mut crossed = announced;
    crossed.extend(&newly_crossed);
    crossed.sort_unstable();
    crossed.dedup();
    (crossed, newly_crossed)
}

/// The figures every condition message draws on.
struct Figures<'a> {
    inputs: &'a StatusInputs<'a>,
    /// `"spent $x of $y (z%) this period; resets at t"`.
    summary: String,
    resets: String,
    exhausted: bool,
    at_limit: bool,
}

impl Figures<'_> {
    /// A condition whose transition time carries over from the previous status.
    fn condition(&self, type_: &str, status: bool, reason: &str, message: String) -> Condition {
        make_condition(
            self.inputs
                .previous
                .map(|p| p.conditions.as_slice())
                .unwrap_or_default(),
            type_,
            status,
            reason,
            message,
            self.inputs.generation,
            self.inputs.now,
        )
    }
}

/// The conditions, in the order status lists them.
fn conditions(
    inputs: &StatusInputs<'_>,
    highest: Option<u32>,
    escalation: Escalation,
) -> Vec<Condition> {
    let (spent, limit) = (inputs.account.spent, inputs.limit);
    let resets = inputs.account.window.end.to_string();
    let (spent_shown, limit_shown) = Usd::display_pair(spent, limit);
    let figures = Figures {
        inputs,
        summary: format!(
            "spent {spent_shown} of {limit_shown} ({:.1}%) this period; resets at {resets}",
            spent.percent_of(limit)
        ),
        exhausted: inputs.account.exhausted(),
        at_limit: evaluation::reached(spent, limit, 100),
        resets,
    };
    let summary = &figures.summary;
    vec![
        figures.condition(
            "Ready",
            true,
            "Reconciled",
            format!("{summary}; {}", fail_mode_note(inputs.spec)),
        ),
        figures.condition(
            "ThresholdCrossed",
            highest.is_some(),
            &highest.map_or_else(|| "BelowThresholds".to_owned(), |t| format!("Threshold{t}")),
            highest.map_or_else(
                || format!("no threshold reached: {summary}"),
                |t| format!("{t}% threshold reached: {summary}"),
            ),
        ),
        exhausted_condition(&figures),
        throttling_condition(&figures),
        escalated_condition(&figures, escalation),
    ]
}

/// `BudgetExhausted`: at the limit, or too little left for the dearest call.
fn exhausted_condition(f: &Figures<'_>) -> Condition {
    let (account, limit, resets) = (f.inputs.account, f.inputs.limit, &f.resets);
    let (left, largest) =
        Usd::display_pair(limit.saturating_sub(account.spent), account.largest_call);
    let (reason, message) = if f.at_limit {
        (
            "LimitReached",
            format!(
                "the limit is reached: calls are refused until {resets}, or until an extension"
            ),
        )
    } else if f.exhausted {
        (
            "HeadroomExhausted",
            format!(
                "{left} left, less than the dearest call this period ({largest}): calls that do not fit are refused until {resets}, or until an extension"
            ),
        )
    } else {
        ("WithinLimit", format!("{left} left this period"))
    };
    f.condition("BudgetExhausted", f.exhausted, reason, message)
}

/// `Throttling`: refusing everything (exhausted) or rate-limiting past the soft limit.
fn throttling_condition(f: &Figures<'_>) -> Condition {
    let (account, limit) = (f.inputs.account, f.inputs.limit);
    let soft = f
        .inputs
        .spec
        .enforcement
        .as_ref()
        .and_then(|e| e.soft_limit_percent)
        .filter(|p| evaluation::reached(account.spent, limit, *p));
    let (reason, message) = match (f.exhausted, soft) {
        (true, _) => (
            "LimitReached",
            format!(
                "calls are refused until {} ({} refused this period)",
                f.resets, account.throttled
            ),
        ),
        (false, Some(p)) => (
            "SoftLimit",
            format!(
                "past the {p}% soft limit: calls are rate-limited ({} refused this period)",
                account.throttled
            ),
        ),
        (false, None) => ("NotThrottling", "calls are admitted".to_owned()),
    };
    f.condition("Throttling", f.exhausted || soft.is_some(), reason, message)
}

/// `Escalated`: steps notified and not acknowledged.
fn escalated_condition(f: &Figures<'_>, escalation: Escalation) -> Condition {
    let reason = if escalation.escalated {
        "StepNotified"
    } else if escalation.acknowledged {
        "Acknowledged"
    } else {
        "NotEscalated"
    };
    let message = match &f.inputs.escalation {
        Some(e) if escalation.acknowledged => format!(
            "acknowledged by {} after {} escalation step(s)",
            e.acknowledged_by.as_deref().unwrap_or("someone"),
            e.steps_notified
        ),
        Some(e) if e.steps_notified > 0 => format!(
            "{} escalation step(s) notified since the limit was reached at {}; set annotation aigov.dev/acknowledged to stop",
            e.steps_notified, e.limit_reached_at
        ),
        _ => "no escalation".to_owned(),
    };
    f.condition("Escalated", escalation.escalated, reason, message)
}

/// What gateways do for this budget if they lose the controller, said where people look.
fn fail_mode_note(spec: &AIBudgetSpec) -> &'static str {
    match spec
        .enforcement
        .as_ref()
        .map(|e| e.fail_mode)
        .unwrap_or_default()
    {
        aigov_api::budget::FailMode::Closed => {
            "failMode Closed: without the controller, gateways spend only the slices they hold"
        }
        aigov_api::budget::FailMode::Open => {
            "failMode Open: without the controller, gateways keep admitting and report later (the limit may be passed)"
        }
    }
}

/// The status of a budget the controller cannot evaluate: what it last showed (the figures
/// and `ledger` of the last good evaluation stay, so nothing counted is forgotten), with
/// `Ready` False saying why, for `generation`.
pub fn not_ready(
    previous: Option<&AIBudgetStatus>,
    generation: Option<i64>,
    reason: &str,
    message: String,
    now: Timestamp,
) -> AIBudgetStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let ready = make_condition(
        &status.conditions,
        "Ready",
        false,
        reason,
        message,
        generation,
        now,
    );
    status.conditions.retain(|c| c.type_ != "Ready");
    status.conditions.insert(0, ready);
    status.observed_generation = generation;
    status
}

/// A condition beside those [`build`] makes (`AlertDeliveryFailing`), its transition time
/// carried over from `previous` as theirs.
pub fn condition(
    previous: Option<&AIBudgetStatus>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let conditions = previous
        .map(|p| p.conditions.as_slice())
        .unwrap_or_default();
    make_condition(conditions, type_, status, reason, message, generation, now)
}

/// A condition whose `lastTransitionTime` moves only when its status does (any kind's
/// conditions: the AIBudgetTemplate controller's too).
pub fn make_condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_owned();
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(aigov_ledger::clock::k8s_timestamp(now)), |c| {
            c.last_transition_time.clone()
        });
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The summary of a finished period, for `status.history`.
pub fn summarize(account: &Account) -> PeriodSummary {
    PeriodSummary {
        start: account.window.start.to_string(),
        end: account.window.end.to_string(),
        spent: account.spent.to_api_string(),
        limit: account.limit.to_api_string(),
        requests: account.requests,
        throttled_requests: account.throttled,
        top_models: account.top_models(),
        top_workloads: account.top_workloads(),
        attribution: account
            .attribution
            .top(aigov_ledger::attribution::HISTORY_VALUES),
    }
}

/// The summary of the period a status was written in, when that period is over by `current`
/// (it ended while no leader ran); `spec_limit` stands in for a status without a limit.
pub fn ended_while_away(
    status: &AIBudgetStatus,
    current: &Window,
    spec_limit: Usd,
) -> Option<PeriodSummary> {
    let old = status_window(status).filter(|old| old.start != current.start)?;
    let limit = status
        .effective_limit
        .as_deref()
        .and_then(|l| Usd::parse(l).ok())
        .unwrap_or(spec_limit);
    Some(summarize(&Account::restore(old, limit, Some(status))))
}

/// The window a status was written for, if it says.
pub fn status_window(status: &AIBudgetStatus) -> Option<Window> {
    Some(Window {
        start: status.period_start.as_deref()?.parse().ok()?,
        end: status.period_end.as_deref()?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigov_api::period::{Period, time_zone};

    fn spec() -> AIBudgetSpec {
        serde_yaml::from_str("limit: '100'\nthresholds: [50, 80, 100]\n").unwrap()
    }

    fn account(spent: &str) -> Account {
        let window = Period::Monthly
            .window_at(
                "2026-11-10T00:00:00Z".parse().unwrap(),
                &time_zone("UTC").unwrap(),
            )
            .unwrap();
        let mut a = Account::restore(window, Usd::parse("100").unwrap(), None);
        a.spent = Usd::parse(spent).unwrap();
        a
    }

    fn build_for<'a>(
        spec: &'a AIBudgetSpec,
        account: &'a Account,
        previous: Option<&'a AIBudgetStatus>,
        now: &str,
    ) -> StatusOutcome {
        build(StatusInputs {
            spec,
            generation: Some(3),
            previous,
            account,
            limit: account.limit,
            extension: None,
            escalation: None,
            history: Vec::new(),
            replicas: &Replicas::default(),
            now: now.parse().unwrap(),
        })
    }

    fn condition<'a>(status: &'a AIBudgetStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn a_period_that_ended_while_no_leader_ran_is_summarised_from_its_status() {
        let old = AIBudgetStatus {
            period_start: Some("2026-10-01T00:00:00Z".into()),
            period_end: Some("2026-11-01T00:00:00Z".into()),
            spent: Some("12.345678".into()),
            effective_limit: Some("150.00".into()),
            requests: 7,
            throttled_requests: 2,
            top_models: vec![aigov_api::budget::ModelSpend {
                model: "m".into(),
                spent: "12.345678".into(),
                requests: 5,
            }],
            top_workloads: vec![aigov_api::budget::WorkloadSpend {
                workload: "chat".into(),
                spent: "12.345678".into(),
                requests: 7,
                throttled_requests: 2,
            }],
            ..Default::default()
        };
        let current = account("0").window;
        let summary = ended_while_away(&old, &current, Usd::parse("100").unwrap()).unwrap();
        assert_eq!(
            (summary.start.as_str(), summary.end.as_str()),
            ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
        );
        assert_eq!(
            (summary.spent.as_str(), summary.limit.as_str()),
            ("12.345678", "150.00")
        );
        assert_eq!((summary.requests, summary.throttled_requests), (7, 2));
        assert_eq!(summary.top_models, old.top_models);
        assert_eq!(summary.top_workloads, old.top_workloads);

        let without_limit = AIBudgetStatus {
            effective_limit: None,
            ..old.clone()
        };
        let summary = ended_while_away(&without_limit, &current, Usd::parse("100").unwrap());
        assert_eq!(
            summary.unwrap().limit,
            "100.00",
            "the spec's limit stands in"
        );
        let this_period = AIBudgetStatus {
            period_start: Some(current.start.to_string()),
            period_end: Some(current.end.to_string()),
            ..old
        };
        assert!(ended_while_away(&this_period, &current, Usd::parse("100").unwrap()).is_none());
    }

    #[test]
    fn crossing_eighty_percent_is_announced_once_and_the_phase_is_warning() {
        let spec = spec();
        let a = account("85");
        let first = build_for(&spec, &a, None, "2026-11-15T00:00:00Z");
        assert_eq!(first.newly_crossed, vec![50, 80]);
        assert_eq!(first.status.phase, Some(Phase::Warning));
        assert_eq!(first.status.percent_used.as_deref(), Some("85.0"));
        let second = build_for(&spec, &a, Some(&first.status), "2026-11-15T00:01:00Z");
        assert!(second.newly_crossed.is_empty());
        assert!(!second.urgent());
        assert_eq!(
            condition(&second.status, "ThresholdCrossed").reason,
            "Threshold80"
        );
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_changes() {
        let spec = spec();
        let below = account("10");
        let first = build_for(&spec, &below, None, "2026-11-15T00:00:00Z");
        let later = build_for(&spec, &below, Some(&first.status), "2026-11-16T00:00:00Z");
        assert_eq!(
            condition(&later.status, "BudgetExhausted").last_transition_time,
            condition(&first.status, "BudgetExhausted").last_transition_time
        );
        let spent = account("100");
        let exhausted = build_for(&spec, &spent, Some(&later.status), "2026-11-17T00:00:00Z");
        let c = condition(&exhausted.status, "BudgetExhausted");
        assert_eq!(
            (
                c.status.as_str(),
                aigov_ledger::clock::from_k8s_timestamp(c.last_transition_time.0)
                    .to_string()
                    .as_str()
            ),
            ("True", "2026-11-17T00:00:00Z")
        );
        assert_eq!(exhausted.status.phase, Some(Phase::Throttled));
        assert_eq!(exhausted.phase_changed, Some(Some(Phase::Active)));
        assert_eq!(c.observed_generation, Some(3));
    }

    #[test]
    fn a_new_period_announces_thresholds_again() {
        let spec = spec();
        let a = account("60");
        let mut previous = build_for(&spec, &a, None, "2026-11-15T00:00:00Z").status;
        previous.period_start = Some("2026-10-01T00:00:00Z".into());
        let next = build_for(&spec, &a, Some(&previous), "2026-11-15T00:00:00Z");
        assert_eq!(next.newly_crossed, vec![50]);
    }

    #[test]
    fn a_budget_that_cannot_be_evaluated_keeps_its_figures_and_is_not_ready() {
        let spec = spec();
        let good = build_for(&spec, &account("10"), None, "2026-11-15T00:00:00Z").status;
        let now = "2026-11-15T00:01:00Z".parse().unwrap();
        let status = not_ready(Some(&good), Some(4), "InvalidSpec", "why".into(), now);
        let ready = condition(&status, "Ready");
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_str(),
                ready.message.as_str()
            ),
            ("False", "InvalidSpec", "why")
        );
        assert_eq!(status.observed_generation, Some(4));
        assert_eq!(status.spent, good.spent);
        assert_eq!(status.conditions.len(), good.conditions.len());
        let again = not_ready(Some(&status), Some(4), "InvalidSpec", "why".into(), now);
        assert_eq!(again, status, "the same problem is the same status");
        let fresh = not_ready(None, Some(1), "EvaluationFailed", "w".into(), now);
        assert_eq!(fresh.conditions.len(), 1);
    }

    #[test]
    fn holdings_list_each_gateway_most_first_and_mark_a_silent_one_with_when_it_returns() {
        let spec = spec();
        let mut a = account("1");
        a.held.insert("gw-b".into(), Usd::parse("0.10").unwrap());
        a.held.insert("gw-a".into(), Usd::parse("0.30").unwrap());
        a.held.insert("gw-idle".into(), Usd::ZERO);
        let replicas = Replicas {
            in_flight: [("gw-b".to_owned(), Usd::parse("0.06").unwrap())].into(),
            silent: [("gw-a".to_owned(), Duration::from_millis(4_200))].into(),
            expiry: Duration::from_secs(90),
        };
        let outcome = build(StatusInputs {
            spec: &spec,
            generation: None,
            previous: None,
            account: &a,
            limit: a.limit,
            extension: None,
            escalation: None,
            history: Vec::new(),
            replicas: &replicas,
            now: "2026-11-15T01:00:10Z".parse().unwrap(),
        });
        let status = outcome.status;
        assert_eq!(status.reserved.as_deref(), Some("0.40"));
        let shown: Vec<_> = status
            .holdings
            .iter()
            .map(|h| {
                (
                    h.gateway.as_str(),
                    h.reserved.as_str(),
                    h.in_flight.as_str(),
                    h.silent_since.as_deref(),
                    h.returns_at.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "gw-a",
                    "0.30",
                    "0.00",
                    Some("2026-11-15T01:00:06Z"),
                    Some("2026-11-15T01:01:36Z")
                ),
                ("gw-b", "0.10", "0.06", None, None),
            ]
        );
    }

    #[test]
    fn escalation_notified_and_unacknowledged_is_the_escalated_phase() {
        let spec = spec();
        let a = account("100");
        let outcome = build(StatusInputs {
            spec: &spec,
            generation: None,
            previous: None,
            account: &a,
            limit: a.limit,
            extension: None,
            escalation: Some(EscalationStatus {
                limit_reached_at: "2026-11-15T00:00:00Z".into(),
                steps_notified: 1,
                acknowledged_by: None,
            }),
            history: Vec::new(),
            replicas: &Replicas::default(),
            now: "2026-11-15T01:00:00Z".parse().unwrap(),
        });
        assert_eq!(outcome.status.phase, Some(Phase::Escalated));
        assert_eq!(condition(&outcome.status, "Escalated").status, "True");
    }
}
