//! Customer-service chat (issue 7): a shopper talks with a shop's staff over
//! a WebSocket, and complaints, appeals and arbitration get threads of their
//! own where an operator joins once a case is escalated.
//!
//! Messages go through the hub of `actors::chat` (sharded by conversation:
//! numbered, committed through the chat's group-commit writer before the
//! sender's ack, then fanned out to online members); this module is the
//! server around it.
//!
//! # Layout
//! - [`engine`]: starts the hub and the writer;
//! - [`cluster`]: on several nodes, conversation ownership in Redis,
//!   forwarding to the owner, and events published to every node;
//! - [`routing`]: on several nodes, agents' presence and loads in Redis;
//! - [`store`]: the batch insert of messages and read receipts, loading a
//!   conversation for its shard, conversations and history;
//! - [`service`]: opening and routing conversations (least-loaded online
//!   agent, else the shop's queue), transfer, close, who may read;
//! - [`case`]: complaints, appeals and arbitration with explicit statuses;
//! - [`handlers`]: the REST endpoints;
//! - [`ws`]: the WebSocket transport, the only code that speaks the frames
//!   of `docs/chat-protocol.md`.

pub mod case;
pub mod cluster;
pub mod engine;
pub mod handlers;
pub mod routing;
pub mod service;
pub mod store;
pub mod ws;
