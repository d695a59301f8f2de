//! The WebSocket transport, all of it: `GET /api/chat/ws`, one actor per
//! connection, and the JSON frames of `docs/chat-protocol.md`.
//!
//! A connection registers with the directory before it reads any frame, so
//! nothing committed after a resume's query can slip past it. Its actix
//! mailbox is its bounded outbound queue: when the directory finds it full,
//! the connection is marked evicted and closes (1008) as soon as it runs.
//! While a resume's query is out, live messages wait in a buffer bounded
//! the same way; the fetched ones go first, then the waiting ones. A
//! connection remembers per conversation the first seq it sent live (all
//! later ones reach it in order: live, or filled in from the database when
//! a live one arrives after a gap) and what resumes sent below that
//! ([`Sent`]), so a client gets each message once, whichever way it came.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::actors::chat::directory::{Register, Unregister};
use ::actors::chat::shard::{Caller, MarkRead, SendMessage, Typing};
use ::actors::chat::{Ack, ChatError, ChatMessage, Connection, ConnectionId, Event, MessageKind, Push};
use actix::prelude::*;
use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::service;
use super::store::{self, MessageView};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;
use crate::validate::is_http_url;

/// Most conversations one resume frame may name.
const MAX_RESUME_CONVERSATIONS: usize = 200;
/// Longest client message id.
const MAX_CLIENT_MSG_ID: usize = 64;
/// Own acked messages a connection remembers per conversation above the
/// last one it was sent, so a fill does not echo them back.
const OWN_REMEMBERED: usize = 64;
/// Longest text message, in characters.
const MAX_TEXT_CHARS: usize = 2000;
/// How long live messages wait for a new connection's first frame: a
/// reconnecting client's `resume` comes first, and what it fetches must
/// reach the client before anything newer (see `started`).
const FIRST_FRAME_WAIT: Duration = Duration::from_millis(500);

/// Where a session token may come from: `?token=` (browsers cannot set
/// headers on a WebSocket) or `Authorization: Bearer`.
#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Opens a chat connection (WebSocket upgrade), authenticated with the
/// session token as `?token=` or `Authorization: Bearer`.
#[utoipa::path(get, path = "/api/chat/ws", tag = "chat", params(("token" = Option<String>, Query)), responses(
    (status = 101, description = "switched to the chat protocol (docs/chat-protocol.md)"),
    (status = 400, description = "not a WebSocket handshake", body = ErrorBody),
    (status = 401, body = ErrorBody)))]
#[get("/api/chat/ws")]
pub async fn connect(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let token = web::Query::<TokenQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().token)
        .or_else(|| {
            let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
        })
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::new(ErrorCode::Unauthenticated))?;
    let user = state.sessions.authenticate(&token).await?;
    let served = service::served_shops(&state, user.user_id).await?;
    let session = ChatConnection::new(state.into_inner(), user, served);
    ws::start(session, &req, stream).map_err(|e| {
        ApiError::new(ErrorCode::InvalidHeader).with_message(format!("not a WebSocket handshake: {e}"))
    })
}

/// What a client sends: one flat shape, `type` saying which fields count
/// (a tagged enum cannot carry the payload as raw JSON). The type and the
/// payload are borrowed from the frame (the type copied only if it holds
/// escapes): the payload is copied once, into the message, not twice.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFrame<'a> {
    /// `send`, `read`, `typing` or `resume`.
    #[serde(rename = "type", borrow)]
    frame: Cow<'a, str>,
    conversation_id: Option<i64>,
    client_msg_id: Option<String>,
    kind: Option<String>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    seq: Option<i64>,
    conversations: Option<Vec<ResumePoint>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumePoint {
    conversation_id: i64,
    last_seq: i64,
}

/// What the server sends (besides `deliver`, see [`Deliver`]).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerFrame<'a> {
    Ack {
        conversation_id: i64,
        client_msg_id: &'a str,
        id: i64,
        seq: i64,
        created_at: DateTime<Utc>,
    },
    Read {
        conversation_id: i64,
        user_id: i64,
        seq: i64,
    },
    Typing {
        conversation_id: i64,
        user_id: i64,
    },
    Presence {
        shop_id: i64,
        user_id: i64,
        online: bool,
    },
    Assigned {
        conversation_id: i64,
        shop_id: i64,
        agent_id: i64,
    },
    Closed {
        conversation_id: i64,
    },
    /// A resume of this conversation is complete up to `last_seq`; `more`
    /// means the limit was reached (resume again from `last_seq`).
    Resumed {
        conversation_id: i64,
        last_seq: i64,
        more: bool,
    },
    Error {
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation_id: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
    },
}

/// A message delivered to a member, live or on resume.
#[derive(Serialize)]
#[serde(tag = "type", rename = "deliver")]
struct Deliver<'a> {
    conversation_id: i64,
    seq: i64,
    id: i64,
    sender_id: i64,
    client_msg_id: &'a str,
    kind: &'a str,
    payload: &'a RawValue,
    created_at: DateTime<Utc>,
}

fn render(frame: &impl Serialize) -> String {
    // Serialising these plain structs cannot fail; an empty frame would be
    // visible to the client rather than a panic.
    serde_json::to_string(frame).unwrap_or_default()
}

fn error_code(error: &ChatError) -> ErrorCode {
    match error {
        ChatError::NotFound => ErrorCode::NotFound,
        ChatError::NotMember => ErrorCode::Forbidden,
        ChatError::Closed => ErrorCode::InvalidState,
        ChatError::Overloaded => ErrorCode::Overloaded,
        ChatError::WriteFailed | ChatError::Moved => ErrorCode::Unavailable,
    }
}

/// What a connection has sent of one conversation. Live messages arrive
/// in seq order from the moment the connection registered, and a gap after
/// a known position (a live or resumed message) is filled from the
/// database before the message after it, so everything from the first
/// live one up was sent; a resume fills in below it. The connection's own
/// acked messages count as sent.
#[derive(Default)]
struct Sent {
    /// The highest seq sent.
    max: i64,
    /// The seq of the first message sent live.
    first_live: Option<i64>,
    /// The highest seq sent by a resume.
    resumed: i64,
    /// Seqs of the connection's own acked messages above `max`.
    own_above: Vec<i64>,
}

impl Sent {
    /// Whether to send message `seq` (and note it as sent).
    fn take(&mut self, seq: i64, live: bool) -> bool {
        let fresh = if live {
            seq > self.max && !self.own_above.contains(&seq)
        } else {
            seq > self.resumed && self.first_live.is_none_or(|first| seq < first)
        };
        if fresh {
            if live {
                self.first_live.get_or_insert(seq);
            } else {
                self.resumed = seq;
            }
            self.raise(seq);
        }
        fresh
    }

    /// Whether a position is known from which a gap can be told.
    fn has_baseline(&self) -> bool {
        self.first_live.is_some() || self.resumed > 0
    }

    /// Notes the connection's own message `seq` (acked) as sent.
    fn own(&mut self, seq: i64) {
        if seq > self.max && !self.own_above.contains(&seq) {
            if self.own_above.len() >= OWN_REMEMBERED {
                self.own_above.sort_unstable();
                self.own_above.remove(0);
            }
            self.own_above.push(seq);
        }
        self.raise(self.max);
    }

    /// Raises `max` to `seq`, then over own messages right above it.
    fn raise(&mut self, seq: i64) {
        self.max = self.max.max(seq);
        while let Some(i) = self.own_above.iter().position(|own| *own == self.max + 1) {
            self.max += 1;
            self.own_above.swap_remove(i);
        }
        let max = self.max;
        self.own_above.retain(|own| *own > max);
    }
}

/// One chat connection.
pub struct ChatConnection {
    id: ConnectionId,
    state: Arc<AppState>,
    user: Arc<Principal>,
    operator: bool,
    /// Shops this user serves as an agent, with the shoppers of their open
    /// conversations (told of presence).
    served: Vec<(i64, Vec<i64>)>,
    /// The task counting this agent online in `served`.
    coming_online: Option<actix_web::rt::task::JoinHandle<()>>,
    evicted: Arc<AtomicBool>,
    last_heard: Instant,
    /// What this connection has sent of each conversation.
    sent: HashMap<i64, Sent>,
    /// Resumes whose query is out, plus one while the first frame is
    /// awaited; live messages wait meanwhile.
    resuming: usize,
    /// Live messages wait for the first frame (or [`FIRST_FRAME_WAIT`]).
    awaiting_first_frame: bool,
    held: Vec<Event>,
    /// Sends waiting for their ack.
    in_flight: usize,
    /// This connection's sends waiting for their ack (conversation, client
    /// id): a fill does not echo them back.
    unacked: VecDeque<(i64, Box<str>)>,
}

impl ChatConnection {
    fn new(state: Arc<AppState>, user: Arc<Principal>, served: Vec<(i64, Vec<i64>)>) -> Self {
        Self {
            id: state.chat.connection_id(),
            operator: service::is_operator(&user),
            state,
            user,
            served,
            coming_online: None,
            evicted: Arc::new(AtomicBool::new(false)),
            last_heard: Instant::now(),
            sent: HashMap::new(),
            resuming: 1,
            awaiting_first_frame: true,
            held: Vec::new(),
            in_flight: 0,
            unacked: VecDeque::new(),
        }
    }

    fn caller(&self) -> Caller {
        Caller { user_id: self.user.user_id, operator: self.operator, connection: self.id, forwarded: false }
    }

    fn error(
        ctx: &mut ws::WebsocketContext<Self>,
        code: ErrorCode,
        message: impl Into<String>,
        conversation_id: Option<i64>,
        client_msg_id: Option<&str>,
    ) {
        let frame = ServerFrame::Error {
            code: code.as_str(),
            message: message.into(),
            conversation_id,
            client_msg_id,
        };
        ctx.text(render(&frame));
    }

    /// Writes a message (`live`, or fetched by a resume) unless this
    /// connection already sent it.
    fn deliver(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        conversation_id: i64,
        seq: i64,
        live: bool,
        text: impl FnOnce() -> String,
    ) {
        if self.sent.entry(conversation_id).or_default().take(seq, live) {
            ctx.text(text());
        }
    }

    fn write_event(&mut self, ctx: &mut ws::WebsocketContext<Self>, event: &Event) {
        let text = match event {
            Event::Message(message) => {
                let draft = &message.draft;
                let sent = self.sent.entry(draft.conversation_id).or_default();
                if sent.has_baseline() && draft.seq > sent.max + 1 && !sent.own_above.contains(&draft.seq) {
                    let after = sent.max;
                    return self.fill(ctx, draft.conversation_id, after, event.clone());
                }
                self.deliver(ctx, draft.conversation_id, draft.seq, true, || render_live(message));
                return;
            }
            Event::Read { conversation_id, user_id, seq } => {
                render(&ServerFrame::Read { conversation_id: *conversation_id, user_id: *user_id, seq: *seq })
            }
            Event::Typing { conversation_id, user_id } => {
                render(&ServerFrame::Typing { conversation_id: *conversation_id, user_id: *user_id })
            }
            Event::Presence { shop_id, user_id, online } => {
                render(&ServerFrame::Presence { shop_id: *shop_id, user_id: *user_id, online: *online })
            }
            Event::Assigned { conversation_id, shop_id, agent_id } => render(&ServerFrame::Assigned {
                conversation_id: *conversation_id,
                shop_id: *shop_id,
                agent_id: *agent_id,
            }),
            Event::Closed { conversation_id } => {
                render(&ServerFrame::Closed { conversation_id: *conversation_id })
            }
        };
        ctx.text(text);
    }

    /// Closes a connection that cannot tell what it missed (1011): the
    /// client reconnects and resumes.
    fn evict_unsynced(ctx: &mut ws::WebsocketContext<Self>) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Error,
            description: Some("cannot fill in missed messages; reconnect and resume".to_owned()),
        }));
        ctx.stop();
    }

    fn evict(ctx: &mut ws::WebsocketContext<Self>) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Policy,
            description: Some("too slow: outbound queue full".to_owned()),
        }));
        ctx.stop();
    }

    fn on_frame(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let frame: ClientFrame = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(e) if e.is_data() => {
                return Self::error(ctx, ErrorCode::InvalidBody, e.to_string(), None, None)
            }
            Err(e) => return Self::error(ctx, ErrorCode::MalformedJson, e.to_string(), None, None),
        };
        let missing = |field: &str| format!("a {} frame needs {field}", frame.frame);
        let Some(conversation_id) =
            frame.conversation_id.or(if frame.frame == "resume" { Some(0) } else { None })
        else {
            return Self::error(ctx, ErrorCode::InvalidBody, missing("conversation_id"), None, None);
        };
        match (&*frame.frame, frame.client_msg_id, frame.kind, frame.payload, frame.seq, frame.conversations)
        {
            ("send", Some(client_msg_id), Some(kind), Some(payload), None, None) => {
                self.send(ctx, conversation_id, &client_msg_id, &kind, payload);
            }
            ("read", None, None, None, Some(seq), None) => {
                let (reply, answer) = oneshot::channel();
                let msg = MarkRead { conversation_id, caller: self.caller(), seq, reply };
                let sent = self.state.chat.hub.shard(conversation_id).try_send(msg).is_ok();
                self.await_done(ctx, conversation_id, sent, answer);
            }
            ("typing", None, None, None, None, None) => {
                let (reply, answer) = oneshot::channel();
                let msg = Typing { conversation_id, caller: self.caller(), reply };
                let sent = self.state.chat.hub.shard(conversation_id).try_send(msg).is_ok();
                self.await_done(ctx, conversation_id, sent, answer);
            }
            ("resume", None, None, None, None, Some(points)) if frame.conversation_id.is_none() => {
                self.resume(ctx, points)
            }
            ("send" | "read" | "typing" | "resume", ..) => {
                let message =
                    "send: conversation_id, client_msg_id, kind, payload; read: conversation_id, seq; \
                               typing: conversation_id; resume: conversations";
                Self::error(ctx, ErrorCode::InvalidBody, message, frame.conversation_id, None)
            }
            (other, ..) => {
                Self::error(ctx, ErrorCode::InvalidBody, format!("unknown frame type {other}"), None, None)
            }
        }
    }

    fn send(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        conversation_id: i64,
        client_msg_id: &str,
        kind: &str,
        payload: &RawValue,
    ) {
        let max_payload = self.state.chat.settings.max_payload_bytes;
        let checked = check_message(client_msg_id, kind, payload, max_payload);
        let kind = match checked {
            Ok(kind) => kind,
            Err(err) => {
                let message =
                    err.details().iter().map(|d| format!("{}: {}", d.field, d.problem)).collect::<Vec<_>>();
                let frame_message = if message.is_empty() {
                    err.code().default_message().to_owned()
                } else {
                    message.join(", ")
                };
                return Self::error(
                    ctx,
                    err.code(),
                    frame_message,
                    Some(conversation_id),
                    Some(client_msg_id),
                );
            }
        };
        if self.in_flight >= self.state.chat.settings.max_in_flight {
            let message = "too many sends waiting for their ack";
            return Self::error(
                ctx,
                ErrorCode::Overloaded,
                message,
                Some(conversation_id),
                Some(client_msg_id),
            );
        }
        let client_msg_id: Box<str> = client_msg_id.into();
        let (reply, answer) = oneshot::channel();
        let msg = SendMessage {
            conversation_id,
            caller: self.caller(),
            client_msg_id: client_msg_id.clone(),
            kind,
            payload: payload.get().into(),
            reply,
        };
        if self.state.chat.hub.shard(conversation_id).try_send(msg).is_err() {
            return Self::error(
                ctx,
                ErrorCode::Overloaded,
                "the chat is overloaded",
                Some(conversation_id),
                Some(&client_msg_id),
            );
        }
        self.in_flight += 1;
        self.unacked.push_back((conversation_id, client_msg_id.clone()));
        ctx.spawn(answer.into_actor(self).map(move |answer, conn, ctx| {
            conn.in_flight -= 1;
            if let Some(i) =
                conn.unacked.iter().position(|(c, id)| *c == conversation_id && **id == *client_msg_id)
            {
                conn.unacked.remove(i);
            }
            match answer {
                Ok(Ok(Ack { conversation_id, id, seq, created_at })) => {
                    // Its own message is one this connection need not be sent.
                    conn.sent.entry(conversation_id).or_default().own(seq);
                    ctx.text(render(&ServerFrame::Ack {
                        conversation_id,
                        client_msg_id: &client_msg_id,
                        id,
                        seq,
                        created_at: created_at.into(),
                    }))
                }
                Ok(Err(error)) => Self::error(
                    ctx,
                    error_code(&error),
                    error.to_string(),
                    Some(conversation_id),
                    Some(&client_msg_id),
                ),
                Err(_) => Self::error(
                    ctx,
                    ErrorCode::Unavailable,
                    "the chat restarted; retry",
                    Some(conversation_id),
                    Some(&client_msg_id),
                ),
            }
        }));
    }

    /// Reports the failure of a read receipt or typing notice, if any.
    fn await_done(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        conversation_id: i64,
        sent: bool,
        answer: oneshot::Receiver<Result<(), ChatError>>,
    ) {
        if !sent {
            return Self::error(
                ctx,
                ErrorCode::Overloaded,
                "the chat is overloaded",
                Some(conversation_id),
                None,
            );
        }
        ctx.spawn(answer.into_actor(self).map(move |answer, _, ctx| {
            if let Ok(Err(error)) = answer {
                Self::error(ctx, error_code(&error), error.to_string(), Some(conversation_id), None);
            }
        }));
    }

    fn resume(&mut self, ctx: &mut ws::WebsocketContext<Self>, points: Vec<ResumePoint>) {
        if points.len() > MAX_RESUME_CONVERSATIONS {
            let message = format!("resume at most {MAX_RESUME_CONVERSATIONS} conversations at once");
            return Self::error(ctx, ErrorCode::ValidationFailed, message, None, None);
        }
        self.resuming += 1;
        let (state, user) = (self.state.clone(), self.user.clone());
        let limit = state.chat.settings.resume_limit;
        let fetched = async move {
            let mut out = Vec::with_capacity(points.len());
            for point in points {
                out.push((
                    point.conversation_id,
                    missed(&state, &user, point.conversation_id, point.last_seq, limit).await,
                ));
            }
            out
        };
        ctx.spawn(fetched.into_actor(self).map(move |fetched, conn, ctx| {
            for (conversation_id, result) in fetched {
                match result {
                    Ok(messages) => {
                        let taken = usize::try_from(limit).unwrap_or(usize::MAX).min(messages.len());
                        let more = messages.len() > taken;
                        for message in &messages[..taken] {
                            conn.deliver(ctx, conversation_id, message.seq, false, || {
                                render(&Deliver::from(message))
                            });
                        }
                        let sent = conn.sent.get(&conversation_id).map_or(0, |s| s.max);
                        // With more to come, resume again from the last one given.
                        let last_seq = match (more, messages[..taken].last()) {
                            (true, Some(last)) => last.seq,
                            _ => sent,
                        };
                        ctx.text(render(&ServerFrame::Resumed { conversation_id, last_seq, more }));
                    }
                    Err(err) => Self::error(
                        ctx,
                        err.code(),
                        err.code().default_message(),
                        Some(conversation_id),
                        None,
                    ),
                }
            }
            conn.resuming -= 1;
            conn.release_held(ctx);
        }));
    }

    /// Ends the wait for the first frame (it was handled: a resume in it
    /// holds live messages on by itself) and writes what waited.
    fn first_frame_done(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if std::mem::take(&mut self.awaiting_first_frame) {
            self.resuming -= 1;
            self.release_held(ctx);
        }
    }

    /// Writes the events held during resumes and fills, in order; if one of
    /// them starts a fill, the rest wait for it again.
    fn release_held(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.resuming > 0 {
            return;
        }
        let mut held = std::mem::take(&mut self.held).into_iter();
        while self.resuming == 0 {
            let Some(event) = held.next() else { return };
            self.write_event(ctx, &event);
        }
        self.held.extend(held);
    }

    /// A live message `seq` arrived after `after` was the last one sent:
    /// sends what lies between from the database first (a message whose
    /// live delivery was lost on the way from another node, or a seq left
    /// unused), then `event` and anything newer held meanwhile.
    fn fill(&mut self, ctx: &mut ws::WebsocketContext<Self>, conversation_id: i64, after: i64, event: Event) {
        let Some((_, seq)) = event.message_seq() else { return };
        self.resuming += 1;
        self.held.push(event);
        let state = self.state.clone();
        let limit = state.chat.settings.resume_limit;
        let fetched = async move {
            let client = state.db.get().await?;
            store::messages(&client, conversation_id, Some(after), Some(seq), limit).await
        };
        ctx.spawn(fetched.into_actor(self).map(move |fetched, conn, ctx| {
            match fetched {
                Ok(messages) => {
                    let user_id = conn.user.user_id;
                    for message in &messages {
                        let own = message.sender_id == user_id
                            && conn.unacked.iter().any(|(conversation, client_msg_id)| {
                                *conversation == conversation_id && **client_msg_id == *message.client_msg_id
                            });
                        if !own {
                            conn.deliver(ctx, conversation_id, message.seq, true, || {
                                render(&Deliver::from(message))
                            });
                        }
                    }
                    // Everything below `seq` is committed, so what a whole
                    // page did not find was never stored; after a full
                    // page, the held message starts the next fill.
                    let sent = conn.sent.entry(conversation_id).or_default();
                    match messages.last() {
                        Some(last) if messages.len() as i64 >= limit => sent.raise(last.seq),
                        _ => sent.raise(seq - 1),
                    }
                }
                Err(err) => {
                    // Unknown what is missing: the client resumes after reconnecting.
                    tracing::warn!(conversation_id, error = %err, "cannot fill in missed chat messages");
                    Self::evict_unsynced(ctx);
                }
            }
            conn.resuming -= 1;
            conn.release_held(ctx);
        }));
    }
}

/// Messages of a conversation after `last_seq` for a reader, one more than
/// `limit` to tell whether there are more.
async fn missed(
    state: &AppState,
    user: &Principal,
    conversation_id: i64,
    last_seq: i64,
    limit: i64,
) -> ApiResult<Vec<MessageView>> {
    let client = state.db.get().await?;
    service::check_reader(&client, user, conversation_id).await?;
    store::messages(&client, conversation_id, Some(last_seq.max(0)), None, limit + 1).await
}

impl<'a> From<&'a MessageView> for Deliver<'a> {
    fn from(m: &'a MessageView) -> Self {
        Deliver {
            conversation_id: m.conversation_id,
            seq: m.seq,
            id: m.id,
            sender_id: m.sender_id,
            client_msg_id: &m.client_msg_id,
            kind: &m.kind,
            payload: &m.payload,
            created_at: m.created_at,
        }
    }
}

fn render_live(message: &ChatMessage) -> String {
    let draft = &message.draft;
    // The shard only holds payloads this module validated as JSON.
    let Ok(payload) = serde_json::from_str::<&RawValue>(&draft.payload) else { return String::new() };
    render(&Deliver {
        conversation_id: draft.conversation_id,
        seq: draft.seq,
        id: message.id,
        sender_id: draft.sender_id,
        client_msg_id: &draft.client_msg_id,
        kind: draft.kind.as_str(),
        payload,
        created_at: draft.created_at.into(),
    })
}

/// The payload each kind must carry (unknown fields refused). Texts are
/// borrowed from the frame: they are only checked, not kept.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextPayload<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagePayload<'a> {
    #[serde(borrow)]
    url: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductCardPayload {
    product_id: i64,
    title: Option<String>,
    price_cents: Option<i64>,
    image_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderCardPayload {
    order_id: i64,
    order_no: Option<String>,
    total_cents: Option<i64>,
    status: Option<String>,
}

/// Checks a send's client id and payload; the kind it names.
fn check_message(
    client_msg_id: &str,
    kind: &str,
    payload: &RawValue,
    max_payload: usize,
) -> ApiResult<MessageKind> {
    let mut v = crate::validate::Validator::new();
    v.length("client_msg_id", client_msg_id, 1, MAX_CLIENT_MSG_ID);
    v.check("payload", payload.get().len() <= max_payload, "too_long");
    let Some(kind) = MessageKind::parse(kind) else {
        v.problem("kind", "unknown");
        v.finish()?;
        return Err(ApiError::invalid_field("kind", "unknown"));
    };
    let json = payload.get();
    let shape_ok = match kind {
        MessageKind::Text => serde_json::from_str::<TextPayload>(json).map(|p| {
            v.length("payload.text", p.text.trim(), 1, MAX_TEXT_CHARS);
        }),
        MessageKind::Image => serde_json::from_str::<ImagePayload>(json).map(|p| {
            v.check("payload.url", is_http_url(&p.url) && p.url.len() <= 1000, "invalid_url");
        }),
        MessageKind::ProductCard => serde_json::from_str::<ProductCardPayload>(json).map(|p| {
            v.check("payload.product_id", p.product_id > 0, "invalid");
            v.check("payload.title", p.title.is_none_or(|t| t.chars().count() <= 200), "too_long");
            v.check("payload.price_cents", p.price_cents.is_none_or(|c| c >= 0), "negative");
            v.check("payload.image_url", p.image_url.is_none_or(|u| is_http_url(&u)), "invalid_url");
        }),
        MessageKind::OrderCard => serde_json::from_str::<OrderCardPayload>(json).map(|p| {
            v.check("payload.order_id", p.order_id > 0, "invalid");
            v.check("payload.order_no", p.order_no.is_none_or(|n| n.len() <= 64), "too_long");
            v.check("payload.total_cents", p.total_cents.is_none_or(|c| c >= 0), "negative");
            v.check("payload.status", p.status.is_none_or(|s| s.len() <= 32), "too_long");
        }),
    };
    if shape_ok.is_err() {
        v.problem("payload", "invalid_shape");
    } else if crate::validate::json_has_nul(json) {
        v.problem("payload", "invalid_character");
    }
    v.finish()?;
    Ok(kind)
}

impl Actor for ChatConnection {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.state.metrics.chat_connections.inc();
        ctx.set_mailbox_capacity(self.state.chat.settings.outbound_capacity);
        let connection =
            Connection { id: self.id, outbox: ctx.address().recipient(), evicted: self.evicted.clone() };
        let register = self
            .state
            .chat
            .hub
            .directories()
            .of(self.user.user_id)
            .send(Register { user_id: self.user.user_id, connection });
        // Nothing is read before the connection is registered (see the module doc).
        ctx.wait(register.into_actor(self).map(|registered, _, ctx| {
            if registered.is_err() {
                ctx.stop();
            }
        }));
        if !self.served.is_empty() {
            let (state, agent, served) = ((*self.state).clone(), self.user.user_id, self.served.clone());
            self.coming_online = Some(actix_web::rt::spawn(service::agent_connected(state, agent, served)));
        }
        actix_web::rt::spawn(service::warm_conversations(self.state.clone(), self.user.user_id));
        // Live messages wait for the first frame: had one overtaken a
        // reconnecting client's resume, the client would see it before the
        // older ones the resume fetches, and if it then dropped again it
        // would resume from the newer one and never get those.
        ctx.run_later(FIRST_FRAME_WAIT, |conn, ctx| conn.first_frame_done(ctx));
        let settings = &self.state.chat.settings;
        let timeout = Duration::from_secs(settings.client_timeout_secs);
        ctx.run_interval(Duration::from_secs(settings.heartbeat_secs.max(1)), move |conn, ctx| {
            if conn.evicted.load(Ordering::Acquire) {
                return Self::evict(ctx);
            }
            if conn.last_heard.elapsed() > timeout {
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        self.state.metrics.chat_connections.dec();
        let directory = self.state.chat.hub.directories().of(self.user.user_id);
        directory.do_send(Unregister { user_id: self.user.user_id, connection_id: self.id });
        if !self.served.is_empty() {
            let (state, agent, served) =
                ((*self.state).clone(), self.user.user_id, std::mem::take(&mut self.served));
            // After the online count is in: an offline overtaking it would
            // find nothing to take away, and the agent would stay online.
            let coming_online = self.coming_online.take();
            actix_web::rt::spawn(async move {
                if let Some(coming_online) = coming_online {
                    let _ = coming_online.await;
                }
                service::agent_disconnected(state, agent, served).await
            });
        }
        Running::Stop
    }
}

impl Handler<Push> for ChatConnection {
    type Result = ();

    fn handle(&mut self, push: Push, ctx: &mut Self::Context) {
        if self.evicted.load(Ordering::Acquire) {
            return Self::evict(ctx);
        }
        if self.resuming > 0 && push.event.message_seq().is_some() {
            if self.held.len() >= self.state.chat.settings.outbound_capacity {
                self.evicted.store(true, Ordering::Release);
                return Self::evict(ctx);
            }
            self.held.push(push.event);
            return;
        }
        self.write_event(ctx, &push.event);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for ChatConnection {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(ws::Message::Text(text)) => {
                self.on_frame(&text, ctx);
                self.first_frame_done(ctx);
            }
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Binary(_)) => {
                Self::error(ctx, ErrorCode::MalformedJson, "frames are JSON text", None, None)
            }
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Continuation(_)) | Err(_) => ctx.stop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Sent;

    #[test]
    fn a_resume_fills_in_below_live_messages_and_nothing_is_sent_twice() {
        let mut sent = Sent::default();
        // Live 11 and 12 reach the connection before its resume from 8 is answered.
        assert!(sent.take(11, true));
        assert!(sent.take(12, true));
        let resumed: Vec<i64> = (9..=12).filter(|seq| sent.take(*seq, false)).collect();
        assert_eq!(resumed, vec![9, 10]);
        // Held live messages the resume already gave are skipped; newer ones pass.
        assert!(!sent.take(12, true));
        assert!(sent.take(13, true));
        // A second, overlapping resume repeats nothing.
        assert!((9..=13).all(|seq| !sent.take(seq, false)));
    }

    #[test]
    fn own_acked_messages_count_as_sent_once_what_is_below_them_was() {
        let mut sent = Sent::default();
        assert!(sent.take(1, true));
        // This connection's own 3 is acked before 2 reaches it.
        sent.own(3);
        assert_eq!(sent.max, 1);
        assert!(sent.take(2, true));
        assert_eq!(sent.max, 3);
        assert!(!sent.take(3, true));
        assert!(sent.take(4, true));
    }

    #[test]
    fn a_resume_gives_a_position_to_tell_gaps_from() {
        let mut sent = Sent::default();
        assert!(!sent.has_baseline());
        assert!(sent.take(5, false));
        assert!(sent.has_baseline());
    }

    #[test]
    fn live_messages_after_a_resume_are_not_repeated() {
        let mut sent = Sent::default();
        assert!((1..=5).all(|seq| sent.take(seq, false)));
        assert!(!sent.take(5, true));
        assert!(sent.take(6, true));
    }
}
