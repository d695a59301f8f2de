//! The chat hub of one node: its shards (on arbiters of their own, so the
//! HTTP workers only parse frames), the chat's group-commit writer, and on
//! a cluster the link to the other nodes and the routing shared with them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use actors::chat::router::{AgentGone, AgentOffline, AgentOnline, OnlineAgents, PickAgent, Release};
use actors::chat::shard::{Forget, ForgetAll, Held, Warm};
use actors::chat::{ChatHub, ConnectionId, Elsewhere, Event, HubConfig};
use actors::writer::{spawn_writer, WriterConfig};
use deadpool_postgres::Pool;

use super::cluster::{ChatLink, ChatSource};
use super::routing::SharedRouting;
use super::store::PgChat;
use crate::config::ChatSettings;
use crate::error::{ApiError, ApiResult};
use crate::kv::Kv;
use crate::metrics::{batch_observer, Metrics};

/// The hub type of the server: Postgres stores, Postgres (and Redis) load.
pub type Hub = ChatHub<PgChat, ChatSource>;

/// The running chat of this node.
pub struct ChatEngine {
    pub hub: Hub,
    pub settings: ChatSettings,
    next_connection: AtomicU64,
    /// The other nodes, on a cluster.
    link: Option<Arc<ChatLink>>,
    /// Routing shared with the other nodes, on a cluster (else the hub's routers).
    shared_routing: Option<SharedRouting>,
}

impl ChatEngine {
    /// Starts the writer (on the calling runtime) and the shards, spread
    /// over one arbiter per core; on a cluster also the link to the other
    /// nodes (a task of the calling runtime).
    pub fn start(db: Pool, kv: &Kv, settings: &ChatSettings, metrics: &Metrics) -> Arc<Self> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let store = PgChat::new(db);
        let writer = spawn_writer(
            store.clone(),
            WriterConfig {
                max_rows: settings.batch_max_rows,
                max_delay: Duration::from_micros(settings.batch_max_delay_us),
                queue_capacity: settings.writer_queue_capacity,
                max_in_flight: settings.writer_max_in_flight,
            },
            batch_observer(metrics.chat_batch_rows.clone(), metrics.chat_commit_seconds.clone()),
        );
        let arbiters: Vec<_> = (0..cores).map(|_| Arbiter::new().handle()).collect();
        let owner_ttl = Duration::from_millis(settings.owner_ttl_ms.max(300));
        let linked = settings.cluster.then(|| ChatLink::new(kv.clone(), owner_ttl, metrics));
        let link = linked.as_ref().map(|(link, _)| link.clone());
        let config = HubConfig {
            shards: if settings.shards == 0 { cores * 2 } else { settings.shards },
            mailbox_capacity: settings.mailbox_capacity,
            dedup_window: settings.dedup_window,
            agent_cap: settings.agent_cap,
            keep_every: link.as_ref().map(|_| owner_ttl / 3),
        };
        let elsewhere = link.clone().map(|link| -> Elsewhere {
            Arc::new(move |users: &[i64], event: &Event, except| link.publish_event(users, event, except))
        });
        let source = Arc::new(ChatSource::new(store.clone(), link.clone()));
        let hub = ChatHub::start(config, writer, source, elsewhere, &arbiters);
        let engine = Arc::new(Self {
            hub,
            settings: settings.clone(),
            // Random, so connection ids never meet across the nodes of a cluster.
            next_connection: AtomicU64::new(rand::random::<u64>() >> 1),
            shared_routing: link.clone().map(|link| SharedRouting::new(link, settings.agent_cap)),
            link,
        });
        if let Some((link, queued)) = linked {
            actix_web::rt::spawn(link.run(engine.clone(), queued));
        }
        engine
    }

    /// Has the shards load these conversations ahead of their first use
    /// (best effort: a shard too busy to take the hint loads them when used).
    pub fn warm(&self, conversation_ids: &[i64]) {
        let shards = self.hub.shards();
        let mut by_shard: Vec<Vec<i64>> = vec![Vec::new(); shards.len()];
        for &id in conversation_ids {
            by_shard[self.hub.slot_of(id)].push(id);
        }
        for (shard, conversation_ids) in shards.iter().zip(by_shard) {
            if !conversation_ids.is_empty() {
                let _ = shard.try_send(Warm { conversation_ids });
            }
        }
    }

    /// A fresh connection id.
    pub fn connection_id(&self) -> ConnectionId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Tells every live connection of `users` (on every node) about `event`.
    pub fn notify(&self, users: &[i64], event: Event) {
        self.hub.directories().fanout(users, event, None);
    }

    /// Has the shard owning the conversation reload it (members or status
    /// changed), on whichever node owns it.
    pub fn forget(&self, conversation_id: i64) {
        self.forget_here(conversation_id);
        if let Some(link) = &self.link {
            link.publish_forget(conversation_id);
        }
    }

    /// [`ChatEngine::forget`] on this node only.
    pub fn forget_here(&self, conversation_id: i64) {
        self.hub.shard(conversation_id).do_send(Forget { conversation_id });
    }

    /// Has every shard of this node reload every conversation before its
    /// next use (a `forget` from another node may have been missed).
    pub fn forget_all_here(&self) {
        self.hub.shards().iter().for_each(|shard| shard.do_send(ForgetAll));
    }

    /// On a cluster, waits until this node hears the other nodes (its
    /// subscriptions are up), at most `within`.
    pub async fn ready(&self, within: Duration) -> anyhow::Result<()> {
        let Some(link) = &self.link else { return Ok(()) };
        tokio::time::timeout(within, link.ready())
            .await
            .map_err(|_| anyhow::anyhow!("chat: no Redis subscription within {within:?}"))
    }

    /// On a cluster, hands this node's conversations and presence back at
    /// once on a clean stop, instead of letting them lapse.
    pub async fn leave(&self) {
        let Some(link) = &self.link else { return };
        let mut owned = Vec::new();
        for shard in self.hub.shards() {
            owned.extend(shard.send(Held).await.unwrap_or_default());
        }
        link.leave(&owned).await;
    }

    /// One more connection of an agent of `shop_id` holding `open`
    /// conversations there; whether the agent just came online.
    pub async fn agent_online(&self, shop_id: i64, agent_id: i64, open: u32) -> ApiResult<bool> {
        match &self.shared_routing {
            Some(routing) => Ok(routing.agent_online(shop_id, agent_id, open).await?),
            None => self
                .hub
                .router(shop_id)
                .send(AgentOnline { shop_id, agent_id, open })
                .await
                .map_err(router_down),
        }
    }

    /// One connection of an agent fewer; whether the agent is now offline.
    pub async fn agent_offline(&self, shop_id: i64, agent_id: i64) -> ApiResult<bool> {
        match &self.shared_routing {
            Some(routing) => Ok(routing.agent_offline(shop_id, agent_id).await?),
            None => {
                self.hub.router(shop_id).send(AgentOffline { shop_id, agent_id }).await.map_err(router_down)
            }
        }
    }

    /// Takes an agent who no longer serves `shop_id` out of its routing
    /// at once, however many connections they have open.
    pub async fn agent_gone(&self, shop_id: i64, agent_id: i64) -> ApiResult<()> {
        match &self.shared_routing {
            Some(routing) => Ok(routing.agent_gone(shop_id, agent_id).await?),
            None => self.hub.router(shop_id).send(AgentGone { shop_id, agent_id }).await.map_err(router_down),
        }
    }

    /// Picks the least-loaded online agent of `shop_id` (an `only` one for a
    /// transfer) and reserves a slot.
    pub async fn pick_agent(&self, shop_id: i64, only: Option<i64>) -> ApiResult<Option<i64>> {
        match &self.shared_routing {
            Some(routing) => Ok(routing.pick(shop_id, only).await?),
            None => self.hub.router(shop_id).send(PickAgent { shop_id, only }).await.map_err(router_down),
        }
    }

    /// Gives back a slot of `agent_id`.
    pub async fn release_agent(&self, shop_id: i64, agent_id: i64) {
        match &self.shared_routing {
            Some(routing) => {
                if let Err(error) = routing.release(shop_id, agent_id).await {
                    tracing::warn!(shop_id, agent_id, %error, "cannot give back an agent's chat slot");
                }
            }
            None => self.hub.router(shop_id).do_send(Release { shop_id, agent_id }),
        }
    }

    /// The online agents of a shop, by id.
    pub async fn online_agents(&self, shop_id: i64) -> ApiResult<Vec<i64>> {
        match &self.shared_routing {
            Some(routing) => Ok(routing.online_agents(shop_id).await?),
            None => self.hub.router(shop_id).send(OnlineAgents { shop_id }).await.map_err(router_down),
        }
    }
}

fn router_down(error: actix::MailboxError) -> ApiError {
    ApiError::unavailable(anyhow::anyhow!("chat router: {error}"))
}
