//! The actors of rs-cms. No HTTP and no SQL here: persistence reaches the
//! actors through the [`writer::BatchStore`] trait, implemented by the server.
//!
//! # Layout
//! - [`chat`]: the chat hub: conversation shards that number, persist and
//!   fan out messages, the directory of live connections, and the shop
//!   routers of online agents.
//! - [`cart`]: one [`cart::CartActor`] per active shopper, the only writer
//!   of that shopper's cart; evicted when idle, rebuilt from the database.
//! - [`gate`]: the per-event atomic flags (sold out / not live) that let the
//!   HTTP layer answer the late majority without messaging an actor.
//! - [`stock`]: one [`stock::StockActor`] per live flash-sale event, the only
//!   writer of that event's remaining stock and per-user counts.
//! - [`writer`]: the group-commit writer, which gathers work from every
//!   actor for a millisecond or two (or N rows), persists it in one
//!   transaction, and only then answers each waiting caller.
//! - [`mailbox`]: starting an actor with its mailbox bound in force.

pub mod cart;
pub mod chat;
pub mod gate;
pub mod mailbox;
pub mod stock;
pub mod writer;
