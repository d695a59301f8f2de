//! The in-process cache of rendered product-detail JSON, the read that
//! flash-sale crowds hammer before a sale opens.
//!
//! - A miss is loaded once however many requests wait for it (single
//!   flight): the waiters share one Postgres query.
//! - Every change to a product, its SKUs, its stock or its shop calls
//!   [`ProductCache::invalidate`] after the change commits. That drops the
//!   entry here and tells every other node over Redis pub/sub. A request
//!   that arrives after the drop starts a fresh load, so no reader that
//!   begins after a commit sees the version before it.
//! - Entries also age out after `catalog.detail_cache_ttl_ms`, a backstop
//!   for a node that missed a message while its subscription was down (it
//!   clears everything on resubscribing, too).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use dashmap::DashMap;
use redis::AsyncCommands;
use tokio::sync::OnceCell;

use crate::error::ApiResult;
use crate::kv::{Kv, Signal};

/// The rendered body of one product, or `None` when it is not on sale
/// (unknown, unlisted, or its shop is not active).
pub type Detail = Option<Bytes>;

struct Slot {
    born: Instant,
    body: OnceCell<Detail>,
}

/// Rendered product details by product id.
pub struct ProductCache {
    slots: DashMap<i64, Arc<Slot>>,
    kv: Kv,
    ttl: Duration,
    capacity: usize,
}

const EVERYTHING: &str = "*";

impl ProductCache {
    /// An empty cache holding at most `capacity` products for `ttl` each.
    pub fn new(kv: Kv, ttl: Duration, capacity: usize) -> Self {
        Self { slots: DashMap::new(), kv, ttl, capacity }
    }

    fn channel(&self) -> String {
        self.kv.key("catalog:invalidate")
    }

    /// The cached body of `product_id`, loading it with `load` on a miss.
    /// Concurrent misses on one product share a single `load`. A failed
    /// load is not cached: the next request tries again.
    pub async fn get_or_load<F, Fut>(&self, product_id: i64, load: F) -> ApiResult<Detail>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ApiResult<Detail>>,
    {
        let slot = self.slot(product_id);
        slot.body.get_or_try_init(load).await.cloned()
    }

    fn slot(&self, product_id: i64) -> Arc<Slot> {
        let now = Instant::now();
        if let Some(slot) = self.slots.get(&product_id) {
            if now.duration_since(slot.born) < self.ttl {
                return slot.clone();
            }
        }
        let fresh = Arc::new(Slot { born: now, body: OnceCell::new() });
        if self.slots.len() >= self.capacity {
            // Full: serve this one uncached rather than grow without bound.
            self.prune();
            if self.slots.len() >= self.capacity {
                return fresh;
            }
        }
        self.slots.insert(product_id, fresh.clone());
        fresh
    }

    /// Drops entries past their time to live.
    pub fn prune(&self) {
        let now = Instant::now();
        self.slots.retain(|_, slot| now.duration_since(slot.born) < self.ttl);
    }

    /// Number of products cached (for metrics and tests).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Drops `product_id` on every node. Call after the change commits.
    /// Never fails the caller: the change is committed by then, and a node
    /// that misses the message drops the entry when its TTL runs out.
    pub async fn invalidate(&self, product_id: i64) {
        self.slots.remove(&product_id);
        self.publish(product_id.to_string()).await;
    }

    /// Drops every product on every node (a shop was suspended or
    /// reinstated, say). Call after the change commits; never fails.
    pub async fn invalidate_all(&self) {
        self.slots.clear();
        self.publish(EVERYTHING.to_owned()).await;
    }

    async fn publish(&self, what: String) {
        let published: redis::RedisResult<()> = self.kv.conn().publish(self.channel(), what).await;
        if let Err(err) = published {
            tracing::warn!(error = %err, "cannot publish a product invalidation; other nodes catch up by TTL");
        }
    }

    /// Applies other nodes' invalidations until the process ends.
    pub async fn listen_for_invalidations(self: Arc<Self>) {
        let channel = self.channel();
        self.kv
            .follow(&channel, async |signal| match signal {
                Signal::Message(what) => match what.parse::<i64>() {
                    Ok(product_id) => {
                        self.slots.remove(&product_id);
                    }
                    Err(_) => self.slots.clear(),
                },
                Signal::Resync => self.slots.clear(),
            })
            .await;
    }
}
