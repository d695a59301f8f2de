//! The stock actor under racing reservations, with an in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actors::gate::{Admission, EventGate};
use actors::stock::{
    EventTerms, LeaseLink, PoolLevel, ReleaseStock, Reservation, ReservationOutcome, ReserveError,
    ReserveStock, Restock, StockActor, StockSnapshot, TakeBackStock,
};
use actors::writer::{spawn_writer, BatchStore, WriterConfig};
use tokio::sync::oneshot;

/// Keeps committed reservations; can be told to fail every batch.
#[derive(Clone, Default)]
struct MemoryStore {
    rows: Arc<Mutex<Vec<Reservation>>>,
    failing: Arc<AtomicBool>,
}

impl BatchStore for MemoryStore {
    type Item = Reservation;
    type Outcome = ReservationOutcome;

    async fn write_batch(&self, items: &[Reservation]) -> Result<Vec<ReservationOutcome>, String> {
        if self.failing.load(Ordering::SeqCst) {
            return Err("disk on fire".into());
        }
        self.rows.lock().unwrap().extend_from_slice(items);
        Ok(vec![ReservationOutcome::Committed; items.len()])
    }
}

fn terms(limit: u32) -> EventTerms {
    EventTerms {
        event_id: 1,
        sku_id: 7,
        title: "phone".into(),
        unit_price_cents: 999,
        per_user_limit: limit,
        payment_window: Duration::from_secs(900),
    }
}

fn start(
    stock: u32,
    limit: u32,
    store: MemoryStore,
) -> (actix::Addr<StockActor<MemoryStore>>, Arc<EventGate>) {
    let writer = spawn_writer(
        store,
        WriterConfig {
            max_rows: 128,
            max_delay: Duration::from_millis(1),
            queue_capacity: 100_000,
            max_in_flight: 2,
        },
        Arc::new(|_| {}),
    );
    let gate = Arc::new(EventGate::new(0, i64::MAX));
    let snapshot = StockSnapshot { remaining: stock, ..Default::default() };
    let actor = StockActor::new(terms(limit), snapshot, gate.clone(), writer, 100_000)
        .start_on(&actix::Arbiter::current());
    (actor, gate)
}

async fn reserve(
    actor: &actix::Addr<StockActor<MemoryStore>>,
    user_id: i64,
    n: usize,
    key: Option<&str>,
) -> Result<actors::stock::Reserved, ReserveError> {
    let (reply, answer) = oneshot::channel();
    actor
        .try_send(ReserveStock {
            user_id,
            quantity: 1,
            order_no: format!("o-{user_id}-{n}"),
            idempotency_key: key.map(str::to_owned),
            now: SystemTime::now(),
            reply,
        })
        .unwrap();
    answer.await.unwrap()
}

#[actix::test]
async fn racing_buyers_never_oversell_and_limits_hold() {
    let store = MemoryStore::default();
    let (actor, gate) = start(100, 2, store.clone());
    let mut tasks = Vec::new();
    for user in 0..300i64 {
        for n in 0..3 {
            let actor = actor.clone();
            tasks.push(actix::spawn(async move { reserve(&actor, user, n, None).await }));
        }
    }
    let mut created = 0;
    let mut sold_out = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(ReserveError::SoldOut) => sold_out += 1,
            Err(ReserveError::LimitReached) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 100);
    assert!(sold_out > 0);
    let rows = store.rows.lock().unwrap();
    assert_eq!(rows.len(), 100);
    let mut per_user: HashMap<i64, u32> = HashMap::new();
    for row in rows.iter() {
        *per_user.entry(row.user_id).or_default() += row.quantity;
    }
    assert!(per_user.values().all(|n| *n <= 2));
    assert_eq!(gate.admit(1), Admission::SoldOut);
}

#[actix::test]
async fn a_failed_commit_returns_the_stock_and_the_shopper_can_retry() {
    let store = MemoryStore::default();
    let (actor, gate) = start(1, 1, store.clone());
    store.failing.store(true, Ordering::SeqCst);
    assert_eq!(reserve(&actor, 5, 0, Some("k")).await.unwrap_err(), ReserveError::WriteFailed);
    assert_eq!(gate.admit(1), Admission::Go, "stock must be back");
    store.failing.store(false, Ordering::SeqCst);
    assert!(reserve(&actor, 5, 1, Some("k")).await.is_ok());
    assert!(store.rows.lock().unwrap().len() == 1);
}

#[actix::test]
async fn a_retried_key_is_recognised_and_released_stock_is_sold_again() {
    let store = MemoryStore::default();
    let (actor, gate) = start(1, 1, store.clone());
    let first = reserve(&actor, 9, 0, Some("same")).await.unwrap();
    let again = reserve(&actor, 9, 1, Some("same")).await.unwrap_err();
    assert_eq!(again, ReserveError::DuplicateKey { order_no: Some(first.order_no.clone()) });
    assert_eq!(reserve(&actor, 10, 0, None).await.unwrap_err(), ReserveError::SoldOut);
    actor.send(ReleaseStock { user_id: 9, quantity: 1 }).await.unwrap();
    assert_eq!(gate.admit(1), Admission::Go);
    assert!(reserve(&actor, 10, 1, None).await.is_ok());
}

#[actix::test]
async fn closed_events_refuse_at_the_actor_too() {
    let (actor, gate) = start(10, 1, MemoryStore::default());
    gate.close();
    assert_eq!(reserve(&actor, 1, 0, None).await.unwrap_err(), ReserveError::Ended);
}

fn start_leased(
    store: MemoryStore,
    park_capacity: usize,
) -> (actix::Addr<StockActor<MemoryStore>>, Arc<EventGate>, Arc<LeaseLink>) {
    let writer = spawn_writer(
        store,
        WriterConfig {
            max_rows: 128,
            max_delay: Duration::from_millis(1),
            queue_capacity: 1000,
            max_in_flight: 1,
        },
        Arc::new(|_| {}),
    );
    let gate = Arc::new(EventGate::new(0, i64::MAX));
    let link = Arc::new(LeaseLink::new(2, park_capacity));
    let actor = StockActor::new(terms(1), StockSnapshot::default(), gate.clone(), writer, 1000)
        .leased(link.clone())
        .start_on(&actix::Arbiter::current());
    (actor, gate, link)
}

/// Sends a one-unit reservation and returns the pending answer.
fn ask(
    actor: &actix::Addr<StockActor<MemoryStore>>,
    user_id: i64,
) -> oneshot::Receiver<Result<actors::stock::Reserved, ReserveError>> {
    let (reply, answer) = oneshot::channel();
    actor
        .try_send(ReserveStock {
            user_id,
            quantity: 1,
            order_no: format!("o-{user_id}"),
            idempotency_key: None,
            now: SystemTime::now(),
            reply,
        })
        .unwrap();
    answer
}

fn level(units: u32, seq: u64) -> PoolLevel {
    PoolLevel { units, seq }
}

#[actix::test]
async fn an_empty_leasing_actor_parks_requests_until_the_refill_and_never_says_sold_out_early() {
    let store = MemoryStore::default();
    let (actor, gate, link) = start_leased(store.clone(), 10);
    assert_eq!(gate.admit(1), Admission::Go, "the pool is unknown: maybe more");
    let mut first = ask(&actor, 1);
    let mut second = ask(&actor, 2);
    // Both are parked and the keeper is woken.
    tokio::time::timeout(Duration::from_secs(1), link.need.notified()).await.unwrap();
    assert!(first.try_recv().is_err() && second.try_recv().is_err(), "parked, not answered");

    actor.send(Restock { leased: 1, pool: level(5, 1) }).await.unwrap();
    assert!(first.await.unwrap().is_ok(), "the oldest parked request gets the unit");
    // The second is still parked: the pool has units, so it is not sold out.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(second.try_recv().is_err());
    actor.send(Restock { leased: 1, pool: level(4, 2) }).await.unwrap();
    assert!(second.await.unwrap().is_ok());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(link.take_sold(), 2, "committed units are reported to the keeper");
    assert_eq!(store.rows.lock().unwrap().len(), 2);
}

#[actix::test]
async fn parked_requests_hear_sold_out_only_when_the_pool_is_known_empty() {
    let (actor, gate, _link) = start_leased(MemoryStore::default(), 10);
    let parked = ask(&actor, 1);
    actor.send(Restock { leased: 0, pool: level(0, 7) }).await.unwrap();
    assert_eq!(parked.await.unwrap().unwrap_err(), ReserveError::SoldOut);
    assert_eq!(gate.admit(1), Admission::SoldOut, "the gate flips: the fast path answers the rest");
    actor.send(Restock { leased: 0, pool: level(3, 6) }).await.unwrap();
    assert_eq!(gate.admit(1), Admission::SoldOut, "an older level is ignored");
    // Units reclaimed into the pool reopen the gate.
    actor.send(Restock { leased: 0, pool: level(3, 8) }).await.unwrap();
    assert_eq!(gate.admit(1), Admission::Go);
}

#[actix::test]
async fn parking_is_bounded_and_unsold_units_can_be_taken_back() {
    let (actor, gate, _link) = start_leased(MemoryStore::default(), 1);
    let _parked = ask(&actor, 1);
    assert_eq!(ask(&actor, 2).await.unwrap().unwrap_err(), ReserveError::Overloaded);
    actor.send(Restock { leased: 5, pool: level(0, 1) }).await.unwrap();
    assert_eq!(actor.send(TakeBackStock).await.unwrap(), 4, "one unit went to the parked request");
    assert_eq!(gate.admit(1), Admission::SoldOut);
    assert_eq!(ask(&actor, 3).await.unwrap().unwrap_err(), ReserveError::SoldOut);
}
