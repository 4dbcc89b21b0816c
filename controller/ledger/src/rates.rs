//! A budget's soft-limit rate split across gateway replicas by demand, so that
//! `softLimitRequestsPerMinute` caps the budget as a whole, however many replicas serve it.
//!
//! Each gateway reports, with every exchange, how many calls it saw for each budget since the
//! last one (admitted or refused: the demand, not what its share let through, or a replica
//! throttled to a small share would keep it for ever). The controller keeps a smoothed rate per
//! budget and gateway and answers each gateway with its share: its demand over the total, with
//! a small floor so that a replica that sees no calls yet can still admit its first ones. The
//! shares of a budget's replicas add up to one, so all of them together admit at most the
//! budget's rate (plus each replica's burst); every call has the same chance whichever replica
//! it reaches, and a replica that gets all the traffic gets nearly all the rate.
//!
//! Pure: time is the caller's `now`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How quickly a replica's demand estimate follows a change: the time constant of the moving
/// average. Short enough that a shift of traffic between replicas moves the shares within a few
/// seconds, long enough that one quiet exchange does not.
pub const DEMAND_SMOOTHING: Duration = Duration::from_secs(5);

/// Every replica's demand counts as at least this many calls per second, so one that has seen
/// nothing yet keeps a sliver of the rate for its first calls (about 1% beside a replica seeing
/// ten calls a second).
pub const DEMAND_FLOOR_PER_SEC: f64 = 0.1;

#[derive(Clone, Copy, Debug)]
struct Demand {
    /// Calls per second, smoothed.
    rate: f64,
    updated: Instant,
}

/// Demand per budget and gateway.
#[derive(Debug, Default)]
pub struct RateShares {
    demand: HashMap<String, HashMap<String, Demand>>,
}

impl RateShares {
    /// Takes `gateway`'s report of `calls` for `budget` since its last exchange.
    pub fn observe(&mut self, budget: &str, gateway: &str, calls: u64, now: Instant) {
        let by_gateway = self.demand.entry(budget.to_owned()).or_default();
        match by_gateway.get_mut(gateway) {
            Some(d) => {
                let elapsed = now.saturating_duration_since(d.updated).as_secs_f64();
                if elapsed <= 0.0 {
                    // Two reports at one instant: add to the current estimate.
                    d.rate += calls as f64;
                    return;
                }
                let instant_rate = calls as f64 / elapsed;
                let weight = 1.0 - (-elapsed / DEMAND_SMOOTHING.as_secs_f64()).exp();
                d.rate += weight * (instant_rate - d.rate);
                d.updated = now;
            }
            None => {
                // No interval yet: count the calls as one second's worth.
                let first = Demand {
                    rate: calls as f64,
                    updated: now,
                };
                by_gateway.insert(gateway.to_owned(), first);
            }
        }
    }

    /// `gateway`'s fraction of `budget`'s rate, in (0, 1]; the whole rate for a budget or a
    /// gateway with no report yet.
    pub fn share(&self, budget: &str, gateway: &str) -> f64 {
        let Some(by_gateway) = self.demand.get(budget) else {
            return 1.0;
        };
        let Some(own) = by_gateway.get(gateway) else {
            return 1.0;
        };
        let weight = |d: &Demand| d.rate.max(0.0) + DEMAND_FLOOR_PER_SEC;
        let total: f64 = by_gateway.values().map(weight).sum();
        (weight(own) / total).clamp(f64::MIN_POSITIVE, 1.0)
    }

    /// Forgets a gateway that has not been heard from: its share goes to the others.
    pub fn forget_gateway(&mut self, gateway: &str) {
        for by_gateway in self.demand.values_mut() {
            by_gateway.remove(gateway);
        }
        self.demand.retain(|_, by_gateway| !by_gateway.is_empty());
    }

    /// Forgets a deleted budget.
    pub fn forget_budget(&mut self, budget: &str) {
        self.demand.remove(budget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Both gateways report every `step` for `seconds`, at the given calls per second.
    fn run(shares: &mut RateShares, start: Instant, seconds: u64, a: u64, b: u64) -> Instant {
        let step = Duration::from_millis(250);
        let mut now = start;
        for _ in 0..seconds * 4 {
            now += step;
            shares.observe("ns/b", "gw-a", a / 4, now);
            shares.observe("ns/b", "gw-b", b / 4, now);
        }
        now
    }

    #[test]
    fn a_lone_gateway_gets_the_whole_rate() {
        let mut shares = RateShares::default();
        let now = Instant::now();
        assert_eq!(shares.share("ns/b", "gw-a"), 1.0);
        shares.observe("ns/b", "gw-a", 5, now);
        assert_eq!(shares.share("ns/b", "gw-a"), 1.0);
    }

    #[test]
    fn equal_demand_splits_the_rate_in_half() {
        let mut shares = RateShares::default();
        run(&mut shares, Instant::now(), 30, 40, 40);
        let a = shares.share("ns/b", "gw-a");
        assert!((a - 0.5).abs() < 1e-9, "{a}");
    }

    #[test]
    fn the_replica_that_gets_the_traffic_gets_nearly_all_the_rate_within_seconds() {
        let mut shares = RateShares::default();
        let start = Instant::now();
        let now = run(&mut shares, start, 30, 40, 40);
        run(&mut shares, now, 15, 40, 0);
        let a = shares.share("ns/b", "gw-a");
        assert!(a > 0.95, "{a}");
        assert!(shares.share("ns/b", "gw-b") < 0.05);
    }

    #[test]
    fn a_forgotten_gateway_hands_its_share_to_the_others() {
        let mut shares = RateShares::default();
        run(&mut shares, Instant::now(), 10, 40, 40);
        shares.forget_gateway("gw-b");
        assert_eq!(shares.share("ns/b", "gw-a"), 1.0);
        shares.forget_budget("ns/b");
        assert_eq!(shares.share("ns/b", "gw-a"), 1.0);
    }

    proptest! {
        #[test]
        fn the_shares_of_a_budget_never_add_up_to_more_than_the_whole_rate(
            reports in prop::collection::vec((0usize..4, 0u64..500, 0u64..2_000), 1..80),
        ) {
            let mut shares = RateShares::default();
            let gateways = ["g0", "g1", "g2", "g3"];
            let mut now = Instant::now();
            for (g, calls, millis) in reports {
                now += Duration::from_millis(millis);
                shares.observe("ns/b", gateways[g], calls, now);
                let reported = gateways
                    .iter()
                    .filter(|g| shares.demand["ns/b"].contains_key(**g));
                let total: f64 = reported.map(|g| shares.share("ns/b", g)).sum();
                prop_assert!(total <= 1.0 + 1e-9, "{total}");
            }
        }
    }
}
