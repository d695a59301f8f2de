//! Two nodes sell one flash sale from a shared Redis pool; one is SIGKILLed
//! mid-sale. Its lease expires and is reclaimed, the survivor sells the
//! rest, and the database shows exactly the stock sold, no user over the
//! limit and every acknowledged order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use crate::crash::{free_port, start_server_with};
use crate::helpers::{fresh_settings, TestApp};
use crate::seckill::{create_event, event_body};

const LEASE_TTL_MS: u64 = 1500;

/// Each shopper buys one unit at a time, going round the `nodes`, until
/// told sold out or limit reached (a node that is gone is skipped);
/// returns the acknowledged orders with the node that answered.
async fn buy_round(
    app: &TestApp,
    nodes: &[String],
    shoppers: &[(i64, String)],
    event: i64,
    round: &str,
    acked: Arc<Mutex<Vec<(usize, String)>>>,
) {
    join_all(shoppers.iter().enumerate().map(|(i, (id, token))| {
        let acked = acked.clone();
        async move {
            for n in 0..5_000 {
                let node = (i + n) % nodes.len();
                let sent = app
                    .http
                    .post(format!("{}/api/seckill/events/{event}/orders", nodes[node]))
                    .insert_header(("Authorization", format!("Bearer {token}")))
                    .insert_header(("Idempotency-Key", format!("{round}-{id}-{n}")))
                    .send_json(&json!({"quantity": 1}))
                    .await;
                let Ok(mut res) = sent else { continue };
                let Ok(body) = res.json::<serde_json::Value>().await else { continue };
                match (res.status().as_u16(), body["code"].as_str()) {
                    (201, _) => {
                        acked.lock().unwrap().push((node, body["order_no"].as_str().unwrap().to_owned()))
                    }
                    (_, Some("sold_out" | "limit_reached")) => return,
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            panic!("shopper {id} never heard sold out");
        }
    }))
    .await;
}

/// One node in this process with `stock_authority = "redis"`, its
/// flash-sale settings changed by `configure`.
async fn in_process_redis_node(configure: impl FnOnce(&mut rs_cms::config::SeckillSettings)) -> TestApp {
    let (mut settings, db_name) = fresh_settings().await;
    settings.seckill.stock_authority = rs_cms::config::StockAuthority::Redis;
    configure(&mut settings.seckill);
    crate::helpers::spawn_app_with(settings, db_name).await
}

async fn scalar(app: &TestApp, sql: &str, event: i64) -> i64 {
    app.db.get().await.unwrap().query_one(sql, &[&event]).await.unwrap().get(0)
}

#[actix_web::test]
async fn two_nodes_sell_one_sale_and_a_killed_nodes_lease_is_reclaimed_by_the_survivor() {
    let (settings, db_name) = fresh_settings().await;
    let (first, second) = (free_port(), free_port());
    let app = TestApp::attach(settings, db_name, format!("http://127.0.0.1:{first}"));
    let ttl = LEASE_TTL_MS.to_string();
    let cluster = [
        ("RSCMS__SECKILL__STOCK_AUTHORITY", "redis"),
        ("RSCMS__SECKILL__LEASE_TTL_MS", ttl.as_str()),
        ("RSCMS__SECKILL__LEASE_CHUNK", "20"),
    ];
    let _survivor = start_server_with(&app, first, &cluster).await;
    let victim = start_server_with(&app, second, &cluster).await;
    let nodes = [app.address.clone(), format!("http://127.0.0.1:{second}")];
    let (_, admin) = app.admin("ops").await;
    let (stock, limit) = (600, 20);
    let event = create_event(&app, &admin, event_body(stock, limit, json!({}))).await;
    let mut shoppers = Vec::new();
    for i in 0..40 {
        shoppers.push(app.member(&format!("lease{i}")).await);
    }

    // Both nodes sell; the second is killed once some orders are acknowledged.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let watched = acked.clone();
    let killer = async move {
        while watched.lock().unwrap().len() < 150 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(victim);
    };
    futures_util::join!(buy_round(&app, &nodes, &shoppers, event, "one", acked.clone()), killer);
    for node in 0..2 {
        assert!(acked.lock().unwrap().iter().any(|(n, _)| *n == node), "node {node} sold some");
    }

    // After the lease expires, the survivor reclaims it and sells the rest.
    tokio::time::sleep(Duration::from_millis(2 * LEASE_TTL_MS)).await;
    buy_round(&app, &nodes[..1], &shoppers, event, "two", acked.clone()).await;

    let client = app.db.get().await.unwrap();
    let acked = acked.lock().unwrap().clone();
    for (_, order_no) in &acked {
        let found = client.query_opt("SELECT 1 FROM orders WHERE order_no = $1", &[order_no]).await.unwrap();
        assert!(found.is_some(), "acknowledged order {order_no} was lost");
    }
    let sold = scalar(
        &app,
        "SELECT COALESCE(sum(oi.quantity), 0)::int8 FROM orders o JOIN order_items oi ON oi.order_id = o.id \
         WHERE o.seckill_event_id = $1 AND o.status <> 'cancelled'",
        event,
    )
    .await;
    assert_eq!(sold, i64::from(stock), "every unit sold once: none stranded, none oversold");
    assert_eq!(
        scalar(&app, "SELECT remaining_stock::int8 FROM seckill_events WHERE id = $1", event).await,
        0
    );
    let over_limit = scalar(
        &app,
        &format!(
            "SELECT count(*) FROM (SELECT o.user_id FROM orders o JOIN order_items oi ON oi.order_id = o.id \
             WHERE o.seckill_event_id = $1 GROUP BY o.user_id HAVING sum(oi.quantity) > {limit}) x"
        ),
        event,
    )
    .await;
    assert_eq!(over_limit, 0, "no shopper above the limit");
}

#[actix_web::test]
async fn a_node_stopping_cleanly_gives_its_unsold_lease_back_to_the_pool() {
    let (settings, db_name) = fresh_settings().await;
    let port = free_port();
    let app = TestApp::attach(settings, db_name, format!("http://127.0.0.1:{port}"));
    // Leases outlive the test: only a hand-back can return the units.
    let cluster = [
        ("RSCMS__SECKILL__STOCK_AUTHORITY", "redis"),
        ("RSCMS__SECKILL__LEASE_TTL_MS", "600000"),
        ("RSCMS__SECKILL__LEASE_CHUNK", "20"),
    ];
    let node = start_server_with(&app, port, &cluster).await;
    let (_, admin) = app.admin("ops").await;
    let (shopper_id, shopper) = app.member("leaver").await;
    let event = create_event(&app, &admin, event_body(100, 5, json!({}))).await;
    for n in 0..3 {
        let path = format!("/api/seckill/events/{event}/orders");
        let key = format!("k{n}");
        let reply = app
            .call_with(
                "POST",
                &path,
                Some(&shopper),
                Some(json!({"quantity": 1})),
                &[("Idempotency-Key", &key)],
            )
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }

    node.terminate();

    let redis = redis::Client::open(app.settings.redis.url.as_str()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let key = |what: &str| format!("{}seckill:{{{event}}}:{what}", app.settings.redis.key_prefix);
    let pool: i64 = redis::cmd("GET").arg(key("pool")).query_async(&mut conn).await.unwrap();
    let leases: i64 = redis::cmd("HLEN").arg(key("leases")).query_async(&mut conn).await.unwrap();
    let bought: i64 =
        redis::cmd("HGET").arg(key("users")).arg(shopper_id).query_async(&mut conn).await.unwrap();
    assert_eq!((pool, leases), (97, 0), "the 17 unsold units are back; the 3 sold are not");
    assert_eq!(bought, 3, "the shopper's count is kept");
}

#[actix_web::test]
async fn a_close_this_node_never_heard_of_stops_its_sales_within_a_keeper_round() {
    let app = in_process_redis_node(|seckill| seckill.lease_ttl_ms = 900).await;
    let (_, admin) = app.admin("ops").await;
    let (_, shopper) = app.member("late").await;
    let event = create_event(&app, &admin, event_body(100, 50, json!({}))).await;
    let buy = |n: usize| {
        let key = format!("k{n}");
        let path = format!("/api/seckill/events/{event}/orders");
        let (app, shopper) = (&app, &shopper);
        async move {
            app.call_with(
                "POST",
                &path,
                Some(shopper),
                Some(json!({"quantity": 1})),
                &[("Idempotency-Key", &key)],
            )
            .await
        }
    };
    assert_eq!(buy(0).await.status, 201);

    // Closed by another node whose announcement this node missed: only
    // the database says so.
    app.db
        .get()
        .await
        .unwrap()
        .execute("UPDATE seckill_events SET closed_at = now() WHERE id = $1", &[&event])
        .await
        .unwrap();
    for n in 1..=30 {
        let reply = buy(n).await;
        if reply.code() == "ended" {
            return;
        }
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the node kept selling a closed sale for 3 s (lease rounds every 300 ms)");
}

#[actix_web::test]
async fn a_buy_answered_too_late_gives_its_allowance_back_when_it_was_not_written() {
    // Every buy times out before its answer: the late answer decides.
    let app = in_process_redis_node(|seckill| seckill.reserve_timeout_ms = 0).await;
    let (_, admin) = app.admin("ops").await;
    let (shopper, token) = app.member("unlucky").await;
    let event = create_event(&app, &admin, event_body(10, 1, json!({}))).await;
    // The order write will fail.
    let client = app.db.get().await.unwrap();
    client
        .batch_execute(
            "CREATE FUNCTION refuse_orders() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'the disk is full'; END $$;
             CREATE TRIGGER refuse_orders BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION refuse_orders();",
        )
        .await
        .unwrap();
    let path = format!("/api/seckill/events/{event}/orders");
    let reply = app.call("POST", &path, Some(&token), Some(json!({"quantity": 1}))).await;
    assert_eq!(reply.code(), "overloaded", "{:?}", reply.body);

    // Nothing was written, so the per-user claim in the shared pool goes back.
    let redis = redis::Client::open(app.settings.redis.url.as_str()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let users = format!("{}seckill:{{{event}}}:users", app.settings.redis.key_prefix);
    for _ in 0..50 {
        let claimed: Option<i64> =
            redis::cmd("HGET").arg(&users).arg(shopper).query_async(&mut conn).await.unwrap();
        if claimed.unwrap_or(0) == 0 {
            assert_eq!(
                scalar(&app, "SELECT count(*) FROM orders WHERE seckill_event_id = $1", event).await,
                0
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the shopper's allowance stayed claimed for an order never written");
}
