//! Token buckets: how often something an unauthenticated sender can cause
//! may happen (failed SUCI de-concealments in the AMF; unauthenticated
//! refusals in a driver's audit trail). Time is passed in, as everywhere in
//! the sans-IO machines, so the simulator's clock drives them too.

use std::time::SystemTime;

/// A rate: `per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens the bucket holds when full (and holds at the start).
    pub burst: u32,
    /// Tokens added per second, up to `burst`.
    pub per_second: u32,
}

/// A token bucket over an injected clock. Tokens are counted in
/// thousandths so that low rates refill smoothly; a clock that goes back
/// refills nothing (and is not an error).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    /// Thousandths of a token.
    milli: u64,
    at: Option<SystemTime>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            milli: u64::from(limit.burst) * 1000,
            at: None,
        }
    }

    /// The rate this bucket keeps.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    fn refill(&mut self, now: SystemTime) {
        let cap = u64::from(self.limit.burst) * 1000;
        if let Some(at) = self.at {
            let Ok(elapsed) = now.duration_since(at) else {
                return; // the clock went back: keep `at`, add nothing
            };
            let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            let added = ms.saturating_mul(u64::from(self.limit.per_second));
            self.milli = self.milli.saturating_add(added).min(cap);
        }
        self.at = Some(now);
    }

    /// Whether a token is available at `now` (without taking it).
    pub fn available(&mut self, now: SystemTime) -> bool {
        self.refill(now);
        self.milli >= 1000
    }

    /// Takes a token at `now`; `false` (and nothing changes) when the
    /// bucket is empty.
    pub fn take(&mut self, now: SystemTime) -> bool {
        self.refill(now);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut b = TokenBucket::new(RateLimit {
            burst: 3,
            per_second: 2,
        });
        assert_eq!((0..10).filter(|_| b.take(t0)).count(), 3);
        // 0.5 s later: one more token.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.available(t1));
        assert!(b.take(t1));
        assert!(!b.take(t1));
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(3_600);
        assert_eq!((0..10).filter(|_| b.take(t2)).count(), 3);
        // A clock going back adds nothing and does not panic.
        assert!(!b.take(t0));
    }
}
