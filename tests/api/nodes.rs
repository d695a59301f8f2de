//! Two nodes on one database and one Redis prefix, as in "Running a
//! cluster": the buy path's rate limits count once for the cluster, and a
//! cart changed on one node is the cart the other serves and checks out.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use rs_cms::config::{Settings, StockAuthority};
use serde_json::json;

use crate::helpers::{fresh_settings, spawn_app_with, TestApp};
use crate::order::{shop_with_stock, shopper};
use crate::seckill::{create_event, event_body};

/// Two in-process nodes sharing `settings`' database and Redis prefix.
async fn two_nodes(settings: Settings, db_name: String) -> (TestApp, TestApp) {
    let a = spawn_app_with(settings.clone(), db_name.clone()).await;
    // Named apart so that only `a` drops the shared database at the end.
    let b = spawn_app_with(settings, format!("{db_name}_b")).await;
    (a, b)
}

async fn buy(node: &TestApp, token: &str, event: i64, ip: &str) -> u16 {
    let path = format!("/api/seckill/events/{event}/orders");
    let headers = [("X-Forwarded-For", ip)];
    node.call_with("POST", &path, Some(token), Some(json!({"quantity": 1})), &headers).await.status.as_u16()
}

async fn count(app: &TestApp, sql: &str, id: i64) -> i64 {
    app.db.get().await.unwrap().query_one(sql, &[&id]).await.unwrap().get(0)
}

#[actix_web::test]
async fn a_shopper_spraying_both_nodes_gets_the_rate_once_not_once_per_node() {
    let (mut settings, db_name) = fresh_settings().await;
    settings.seckill.stock_authority = StockAuthority::Redis;
    let (a, b) = two_nodes(settings, db_name).await;
    let nodes = [&a, &b];
    let (_, admin) = a.admin("ops").await;
    let (user_id, shopper) = a.member("sprayer").await;
    // 2 buys/s per shopper: a burst of 4. Each node's own bucket alone would let 4 through.
    let event = create_event(
        &a,
        &admin,
        event_body(1000, 1000, json!({"user_rate_per_sec": 2, "ip_rate_per_sec": 0})),
    )
    .await;
    let ips: Vec<String> = (0..16).map(|n| format!("10.0.0.{n}")).collect();
    let answers =
        join_all(ips.iter().enumerate().map(|(n, ip)| buy(nodes[n % 2], &shopper, event, ip))).await;
    let created = answers.iter().filter(|status| **status == 201).count();
    assert!((4..=5).contains(&created), "the burst of 4 (+1 refill at most) across both nodes: {answers:?}");
    assert_eq!(answers.iter().filter(|status| **status == 429).count(), 16 - created);
    let orders = "SELECT count(*) FROM orders WHERE seckill_event_id = $1";
    assert_eq!(count(&a, orders, event).await, created as i64);

    // A rate-limited request claimed none of the shopper's allowance.
    let redis = redis::Client::open(a.settings.redis.url.as_str()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let users = format!("{}seckill:{{{event}}}:users", a.settings.redis.key_prefix);
    let claimed: i64 = redis::cmd("HGET").arg(&users).arg(user_id).query_async(&mut conn).await.unwrap();
    assert_eq!(claimed, created as i64);

    // Per IP likewise: 1/s (a burst of 2) for everyone behind one address.
    let by_ip =
        create_event(&a, &admin, event_body(1000, 1, json!({"user_rate_per_sec": 0, "ip_rate_per_sec": 1})))
            .await;
    let mut crowd = Vec::new();
    for i in 0..8 {
        crowd.push(a.member(&format!("office{i}")).await.1);
    }
    let answers =
        join_all(crowd.iter().enumerate().map(|(i, token)| buy(nodes[i % 2], token, by_ip, "10.9.9.9")))
            .await;
    let created = answers.iter().filter(|status| **status == 201).count();
    assert!((2..=3).contains(&created), "one IP's burst of 2 (+1) across both nodes: {answers:?}");
}

/// Waits until `check` holds, up to two seconds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..40 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// `(sku_id, quantity)` of the cart as `node` serves it, sorted.
async fn served(node: &TestApp, token: &str) -> Vec<(i64, i64)> {
    let reply = node.call("GET", "/api/cart", Some(token), None).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let mut lines: Vec<(i64, i64)> = reply.body["shops"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|shop| shop["lines"].as_array().unwrap())
        .map(|line| (line["sku_id"].as_i64().unwrap(), line["quantity"].as_i64().unwrap()))
        .collect();
    lines.sort_unstable();
    lines
}

async fn add(node: &TestApp, token: &str, sku_id: i64, quantity: i64) -> u16 {
    let body = json!({"sku_id": sku_id, "quantity": quantity});
    node.call("POST", "/api/cart/lines", Some(token), Some(body)).await.status.as_u16()
}

#[actix_web::test]
async fn a_cart_changed_on_one_node_is_the_cart_the_other_serves_and_checks_out() {
    let (settings, db_name) = fresh_settings().await;
    let (a, b) = two_nodes(settings, db_name).await;
    a.admin("root").await;
    let shop = shop_with_stock(&a, "nina", "Nina Knits", 100).await;
    let [red_m, red_l, blue_m] = [shop.skus[0], shop.skus[1], shop.skus[2]];
    let (token, address_id) = shopper(&a, "olaf").await;
    let user_id: i64 = a.call("GET", "/api/me", Some(&token), None).await.body["id"].as_i64().unwrap();
    let carts_a = a.state.as_ref().unwrap().carts.clone();

    assert_eq!(add(&a, &token, red_m, 1).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(carts_a.live_actors(), 1, "a node's own change does not evict its actor");
    assert_eq!(add(&b, &token, red_l, 2).await, 200);
    eventually("node A drops its stale actor", async || carts_a.live_actors() == 0).await;
    assert_eq!(served(&a, &token).await, [(red_m, 1), (red_l, 2)]);

    // A change whose news never came (written as another node would, a
    // newer version of a line): checkout on A still buys what is stored.
    let client = a.db.get().await.unwrap();
    client
        .execute(
            "INSERT INTO cart_lines (user_id, sku_id, quantity, selected, added_price_cents, version)
             SELECT $1, $2, 3, true, 1999, max(version) + 1 FROM cart_lines WHERE user_id = $1",
            &[&user_id, &blue_m],
        )
        .await
        .unwrap();
    let placed = a.call("POST", "/api/checkout", Some(&token), Some(json!({"address_id": address_id}))).await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    let bought: Vec<(i64, i32)> = client
        .query(
            "SELECT oi.sku_id, oi.quantity FROM order_items oi JOIN orders o ON o.id = oi.order_id
             WHERE o.user_id = $1 ORDER BY oi.sku_id",
            &[&user_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut expected = vec![(red_m, 1), (red_l, 2), (blue_m, 3)];
    expected.sort_unstable();
    assert_eq!(bought, expected);
    assert!(served(&a, &token).await.is_empty(), "the bought lines left the cart");
    eventually("node B serves the emptied cart", async || served(&b, &token).await.is_empty()).await;
}

#[actix_web::test]
async fn racing_adds_on_two_nodes_lose_no_acknowledged_unit() {
    let (settings, db_name) = fresh_settings().await;
    let (a, b) = two_nodes(settings, db_name).await;
    a.admin("root").await;
    let shop = shop_with_stock(&a, "piet", "Piet Prints", 100).await;
    let (_, token) = a.member("quinn").await;
    // Three tabs per node, each adding one unit at a time, going round the SKUs.
    let tabs = (0..6).map(|tab| {
        let (node, token, skus) = ([&a, &b][tab % 2], &token, &shop.skus);
        async move {
            let mut answers = Vec::new();
            for n in 0..20 {
                let sku = skus[(tab + n) % 3];
                answers.push((tab % 2, sku, add(node, token, sku, 1).await));
            }
            answers
        }
    });
    let answers: Vec<(usize, i64, u16)> = join_all(tabs).await.into_iter().flatten().collect();

    let mut acked: HashMap<i64, i64> = HashMap::new();
    for (_, sku, status) in &answers {
        // 503: a write refused as stale (its actor restarts); nothing of it
        // is stored, not even lines of other changes gathered with it.
        assert!(matches!(status, 200 | 503), "add answered {status}");
        if *status == 200 {
            *acked.entry(*sku).or_default() += 1;
        }
    }
    for node in 0..2 {
        let on_node = answers.iter().filter(|(n, _, status)| *n == node && *status == 200).count();
        assert!(on_node > 0, "node {node} acknowledged adds");
    }
    let settled = served(&a, &token).await;
    for (sku, quantity) in &settled {
        let acked = acked.get(sku).copied().unwrap_or(0);
        assert_eq!(*quantity, acked, "SKU {sku}: {quantity} units, {acked} acknowledged adds");
    }
    assert!(
        acked.keys().all(|sku| settled.iter().any(|(s, _)| s == sku)),
        "every acknowledged line is there"
    );
    eventually("both nodes serve the same cart", async || served(&b, &token).await == settled).await;
}
