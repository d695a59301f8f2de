//! The running flash-sale engine: one stock actor per unfinished event, the
//! group-commit writer they share, and the registry the HTTP layer reads.
//!
//! With `stock_authority = "redis"` each actor sells from a lease on the
//! event's shared pool ([`super::pool`]), kept by a task per event
//! ([`super::keeper`]); per-user limits are claimed in Redis before the
//! actor is asked, together with the buy path's cluster-wide rate buckets,
//! and units of expired orders go back to the pool.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Addr, ArbiterHandle};
use actors::gate::EventGate;
use actors::stock::{EventTerms, KeyIndex, LeaseLink, ReleaseStock, Restock, StockActor, StockSnapshot};
use actors::writer::{spawn_writer, WriterConfig, WriterHandle};
use dashmap::DashMap;
use deadpool_postgres::Pool;

use super::keeper::{self, Lease};
use super::pool::{Claim, PoolNews, StockPool};
use super::ratelimit::{BuyRates, RateLimiter};
use super::store::{self, EventRow, PgReservations};
use crate::config::{SeckillSettings, StockAuthority};
use crate::error::{ApiError, ApiResult};
use crate::kv::{Kv, Signal};
use crate::metrics::{batch_observer, Metrics};

/// Why buy requests were refused, counted per event for the live dashboard.
#[derive(Debug, Default)]
pub struct Rejections {
    pub sold_out: AtomicU64,
    pub limit_reached: AtomicU64,
    pub not_started: AtomicU64,
    pub ended: AtomicU64,
    pub rate_limited: AtomicU64,
    pub overloaded: AtomicU64,
    pub token_invalid: AtomicU64,
}

impl Rejections {
    /// The counters as `(reason, count)` pairs.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        [
            ("sold_out", &self.sold_out),
            ("limit_reached", &self.limit_reached),
            ("not_started", &self.not_started),
            ("ended", &self.ended),
            ("rate_limited", &self.rate_limited),
            ("overloaded", &self.overloaded),
            ("purchase_token_invalid", &self.token_invalid),
        ]
        .into_iter()
        .map(|(name, counter)| (name, counter.load(Ordering::Relaxed)))
        .collect()
    }
}

/// What the HTTP layer needs of one unfinished event.
pub struct LiveEvent {
    pub event: EventRow,
    pub actor: Addr<StockActor<PgReservations>>,
    pub gate: Arc<EventGate>,
    pub keys: KeyIndex,
    pub rejections: Rejections,
    /// This node's lease on the shared pool (`stock_authority = "redis"`).
    pub lease: Option<Lease>,
}

/// How long an event id found missing is answered from memory: a flood of
/// requests for bogus ids costs one query per id per second, not one each.
/// (An event created on another node in that second reads as missing here
/// until it passes.)
const MISSING_TTL: Duration = Duration::from_secs(1);

/// How long after its end an event keeps its actor: late requests still
/// get an instant `ended`, and then the memory is given back. A request
/// after that reloads it from Postgres (and it is retired again).
pub const RETIRE_AFTER_END: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Most missing ids remembered; past it the memory is dropped and rebuilt.
const MISSING_CAPACITY: usize = 100_000;

/// The flash-sale engine of one node.
pub struct SeckillEngine {
    events: DashMap<i64, Arc<LiveEvent>>,
    /// Event ids recently looked up and not found, with when.
    missing: DashMap<i64, Instant>,
    /// Serialises loading events on a registry miss, so a flood of requests
    /// for one (or a bogus) event id costs one query at a time.
    loading: tokio::sync::Mutex<()>,
    actors_home: ArbiterHandle,
    writer: WriterHandle<PgReservations>,
    db: Pool,
    mailbox_capacity: usize,
    /// The shared stock pool when Redis is the stock authority.
    pool: Option<Arc<StockPool>>,
    /// Most requests parked per actor while its lease is refilled.
    park_capacity: usize,
    /// This node's token buckets of the buy path (with a shared pool, the
    /// cluster's are in Redis, behind these: see [`super::ratelimit`]).
    pub limiter: RateLimiter,
}

/// A change to an event's gate made on one node that every node must apply.
#[derive(Debug, Clone, Copy)]
pub enum GateChange {
    /// Opened before its start time.
    Opened,
    /// Closed by the kill switch: nodes stop selling and give back leases.
    Closed,
}

impl SeckillEngine {
    /// Starts the writer and one actor per unfinished event, each rebuilt
    /// from Postgres. Actors and the writer live on the calling arbiter (the
    /// system thread), apart from the HTTP workers.
    pub async fn start(
        db: Pool,
        kv: &Kv,
        settings: &SeckillSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        let on_batch = batch_observer(metrics.batch_rows.clone(), metrics.commit_seconds.clone());
        let writer = spawn_writer(
            PgReservations::new(db.clone()),
            WriterConfig {
                max_rows: settings.batch_max_rows,
                max_delay: Duration::from_micros(settings.batch_max_delay_us),
                queue_capacity: settings.writer_queue_capacity,
                max_in_flight: settings.writer_max_in_flight,
            },
            on_batch,
        );
        let engine = Arc::new(Self {
            events: DashMap::new(),
            missing: DashMap::new(),
            loading: tokio::sync::Mutex::new(()),
            actors_home: actix::Arbiter::current(),
            writer,
            db,
            mailbox_capacity: settings.actor_mailbox_capacity,
            pool: (settings.stock_authority == StockAuthority::Redis)
                .then(|| Arc::new(StockPool::new(kv.clone(), settings))),
            park_capacity: settings.lease_park_capacity,
            limiter: RateLimiter::default(),
        });
        let client = engine.db.get().await?;
        for event in store::unfinished_events(&client).await? {
            let id = event.id;
            engine
                .start_event(&client, event)
                .await
                .map_err(|e| anyhow::anyhow!("cannot start the stock actor of event {id}: {e:?}"))?;
        }
        Ok(engine)
    }

    async fn start_event(
        &self,
        client: &deadpool_postgres::Client,
        event: EventRow,
    ) -> ApiResult<Arc<LiveEvent>> {
        let mut snapshot = store::load_snapshot(client, &event).await?;
        let gate =
            Arc::new(EventGate::new(event.starts_at.timestamp_millis(), event.ends_at.timestamp_millis()));
        if event.opened_at.is_some() {
            gate.open_now();
        }
        if event.closed_at.is_some() {
            gate.close();
        }
        let terms = EventTerms {
            event_id: event.id,
            sku_id: event.sku_id,
            title: event.title.clone(),
            unit_price_cents: event.price_cents,
            per_user_limit: u32::try_from(event.per_user_limit).unwrap_or(0),
            payment_window: Duration::from_secs(u64::try_from(event.payment_window_secs).unwrap_or(0)),
        };
        let keys = snapshot.orders_by_key.clone();
        let lease = match &self.pool {
            None => None,
            Some(pool) => {
                // The database's stock seeds the pool (if no node did yet);
                // the actor starts with nothing and leases what it sells.
                let keys = pool.keys(&event);
                pool.init(&keys, snapshot.remaining, &snapshot.held_by_user).await.map_err(|e| {
                    ApiError::unavailable(anyhow::anyhow!("cannot set up the stock pool: {e}"))
                })?;
                snapshot =
                    StockSnapshot { orders_by_key: snapshot.orders_by_key, ..StockSnapshot::default() };
                let low_water = (pool.chunk() / 4).max(1);
                Some(Lease { keys, link: Arc::new(LeaseLink::new(low_water, self.park_capacity)) })
            }
        };
        let mut actor =
            StockActor::new(terms, snapshot, gate.clone(), self.writer.clone(), self.mailbox_capacity);
        if let Some(lease) = &lease {
            actor = actor.leased(lease.link.clone());
        }
        let actor = actor.start_on(&self.actors_home);
        let live = Arc::new(LiveEvent { event, actor, gate, keys, rejections: Rejections::default(), lease });
        if let Some(pool) = &self.pool {
            self.actors_home.spawn(keeper::keep(pool.clone(), self.db.clone(), Arc::downgrade(&live)));
        }
        self.events.insert(live.event.id, live.clone());
        Ok(live)
    }

    /// The live event `id`, loading it on first use on this node. `None`
    /// when there is no such event.
    pub async fn event(&self, id: i64) -> ApiResult<Option<Arc<LiveEvent>>> {
        if let Some(live) = self.events.get(&id) {
            return Ok(Some(live.clone()));
        }
        if self.recently_missing(id) {
            return Ok(None);
        }
        let _guard = self.loading.lock().await;
        if let Some(live) = self.events.get(&id) {
            return Ok(Some(live.clone()));
        }
        if self.recently_missing(id) {
            return Ok(None);
        }
        let client = self.db.get().await?;
        match store::find_event(&client, id).await? {
            Some(event) => Ok(Some(self.start_event(&client, event).await?)),
            None => {
                if self.missing.len() >= MISSING_CAPACITY {
                    self.missing.clear();
                }
                self.missing.insert(id, Instant::now());
                Ok(None)
            }
        }
    }

    fn recently_missing(&self, id: i64) -> bool {
        self.missing.get(&id).is_some_and(|since| since.elapsed() < MISSING_TTL)
    }

    /// Stops the actors of events that ended more than [`RETIRE_AFTER_END`]
    /// before `now` (their units and counts are in Postgres, which is what
    /// expiries and cancellations update from then on).
    pub fn retire_ended(&self, now: chrono::DateTime<chrono::Utc>) {
        self.events.retain(|_, live| live.event.ends_at + RETIRE_AFTER_END > now);
    }

    /// Events with an actor on this node.
    pub fn live_events(&self) -> usize {
        self.events.len()
    }

    /// Forgets missing ids older than their time to live.
    pub fn prune_missing(&self) {
        self.missing.retain(|_, since| since.elapsed() < MISSING_TTL);
    }

    /// Registers a newly created event (unless a request already loaded it:
    /// two actors for one event would each own its whole stock).
    pub async fn add(&self, event: EventRow) -> ApiResult<Arc<LiveEvent>> {
        let _guard = self.loading.lock().await;
        self.missing.remove(&event.id);
        if let Some(live) = self.events.get(&event.id) {
            return Ok(live.clone());
        }
        let client = self.db.get().await?;
        self.start_event(&client, event).await
    }

    /// Gives units of an expired or cancelled order back to the event's
    /// stock (the database already has them back): to its actor, or with a
    /// shared pool to the pool and the user's allowance there, whichever
    /// node runs this.
    pub async fn release(&self, event_id: i64, user_id: i64, quantity: u32) {
        match &self.pool {
            Some(pool) => {
                if let Err(err) = pool.release(&pool.keys_of(event_id, 0), user_id, quantity).await {
                    tracing::error!(event_id, user_id, quantity, error = %err, "cannot return units to the stock pool");
                }
            }
            None => {
                if let Some(live) = self.events.get(&event_id) {
                    // Rare and must not be dropped: `do_send` ignores the mailbox cap.
                    live.actor.do_send(ReleaseStock { user_id, quantity });
                }
            }
        }
    }

    /// With a shared pool: takes the request's token of the cluster-wide
    /// rate buckets of the user and the IP at `rates`, then counts
    /// `quantity` against the user's limit, in one Redis round trip, before
    /// the actor is asked (a rate-limited request claims nothing). Always
    /// [`Claim::Claimed`] without a pool: the actor checks the limit itself
    /// and the node's own buckets are the only ones.
    pub async fn claim_allowance(
        &self,
        live: &LiveEvent,
        user_id: i64,
        ip: IpAddr,
        quantity: u32,
        rates: BuyRates,
    ) -> ApiResult<Claim> {
        match (&self.pool, &live.lease) {
            (Some(pool), Some(lease)) => {
                let limit = u32::try_from(live.event.per_user_limit).unwrap_or(0);
                pool.claim(&lease.keys, user_id, ip, quantity, limit, rates)
                    .await
                    .map_err(|e| ApiError::unavailable(anyhow::anyhow!("stock pool: {e}")))
            }
            _ => Ok(Claim::Claimed),
        }
    }

    /// Undoes [`claim_allowance`](Self::claim_allowance) when no order was
    /// written. A failure only leaves the user a smaller allowance.
    pub async fn unclaim_allowance(&self, live: &LiveEvent, user_id: i64, quantity: u32) {
        if let (Some(pool), Some(lease)) = (&self.pool, &live.lease) {
            if let Err(err) = pool.unclaim(&lease.keys, user_id, quantity).await {
                tracing::warn!(event_id = live.event.id, user_id, error = %err, "cannot undo a per-user claim");
            }
        }
    }

    /// Tells every node of an opened or closed sale (with a shared pool;
    /// a single node has already changed its own gate).
    pub async fn announce(&self, event_id: i64, change: GateChange) {
        let Some(pool) = &self.pool else { return };
        let news = match change {
            GateChange::Opened => PoolNews::Opened { event_id },
            GateChange::Closed => PoolNews::Closed { event_id },
        };
        if let Err(err) = pool.publish(news).await {
            tracing::warn!(event_id, error = %err, "cannot announce a sale's change to other nodes");
        }
    }

    /// Follows the pool channel for ever (with a shared pool): sold out,
    /// restocked, opened and closed reach this node's gates and actors.
    pub async fn follow_pools(self: Arc<Self>) {
        let Some(pool) = self.pool.clone() else { return };
        pool.follow(async |signal| {
            // Missed messages (levels, opens, closes) are made good by
            // each keeper's next round.
            let Signal::Message(message) = signal else { return };
            match PoolNews::parse(&message) {
                Some(PoolNews::Level { event_id, pool }) => {
                    if let Some(live) = self.events.get(&event_id) {
                        // A full mailbox drops the news; the keeper's next round repeats it.
                        let _ = live.actor.try_send(Restock { leased: 0, pool });
                    }
                }
                Some(PoolNews::Opened { event_id }) => {
                    if let Some(live) = self.events.get(&event_id) {
                        live.gate.open_now();
                    }
                }
                Some(PoolNews::Closed { event_id }) => {
                    if let Some(live) = self.events.get(&event_id) {
                        live.gate.close();
                    }
                }
                None => tracing::warn!(payload = %message, "unreadable stock pool message"),
            }
        })
        .await;
    }

    /// On a clean shutdown: every lease's unsold units go back to the pool,
    /// so the other nodes sell them at once instead of after lease expiry.
    pub async fn hand_back_leases(&self) {
        let Some(pool) = &self.pool else { return };
        let live: Vec<Arc<LiveEvent>> = self.events.iter().map(|e| e.value().clone()).collect();
        for live in live {
            if let Err(err) = keeper::hand_back(pool, &live).await {
                tracing::warn!(event_id = live.event.id, error = %err, "cannot hand back a stock lease; it will expire");
            }
        }
    }

    /// Reservations waiting for the writer.
    pub fn writer_queue_depth(&self) -> usize {
        self.writer.queue_depth()
    }
}
