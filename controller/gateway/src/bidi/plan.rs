//! How a bidirectional session is reserved and charged (pure).
//!
//! A session has no end the gateway can see coming, so it cannot reserve a worst case up
//! front. It reserves in **tranches**: a tranche is the most one response can cost, `maxTokens`
//! (the session's `sessionStart.inferenceConfiguration.maxTokens`, else
//! [`DEFAULT_MAX_TOKENS`], capped by the model's output bound) of speech output plus as many
//! of speech input, priced at the speech rates (the dearest tokens a session has). The first
//! tranche is reserved before the session is forwarded; after every `usageEvent` the gateway
//! tops the reservation up until a whole tranche is ahead of what the running totals cost
//! ([`tranches_needed`]). When the budget cannot give the next tranche the session is ended,
//! with the rest of its last tranche still reserved for what Bedrock reports after the
//! usage that triggered it.

use aigov_api::Usd;
use aigov_api::pricing::Usage;
use aigov_api::units::{SessionUsage, SpeechRate, speech_cost};
use rust_decimal::Decimal;

/// The output bound of one response when `sessionStart` sets none (the value AWS's Nova
/// Sonic samples set; not a documented default).
pub const DEFAULT_MAX_TOKENS: u64 = 1024;

/// The tokens of one tranche: the session's `maxTokens` from its first event (a
/// `sessionStart`), else [`DEFAULT_MAX_TOKENS`], never more than `model_max` nor less than 1.
pub fn tranche_tokens(first_event: Option<&serde_json::Value>, model_max: u32) -> u64 {
    first_event
        .and_then(|e| e.pointer("/event/sessionStart/inferenceConfiguration/maxTokens"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS)
        .clamp(1, u64::from(model_max.max(1)))
}

/// One tranche as session usage: `tokens` of speech in and as many out.
pub fn tranche_usage(tokens: u64) -> SessionUsage {
    SessionUsage {
        speech_input: tokens,
        speech_output: tokens,
        ..SessionUsage::default()
    }
}

/// How `totals` are priced: with speech rates, the text tokens by the price book (the
/// catalog's text rates, or an `AIModelPrice`) and the speech tokens at `rate` (the record's
/// unit cost); without (a model the gateway has no speech rates for), every token by the
/// price book.
pub fn split(rate: Option<&SpeechRate>, totals: &SessionUsage) -> (Usage, Option<Usd>) {
    match rate {
        Some(rate) => (
            Usage {
                input_tokens: totals.text_input,
                output_tokens: totals.text_output,
                ..Usage::default()
            },
            Some(speech_cost(rate, totals)),
        ),
        None => (
            Usage {
                input_tokens: totals.text_input.saturating_add(totals.speech_input),
                output_tokens: totals.text_output.saturating_add(totals.speech_output),
                ..Usage::default()
            },
            None,
        ),
    }
}

/// How many tranches of `tranche` to add to `held` so that a whole tranche is ahead of
/// `used` again: none while it is, else the fewest that make it so.
pub fn tranches_needed(held: Usd, used: Usd, tranche: Usd) -> u64 {
    if tranche.is_zero() || held.saturating_sub(used) >= tranche {
        return 0;
    }
    let short = (used + tranche).saturating_sub(held).as_decimal();
    let n = (short / tranche.as_decimal()).ceil();
    u64::try_from(n.max(Decimal::ONE)).unwrap_or(u64::MAX)
}

/// True when a budget with `left` (its limit less its spend) cannot hold `wanted` (what the
/// session would hold after its top-up) whatever else returns: the session is over for this
/// period, not throttled.
pub fn ends_for_good(left: Usd, wanted: Usd) -> bool {
    left < wanted
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn a_tranche_is_the_sessions_max_tokens_capped_by_the_model() {
        let start =
            json!({"event": {"sessionStart": {"inferenceConfiguration": {"maxTokens": 2048}}}});
        assert_eq!(tranche_tokens(Some(&start), 10_000), 2048);
        assert_eq!(tranche_tokens(Some(&start), 1000), 1000);
        assert_eq!(tranche_tokens(None, 10_000), DEFAULT_MAX_TOKENS);
        let other = json!({"event": {"textInput": {"content": "hi"}}});
        assert_eq!(tranche_tokens(Some(&other), 10_000), DEFAULT_MAX_TOKENS);
        let zero = json!({"event": {"sessionStart": {"inferenceConfiguration": {"maxTokens": 0}}}});
        assert_eq!(
            tranche_tokens(Some(&zero), 10_000),
            1,
            "never a free tranche"
        );
    }

    #[test]
    fn speech_tokens_go_to_the_unit_cost_and_without_speech_rates_every_token_is_a_token() {
        let rate = aigov_api::units::speech_rate("amazon.nova-sonic-v1:0").unwrap();
        let totals = SessionUsage {
            speech_input: 100,
            text_input: 10,
            speech_output: 200,
            text_output: 20,
        };
        let (usage, unit) = split(Some(rate), &totals);
        assert_eq!((usage.input_tokens, usage.output_tokens), (10, 20));
        assert_eq!(unit, Some(speech_cost(rate, &totals)));
        let (usage, unit) = split(None, &totals);
        assert_eq!(
            (usage.input_tokens, usage.output_tokens, unit),
            (110, 220, None)
        );
    }

    fn usd(micros: u64) -> Usd {
        Usd::from_decimal(Decimal::new(micros as i64, 6))
    }

    #[test]
    fn a_top_up_is_asked_for_only_once_less_than_a_tranche_is_ahead() {
        assert_eq!(tranches_needed(usd(100), usd(0), usd(100)), 0);
        assert_eq!(tranches_needed(usd(100), usd(1), usd(100)), 1);
        assert_eq!(
            tranches_needed(usd(100), usd(350), usd(100)),
            4,
            "usage leapt ahead"
        );
        assert_eq!(tranches_needed(usd(0), usd(0), Usd::ZERO), 0);
    }

    #[test]
    fn a_session_is_over_for_good_only_when_the_budget_itself_cannot_hold_it() {
        assert!(ends_for_good(usd(80), usd(100)));
        assert!(
            !ends_for_good(usd(100), usd(100)),
            "others may give headroom back"
        );
    }

    proptest! {
        #[test]
        fn after_the_top_up_one_whole_tranche_and_less_than_two_are_ahead_of_use(
            held in 0u64..10_000_000, used in 0u64..10_000_000, tranche in 1u64..1_000_000,
        ) {
            let n = tranches_needed(usd(held), usd(used), usd(tranche));
            let ahead = |n: u64| i128::from(held) + i128::from(n) * i128::from(tranche) - i128::from(used);
            prop_assert!(ahead(n) >= i128::from(tranche));
            if n > 0 {
                prop_assert!(ahead(n - 1) < i128::from(tranche), "the fewest tranches");
            }
        }
    }
}
