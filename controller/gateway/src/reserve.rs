//! The call's worst case, reserved on every budget that selects the caller before the call
//! goes to Bedrock: input bounded by the body's bytes and the context window at the dearest
//! input rate, plus the output bound ([`aigov_api::usage::worst_case_cost`]). A slice too short
//! for it is a refusal ([`admission::shortfall`]): a 403 when the worst case can never fit in
//! what remains, else a 429.

use std::sync::Arc;

use aigov_api::Usd;
use aigov_api::budget::FailMode;
use aigov_api::model::resolve;
use aigov_api::pricing::ServiceTier;
use aigov_api::usage::{input_token_bound, output_token_bound, worst_case_cost};
use aigov_api::{mantle, units};
use aigov_ledger::policy::BudgetPolicy;
use aigov_ledger::value_limits;

use crate::Gateway;
use crate::admission::{self, BudgetState, LimitedValue};
use crate::error::GatewayError;
use crate::route::{Metering, Operation};
use crate::slices::{Claim, Figures, Reservation, Shortfall, Slices};

/// The retry hint of a call refused for want of free headroom (calls in flight settle soon).
pub const SHORTFALL_RETRY_SECS: u64 = 1;

/// A call's worst case: its token bounds and what they cost at the dearest rates. The bounds
/// are also the ceiling of the estimate a call is charged when Bedrock reports no usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorstCase {
    /// What is reserved.
    pub cost: Usd,
    /// Input tokens at most: the body's bytes, capped by the context window.
    pub input_tokens: u64,
    /// Output tokens at most: what the request asked for, capped by the model's maximum.
    pub output_tokens: u64,
    /// For a call priced per unit (guardrail text units, seconds of async output), not per
    /// token: the most its units can cost (equal to `cost`).
    pub unit_cost: Option<Usd>,
    /// For a Converse call with a guardrail: the most the guardrail can cost (in `cost`).
    pub guardrail: Option<Usd>,
}

/// Each budget with the controller's latest figures (its spec limit until they arrive).
pub fn budget_states<'a>(
    policies: &'a [Arc<BudgetPolicy>],
    figures: &[Option<Figures>],
) -> Vec<BudgetState<'a>> {
    policies
        .iter()
        .zip(figures)
        .map(|(p, f)| BudgetState {
            policy: p,
            spent: f.as_ref().map_or(Usd::ZERO, |f| f.spent),
            limit: f.as_ref().map_or(p.limit, |f| f.limit),
            resets: f.as_ref().map(|f| f.period_end.clone()),
            rate_share: f.as_ref().map_or(1.0, |f| f.rate_share),
            in_flight: f.as_ref().map_or(Usd::ZERO, |f| f.in_flight),
            value: None,
        })
        .collect()
}

/// Each value the call carries of a key a budget limits per value (`spec.limitPerValue`),
/// with that value's latest figures (its limit, nothing spent, until they arrive). A call
/// without the key is held to the budget's own limit only.
pub fn value_states<'a>(
    slices: &Slices,
    policies: &'a [Arc<BudgetPolicy>],
    metadata: &aigov_api::request_metadata::RequestMetadata,
) -> Vec<BudgetState<'a>> {
    let values: Vec<(&'a BudgetPolicy, LimitedValue, Usd)> = policies
        .iter()
        .flat_map(|policy| {
            policy.value_limits.iter().filter_map(|(key, limit)| {
                let value = metadata.get(key)?;
                let account = value_limits::value_key(&policy.key, key, value);
                let limited = LimitedValue {
                    key: key.clone(),
                    value: value.clone(),
                    account,
                };
                Some((policy.as_ref(), limited, *limit))
            })
        })
        .collect();
    let figures = slices.figures_of(values.iter().map(|(_, v, _)| v.account.as_str()));
    values
        .into_iter()
        .zip(figures)
        .map(|((policy, value, limit), f)| BudgetState {
            policy,
            spent: f.as_ref().map_or(Usd::ZERO, |f| f.spent),
            limit: f.as_ref().map_or(limit, |f| f.limit),
            resets: f.as_ref().map(|f| f.period_end.clone()),
            rate_share: 1.0,
            in_flight: f.as_ref().map_or(Usd::ZERO, |f| f.in_flight),
            value: Some(value),
        })
        .collect()
}

impl Gateway {
    /// The most `model` could cost for this request, priced now, and its token bounds; `None`
    /// for a call billed per unit of a model the gateway has no price for.
    pub(crate) fn worst_case(
        &self,
        (operation, tier): (Operation, ServiceTier),
        model: &str,
        request: (&http::HeaderMap, &[u8]),
        json: &serde_json::Value,
    ) -> Option<WorstCase> {
        let (headers, body) = request;
        match operation.metering() {
            Metering::GuardrailUnits => Some(unit_worst_case(guardrail_worst_case(json))),
            Metering::AsyncOutput => {
                let rate = units::async_rate(model)?;
                let asked = json.get("modelInput").and_then(units::requested_seconds);
                let seconds = asked.unwrap_or(rate.max_seconds).min(rate.max_seconds);
                Some(unit_worst_case(units::async_cost(rate, seconds)))
            }
            _ => Some(self.token_worst_case((operation, tier), model, (headers, body), json)),
        }
    }

    /// [`Gateway::worst_case`], or the refusal of a call the gateway has no price for.
    pub(crate) fn priced_worst_case(
        &self,
        (operation, tier): (Operation, ServiceTier),
        model: &str,
        request: (&http::HeaderMap, &[u8]),
        json: &serde_json::Value,
    ) -> Result<WorstCase, GatewayError> {
        self.worst_case((operation, tier), model, request, json)
            .ok_or_else(|| GatewayError::Unpriced {
                operation: operation.name(),
                model: model.to_owned(),
            })
    }

    fn token_worst_case(
        &self,
        (operation, tier): (Operation, ServiceTier),
        model: &str,
        request: (&http::HeaderMap, &[u8]),
        json: &serde_json::Value,
    ) -> WorstCase {
        let (headers, body) = request;
        let billed = resolve(model);
        let price = self
            .prices
            .current()
            .price_in(&billed, tier, self.clock.now());
        let context = billed
            .catalog
            .map_or(self.config.fallback_context_window, |e| e.context_window);
        let asked = match operation.mantle_api() {
            Some(api) => mantle::requested_output_tokens(api, json),
            None => admission::requested_output_tokens(operation, &billed, json),
        };
        // A call that continues a stored conversation is billed for its earlier turns too.
        let input_tokens = match operation.mantle_api() {
            Some(api) if mantle::input_beyond_body(api, json) => u64::from(context),
            _ => input_token_bound(body.len(), context),
        };
        let output_tokens = output_token_bound(asked, price.max_output_tokens);
        let guardrail = crate::guardrail::worst_case(operation, headers, json, output_tokens);
        WorstCase {
            cost: worst_case_cost(&price, input_tokens, output_tokens)
                + guardrail.unwrap_or(Usd::ZERO),
            input_tokens,
            output_tokens,
            unit_cost: None,
            guardrail,
        }
    }
}

/// The worst case of a call priced per unit.
fn unit_worst_case(cost: Usd) -> WorstCase {
    WorstCase {
        cost,
        input_tokens: 0,
        output_tokens: 0,
        unit_cost: Some(cost),
        guardrail: None,
    }
}

/// The most a guardrail can cost on a request's content: every character of every string in
/// its `content` (ApplyGuardrail) or `messages` (InvokeGuardrailChecks), each block rounded up
/// to whole text units, evaluated by every paid policy; images by the image filter.
fn guardrail_worst_case(json: &serde_json::Value) -> Usd {
    fn walk(v: &serde_json::Value, chars: &mut u64, blocks: &mut u64, images: &mut u64) {
        match v {
            serde_json::Value::String(s) => {
                *chars += s.chars().count() as u64;
                *blocks += 1;
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|i| walk(i, chars, blocks, images))
            }
            serde_json::Value::Object(map) => {
                if map.contains_key("image") {
                    *images += 1;
                }
                map.values().for_each(|i| walk(i, chars, blocks, images))
            }
            _ => {}
        }
    }
    let (mut chars, mut blocks, mut images) = (0, 0, 0);
    for key in ["content", "messages"] {
        if let Some(v) = json.get(key) {
            walk(v, &mut chars, &mut blocks, &mut images);
        }
    }
    units::guardrail_worst_case(chars, blocks, images)
}

/// Reserves `worst` on every budget in `states` (nothing to reserve when none selects the
/// caller).
pub async fn reserve(
    slices: &Slices,
    states: &[BudgetState<'_>],
    worst: Usd,
) -> Result<Reservation, GatewayError> {
    if states.is_empty() {
        return Ok(Reservation::default());
    }
    let claims: Vec<Claim> = states
        .iter()
        .map(|s| Claim {
            key: s.account().to_owned(),
            limit: s.limit,
            fail_open: s.policy.fail_mode == FailMode::Open,
        })
        .collect();
    match slices.reserve(&claims, worst).await {
        Ok(r) => Ok(r),
        Err(Shortfall::Budget(key)) => Err(shortfall(slices, states, &key, worst)),
        Err(Shortfall::Unreachable(key)) => Err(GatewayError::ControllerUnreachable(key)),
        Err(Shortfall::Backlog) => Err(GatewayError::Backlog),
    }
}

/// The refusal of a call whose reservation failed on `key`'s slice, judged on the freshest
/// figures (the exchange that was just waited for may have brought new ones). A budget that
/// can never fit the call refuses it (403) before a budget whose slice is only short for now
/// (429): otherwise a call one budget can never admit is answered by turns with that budget's
/// 403 and a 429 "no free headroom" from another that has plenty left, and the caller retries
/// what can never succeed.
fn shortfall(slices: &Slices, states: &[BudgetState<'_>], key: &str, worst: Usd) -> GatewayError {
    let fresh: Vec<BudgetState<'_>> = states
        .iter()
        .map(|state| {
            let figures = slices.figures(state.account());
            BudgetState {
                spent: figures.as_ref().map_or(state.spent, |f| f.spent),
                limit: figures.as_ref().map_or(state.limit, |f| f.limit),
                in_flight: figures.as_ref().map_or(state.in_flight, |f| f.in_flight),
                ..state.clone()
            }
        })
        .collect();
    let state = fresh
        .iter()
        .find(|s| s.limit.saturating_sub(s.spent) < worst)
        .or_else(|| fresh.iter().find(|s| s.account() == key))
        .expect("a shortfall names a claimed budget");
    GatewayError::Refused {
        refused: admission::shortfall(state, worst),
        retry_after: SHORTFALL_RETRY_SECS,
    }
}
