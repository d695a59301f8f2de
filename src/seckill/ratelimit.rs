//! Token buckets for the buy path, per user and per IP and per event. A
//! bucket holds up to twice its rate (the burst) and refills continuously.
//!
//! Every node keeps its own buckets in memory ([`RateLimiter`]); idle ones
//! are swept so memory stays bounded. That is all of it with
//! `stock_authority = "local"`. With `"redis"` (several nodes) the same
//! buckets also exist once for the whole cluster in Redis ([`GCRA`], run
//! inside the allowance claim the buy path makes anyway, so they cost no
//! extra round trip): a shopper spraying requests at every node gets the
//! rate once, not once per node. The node's own bucket stays in front as a
//! free first filter: it only sees part of a shopper's requests, so it never
//! refuses one the cluster's bucket would have let through for a shopper
//! within the rate, and a flood at one node is shed there without Redis.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Whose requests a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    User { event_id: i64, user_id: i64 },
    Ip { event_id: i64, ip: IpAddr },
}

impl RateKey {
    /// The Redis key name (before the deployment prefix) of this bucket for
    /// the whole cluster. `{event_id}` is the event's Redis Cluster hash tag,
    /// as for its stock pool, so one script may touch both.
    pub fn shared_name(&self) -> String {
        match self {
            Self::User { event_id, user_id } => format!("seckill:{{{event_id}}}:rate:user:{user_id}"),
            Self::Ip { event_id, ip } => format!("seckill:{{{event_id}}}:rate:ip:{ip}"),
        }
    }
}

/// The rates of one event's buy path in requests per second (0 = off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuyRates {
    /// Per shopper.
    pub user: u32,
    /// Per client IP.
    pub ip: u32,
}

/// A rate as the cluster-wide bucket in Redis takes it: GCRA (the
/// "generic cell rate algorithm"), which is a token bucket kept as ONE
/// number per key, the theoretical arrival time (TAT) of the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedRate {
    /// Microseconds one request costs (1 s / rate); 0 turns the limit off.
    pub interval_us: u64,
    /// How far the TAT may run ahead of now: the burst times the interval.
    pub window_us: u64,
}

impl SharedRate {
    /// `rate_per_sec` requests per second with the same burst as the
    /// node's own buckets (twice the rate); 0 means no limit.
    pub fn per_sec(rate_per_sec: u32) -> Self {
        if rate_per_sec == 0 {
            return Self { interval_us: 0, window_us: 0 };
        }
        let interval_us = 1_000_000 / u64::from(rate_per_sec);
        Self { interval_us, window_us: interval_us * 2 * u64::from(rate_per_sec) }
    }
}

/// Lua helpers of the cluster-wide buckets, for a script to include.
/// `gcra(key, interval, window, now)` answers whether one more request fits
/// and the key's TAT after it; `gcra_spend(key, tat, now)` stores that TAT
/// with an expiry at the moment the bucket is full again (an absent key is a
/// full bucket), so idle buckets vanish by themselves. Times are
/// microseconds of Redis's own clock (`TIME`), the same for every node, and
/// stay below 2^53, so Lua's doubles hold them exactly. Checking every
/// bucket before spending any keeps a refusal from costing a token.
pub const GCRA: &str = r"
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function gcra(key, interval, window, now)
  if interval <= 0 then return true, 0 end
  local tat = math.max(tonumber(redis.call('GET', key) or '0'), now) + interval
  return tat - now <= window, tat
end
local function gcra_spend(key, tat, now)
  if tat > 0 then
    redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
  end
end
";

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
