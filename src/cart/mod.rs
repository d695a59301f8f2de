//! Shopping carts. Each active shopper's cart lives in a cart actor
//! (`actors::cart`) that serialises its changes and answers once they are
//! committed through the cart's group-commit writer; [`engine`] starts the
//! actors on demand from Postgres and forgets them when they stop.
//!
//! # Layout
//! - [`engine`]: the registry of cart actors and their writer.
//! - [`news`]: telling other nodes whose carts changed, so they evict
//!   their (now stale) actors of those shoppers.
//! - [`service`]: what may be added, the priced cart view, and the calls
//!   checkout makes ([`service::selected_lines`], [`service::take_bought`]).
//! - [`store`]: the batch upsert, loading a cart, the SKUs behind lines.
//! - [`handlers`]: the `/api/cart` endpoints.

pub mod engine;
pub mod handlers;
pub mod news;
pub mod service;
pub mod store;
