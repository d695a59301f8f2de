//! Group-commit writer rows per second into the real Postgres (the
//! configured server; a scratch database `rscms_bench_writer` is created and
//! dropped). Each iteration commits 5,000 reservations submitted at once,
//! so batches fill up as they would under a flash-sale peak.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actors::stock::Reservation;
use actors::writer::{spawn_writer, WriterConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rs_cms::config::Settings;
use rs_cms::seckill::store::PgReservations;

const ROWS: u64 = 5_000;
const DB: &str = "rscms_bench_writer";

async fn scratch_pool() -> deadpool_postgres::Pool {
    let mut settings = Settings::load_from(std::path::Path::new("config"), "test").expect("settings");
    let admin_url = format!("{}/postgres", settings.database.url.rsplit_once('/').unwrap().0);
    let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await.expect("postgres");
    tokio::spawn(conn);
    admin.execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"), &[]).await.unwrap();
    admin.execute(&format!("CREATE DATABASE {DB}"), &[]).await.unwrap();
    settings.database.url = format!("{}/{DB}", settings.database.url.rsplit_once('/').unwrap().0);
    let pool = rs_cms::db::create_pool(&settings.database).unwrap();
    rs_cms::db::migrate(&pool).await.unwrap();
    let client = pool.get().await.unwrap();
    client
        .batch_execute(
            "INSERT INTO users (username, email, password_hash) SELECT 'u' || g, 'u' || g || '@b.io', 'x' \
             FROM generate_series(1, 10000) g;
             INSERT INTO seckill_events (sku_id, title, price_cents, total_stock, remaining_stock, per_user_limit,
                 starts_at, ends_at, payment_window_secs)
             VALUES (1, 'bench', 100, 2000000000, 2000000000, 1000000, now(), now() + interval '1 day', 900);",
        )
        .await
        .unwrap();
    pool
}

fn bench(c: &mut Criterion) {
    let rt = actix::System::new();
    let pool = rt.block_on(scratch_pool());
    let mut group = c.benchmark_group("writer");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(10);
    let mut next = 0u64;
    group.bench_function("commit_5k_reservations", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let pool = pool.clone();
                let first = next;
                next += ROWS;
                total += rt.block_on(async move {
                    let writer = spawn_writer(
                        PgReservations::new(pool),
                        WriterConfig {
                            max_rows: 512,
                            max_delay: Duration::from_millis(1),
                            queue_capacity: 1 << 16,
                            max_in_flight: 4,
                        },
                        Arc::new(|_| {}),
                    );
                    let now = SystemTime::now();
                    let started = Instant::now();
                    let answers: Vec<_> = (first..first + ROWS)
                        .map(|i| {
                            writer
                                .submit(Reservation {
                                    event_id: 1,
                                    sku_id: 1,
                                    title: "bench".into(),
                                    user_id: (i % 10_000 + 1) as i64,
                                    quantity: 1,
                                    unit_price_cents: 100,
                                    per_user_limit: 1_000_000,
                                    order_no: format!("B{i:017}"),
                                    idempotency_key: None,
                                    created_at: now,
                                    pay_before: now + Duration::from_secs(900),
                                })
                                .unwrap()
                        })
                        .collect();
                    for answer in answers {
                        answer.await.unwrap().unwrap();
                    }
                    started.elapsed()
                });
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
