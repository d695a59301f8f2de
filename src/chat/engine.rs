//! The chat hub of one node: its shards (on arbiters of their own, so the
//! HTTP workers only parse frames) and the chat's group-commit writer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use actors::chat::{ChatHub, ConnectionId, Event, HubConfig};
use actors::writer::{spawn_writer, WriterConfig};
use deadpool_postgres::Pool;

use super::store::PgChat;
use crate::config::ChatSettings;

/// The hub type of the server: Postgres stores and loads.
pub type Hub = ChatHub<PgChat, PgChat>;

/// The running chat of this node.
pub struct ChatEngine {
    pub hub: Hub,
    pub settings: ChatSettings,
    next_connection: AtomicU64,
}

impl ChatEngine {
    /// Starts the writer (on the calling runtime) and the shards, spread
    /// over one arbiter per core.
    pub fn start(db: Pool, settings: &ChatSettings) -> Arc<Self> {
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
            Arc::new(|_| {}),
        );
        let arbiters: Vec<_> = (0..cores).map(|_| Arbiter::new().handle()).collect();
        let config = HubConfig {
            shards: if settings.shards == 0 { cores * 2 } else { settings.shards },
            mailbox_capacity: settings.mailbox_capacity,
            dedup_window: settings.dedup_window,
            agent_cap: settings.agent_cap,
        };
        let hub = ChatHub::start(config, writer, Arc::new(store), &arbiters);
        Arc::new(Self { hub, settings: settings.clone(), next_connection: AtomicU64::new(1) })
    }

    /// A fresh connection id.
    pub fn connection_id(&self) -> ConnectionId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Tells every live connection of `users` about `event`.
    pub fn notify(&self, users: &[i64], event: Event) {
        self.hub.directories().fanout(users, event, None);
    }

    /// Has the shard owning the conversation reload it (members or status changed).
    pub fn forget(&self, conversation_id: i64) {
        self.hub.shard(conversation_id).do_send(actors::chat::shard::Forget { conversation_id });
    }
}
