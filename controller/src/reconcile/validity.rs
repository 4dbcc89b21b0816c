//! Whether the controller can evaluate a budget, and if not, why, in words that name the field
//! and the fix. The API server refuses what its schema can see; what slips past it (a budget
//! stored before a rule existed, a time zone a newer API server knows and this build does not,
//! a period that cannot be computed) is told here, and becomes `Ready` False with a Warning
//! Event rather than a reconcile that fails in the log every two seconds.

use aigov_api::period::Window;
use aigov_api::{AIBudget, AIBudgetSpec, Usd};
use aigov_ledger::policy::BudgetPolicy;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

/// The `Ready` reason of a budget whose spec the controller cannot use.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// The `Ready` reason of a budget whose spec is usable but whose period cannot be computed now.
pub const EVALUATION_FAILED: &str = "EvaluationFailed";

/// Why a budget cannot be evaluated: the `Ready` condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unevaluable {
    /// [`INVALID_SPEC`] or [`EVALUATION_FAILED`].
    pub reason: &'static str,
    /// What is wrong, naming the field, and how to fix it.
    pub message: String,
}

/// Compiles the budget and finds the period `now` falls in, or says why it cannot.
///
/// A ClusterAIBudget is evaluated as the AIBudget it carries, without a namespace
/// ([`super::cluster::view`]), with the namespaces it selects (`namespaces`); which of them
/// its calls come from is the gateways' business.
pub fn evaluate(
    budget: &AIBudget,
    namespaces: Option<&LabelSelector>,
    now: Timestamp,
) -> Result<(BudgetPolicy, Window), Unevaluable> {
    let invalid = |message| Unevaluable {
        reason: INVALID_SPEC,
        message,
    };
    if let Some(problem) = spec_problem(&budget.spec) {
        return Err(invalid(problem));
    }
    let policy = match budget.metadata.namespace {
        Some(_) => BudgetPolicy::from_budget(budget),
        None => {
            BudgetPolicy::from_cluster_spec(budget.name_any(), &budget.spec, namespaces.cloned())
        }
    }
    .map_err(|e| invalid(format!("the spec cannot be compiled: {e}")))?;
    let window = policy.window_at(now).map_err(|e| Unevaluable {
        reason: EVALUATION_FAILED,
        // No instant in the message: it would change the status on every reconcile.
        message: format!(
            "the current {:?} period cannot be computed in time zone {}: {e}",
            budget.spec.period, budget.spec.time_zone
        ),
    })?;
    Ok((policy, window))
}

/// The first spec field this build cannot use, as `field: what is wrong (the fix)`.
fn spec_problem(spec: &AIBudgetSpec) -> Option<String> {
    if let Err(e) = aigov_api::period::time_zone(&spec.time_zone) {
        return Some(format!("spec.timeZone: {e}"));
    }
    if let Err(e) = Usd::parse(&spec.limit) {
        return Some(format!("spec.limit: {e}"));
    }
    if let Some(month) = spec
        .fiscal_year_start_month
        .filter(|m| !(1..=12).contains(m))
    {
        return Some(format!(
            "spec.fiscalYearStartMonth: {month} is not a month (use 1 for January to 12 for December)"
        ));
    }
    let rules = spec.models.clone().unwrap_or_default();
    let downgrade = spec
        .enforcement
        .as_ref()
        .map(|e| e.downgrade.iter().map(|d| d.from.clone()).collect())
        .unwrap_or_default();
    let lists = [
        ("spec.models.allow", rules.allow),
        ("spec.models.deny", rules.deny),
        ("spec.enforcement.downgrade[].from", downgrade),
    ];
    for (field, patterns) in lists {
        for (i, pattern) in patterns.iter().enumerate() {
            if let Err(e) = aigov_api::pattern::ModelPattern::parse(pattern) {
                return Some(format!("{field} (entry {i}): {e}"));
            }
        }
    }
    let selector = spec.selector.as_ref()?.pod_selector.as_ref()?;
    aigov_api::labels::selector_problem(selector, "spec.selector.podSelector")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(spec: &str) -> AIBudget {
        let mut budget = AIBudget::new("chat", serde_yaml::from_str(spec).unwrap());
        budget.metadata.namespace = Some("team".into());
        budget
    }

    fn why(spec: &str, now: &str) -> Unevaluable {
        evaluate(&budget(spec), None, now.parse().unwrap()).unwrap_err()
    }

    const NOW: &str = "2026-11-15T00:00:00Z";

    #[test]
    fn a_time_zone_this_build_does_not_know_names_the_field_and_the_fix() {
        let why = why("limit: '10'\ntimeZone: Local\n", NOW);
        assert_eq!(why.reason, INVALID_SPEC);
        assert_eq!(
            why.message,
            "spec.timeZone: unknown time zone \"Local\" (use an IANA name such as \"UTC\" or \"Europe/Berlin\")"
        );
    }

    #[test]
    fn a_selector_that_slipped_past_the_api_server_is_named() {
        let spec = "limit: '10'\nselector:\n  podSelector:\n    matchExpressions:\n    - {key: app, operator: Maybe, values: [chat]}\n";
        let why = why(spec, NOW);
        assert_eq!(why.reason, INVALID_SPEC);
        assert!(
            why.message.starts_with(
                "spec.selector.podSelector.matchExpressions[0].operator \"Maybe\" is not a label selector operator"
            ),
            "{}",
            why.message
        );
        let keys = "limit: '10'\nselector:\n  podSelector:\n    matchLabels: {'bad key!': x}\n";
        assert!(why_text(keys).contains("matchLabels key \"bad key!\" is not a label key"));
    }

    fn why_text(spec: &str) -> String {
        why(spec, NOW).message
    }

    #[test]
    fn a_pattern_that_names_no_model_is_named() {
        let why = why("limit: '10'\nmodels: {allow: ['-']}\n", NOW);
        assert_eq!(why.reason, INVALID_SPEC);
        assert!(
            why.message
                .starts_with("spec.models.allow (entry 0): invalid model pattern \"-\""),
            "{}",
            why.message
        );
    }

    #[test]
    fn a_period_that_cannot_be_computed_is_an_evaluation_failure() {
        let why = why("limit: '10'\n", "9999-12-20T00:00:00Z");
        assert_eq!(why.reason, EVALUATION_FAILED);
        assert!(
            why.message
                .starts_with("the current Monthly period cannot be computed in time zone UTC"),
            "{}",
            why.message
        );
        assert!(
            evaluate(
                &budget("limit: '10'\nperiod: Daily\n"),
                None,
                "9999-12-20T00:00:00Z".parse().unwrap()
            )
            .is_ok()
        );
    }

    #[test]
    fn a_valid_budget_evaluates() {
        let spec = "limit: '10'\ntimeZone: America/Argentina/Buenos_Aires\nselector:\n  podSelector:\n    matchLabels: {app.kubernetes.io/name: chat}\n    matchExpressions:\n    - {key: tier, operator: Exists}\n";
        let (policy, window) = evaluate(&budget(spec), None, NOW.parse().unwrap()).unwrap();
        assert_eq!(policy.key, "team/chat");
        assert!(window.contains(NOW.parse().unwrap()));
    }
}
