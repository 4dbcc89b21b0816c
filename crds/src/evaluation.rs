//! Pure budget decisions: which thresholds a spend change crosses, which phase a budget is
//! in, and where spend is heading by the end of the period.

use jiff::Timestamp;
use rust_decimal::{Decimal, RoundingStrategy};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::money::Usd;
use crate::period::Window;

/// Where a budget stands, as `kubectl get aib` shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Below the first threshold.
    #[default]
    Active,
    /// At or past a threshold below 100%.
    Warning,
    /// At the limit; new requests are refused (or rate-limited from the soft limit).
    Throttled,
    /// At the limit; requests are rewritten to the cheaper models of the downgrade map.
    Downgraded,
    /// At the limit and escalated to people: the next alert channels were notified.
    Escalated,
}

/// What happens when a budget reaches 100%.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum EnforcementAction {
    /// Refuse requests that would spend past the limit.
    #[default]
    Throttle,
    /// Rewrite requests to cheaper models (the downgrade map); refuse the rest.
    Downgrade,
    /// Keep serving, and escalate through the escalation steps.
    Escalate,
}

/// Checks thresholds: strictly ascending whole percents in 1..=100.
pub fn validate_thresholds(thresholds: &[u32]) -> Result<(), Error> {
    let in_range = thresholds.iter().all(|t| (1..=100).contains(t));
    let ascending = thresholds.windows(2).all(|w| w[0] < w[1]);
    if in_range && ascending {
        Ok(())
    } else {
        Err(Error::InvalidThresholds(thresholds.to_vec()))
    }
}

/// True when `spent` has reached `percent`% of `limit` (exactly, no rounding).
pub fn reached(spent: Usd, limit: Usd, percent: u32) -> bool {
    spent.as_decimal() * Decimal::ONE_HUNDRED >= limit.as_decimal() * Decimal::from(percent)
}

/// The thresholds a move from `before` to `after` crosses, in ascending order: each one that
/// `after` has reached and `before` had not. A refund never "crosses" anything.
pub fn crossed_thresholds(thresholds: &[u32], before: Usd, after: Usd, limit: Usd) -> Vec<u32> {
    thresholds
        .iter()
        .copied()
        .filter(|t| reached(after, limit, *t) && !reached(before, limit, *t))
        .collect()
}

/// The highest threshold `spent` has reached, if any.
pub fn highest_reached(thresholds: &[u32], spent: Usd, limit: Usd) -> Option<u32> {
    thresholds
        .iter()
        .copied()
        .filter(|t| reached(spent, limit, *t))
        .max()
}

/// Everything the phase depends on.
#[derive(Clone, Copy, Debug)]
pub struct PhaseInputs<'a> {
    /// Settled spend this period.
    pub spent: Usd,
    /// The effective limit (the spec's, plus any extension).
    pub limit: Usd,
    /// The spec's thresholds.
    pub thresholds: &'a [u32],
    /// What to do at 100%.
    pub action: EnforcementAction,
    /// True once an escalation step has fired and not been acknowledged.
    pub escalated: bool,
    /// True when the budget refuses calls for want of what is left, short of 100% (spend
    /// never quite reaches the limit when every call reserves its worst case first).
    pub refusing: bool,
}

/// The phase a budget is in.
pub fn phase(inputs: PhaseInputs<'_>) -> Phase {
    if inputs.escalated {
        return Phase::Escalated;
    }
    if inputs.refusing || reached(inputs.spent, inputs.limit, 100) {
        return match inputs.action {
            EnforcementAction::Throttle => Phase::Throttled,
            EnforcementAction::Downgrade => Phase::Downgraded,
            EnforcementAction::Escalate => Phase::Escalated,
        };
    }
    match highest_reached(inputs.thresholds, inputs.spent, inputs.limit) {
        Some(_) => Phase::Warning,
        None => Phase::Active,
    }
}

/// End-of-period spend if the rate so far continues, to the micro-dollar; `None` while too
/// little of the period has passed to say (under 5% of it and under an hour), and for a credit.
pub fn forecast(spent: Usd, window: &Window, now: Timestamp) -> Option<Usd> {
    // A credit has no end to forecast for: its spend only grows until the credit is used.
    if window.never_ends() {
        return None;
    }
    let total = window.length_seconds();
    let elapsed = (now.as_second() - window.start.as_second()).clamp(0, total);
    let minimum = (total / 20).min(3600);
    if elapsed < minimum.max(1) {
        return None;
    }
    let projected = spent.as_decimal() * Decimal::from(total) / Decimal::from(elapsed);
    Some(Usd::from_decimal(projected.round_dp_with_strategy(
        6,
        RoundingStrategy::MidpointAwayFromZero,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }
    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_credit_is_never_forecast_because_it_has_no_end() {
        let credit = Window::credit();
        assert_eq!(
            forecast(usd("5"), &credit, ts("2026-06-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn thresholds_must_ascend_within_1_to_100() {
        assert!(validate_thresholds(&[50, 80, 100]).is_ok());
        assert!(validate_thresholds(&[]).is_ok());
        assert!(validate_thresholds(&[80, 50]).is_err());
        assert!(validate_thresholds(&[50, 50]).is_err());
        assert!(validate_thresholds(&[0, 50]).is_err());
        assert!(validate_thresholds(&[50, 101]).is_err());
    }

    #[test]
    fn a_threshold_is_reached_at_exactly_its_percent() {
        let limit = usd("250");
        assert!(!reached(usd("124.999999"), limit, 50));
        assert!(reached(usd("125"), limit, 50));
        // 1/3 of $1 is never exactly 33.33...% but the comparison is exact.
        assert!(reached(usd("0.33"), usd("1"), 33));
        assert!(!reached(usd("0.329999"), usd("1"), 33));
    }

    #[test]
    fn one_large_request_crosses_every_threshold_it_jumps_over() {
        let crossed = crossed_thresholds(&[50, 80, 100], usd("40"), usd("100"), usd("100"));
        assert_eq!(crossed, vec![50, 80, 100]);
        assert_eq!(
            crossed_thresholds(&[50, 80, 100], usd("50"), usd("79.99"), usd("100")),
            Vec::<u32>::new()
        );
        assert_eq!(
            crossed_thresholds(&[50, 80, 100], usd("79.99"), usd("80"), usd("100")),
            vec![80]
        );
        assert_eq!(
            crossed_thresholds(&[50], usd("90"), usd("10"), usd("100")),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn the_phase_follows_spend_and_the_action() {
        let p = |spent: &str, action| {
            phase(PhaseInputs {
                spent: usd(spent),
                limit: usd("100"),
                thresholds: &[50, 80, 100],
                action,
                escalated: false,
                refusing: false,
            })
        };
        assert_eq!(p("0", EnforcementAction::Throttle), Phase::Active);
        assert_eq!(p("49.999999", EnforcementAction::Throttle), Phase::Active);
        assert_eq!(p("50", EnforcementAction::Throttle), Phase::Warning);
        assert_eq!(p("99.99", EnforcementAction::Throttle), Phase::Warning);
        assert_eq!(p("100", EnforcementAction::Throttle), Phase::Throttled);
        assert_eq!(p("100", EnforcementAction::Downgrade), Phase::Downgraded);
        assert_eq!(p("130", EnforcementAction::Escalate), Phase::Escalated);
        let escalated = phase(PhaseInputs {
            spent: usd("1"),
            limit: usd("100"),
            thresholds: &[],
            action: EnforcementAction::Throttle,
            escalated: true,
            refusing: false,
        });
        assert_eq!(escalated, Phase::Escalated);
        let refusing = phase(PhaseInputs {
            spent: usd("98.4"),
            limit: usd("100"),
            thresholds: &[50, 80],
            action: EnforcementAction::Throttle,
            escalated: false,
            refusing: true,
        });
        assert_eq!(refusing, Phase::Throttled);
    }

    #[test]
    fn without_thresholds_a_budget_is_active_until_its_limit() {
        let inputs = |spent| PhaseInputs {
            spent: usd(spent),
            limit: usd("10"),
            thresholds: &[],
            action: EnforcementAction::Throttle,
            escalated: false,
            refusing: false,
        };
        assert_eq!(phase(inputs("9.99")), Phase::Active);
        assert_eq!(phase(inputs("10")), Phase::Throttled);
    }

    #[test]
    fn the_forecast_extrapolates_the_rate_so_far_to_the_period_end() {
        // A 30-day month, 10 days in, $100 spent: $300 by the end.
        let window = Window {
            start: ts("2026-11-01T00:00:00Z"),
            end: ts("2026-12-01T00:00:00Z"),
        };
        assert_eq!(
            forecast(usd("100"), &window, ts("2026-11-11T00:00:00Z")),
            Some(usd("300"))
        );
        // One third of the way: $1 becomes $3 exactly, $0.10 over 7 days becomes 0.428571 (rounded).
        assert_eq!(
            forecast(usd("0.10"), &window, ts("2026-11-08T00:00:00Z")),
            Some(usd("0.428571"))
        );
        // At or after the end, the forecast is what was spent.
        assert_eq!(
            forecast(usd("42"), &window, ts("2026-12-05T00:00:00Z")),
            Some(usd("42"))
        );
    }

    #[test]
    fn no_forecast_in_the_first_hour_of_a_month() {
        let window = Window {
            start: ts("2026-11-01T00:00:00Z"),
            end: ts("2026-12-01T00:00:00Z"),
        };
        assert_eq!(
            forecast(usd("5"), &window, ts("2026-11-01T00:59:59Z")),
            None
        );
        assert_eq!(
            forecast(usd("5"), &window, ts("2026-11-01T01:00:00Z")),
            Some(usd("3600"))
        );
    }
}
