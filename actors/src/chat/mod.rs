//! The chat hub: conversations, who is online, and where each message goes.
//!
//! No actor sees every message. Conversations are spread over
//! [`shard::ConversationShard`]s by id; each shard alone numbers, persists
//! (through the group-commit writer, before the sender's ack) and fans out
//! the messages of its conversations. Connections are found through
//! [`directory::Directory`] shards by user id, and a shop's online agents
//! and their loads live in [`router::ShopRouter`] shards by shop id. The
//! transport (a WebSocket session) is the server's: it only has to accept
//! [`Push`] messages.
//!
//! # Layout
//! - [`shard`]: sequence numbers, dedup, the one-write-in-flight pipeline
//!   per conversation, read receipts and typing;
//! - [`directory`]: user -> live connections, the bounded fan-out;
//! - [`router`]: per shop, online agents and their open-conversation counts
//!   with a cap: the least-loaded pick;
//! - [`ChatHub`]: the addresses of all shards, and which shard owns what.
//!
//! # Several nodes
//! On one node every conversation is [`Home::Here`]. In a cluster the
//! [`ConversationSource`] also says which node owns each conversation
//! (one at a time, so seqs, dedup and ordering stay a single shard's job):
//! a shard forwards requests for a conversation owned elsewhere to its
//! owner, keeps ownership of what it holds in memory, and lets go of what
//! it drops. Events leave for the other nodes through the directories'
//! [`Elsewhere`] hook.

pub mod directory;
pub mod router;
pub mod shard;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use crate::mailbox;
use crate::writer::{BatchStore, WriterHandle};

/// Identifies one live connection (a user may have several). Unique in a
/// cluster: a node draws its first id at random.
pub type ConnectionId = u64;

/// Identifies a node of a cluster.
pub type NodeId = Arc<str>;

/// Hands an event to the other nodes of a cluster (their directories
/// deliver it to the users' connections there).
pub type Elsewhere = Arc<dyn Fn(&[i64], &Event, Option<ConnectionId>) + Send + Sync>;

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    /// An image by URL.
    Image,
    /// A product shown as a card.
    ProductCard,
    /// An order shown as a card.
    OrderCard,
}

impl MessageKind {
    /// Every kind, for parsing and documentation.
    pub const ALL: [MessageKind; 4] = [Self::Text, Self::Image, Self::ProductCard, Self::OrderCard];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::ProductCard => "product_card",
            Self::OrderCard => "order_card",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// A message as numbered by its shard, before the database gave it an id.
#[derive(Debug, Serialize, Deserialize)]
pub struct MessageDraft {
    pub conversation_id: i64,
    pub seq: i64,
    pub sender_id: i64,
    /// The sender's own id for the message: a retry with the same id is
    /// answered with the first one's ack.
    pub client_msg_id: Box<str>,
    pub kind: MessageKind,
    /// The structured payload as JSON text, validated by the server.
    pub payload: Box<str>,
    pub created_at: SystemTime,
}

/// A committed message, shared by every connection it is delivered to.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The server's id of the message.
    pub id: i64,
    pub draft: Arc<MessageDraft>,
}

/// The sender's receipt: the message is committed under this id and seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub conversation_id: i64,
    pub id: i64,
    pub seq: i64,
    pub created_at: SystemTime,
}

/// What a connection is told.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    /// A committed message of one of the user's conversations.
    Message(Arc<ChatMessage>),
    /// A member has read up to `seq`.
    Read { conversation_id: i64, user_id: i64, seq: i64 },
    /// A member is typing.
    Typing { conversation_id: i64, user_id: i64 },
    /// A shop's agent came online or went offline.
    Presence { shop_id: i64, user_id: i64, online: bool },
    /// A conversation was given to an agent (routed from the queue, or transferred).
    Assigned { conversation_id: i64, shop_id: i64, agent_id: i64 },
    /// A conversation was closed.
    Closed { conversation_id: i64 },
}

impl Event {
    /// The conversation and seq of a message event: what a resuming
    /// connection must order against what it fetched.
    pub fn message_seq(&self) -> Option<(i64, i64)> {
        match self {
            Self::Message(message) => Some((message.draft.conversation_id, message.draft.seq)),
            _ => None,
        }
    }
}

/// One event for one connection. Its mailbox is the connection's bounded
/// outbound queue.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Push {
    pub event: Event,
}

/// A live connection as the directory knows it.
#[derive(Clone)]
pub struct Connection {
    pub id: ConnectionId,
    pub outbox: Recipient<Push>,
    /// Set when its outbound queue overflowed: the connection must close.
    pub evicted: Arc<AtomicBool>,
}

/// Why a chat request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ChatError {
    /// No such conversation.
    #[error("no such conversation")]
    NotFound,
    /// The caller is not a member of the conversation.
    #[error("you are not a member of this conversation")]
    NotMember,
    /// The conversation is closed.
    #[error("the conversation is closed")]
    Closed,
    /// A queue is full: shed load.
    #[error("overloaded")]
    Overloaded,
    /// The message could not be stored (nothing was).
    #[error("the message could not be stored")]
    WriteFailed,
    /// The node owning the conversation did not answer or no longer owns
    /// it; a retry finds its owner afresh.
    #[error("the conversation is moving between nodes; retry")]
    Moved,
}

/// A conversation as the database has it, to (re)build its shard state.
#[derive(Debug, Clone)]
pub struct ConversationSnapshot {
    /// Current members and how far each has read.
    pub members: Vec<(i64, i64)>,
    /// A case thread: operators may take part without being members.
    pub is_case: bool,
    pub closed: bool,
    /// The highest seq stored.
    pub last_seq: i64,
}

/// Where a conversation is served.
#[derive(Debug, Clone)]
pub enum Home {
    /// On this node, which now owns it: its state as stored.
    Here(ConversationSnapshot),
    /// On another node, which owns it.
    Node(NodeId),
}

/// Where the shards' conversations come from. Implemented by the server
/// over Postgres (and Redis, for ownership in a cluster).
pub trait ConversationSource: Send + Sync + 'static {
    /// The conversations of `ids` that exist (a shard loads every
    /// conversation first touched meanwhile in one call), each taken into
    /// this node's ownership unless another node owns it. An error means
    /// they could not be read (the requests waiting for them fail).
    fn load(
        &self,
        ids: Vec<i64>,
    ) -> impl std::future::Future<Output = Result<Vec<(i64, Home)>, String>> + Send;

    /// Hands `request` to `owner`, which answers through its reply.
    fn forward(&self, owner: &NodeId, request: shard::Request);

    /// Renews this node's ownership of `ids`; answers those it lost.
    fn keep(&self, ids: Vec<i64>) -> impl std::future::Future<Output = Vec<i64>> + Send;

    /// Gives up ownership of `ids`, dropped from memory.
    fn let_go(&self, ids: Vec<i64>) -> impl std::future::Future<Output = ()> + Send;
}

/// One write of the chat's group-commit writer.
#[derive(Debug)]
pub enum ChatWrite {
    /// New messages of one conversation, in seq order.
    Messages(Vec<Arc<MessageDraft>>),
    /// A member has read up to `seq` (never moves back).
    ReadUpTo { conversation_id: i64, user_id: i64, seq: i64 },
}

/// What the store did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub id: i64,
    /// The stored seq: the draft's, or for a duplicate the first one's.
    pub seq: i64,
    pub created_at: SystemTime,
    /// The sender had already stored a message with this client id (a
    /// retry the shard no longer remembered): nothing new was written.
    pub duplicate: bool,
}

/// What the store did with one [`ChatWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatWritten {
    /// One entry per message, in order.
    Messages(Vec<Written>),
    /// Another writer (a second owner while a lease lapsed) stored a
    /// message under one of these seqs: none of them is acked (a retry is
    /// matched by its client id), and the shard reloads the conversation.
    SeqTaken,
    Read,
}

/// A store of chat writes.
pub trait ChatStore: BatchStore<Item = ChatWrite, Outcome = ChatWritten> {}

impl<S: BatchStore<Item = ChatWrite, Outcome = ChatWritten>> ChatStore for S {}

/// How the hub is laid out and bounded.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Conversation shards, directory shards and router shards, each.
    pub shards: usize,
    /// Waiting messages per shard before senders are refused.
    pub mailbox_capacity: usize,
    /// Client message ids remembered per conversation for dedup.
    pub dedup_window: usize,
    /// Most open conversations one agent is given by routing.
    pub agent_cap: u32,
    /// In a cluster, how often shards renew ownership of the conversations
    /// they hold; `None` on a single node.
    pub keep_every: Option<std::time::Duration>,
}

/// The addresses of every chat shard. Keep one per node and call
/// `try_send` on the addresses by reference (see [`mailbox`]).
pub struct ChatHub<S: ChatStore, L: ConversationSource> {
    shards: Vec<Addr<shard::ConversationShard<S, L>>>,
    directories: Arc<directory::Directories>,
    routers: Vec<Addr<router::ShopRouter>>,
}

impl<S: ChatStore, L: ConversationSource> ChatHub<S, L> {
    /// Starts `config.shards` of each kind, spread over `arbiters`.
    pub fn start(
        config: HubConfig,
        writer: WriterHandle<S>,
        source: Arc<L>,
        elsewhere: Option<Elsewhere>,
        arbiters: &[ArbiterHandle],
    ) -> Self {
        let n = config.shards.max(1);
        let capacity = config.mailbox_capacity;
        let home =
            |i: usize| arbiters.get(i % arbiters.len().max(1)).cloned().unwrap_or_else(Arbiter::current);
        let directories = Arc::new(directory::Directories::new(
            (0..n).map(|i| mailbox::start_on(directory::Directory::default(), capacity, &home(i))).collect(),
            elsewhere,
        ));
        let shards = (0..n)
            .map(|i| {
                let actor = shard::ConversationShard::new(
                    writer.clone(),
                    source.clone(),
                    directories.clone(),
                    config.dedup_window,
                    config.keep_every,
                );
                mailbox::start_on(actor, capacity, &home(i))
            })
            .collect();
        let routers = (0..n)
            .map(|i| mailbox::start_on(router::ShopRouter::new(config.agent_cap), capacity, &home(i)))
            .collect();
        Self { shards, directories, routers }
    }

    /// Every conversation shard.
    pub fn shards(&self) -> &[Addr<shard::ConversationShard<S, L>>] {
        &self.shards
    }

    /// The shard that owns `conversation_id`.
    pub fn shard(&self, conversation_id: i64) -> &Addr<shard::ConversationShard<S, L>> {
        &self.shards[self.slot_of(conversation_id)]
    }

    /// The index in [`ChatHub::shards`] of the shard owning `conversation_id`.
    pub fn slot_of(&self, conversation_id: i64) -> usize {
        slot(conversation_id, self.shards.len())
    }

    /// The directory shards.
    pub fn directories(&self) -> &directory::Directories {
        &self.directories
    }

    /// The router shard of `shop_id`.
    pub fn router(&self, shop_id: i64) -> &Addr<router::ShopRouter> {
        &self.routers[slot(shop_id, self.routers.len())]
    }
}

/// Which of `n` shards owns `key`.
fn slot(key: i64, n: usize) -> usize {
    (key.unsigned_abs() % n.max(1) as u64) as usize
}
