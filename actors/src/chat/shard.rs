//! A conversation shard: the only place that numbers, persists and fans out
//! the messages of its conversations.
//!
//! A conversation's state is loaded from the database on first use, or
//! ahead of it when a member connects ([`Warm`]); the requests arriving
//! meanwhile wait for it. A shard has a few loads in flight, each covering
//! every conversation first touched since the last one went out, so a
//! burst of first messages costs a few queries, not one each; one
//! forgotten while its load is out is loaded again. It is dropped when
//! idle. Each
//! conversation has at most one write in flight: messages arriving while
//! one is being committed wait and go out together as the next write, and
//! get their seqs only then. So seqs are committed in order, a failed write
//! gives its seqs back, and members receive a conversation's messages in
//! seq order, each after its commit and never before its sender's ack is
//! due.
//!
//! A retried send (same sender and client message id) is answered with the
//! first one's ack: from memory for the last `dedup_window` messages or
//! while the first is still being written, else by the store, which finds
//! the stored one (the seq drawn for the retry is then left unused).
//!
//! In a cluster a conversation is served by the one node that owns it.
//! A shard whose load finds another owner forwards the requests to it
//! (once: a forwarded request is never forwarded again) and remembers the
//! owner until a forward comes back [`ChatError::Moved`]. It renews
//! ownership of what it holds every `keep_every`; a conversation whose
//! ownership was lost is reloaded (and so forwarded) like a stale one.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::directory::Directories;
use super::{
    Ack, ChatError, ChatMessage, ChatStore, ChatWrite, ChatWritten, ConnectionId, ConversationSnapshot,
    ConversationSource, Event, Home, MessageDraft, MessageKind, NodeId,
};
use crate::writer::WriterHandle;

/// How often idle conversations are dropped from memory.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long a conversation stays in memory unused.
const IDLE_FOR: Duration = Duration::from_secs(600);
/// A refusal (not a member, closed) from state loaded longer ago than this
/// is checked against the database first: in a cluster the change that
/// admits the caller may be stored before its `Forget` arrives.
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// Answer channel of a send.
pub type SendReply = oneshot::Sender<Result<Ack, ChatError>>;
/// Answer channel of a read receipt or typing notice.
pub type DoneReply = oneshot::Sender<Result<(), ChatError>>;

/// Who is asking, as the server authenticated them.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub user_id: i64,
    /// Holds the operators' permission: may take part in any case thread.
    pub operator: bool,
    pub connection: ConnectionId,
    /// Sent on by another node: answered here or refused, never forwarded again.
    pub forwarded: bool,
}

/// Sends a message; answered with its ack once committed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendMessage {
    pub conversation_id: i64,
    pub caller: Caller,
    pub client_msg_id: Box<str>,
    pub kind: MessageKind,
    /// JSON text, validated by the server.
    pub payload: Box<str>,
    pub reply: SendReply,
}

/// Marks the conversation read up to `seq` (clamped to the last message);
/// answered once stored, then the other members are told.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MarkRead {
    pub conversation_id: i64,
    pub caller: Caller,
    pub seq: i64,
    pub reply: DoneReply,
}

/// Tells the other members the caller is typing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Typing {
    pub conversation_id: i64,
    pub caller: Caller,
    pub reply: DoneReply,
}

/// The conversation changed in the database (members, status): its state
/// is reloaded on next use.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forget {
    pub conversation_id: i64,
}

/// Every conversation changed, as far as this node knows (in a cluster: it
/// may have missed a [`Forget`]): each is reloaded on next use.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForgetAll;

/// Load these conversations now if they are not in memory: a member just
/// connected and is about to use them, so their first message does not
/// wait for the load (after a restart, every conversation's would).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Warm {
    pub conversation_ids: Vec<i64>,
}

/// The conversations this shard holds (and so, in a cluster, owns).
#[derive(Message)]
#[rtype(result = "Vec<i64>")]
pub struct Held;

/// A request about one conversation: what waits for it to load, and what
/// is forwarded to the node owning it.
pub enum Request {
    Send(SendMessage),
    Read(MarkRead),
    Typing(Typing),
}

/// Resolves once a relayed answer was passed on: true when it was
/// [`ChatError::Moved`] (or never came).
type Relayed = Pin<Box<dyn Future<Output = bool> + Send>>;

impl Request {
    fn caller(&self) -> &Caller {
        match self {
            Self::Send(msg) => &msg.caller,
            Self::Read(msg) => &msg.caller,
            Self::Typing(msg) => &msg.caller,
        }
    }

    /// Answers the request with `error`.
    pub fn fail(self, error: ChatError) {
        let _ = match self {
            Self::Send(msg) => msg.reply.send(Err(error)).map_err(drop),
            Self::Read(msg) => msg.reply.send(Err(error)).map_err(drop),
            Self::Typing(msg) => msg.reply.send(Err(error)).map_err(drop),
        };
    }

    /// The request with a reply that passes the answer on to the original
    /// one, and tells whether it was `Moved`.
    fn relayed(self) -> (Self, Relayed) {
        match self {
            Self::Send(mut msg) => {
                let (reply, relayed) = relay(msg.reply);
                msg.reply = reply;
                (Self::Send(msg), relayed)
            }
            Self::Read(mut msg) => {
                let (reply, relayed) = relay(msg.reply);
                msg.reply = reply;
                (Self::Read(msg), relayed)
            }
            Self::Typing(mut msg) => {
                let (reply, relayed) = relay(msg.reply);
                msg.reply = reply;
                (Self::Typing(msg), relayed)
            }
        }
    }
}

fn relay<T: Send + 'static>(
    original: oneshot::Sender<Result<T, ChatError>>,
) -> (oneshot::Sender<Result<T, ChatError>>, Relayed) {
    let (reply, answer) = oneshot::channel();
    let relayed = async move {
        let answer = answer.await.unwrap_or(Err(ChatError::Moved));
        let moved = matches!(answer, Err(ChatError::Moved));
        let _ = original.send(answer);
        moved
    };
    (reply, Box::pin(relayed))
}

/// A send waiting for the next write.
struct Queued {
    caller: Caller,
    client_msg_id: Box<str>,
    kind: MessageKind,
    payload: Box<str>,
}

type DedupKey = (i64, Box<str>);

/// One conversation in memory.
struct Conversation {
    /// `(user_id, last_read_seq)` of each member.
    members: Vec<(i64, i64)>,
    is_case: bool,
    closed: bool,
    /// The next seq to hand out.
    next_seq: i64,
    queued: Vec<Queued>,
    writing: bool,
    /// Replies waiting for a client id queued or being written (the first
    /// send and any retry of it).
    waiting: HashMap<DedupKey, Vec<SendReply>>,
    /// The acks of the last `dedup_window` messages, oldest first.
    recent: VecDeque<DedupKey>,
    acks: HashMap<DedupKey, Ack>,
    /// Reload before next use once the write in flight is done.
    stale: bool,
    last_used: Instant,
    loaded_at: Instant,
}

impl Conversation {
    fn new(snapshot: ConversationSnapshot) -> Self {
        Self {
            members: snapshot.members,
            is_case: snapshot.is_case,
            closed: snapshot.closed,
            next_seq: snapshot.last_seq + 1,
            queued: Vec::new(),
            writing: false,
            waiting: HashMap::new(),
            recent: VecDeque::new(),
            acks: HashMap::new(),
            stale: false,
            last_used: Instant::now(),
            loaded_at: Instant::now(),
        }
    }

    /// Whether `caller` may read and send here.
    fn admits(&self, caller: &Caller) -> Result<(), ChatError> {
        if self.members.iter().any(|(user_id, _)| *user_id == caller.user_id)
            || (self.is_case && caller.operator)
        {
            Ok(())
        } else {
            Err(ChatError::NotMember)
        }
    }

    /// Whether `request` would be refused (not a member; a new send to a
    /// closed conversation).
    fn refuses(&self, request: &Request) -> bool {
        self.admits(request.caller()).is_err()
            || match request {
                Request::Send(msg) => {
                    let key: DedupKey = (msg.caller.user_id, msg.client_msg_id.clone());
                    self.closed && !self.acks.contains_key(&key) && !self.waiting.contains_key(&key)
                }
                Request::Read(_) | Request::Typing(_) => false,
            }
    }

    fn member_ids(&self) -> Vec<i64> {
        self.members.iter().map(|(user_id, _)| *user_id).collect()
    }

    fn remember(&mut self, key: DedupKey, ack: Ack, window: usize) {
        if window == 0 {
            return;
        }
        if self.acks.insert(key.clone(), ack).is_none() {
            self.recent.push_back(key);
        }
        while self.recent.len() > window {
            if let Some(old) = self.recent.pop_front() {
                self.acks.remove(&old);
            }
        }
    }
}

/// Loads one shard has out at once. More than one: right after a start
/// every message meets a conversation not yet in memory, and with one load
/// at a time each waited for the load before its own (a quarter of a
/// second at 10,000 msg/s); a few keep that to about one load's time while
/// a burst still gathers into batches.
const LOADS_IN_FLIGHT: usize = 4;

/// One shard of conversations.
pub struct ConversationShard<S: ChatStore, L: ConversationSource> {
    conversations: HashMap<i64, Conversation>,
    /// Requests waiting for their conversation to load.
    loading: HashMap<i64, Vec<Request>>,
    /// Conversations waiting for the next load, and how many loads are out.
    to_load: Vec<i64>,
    loads_in_flight: usize,
    /// Conversations forgotten while their load was out: what it read may
    /// predate the change, so they are loaded again when it is back.
    forgotten_while_loading: HashSet<i64>,
    /// Conversations another node owns, with when each was last used.
    remote: HashMap<i64, (NodeId, Instant)>,
    writer: WriterHandle<S>,
    source: Arc<L>,
    directories: Arc<Directories>,
    dedup_window: usize,
    keep_every: Option<Duration>,
}

impl<S: ChatStore, L: ConversationSource> ConversationShard<S, L> {
    /// A shard persisting through `writer` and loading through `source`,
    /// renewing ownership every `keep_every` in a cluster.
    pub fn new(
        writer: WriterHandle<S>,
        source: Arc<L>,
        directories: Arc<Directories>,
        dedup_window: usize,
        keep_every: Option<Duration>,
    ) -> Self {
        Self {
            conversations: HashMap::new(),
            loading: HashMap::new(),
            to_load: Vec::new(),
            loads_in_flight: 0,
            forgotten_while_loading: HashSet::new(),
            remote: HashMap::new(),
            writer,
            source,
            directories,
            dedup_window,
            keep_every,
        }
    }

    /// Handles `request` now if its conversation is in memory, hands it to
    /// the owner if another node has it, else loads it first.
    fn dispatch(&mut self, conversation_id: i64, request: Request, ctx: &mut Context<Self>) {
        if let Some((owner, _)) = self.remote.get(&conversation_id) {
            let owner = owner.clone();
            self.forward(conversation_id, owner, request, ctx);
            return;
        }
        if self.conversations.get(&conversation_id).is_some_and(|c| !c.stale) {
            self.handle_request(conversation_id, request, ctx);
            return;
        }
        if self.conversations.get(&conversation_id).is_some_and(|c| c.writing) {
            // Stale but still writing: it is reloaded once the write is done.
            self.loading.entry(conversation_id).or_default().push(request);
            return;
        }
        self.conversations.remove(&conversation_id);
        match self.loading.entry(conversation_id) {
            Entry::Occupied(mut waiting) => waiting.get_mut().push(request),
            Entry::Vacant(slot) => {
                slot.insert(vec![request]);
                self.to_load.push(conversation_id);
                self.load(ctx);
            }
        }
    }

    /// Loads every conversation waiting for it, unless [`LOADS_IN_FLIGHT`]
    /// loads are out already (the next one starts when one is back, with
    /// everything that queued meanwhile).
    fn load(&mut self, ctx: &mut Context<Self>) {
        if self.loads_in_flight >= LOADS_IN_FLIGHT || self.to_load.is_empty() {
            return;
        }
        self.loads_in_flight += 1;
        let ids = std::mem::take(&mut self.to_load);
        let source = self.source.clone();
        let batch = ids.clone();
        let loaded = async move { source.load(batch).await };
        ctx.spawn(loaded.into_actor(self).map(move |result, shard, ctx| {
            shard.loads_in_flight -= 1;
            let mut found: HashMap<i64, Home> = HashMap::new();
            let error = match result {
                Ok(snapshots) => {
                    found.extend(snapshots);
                    ChatError::NotFound
                }
                Err(error) => {
                    tracing::warn!(conversations = ids.len(), %error, "cannot load conversations");
                    ChatError::WriteFailed
                }
            };
            for conversation_id in ids {
                if shard.forgotten_while_loading.remove(&conversation_id) {
                    shard.to_load.push(conversation_id);
                    continue;
                }
                let waiting = shard.loading.remove(&conversation_id).unwrap_or_default();
                match found.remove(&conversation_id) {
                    Some(Home::Here(snapshot)) => {
                        shard.conversations.insert(conversation_id, Conversation::new(snapshot));
                        for request in waiting {
                            shard.handle_request(conversation_id, request, ctx);
                        }
                    }
                    Some(Home::Node(owner)) => {
                        for request in waiting {
                            shard.forward(conversation_id, owner.clone(), request, ctx);
                        }
                    }
                    None => waiting.into_iter().for_each(|request| request.fail(error.clone())),
                }
            }
            shard.load(ctx);
        }));
    }

    /// Hands `request` to the node owning its conversation, unless it came
    /// from another node already (then the owner moved: the caller retries).
    fn forward(&mut self, conversation_id: i64, owner: NodeId, request: Request, ctx: &mut Context<Self>) {
        if request.caller().forwarded {
            self.remote.remove(&conversation_id);
            request.fail(ChatError::Moved);
            return;
        }
        self.remote.insert(conversation_id, (owner.clone(), Instant::now()));
        let (request, relayed) = request.relayed();
        self.source.forward(&owner, request);
        // A task of its own, not `ctx.spawn` (see `flush`).
        let shard = ctx.address();
        actix::spawn(async move {
            if relayed.await {
                shard.do_send(OwnerGone { conversation_id, owner });
            }
        });
    }

    /// Renews ownership of the conversations in memory; the ones lost to
    /// another node are reloaded (and so forwarded) before their next use.
    fn keep(&mut self, ctx: &mut Context<Self>) {
        let ids: Vec<i64> = self.conversations.keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        let source = self.source.clone();
        let kept = async move { source.keep(ids).await };
        ctx.spawn(kept.into_actor(self).map(|lost, shard, _| {
            for conversation_id in lost {
                tracing::warn!(conversation_id, "chat conversation now owned by another node");
                shard.drop_conversation(conversation_id);
            }
        }));
    }

    /// Drops a conversation from memory (after its write in flight, if any;
    /// loaded again if its load is out).
    fn drop_conversation(&mut self, conversation_id: i64) {
        if self.loading.contains_key(&conversation_id) {
            self.forgotten_while_loading.insert(conversation_id);
        }
        if let Some(conversation) = self.conversations.get_mut(&conversation_id) {
            if conversation.writing {
                conversation.stale = true;
            } else {
                self.conversations.remove(&conversation_id);
            }
        }
    }

    fn handle_request(&mut self, conversation_id: i64, request: Request, ctx: &mut Context<Self>) {
        let Some(conversation) = self.conversations.get_mut(&conversation_id) else {
            request.fail(ChatError::NotFound);
            return;
        };
        if !conversation.writing
            && conversation.loaded_at.elapsed() >= RECHECK_AFTER
            && conversation.refuses(&request)
        {
            self.conversations.remove(&conversation_id);
            self.dispatch(conversation_id, request, ctx);
            return;
        }
        conversation.last_used = Instant::now();
        match request {
            Request::Send(msg) => {
                if let Err(error) = conversation.admits(&msg.caller) {
                    let _ = msg.reply.send(Err(error));
                    return;
                }
                let key: DedupKey = (msg.caller.user_id, msg.client_msg_id);
                if let Some(ack) = conversation.acks.get(&key) {
                    let _ = msg.reply.send(Ok(ack.clone()));
                    return;
                }
                if let Some(replies) = conversation.waiting.get_mut(&key) {
                    replies.push(msg.reply);
                    return;
                }
                if conversation.closed {
                    let _ = msg.reply.send(Err(ChatError::Closed));
                    return;
                }
                conversation.waiting.insert(key.clone(), vec![msg.reply]);
                conversation.queued.push(Queued {
                    caller: msg.caller,
                    client_msg_id: key.1,
                    kind: msg.kind,
                    payload: msg.payload,
                });
                self.flush(conversation_id, ctx);
            }
            Request::Read(msg) => {
                if let Err(error) = conversation.admits(&msg.caller) {
                    let _ = msg.reply.send(Err(error));
                    return;
                }
                let seq = msg.seq.min(conversation.next_seq - 1);
                let Some(member) = conversation.members.iter_mut().find(|(id, _)| *id == msg.caller.user_id)
                else {
                    // An operator reading a case thread they have not joined: nothing to record.
                    let _ = msg.reply.send(Ok(()));
                    return;
                };
                if seq <= member.1 {
                    let _ = msg.reply.send(Ok(()));
                    return;
                }
                let write = ChatWrite::ReadUpTo { conversation_id, user_id: msg.caller.user_id, seq };
                let Ok(stored) = self.writer.submit(write) else {
                    let _ = msg.reply.send(Err(ChatError::Overloaded));
                    return;
                };
                // Raised now, so a later receipt below it is not written
                // again; a failed write has the conversation reloaded with
                // what is stored, so the client's retry is written.
                member.1 = seq;
                let members = conversation.member_ids();
                let directories = self.directories.clone();
                let (caller, reply, shard) = (msg.caller, msg.reply, ctx.address());
                // A task of its own (see `flush`).
                actix::spawn(async move {
                    match stored.await {
                        Ok(Ok(_)) => {
                            let event = Event::Read { conversation_id, user_id: caller.user_id, seq };
                            directories.fanout(&members, event, Some(caller.connection));
                            let _ = reply.send(Ok(()));
                        }
                        _ => {
                            shard.do_send(Forget { conversation_id });
                            let _ = reply.send(Err(ChatError::WriteFailed));
                        }
                    }
                });
            }
            Request::Typing(msg) => {
                let result = conversation.admits(&msg.caller);
                if result.is_ok() {
                    let event = Event::Typing { conversation_id, user_id: msg.caller.user_id };
                    self.directories.fanout(&conversation.member_ids(), event, Some(msg.caller.connection));
                }
                let _ = msg.reply.send(result);
            }
        }
    }

    /// Writes what is queued for the conversation, unless a write is in flight.
    fn flush(&mut self, conversation_id: i64, ctx: &mut Context<Self>) {
        let Some(conversation) = self.conversations.get_mut(&conversation_id) else { return };
        if conversation.writing || conversation.queued.is_empty() {
            return;
        }
        let first_seq = conversation.next_seq;
        // Microseconds, as Postgres stores it: an ack found in the database
        // for a forgotten retry then equals the first one.
        let now = to_micros(SystemTime::now());
        let queued = std::mem::take(&mut conversation.queued);
        let mut connections = Vec::with_capacity(queued.len());
        let drafts: Vec<Arc<MessageDraft>> = queued
            .into_iter()
            .enumerate()
            .map(|(i, q)| {
                connections.push(q.caller.connection);
                Arc::new(MessageDraft {
                    conversation_id,
                    seq: first_seq + i as i64,
                    sender_id: q.caller.user_id,
                    client_msg_id: q.client_msg_id,
                    kind: q.kind,
                    payload: q.payload,
                    created_at: now,
                })
            })
            .collect();
        conversation.next_seq += drafts.len() as i64;
        match self.writer.submit(ChatWrite::Messages(drafts.clone())) {
            Ok(stored) => {
                conversation.writing = true;
                // A task of its own that reports back through the mailbox,
                // not `ctx.spawn`: actix polls every future spawned on a
                // context each time the actor wakes, so with hundreds of
                // writes in flight every message to the shard cost hundreds
                // of polls (a quarter of the shards' CPU at 10,000 msg/s).
                let shard = ctx.address();
                actix::spawn(async move {
                    let result = match stored.await {
                        Ok(Ok(ChatWritten::Messages(written))) if written.len() == drafts.len() => {
                            Ok(written)
                        }
                        Ok(Ok(ChatWritten::SeqTaken)) => Err(ChatError::Moved),
                        Ok(Err(crate::writer::WriteError::Overloaded)) => Err(ChatError::Overloaded),
                        _ => Err(ChatError::WriteFailed),
                    };
                    shard.do_send(WriteDone { conversation_id, first_seq, drafts, connections, result });
                });
            }
            Err(_) => {
                conversation.next_seq = first_seq;
                for draft in drafts {
                    fail_waiting(conversation, draft.sender_id, &draft.client_msg_id, ChatError::Overloaded);
                }
            }
        }
    }

    /// Answers and delivers a finished write, then starts the next one.
    fn written(
        &mut self,
        conversation_id: i64,
        first_seq: i64,
        drafts: Vec<Arc<MessageDraft>>,
        connections: Vec<ConnectionId>,
        result: Result<Vec<super::Written>, ChatError>,
        ctx: &mut Context<Self>,
    ) {
        let window = self.dedup_window;
        let Some(conversation) = self.conversations.get_mut(&conversation_id) else { return };
        conversation.writing = false;
        match result {
            Ok(written) => {
                let members = conversation.member_ids();
                for ((draft, stored), connection) in drafts.into_iter().zip(written).zip(connections) {
                    let ack = Ack {
                        conversation_id,
                        id: stored.id,
                        seq: stored.seq,
                        created_at: stored.created_at,
                    };
                    let key: DedupKey = (draft.sender_id, draft.client_msg_id.clone());
                    for reply in conversation.waiting.remove(&key).unwrap_or_default() {
                        let _ = reply.send(Ok(ack.clone()));
                    }
                    conversation.remember(key, ack, window);
                    if !stored.duplicate {
                        let message = Arc::new(ChatMessage { id: stored.id, draft });
                        self.directories.fanout(&members, Event::Message(message), Some(connection));
                    }
                }
            }
            Err(error) => {
                // Nothing of the write was acked: its seqs are free again
                // (unless another writer took them: then reload), and what
                // queued meanwhile has no seq yet.
                conversation.next_seq = first_seq;
                conversation.stale |= error == ChatError::Moved;
                for draft in drafts {
                    fail_waiting(conversation, draft.sender_id, &draft.client_msg_id, error.clone());
                }
            }
        }
        if conversation.stale {
            self.reload(conversation_id, ctx);
        } else {
            self.flush(conversation_id, ctx);
        }
    }

    /// Drops a stale conversation whose write is done; what queued for it
    /// meanwhile is handled after a fresh load.
    fn reload(&mut self, conversation_id: i64, ctx: &mut Context<Self>) {
        let Some(conversation) = self.conversations.remove(&conversation_id) else { return };
        let mut requests: Vec<Request> = Vec::new();
        let Conversation { queued, mut waiting, .. } = conversation;
        for q in queued {
            // Re-issued as sends; each waiting reply but the first becomes a retry.
            for reply in waiting.remove(&(q.caller.user_id, q.client_msg_id.clone())).unwrap_or_default() {
                requests.push(Request::Send(SendMessage {
                    conversation_id,
                    caller: q.caller,
                    client_msg_id: q.client_msg_id.clone(),
                    kind: q.kind,
                    payload: q.payload.clone(),
                    reply,
                }));
            }
        }
        let later = self.loading.remove(&conversation_id).unwrap_or_default();
        requests.extend(later);
        for request in requests {
            self.dispatch(conversation_id, request, ctx);
        }
    }
}

/// `time` truncated to whole microseconds.
fn to_micros(time: SystemTime) -> SystemTime {
    let since = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    std::time::UNIX_EPOCH + Duration::from_micros(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
}

fn fail_waiting(conversation: &mut Conversation, sender_id: i64, client_msg_id: &str, error: ChatError) {
    for reply in conversation.waiting.remove(&(sender_id, Box::from(client_msg_id))).unwrap_or_default() {
        let _ = reply.send(Err(error.clone()));
    }
}

impl<S: ChatStore, L: ConversationSource> Actor for ConversationShard<S, L> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(SWEEP_EVERY, |shard, ctx| {
            let now = Instant::now();
            let mut idle = Vec::new();
            shard.conversations.retain(|id, c| {
                let keep = c.writing || !c.queued.is_empty() || now.duration_since(c.last_used) < IDLE_FOR;
                if !keep {
                    idle.push(*id);
                }
                keep
            });
            shard.remote.retain(|_, (_, used)| now.duration_since(*used) < IDLE_FOR);
            if !idle.is_empty() {
                let source = shard.source.clone();
                ctx.spawn(async move { source.let_go(idle).await }.into_actor(shard));
            }
        });
        if let Some(every) = self.keep_every {
            ctx.run_interval(every, |shard, ctx| shard.keep(ctx));
        }
    }
}

impl<S: ChatStore, L: ConversationSource> Handler<SendMessage> for ConversationShard<S, L> {
    type Result = ();

    fn handle(&mut self, msg: SendMessage, ctx: &mut Context<Self>) {
        self.dispatch(msg.conversation_id, Request::Send(msg), ctx);
    }
}

impl<S: ChatStore, L: ConversationSource> Handler<MarkRead> for ConversationShard<S, L> {
    type Result = ();

    fn handle(&mut self, msg: MarkRead, ctx: &mut Context<Self>) {
        self.dispatch(msg.conversation_id, Request::Read(msg), ctx);
    }
}

impl<S: ChatStore, L: ConversationSource> Handler<Typing> for ConversationShard<S, L> {
    type Result = ();

    fn handle(&mut self, msg: Typing, ctx: &mut Context<Self>) {
        self.dispatch(msg.conversation_id, Request::Typing(msg), ctx);
    }
}

impl<S: ChatStore, L: ConversationSource> Handler<ForgetAll> for ConversationShard<S, L> {
    type Result = ();

    fn handle(&mut self, _: ForgetAll, _: &mut Context<Self>) {
        let ids: Vec<i64> = self.conversations.keys().chain(self.loading.keys()).copied().collect();
        ids.into_iter().for_each(|id| self.drop_conversation(id));
    }
}

impl<S: ChatStore, L: ConversationSource> Handler<Warm> for ConversationShard<S, L> {
    type Result = ();

    fn handle(&mut self, msg: Warm, ctx: &mut Context<Self>) {
        for conversation_id in msg.conversation_ids {
            if self.conversations.contains_key(&conversation_id) || self.remote.contains_key(&conversation_id)
            {
                continue;
            }
            if let Entry::Vacant(slot) = self.loading.entry(conversation_id) {
                slot.insert(Vec::new());
                self.to_load.push(conversation_id);
            }
        }
        self.load(ctx);
    }
}

impl<S: ChatStore, L: ConversationSource> Handler<Held> for ConversationShard<S, L> {
    type Result = MessageResult<Held>;

    fn handle(&mut self, _: Held, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.conversations.keys().copied().collect())
    }
}

/// A forward to `owner` came back `Moved`: find the owner afresh next time.
#[derive(Message)]
#[rtype(result = "()")]
struct OwnerGone {
    conversation_id: i64,
    owner: NodeId,
}

impl<S: ChatStore, L: ConversationSource> Handler<OwnerGone> for ConversationShard<S, L> {
    type Result = ();

    fn handle(&mut self, gone: OwnerGone, _: &mut Context<Self>) {
        if self.remote.get(&gone.conversation_id).is_some_and(|(node, _)| *node == gone.owner) {
            self.remote.remove(&gone.conversation_id);
        }
    }
}

/// A conversation's write is done (committed or failed): sent by the task
/// waiting for the writer, so the shard answers and delivers it.
#[derive(Message)]
#[rtype(result = "()")]
struct WriteDone {
    conversation_id: i64,
    first_seq: i64,
    drafts: Vec<Arc<MessageDraft>>,
    connections: Vec<ConnectionId>,
    result: Result<Vec<super::Written>, ChatError>,
}

impl<S: ChatStore, L: ConversationSource> Handler<WriteDone> for ConversationShard<S, L> {
    type Result = ();

    fn handle(&mut self, done: WriteDone, ctx: &mut Context<Self>) {
        let WriteDone { conversation_id, first_seq, drafts, connections, result } = done;
        self.written(conversation_id, first_seq, drafts, connections, result, ctx);
    }
}

impl<S: ChatStore, L: ConversationSource> Handler<Forget> for ConversationShard<S, L> {
    type Result = ();

    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) {
        self.drop_conversation(msg.conversation_id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::chat::directory::Directory;
    use crate::chat::{ConversationSnapshot, Written};
    use crate::writer::{spawn_writer, BatchStore, WriterConfig};

    /// Stores every write.
    struct Accepting;

    impl BatchStore for Accepting {
        type Item = ChatWrite;
        type Outcome = ChatWritten;

        async fn write_batch(&self, items: &[ChatWrite]) -> Result<Vec<ChatWritten>, String> {
            let written = |d: &Arc<MessageDraft>| Written {
                id: d.seq,
                seq: d.seq,
                created_at: d.created_at,
                duplicate: false,
            };
            Ok(items
                .iter()
                .map(|item| match item {
                    ChatWrite::Messages(drafts) => {
                        ChatWritten::Messages(drafts.iter().map(written).collect())
                    }
                    ChatWrite::ReadUpTo { .. } => ChatWritten::Read,
                })
                .collect())
        }
    }

    /// Reads the members when a load starts, then answers only once the
    /// test lets it (a load the database has read, still on its way back).
    struct GatedSource {
        members: Mutex<Vec<(i64, i64)>>,
        gate: Semaphore,
        last_seq: i64,
    }

    impl ConversationSource for GatedSource {
        async fn load(&self, ids: Vec<i64>) -> Result<Vec<(i64, Home)>, String> {
            let members = self.members.lock().unwrap().clone();
            self.gate.acquire().await.map_err(|e| e.to_string())?.forget();
            let snapshot = |members: Vec<(i64, i64)>| ConversationSnapshot {
                members,
                is_case: false,
                closed: false,
                last_seq: self.last_seq,
            };
            Ok(ids.into_iter().map(|id| (id, Home::Here(snapshot(members.clone())))).collect())
        }

        fn forward(&self, _: &NodeId, request: Request) {
            request.fail(ChatError::Moved);
        }

        async fn keep(&self, _: Vec<i64>) -> Vec<i64> {
            Vec::new()
        }

        async fn let_go(&self, _: Vec<i64>) {}
    }

    async fn send_as(
        shard: &Addr<ConversationShard<Accepting, GatedSource>>,
        user_id: i64,
        id: &str,
    ) -> Result<Ack, ChatError> {
        let (reply, answer) = oneshot::channel();
        let caller = Caller { user_id, operator: false, connection: 1, forwarded: false };
        let (client_msg_id, payload) = (id.into(), r#"{"text":"hi"}"#.into());
        let kind = MessageKind::Text;
        shard.do_send(SendMessage { conversation_id: 7, caller, client_msg_id, kind, payload, reply });
        answer.await.unwrap()
    }

    /// Fails the first batch holding a read receipt; records the stored ones.
    #[derive(Default)]
    struct FailsFirstRead {
        failed: std::sync::atomic::AtomicBool,
        stored: Arc<Mutex<Vec<i64>>>,
    }

    impl BatchStore for FailsFirstRead {
        type Item = ChatWrite;
        type Outcome = ChatWritten;

        async fn write_batch(&self, items: &[ChatWrite]) -> Result<Vec<ChatWritten>, String> {
            let reads: Vec<i64> = items
                .iter()
                .filter_map(|item| match item {
                    ChatWrite::ReadUpTo { seq, .. } => Some(*seq),
                    ChatWrite::Messages(_) => None,
                })
                .collect();
            if !reads.is_empty() && !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return Err("the database is down".into());
            }
            self.stored.lock().unwrap().extend(reads);
            Accepting.write_batch(items).await
        }
    }

    #[actix::test]
    async fn a_read_receipt_whose_write_failed_is_written_when_retried() {
        let store = FailsFirstRead::default();
        let stored = store.stored.clone();
        let config =
            WriterConfig { max_rows: 10, max_delay: Duration::ZERO, queue_capacity: 100, max_in_flight: 1 };
        let writer = spawn_writer(store, config, Arc::new(|_| {}));
        // Three messages are stored; member 10 has read none.
        let members = Mutex::new(vec![(10, 0), (20, 0)]);
        let source = Arc::new(GatedSource { members, gate: Semaphore::new(9), last_seq: 3 });
        let directories = Arc::new(Directories::new(vec![Directory::default().start()], None));
        let shard = ConversationShard::new(writer, source, directories, 8, None).start();
        let read = |seq: i64| {
            let (reply, answer) = oneshot::channel();
            let caller = Caller { user_id: 10, operator: false, connection: 1, forwarded: false };
            shard.do_send(MarkRead { conversation_id: 7, caller, seq, reply });
            answer
        };
        assert_eq!(read(2).await.unwrap(), Err(ChatError::WriteFailed));
        assert_eq!(read(2).await.unwrap(), Ok(()));
        assert_eq!(*stored.lock().unwrap(), vec![2], "the retry was written, not taken as done");
    }

    #[actix::test]
    async fn a_conversation_forgotten_while_its_load_is_out_is_loaded_again() {
        let writer = spawn_writer(
            Accepting,
            WriterConfig {
                max_rows: 10,
                max_delay: Duration::from_millis(1),
                queue_capacity: 100,
                max_in_flight: 1,
            },
            Arc::new(|_| {}),
        );
        let source = Arc::new(GatedSource {
            members: Mutex::new(vec![(10, 0), (20, 0)]),
            gate: Semaphore::new(0),
            last_seq: 0,
        });
        let directories = Arc::new(Directories::new(vec![Directory::default().start()], None));
        let shard = ConversationShard::new(writer, source.clone(), directories, 8, None).start();

        // A member connects: the load reads agent 20 as a member...
        shard.do_send(Warm { conversation_ids: vec![7] });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // ...then the conversation moves to agent 30 and is forgotten
        // before that load is back.
        *source.members.lock().unwrap() = vec![(10, 0), (30, 0)];
        shard.do_send(Forget { conversation_id: 7 });
        source.gate.add_permits(2);

        assert_eq!(send_as(&shard, 20, "a").await.err(), Some(ChatError::NotMember), "the old agent is out");
        assert_eq!(send_as(&shard, 30, "b").await.unwrap().seq, 1, "the new one is in");
    }
}
