//! The cart actor under racing changes, limits, failures and idleness, with
//! an in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::dev::SendError;
use actix::{Addr, Arbiter};
use actors::cart::{
    AddLine, CartActor, CartError, CartLimits, CartLine, CartReply, CartSnapshot, CartWrite,
    CartWriteOutcome, ClearCart, Evict, GetCart, RemoveLines, SelectLines, SetLine, TakeUnits,
};
use actors::writer::{spawn_writer, BatchStore, WriterConfig};
use tokio::sync::oneshot;

const USER: i64 = 42;

/// Keeps lines by (user, SKU) under the same version rules as Postgres;
/// can be told to fail every batch or to take its time.
#[derive(Clone, Default)]
struct MemoryStore {
    rows: Arc<Mutex<HashMap<(i64, i64), CartLine>>>,
    writes: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    delay_ms: Arc<AtomicUsize>,
}

impl MemoryStore {
    fn quantity(&self, sku_id: i64) -> Option<u32> {
        self.rows.lock().unwrap().get(&(USER, sku_id)).map(|line| line.quantity)
    }
}

impl BatchStore for MemoryStore {
    type Item = CartWrite;
    type Outcome = CartWriteOutcome;

    async fn write_batch(&self, items: &[CartWrite]) -> Result<Vec<CartWriteOutcome>, String> {
        let delay = self.delay_ms.load(Ordering::SeqCst) as u64;
        tokio::time::sleep(Duration::from_millis(delay.max(1))).await;
        if self.failing.load(Ordering::SeqCst) {
            return Err("disk on fire".into());
        }
        let mut rows = self.rows.lock().unwrap();
        Ok(items
            .iter()
            .map(|item| {
                self.writes.fetch_add(1, Ordering::SeqCst);
                let mut outcome = CartWriteOutcome::Committed;
                for write in &item.lines {
                    let line = &write.line;
                    let key = (item.user_id, line.sku_id);
                    match rows.get(&key) {
                        Some(stored) if stored.version >= line.version || stored.version > write.expected => {
                            outcome = CartWriteOutcome::Superseded;
                        }
                        _ => {
                            rows.insert(key, line.clone());
                        }
                    }
                }
                outcome
            })
            .collect())
    }
}

fn limits(max_lines: usize, max_line_quantity: u32) -> CartLimits {
    CartLimits { max_lines, max_line_quantity, idle_evict: Duration::from_secs(60) }
}

/// Starts an actor for [`USER`]; the returned flag turns true once it stopped.
fn start(
    store: &MemoryStore,
    snapshot: CartSnapshot,
    limits: CartLimits,
    mailbox: usize,
) -> (Addr<CartActor<MemoryStore>>, Arc<AtomicBool>) {
    let writer = spawn_writer(
        store.clone(),
        WriterConfig {
            max_rows: 64,
            max_delay: Duration::from_millis(1),
            queue_capacity: 10_000,
            max_in_flight: 2,
        },
        Arc::new(|_| {}),
    );
    let stopped = Arc::new(AtomicBool::new(false));
    let flag = stopped.clone();
    let actor = CartActor::new(USER, snapshot, limits, writer, mailbox)
        .on_stopped(move || flag.store(true, Ordering::SeqCst))
        .start_on(&Arbiter::current());
    (actor, stopped)
}

async fn ask<M>(
    actor: &Addr<CartActor<MemoryStore>>,
    message: impl FnOnce(CartReply) -> M,
) -> Result<Vec<CartLine>, CartError>
where
    M: actix::Message<Result = ()> + Send + 'static,
    CartActor<MemoryStore>: actix::Handler<M>,
{
    let (reply, answer) = oneshot::channel();
    actor.try_send(message(reply)).map_err(|_| "mailbox").unwrap();
    answer.await.unwrap()
}

fn units(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn add(sku_id: i64, n: u32) -> impl FnOnce(CartReply) -> AddLine {
    move |reply| AddLine { sku_id, quantity: units(n), unit_price_cents: 500, reply }
}

async fn wait_until(flag: &AtomicBool) {
    for _ in 0..100 {
        if flag.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the actor did not stop");
}

#[actix::test]
async fn racing_adds_sum_exactly_and_are_written_together() {
    let store = MemoryStore::default();
    let (actor, _) = start(&store, CartSnapshot::default(), limits(10, 999), 1000);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let actor = actor.clone();
            actix::spawn(async move { ask(&actor, add(if i % 2 == 0 { 7 } else { 8 }, 1)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let lines = ask(&actor, |reply| GetCart { reply }).await.unwrap();
    let quantities: HashMap<i64, u32> = lines.iter().map(|line| (line.sku_id, line.quantity)).collect();
    assert_eq!(quantities, HashMap::from([(7, 100), (8, 100)]));
    assert_eq!((store.quantity(7), store.quantity(8)), (Some(100), Some(100)));
    let writes = store.writes.load(Ordering::SeqCst);
    assert!(writes < 100, "changes were not gathered: {writes} writes");
}

#[actix::test]
async fn limits_are_refused_and_write_nothing() {
    let store = MemoryStore::default();
    let (actor, _) = start(&store, CartSnapshot::default(), limits(2, 5), 100);
    assert!(ask(&actor, add(1, 5)).await.is_ok());
    assert_eq!(ask(&actor, add(1, 1)).await, Err(CartError::QuantityLimit { max: 5 }));
    assert!(ask(&actor, add(2, 1)).await.is_ok());
    assert_eq!(ask(&actor, add(3, 1)).await, Err(CartError::CartFull { max_lines: 2 }));
    let too_many = |reply| SetLine { sku_id: 2, quantity: Some(units(6)), selected: None, reply };
    assert_eq!(ask(&actor, too_many).await, Err(CartError::QuantityLimit { max: 5 }));
    let missing = |reply| SetLine { sku_id: 3, quantity: Some(units(1)), selected: None, reply };
    assert_eq!(ask(&actor, missing).await, Err(CartError::NotInCart));
    assert_eq!(ask(&actor, |reply| RemoveLines { sku_ids: vec![3], reply }).await, Err(CartError::NotInCart));
    let partly_missing = |reply| SelectLines { sku_ids: Some(vec![1, 3]), selected: false, reply };
    assert_eq!(ask(&actor, partly_missing).await, Err(CartError::NotInCart));
    let lines = ask(&actor, |reply| GetCart { reply }).await.unwrap();
    assert!(lines.iter().all(|line| line.selected), "a refused selection changes nothing");
    assert_eq!((store.quantity(1), store.quantity(2), store.quantity(3)), (Some(5), Some(1), None));
    assert_eq!(store.writes.load(Ordering::SeqCst), 2);
}

#[actix::test]
async fn removals_are_written_as_tombstones_and_a_line_can_come_back() {
    let store = MemoryStore::default();
    let (actor, _) = start(&store, CartSnapshot::default(), limits(10, 99), 100);
    ask(&actor, add(1, 2)).await.unwrap();
    ask(&actor, add(2, 3)).await.unwrap();
    let none = ask(&actor, |reply| SelectLines { sku_ids: None, selected: false, reply }).await.unwrap();
    assert!(none.iter().all(|line| !line.selected));
    let set = |reply| SetLine { sku_id: 2, quantity: Some(units(4)), selected: Some(true), reply };
    let lines = ask(&actor, set).await.unwrap();
    assert!(lines.iter().any(|line| line.sku_id == 2 && line.quantity == 4 && line.selected));

    let lines = ask(&actor, |reply| RemoveLines { sku_ids: vec![1, 99], reply }).await.unwrap();
    assert_eq!(lines.iter().map(|line| line.sku_id).collect::<Vec<_>>(), [2]);
    assert_eq!(store.quantity(1), Some(0), "a removal is a tombstone");
    assert!(ask(&actor, |reply| ClearCart { reply }).await.unwrap().is_empty());
    assert_eq!(store.quantity(2), Some(0));

    let back = ask(&actor, add(1, 1)).await.unwrap();
    assert_eq!((back[0].quantity, back[0].selected), (1, true), "a fresh, selected line");
    let stored = store.rows.lock().unwrap().get(&(USER, 1)).cloned().unwrap();
    assert_eq!(stored.quantity, 1);
    assert!(stored.version > 3);
}

#[actix::test]
async fn checkout_takes_only_the_units_it_bought() {
    let store = MemoryStore::default();
    let (actor, _) = start(&store, CartSnapshot::default(), limits(10, 99), 100);
    ask(&actor, add(1, 2)).await.unwrap();
    ask(&actor, add(2, 1)).await.unwrap();
    // Another tab adds one more of SKU 1 after checkout read the cart.
    ask(&actor, add(1, 1)).await.unwrap();
    let lines = ask(&actor, |reply| TakeUnits { units: vec![(1, 2), (2, 1), (99, 1)], reply }).await.unwrap();
    assert_eq!(lines.iter().map(|line| (line.sku_id, line.quantity)).collect::<Vec<_>>(), [(1, 1)]);
    assert_eq!((store.quantity(1), store.quantity(2)), (Some(1), Some(0)));
    let none = ask(&actor, |reply| TakeUnits { units: vec![(2, 1)], reply }).await;
    assert_eq!(none, Err(CartError::NotInCart));
}

#[actix::test]
async fn a_rebuilt_cart_resumes_above_the_stored_versions() {
    let store = MemoryStore::default();
    let (actor, _) = start(&store, CartSnapshot::default(), limits(10, 99), 100);
    ask(&actor, add(1, 2)).await.unwrap();
    ask(&actor, |reply| RemoveLines { sku_ids: vec![1], reply }).await.unwrap();
    let top = store.rows.lock().unwrap().values().map(|line| line.version).max().unwrap();

    // As the server would rebuild it: no live lines, the highest version kept.
    let (rebuilt, _) = start(&store, CartSnapshot { lines: vec![], version: top }, limits(10, 99), 100);
    ask(&rebuilt, add(1, 1)).await.unwrap();
    assert_eq!(store.quantity(1), Some(1), "the revived line beats its tombstone");
}

#[actix::test]
async fn a_failed_write_fails_its_callers_and_stops_the_actor() {
    let store = MemoryStore::default();
    let (actor, stopped) = start(&store, CartSnapshot::default(), limits(10, 99), 100);
    ask(&actor, add(1, 1)).await.unwrap();
    store.failing.store(true, Ordering::SeqCst);
    assert_eq!(ask(&actor, add(1, 1)).await, Err(CartError::WriteFailed));
    wait_until(&stopped).await;
    let (reply, _) = oneshot::channel();
    assert!(matches!(actor.try_send(GetCart { reply }), Err(SendError::Closed(_))));
    assert_eq!(store.quantity(1), Some(1), "the database keeps what was committed");
}

#[actix::test]
async fn a_newer_stored_version_means_stale_memory_and_stops_the_actor() {
    let store = MemoryStore::default();
    let (other, _) = start(&store, CartSnapshot::default(), limits(10, 99), 100);
    ask(&other, add(1, 3)).await.unwrap();
    // A second actor of the same shopper that never saw that write.
    let (stale, stopped) = start(&store, CartSnapshot::default(), limits(10, 99), 100);
    assert_eq!(ask(&stale, add(1, 1)).await, Err(CartError::WriteFailed));
    wait_until(&stopped).await;
    assert_eq!(store.quantity(1), Some(3));
}

#[actix::test]
async fn a_change_made_by_another_actor_is_never_overwritten_by_one_that_did_not_see_it() {
    let store = MemoryStore::default();
    // Two actors of one shopper (two nodes) start from the same empty cart.
    let (a, _) = start(&store, CartSnapshot::default(), limits(10, 99), 100);
    let (b, b_stopped) = start(&store, CartSnapshot::default(), limits(10, 99), 100);
    ask(&a, add(1, 2)).await.unwrap();
    // B's counter runs ahead of A's on other lines ...
    for sku_id in 2..6 {
        ask(&b, add(sku_id, 1)).await.unwrap();
    }
    // ... so a version rule alone would let it write SKU 1 over A's change.
    assert_eq!(ask(&b, add(1, 1)).await, Err(CartError::WriteFailed), "B never saw A's line");
    wait_until(&b_stopped).await;
    assert_eq!(store.quantity(1), Some(2), "A's acknowledged change stays");
    assert_eq!(store.quantity(5), Some(1), "lines B did know were written");
}

#[actix::test]
async fn an_evicted_actor_finishes_its_write_refuses_what_comes_after_and_stops() {
    let store = MemoryStore::default();
    store.delay_ms.store(200, Ordering::SeqCst);
    let (actor, stopped) = start(&store, CartSnapshot::default(), limits(10, 99), 100);
    let (reply, in_flight) = oneshot::channel();
    actor.try_send(AddLine { sku_id: 1, quantity: units(1), unit_price_cents: 500, reply }).unwrap();
    actor.try_send(Evict).unwrap();
    assert_eq!(ask(&actor, |reply| GetCart { reply }).await, Err(CartError::Evicted));
    assert_eq!(in_flight.await.unwrap().unwrap().len(), 1, "the write in flight is answered");
    wait_until(&stopped).await;
    assert_eq!(store.quantity(1), Some(1));

    // With nothing in flight it stops at once.
    let (idle, idle_stopped) = start(&store, CartSnapshot::default(), limits(10, 99), 100);
    idle.try_send(Evict).unwrap();
    wait_until(&idle_stopped).await;
}

#[actix::test]
async fn an_idle_actor_stops_but_never_with_a_write_in_flight() {
    let store = MemoryStore::default();
    store.delay_ms.store(600, Ordering::SeqCst);
    let limits = CartLimits { idle_evict: Duration::from_millis(150), ..limits(10, 99) };
    let (actor, stopped) = start(&store, CartSnapshot::default(), limits, 100);
    assert!(ask(&actor, add(1, 1)).await.is_ok(), "answered although the write outlived the idle time");
    assert_eq!(store.quantity(1), Some(1));
    wait_until(&stopped).await;
}

#[actix::test]
async fn a_full_mailbox_is_refused_at_once() {
    let store = MemoryStore::default();
    let (actor, _) = start(&store, CartSnapshot::default(), limits(10, 999), 4);
    let mut answers = Vec::new();
    let mut refused = 0;
    // The actor shares this thread, so it reads nothing until we yield.
    for _ in 0..20 {
        let (reply, answer) = oneshot::channel();
        let message = AddLine { sku_id: 1, quantity: units(1), unit_price_cents: 500, reply };
        match actor.try_send(message) {
            Ok(()) => answers.push(answer),
            Err(SendError::Full(_)) => refused += 1,
            Err(SendError::Closed(_)) => panic!("actor stopped"),
        }
    }
    assert!(refused > 0 && !answers.is_empty());
    let accepted = answers.len() as u32;
    for answer in answers {
        answer.await.unwrap().unwrap();
    }
    assert_eq!(store.quantity(1), Some(accepted));
}
