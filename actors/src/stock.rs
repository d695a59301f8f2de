//! The stock actor: one per live flash-sale event.
//!
//! It alone changes the event's remaining stock and per-user counts, one
//! message at a time, so there is no lock and no oversell by construction.
//! A reservation is taken from memory at once and handed to the group-commit
//! writer; the shopper is answered only when its batch has committed. If the
//! commit fails (or the database reports the idempotency key as used), the
//! units go back to the actor before anyone else can be told "sold out"
//! wrongly, and the caller gets an error.
//!
//! On start the actor is given its state as rebuilt from the database
//! ([`StockSnapshot`]), so a restart never oversells.
//!
//! With several nodes the event's stock cannot live in one actor's memory.
//! A leasing actor ([`StockActor::leased`]) sells only the units its node
//! leased from a shared pool; a keeper task outside the actor talks to the
//! pool (through the [`LeaseLink`]) and tops the actor up with
//! [`Restock`]. A request that finds the actor empty while the pool may
//! still have units is parked (boundedly) until the refill arrives, so it is
//! never told "sold out" wrongly; the actor itself never waits.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use dashmap::DashMap;
use tokio::sync::{oneshot, Notify};

use crate::gate::{Admission, EventGate};
use crate::mailbox;
use crate::writer::{BatchStore, WriteError, WriterHandle};

/// The fixed terms of an event, as the actor needs them.
#[derive(Debug, Clone)]
pub struct EventTerms {
    pub event_id: i64,
    pub sku_id: i64,
    pub title: String,
    pub unit_price_cents: i64,
    pub per_user_limit: u32,
    pub payment_window: Duration,
}

/// Idempotency keys of an event, `(user_id, key) -> order_no`. The actor
/// writes it; the HTTP layer reads it to answer a retried request without a
/// message or a query even after the sale is over.
pub type KeyIndex = Arc<DashMap<(i64, String), String>>;

/// The event's state as stored: what is left, who holds how many units in
/// live orders, and the idempotency keys already used (with their orders).
#[derive(Debug, Clone, Default)]
pub struct StockSnapshot {
    pub remaining: u32,
    pub held_by_user: HashMap<i64, u32>,
    pub orders_by_key: KeyIndex,
}

/// One reservation on its way to the database: an order to insert and the
/// stock and per-user count it takes.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub event_id: i64,
    pub sku_id: i64,
    pub title: String,
    pub user_id: i64,
    pub quantity: u32,
    pub unit_price_cents: i64,
    pub per_user_limit: u32,
    pub order_no: String,
    pub idempotency_key: Option<String>,
    pub created_at: SystemTime,
    pub pay_before: SystemTime,
}

/// What the store did with one reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationOutcome {
    /// The order row and its stock and count changes are committed.
    Committed,
    /// Not written: the user already has an order with this idempotency key
    /// (possibly made on another node or before a restart).
    DuplicateKey,
    /// Not written: the database's own check refused it (no stock left, or
    /// the user's limit reached), so memory thought there was more than there
    /// is. The actor keeps the units out of sale, which moves it towards the
    /// database (selling less, never more) until a restart rebuilds it.
    Refused(Refusal),
    /// Not written, and nothing else went wrong: e.g. the batch was retried
    /// item by item and this item's statement failed.
    NotWritten,
    /// The commit's result is unknown (the connection broke and the order
    /// could not be looked up). The units stay reserved (never oversell);
    /// the shopper gets a 503 and a retry with the same key finds the order
    /// if it exists.
    Unknown,
}

/// Which database check refused a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    SoldOut,
    LimitReached,
}

/// A committed reservation, as answered to the shopper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub order_no: String,
    pub quantity: u32,
    pub amount_cents: i64,
    pub pay_before: SystemTime,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    #[error("sold out")]
    SoldOut,
    #[error("per-user limit reached")]
    LimitReached,
    #[error("not started")]
    NotStarted,
    #[error("ended")]
    Ended,
    /// The key was used before; `order_no` is known when this actor saw it.
    #[error("idempotency key already used")]
    DuplicateKey { order_no: Option<String> },
    /// The writer's queue is full.
    #[error("overloaded")]
    Overloaded,
    /// The batch failed to commit; nothing was written.
    #[error("write failed")]
    WriteFailed,
    /// Whether the order was written is unknown (the connection broke); its
    /// units stay reserved and a retry with the same key finds it.
    #[error("commit outcome unknown")]
    CommitUnknown,
}

/// Answer channel of a [`ReserveStock`].
pub type ReserveReply = oneshot::Sender<Result<Reserved, ReserveError>>;

/// Reserve `quantity` units for `user_id` as order `order_no`. The answer
/// comes on `reply` once committed, so the HTTP side can use `try_send`
/// (instant 503 on a full mailbox) and still wait for the result.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReserveStock {
    pub user_id: i64,
    pub quantity: u32,
    pub order_no: String,
    pub idempotency_key: Option<String>,
    pub now: SystemTime,
    pub reply: ReserveReply,
}

/// Units of a committed order came back (the order expired or was
/// cancelled, and the database already holds the change).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseStock {
    pub user_id: i64,
    pub quantity: u32,
}

/// Current level, for the live dashboard.
#[derive(Message)]
#[rtype(result = "StockLevel")]
pub struct GetStockLevel;

/// Stock as the actor sees it.
#[derive(Debug, Clone, Copy, MessageResponse)]
pub struct StockLevel {
    /// Units not reserved (committed or in flight).
    pub remaining: u32,
    /// Reservations handed to the writer and not yet answered.
    pub in_flight: u32,
}

/// A level of the shared pool, ordered by `seq` (every change to the pool
/// bumps it) so a late report never overrides a newer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLevel {
    /// Units in the pool, leased to no node.
    pub units: u32,
    /// The pool's change counter when `units` was read.
    pub seq: u64,
}

/// From the keeper: `leased` more units are this actor's to sell (0 when
/// only the pool's level is news), and the pool's level after the lease.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restock {
    /// Units newly leased to this actor.
    pub leased: u32,
    /// The pool's level as the keeper last read it.
    pub pool: PoolLevel,
}

/// From the keeper: hand back every unit not reserved, because the sale is
/// over here (ended, closed, the node stops) or the lease was lost. Answers
/// the units taken out of sale.
#[derive(Message)]
#[rtype(result = "u32")]
pub struct TakeBackStock;

/// What a leasing actor and its keeper share. The actor only touches
/// atomics and wakes the keeper, so it never waits on the pool.
#[derive(Debug)]
pub struct LeaseLink {
    /// Woken when the actor runs low (or empty with requests parked) and
    /// the pool may still have units.
    pub need: Notify,
    /// Units the database took (committed, or kept out of sale) that the
    /// keeper has not yet reported to the pool.
    sold: AtomicU32,
    /// Ask for more when fewer units than this are left.
    low_water: u32,
    /// Most requests parked while a refill is on its way.
    park_capacity: usize,
}

impl LeaseLink {
    /// A link asking for a refill below `low_water` units, parking at most
    /// `park_capacity` requests meanwhile.
    pub fn new(low_water: u32, park_capacity: usize) -> Self {
        Self { need: Notify::new(), sold: AtomicU32::new(0), low_water, park_capacity }
    }

    /// Counts units gone for good (and, for the keeper, units whose report failed).
    pub fn add_sold(&self, units: u32) {
        self.sold.fetch_add(units, Ordering::AcqRel);
    }

    /// The units gone since the last call, for the keeper to report.
    pub fn take_sold(&self) -> u32 {
        self.sold.swap(0, Ordering::AcqRel)
    }
}

/// Where an actor's units come from.
enum Supply {
    /// All of the event's stock is this actor's (one node).
    Owned,
    /// The actor sells from its node's lease on a shared pool; per-user
    /// limits are checked against the shared count before a request gets here.
    Leased {
        link: Arc<LeaseLink>,
        /// The pool's level as last heard; `None` before the first report.
        pool: Option<PoolLevel>,
        /// Requests waiting for a refill, oldest first.
        parked: VecDeque<ReserveStock>,
    },
}

/// The actor owning one event's stock.
pub struct StockActor<S: BatchStore<Item = Reservation, Outcome = ReservationOutcome>> {
    terms: EventTerms,
    state: StockSnapshot,
    in_flight: u32,
    gate: Arc<EventGate>,
    writer: WriterHandle<S>,
    mailbox_capacity: usize,
    supply: Supply,
}

impl<S: BatchStore<Item = Reservation, Outcome = ReservationOutcome>> StockActor<S> {
    /// An actor for `terms` starting from `state`.
    pub fn new(
        terms: EventTerms,
        state: StockSnapshot,
        gate: Arc<EventGate>,
        writer: WriterHandle<S>,
        mailbox_capacity: usize,
    ) -> Self {
        gate.set_remaining(state.remaining);
        Self { terms, state, in_flight: 0, gate, writer, mailbox_capacity, supply: Supply::Owned }
    }

    /// Makes this a leasing actor: `state.remaining` is then the units its
    /// node holds in its lease, and `link` reaches the keeper that refills it.
    pub fn leased(mut self, link: Arc<LeaseLink>) -> Self {
        self.supply = Supply::Leased { link, pool: None, parked: VecDeque::new() };
        self.publish();
        self
    }

    /// Tells the gate what can still be sold here: the actor's units plus,
    /// when leasing, the pool's (unknown counts as "maybe more"), so the
    /// gate answers "sold out" only when neither has any.
    fn publish(&self) {
        let pool = match &self.supply {
            Supply::Owned => 0,
            Supply::Leased { pool, .. } => pool.map_or(1, |p| p.units),
        };
        self.gate.set_remaining(self.state.remaining.saturating_add(pool));
    }

    /// Whether a refill may still come (leasing, and the pool not known empty).
    fn may_restock(&self) -> bool {
        matches!(&self.supply, Supply::Leased { pool, .. } if pool.is_none_or(|p| p.units > 0))
    }

    /// Wakes the keeper when the lease runs low and the pool may have more.
    fn ask_for_more(&self) {
        if let Supply::Leased { link, .. } = &self.supply {
            if self.state.remaining < link.low_water && self.may_restock() {
                link.need.notify_one();
            }
        }
    }

    /// Counts units the database took, for the keeper to report to the pool.
    fn gone(&self, quantity: u32) {
        if let Supply::Leased { link, .. } = &self.supply {
            link.add_sold(quantity);
        }
    }

    /// Starts the actor on `arbiter` with its bounded mailbox in force from
    /// the first message (see [`mailbox::start_on`]).
    pub fn start_on(self, arbiter: &ArbiterHandle) -> Addr<Self> {
        let capacity = self.mailbox_capacity;
        mailbox::start_on(self, capacity, arbiter)
    }

    fn take(&mut self, user_id: i64, quantity: u32, key: Option<(i64, String)>, order_no: &str) {
        self.state.remaining -= quantity;
        if matches!(self.supply, Supply::Owned) {
            *self.state.held_by_user.entry(user_id).or_default() += quantity;
        }
        if let Some(key) = key {
            self.state.orders_by_key.insert(key, order_no.to_owned());
        }
        self.in_flight += 1;
        self.publish();
        self.ask_for_more();
    }

    /// Undoes a reservation: the units return to sale and to the user's allowance.
    fn give_back(&mut self, user_id: i64, quantity: u32) {
        self.return_units(quantity);
        self.release_allowance(user_id, quantity);
    }

    fn return_units(&mut self, quantity: u32) {
        self.state.remaining += quantity;
        self.publish();
    }

    fn release_allowance(&mut self, user_id: i64, quantity: u32) {
        if let Some(held) = self.state.held_by_user.get_mut(&user_id) {
            *held = held.saturating_sub(quantity);
            if *held == 0 {
                self.state.held_by_user.remove(&user_id);
            }
        }
    }

    fn check(&self, msg: &ReserveStock) -> Result<(), ReserveError> {
        // A retry of a request already taken gets its order even if the sale
        // closed in between.
        if let Some(key) = &msg.idempotency_key {
            if let Some(order_no) = self.state.orders_by_key.get(&(msg.user_id, key.clone())) {
                return Err(ReserveError::DuplicateKey { order_no: Some(order_no.value().clone()) });
            }
        }
        let now_ms =
            msg.now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        match self.gate.admit(now_ms) {
            Admission::Ended => return Err(ReserveError::Ended),
            Admission::NotStarted => return Err(ReserveError::NotStarted),
            Admission::Go | Admission::SoldOut => {}
        }
        if msg.quantity > self.state.remaining {
            return Err(ReserveError::SoldOut);
        }
        if matches!(self.supply, Supply::Owned) {
            let held = self.state.held_by_user.get(&msg.user_id).copied().unwrap_or(0);
            if held + msg.quantity > self.terms.per_user_limit {
                return Err(ReserveError::LimitReached);
            }
        }
        Ok(())
    }

    /// Answers, reserves, or (leasing, empty, pool maybe not) parks `msg`.
    fn serve(&mut self, msg: ReserveStock, ctx: &mut Context<Self>) {
        match self.check(&msg) {
            Ok(()) => self.reserve(msg, ctx),
            Err(ReserveError::SoldOut) if self.may_restock() => self.park(msg),
            Err(refusal) => {
                let _ = msg.reply.send(Err(refusal));
            }
        }
    }

    fn park(&mut self, msg: ReserveStock) {
        if let Supply::Leased { link, parked, .. } = &mut self.supply {
            if parked.len() >= link.park_capacity {
                let _ = msg.reply.send(Err(ReserveError::Overloaded));
                return;
            }
            parked.push_back(msg);
            link.need.notify_one();
        }
    }

    /// Serves the parked requests again, oldest first, after a refill or
    /// news of the pool: they are reserved, parked again, or refused (sold
    /// out once the pool is known empty). Requests whose caller gave up
    /// are dropped without taking stock.
    fn serve_parked(&mut self, ctx: &mut Context<Self>) {
        let waiting = match &mut self.supply {
            Supply::Leased { parked, .. } => std::mem::take(parked),
            Supply::Owned => return,
        };
        for msg in waiting {
            if !msg.reply.is_closed() {
                self.serve(msg, ctx);
            }
        }
    }
}

impl<S: BatchStore<Item = Reservation, Outcome = ReservationOutcome>> Actor for StockActor<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl<S: BatchStore<Item = Reservation, Outcome = ReservationOutcome>> Handler<ReserveStock>
    for StockActor<S>
{
    type Result = ();

    fn handle(&mut self, msg: ReserveStock, ctx: &mut Self::Context) {
        self.serve(msg, ctx);
    }
}

impl<S: BatchStore<Item = Reservation, Outcome = ReservationOutcome>> StockActor<S> {
    /// Takes the units of a checked request and hands it to the writer;
    /// the shopper is answered once the outcome is known.
    fn reserve(&mut self, msg: ReserveStock, ctx: &mut Context<Self>) {
        let ReserveStock { user_id, quantity, order_no, idempotency_key, now, reply } = msg;
        let key = idempotency_key.clone().map(|k| (user_id, k));
        self.take(user_id, quantity, key.clone(), &order_no);
        let amount_cents = self.terms.unit_price_cents * i64::from(quantity);
        let pay_before = now + self.terms.payment_window;
        let reservation = Reservation {
            event_id: self.terms.event_id,
            sku_id: self.terms.sku_id,
            title: self.terms.title.clone(),
            user_id,
            quantity,
            unit_price_cents: self.terms.unit_price_cents,
            per_user_limit: self.terms.per_user_limit,
            order_no: order_no.clone(),
            idempotency_key,
            created_at: now,
            pay_before,
        };
        let committed = match self.writer.submit(reservation) {
            Ok(answer) => answer,
            Err(error) => {
                self.in_flight -= 1;
                self.give_back(user_id, quantity);
                if let Some(key) = key {
                    self.state.orders_by_key.remove(&key);
                }
                let _ = reply.send(Err(match error {
                    WriteError::Overloaded => ReserveError::Overloaded,
                    WriteError::Failed(_) | WriteError::Closed => ReserveError::WriteFailed,
                }));
                return;
            }
        };
        // Wait for the commit without blocking the actor: other messages are
        // handled meanwhile, and the outcome is applied back inside the actor.
        let reserved = Reserved { order_no, quantity, amount_cents, pay_before };
        ctx.spawn(committed.into_actor(self).map(move |outcome, actor, ctx| {
            actor.in_flight -= 1;
            let committed_or_unknown =
                matches!(outcome, Ok(Ok(ReservationOutcome::Committed | ReservationOutcome::Unknown)));
            let answer = match outcome {
                Ok(Ok(ReservationOutcome::Committed)) => {
                    actor.gone(quantity);
                    Ok(reserved)
                }
                Ok(Ok(ReservationOutcome::DuplicateKey)) => {
                    actor.give_back(user_id, quantity);
                    Err(ReserveError::DuplicateKey { order_no: None })
                }
                // The database knows better than memory: keep what it says
                // is gone out of sale (sell less, never more) and give back
                // only what it says is still there.
                Ok(Ok(ReservationOutcome::Refused(Refusal::SoldOut))) => {
                    actor.release_allowance(user_id, quantity);
                    actor.gone(quantity);
                    Err(ReserveError::SoldOut)
                }
                Ok(Ok(ReservationOutcome::Refused(Refusal::LimitReached))) => {
                    actor.return_units(quantity);
                    Err(ReserveError::LimitReached)
                }
                // The order may exist: keep everything reserved and the key,
                // so a retry with the same key finds it.
                Ok(Ok(ReservationOutcome::Unknown)) => {
                    actor.gone(quantity);
                    Err(ReserveError::CommitUnknown)
                }
                Ok(Err(WriteError::Overloaded)) => {
                    actor.give_back(user_id, quantity);
                    Err(ReserveError::Overloaded)
                }
                Ok(Ok(ReservationOutcome::NotWritten)) | Ok(Err(_)) | Err(_) => {
                    actor.give_back(user_id, quantity);
                    Err(ReserveError::WriteFailed)
                }
            };
            if let Some(key) = key.filter(|_| !committed_or_unknown) {
                actor.state.orders_by_key.remove(&key);
            }
            let _ = reply.send(answer);
            if !committed_or_unknown {
                // Units may have come back: a parked request can have them.
                actor.serve_parked(ctx);
            }
        }));
    }
}

impl<S: BatchStore<Item = Reservation, Outcome = ReservationOutcome>> Handler<ReleaseStock>
    for StockActor<S>
{
    type Result = ();

    fn handle(&mut self, msg: ReleaseStock, _: &mut Self::Context) {
        self.give_back(msg.user_id, msg.quantity);
    }
}

impl<S: BatchStore<Item = Reservation, Outcome = ReservationOutcome>> Handler<GetStockLevel>
    for StockActor<S>
{
    type Result = StockLevel;

    fn handle(&mut self, _: GetStockLevel, _: &mut Self::Context) -> StockLevel {
        StockLevel { remaining: self.state.remaining, in_flight: self.in_flight }
    }
}

impl<S: BatchStore<Item = Reservation, Outcome = ReservationOutcome>> Handler<Restock> for StockActor<S> {
    type Result = ();

    fn handle(&mut self, msg: Restock, ctx: &mut Self::Context) {
        self.state.remaining += msg.leased;
        if let Supply::Leased { pool, .. } = &mut self.supply {
            if pool.is_none_or(|known| known.seq <= msg.pool.seq) {
                *pool = Some(msg.pool);
            }
        }
        self.publish();
        self.serve_parked(ctx);
        self.ask_for_more();
    }
}

impl<S: BatchStore<Item = Reservation, Outcome = ReservationOutcome>> Handler<TakeBackStock>
    for StockActor<S>
{
    type Result = u32;

    fn handle(&mut self, _: TakeBackStock, ctx: &mut Self::Context) -> u32 {
        let units = std::mem::take(&mut self.state.remaining);
        self.publish();
        // Parked requests hear "ended" now, or wait for the next refill.
        self.serve_parked(ctx);
        units
    }
}
