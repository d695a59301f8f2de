//! The running carts of one node: one actor per active shopper, started on
//! demand from Postgres, and the group-commit writer they share.
//!
//! Several nodes may each hold an actor of the same shopper. Each commit is
//! announced ([`super::news`]) and the other nodes evict their actor of
//! that shopper, so it is rebuilt with the change; until the news arrives
//! an actor may answer from older memory, but cannot overwrite the change
//! (its writes name the versions they replace), and checkout compares it
//! with the database first ([`CartEngine::current`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::dev::SendError;
use actix::{Addr, Arbiter, ArbiterHandle, Handler, Message};
use actors::cart::{CartActor, CartError, CartLimits, CartLine, CartReply, Evict, GetCart};
use actors::writer::{spawn_writer, WriterConfig, WriterHandle};
use dashmap::DashMap;
use deadpool_postgres::Pool;
use tokio::sync::{oneshot, Notify, OnceCell};

use super::news::{AnnouncedCartLines, CartNews, Heard};
use super::store::{self, PgCartLines};
use crate::config::CartSettings;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::kv::Kv;
use crate::metrics::{batch_observer, Metrics};

/// The actor type of a cart.
type Cart = CartActor<AnnouncedCartLines>;

/// Tries of one request: a message the actor never read (it had stopped
/// meanwhile) is sent again to a fresh actor.
const ATTEMPTS: usize = 3;

/// One shopper's entry in the registry: the actor, once started. Its id
/// tells it apart from the entry that replaces it after its actor stopped.
struct Slot {
    id: u64,
    actor: OnceCell<Addr<Cart>>,
    /// Another node changed the cart: the actor must go, even one still
    /// loading when the news came (it may have read the cart before).
    stale: AtomicBool,
    /// Woken once the actor has stopped and the entry is gone.
    gone: Arc<Notify>,
}

/// The cart actors of this node and their writer.
pub struct CartEngine {
    /// Shared with each actor's stop hook, which removes its own entry.
    actors: Arc<DashMap<i64, Arc<Slot>>>,
    next_slot: AtomicU64,
    writer: WriterHandle<AnnouncedCartLines>,
    news: Arc<CartNews>,
    db: Pool,
    limits: CartLimits,
    mailbox_capacity: usize,
    /// Where actors start when the caller runs on no arbiter.
    fallback_home: ArbiterHandle,
}

impl CartEngine {
    /// Starts the writer (on the calling arbiter); actors start on demand.
    pub fn start(db: Pool, kv: Kv, settings: &CartSettings, metrics: &Metrics) -> Arc<Self> {
        let news = Arc::new(CartNews::new(kv));
        let writer = spawn_writer(
            AnnouncedCartLines::new(PgCartLines::new(db.clone()), news.clone()),
            WriterConfig {
                max_rows: settings.batch_max_rows,
                max_delay: Duration::from_micros(settings.batch_max_delay_us),
                queue_capacity: settings.writer_queue_capacity,
                max_in_flight: settings.writer_max_in_flight,
            },
            batch_observer(metrics.cart_batch_rows.clone(), metrics.cart_commit_seconds.clone()),
        );
        Arc::new(Self {
            actors: Arc::new(DashMap::new()),
            next_slot: AtomicU64::new(0),
            writer,
            news,
            db,
            limits: CartLimits {
                max_lines: settings.max_lines,
                max_line_quantity: settings.max_line_quantity,
                idle_evict: Duration::from_secs(settings.idle_evict_secs),
            },
            mailbox_capacity: settings.mailbox_capacity,
            fallback_home: Arbiter::current(),
        })
    }

    /// Sends `user_id`'s cart actor (started first if need be) the message
    /// `make` builds, and waits for the cart it answers once committed. A
    /// full mailbox is a 503 `overloaded` at once.
    pub async fn ask<M>(&self, user_id: i64, make: impl Fn(CartReply) -> M) -> ApiResult<Vec<CartLine>>
    where
        M: Message<Result = ()> + Send + 'static,
        Cart: Handler<M>,
    {
        for _ in 0..ATTEMPTS {
            let slot = self.slot(user_id);
            let actor = slot.actor.get_or_try_init(|| self.start_actor(user_id, &slot)).await?;
            if slot.stale.load(Ordering::Acquire) {
                // Evicted while it was starting: this message gets `Evicted`.
                evict(&slot);
            }
            let (reply, answer) = oneshot::channel();
            // By reference: a clone of the address could pass the mailbox bound.
            match actor.try_send(make(reply)) {
                Ok(()) => {}
                Err(SendError::Full(_)) => return Err(ApiError::new(ErrorCode::Overloaded).retry_after(1)),
                Err(SendError::Closed(_)) => {
                    forget(&self.actors, user_id, slot.id);
                    continue;
                }
            }
            match answer.await {
                // Another node changed the cart: ask the next actor, once
                // this one has finished its writes and left.
                Ok(Err(CartError::Evicted)) => self.until_gone(user_id, &slot).await,
                Ok(lines) => return Ok(lines?),
                // Dropped unread: the actor stopped before reaching it, so
                // nothing was done. A fresh actor gets it.
                Err(_) => forget(&self.actors, user_id, slot.id),
            }
        }
        Err(ApiError::unavailable(anyhow::anyhow!("the cart actor of user {user_id} keeps stopping")))
    }

    /// The user's registry entry, made if missing. Only one request of a
    /// user starts its actor (`OnceCell`); the others wait for it, so a user
    /// never has two actors writing at once.
    fn slot(&self, user_id: i64) -> Arc<Slot> {
        if let Some(slot) = self.actors.get(&user_id) {
            return slot.clone();
        }
        self.actors
            .entry(user_id)
            .or_insert_with(|| {
                Arc::new(Slot {
                    id: self.next_slot.fetch_add(1, Ordering::Relaxed),
                    actor: OnceCell::new(),
                    stale: AtomicBool::new(false),
                    gone: Arc::new(Notify::new()),
                })
            })
            .clone()
    }

    /// Waits until `slot`'s actor has stopped and left the registry.
    async fn until_gone(&self, user_id: i64, slot: &Slot) {
        // Made before the check: it hears a wake-up that comes in between.
        let gone = slot.gone.notified();
        let registered = self.actors.get(&user_id).is_some_and(|entry| entry.id == slot.id);
        if registered {
            gone.await;
        }
    }

    /// Rebuilds the user's cart from Postgres and starts its actor on the
    /// caller's arbiter (an HTTP worker's), which spreads actors over the
    /// workers' threads without a thread of their own.
    async fn start_actor(&self, user_id: i64, slot: &Slot) -> ApiResult<Addr<Cart>> {
        let client = self.db.get().await?;
        let snapshot = store::load(&client, user_id).await?;
        drop(client);
        let (actors, slot_id, gone) = (self.actors.clone(), slot.id, slot.gone.clone());
        let actor =
            CartActor::new(user_id, snapshot, self.limits, self.writer.clone(), self.mailbox_capacity)
                .on_stopped(move || {
                    forget(&actors, user_id, slot_id);
                    gone.notify_waiters();
                });
        let home = Arbiter::try_current().unwrap_or_else(|| self.fallback_home.clone());
        Ok(actor.start_on(&home))
    }

    /// The cart as checkout must see it: with every change committed
    /// before this call, on any node. The actor answers once its own
    /// changes are committed; if the database then holds anything else (a
    /// change from another node whose news has not arrived yet), the actor
    /// is evicted and the cart is read again through a fresh one.
    pub async fn current(&self, user_id: i64) -> ApiResult<Vec<CartLine>> {
        let lines = self.ask(user_id, |reply| GetCart { reply }).await?;
        let client = self.db.get().await?;
        let stored = store::load(&client, user_id).await?;
        drop(client);
        let key = |line: &CartLine| (line.sku_id, line.quantity, line.selected, line.version);
        let mut held: Vec<_> = lines.iter().map(key).collect();
        let mut truth: Vec<_> = stored.lines.iter().map(key).collect();
        held.sort_unstable();
        truth.sort_unstable();
        if held == truth {
            return Ok(lines);
        }
        self.evict(user_id);
        self.ask(user_id, |reply| GetCart { reply }).await
    }

    /// Makes this node's actor of `user_id` go (see [`Evict`]): its memory
    /// may be older than the database.
    fn evict(&self, user_id: i64) {
        if let Some(slot) = self.actors.get(&user_id) {
            evict(&slot);
        }
    }

    /// Evicts this node's actors of the shoppers other nodes changed, and
    /// all of them when news may have been missed, until the process ends.
    pub async fn follow_other_nodes(self: Arc<Self>) {
        self.news
            .follow(async |heard| match heard {
                Heard::Changed(users) => users.into_iter().for_each(|user_id| self.evict(user_id)),
                Heard::Resync => self.actors.iter().for_each(|slot| evict(&slot)),
            })
            .await;
    }

    /// Cart actors registered (started or starting).
    pub fn live_actors(&self) -> usize {
        self.actors.len()
    }

    /// Cart changes waiting for the writer.
    pub fn writer_queue_depth(&self) -> usize {
        self.writer.queue_depth()
    }
}

/// Marks `slot` stale and tells its actor, if it has started (one still
/// starting is told by the request that started it). `do_send`: an
/// eviction must not be lost to a full mailbox, and there is one per
/// change on another node at most.
fn evict(slot: &Slot) {
    slot.stale.store(true, Ordering::Release);
    if let Some(actor) = slot.actor.get() {
        actor.do_send(Evict);
    }
}

/// Drops a user's entry `slot_id` if it is still the registered one (a
/// newer entry belongs to a newer actor).
fn forget(actors: &DashMap<i64, Arc<Slot>>, user_id: i64, slot_id: u64) {
    actors.remove_if(&user_id, |_, slot| slot.id == slot_id);
}
