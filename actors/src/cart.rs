//! The cart actor: one per active shopper.
//!
//! It alone changes its shopper's cart, one message at a time, so two tabs
//! racing never lose an update. A change is applied in memory at once and
//! written through the group-commit writer; its caller is answered only
//! once it is committed. While one write is being committed, the changes
//! arriving meanwhile wait and go out together as the next write, so an
//! actor never has more than one write in flight: answers leave in the
//! order the messages came, and a failed write is known before anything
//! after it is sent.
//!
//! Every changed line carries the actor's change counter (`version`) and
//! the version of the line the actor last knew stored (`expected`); the
//! store keeps a line only if its version is newer than the stored one (a
//! late write can never roll a line back) and the stored one is no newer
//! than expected (no actor writes over a change it has not seen).
//!
//! Several actors of one shopper can exist, one per node. Their counters
//! are not ordered among each other, which is why a write names what it
//! expects: a change another node committed is never overwritten by an
//! actor that did not see it. When a write fails, or the store finds such a
//! change (the actor's memory is stale), memory and the database disagree:
//! the actor answers everyone waiting with an error and stops, and the next
//! request rebuilds it from the database. So that this stays rare, a node
//! that commits a change tells the others, and they send their actor of
//! that shopper [`Evict`]. An actor that hears nothing for `idle_evict`
//! stops too; it never stops with a write in flight.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::mailbox;
use crate::writer::{BatchStore, WriteError, WriterHandle};

/// How often an idle actor checks at most, however short `idle_evict` is.
const MIN_IDLE_CHECK: Duration = Duration::from_millis(100);

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLine {
    pub sku_id: i64,
    /// Zero marks a removed line (a tombstone), written so the removal
    /// reaches the database; the actor never answers with one.
    pub quantity: u32,
    /// Whether the shopper ticked the line for checkout.
    pub selected: bool,
    /// The unit price when the line was added, to show price changes.
    pub added_price_cents: i64,
    pub added_at: SystemTime,
    /// The actor's change counter when the line last changed.
    pub version: i64,
}

/// A cart as stored: its lines and the highest version any of its rows
/// (tombstones included) carries, where the actor's counter resumes.
#[derive(Debug, Clone, Default)]
pub struct CartSnapshot {
    pub lines: Vec<CartLine>,
    pub version: i64,
}

/// The limits every cart obeys.
#[derive(Debug, Clone, Copy)]
pub struct CartLimits {
    /// Most distinct lines.
    pub max_lines: usize,
    /// Most units in one line.
    pub max_line_quantity: u32,
    /// How long an actor may hear nothing before it stops.
    pub idle_evict: Duration,
}

/// The changed lines of one cart, on their way to the database.
#[derive(Debug, Clone)]
pub struct CartWrite {
    pub user_id: i64,
    pub lines: Vec<LineWrite>,
}

/// One changed line and what the actor expects the database to hold.
#[derive(Debug, Clone)]
pub struct LineWrite {
    pub line: CartLine,
    /// The stored line's version when the actor last knew it (for a line it
    /// never saw, the highest version of the cart when it was loaded). A
    /// newer stored version was written by another actor of the shopper:
    /// the line must not be stored.
    pub expected: i64,
}

/// What the store did with one [`CartWrite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CartWriteOutcome {
    /// Every line is stored.
    Committed,
    /// Some line was not stored: the database holds a version of it newer
    /// than this actor's (or than it expected), so its memory is stale.
    Superseded,
}

/// A store of cart writes.
pub trait CartStore: BatchStore<Item = CartWrite, Outcome = CartWriteOutcome> {}

impl<S: BatchStore<Item = CartWrite, Outcome = CartWriteOutcome>> CartStore for S {}

/// Why a cart message was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    /// A new line would exceed the cart's line limit.
    #[error("the cart holds the most lines allowed ({max_lines})")]
    CartFull { max_lines: usize },
    /// A line would hold more units than allowed.
    #[error("a line holds at most {max} units")]
    QuantityLimit { max: u32 },
    /// No such line in the cart (or none of the lines named).
    #[error("no such line in the cart")]
    NotInCart,
    /// The writer's queue is full.
    #[error("overloaded")]
    Overloaded,
    /// The change could not be written; the actor has stopped.
    #[error("write failed")]
    WriteFailed,
    /// The actor was evicted before it read the message: nothing was done.
    /// Ask the shopper's next actor once this one has stopped.
    #[error("cart actor evicted")]
    Evicted,
}

/// Answer channel of every cart message: the cart's lines once everything
/// up to and including the message is committed, newest first.
pub type CartReply = oneshot::Sender<Result<Vec<CartLine>, CartError>>;

/// Adds `quantity` units of a SKU: a new line (selected, at
/// `unit_price_cents`), or more of an existing one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddLine {
    pub sku_id: i64,
    pub quantity: NonZeroU32,
    /// The SKU's price now, kept as the line's `added_price_cents` if new.
    pub unit_price_cents: i64,
    pub reply: CartReply,
}

/// Sets a line's quantity and/or whether it is selected.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetLine {
    pub sku_id: i64,
    pub quantity: Option<NonZeroU32>,
    pub selected: Option<bool>,
    pub reply: CartReply,
}

/// Removes the named lines; refused with [`CartError::NotInCart`] when
/// none of them is in the cart.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveLines {
    pub sku_ids: Vec<i64>,
    pub reply: CartReply,
}

/// Takes bought units off their lines (a line left with none is removed);
/// units added meanwhile, from another tab say, stay. Refused with
/// [`CartError::NotInCart`] when none of the lines is in the cart.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TakeUnits {
    /// `(sku_id, units bought)`.
    pub units: Vec<(i64, u32)>,
    pub reply: CartReply,
}

/// Removes every line.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClearCart {
    pub reply: CartReply,
}

/// Selects or deselects the named lines (all lines when `sku_ids` is
/// `None`); refused, changing nothing, if a named line is not in the cart.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SelectLines {
    pub sku_ids: Option<Vec<i64>>,
    pub selected: bool,
    pub reply: CartReply,
}

/// Reads the cart (answered once every earlier change is committed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct GetCart {
    pub reply: CartReply,
}

/// Another node committed a change to this cart, so memory may be stale:
/// the actor answers every later message with [`CartError::Evicted`], lets
/// the writes it has accepted finish, and stops; the next request rebuilds
/// the cart from the database.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Evict;

/// A shopper's lines and change counter: the rules, apart from the actor.
struct Cart {
    lines: HashMap<i64, CartLine>,
    version: i64,
    limits: CartLimits,
    /// The version of each line (tombstones included) this actor knows the
    /// database holds: as loaded, then as this actor wrote them.
    stored: HashMap<i64, i64>,
    /// The cart's highest version when it was loaded: any line not in
    /// `stored` was at most this then.
    loaded: i64,
}

impl Cart {
    fn live(&self, sku_id: i64) -> Option<&CartLine> {
        self.lines.get(&sku_id).filter(|line| line.quantity > 0)
    }

    fn check_quantity(&self, quantity: u32) -> Result<(), CartError> {
        let max = self.limits.max_line_quantity;
        if quantity > max {
            return Err(CartError::QuantityLimit { max });
        }
        Ok(())
    }

    fn add(&mut self, sku_id: i64, quantity: NonZeroU32, unit_price_cents: i64) -> Result<bool, CartError> {
        let quantity = match self.live(sku_id) {
            Some(line) => line.quantity.saturating_add(quantity.get()),
            None => {
                let max_lines = self.limits.max_lines;
                if self.lines.values().filter(|line| line.quantity > 0).count() >= max_lines {
                    return Err(CartError::CartFull { max_lines });
                }
                quantity.get()
            }
        };
        self.check_quantity(quantity)?;
        self.version += 1;
        let version = self.version;
        match self.lines.get_mut(&sku_id).filter(|line| line.quantity > 0) {
            Some(line) => {
                line.quantity = quantity;
                line.version = version;
            }
            // New, or back after a removal: a fresh line at today's price.
            None => {
                let added_at = SystemTime::now();
                let line = CartLine {
                    sku_id,
                    quantity,
                    selected: true,
                    added_price_cents: unit_price_cents,
                    added_at,
                    version,
                };
                self.lines.insert(sku_id, line);
            }
        }
        Ok(true)
    }

    fn set(
        &mut self,
        sku_id: i64,
        quantity: Option<NonZeroU32>,
        selected: Option<bool>,
    ) -> Result<bool, CartError> {
        let current = self.live(sku_id).ok_or(CartError::NotInCart)?;
        if let Some(quantity) = quantity {
            self.check_quantity(quantity.get())?;
        }
        let quantity = quantity.map_or(current.quantity, NonZeroU32::get);
        let selected = selected.unwrap_or(current.selected);
        Ok(self.update(
            |line| line.sku_id == sku_id,
            |line| {
                line.quantity = quantity;
                line.selected = selected;
            },
        ))
    }

    fn remove(&mut self, sku_ids: &[i64]) -> Result<bool, CartError> {
        if !sku_ids.iter().any(|sku_id| self.live(*sku_id).is_some()) {
            return Err(CartError::NotInCart);
        }
        Ok(self.update(|line| sku_ids.contains(&line.sku_id), |line| line.quantity = 0))
    }

    fn take(&mut self, units: &[(i64, u32)]) -> Result<bool, CartError> {
        if !units.iter().any(|(sku_id, _)| self.live(*sku_id).is_some()) {
            return Err(CartError::NotInCart);
        }
        Ok(self.update(
            |line| units.iter().any(|(sku_id, _)| *sku_id == line.sku_id),
            |line| {
                let bought = units.iter().filter(|(sku_id, _)| *sku_id == line.sku_id).map(|(_, n)| *n).sum();
                line.quantity = line.quantity.saturating_sub(bought);
            },
        ))
    }

    fn select(&mut self, sku_ids: Option<&[i64]>, selected: bool) -> Result<bool, CartError> {
        if sku_ids.is_some_and(|ids| ids.iter().any(|sku_id| self.live(*sku_id).is_none())) {
            return Err(CartError::NotInCart);
        }
        let named = |line: &CartLine| sku_ids.is_none_or(|ids| ids.contains(&line.sku_id));
        Ok(self.update(named, |line| line.selected = selected))
    }

    /// Applies `change` to every live line `pick` accepts, under one new
    /// version. Lines `change` leaves as they were keep their version.
    /// Whether anything changed.
    fn update(&mut self, pick: impl Fn(&CartLine) -> bool, change: impl Fn(&mut CartLine)) -> bool {
        let version = self.version + 1;
        let mut changed = false;
        for line in self.lines.values_mut().filter(|line| line.quantity > 0 && pick(line)) {
            let before = (line.quantity, line.selected);
            change(line);
            if (line.quantity, line.selected) != before {
                line.version = version;
                changed = true;
            }
        }
        if changed {
            self.version = version;
        }
        changed
    }

    /// The lines changed after `version`, to write, each with the version
    /// it replaces; forgets the tombstones among them (once written, the
    /// database keeps them).
    fn take_changes(&mut self, version: i64) -> Vec<LineWrite> {
        let changed = self
            .lines
            .values()
            .filter(|line| line.version > version)
            .map(|line| LineWrite {
                line: line.clone(),
                expected: self.stored.get(&line.sku_id).copied().unwrap_or(self.loaded),
            })
            .collect();
        self.lines.retain(|_, line| line.quantity > 0);
        changed
    }

    /// The live lines, newest first.
    fn contents(&self) -> Vec<CartLine> {
        let mut lines: Vec<CartLine> =
            self.lines.values().filter(|line| line.quantity > 0).cloned().collect();
        lines.sort_by(|a, b| b.added_at.cmp(&a.added_at).then(a.sku_id.cmp(&b.sku_id)));
        lines
    }
}

/// A caller waiting for a write to commit, and what to tell it then.
struct Waiter {
    reply: CartReply,
    answer: Result<Vec<CartLine>, CartError>,
}

impl Waiter {
    fn answer(self) {
        let _ = self.reply.send(self.answer);
    }

    fn fail(self, error: CartError) {
        let _ = self.reply.send(Err(error));
    }
}

/// The write being committed: its callers, and its lines' `(sku_id,
/// version)` to remember as stored once it commits.
struct InFlight {
    waiters: Vec<Waiter>,
    lines: Vec<(i64, i64)>,
}

/// The actor owning one shopper's cart.
pub struct CartActor<S: CartStore> {
    user_id: i64,
    cart: Cart,
    /// The highest version handed to the writer.
    written: i64,
    writer: WriterHandle<S>,
    mailbox_capacity: usize,
    /// The write being committed, if one is.
    in_flight: Option<InFlight>,
    /// [`Evict`] arrived: refuse new messages, stop once writes are done.
    evicted: bool,
    /// The callers of the next write, gathered while one is in flight.
    next: Vec<Waiter>,
    last_message: Instant,
    on_stopped: Option<Box<dyn FnOnce() + Send>>,
}

impl<S: CartStore> CartActor<S> {
    /// An actor for `user_id`'s cart as stored (`snapshot`).
    pub fn new(
        user_id: i64,
        snapshot: CartSnapshot,
        limits: CartLimits,
        writer: WriterHandle<S>,
        mailbox_capacity: usize,
    ) -> Self {
        let stored = snapshot.lines.iter().map(|line| (line.sku_id, line.version)).collect();
        let lines = snapshot.lines.into_iter().map(|line| (line.sku_id, line)).collect();
        Self {
            user_id,
            cart: Cart { lines, version: snapshot.version, limits, stored, loaded: snapshot.version },
            written: snapshot.version,
            writer,
            mailbox_capacity,
            in_flight: None,
            evicted: false,
            next: Vec::new(),
            last_message: Instant::now(),
            on_stopped: None,
        }
    }

    /// Runs `hook` once the actor has stopped, e.g. to deregister it.
    pub fn on_stopped(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.on_stopped = Some(Box::new(hook));
        self
    }

    /// Starts the actor on `arbiter` with its bounded mailbox in force from
    /// the first message (see [`mailbox::start_on`]).
    pub fn start_on(self, arbiter: &ArbiterHandle) -> Addr<Self> {
        let capacity = self.mailbox_capacity;
        mailbox::start_on(self, capacity, arbiter)
    }

    /// Applies one message's `change` and answers it in order: at once if
    /// nothing is pending, else after the write that carries it (or the
    /// last one before it) commits.
    fn run(
        &mut self,
        ctx: &mut Context<Self>,
        reply: CartReply,
        change: impl FnOnce(&mut Cart) -> Result<bool, CartError>,
    ) {
        self.last_message = Instant::now();
        if self.evicted {
            let _ = reply.send(Err(CartError::Evicted));
            return;
        }
        let (answer, changed) = match change(&mut self.cart) {
            Ok(changed) => (Ok(self.cart.contents()), changed),
            Err(error) => (Err(error), false),
        };
        let waiter = Waiter { reply, answer };
        if changed {
            self.next.push(waiter);
            if self.in_flight.is_none() {
                self.write_next(ctx);
            }
        } else if !self.next.is_empty() {
            self.next.push(waiter);
        } else if let Some(in_flight) = &mut self.in_flight {
            in_flight.waiters.push(waiter);
        } else {
            waiter.answer();
        }
    }

    /// Hands every change not yet written to the writer, with its callers.
    fn write_next(&mut self, ctx: &mut Context<Self>) {
        let waiters = std::mem::take(&mut self.next);
        let lines = self.cart.take_changes(self.written);
        if lines.is_empty() {
            waiters.into_iter().for_each(Waiter::answer);
            return;
        }
        self.written = self.cart.version;
        let versions = lines.iter().map(|write| (write.line.sku_id, write.line.version)).collect();
        match self.writer.submit(CartWrite { user_id: self.user_id, lines }) {
            Ok(committed) => {
                self.in_flight = Some(InFlight { waiters, lines: versions });
                // Wait without blocking the actor: changes arriving meanwhile
                // gather in `next`.
                ctx.spawn(committed.into_actor(self).map(|outcome, actor, ctx| {
                    actor.written(outcome.unwrap_or(Err(WriteError::Closed)), ctx);
                }));
            }
            Err(error) => {
                let error = match error {
                    WriteError::Overloaded => CartError::Overloaded,
                    WriteError::Failed(_) | WriteError::Closed => CartError::WriteFailed,
                };
                self.give_up(waiters, error, ctx);
            }
        }
    }

    fn written(&mut self, outcome: Result<CartWriteOutcome, WriteError>, ctx: &mut Context<Self>) {
        let InFlight { waiters, lines } =
            self.in_flight.take().unwrap_or(InFlight { waiters: Vec::new(), lines: Vec::new() });
        match outcome {
            Ok(CartWriteOutcome::Committed) => {
                self.cart.stored.extend(lines);
                waiters.into_iter().for_each(Waiter::answer);
                if !self.next.is_empty() {
                    self.write_next(ctx);
                }
                if self.evicted && self.in_flight.is_none() {
                    ctx.stop();
                }
            }
            Ok(CartWriteOutcome::Superseded) | Err(_) => self.give_up(waiters, CartError::WriteFailed, ctx),
        }
    }

    /// Memory holds changes the database does not: fail every waiting
    /// caller and stop, so the next request rebuilds the cart from the
    /// database.
    fn give_up(&mut self, waiters: Vec<Waiter>, error: CartError, ctx: &mut Context<Self>) {
        tracing::warn!(user_id = self.user_id, %error, "cart write not stored; the cart actor stops");
        for waiter in waiters.into_iter().chain(self.next.drain(..)) {
            waiter.fail(error.clone());
        }
        ctx.stop();
    }
}

impl<S: CartStore> Actor for CartActor<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let idle = self.cart.limits.idle_evict;
        ctx.run_interval((idle / 2).max(MIN_IDLE_CHECK), move |actor, ctx| {
            if actor.in_flight.is_none() && actor.last_message.elapsed() >= idle {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(hook) = self.on_stopped.take() {
            hook();
        }
    }
}

impl<S: CartStore> Handler<AddLine> for CartActor<S> {
    type Result = ();

    fn handle(&mut self, msg: AddLine, ctx: &mut Self::Context) {
        let AddLine { sku_id, quantity, unit_price_cents, reply } = msg;
        self.run(ctx, reply, |cart| cart.add(sku_id, quantity, unit_price_cents));
    }
}

impl<S: CartStore> Handler<SetLine> for CartActor<S> {
    type Result = ();

    fn handle(&mut self, msg: SetLine, ctx: &mut Self::Context) {
        let SetLine { sku_id, quantity, selected, reply } = msg;
        self.run(ctx, reply, |cart| cart.set(sku_id, quantity, selected));
    }
}

impl<S: CartStore> Handler<RemoveLines> for CartActor<S> {
    type Result = ();

    fn handle(&mut self, msg: RemoveLines, ctx: &mut Self::Context) {
        self.run(ctx, msg.reply, |cart| cart.remove(&msg.sku_ids));
    }
}

impl<S: CartStore> Handler<TakeUnits> for CartActor<S> {
    type Result = ();

    fn handle(&mut self, msg: TakeUnits, ctx: &mut Self::Context) {
        self.run(ctx, msg.reply, |cart| cart.take(&msg.units));
    }
}

impl<S: CartStore> Handler<ClearCart> for CartActor<S> {
    type Result = ();

    fn handle(&mut self, msg: ClearCart, ctx: &mut Self::Context) {
        self.run(ctx, msg.reply, |cart| Ok(cart.update(|_| true, |line| line.quantity = 0)));
    }
}

impl<S: CartStore> Handler<SelectLines> for CartActor<S> {
    type Result = ();

    fn handle(&mut self, msg: SelectLines, ctx: &mut Self::Context) {
        let SelectLines { sku_ids, selected, reply } = msg;
        self.run(ctx, reply, |cart| cart.select(sku_ids.as_deref(), selected));
    }
}

impl<S: CartStore> Handler<GetCart> for CartActor<S> {
    type Result = ();

    fn handle(&mut self, msg: GetCart, ctx: &mut Self::Context) {
        self.run(ctx, msg.reply, |_| Ok(false));
    }
}

impl<S: CartStore> Handler<Evict> for CartActor<S> {
    type Result = ();

    fn handle(&mut self, _: Evict, ctx: &mut Self::Context) {
        self.evicted = true;
        // With no write in flight nothing is pending (`next` only fills
        // while one is); messages still queued are dropped unread, and
        // their senders ask the next actor.
        if self.in_flight.is_none() {
            ctx.stop();
        }
    }
}
