//! Chat across the nodes of a cluster (`chat.cluster = true`).
//!
//! - **Ownership.** Each conversation is served by one node at a time, the
//!   one holding its key `{prefix}chat:owner:{id}` in Redis (taken when a
//!   shard first loads it, renewed by the shard while it holds it, given up
//!   when it is dropped as idle, and expiring `chat.owner_ttl_ms` after a
//!   node dies). So numbering, dedup and ordering stay one shard's job, as
//!   on a single node. Other nodes forward requests to the owner on its
//!   channel `{prefix}chat:node:{node}` and get the answer on theirs.
//! - **Events** (messages, read receipts, typing, presence, routing) are
//!   published by the node they happen on to `{prefix}chat:events`, in the
//!   order they happen, through one publishing task; every other node
//!   delivers them to the members connected there.
//! - **Presence and routing** of agents live in Redis (see [`routing`]).
//!
//! A message published while a node was cut off from Redis is not
//! delivered live on the other nodes; the receiver gets it when its client
//! resumes (the message itself was committed before its ack).
//!
//! [`routing`]: super::routing

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actors::chat::shard::{Caller, MarkRead, Request, SendMessage, Typing};
use actors::chat::{Ack, ChatError, ConnectionId, ConversationSource, Event, Home, MessageKind, NodeId};
use dashmap::DashMap;
use prometheus::IntCounter;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::engine::ChatEngine;
use super::store::PgChat;
use crate::kv::{Kv, Signal};
use crate::metrics::Metrics;

/// How long a forwarded request waits for the owner's answer before the
/// caller is told to retry ([`ChatError::Moved`]).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// Publications waiting for the publishing task; beyond this, events are
/// not delivered live on other nodes (counted in `chat_events_dropped`;
/// a receiving connection fills a missed message in when the next one of
/// its conversation arrives).
const OUTBOX_CAPACITY: usize = 20_000;
/// Publications sent to Redis in one pipeline at most.
const PUBLISH_BATCH: usize = 256;
/// Index of the events channel among the two a node hears.
const EVENTS_CHANNEL: usize = 0;
/// Index of the node's own channel (requests and answers).
const NODE_CHANNEL: usize = 1;

/// Takes (or renews) ownership of KEYS for ARGV[1] unless another node
/// holds them; answers each key's owner, `+` when ARGV[1] just took it
/// (it was free: another node may have owned it meanwhile).
const CLAIM: &str = r"
local owners = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    owner = '+'
  end
  owners[i] = owner
end
return owners";

/// Gives up the KEYS ARGV[1] owns.
const LET_GO: &str = r"
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0";

/// What crosses between nodes.
#[derive(Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Wire {
    /// An event for the members' connections on every node.
    Event { from: String, users: Vec<i64>, except: Option<ConnectionId>, event: Event },
    /// A conversation changed in the database: its owner reloads it.
    Forget { from: String, conversation_id: i64 },
    /// A request for the owner of its conversation; answered on `from`'s channel.
    Request {
        from: String,
        id: u64,
        conversation_id: i64,
        user_id: i64,
        operator: bool,
        connection: ConnectionId,
        op: Op,
    },
    /// The answer to request `id`.
    Reply { id: u64, result: Result<Option<Ack>, ChatError> },
}

/// What a forwarded request asks.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Send { client_msg_id: Box<str>, kind: MessageKind, payload: Box<str> },
    Read { seq: i64 },
    Typing,
}

/// Whose a claimed conversation is.
enum Claimed {
    /// This node's; `fresh` when it was free until now.
    Mine {
        fresh: bool,
    },
    Theirs(NodeId),
}

/// A forwarded request's original reply.
enum Pending {
    Send(oneshot::Sender<Result<Ack, ChatError>>),
    Done(oneshot::Sender<Result<(), ChatError>>),
}

impl Pending {
    fn answer(self, result: Result<Option<Ack>, ChatError>) {
        let _ = match (self, result) {
            (Self::Send(reply), Ok(Some(ack))) => reply.send(Ok(ack)).map_err(drop),
            (Self::Send(reply), Ok(None)) => reply.send(Err(ChatError::Moved)).map_err(drop),
            (Self::Send(reply), Err(error)) => reply.send(Err(error)).map_err(drop),
            (Self::Done(reply), result) => reply.send(result.map(drop)).map_err(drop),
        };
    }
}

/// This node's link to the others: its id, the publishing queue and the
/// requests it forwarded that wait for an answer.
pub struct ChatLink {
    node: NodeId,
    kv: Kv,
    owner_ttl: Duration,
    outbox: mpsc::Sender<(String, String)>,
    pending: DashMap<u64, oneshot::Sender<Result<Option<Ack>, ChatError>>>,
    /// Which of the two channels (events, this node's) has been heard
    /// since start: both, and the node is ready to serve.
    subscribed: tokio::sync::watch::Sender<[bool; 2]>,
    next_request: AtomicU64,
    claim: redis::Script,
    let_go: redis::Script,
    forwarded: IntCounter,
    dropped: IntCounter,
}

impl ChatLink {
    /// A link for a new node (a random id) and the queue its publishing
    /// task drains ([`ChatLink::run`]).
    pub fn new(
        kv: Kv,
        owner_ttl: Duration,
        metrics: &Metrics,
    ) -> (Arc<Self>, mpsc::Receiver<(String, String)>) {
        let (outbox, queued) = mpsc::channel(OUTBOX_CAPACITY);
        let link = Self {
            node: Arc::from(uuid::Uuid::new_v4().simple().to_string()),
            kv,
            owner_ttl,
            outbox,
            pending: DashMap::new(),
            subscribed: tokio::sync::watch::Sender::new([false; 2]),
            next_request: AtomicU64::new(1),
            claim: redis::Script::new(CLAIM),
            let_go: redis::Script::new(LET_GO),
            forwarded: metrics.chat_forwarded.clone(),
            dropped: metrics.chat_events_dropped.clone(),
        };
        (Arc::new(link), queued)
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The Redis handle, for routing.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// Longest this node waits for Redis on ownership: a renewal that
    /// takes longer counts as failed, well before the lease would lapse.
    fn redis_timeout(&self) -> Duration {
        self.owner_ttl / 3
    }

    fn events_channel(&self) -> String {
        self.kv.key("chat:events")
    }

    fn node_channel(&self, node: &str) -> String {
        self.kv.key(format_args!("chat:node:{node}"))
    }

    fn owner_keys(&self, ids: &[i64]) -> Vec<String> {
        ids.iter().map(|id| self.kv.key(format_args!("chat:owner:{id}"))).collect()
    }

    fn publish(&self, channel: String, wire: &Wire) {
        let payload = match serde_json::to_string(wire) {
            Ok(payload) => payload,
            Err(error) => return tracing::warn!(%error, "cannot encode a chat publication"),
        };
        if self.outbox.try_send((channel, payload)).is_err() {
            self.dropped.inc();
            tracing::warn!("chat outbox to other nodes is full; an event is not delivered live there");
        }
    }

    /// Sends `event` to the other nodes (the hook of the directories).
    pub fn publish_event(&self, users: &[i64], event: &Event, except: Option<ConnectionId>) {
        let wire =
            Wire::Event { from: self.node.to_string(), users: users.to_vec(), except, event: event.clone() };
        self.publish(self.events_channel(), &wire);
    }

    /// Has every other node's owner of the conversation reload it. Never
    /// dropped for a full queue (it waits for room): a missed `forget`
    /// would leave an owner serving stale members or status.
    pub fn publish_forget(&self, conversation_id: i64) {
        let wire = Wire::Forget { from: self.node.to_string(), conversation_id };
        let Ok(payload) = serde_json::to_string(&wire) else { return };
        let (outbox, channel) = (self.outbox.clone(), self.events_channel());
        actix_web::rt::spawn(async move {
            let _ = outbox.send((channel, payload)).await;
        });
    }

    /// Claims (or renews) `ids` for this node: whose each one is. Fails
    /// when Redis does not answer within [`ChatLink::redis_timeout`].
    async fn claim(&self, ids: &[i64]) -> Result<Vec<Claimed>, String> {
        let ttl = u64::try_from(self.owner_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = self.claim.prepare_invoke();
        for key in self.owner_keys(ids) {
            invocation.key(key);
        }
        let mut conn = self.kv.conn();
        let owners: Vec<String> = tokio::time::timeout(
            self.redis_timeout(),
            invocation.arg(&*self.node).arg(ttl).invoke_async(&mut conn),
        )
        .await
        .map_err(|_| "Redis did not answer in time".to_owned())?
        .map_err(|e| e.to_string())?;
        Ok(owners
            .into_iter()
            .map(|owner| match owner.as_str() {
                "+" => Claimed::Mine { fresh: true },
                _ if owner == *self.node => Claimed::Mine { fresh: false },
                _ => Claimed::Theirs(Arc::from(owner)),
            })
            .collect())
    }

    /// Gives up the ownership of `ids` (it lapses by itself if this fails).
    async fn let_go(&self, ids: &[i64]) {
        let mut invocation = self.let_go.prepare_invoke();
        for key in self.owner_keys(ids) {
            invocation.key(key);
        }
        let mut conn = self.kv.conn();
        let released = tokio::time::timeout(
            self.redis_timeout(),
            invocation.arg(&*self.node).invoke_async::<i64>(&mut conn),
        )
        .await;
        if !matches!(released, Ok(Ok(_))) {
            tracing::warn!("cannot give up chat ownership (it lapses by itself)");
        }
    }

    /// Waits until this node hears both its channels, so no answer to a
    /// forward and no request for a conversation it claims goes unheard.
    pub async fn ready(&self) {
        let mut subscribed = self.subscribed.subscribe();
        let _ = subscribed.wait_for(|heard| heard.iter().all(|h| *h)).await;
    }

    /// Leaves the cluster on a clean stop: gives up `owned` and this
    /// node's presence at once instead of letting them lapse.
    pub async fn leave(&self, owned: &[i64]) {
        if !owned.is_empty() {
            self.let_go(owned).await;
        }
        let alive = super::routing::alive_key(&self.kv, &self.node);
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(alive).query_async(&mut self.kv.conn()).await;
    }

    /// Hands `request` to `owner` and its answer, when it comes, to the
    /// request's reply (or [`ChatError::Moved`] after [`FORWARD_TIMEOUT`]).
    fn forward(self: &Arc<Self>, owner: &NodeId, request: Request) {
        self.forwarded.inc();
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (conversation_id, caller, op, pending) = match request {
            Request::Send(msg) => (
                msg.conversation_id,
                msg.caller,
                Op::Send { client_msg_id: msg.client_msg_id, kind: msg.kind, payload: msg.payload },
                Pending::Send(msg.reply),
            ),
            Request::Read(msg) => {
                (msg.conversation_id, msg.caller, Op::Read { seq: msg.seq }, Pending::Done(msg.reply))
            }
            Request::Typing(msg) => (msg.conversation_id, msg.caller, Op::Typing, Pending::Done(msg.reply)),
        };
        let (answer, answered) = oneshot::channel();
        self.pending.insert(id, answer);
        let wire = Wire::Request {
            from: self.node.to_string(),
            id,
            conversation_id,
            user_id: caller.user_id,
            operator: caller.operator,
            connection: caller.connection,
            op,
        };
        self.publish(self.node_channel(owner), &wire);
        let link = self.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(FORWARD_TIMEOUT, answered).await {
                Ok(Ok(result)) => result,
                _ => Err(ChatError::Moved),
            };
            link.pending.remove(&id);
            pending.answer(result);
        });
    }

    /// Runs this node's side of the cluster for ever: the publishing task,
    /// the presence heartbeat, and the two subscriptions (every node's
    /// events, and this node's requests and answers).
    pub async fn run(self: Arc<Self>, engine: Arc<ChatEngine>, queued: mpsc::Receiver<(String, String)>) {
        actix_web::rt::spawn(publish_all(self.kv.clone(), queued, self.dropped.clone()));
        self.beat_once().await;
        actix_web::rt::spawn(self.clone().beat());
        let (events, mine) = (self.events_channel(), self.node_channel(&self.node));
        let (link, node_engine) = (self.clone(), engine.clone());
        actix_web::rt::spawn(async move {
            let kv = link.kv.clone();
            kv.follow(&mine, async |signal| link.hear(&node_engine, NODE_CHANNEL, signal)).await;
        });
        let kv = self.kv.clone();
        kv.follow(&events, async |signal| self.hear(&engine, EVENTS_CHANNEL, signal)).await;
    }

    /// Keeps this node's presence keys alive: agents connected here count
    /// as online for routing only while they are.
    async fn beat(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.owner_ttl / 3).await;
            self.beat_once().await;
        }
    }

    async fn beat_once(&self) {
        let ttl = u64::try_from(self.owner_ttl.as_millis()).unwrap_or(u64::MAX);
        let seen_ttl = ttl.saturating_mul(u64::from(super::routing::SEEN_FOR_TTLS));
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(super::routing::alive_key(&self.kv, &self.node))
            .arg(1)
            .arg("PX")
            .arg(ttl)
            .ignore();
        pipe.cmd("SET")
            .arg(super::routing::seen_key(&self.kv, &self.node))
            .arg(1)
            .arg("PX")
            .arg(seen_ttl)
            .ignore();
        if let Err(error) = pipe.query_async::<()>(&mut self.kv.conn()).await {
            tracing::warn!(%error, "cannot renew this node's chat presence");
        }
    }

    /// Acts on one publication from another node.
    fn hear(self: &Arc<Self>, engine: &Arc<ChatEngine>, channel: usize, signal: Signal) {
        let payload = match signal {
            Signal::Message(payload) => payload,
            Signal::Resync => {
                self.subscribed.send_modify(|heard| heard[channel] = true);
                // A `forget` may have been missed: reload every conversation
                // before its next use. (A missed message is filled in by the
                // receiving connection when the next one arrives; a missed
                // answer times out.)
                engine.forget_all_here();
                return;
            }
        };
        let wire: Wire = match serde_json::from_str(&payload) {
            Ok(wire) => wire,
            Err(error) => return tracing::warn!(%error, "unreadable chat publication"),
        };
        match wire {
            Wire::Event { from, .. } | Wire::Forget { from, .. } if from.as_str() == &*self.node => {}
            Wire::Event { users, except, event, .. } => {
                engine.hub.directories().fanout_here(&users, event, except)
            }
            Wire::Forget { conversation_id, .. } => engine.forget_here(conversation_id),
            Wire::Request { from, id, conversation_id, user_id, operator, connection, op } => {
                let caller = Caller { user_id, operator, connection, forwarded: true };
                let answered = self.answer(engine, conversation_id, caller, op);
                let link = self.clone();
                actix_web::rt::spawn(async move {
                    let result = answered.await;
                    link.publish(link.node_channel(&from), &Wire::Reply { id, result });
                });
            }
            Wire::Reply { id, result } => {
                if let Some((_, answer)) = self.pending.remove(&id) {
                    let _ = answer.send(result);
                }
            }
        }
    }

    /// Hands a forwarded request to this node's shard; resolves to its answer.
    fn answer(
        &self,
        engine: &ChatEngine,
        conversation_id: i64,
        caller: Caller,
        op: Op,
    ) -> impl std::future::Future<Output = Result<Option<Ack>, ChatError>> + 'static {
        let shard = engine.hub.shard(conversation_id);
        let (send, done) = match op {
            Op::Send { client_msg_id, kind, payload } => {
                let (reply, answer) = oneshot::channel();
                let msg = SendMessage { conversation_id, caller, client_msg_id, kind, payload, reply };
                (shard.try_send(msg).ok().map(|()| answer), None)
            }
            Op::Read { seq } => {
                let (reply, answer) = oneshot::channel();
                let msg = MarkRead { conversation_id, caller, seq, reply };
                (None, shard.try_send(msg).ok().map(|()| answer))
            }
            Op::Typing => {
                let (reply, answer) = oneshot::channel();
                (None, shard.try_send(Typing { conversation_id, caller, reply }).ok().map(|()| answer))
            }
        };
        async move {
            match (send, done) {
                (Some(answer), _) => answer.await.unwrap_or(Err(ChatError::Moved)).map(Some),
                (None, Some(answer)) => answer.await.unwrap_or(Err(ChatError::Moved)).map(|()| None),
                (None, None) => Err(ChatError::Overloaded),
            }
        }
    }
}

/// Publishes what the node queued, in order, a pipeline at a time.
async fn publish_all(kv: Kv, mut queued: mpsc::Receiver<(String, String)>, dropped: IntCounter) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while queued.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        let n = batch.len();
        for (channel, payload) in batch.drain(..) {
            pipe.publish(channel, payload).ignore();
        }
        // One retry: a reconnecting Redis connection fails the first try.
        let mut published = pipe.query_async::<()>(&mut kv.conn()).await;
        if published.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            published = pipe.query_async::<()>(&mut kv.conn()).await;
        }
        if let Err(error) = published {
            dropped.inc_by(n as u64);
            tracing::warn!(%error, "cannot publish chat events to other nodes");
        }
    }
}

/// Where the shards' conversations come from: Postgres, and on a cluster
/// the owners in Redis.
pub struct ChatSource {
    pg: PgChat,
    link: Option<Arc<ChatLink>>,
}

impl ChatSource {
    /// Loads from `pg`; owns through `link` when on a cluster.
    pub fn new(pg: PgChat, link: Option<Arc<ChatLink>>) -> Self {
        Self { pg, link }
    }
}

impl ConversationSource for ChatSource {
    async fn load(&self, ids: Vec<i64>) -> Result<Vec<(i64, Home)>, String> {
        let Some(link) = &self.link else {
            let found = self.pg.snapshots(&ids).await?;
            return Ok(found.into_iter().map(|(id, snapshot)| (id, Home::Here(snapshot))).collect());
        };
        let claimed = link.claim(&ids).await.map_err(|e| format!("cannot claim conversations: {e}"))?;
        let mut mine = Vec::new();
        let mut homes = Vec::new();
        for (id, claimed) in ids.into_iter().zip(claimed) {
            match claimed {
                Claimed::Mine { .. } => mine.push(id),
                Claimed::Theirs(owner) => homes.push((id, Home::Node(owner))),
            }
        }
        let mut found = self.pg.snapshots(&mine).await?;
        let missing: Vec<i64> = mine.iter().copied().filter(|id| !found.contains_key(id)).collect();
        if !missing.is_empty() {
            link.let_go(&missing).await;
        }
        homes.extend(mine.into_iter().filter_map(|id| Some((id, Home::Here(found.remove(&id)?)))));
        Ok(homes)
    }

    fn forward(&self, owner: &NodeId, request: Request) {
        match &self.link {
            Some(link) => link.forward(owner, request),
            // A single node owns everything and never forwards.
            None => request.fail(ChatError::Moved),
        }
    }

    async fn keep(&self, ids: Vec<i64>) -> Vec<i64> {
        let Some(link) = &self.link else { return Vec::new() };
        match link.claim(&ids).await {
            // Lost, or free for a while (another node may have written
            // meanwhile): either way reload before serving again.
            Ok(claimed) => ids
                .into_iter()
                .zip(claimed)
                .filter(|(_, claimed)| !matches!(claimed, Claimed::Mine { fresh: false }))
                .map(|(id, _)| id)
                .collect(),
            // Unknown, so no longer safe to assume: stop serving them from
            // memory (their next use claims and loads them afresh).
            Err(error) => {
                tracing::warn!(%error, "cannot renew chat ownership");
                ids
            }
        }
    }

    async fn let_go(&self, ids: Vec<i64>) {
        if let Some(link) = &self.link {
            link.let_go(&ids).await;
        }
    }
}
