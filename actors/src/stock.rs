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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use dashmap::DashMap;
use tokio::sync::oneshot;

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

/// The actor owning one event's stock.
pub struct StockActor<S: BatchStore<Item = Reservation, Outcome = ReservationOutcome>> {
    terms: EventTerms,
    state: StockSnapshot,
    in_flight: u32,
    gate: Arc<EventGate>,
    writer: WriterHandle<S>,
    mailbox_capacity: usize,
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
        Self { terms, state, in_flight: 0, gate, writer, mailbox_capacity }
    }

    /// Starts the actor on `arbiter` with its bounded mailbox in force from
    /// the first message (see [`mailbox::start_on`]).
    pub fn start_on(self, arbiter: &ArbiterHandle) -> Addr<Self> {
        let capacity = self.mailbox_capacity;
        mailbox::start_on(self, capacity, arbiter)
    }

    fn take(&mut self, user_id: i64, quantity: u32, key: Option<(i64, String)>, order_no: &str) {
        self.state.remaining -= quantity;
        *self.state.held_by_user.entry(user_id).or_default() += quantity;
        if let Some(key) = key {
            self.state.orders_by_key.insert(key, order_no.to_owned());
        }
        self.in_flight += 1;
        self.gate.set_remaining(self.state.remaining);
    }

    /// Undoes a reservation: the units return to sale and to the user's allowance.
    fn give_back(&mut self, user_id: i64, quantity: u32) {
        self.return_units(quantity);
        self.release_allowance(user_id, quantity);
    }

    fn return_units(&mut self, quantity: u32) {
        self.state.remaining += quantity;
        self.gate.set_remaining(self.state.remaining);
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
        let held = self.state.held_by_user.get(&msg.user_id).copied().unwrap_or(0);
        if held + msg.quantity > self.terms.per_user_limit {
            return Err(ReserveError::LimitReached);
        }
        Ok(())
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
        if let Err(refusal) = self.check(&msg) {
            let _ = msg.reply.send(Err(refusal));
            return;
        }
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
        ctx.spawn(committed.into_actor(self).map(move |outcome, actor, _| {
            actor.in_flight -= 1;
            let committed_or_unknown =
                matches!(outcome, Ok(Ok(ReservationOutcome::Committed | ReservationOutcome::Unknown)));
            let answer = match outcome {
                Ok(Ok(ReservationOutcome::Committed)) => Ok(reserved),
                Ok(Ok(ReservationOutcome::DuplicateKey)) => {
                    actor.give_back(user_id, quantity);
                    Err(ReserveError::DuplicateKey { order_no: None })
                }
                // The database knows better than memory: keep what it says
                // is gone out of sale (sell less, never more) and give back
                // only what it says is still there.
                Ok(Ok(ReservationOutcome::Refused(Refusal::SoldOut))) => {
                    actor.release_allowance(user_id, quantity);
                    Err(ReserveError::SoldOut)
                }
                Ok(Ok(ReservationOutcome::Refused(Refusal::LimitReached))) => {
                    actor.return_units(quantity);
                    Err(ReserveError::LimitReached)
                }
                // The order may exist: keep everything reserved and the key,
                // so a retry with the same key finds it.
                Ok(Ok(ReservationOutcome::Unknown)) => Err(ReserveError::WriteFailed),
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
