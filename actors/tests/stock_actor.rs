//! The stock actor under racing reservations, with an in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actors::gate::{Admission, EventGate};
use actors::stock::{
    EventTerms, ReleaseStock, Reservation, ReservationOutcome, ReserveError, ReserveStock, StockActor,
    StockSnapshot,
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
