//! The running flash-sale engine: one stock actor per unfinished event, the
//! group-commit writer they share, and the registry the HTTP layer reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Addr, ArbiterHandle};
use actors::gate::EventGate;
use actors::stock::{EventTerms, KeyIndex, ReleaseStock, StockActor};
use actors::writer::{spawn_writer, WriterConfig, WriterHandle};
use dashmap::DashMap;
use deadpool_postgres::Pool;

use super::ratelimit::RateLimiter;
use super::store::{self, EventRow, PgReservations};
use crate::config::SeckillSettings;
use crate::error::ApiResult;
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
    /// Token buckets of the buy path.
    pub limiter: RateLimiter,
}

impl SeckillEngine {
    /// Starts the writer and one actor per unfinished event, each rebuilt
    /// from Postgres. Actors and the writer live on the calling arbiter (the
    /// system thread), apart from the HTTP workers.
    pub async fn start(
        db: Pool,
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
            limiter: RateLimiter::default(),
        });
        let client = engine.db.get().await?;
        for event in store::unfinished_events(&client).await? {
            engine.start_event(&client, event).await?;
        }
        Ok(engine)
    }

    async fn start_event(
        &self,
        client: &deadpool_postgres::Client,
        event: EventRow,
    ) -> Result<Arc<LiveEvent>, tokio_postgres::Error> {
        let snapshot = store::load_snapshot(client, &event).await?;
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
        let actor_gate = gate.clone();
        let actor = StockActor::new(terms, snapshot, actor_gate, self.writer.clone(), self.mailbox_capacity)
            .start_on(&self.actors_home);
        let live = Arc::new(LiveEvent { event, actor, gate, keys, rejections: Rejections::default() });
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
        Ok(self.start_event(&client, event).await?)
    }

    /// Gives units of an expired or cancelled order back to its event's
    /// actor (the database already has them back).
    pub fn release(&self, event_id: i64, user_id: i64, quantity: u32) {
        if let Some(live) = self.events.get(&event_id) {
            // Rare and must not be dropped: `do_send` ignores the mailbox cap.
            live.actor.do_send(ReleaseStock { user_id, quantity });
        }
    }

    /// Reservations waiting for the writer.
    pub fn writer_queue_depth(&self) -> usize {
        self.writer.queue_depth()
    }
}
