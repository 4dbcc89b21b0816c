//! Whether a call may go to Bedrock, and on which model: every AIBudget that selects the
//! caller must admit it. Pure decisions; the reservation against slices follows in the
//! request handler.

use aigov_api::Usd;
use aigov_api::catalog::ModelFamily;
use aigov_api::model::{ResolvedModel, resolve};
use serde_json::Value;

use aigov_ledger::policy::{BudgetPolicy, ModelVerdict};
use aigov_ledger::proto::Refusal;

use crate::route::{Metering, Operation};

/// A budget and its latest figures.
#[derive(Clone, Debug)]
pub struct BudgetState<'a> {
    /// The compiled budget.
    pub policy: &'a BudgetPolicy,
    /// Settled spend (the controller's latest figure).
    pub spent: Usd,
    /// The effective limit.
    pub limit: Usd,
    /// When the period resets (RFC 3339), if known.
    pub resets: Option<String>,
    /// This replica's share of the budget's soft-limit rate ([`aigov_ledger::rates`]): the
    /// whole rate until the controller's figures arrive.
    pub rate_share: f64,
    /// What calls in flight reserve on every replica (zero until the figures arrive).
    pub in_flight: Usd,
    /// For a per-value limit (`spec.limitPerValue`): the value this state is of; its figures
    /// (spent, limit, in flight) are the value's, not the budget's.
    pub value: Option<LimitedValue>,
}

/// One value of a request-metadata key that a budget limits per value, as a call carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitedValue {
    /// The metadata key.
    pub key: String,
    /// The call's value of it.
    pub value: String,
    /// The value's account in the slice protocol ([`aigov_ledger::value_limits::value_key`]).
    pub account: String,
}

impl BudgetState<'_> {
    fn resets_text(&self) -> String {
        self.resets.as_deref().map_or_else(
            || "at the end of the period".to_owned(),
            |r| format!("at {r}"),
        )
    }

    /// The account reserved on: the budget's, or its value's.
    pub fn account(&self) -> &str {
        self.value
            .as_ref()
            .map_or(&self.policy.key, |v| v.account.as_str())
    }

    /// Who has a limit, as a refusal names it, with its level: `AIBudget ns/name`,
    /// `ClusterAIBudget name`, or `user u-1 in AIBudget ns/name` for a value.
    fn subject(&self) -> String {
        match &self.value {
            None => self.policy.describe(),
            Some(v) => format!("{} {} in {}", v.key, v.value, self.policy.describe()),
        }
    }

    /// `its $1.00 limit`, or `its $1.00 daily limit` for a value's.
    fn its_limit(&self, limit: &str) -> String {
        match &self.value {
            None => format!("its {limit} limit"),
            Some(_) => format!(
                "its {limit} {} limit",
                period_adjective(self.policy.period())
            ),
        }
    }
}

fn period_adjective(period: aigov_api::period::Period) -> &'static str {
    use aigov_api::period::Period;
    match period {
        Period::Daily => "daily",
        Period::Weekly => "weekly",
        Period::Monthly => "monthly",
        Period::Quarterly => "quarterly",
        Period::Yearly => "yearly",
        Period::Credit => "prepaid",
    }
}

/// Refuses a call that lacks a request-metadata key a budget requires
/// (`spec.attribution.require`), on the operations that carry metadata (Converse,
/// ConverseStream, InvokeModel, InvokeModelWithResponseStream); others cannot carry it.
pub fn require_keys(
    states: &[BudgetState<'_>],
    operation: Operation,
    metadata: Option<&aigov_api::request_metadata::RequestMetadata>,
) -> Result<(), Refused> {
    if !crate::metadata::carries_metadata(operation) {
        return Ok(());
    }
    for state in states {
        for key in &state.policy.required_keys {
            if metadata.is_none_or(|m| !m.contains_key(key)) {
                return Err(Refused {
                    kind: Refusal::MetadataMissing,
                    budget: state.policy.key.clone(),
                    message: format!(
                        "1 validation error detected: Value at 'requestMetadata' failed to satisfy constraint: \
                         {} requires the key '{key}' (spec.attribution.require); \
                         add it to requestMetadata (or the X-Amzn-Bedrock-Request-Metadata header)",
                        state.policy.describe()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Refuses a call whose value of a per-value-limited key has spent its limit.
pub fn check_values(values: &[BudgetState<'_>]) -> Result<(), Refused> {
    values.iter().try_for_each(exhausted)
}

/// A refusal: why, which budget, and a message for the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct Refused {
    /// The kind, as the ledger records it.
    pub kind: Refusal,
    /// `namespace/name` of the budget that refused.
    pub budget: String,
    /// What the caller reads.
    pub message: String,
}

/// What to call.
#[derive(Clone, Debug, PartialEq)]
pub struct Admitted {
    /// The model to call and bill (after any downgrade).
    pub model: String,
    /// The model asked for, when downgraded.
    pub downgraded_from: Option<String>,
    /// The budget whose rule downgraded it.
    pub downgraded_by: Option<String>,
}

impl Admitted {
    /// The outcome label of the call once forwarded: `downgraded` or `forwarded`.
    pub fn outcome(&self) -> &'static str {
        if self.downgraded_from.is_some() {
            "downgraded"
        } else {
            "forwarded"
        }
    }
}

/// Checks model rules, applies a downgrade, and refuses when a budget is spent.
pub fn decide(
    states: &[BudgetState<'_>],
    operation: Operation,
    requested: &str,
) -> Result<Admitted, Refused> {
    let asked = resolve(requested);
    // A guardrail is no model: model rules do not apply to it.
    let on_model = operation.metering() != Metering::GuardrailUnits;
    if on_model {
        check_models(states, &asked)?;
    }
    // A downgrade rewrites the model in the path: mantle's model is in the body, and an async
    // job's output is not priced by the token.
    let downgradable = operation.path_suffix().is_some();
    let mut admitted = Admitted {
        model: requested.to_owned(),
        downgraded_from: None,
        downgraded_by: None,
    };
    for state in states {
        let target = match downgradable {
            true => state
                .policy
                .downgrade_target(&asked, state.spent, state.limit),
            false => None,
        };
        let Some(target) = target else {
            continue;
        };
        let cheaper = resolve(target);
        if operation.is_converse() || same_family(&asked, &cheaper) {
            check_models(states, &cheaper)?;
            admitted = Admitted {
                model: target.to_owned(),
                downgraded_from: Some(requested.to_owned()),
                downgraded_by: Some(state.policy.key.clone()),
            };
            break;
        }
    }
    states.iter().try_for_each(exhausted)?;
    Ok(admitted)
}

/// The refusal of a budget (or a value) whose spend has reached its limit.
fn exhausted(state: &BudgetState<'_>) -> Result<(), Refused> {
    if !aigov_api::evaluation::reached(state.spent, state.limit, 100) {
        return Ok(());
    }
    let (spent, limit) = Usd::display_pair(state.spent, state.limit);
    let remedy = match state.value {
        None => "Ask its owner for an extension (annotation aigov.dev/extension) to continue.",
        Some(_) => "Ask the budget's owner to raise spec.limitPerValue to continue.",
    };
    Err(Refused {
        kind: Refusal::Exhausted,
        budget: state.policy.key.clone(),
        message: format!(
            "{} has spent {spent} of {} for this period; it resets {}. {remedy}",
            state.subject(),
            state.its_limit(&limit),
            state.resets_text()
        ),
    })
}

fn check_models(states: &[BudgetState<'_>], model: &ResolvedModel) -> Result<(), Refused> {
    for state in states {
        let why = match state.policy.model_verdict(model) {
            ModelVerdict::Allowed => continue,
            ModelVerdict::Denied(pattern) => format!("denied by models.deny pattern {pattern:?}"),
            ModelVerdict::NotAllowed => "not in models.allow".to_owned(),
        };
        return Err(Refused {
            kind: Refusal::ModelForbidden,
            budget: state.policy.key.clone(),
            message: format!(
                "model {} is not allowed by {} ({why})",
                model.requested,
                state.policy.describe()
            ),
        });
    }
    Ok(())
}

/// InvokeModel bodies are model-native: a downgrade must stay within one body family.
fn same_family(a: &ResolvedModel, b: &ResolvedModel) -> bool {
    match (a.catalog, b.catalog) {
        (Some(x), Some(y)) => x.family == y.family,
        _ => false,
    }
}

/// The refusal for a reservation that did not fit: a 403 when the worst case can never fit in
/// what remains this period, else a 429 (headroom is held by calls in flight or by other
/// replicas, and frees up).
pub fn shortfall(state: &BudgetState<'_>, worst: Usd) -> Refused {
    let remaining = state.limit.saturating_sub(state.spent);
    if remaining < worst {
        let (left, could) = Usd::display_pair(remaining, worst);
        let (spent, limit) = Usd::display_pair(state.spent, state.limit);
        Refused {
            kind: Refusal::Exhausted,
            budget: state.policy.key.clone(),
            message: format!(
                "{} has {left} left of {} this period (spent {spent}); \
                 this call could cost up to {could} (its input plus maxTokens of output), so it \
                 is refused. Lower maxTokens, or wait until it resets {}.",
                state.subject(),
                state.its_limit(&limit),
                state.resets_text()
            ),
        }
    } else if remaining.saturating_sub(state.in_flight) < worst {
        Refused {
            kind: Refusal::Throttled,
            budget: state.policy.key.clone(),
            message: format!(
                "{} has no free headroom for this call right now ({} left, of which \
                 calls in flight hold {}); retry shortly",
                state.subject(),
                remaining.display(),
                state.in_flight.display()
            ),
        }
    } else {
        Refused {
            kind: Refusal::Throttled,
            budget: state.policy.key.clone(),
            message: format!(
                "{} has {} left, held by other gateway replicas and being moved to \
                 this one; retry shortly",
                state.subject(),
                remaining.display()
            ),
        }
    }
}

/// The output tokens a request asks for at most, where its body says: Converse's
/// `inferenceConfig.maxTokens`, or the model-native field of an InvokeModel body.
pub fn requested_output_tokens(
    operation: Operation,
    model: &ResolvedModel,
    body: &Value,
) -> Option<u64> {
    if operation.is_converse() {
        return body
            .pointer("/inferenceConfig/maxTokens")
            .and_then(Value::as_u64);
    }
    let pointers: &[&str] = match model.catalog.map(|e| e.family) {
        Some(ModelFamily::AnthropicClaude) | Some(ModelFamily::Mistral) => &["/max_tokens"],
        Some(ModelFamily::AmazonNova) => &[
            "/inferenceConfig/max_new_tokens",
            "/inferenceConfig/maxTokens",
        ],
        Some(ModelFamily::AmazonTitanText) => &["/textGenerationConfig/maxTokenCount"],
        Some(ModelFamily::MetaLlama) => &["/max_gen_len"],
        Some(ModelFamily::OpenAiChat) => &["/max_completion_tokens", "/max_tokens"],
        None => &["/max_tokens"],
    };
    pointers
        .iter()
        .find_map(|p| body.pointer(p).and_then(Value::as_u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigov_api::AIBudget;

    fn policy(spec: &str) -> BudgetPolicy {
        let yaml = format!(
            "apiVersion: aigov.dev/v1alpha1\nkind: AIBudget\nmetadata: {{name: b, namespace: team}}\nspec:\n{spec}"
        );
        BudgetPolicy::from_budget(&serde_yaml::from_str::<AIBudget>(&yaml).unwrap()).unwrap()
    }

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    const SONNET: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    fn value_state<'a>(p: &'a BudgetPolicy, spent: &str, limit: &str) -> BudgetState<'a> {
        BudgetState {
            policy: p,
            spent: usd(spent),
            limit: usd(limit),
            resets: Some("2026-12-02T00:00:00Z".into()),
            rate_share: 1.0,
            in_flight: Usd::ZERO,
            value: Some(LimitedValue {
                key: "user".into(),
                value: "u-123".into(),
                account: aigov_ledger::value_limits::value_key("team/b", "user", "u-123"),
            }),
        }
    }

    #[test]
    fn a_value_at_its_limit_is_refused_naming_the_key_the_value_and_the_budget() {
        let p = policy(
            "  limit: '10.00'\n  period: Daily\n  limitPerValue: [{key: user, limit: '1.00'}]\n",
        );
        let refused = check_values(&[value_state(&p, "1.00", "1.00")]).unwrap_err();
        assert_eq!(refused.kind, Refusal::Exhausted);
        assert!(
            refused.message.starts_with(
                "user u-123 in AIBudget team/b has spent $1.00 of its $1.00 daily limit"
            ),
            "{}",
            refused.message
        );
        assert!(check_values(&[value_state(&p, "0.99", "1.00")]).is_ok());
        let short = shortfall(&value_state(&p, "0.99", "1.00"), usd("0.05"));
        assert_eq!(short.kind, Refusal::Exhausted);
        assert!(
            short
                .message
                .contains("user u-123 in AIBudget team/b has $0.01 left")
        );
    }

    #[test]
    fn a_call_without_a_required_key_is_refused_as_bedrock_refuses_bad_metadata() {
        let p = policy("  limit: '10.00'\n  attribution: {require: [user]}\n");
        let state = value_state(&p, "0", "10.00");
        let states = [BudgetState {
            value: None,
            ..state
        }];
        let without: aigov_api::request_metadata::RequestMetadata =
            [("feature".to_owned(), "x".to_owned())].into();
        let refused = require_keys(&states, Operation::Converse, Some(&without)).unwrap_err();
        assert_eq!(refused.kind, Refusal::MetadataMissing);
        assert!(refused.message.contains("requires the key 'user'"));
        assert!(require_keys(&states, Operation::InvokeModel, None).is_err());
        let with: aigov_api::request_metadata::RequestMetadata =
            [("user".to_owned(), "u-1".to_owned())].into();
        assert!(require_keys(&states, Operation::Converse, Some(&with)).is_ok());
        // An operation that cannot carry metadata is not held to it.
        assert!(require_keys(&states, Operation::ApplyGuardrail, None).is_ok());
    }

    #[test]
    fn budget_at_limit_refuses_the_next_request_naming_budget_spend_limit_and_reset() {
        let p = policy("  limit: '1.00'\n");
        let state = BudgetState {
            policy: &p,
            spent: usd("1.00"),
            limit: usd("1.00"),
            resets: Some("2026-12-01T00:00:00Z".into()),
            rate_share: 1.0,
            in_flight: Usd::ZERO,
            value: None,
        };
        let refused = decide(&[state], Operation::Converse, HAIKU).unwrap_err();
        assert_eq!(refused.kind, Refusal::Exhausted);
        for needle in ["team/b", "$1.00 of its $1.00", "2026-12-01T00:00:00Z"] {
            assert!(
                refused.message.contains(needle),
                "{needle} in {}",
                refused.message
            );
        }
    }

    #[test]
    fn converse_is_downgraded_but_invoke_only_within_a_family() {
        let p = policy(&format!(
            "  limit: '10'\n  enforcement:\n    action: Downgrade\n    downgrade:\n    - {{from: '*sonnet*', to: '{HAIKU}'}}\n    - {{from: '*opus*', to: 'amazon.nova-micro-v1:0'}}\n"
        ));
        let state = BudgetState {
            policy: &p,
            spent: usd("9.50"),
            limit: usd("10"),
            resets: None,
            rate_share: 1.0,
            in_flight: Usd::ZERO,
            value: None,
        };
        let a = decide(std::slice::from_ref(&state), Operation::Converse, SONNET).unwrap();
        assert_eq!(
            (a.model.as_str(), a.downgraded_from.as_deref()),
            (HAIKU, Some(SONNET))
        );
        let a = decide(std::slice::from_ref(&state), Operation::InvokeModel, SONNET).unwrap();
        assert_eq!(a.model, HAIKU, "Claude to Claude keeps the body valid");
        let opus = "anthropic.claude-opus-4-20250514-v1:0";
        let a = decide(std::slice::from_ref(&state), Operation::InvokeModel, opus).unwrap();
        assert_eq!(
            (a.model.as_str(), a.downgraded_from),
            (opus, None),
            "Claude body cannot go to Nova"
        );
        let a = decide(&[state], Operation::ConverseStream, opus).unwrap();
        assert_eq!(a.model, "amazon.nova-micro-v1:0");
    }

    #[test]
    fn a_forbidden_model_is_refused_by_name() {
        let p = policy("  limit: '10'\n  models: {deny: ['*opus*']}\n");
        let state = BudgetState {
            policy: &p,
            spent: Usd::ZERO,
            limit: usd("10"),
            resets: None,
            rate_share: 1.0,
            in_flight: Usd::ZERO,
            value: None,
        };
        let refused = decide(
            &[state],
            Operation::Converse,
            "us.anthropic.claude-opus-4-20250514-v1:0",
        )
        .unwrap_err();
        assert_eq!(refused.kind, Refusal::ModelForbidden);
        assert!(refused.message.contains("*opus*"));
    }

    #[test]
    fn a_worst_case_that_can_never_fit_is_a_403_else_a_429() {
        let p = policy("  limit: '1.00'\n");
        let state = BudgetState {
            policy: &p,
            spent: usd("0.90"),
            limit: usd("1.00"),
            resets: None,
            rate_share: 1.0,
            in_flight: Usd::ZERO,
            value: None,
        };
        assert_eq!(shortfall(&state, usd("0.20")).kind, Refusal::Exhausted);
        assert_eq!(shortfall(&state, usd("0.05")).kind, Refusal::Throttled);
    }

    #[test]
    fn refusals_show_sub_cent_amounts_truthfully_and_never_past_the_limit() {
        let p = policy("  limit: '0.01'\n");
        let state = BudgetState {
            policy: &p,
            spent: usd("0.006"),
            limit: usd("0.01"),
            resets: None,
            rate_share: 1.0,
            in_flight: Usd::ZERO,
            value: None,
        };
        let refused = shortfall(&state, usd("0.0052"));
        assert_eq!(refused.kind, Refusal::Exhausted);
        for needle in [
            "has $0.004 left of its $0.01 limit",
            "(spent $0.006)",
            "could cost up to $0.0052",
        ] {
            assert!(
                refused.message.contains(needle),
                "{needle} in {}",
                refused.message
            );
        }
        let p = policy("  limit: '0.001'\n");
        let state = BudgetState {
            policy: &p,
            spent: usd("0.001"),
            limit: usd("0.001"),
            resets: None,
            rate_share: 1.0,
            in_flight: Usd::ZERO,
            value: None,
        };
        let refused = decide(&[state], Operation::Converse, HAIKU).unwrap_err();
        assert!(
            refused.message.contains("spent $0.001 of its $0.001 limit"),
            "{}",
            refused.message
        );
        let p = policy("  limit: '999999999999.999999'\n");
        let state = BudgetState {
            policy: &p,
            spent: usd("999999999999.999999"),
            limit: usd("999999999999.999999"),
            resets: None,
            rate_share: 1.0,
            in_flight: Usd::ZERO,
            value: None,
        };
        let refused = decide(&[state], Operation::Converse, HAIKU).unwrap_err();
        assert!(
            refused.message.contains("of its $999,999,999,999.99 limit"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn max_tokens_is_read_where_each_family_puts_it() {
        let converse = serde_json::json!({"inferenceConfig": {"maxTokens": 100}});
        assert_eq!(
            requested_output_tokens(Operation::Converse, &resolve(SONNET), &converse),
            Some(100)
        );
        let claude = serde_json::json!({"max_tokens": 200});
        assert_eq!(
            requested_output_tokens(Operation::InvokeModel, &resolve(SONNET), &claude),
            Some(200)
        );
        let titan = serde_json::json!({"textGenerationConfig": {"maxTokenCount": 300}});
        assert_eq!(
            requested_output_tokens(
                Operation::InvokeModel,
                &resolve("amazon.titan-text-express-v1"),
                &titan
            ),
            Some(300)
        );
        let llama = serde_json::json!({"max_gen_len": 400});
        assert_eq!(
            requested_output_tokens(
                Operation::InvokeModel,
                &resolve("meta.llama3-8b-instruct-v1:0"),
                &llama
            ),
            Some(400)
        );
    }
}
