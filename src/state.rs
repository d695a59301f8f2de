//! The state every handler reaches through `web::Data<AppState>`.

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::auth::session::Sessions;
use crate::blacklist::Blacklist;
use crate::cart::engine::CartEngine;
use crate::chat::engine::ChatEngine;
use crate::clock::Clock;
use crate::config::Settings;
use crate::kv::Kv;
use crate::metrics::Metrics;
use crate::payment::service::Payments;
use crate::seckill::engine::SeckillEngine;
use crate::storefront::cache::ProductCache;

/// Shared handles of one running app. Cloning is cheap (all `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Pool,
    pub kv: Kv,
    pub sessions: Arc<Sessions>,
    /// The in-memory blacklist every request is checked against.
    pub blacklist: Arc<Blacklist>,
    pub metrics: Arc<Metrics>,
    pub seckill: Arc<SeckillEngine>,
    /// The cart actors of this node.
    pub carts: Arc<CartEngine>,
    /// The chat hub of this node.
    pub chat: Arc<ChatEngine>,
    /// Rendered product details, invalidated cluster-wide on change.
    pub products: Arc<ProductCache>,
    /// Payment gateways and where they reach this server.
    pub payments: Arc<Payments>,
    /// "Now" for stored deadlines (payment windows, auto-completion).
    pub clock: Arc<Clock>,
    /// Whether this node runs the cluster-wide jobs (sweepers, refunds).
    pub leadership: Arc<crate::cluster::Leadership>,
}
