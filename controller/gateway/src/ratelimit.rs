//! The soft limit's rate cap: a token bucket per budget on each gateway replica, filled at
//! this replica's share of the budget's requests per minute (the controller splits the rate
//! across replicas by their demand, [`aigov_ledger::rates`]), so a budget past its soft limit
//! admits at most its rate as a whole. The call over it is a 429 with the seconds until the
//! next one fits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use aigov_api::Usd;
use aigov_ledger::proto::Refusal;

use crate::admission::{BudgetState, Refused};
use crate::error::GatewayError;

/// Token buckets by budget.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// Takes one request from `key`'s bucket, filled at `per_minute` (this replica's share of
    /// the budget's rate) and holding at most ten seconds' worth (at least one request); on
    /// refusal returns the seconds until the next request fits.
    pub fn check(&self, key: &str, per_minute: f64, now: Instant) -> Result<(), u64> {
        let rate = per_minute.max(f64::MIN_POSITIVE) / 60.0;
        let capacity = (rate * 10.0).max(1.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate).ceil().min(3600.0) as u64)
        }
    }
}

/// Takes one request from the bucket of every budget in `states` that is past its soft limit;
/// the first that has none left refuses the call.
pub fn check_soft_limits(
    limiter: &RateLimiter,
    states: &[BudgetState<'_>],
    now: Instant,
) -> Result<(), GatewayError> {
    for state in states {
        if let Some(rpm) = state.policy.soft_rate(state.spent, state.limit)
            && let Err(wait) =
                limiter.check(&state.policy.key, f64::from(rpm) * state.rate_share, now)
        {
            let (spent, limit) = Usd::display_pair(state.spent, state.limit);
            let refused = Refused {
                kind: Refusal::Throttled,
                budget: state.policy.key.clone(),
                message: format!(
                    "{} is past its soft limit ({spent} of {limit}): at most {rpm} requests per minute",
                    state.policy.describe(),
                ),
            };
            return Err(GatewayError::Refused {
                refused,
                retry_after: wait,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sixty_per_minute_allows_a_burst_of_ten_then_one_a_second() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..10 {
            assert!(limiter.check("b", 60.0, start).is_ok());
        }
        assert_eq!(limiter.check("b", 60.0, start), Err(1));
        assert!(
            limiter
                .check("b", 60.0, start + Duration::from_secs(1))
                .is_ok()
        );
    }

    #[test]
    fn a_quarter_share_of_sixty_per_minute_is_one_call_every_four_seconds() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        assert!(limiter.check("b", 15.0, start).is_ok());
        assert!(
            limiter.check("b", 15.0, start).is_ok(),
            "2.5 calls of burst"
        );
        assert_eq!(limiter.check("b", 15.0, start), Err(2));
        let later = start + Duration::from_secs(2);
        assert!(limiter.check("b", 15.0, later).is_ok());
        assert_eq!(limiter.check("b", 15.0, later), Err(4));
    }
}
