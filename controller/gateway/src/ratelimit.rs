//! The soft limit's rate cap: a token bucket per budget, per gateway replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

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
    /// Takes one request from `key`'s bucket of `per_minute`; on refusal returns the seconds
    /// until the next request fits.
    pub fn check(&self, key: &str, per_minute: u32, now: Instant) -> Result<(), u64> {
        let rate = f64::from(per_minute.max(1)) / 60.0;
        let capacity = f64::from(per_minute.max(1)).min(rate * 10.0).max(1.0);
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
            Err(((1.0 - bucket.tokens) / rate).ceil() as u64)
        }
    }
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
            assert!(limiter.check("b", 60, start).is_ok());
        }
        assert_eq!(limiter.check("b", 60, start), Err(1));
        assert!(
            limiter
                .check("b", 60, start + Duration::from_secs(1))
                .is_ok()
        );
    }
}
