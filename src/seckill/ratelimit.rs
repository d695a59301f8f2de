//! In-memory token buckets for the buy path, per user and per IP and per
//! event. A bucket holds up to twice its rate (the burst) and refills
//! continuously. Idle buckets are swept so memory stays bounded.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Whose requests a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    User { event_id: i64, user_id: i64 },
    Ip { event_id: i64, ip: IpAddr },
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of one node.
#[derive(Default)]
pub struct RateLimiter {
    buckets: DashMap<RateKey, Bucket>,
}

/// How long a bucket may sit unused before it is dropped (it would be full
/// again by then anyway).
pub const IDLE_BUCKET_TTL: Duration = Duration::from_secs(60);

impl RateLimiter {
    /// Takes one token from `key`'s bucket refilling at `rate_per_sec`;
    /// false when it is empty. A rate of 0 means no limit.
    pub fn allow(&self, key: RateKey, rate_per_sec: u32, now: Instant) -> bool {
        if rate_per_sec == 0 {
            return true;
        }
        let rate = f64::from(rate_per_sec);
        let burst = rate * 2.0;
        let mut bucket = self.buckets.entry(key).or_insert(Bucket { tokens: burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Drops buckets unused for [`IDLE_BUCKET_TTL`].
    pub fn sweep(&self, now: Instant) {
        self.buckets.retain(|_, bucket| now.saturating_duration_since(bucket.updated) < IDLE_BUCKET_TTL);
    }

    /// Buckets held, for tests and metrics.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_the_rate() {
        let limiter = RateLimiter::default();
        let key = RateKey::User { event_id: 1, user_id: 1 };
        let start = Instant::now();
        let allowed = (0..10).filter(|_| limiter.allow(key, 2, start)).count();
        assert_eq!(allowed, 4, "burst is twice the rate");
        assert!(!limiter.allow(key, 2, start));
        assert!(limiter.allow(key, 2, start + Duration::from_millis(500)), "refilled one token");
        assert!(limiter.allow(RateKey::User { event_id: 2, user_id: 1 }, 2, start), "buckets are per event");
        assert!((0..100).all(|_| limiter.allow(key, 0, start)), "0 means unlimited");
        limiter.sweep(start + IDLE_BUCKET_TTL + Duration::from_secs(1));
        assert!(limiter.is_empty());
    }
}
