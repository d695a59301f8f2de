//! Stock-actor reservations per second, in process: the actor and the
//! group-commit writer with a store that commits instantly, so the figure is
//! the engine's own ceiling (no HTTP, no Postgres).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actors::gate::EventGate;
use actors::stock::{EventTerms, Reservation, ReservationOutcome, ReserveStock, StockActor, StockSnapshot};
use actors::writer::{spawn_writer, BatchStore, WriterConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::sync::oneshot;

/// Commits instantly.
struct InstantStore;

impl BatchStore for InstantStore {
    type Item = Reservation;
    type Outcome = ReservationOutcome;

    async fn write_batch(&self, items: &[Reservation]) -> Result<Vec<ReservationOutcome>, String> {
        Ok(vec![ReservationOutcome::Committed; items.len()])
    }
}

/// Reserves `n` units for `n` distinct users, all in flight at once, and
/// returns how long it took until every one was answered.
fn reserve_many(n: u64) -> Duration {
    actix::System::new().block_on(async move {
        let writer = spawn_writer(
            InstantStore,
            WriterConfig {
                max_rows: 512,
                max_delay: Duration::ZERO,
                queue_capacity: 1 << 20,
                max_in_flight: 1,
            },
            Arc::new(|_| {}),
        );
        let terms = EventTerms {
            event_id: 1,
            sku_id: 1,
            title: "bench".into(),
            unit_price_cents: 100,
            per_user_limit: 1,
            payment_window: Duration::from_secs(900),
        };
        let snapshot = StockSnapshot { remaining: u32::MAX, ..Default::default() };
        let gate = Arc::new(EventGate::new(0, i64::MAX));
        let actor =
            StockActor::new(terms, snapshot, gate, writer, 1 << 20).start_on(&actix::Arbiter::current());
        let started = Instant::now();
        let mut answers = Vec::with_capacity(n as usize);
        for user in 0..n {
            let (reply, answer) = oneshot::channel();
            actor
                .try_send(ReserveStock {
                    user_id: user as i64,
                    quantity: 1,
                    order_no: format!("bench{user}"),
                    idempotency_key: None,
                    now: SystemTime::now(),
                    reply,
                })
                .unwrap();
            answers.push(answer);
        }
        for answer in answers {
            answer.await.unwrap().unwrap();
        }
        started.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("stock_actor");
    group.throughput(Throughput::Elements(10_000));
    group.sample_size(20);
    group.bench_function("reserve_10k_distinct_users", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| reserve_many(10_000)).sum())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
