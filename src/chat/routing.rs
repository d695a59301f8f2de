//! Agents' presence and loads in Redis, for routing across a cluster: the
//! same rules as `actors::chat::router` (least-loaded online agent below
//! the cap, a slot reserved in the same step, counts starting from the
//! database when an agent comes online), but one state for every node.
//!
//! Per shop, `{prefix}chat:shop:{id}:agents` counts each agent's
//! connections per node (field `agent:node`) and `…:load` holds each
//! online agent's open conversations. An agent counts as online while one
//! of its connections is on a node whose `{prefix}chat:alive:{node}` key is
//! kept alive by that node (so a dead node's agents drop out within
//! `chat.owner_ttl_ms`). Entries of a node not seen for much longer
//! (its `…:seen:{node}` key, kept for [`SEEN_FOR_TTLS`] times as long, is
//! gone too) are swept on the next look; a node whose alive key only
//! lapsed for a moment keeps its agents.

use super::cluster::ChatLink;
use crate::kv::Kv;

/// How many `chat.owner_ttl_ms` a node's entries outlive its last beat
/// before they are swept.
pub const SEEN_FOR_TTLS: u32 = 12;

/// `live(agents_key, alive_prefix, seen_prefix)`: the agents with a
/// connection on a live node, as a set; entries of long-gone nodes (and
/// unreadable ones) are removed on the way. The node keys are not declared
/// in KEYS: these scripts need a single Redis, not Redis Cluster.
const LIVE: &str = r"
local function live(agents_key, alive_prefix, seen_prefix)
  local set = {}
  local all = redis.call('HGETALL', agents_key)
  for i = 1, #all, 2 do
    local agent, node = string.match(all[i], '^(%-?%d+):(.+)$')
    local count = tonumber(all[i + 1]) or 0
    if not node or count <= 0 or redis.call('EXISTS', seen_prefix .. node) == 0 then
      redis.call('HDEL', agents_key, all[i])
    elseif redis.call('EXISTS', alive_prefix .. node) == 1 then
      set[agent] = true
    end
  end
  return set
end
";

/// KEYS: agents, load. ARGV: agent, node, open (stored), alive and seen prefixes.
/// Answers 1 when the agent just came online anywhere.
const ONLINE: &str = r"
local was = live(KEYS[1], ARGV[4], ARGV[5])[ARGV[1]]
redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 1)
if was then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1";

/// KEYS: agents, load. ARGV: agent, node, alive and seen prefixes. Answers 1 when the
/// agent is now offline everywhere (its load is then forgotten).
const OFFLINE: &str = r"
local field = ARGV[1] .. ':' .. ARGV[2]
if redis.call('HINCRBY', KEYS[1], field, -1) <= 0 then redis.call('HDEL', KEYS[1], field) end
if live(KEYS[1], ARGV[3], ARGV[4])[ARGV[1]] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1";

/// KEYS: agents, load. ARGV: agent. The agent no longer serves the shop:
/// their connections on every node stop counting, and their load goes.
const GONE: &str = r"
local all = redis.call('HKEYS', KEYS[1])
for _, field in ipairs(all) do
  if string.match(field, '^(%-?%d+):') == ARGV[1] then redis.call('HDEL', KEYS[1], field) end
end
redis.call('HDEL', KEYS[2], ARGV[1])
return 0";

/// KEYS: agents, load. ARGV: cap, only ('' for anyone), alive and seen prefixes.
/// Reserves a slot of the least-loaded online agent below the cap (ties:
/// the lowest id); answers its id, or nothing.
const PICK: &str = r"
local best, best_open
for agent in pairs(live(KEYS[1], ARGV[3], ARGV[4])) do
  if ARGV[2] == '' or ARGV[2] == agent then
    local open = tonumber(redis.call('HGET', KEYS[2], agent)) or 0
    if open < tonumber(ARGV[1]) and (not best or open < best_open
        or (open == best_open and tonumber(agent) < tonumber(best))) then
      best, best_open = agent, open
    end
  end
end
if not best then return false end
redis.call('HINCRBY', KEYS[2], best, 1)
return best";

/// KEYS: load. ARGV: agent. Gives back one slot.
const RELEASE: &str = r"
local open = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
if open and open > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], -1) end
return 0";

/// KEYS: agents. ARGV: alive and seen prefixes. The online agents.
const ONLINE_AGENTS: &str = r"
local agents = {}
for agent in pairs(live(KEYS[1], ARGV[1], ARGV[2])) do table.insert(agents, agent) end
return agents";

/// The key a node keeps alive while it runs.
pub fn alive_key(kv: &Kv, node: &str) -> String {
    format!("{}{node}", alive_prefix(kv))
}

/// The key a node keeps for [`SEEN_FOR_TTLS`] times as long.
pub fn seen_key(kv: &Kv, node: &str) -> String {
    format!("{}{node}", seen_prefix(kv))
}

fn alive_prefix(kv: &Kv) -> String {
    kv.key("chat:alive:")
}

fn seen_prefix(kv: &Kv) -> String {
    kv.key("chat:seen:")
}

/// Routing state in Redis, shared by every node.
pub struct SharedRouting {
    link: std::sync::Arc<ChatLink>,
    cap: u32,
    online: redis::Script,
    offline: redis::Script,
    gone: redis::Script,
    pick: redis::Script,
    release: redis::Script,
    online_agents: redis::Script,
}

impl SharedRouting {
    /// Routing through `link`'s Redis, giving each agent at most `cap` conversations.
    pub fn new(link: std::sync::Arc<ChatLink>, cap: u32) -> Self {
        let script = |body: &str| redis::Script::new(&format!("{LIVE}{body}"));
        Self {
            link,
            cap,
            online: script(ONLINE),
            offline: script(OFFLINE),
            gone: redis::Script::new(GONE),
            pick: script(PICK),
            release: redis::Script::new(RELEASE),
            online_agents: script(ONLINE_AGENTS),
        }
    }

    fn keys(&self, shop_id: i64) -> (String, String) {
        let kv = self.link.kv();
        (kv.key(format_args!("chat:shop:{shop_id}:agents")), kv.key(format_args!("chat:shop:{shop_id}:load")))
    }

    /// One more connection of `agent_id` (holding `open` conversations
    /// there); whether the agent just came online.
    pub async fn agent_online(&self, shop_id: i64, agent_id: i64, open: u32) -> redis::RedisResult<bool> {
        let (agents, load) = self.keys(shop_id);
        let came: i64 = self
            .online
            .key(agents)
            .key(load)
            .arg(agent_id)
            .arg(&**self.link.node())
            .arg(open)
            .arg(alive_prefix(self.link.kv()))
            .arg(seen_prefix(self.link.kv()))
            .invoke_async(&mut self.link.kv().conn())
            .await?;
        Ok(came == 1)
    }

    /// One connection of `agent_id` fewer; whether the agent is now offline.
    pub async fn agent_offline(&self, shop_id: i64, agent_id: i64) -> redis::RedisResult<bool> {
        let (agents, load) = self.keys(shop_id);
        let gone: i64 = self
            .offline
            .key(agents)
            .key(load)
            .arg(agent_id)
            .arg(&**self.link.node())
            .arg(alive_prefix(self.link.kv()))
            .arg(seen_prefix(self.link.kv()))
            .invoke_async(&mut self.link.kv().conn())
            .await?;
        Ok(gone == 1)
    }

    /// Takes `agent_id` out of the shop's routing on every node.
    pub async fn agent_gone(&self, shop_id: i64, agent_id: i64) -> redis::RedisResult<()> {
        let (agents, load) = self.keys(shop_id);
        let _: i64 =
            self.gone.key(agents).key(load).arg(agent_id).invoke_async(&mut self.link.kv().conn()).await?;
        Ok(())
    }

    /// Picks and reserves the least-loaded online agent (`only` one, for a transfer).
    pub async fn pick(&self, shop_id: i64, only: Option<i64>) -> redis::RedisResult<Option<i64>> {
        let (agents, load) = self.keys(shop_id);
        self.pick
            .key(agents)
            .key(load)
            .arg(self.cap)
            .arg(only.map(|id| id.to_string()).unwrap_or_default())
            .arg(alive_prefix(self.link.kv()))
            .arg(seen_prefix(self.link.kv()))
            .invoke_async(&mut self.link.kv().conn())
            .await
    }

    /// Gives back a slot of `agent_id`.
    pub async fn release(&self, shop_id: i64, agent_id: i64) -> redis::RedisResult<()> {
        let (_, load) = self.keys(shop_id);
        let _: i64 = self.release.key(load).arg(agent_id).invoke_async(&mut self.link.kv().conn()).await?;
        Ok(())
    }

    /// The online agents of a shop, by id.
    pub async fn online_agents(&self, shop_id: i64) -> redis::RedisResult<Vec<i64>> {
        let (agents, _) = self.keys(shop_id);
        let mut online: Vec<i64> = self
            .online_agents
            .key(agents)
            .arg(alive_prefix(self.link.kv()))
            .arg(seen_prefix(self.link.kv()))
            .invoke_async(&mut self.link.kv().conn())
            .await?;
        online.sort_unstable();
        Ok(online)
    }
}
