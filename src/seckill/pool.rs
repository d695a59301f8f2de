//! The shared stock pool of `stock_authority = "redis"`: every node's stock
//! actor sells from a lease it took from here, so no node owns an event's
//! whole stock and several nodes can sell it at once without overselling.
//!
//! Per event (the `{id}` is a Redis Cluster hash tag, so all keys of one
//! event live in one slot and one script may touch them all):
//! - `{prefix}seckill:{id}:pool`: units leased to no node (an integer);
//! - `…:seq`: bumped on every change of the pool, so nodes order reports;
//! - `…:leases`: hash node id -> units leased and not yet reported sold or
//!   given back;
//! - `…:expiry`: sorted set node id -> lease deadline (Unix ms, Redis's clock);
//! - `…:users`: hash user id -> units the user holds, for per-user limits;
//! - `…:rate:user:{user}`, `…:rate:ip:{ip}`: the buy path's cluster-wide
//!   rate buckets (one number each, gone once full again; see
//!   [`super::ratelimit`]), taken in the same script as the user's claim.
//!
//! Each operation is ONE Lua script, so it is atomic however many nodes
//! race. Every change of the pool is published on `{prefix}seckill:stock`
//! as `pool {event} {units} {seq}`, so every node's gate hears "sold out"
//! (and "restocked") at once. Redis may still over-grant after losing its
//! data; the database's CHECKs stay the final guard against overselling.

use std::collections::HashMap;
use std::net::IpAddr;

use actors::stock::PoolLevel;
use redis::{Script, ScriptInvocation};

use super::ratelimit::{BuyRates, RateKey, SharedRate, GCRA};
use super::store::EventRow;
use crate::config::SeckillSettings;
use crate::kv::Kv;

/// Helpers every script starts with. KEYS start with the five keys of one
/// event (pool, seq, leases, expiry, users); ARGV starts with the channel,
/// the event id and the keys' expiry (Unix seconds, 0 = leave it).
const PRELUDE: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function keep(key)
  if ARGV[3] ~= '0' then redis.call('EXPIREAT', key, ARGV[3]) end
end
local function level()
  return {tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(redis.call('GET', KEYS[2]) or '0')}
end
local function pool_add(delta)
  local pool = redis.call('INCRBY', KEYS[1], delta)
  local seq = redis.call('INCR', KEYS[2])
  keep(KEYS[2])
  redis.call('PUBLISH', ARGV[1], 'pool ' .. ARGV[2] .. ' ' .. pool .. ' ' .. seq)
  return {pool, seq}
end
local function lease_of(node)
  return tonumber(redis.call('HGET', KEYS[3], node) or '0')
end
local function set_lease(node, units)
  if units > 0 then
    redis.call('HSET', KEYS[3], node, units)
  else
    redis.call('HDEL', KEYS[3], node)
    redis.call('ZREM', KEYS[4], node)
  end
end
local function unclaim(user, units)
  local left = tonumber(redis.call('HGET', KEYS[5], user) or '0') - units
  if left > 0 then redis.call('HSET', KEYS[5], user, left) else redis.call('HDEL', KEYS[5], user) end
end
";

/// ARGV 4: units, then user/count pairs. Only the first loader initialises
/// (SET NX), from the database's remaining stock and per-user counts.
const INIT: &str = r"
if not redis.call('SET', KEYS[1], ARGV[4], 'NX', 'EXAT', ARGV[3]) then return 0 end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1]) end
keep(KEYS[5])
redis.call('INCR', KEYS[2])
keep(KEYS[2])
return 1
";

/// ARGV 4: node, 5: chunk, 6: ttl ms. Leases min(chunk, pool) units.
/// Answers {units, pool, seq}; units -1 when the pool is not initialised.
const LEASE: &str = r"
local pool = redis.call('GET', KEYS[1])
if not pool then return {-1, 0, 0} end
local n = math.min(tonumber(ARGV[5]), tonumber(pool))
if n <= 0 then
  local l = level()
  return {0, l[1], l[2]}
end
local l = pool_add(-n)
redis.call('HINCRBY', KEYS[3], ARGV[4], n)
redis.call('ZADD', KEYS[4], now_ms() + tonumber(ARGV[6]), ARGV[4])
keep(KEYS[3])
keep(KEYS[4])
return {n, l[1], l[2]}
";

/// ARGV 4: node, 5: ttl ms. Pushes the node's deadline on; 0 when it holds
/// no lease (never had one, or it expired and was reclaimed).
const RENEW: &str = r"
if redis.call('HEXISTS', KEYS[3], ARGV[4]) == 0 then return 0 end
redis.call('ZADD', KEYS[4], now_ms() + tonumber(ARGV[5]), ARGV[4])
return 1
";

/// ARGV 4: node, 5: units. Returns up to that many leased units to the
/// pool (no more than the lease holds). Answers {units, pool, seq}.
const GIVE_BACK: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0} end
local held = lease_of(ARGV[4])
local n = math.min(tonumber(ARGV[5]), held)
set_lease(ARGV[4], held - n)
local l
if n > 0 then l = pool_add(n) else l = level() end
return {n, l[1], l[2]}
";

/// ARGV 4: node, 5: units. The units were sold: they leave the lease for
/// good. Answers the units taken off (fewer if the lease was reclaimed).
const REPORT_SOLD: &str = r"
local held = lease_of(ARGV[4])
local n = math.min(tonumber(ARGV[5]), held)
set_lease(ARGV[4], held - n)
return n
";

/// Every lease past its deadline goes back into the pool. Answers
/// {units, pool, seq}; units -1 when the pool is not initialised.
const RECLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0} end
local total = 0
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now_ms())) do
  total = total + lease_of(node)
  redis.call('HDEL', KEYS[3], node)
  redis.call('ZREM', KEYS[4], node)
end
local l
if total > 0 then l = pool_add(total) else l = level() end
return {total, l[1], l[2]}
";

/// KEYS 6, 7: the shopper's and the IP's cluster-wide rate buckets (see
/// [`GCRA`]). ARGV 4: user, 5: units, 6: limit, 7 and 8: the user
/// bucket's interval and window (µs), 9 and 10: the IP bucket's. A request
/// over either rate is refused (-1) with nothing spent, so it costs the
/// shopper no allowance. Otherwise it takes its token of each bucket (the
/// request was made, whether or not the limit then refuses it), and adds
/// the units to the user's count only if that stays within the limit: 1 if
/// added, 0 if refused.
const CLAIM: &str = r"
local now = now_us()
local user_ok, user_tat = gcra(KEYS[6], tonumber(ARGV[7]), tonumber(ARGV[8]), now)
local ip_ok, ip_tat = gcra(KEYS[7], tonumber(ARGV[9]), tonumber(ARGV[10]), now)
if not (user_ok and ip_ok) then return -1 end
gcra_spend(KEYS[6], user_tat, now)
gcra_spend(KEYS[7], ip_tat, now)
local after = tonumber(redis.call('HGET', KEYS[5], ARGV[4]) or '0') + tonumber(ARGV[5])
if after > tonumber(ARGV[6]) then return 0 end
redis.call('HSET', KEYS[5], ARGV[4], after)
keep(KEYS[5])
return 1
";

/// ARGV 4: user, 5: units. Undoes a claim whose order was not written.
const UNCLAIM: &str = r"
unclaim(ARGV[4], tonumber(ARGV[5]))
return 1
";

/// ARGV 4: user, 5: units. An order's units came back (it expired or was
/// cancelled): to the pool and to the user's allowance. Answers
/// {units, pool, seq}; units -1 when the pool is gone (nothing to do).
const RELEASE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0} end
unclaim(ARGV[4], tonumber(ARGV[5]))
local l = pool_add(tonumber(ARGV[5]))
return {tonumber(ARGV[5]), l[1], l[2]}
";

/// How long the keys of an event outlive its end: orders expiring after
/// the end still give their units back, then the keys go.
const KEYS_OUTLIVE_END_SECS: i64 = 86_400;

/// The keys of one event, named once.
#[derive(Debug, Clone)]
pub struct PoolKeys {
    event_id: i64,
    keys: [String; 5],
    /// When the keys expire (Unix seconds); 0 leaves their expiry alone.
    expire_at: i64,
}

/// Units moved by a script and the pool's level after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Units leased, given back, reclaimed or released by the call.
    pub units: u32,
    /// The pool after the call, for the actor's gate.
    pub pool: PoolLevel,
}

struct Scripts {
    init: Script,
    lease: Script,
    renew: Script,
    give_back: Script,
    report_sold: Script,
    reclaim: Script,
    claim: Script,
    unclaim: Script,
    release: Script,
}

/// This node's handle on the shared pools: its node id, lease terms and
/// the scripts.
pub struct StockPool {
    kv: Kv,
    node: String,
    channel: String,
    chunk: u32,
    ttl_ms: u64,
    scripts: Scripts,
}

/// Why a pool could not be used: Redis failed, or the event's keys are
/// missing (never initialised, or lost with Redis's data).
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Redis did not answer or refused the script.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The event's pool is absent: rebuild it from the database.
    #[error("the stock pool of event {0} is not initialised")]
    Missing(i64),
}

impl StockPool {
    /// A handle for this process, with a fresh random node id (a restarted
    /// process is a new node; its old lease expires and is reclaimed).
    pub fn new(kv: Kv, settings: &SeckillSettings) -> Self {
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            channel: kv.key("seckill:stock"),
            kv,
            node: uuid::Uuid::new_v4().to_string(),
            chunk: settings.lease_chunk.max(1),
            ttl_ms: settings.lease_ttl_ms.max(1),
            scripts: Scripts {
                init: script(INIT),
                lease: script(LEASE),
                renew: script(RENEW),
                give_back: script(GIVE_BACK),
                report_sold: script(REPORT_SOLD),
                reclaim: script(RECLAIM),
                claim: Script::new(&format!("{PRELUDE}{GCRA}{CLAIM}")),
                unclaim: script(UNCLAIM),
                release: script(RELEASE),
            },
        }
    }

    /// This node's id in the leases.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Tells every node `news` (an opened or closed sale; the scripts
    /// publish the pools' levels themselves).
    pub async fn publish(&self, news: PoolNews) -> redis::RedisResult<()> {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(news.message())
            .query_async(&mut self.kv.conn())
            .await?;
        Ok(())
    }

    /// Follows the pool channel for ever (see [`Kv::follow`]).
    pub async fn follow(&self, on: impl AsyncFnMut(crate::kv::Signal)) {
        self.kv.follow(&self.channel, on).await;
    }

    /// Units asked for per lease.
    pub fn chunk(&self) -> u32 {
        self.chunk
    }

    /// How often a node renews its leases: three times per lease life, so
    /// one late renewal does not lose a lease.
    pub fn renew_every(&self) -> std::time::Duration {
        std::time::Duration::from_millis((self.ttl_ms / 3).max(1))
    }

    /// The keys of `event`, expiring a day after its end.
    pub fn keys(&self, event: &EventRow) -> PoolKeys {
        self.keys_of(event.id, event.ends_at.timestamp() + KEYS_OUTLIVE_END_SECS)
    }

    /// The keys of event `event_id`; `expire_at` 0 leaves their expiry alone.
    pub fn keys_of(&self, event_id: i64, expire_at: i64) -> PoolKeys {
        let key = |what: &str| self.kv.key(format_args!("seckill:{{{event_id}}}:{what}"));
        PoolKeys {
            event_id,
            keys: [key("pool"), key("seq"), key("leases"), key("expiry"), key("users")],
            expire_at,
        }
    }

    fn invocation<'a>(&self, script: &'a Script, keys: &PoolKeys) -> ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        for key in &keys.keys {
            invocation.key(key);
        }
        invocation.arg(&self.channel).arg(keys.event_id).arg(keys.expire_at);
        invocation
    }

    /// Creates the pool with `units` and the per-user counts `held`, unless
    /// it exists. Answers whether this call created it.
    pub async fn init(
        &self,
        keys: &PoolKeys,
        units: u32,
        held: &HashMap<i64, u32>,
    ) -> Result<bool, PoolError> {
        let mut invocation = self.invocation(&self.scripts.init, keys);
        invocation.arg(units);
        for (user, count) in held {
            invocation.arg(*user).arg(*count);
        }
        let created: i64 = invocation.invoke_async(&mut self.kv.conn()).await?;
        Ok(created == 1)
    }

    /// Leases up to one chunk for this node.
    pub async fn lease(&self, keys: &PoolKeys) -> Result<Moved, PoolError> {
        let mut invocation = self.invocation(&self.scripts.lease, keys);
        invocation.arg(&self.node).arg(self.chunk).arg(self.ttl_ms);
        moved(keys, invocation.invoke_async(&mut self.kv.conn()).await?)
    }

    /// Keeps this node's lease alive; `false` when it has none (any more).
    pub async fn renew(&self, keys: &PoolKeys) -> Result<bool, PoolError> {
        let mut invocation = self.invocation(&self.scripts.renew, keys);
        invocation.arg(&self.node).arg(self.ttl_ms);
        let renewed: i64 = invocation.invoke_async(&mut self.kv.conn()).await?;
        Ok(renewed == 1)
    }

    /// Returns up to `units` of this node's lease to the pool.
    pub async fn give_back(&self, keys: &PoolKeys, units: u32) -> Result<Moved, PoolError> {
        let mut invocation = self.invocation(&self.scripts.give_back, keys);
        invocation.arg(&self.node).arg(units);
        moved(keys, invocation.invoke_async(&mut self.kv.conn()).await?)
    }

    /// Takes `units` sold off this node's lease; answers how many it held.
    pub async fn report_sold(&self, keys: &PoolKeys, units: u32) -> Result<u32, PoolError> {
        let mut invocation = self.invocation(&self.scripts.report_sold, keys);
        invocation.arg(&self.node).arg(units);
        let taken: i64 = invocation.invoke_async(&mut self.kv.conn()).await?;
        Ok(u32::try_from(taken).unwrap_or(0))
    }

    /// Puts every expired lease (of any node) back into the pool.
    pub async fn reclaim(&self, keys: &PoolKeys) -> Result<Moved, PoolError> {
        let invocation = self.invocation(&self.scripts.reclaim, keys);
        moved(keys, invocation.invoke_async(&mut self.kv.conn()).await?)
    }

    /// Takes a token of the cluster-wide buckets of `user` and `ip` at
    /// `rates`, then counts `units` against `user`'s `limit`, in one script.
    pub async fn claim(
        &self,
        keys: &PoolKeys,
        user: i64,
        ip: IpAddr,
        units: u32,
        limit: u32,
        rates: BuyRates,
    ) -> Result<Claim, PoolError> {
        let event_id = keys.event_id;
        let mut invocation = self.invocation(&self.scripts.claim, keys);
        invocation
            .key(self.kv.key(RateKey::User { event_id, user_id: user }.shared_name()))
            .key(self.kv.key(RateKey::Ip { event_id, ip }.shared_name()));
        invocation.arg(user).arg(units).arg(limit);
        for rate in [SharedRate::per_sec(rates.user), SharedRate::per_sec(rates.ip)] {
            invocation.arg(rate.interval_us).arg(rate.window_us);
        }
        let claimed: i64 = invocation.invoke_async(&mut self.kv.conn()).await?;
        Ok(match claimed {
            1 => Claim::Claimed,
            0 => Claim::LimitReached,
            _ => Claim::RateLimited,
        })
    }

    /// Undoes a [`claim`](Self::claim) whose order was not written.
    pub async fn unclaim(&self, keys: &PoolKeys, user: i64, units: u32) -> Result<(), PoolError> {
        let mut invocation = self.invocation(&self.scripts.unclaim, keys);
        invocation.arg(user).arg(units);
        let _: i64 = invocation.invoke_async(&mut self.kv.conn()).await?;
        Ok(())
    }

    /// An order's units came back: to the pool and to the user's allowance.
    pub async fn release(&self, keys: &PoolKeys, user: i64, units: u32) -> Result<Moved, PoolError> {
        let mut invocation = self.invocation(&self.scripts.release, keys);
        invocation.arg(user).arg(units);
        moved(keys, invocation.invoke_async(&mut self.kv.conn()).await?)
    }
}

/// How a claim on a shopper's allowance was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The units are counted against the shopper's limit.
    Claimed,
    /// They would pass the per-user limit; nothing was counted.
    LimitReached,
    /// The shopper or the IP is over its rate across the cluster; nothing
    /// was counted or spent.
    RateLimited,
}

/// Reads a script's `{units, pool, seq}` answer.
fn moved(keys: &PoolKeys, answer: Vec<i64>) -> Result<Moved, PoolError> {
    match answer.as_slice() {
        [units, pool, seq] if *units >= 0 => Ok(Moved {
            units: u32::try_from(*units).unwrap_or(u32::MAX),
            pool: PoolLevel {
                units: u32::try_from(*pool).unwrap_or(0),
                seq: u64::try_from(*seq).unwrap_or(0),
            },
        }),
        _ => Err(PoolError::Missing(keys.event_id)),
    }
}

/// News on the pool channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolNews {
    /// The pool of `event_id` changed.
    Level { event_id: i64, pool: PoolLevel },
    /// An operator opened the sale early (on some node).
    Opened { event_id: i64 },
    /// An operator closed the sale (on some node).
    Closed { event_id: i64 },
}

impl PoolNews {
    /// Reads a message as published (`pool {event} {units} {seq}`,
    /// `opened {event}`, `closed {event}`).
    pub fn parse(message: &str) -> Option<Self> {
        let mut words = message.split(' ');
        let kind = words.next()?;
        let event_id = words.next()?.parse().ok()?;
        match kind {
            "pool" => {
                let units = words.next()?.parse::<i64>().ok()?;
                let seq = words.next()?.parse().ok()?;
                let units = u32::try_from(units.max(0)).unwrap_or(u32::MAX);
                Some(Self::Level { event_id, pool: PoolLevel { units, seq } })
            }
            "opened" => Some(Self::Opened { event_id }),
            "closed" => Some(Self::Closed { event_id }),
            _ => None,
        }
    }

    /// The message as published.
    pub fn message(&self) -> String {
        match self {
            Self::Level { event_id, pool } => format!("pool {event_id} {} {}", pool.units, pool.seq),
            Self::Opened { event_id } => format!("opened {event_id}"),
            Self::Closed { event_id } => format!("closed {event_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    use futures_util::StreamExt;

    use super::*;
    use crate::config::{RedisSettings, Settings};

    /// A node on a fresh key prefix (or on `prefix`, to share it).
    async fn node(prefix: &str, chunk: u32, ttl_ms: u64) -> StockPool {
        let settings = Settings::load_from(Path::new("config"), "test").unwrap();
        let kv =
            Kv::connect(&RedisSettings { url: settings.redis.url.clone(), key_prefix: prefix.to_owned() })
                .await
                .unwrap();
        let mut seckill = settings.seckill;
        seckill.lease_chunk = chunk;
        seckill.lease_ttl_ms = ttl_ms;
        StockPool::new(kv, &seckill)
    }

    fn prefix() -> String {
        format!("test:{}:", uuid::Uuid::new_v4().simple())
    }

    async fn forget(pool: &StockPool, prefix: &str) {
        let mut conn = pool.kv.conn();
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
        }
    }

    fn keys(pool: &StockPool) -> PoolKeys {
        pool.keys_of(1, chrono::Utc::now().timestamp() + 3600)
    }

    fn units(m: Moved) -> (u32, u32) {
        (m.units, m.pool.units)
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    /// Whether a claim with no rate limits went through.
    async fn claimed(pool: &StockPool, keys: &PoolKeys, user: i64, units: u32, limit: u32) -> bool {
        let rates = BuyRates { user: 0, ip: 0 };
        pool.claim(keys, user, IP, units, limit, rates).await.unwrap() == Claim::Claimed
    }

    #[tokio::test]
    async fn only_the_first_loader_initialises_and_leases_come_in_chunks_until_the_pool_is_empty() {
        let prefix = prefix();
        let pool = node(&prefix, 50, 10_000).await;
        let keys = keys(&pool);
        assert!(pool.init(&keys, 120, &HashMap::new()).await.unwrap());
        assert!(!pool.init(&keys, 999, &HashMap::new()).await.unwrap(), "SET NX: the first loader wins");
        let first = pool.lease(&keys).await.unwrap();
        assert_eq!(units(first), (50, 70));
        assert_eq!(units(pool.lease(&keys).await.unwrap()), (50, 20));
        let last = pool.lease(&keys).await.unwrap();
        assert_eq!(units(last), (20, 0));
        assert!(last.pool.seq > first.pool.seq, "every change bumps the sequence");
        assert_eq!(units(pool.lease(&keys).await.unwrap()), (0, 0));
        forget(&pool, &prefix).await;
    }

    #[tokio::test]
    async fn sold_units_leave_the_lease_and_only_what_is_held_can_be_given_back() {
        let prefix = prefix();
        let pool = node(&prefix, 50, 10_000).await;
        let keys = keys(&pool);
        pool.init(&keys, 100, &HashMap::new()).await.unwrap();
        pool.lease(&keys).await.unwrap();
        assert_eq!(pool.report_sold(&keys, 10).await.unwrap(), 10);
        assert!(pool.renew(&keys).await.unwrap());
        // 40 are held: asking to give back more returns just those.
        assert_eq!(units(pool.give_back(&keys, 100).await.unwrap()), (40, 90));
        assert!(!pool.renew(&keys).await.unwrap(), "an emptied lease is gone");
        assert_eq!(pool.report_sold(&keys, 5).await.unwrap(), 0, "nothing to take off");
        forget(&pool, &prefix).await;
    }

    #[tokio::test]
    async fn a_lease_not_renewed_in_time_is_reclaimed_by_another_node() {
        let prefix = prefix();
        // A 1 s lease, renewed at 0.6 s and checked at 1.2 s: 0.4 s of slack
        // either side, so a loaded CI machine's late timers do not matter.
        let dead = node(&prefix, 30, 1000).await;
        let live = node(&prefix, 30, 1000).await;
        let keys = keys(&dead);
        dead.init(&keys, 100, &HashMap::new()).await.unwrap();
        assert_eq!(units(dead.lease(&keys).await.unwrap()), (30, 70));
        assert_eq!(units(live.lease(&keys).await.unwrap()), (30, 40));
        assert_eq!(units(live.reclaim(&keys).await.unwrap()), (0, 40), "nothing has expired yet");
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert!(live.renew(&keys).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        // The dead node's 30 come back; the live node renewed, so it keeps its 30.
        assert_eq!(units(live.reclaim(&keys).await.unwrap()), (30, 70));
        assert!(!dead.renew(&keys).await.unwrap(), "the dead node's lease is gone");
        assert_eq!(
            units(dead.give_back(&keys, 30).await.unwrap()),
            (0, 70),
            "its units are not counted twice"
        );
        assert_eq!(units(live.give_back(&keys, 30).await.unwrap()), (30, 100));
        forget(&live, &prefix).await;
    }

    #[tokio::test]
    async fn per_user_claims_stay_within_the_limit_and_releases_refill_pool_and_allowance() {
        let prefix = prefix();
        let pool = node(&prefix, 10, 10_000).await;
        let keys = keys(&pool);
        pool.init(&keys, 10, &HashMap::from([(7, 2)])).await.unwrap();
        assert!(!claimed(&pool, &keys, 7, 1, 2).await, "counts from the database are loaded");
        assert!(claimed(&pool, &keys, 8, 1, 2).await);
        assert!(!claimed(&pool, &keys, 8, 2, 2).await, "1 + 2 > 2: refused, and nothing added");
        assert!(claimed(&pool, &keys, 8, 1, 2).await);
        pool.unclaim(&keys, 8, 1).await.unwrap();
        assert!(claimed(&pool, &keys, 8, 1, 2).await, "an undone claim frees the allowance");

        pool.lease(&keys).await.unwrap();
        pool.report_sold(&keys, 2).await.unwrap();
        let released = pool.release(&pool.keys_of(1, 0), 7, 2).await.unwrap();
        assert_eq!(units(released), (2, 2), "an expired order's units go back to the pool");
        assert!(claimed(&pool, &keys, 7, 2, 2).await, "and to the user's allowance");
        forget(&pool, &prefix).await;
        assert!(matches!(pool.release(&keys, 7, 1).await, Err(PoolError::Missing(1))));
    }

    #[tokio::test]
    async fn the_rate_buckets_are_shared_by_the_nodes_and_a_refusal_spends_nothing() {
        let prefix = prefix();
        let (a, b) = (node(&prefix, 10, 10_000).await, node(&prefix, 10, 10_000).await);
        let keys = keys(&a);
        a.init(&keys, 1000, &HashMap::new()).await.unwrap();
        // 2/s per user (a burst of 4), IPs unlimited; requests alternate between the nodes.
        let rates = BuyRates { user: 2, ip: 0 };
        let mut answers = Vec::new();
        for n in 0..10 {
            let node = if n % 2 == 0 { &a } else { &b };
            answers.push(node.claim(&keys, 7, IP, 1, 100, rates).await.unwrap());
        }
        let granted = answers.iter().filter(|c| **c == Claim::Claimed).count();
        assert_eq!(granted, 4, "the burst once for both nodes: {answers:?}");
        assert_eq!(answers[4..], [Claim::RateLimited; 6]);
        assert!(claimed(&a, &keys, 7, 96, 100).await, "rate-limited requests claimed no units");
        assert_eq!(
            b.claim(&keys, 8, IP, 1, 100, rates).await.unwrap(),
            Claim::Claimed,
            "buckets are per user"
        );
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert_eq!(a.claim(&keys, 9, IP, 1, 1, rates).await.unwrap(), Claim::Claimed);
        assert_eq!(
            a.claim(&keys, 9, IP, 1, 1, rates).await.unwrap(),
            Claim::LimitReached,
            "past the rate, the limit is checked"
        );
        assert_eq!(
            b.claim(&keys, 7, IP, 1, 200, rates).await.unwrap(),
            Claim::Claimed,
            "one token back after half a second"
        );
        assert_eq!(b.claim(&keys, 7, IP, 1, 200, rates).await.unwrap(), Claim::RateLimited);

        // 1/s per IP: the IP's burst of 2 is shared by every user behind it.
        let by_ip = BuyRates { user: 0, ip: 1 };
        let ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
        let mut ip_answers = Vec::new();
        for user in 20..24 {
            let node = if user % 2 == 0 { &a } else { &b };
            ip_answers.push(node.claim(&keys, user, ip, 1, 1, by_ip).await.unwrap());
        }
        assert_eq!(ip_answers, [Claim::Claimed, Claim::Claimed, Claim::RateLimited, Claim::RateLimited]);
        let mut conn = a.kv.conn();
        let ttl: i64 = redis::cmd("PTTL")
            .arg(a.kv.key(RateKey::Ip { event_id: 1, ip }.shared_name()))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((1..=2000).contains(&ttl), "a bucket key expires once full again: {ttl} ms");
        forget(&a, &prefix).await;
    }

    #[tokio::test]
    async fn every_change_of_the_pool_is_published() {
        let prefix = prefix();
        let pool = node(&prefix, 5, 10_000).await;
        let keys = keys(&pool);
        pool.init(&keys, 5, &HashMap::new()).await.unwrap();
        let mut pubsub = pool.kv.pubsub().await.unwrap();
        pubsub.subscribe(&pool.channel).await.unwrap();
        let leased = pool.lease(&keys).await.unwrap();
        pool.publish(PoolNews::Closed { event_id: 1 }).await.unwrap();
        let mut messages = pubsub.on_message();
        let mut next = async || {
            let message = tokio::time::timeout(std::time::Duration::from_secs(2), messages.next()).await;
            PoolNews::parse(&message.unwrap().unwrap().get_payload::<String>().unwrap())
        };
        assert_eq!(next().await, Some(PoolNews::Level { event_id: 1, pool: leased.pool }));
        assert_eq!(leased.pool.units, 0, "sold out: every node hears it");
        assert_eq!(next().await, Some(PoolNews::Closed { event_id: 1 }));
        assert_eq!(PoolNews::parse("pool x 1 2"), None);
        forget(&pool, &prefix).await;
    }
}
