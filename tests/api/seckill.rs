//! The flash-sale engine through real HTTP, Postgres and Redis.

use std::collections::{HashMap, HashSet};

use chrono::{Duration, Utc};
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

/// A live event with `stock` units and `limit` per user; `extra` overrides fields.
pub fn event_body(stock: i32, limit: i32, extra: Value) -> Value {
    let mut body = json!({
        "sku_id": 1001,
        "title": "Phone X flash sale",
        "price_cents": 99_900,
        "stock": stock,
        "per_user_limit": limit,
        "starts_at": (Utc::now() - Duration::seconds(1)).to_rfc3339(),
        "ends_at": (Utc::now() + Duration::hours(1)).to_rfc3339(),
        "payment_window_secs": 900,
        "user_rate_per_sec": 0,
        "ip_rate_per_sec": 0,
    });
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        body[key] = value;
    }
    body
}

pub async fn create_event(app: &TestApp, admin: &str, body: Value) -> i64 {
    let reply = app.call("POST", "/api/admin/seckill/events", Some(admin), Some(body)).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body["id"].as_i64().unwrap()
}

async fn buy(app: &TestApp, token: &str, event: i64, key: Option<&str>) -> crate::helpers::Reply {
    let headers: Vec<(&str, &str)> = key.map(|k| vec![("Idempotency-Key", k)]).unwrap_or_default();
    app.call_with(
        "POST",
        &format!("/api/seckill/events/{event}/orders"),
        Some(token),
        Some(json!({"quantity": 1})),
        &headers,
    )
    .await
}

async fn scalar(app: &TestApp, sql: &str, event: i64) -> i64 {
    let client = app.db.get().await.unwrap();
    client.query_one(sql, &[&event]).await.unwrap().get(0)
}

async fn live_units(app: &TestApp, event: i64) -> i64 {
    scalar(
        app,
        "SELECT COALESCE(sum(oi.quantity), 0)::int8 FROM orders o JOIN order_items oi ON oi.order_id = o.id \
         WHERE o.seckill_event_id = $1 AND o.status <> 'cancelled'",
        event,
    )
    .await
}

async fn remaining(app: &TestApp, event: i64) -> i64 {
    scalar(app, "SELECT remaining_stock::int8 FROM seckill_events WHERE id = $1", event).await
}

#[actix_web::test]
async fn a_shopper_buys_reads_and_pays_an_order() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("ops").await;
    let (_, shopper) = app.member("amy").await;
    let event = create_event(&app, &admin, event_body(10, 2, json!({}))).await;

    let detail = app.call("GET", &format!("/api/seckill/events/{event}"), None, None).await;
    assert_eq!(
        (detail.body["state"].as_str(), detail.body["remaining_stock"].as_i64()),
        (Some("live"), Some(10))
    );
    assert!(detail.body["server_time"].is_string());
    let listed = app.call("GET", "/api/seckill/events", None, None).await;
    assert_eq!(listed.body["total"], 1);

    let order = buy(&app, &shopper, event, Some("k-1")).await;
    assert_eq!(order.status, 201, "{:?}", order.body);
    assert_eq!(order.body["amount_cents"], 99_900);
    assert_eq!(order.body["status"], "pending_payment");
    let order_no = order.body["order_no"].as_str().unwrap().to_owned();
    assert_eq!(order_no.len(), 18);

    let mine = app.call("GET", &format!("/api/orders/{order_no}"), Some(&shopper), None).await;
    assert_eq!(mine.body["history"][0]["to_status"], "pending_payment");
    let paid = app.call("POST", &format!("/api/orders/{order_no}/pay"), Some(&shopper), None).await;
    assert_eq!((paid.status.as_u16(), paid.body["status"].as_str()), (200, Some("paid")));
    let again = app.call("POST", &format!("/api/orders/{order_no}/pay"), Some(&shopper), None).await;
    assert_eq!(again.status, 200, "paying twice changes nothing");
    let list = app.call("GET", "/api/orders?status=paid", Some(&shopper), None).await;
    assert_eq!(list.body["total"], 1);

    let stats =
        app.call("GET", &format!("/api/admin/seckill/events/{event}/stats"), Some(&admin), None).await;
    assert_eq!(stats.status, 200);
    assert_eq!(stats.body["event"]["remaining_stock"], 9);
    assert_eq!(stats.body["orders"][0]["status"], "paid");
    assert_eq!(remaining(&app, event).await, 9);
}

#[actix_web::test]
async fn racing_shoppers_never_oversell_and_per_user_limits_hold() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("ops").await;
    let stock = 50;
    let event = create_event(&app, &admin, event_body(stock, 2, json!({}))).await;
    let mut shoppers = Vec::new();
    for i in 0..40 {
        shoppers.push(app.member(&format!("racer{i}")).await);
    }
    // 40 shoppers x 4 concurrent attempts = 160 requests for 50 units, limit 2 each.
    let attempts = shoppers.iter().flat_map(|(id, token)| (0..4).map(move |n| (*id, token.clone(), n)));
    let replies = join_all(attempts.map(|(id, token, n)| {
        let app = &app;
        async move { (id, buy(app, &token, event, Some(&format!("{id}-{n}"))).await) }
    }))
    .await;
    let mut created: HashMap<i64, i64> = HashMap::new();
    let mut order_nos = HashSet::new();
    for (user, reply) in &replies {
        match (reply.status.as_u16(), reply.code()) {
            (201, _) => {
                *created.entry(*user).or_default() += 1;
                assert!(order_nos.insert(reply.body["order_no"].as_str().unwrap().to_owned()));
            }
            (409, "sold_out" | "limit_reached") => {}
            other => panic!("unexpected answer {other:?}: {:?}", reply.body),
        }
    }
    assert_eq!(created.values().sum::<i64>(), i64::from(stock), "every unit sold exactly once");
    assert!(created.values().all(|n| *n <= 2), "per-user limit held");
    assert_eq!(live_units(&app, event).await, i64::from(stock), "every 201 is a committed order");
    assert_eq!(remaining(&app, event).await, 0);
    let over_limit = scalar(
        &app,
        "SELECT count(*) FROM (SELECT o.user_id FROM orders o JOIN order_items oi ON oi.order_id = o.id \
         WHERE o.seckill_event_id = $1 GROUP BY o.user_id HAVING sum(oi.quantity) > 2) x",
        event,
    )
    .await;
    assert_eq!(over_limit, 0);
    let late = buy(&app, &shoppers[39].1, event, None).await;
    assert_eq!((late.status.as_u16(), late.code()), (409, "sold_out"));
}

#[actix_web::test]
async fn a_retried_idempotency_key_returns_the_same_order_even_after_sell_out() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("ops").await;
    let (_, shopper) = app.member("ivy").await;
    let event = create_event(&app, &admin, event_body(1, 5, json!({}))).await;
    let first = buy(&app, &shopper, event, Some("same-key")).await;
    assert_eq!(first.status, 201);
    let retry = buy(&app, &shopper, event, Some("same-key")).await;
    assert_eq!(retry.status, 201);
    assert_eq!(retry.body["order_no"], first.body["order_no"]);
    assert_eq!(retry.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(live_units(&app, event).await, 1);
    let other_key = buy(&app, &shopper, event, Some("other-key")).await;
    assert_eq!(other_key.code(), "sold_out");
    let bad_key = buy(&app, &shopper, event, Some("has space")).await;
    assert_eq!((bad_key.status.as_u16(), bad_key.code()), (400, "invalid_header"));
}

#[actix_web::test]
async fn sales_refuse_before_start_after_close_and_past_the_limit() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("ops").await;
    let (_, shopper) = app.member("zed").await;
    let later = json!({"starts_at": (Utc::now() + Duration::hours(1)).to_rfc3339(),
                       "ends_at": (Utc::now() + Duration::hours(2)).to_rfc3339()});
    let upcoming = create_event(&app, &admin, event_body(5, 1, later)).await;
    let early = buy(&app, &shopper, upcoming, None).await;
    assert_eq!((early.status.as_u16(), early.code()), (409, "not_started"));
    let opened =
        app.call("POST", &format!("/api/admin/seckill/events/{upcoming}/open"), Some(&admin), None).await;
    assert_eq!(opened.body["state"], "live");
    assert_eq!(buy(&app, &shopper, upcoming, None).await.status, 201);
    let limited = buy(&app, &shopper, upcoming, None).await;
    assert_eq!((limited.status.as_u16(), limited.code()), (409, "limit_reached"));

    let closed =
        app.call("POST", &format!("/api/admin/seckill/events/{upcoming}/close"), Some(&admin), None).await;
    assert_eq!(closed.body["state"], "ended");
    let audit = app.call("GET", "/api/system/audit-log?action=seckill.close", Some(&admin), None).await;
    assert_eq!(audit.body["items"][0]["target"], format!("seckill_event:{upcoming}"), "{:?}", audit.body);
    let after = buy(&app, &shopper, upcoming, None).await;
    assert_eq!((after.status.as_u16(), after.code()), (410, "ended"));
    let stats =
        app.call("GET", &format!("/api/admin/seckill/events/{upcoming}/stats"), Some(&admin), None).await;
    let rejected: HashMap<String, u64> = stats.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["reason"].as_str().unwrap().to_owned(), r["count"].as_u64().unwrap()))
        .collect();
    assert_eq!((rejected["not_started"], rejected["limit_reached"], rejected["ended"]), (1, 1, 1));

    let missing = buy(&app, &shopper, 999_999, None).await;
    assert_eq!(missing.status, 404);
    let zero = app
        .call(
            "POST",
            &format!("/api/seckill/events/{upcoming}/orders"),
            Some(&shopper),
            Some(json!({"quantity": 0})),
        )
        .await;
    assert_eq!(zero.code(), "validation_failed");
}

#[actix_web::test]
async fn only_operators_manage_sales_and_only_signed_in_shoppers_buy() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("ops").await;
    let (_, shopper) = app.member("mallory").await;
    let denied = app
        .call("POST", "/api/admin/seckill/events", Some(&shopper), Some(event_body(5, 1, json!({}))))
        .await;
    assert_eq!((denied.status.as_u16(), denied.code()), (403, "forbidden"));
    let anonymous =
        app.call("POST", "/api/admin/seckill/events", None, Some(event_body(5, 1, json!({})))).await;
    assert_eq!(anonymous.status, 401);
    let event = create_event(&app, &admin, event_body(5, 1, json!({}))).await;
    for path in ["open", "close", "stats"] {
        let method = if path == "stats" { "GET" } else { "POST" };
        let reply = app
            .call(method, &format!("/api/admin/seckill/events/{event}/{path}"), Some(&shopper), None)
            .await;
        assert_eq!(reply.status, 403, "{path}");
    }
    let no_token = app
        .call("POST", &format!("/api/seckill/events/{event}/orders"), None, Some(json!({"quantity": 1})))
        .await;
    assert_eq!(no_token.status, 401);
    let order = buy(&app, &shopper, event, None).await;
    let order_no = order.body["order_no"].as_str().unwrap();
    let (_, thief) = app.member("thief").await;
    let peek = app.call("GET", &format!("/api/orders/{order_no}"), Some(&thief), None).await;
    assert_eq!(peek.status, 404, "another shopper's order does not exist for them");
    let steal = app.call("POST", &format!("/api/orders/{order_no}/pay"), Some(&thief), None).await;
    assert_eq!(steal.status, 404);
}

#[actix_web::test]
async fn invalid_events_are_refused_per_field_and_nothing_is_written() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("ops").await;
    let bad = event_body(
        0,
        0,
        json!({"price_cents": -1, "title": "", "ends_at": (Utc::now() - Duration::hours(2)).to_rfc3339(),
               "payment_window_secs": 0}),
    );
    let reply = app.call("POST", "/api/admin/seckill/events", Some(&admin), Some(bad)).await;
    assert_eq!(reply.status, 422);
    let fields: HashSet<&str> =
        reply.body["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    for field in ["title", "price_cents", "stock", "per_user_limit", "ends_at", "payment_window_secs"] {
        assert!(fields.contains(field), "{field} missing from {fields:?}");
    }
    let typo = app
        .call("POST", "/api/admin/seckill/events", Some(&admin), Some(event_body(5, 1, json!({"stok": 5}))))
        .await;
    assert_eq!(typo.code(), "invalid_body");
    let client = app.db.get().await.unwrap();
    let count: i64 = client.query_one("SELECT count(*) FROM seckill_events", &[]).await.unwrap().get(0);
    assert_eq!(count, 0);
    assert_eq!(app.call("GET", "/api/seckill/events/abc", None, None).await.code(), "invalid_path");
}

#[actix_web::test]
async fn unpaid_orders_expire_once_return_their_stock_and_late_payments_are_recorded() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("ops").await;
    let (_, shopper) = app.member("slow").await;
    let event = create_event(&app, &admin, event_body(1, 1, json!({"payment_window_secs": 1}))).await;
    let order = buy(&app, &shopper, event, None).await;
    let order_no = order.body["order_no"].as_str().unwrap().to_owned();
    assert_eq!(buy(&app, &shopper, event, None).await.code(), "sold_out");

    let mut status = String::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let read = app.call("GET", &format!("/api/orders/{order_no}"), Some(&shopper), None).await;
        status = read.body["status"].as_str().unwrap().to_owned();
        if status == "cancelled" {
            assert_eq!(read.body["cancel_reason"], "payment_timeout");
            break;
        }
    }
    assert_eq!(status, "cancelled");
    assert_eq!(remaining(&app, event).await, 1, "stock returned exactly once");

    let late = app.call("POST", &format!("/api/orders/{order_no}/pay"), Some(&shopper), None).await;
    assert_eq!((late.status.as_u16(), late.code()), (409, "order_expired"));
    let exceptions = scalar(
        &app,
        "SELECT count(*) FROM payment_exceptions pe JOIN orders o ON o.id = pe.order_id WHERE o.seckill_event_id = $1",
        event,
    )
    .await;
    assert_eq!(exceptions, 1);

    // The stock (and the shopper's allowance) is back in the actor too.
    let again = buy(&app, &shopper, event, None).await;
    assert_eq!(again.status, 201, "{:?}", again.body);
    assert_eq!(live_units(&app, event).await, 1);
}

#[actix_web::test]
async fn rate_limits_and_purchase_tokens_guard_the_buy_path() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("ops").await;
    let (_, shopper) = app.member("bot").await;
    let limited = create_event(&app, &admin, event_body(100, 100, json!({"user_rate_per_sec": 1}))).await;
    // Rate 1/s with a burst of 2: six requests sent together cannot all pass.
    let answers = join_all((0..6).map(|_| buy(&app, &shopper, limited, None))).await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    let throttled: Vec<_> = answers.iter().filter(|a| a.status == 429).collect();
    assert!((2..=3).contains(&created), "burst of 2 (+1 refill at most), got {created}");
    assert_eq!(created + throttled.len(), 6);
    assert_eq!(throttled[0].code(), "rate_limited");
    assert!(throttled[0].headers.contains_key("retry-after"));

    let guarded =
        create_event(&app, &admin, event_body(10, 1, json!({"require_purchase_token": true}))).await;
    let without = buy(&app, &shopper, guarded, None).await;
    assert_eq!((without.status.as_u16(), without.code()), (403, "purchase_token_invalid"));
    let issued =
        app.call("GET", &format!("/api/seckill/events/{guarded}/purchase-token"), Some(&shopper), None).await;
    let token = issued.body["token"].as_str().unwrap().to_owned();
    let (_, other) = app.member("other").await;
    let borrowed = app
        .call_with(
            "POST",
            &format!("/api/seckill/events/{guarded}/orders"),
            Some(&other),
            Some(json!({"quantity": 1})),
            &[("X-Purchase-Token", &token)],
        )
        .await;
    assert_eq!(borrowed.code(), "purchase_token_invalid", "tokens are bound to their user");
    let with = app
        .call_with(
            "POST",
            &format!("/api/seckill/events/{guarded}/orders"),
            Some(&shopper),
            Some(json!({"quantity": 1})),
            &[("X-Purchase-Token", &token)],
        )
        .await;
    assert_eq!(with.status, 201, "{:?}", with.body);
}

#[actix_web::test]
async fn a_restarted_node_rebuilds_stock_and_limits_from_postgres() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("ops").await;
    let (_, shopper) = app.member("carl").await;
    let event = create_event(&app, &admin, event_body(3, 2, json!({}))).await;
    assert_eq!(buy(&app, &shopper, event, Some("a")).await.status, 201);
    assert_eq!(buy(&app, &shopper, event, Some("b")).await.status, 201);

    // A second process on the same database starts from what is committed.
    let restarted = spawn_app_with(app.settings.clone(), format!("{}-unused", "restart")).await;
    let detail = restarted.call("GET", &format!("/api/seckill/events/{event}"), None, None).await;
    assert_eq!(detail.body["remaining_stock"], 1);
    let token = restarted.login("carl").await;
    let limited = buy(&restarted, &token, event, Some("c")).await;
    assert_eq!(limited.code(), "limit_reached");
    let replay = buy(&restarted, &token, event, Some("a")).await;
    assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
}

#[actix_web::test]
async fn when_memory_and_database_disagree_the_database_wins_and_nothing_is_oversold() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("ops").await;
    let (shopper_id, shopper) = app.member("drift").await;
    let (_, other) = app.member("bystander").await;
    let event = create_event(&app, &admin, event_body(3, 2, json!({}))).await;
    let client = app.db.get().await.unwrap();
    // Simulate drift: the database has one unit left and the shopper is
    // already at the limit, while the actor still believes 3 and 0.
    client.execute("UPDATE seckill_events SET remaining_stock = 1 WHERE id = $1", &[&event]).await.unwrap();
    client
        .execute(
            "INSERT INTO seckill_user_counts (event_id, user_id, per_user_limit, bought) VALUES ($1, $2, 2, 2)",
            &[&event, &shopper_id],
        )
        .await
        .unwrap();

    let refused = buy(&app, &shopper, event, Some("over-limit")).await;
    assert_eq!((refused.status.as_u16(), refused.code()), (409, "limit_reached"));
    assert_eq!(buy(&app, &other, event, None).await.status, 201, "the one real unit sells");
    let answers = [buy(&app, &other, event, None).await, buy(&app, &other, event, None).await];
    assert!(answers.iter().all(|a| a.status == 409), "{answers:?}");
    assert_eq!(remaining(&app, event).await, 0);
    assert_eq!(live_units(&app, event).await, 1, "never more than the database had");
    let retry = buy(&app, &shopper, event, Some("over-limit")).await;
    assert_ne!(retry.code(), "idempotency_in_progress", "a refused key is forgotten");
}

#[actix_web::test]
async fn a_shopper_cancelling_a_flash_sale_order_gives_the_unit_back_to_the_sale() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let event = create_event(&app, &admin, event_body(1, 1, json!({}))).await;
    let (_, first) = app.member("first").await;
    let (_, second) = app.member("second").await;
    let order = buy(&app, &first, event, None).await;
    assert_eq!(order.status, 201);
    assert_eq!(buy(&app, &second, event, None).await.code(), "sold_out");

    let no = order.body["order_no"].as_str().unwrap();
    let reply = app.call("POST", &format!("/api/orders/{no}/cancel"), Some(&first), None).await;
    assert_eq!(reply.body["status"], "cancelled", "{:?}", reply.body);
    assert_eq!(
        scalar(&app, "SELECT remaining_stock::int8 FROM seckill_events WHERE id = $1", event).await,
        1
    );
    // The actor got the unit back: the next shopper buys it, and the first may buy again.
    let mut bought = false;
    for _ in 0..50 {
        let reply = buy(&app, &second, event, None).await;
        if reply.status == 201 {
            bought = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(bought, "the released unit is on sale again");
    assert_eq!(buy(&app, &first, event, None).await.code(), "sold_out");
}

#[actix_web::test]
async fn an_event_probed_before_it_exists_is_on_sale_as_soon_as_it_is_created() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let first = create_event(&app, &admin, event_body(5, 1, json!({}))).await;
    let (_, shopper) = app.member("early").await;
    // The next id is probed (and remembered as missing) before it exists.
    for _ in 0..3 {
        assert_eq!(buy(&app, &shopper, first + 1, None).await.status, 404);
    }
    let next = create_event(&app, &admin, event_body(5, 1, json!({}))).await;
    assert_eq!(next, first + 1);
    assert_eq!(buy(&app, &shopper, next, None).await.status, 201, "creation clears the missing mark");
}

#[actix_web::test]
async fn an_ended_event_gives_its_actor_back_and_still_answers() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let ends_at = (Utc::now() + Duration::milliseconds(1500)).to_rfc3339();
    let event = create_event(&app, &admin, event_body(5, 1, json!({"ends_at": ends_at}))).await;
    let (_, shopper) = app.member("late").await;
    assert_eq!(buy(&app, &shopper, event, None).await.status, 201);
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;

    let engine = &app.state.as_ref().unwrap().seckill;
    let before = engine.live_events();
    engine.retire_ended(Utc::now() + rs_cms::seckill::engine::RETIRE_AFTER_END + Duration::seconds(1));
    assert_eq!(engine.live_events(), before - 1);
    // A late request reloads it from Postgres and gets the right answer.
    assert_eq!(buy(&app, &shopper, event, None).await.status, 410);
    let stats =
        app.call("GET", &format!("/api/admin/seckill/events/{event}/stats"), Some(&admin), None).await;
    assert_eq!(stats.body["event"]["remaining_stock"], 4);
}

#[actix_web::test]
async fn the_funnel_follows_requests_to_paid_expired_and_cancelled_orders() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let event = create_event(&app, &admin, event_body(5, 1, json!({}))).await;
    let (_, payer) = app.member("payer").await;
    let (_, sleeper) = app.member("sleeper").await;
    let (_, quitter) = app.member("quitter").await;
    let paid = buy(&app, &payer, event, None).await.body["order_no"].as_str().unwrap().to_owned();
    app.call("POST", &format!("/api/orders/{paid}/pay"), Some(&payer), None).await;
    let expiring = buy(&app, &sleeper, event, None).await.body["order_no"].as_str().unwrap().to_owned();
    let quit = buy(&app, &quitter, event, None).await.body["order_no"].as_str().unwrap().to_owned();
    app.call("POST", &format!("/api/orders/{quit}/cancel"), Some(&quitter), None).await;
    assert_eq!(buy(&app, &payer, event, None).await.code(), "limit_reached");

    app.state.as_ref().unwrap().clock.advance(chrono::TimeDelta::seconds(901));
    crate::order::wait_for_status(&app, &sleeper, &expiring, "cancelled").await;
    let stats =
        app.call("GET", &format!("/api/admin/seckill/events/{event}/stats"), Some(&admin), None).await;
    assert_eq!(
        stats.body["funnel"],
        json!({"requests": 4, "orders": 3, "paid": 1, "expired": 1, "cancelled": 1}),
        "{:?}",
        stats.body
    );
}
