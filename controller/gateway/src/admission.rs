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
}

impl BudgetState<'_> {
    fn resets_text(&self) -> String {
        self.resets.as_deref().map_or_else(
            || "at the end of the period".to_owned(),
            |r| format!("at {r}"),
        )
    }
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
    for state in states {
        if aigov_api::evaluation::reached(state.spent, state.limit, 100) {
            let (spent, limit) = Usd::display_pair(state.spent, state.limit);
            return Err(Refused {
                kind: Refusal::Exhausted,
                budget: state.policy.key.clone(),
                message: format!(
                    "AIBudget {} has spent {spent} of its {limit} limit for this period; it resets {}. \
                     Ask its owner for an extension (annotation aigov.dev/extension) to continue.",
                    state.policy.key,
                    state.resets_text()
                ),
            });
        }
    }
    Ok(admitted)
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
                "model {} is not allowed by AIBudget {} ({why})",
                model.requested, state.policy.key
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
                "AIBudget {} has {left} left of its {limit} limit this period (spent {spent}); \
                 this call could cost up to {could} (its input plus maxTokens of output), so it \
                 is refused. Lower maxTokens, or wait until the budget resets {}.",
                state.policy.key,
                state.resets_text()
            ),
        }
    } else if remaining.saturating_sub(state.in_flight) < worst {
        Refused {
            kind: Refusal::Throttled,
            budget: state.policy.key.clone(),
            message: format!(
                "AIBudget {} has no free headroom for this call right now ({} left, of which \
                 calls in flight hold {}); retry shortly",
                state.policy.key,
                remaining.display(),
                state.in_flight.display()
            ),
        }
    } else {
        Refused {
            kind: Refusal::Throttled,
            budget: state.policy.key.clone(),
            message: format!(
                "AIBudget {} has {} left, held by other gateway replicas and being moved to \
                 this one; retry shortly",
                state.policy.key,
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
