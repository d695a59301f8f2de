//! Per shop: which agents are online and how many open conversations each
//! holds, sharded by shop id.
//!
//! A pick reserves a slot at once (the agent's count goes up in the same
//! message), so two conversations routed at the same moment can never put
//! an agent over the cap. The server persists what was picked and gives a
//! slot back ([`Release`]) when a conversation closes, moves away, or could
//! not be stored. Counts start from the database when an agent's first
//! connection comes online and are forgotten when the last one leaves.

use std::collections::HashMap;

use actix::prelude::*;

/// One shard of routers.
pub struct ShopRouter {
    shops: HashMap<i64, HashMap<i64, Agent>>,
    cap: u32,
}

#[derive(Debug, Clone, Copy)]
struct Agent {
    connections: u32,
    open: u32,
}

impl ShopRouter {
    /// A shard giving each agent at most `cap` open conversations.
    pub fn new(cap: u32) -> Self {
        Self { shops: HashMap::new(), cap }
    }
}

impl Actor for ShopRouter {
    type Context = Context<Self>;
}

/// One more connection of an agent of `shop_id`, who holds `open`
/// conversations there (as stored). Answers whether the agent just came
/// online (their first connection).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct AgentOnline {
    pub shop_id: i64,
    pub agent_id: i64,
    pub open: u32,
}

/// One connection of an agent fewer. Answers whether the agent is now offline.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct AgentOffline {
    pub shop_id: i64,
    pub agent_id: i64,
}

/// Picks the online agent of `shop_id` with the fewest open conversations
/// below the cap (ties: the lowest id) and reserves a slot; `only` limits
/// the choice to one agent (a transfer). `None` when nobody can take one.
#[derive(Message)]
#[rtype(result = "Option<i64>")]
pub struct PickAgent {
    pub shop_id: i64,
    pub only: Option<i64>,
}

/// Gives back an agent's slot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release {
    pub shop_id: i64,
    pub agent_id: i64,
}

/// The online agents of a shop.
#[derive(Message)]
#[rtype(result = "Vec<i64>")]
pub struct OnlineAgents {
    pub shop_id: i64,
}

impl Handler<AgentOnline> for ShopRouter {
    type Result = bool;

    fn handle(&mut self, msg: AgentOnline, _: &mut Context<Self>) -> bool {
        let agent = self
            .shops
            .entry(msg.shop_id)
            .or_default()
            .entry(msg.agent_id)
            .or_insert(Agent { connections: 0, open: msg.open });
        agent.connections += 1;
        agent.connections == 1
    }
}

impl Handler<AgentOffline> for ShopRouter {
    type Result = bool;

    fn handle(&mut self, msg: AgentOffline, _: &mut Context<Self>) -> bool {
        let Some(agents) = self.shops.get_mut(&msg.shop_id) else { return false };
        let Some(agent) = agents.get_mut(&msg.agent_id) else { return false };
        agent.connections = agent.connections.saturating_sub(1);
        if agent.connections > 0 {
            return false;
        }
        agents.remove(&msg.agent_id);
        if agents.is_empty() {
            self.shops.remove(&msg.shop_id);
        }
        true
    }
}

/// The agent no longer serves the shop: out of its routing at once,
/// whatever connections they still have (their later [`AgentOffline`]s
/// find nothing).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AgentGone {
    pub shop_id: i64,
    pub agent_id: i64,
}

impl Handler<AgentGone> for ShopRouter {
    type Result = ();

    fn handle(&mut self, msg: AgentGone, _: &mut Context<Self>) {
        if let Some(agents) = self.shops.get_mut(&msg.shop_id) {
            agents.remove(&msg.agent_id);
            if agents.is_empty() {
                self.shops.remove(&msg.shop_id);
            }
        }
    }
}

impl Handler<PickAgent> for ShopRouter {
    type Result = Option<i64>;

    fn handle(&mut self, msg: PickAgent, _: &mut Context<Self>) -> Option<i64> {
        let cap = self.cap;
        let agents = self.shops.get_mut(&msg.shop_id)?;
        let (agent_id, agent) = agents
            .iter_mut()
            .filter(|(id, agent)| agent.open < cap && msg.only.is_none_or(|only| only == **id))
            .min_by_key(|(id, agent)| (agent.open, **id))?;
        agent.open += 1;
        Some(*agent_id)
    }
}

impl Handler<Release> for ShopRouter {
    type Result = ();

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        if let Some(agent) = self.shops.get_mut(&msg.shop_id).and_then(|agents| agents.get_mut(&msg.agent_id))
        {
            agent.open = agent.open.saturating_sub(1);
        }
    }
}

impl Handler<OnlineAgents> for ShopRouter {
    type Result = Vec<i64>;

    fn handle(&mut self, msg: OnlineAgents, _: &mut Context<Self>) -> Vec<i64> {
        let mut agents: Vec<i64> =
            self.shops.get(&msg.shop_id).map(|a| a.keys().copied().collect()).unwrap_or_default();
        agents.sort_unstable();
        agents
    }
}
