//! A conversation shard: the only place that numbers, persists and fans out
//! the messages of its conversations.
//!
//! A conversation's state is loaded from the database on first use (the
//! requests arriving meanwhile wait for it; a shard has one load in flight,
//! covering every conversation first touched since the last one, so a
//! burst of first messages costs a few queries, not one each) and dropped
//! when idle. Each
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

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::directory::Directories;
use super::{
    Ack, ChatError, ChatMessage, ChatStore, ChatWrite, ChatWritten, ConnectionId, ConversationSnapshot,
    ConversationSource, Event, MessageDraft, MessageKind,
};
use crate::writer::WriterHandle;

/// How often idle conversations are dropped from memory.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long a conversation stays in memory unused.
const IDLE_FOR: Duration = Duration::from_secs(600);

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

/// A request waiting for its conversation to load.
enum Request {
    Send(SendMessage),
    Read(MarkRead),
    Typing(Typing),
}

impl Request {
    fn fail(self, error: ChatError) {
        let _ = match self {
            Self::Send(msg) => msg.reply.send(Err(error)).map_err(drop),
            Self::Read(msg) => msg.reply.send(Err(error)).map_err(drop),
            Self::Typing(msg) => msg.reply.send(Err(error)).map_err(drop),
        };
    }
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

/// One shard of conversations.
pub struct ConversationShard<S: ChatStore, L: ConversationSource> {
    conversations: HashMap<i64, Conversation>,
    /// Requests waiting for their conversation to load.
    loading: HashMap<i64, Vec<Request>>,
    /// Conversations waiting for the next load, and whether one is out.
    to_load: Vec<i64>,
    load_in_flight: bool,
    writer: WriterHandle<S>,
    source: Arc<L>,
    directories: Arc<Directories>,
    dedup_window: usize,
}

impl<S: ChatStore, L: ConversationSource> ConversationShard<S, L> {
    /// A shard persisting through `writer` and loading through `source`.
    pub fn new(
        writer: WriterHandle<S>,
        source: Arc<L>,
        directories: Arc<Directories>,
        dedup_window: usize,
    ) -> Self {
        Self {
            conversations: HashMap::new(),
            loading: HashMap::new(),
            to_load: Vec::new(),
            load_in_flight: false,
            writer,
            source,
            directories,
            dedup_window,
        }
    }

    /// Handles `request` now if its conversation is in memory, else after loading it.
    fn dispatch(&mut self, conversation_id: i64, request: Request, ctx: &mut Context<Self>) {
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

    /// Loads every conversation waiting for it, unless a load is out (the
    /// next one starts when it is back).
    fn load(&mut self, ctx: &mut Context<Self>) {
        if self.load_in_flight || self.to_load.is_empty() {
            return;
        }
        self.load_in_flight = true;
        let ids = std::mem::take(&mut self.to_load);
        let source = self.source.clone();
        let batch = ids.clone();
        let loaded = async move { source.load(batch).await };
        ctx.spawn(loaded.into_actor(self).map(move |result, shard, ctx| {
            shard.load_in_flight = false;
            let mut found: HashMap<i64, ConversationSnapshot> = HashMap::new();
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
                let waiting = shard.loading.remove(&conversation_id).unwrap_or_default();
                match found.remove(&conversation_id) {
                    Some(snapshot) => {
                        shard.conversations.insert(conversation_id, Conversation::new(snapshot));
                        for request in waiting {
                            shard.handle_request(conversation_id, request, ctx);
                        }
                    }
                    None => waiting.into_iter().for_each(|request| request.fail(error.clone())),
                }
            }
            shard.load(ctx);
        }));
    }

    fn handle_request(&mut self, conversation_id: i64, request: Request, ctx: &mut Context<Self>) {
        let Some(conversation) = self.conversations.get_mut(&conversation_id) else {
            request.fail(ChatError::NotFound);
            return;
        };
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
                member.1 = seq;
                let members = conversation.member_ids();
                let write = ChatWrite::ReadUpTo { conversation_id, user_id: msg.caller.user_id, seq };
                let Ok(stored) = self.writer.submit(write) else {
                    let _ = msg.reply.send(Err(ChatError::Overloaded));
                    return;
                };
                let directories = self.directories.clone();
                let (caller, reply) = (msg.caller, msg.reply);
                // Needs nothing of the shard: a task of its own (see `flush`).
                actix::spawn(async move {
                    match stored.await {
                        Ok(Ok(_)) => {
                            let event = Event::Read { conversation_id, user_id: caller.user_id, seq };
                            directories.fanout(&members, event, Some(caller.connection));
                            let _ = reply.send(Ok(()));
                        }
                        _ => {
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
        let now = SystemTime::now();
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
                // Nothing of the write was stored: its seqs are free again,
                // and what queued meanwhile has no seq yet.
                conversation.next_seq = first_seq;
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

fn fail_waiting(conversation: &mut Conversation, sender_id: i64, client_msg_id: &str, error: ChatError) {
    for reply in conversation.waiting.remove(&(sender_id, Box::from(client_msg_id))).unwrap_or_default() {
        let _ = reply.send(Err(error.clone()));
    }
}

impl<S: ChatStore, L: ConversationSource> Actor for ConversationShard<S, L> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(SWEEP_EVERY, |shard, _| {
            let now = Instant::now();
            shard.conversations.retain(|_, c| {
                c.writing || !c.queued.is_empty() || now.duration_since(c.last_used) < IDLE_FOR
            });
        });
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
        if let Some(conversation) = self.conversations.get_mut(&msg.conversation_id) {
            if conversation.writing {
                conversation.stale = true;
            } else {
                self.conversations.remove(&msg.conversation_id);
            }
        }
    }
}
