//! Checkout and the order lifecycle: reservation, races, every transition
//! and refusal, expiry and auto-completion on a moved clock, shipping and
//! the carrier webhook, and who may see and do what.

use std::time::Duration;

use awc::http::StatusCode;
use chrono::TimeDelta;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};
use crate::product::{category, listed_product, tshirt};

/// A shop with one listed T-shirt in stock, and its people.
pub struct Shop {
    pub admin: String,
    pub owner: String,
    pub shop_id: i64,
    pub product_id: i64,
    /// SKU ids of the T-shirt (red M, red L, blue M).
    pub skus: Vec<i64>,
}

pub async fn shop_with_stock(app: &TestApp, owner: &str, name: &str, stock: i32) -> Shop {
    let admin = app.login("root").await;
    let (shop_id, owner) = app.open_shop(&admin, owner, name).await;
    let cat = category(app, &admin, &format!("{name} goods")).await;
    let product = listed_product(app, &admin, shop_id, &owner, tshirt(cat)).await;
    let skus: Vec<i64> =
        product["skus"].as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect();
    for sku in &skus {
        let path = format!("/api/merchant/shops/{shop_id}/skus/{sku}/stock");
        let reply =
            app.call("POST", &path, Some(&owner), Some(json!({"delta": stock, "reason": "opening"}))).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    }
    Shop { admin, owner, shop_id, product_id: product["id"].as_i64().unwrap(), skus }
}

/// A shopper with an address; returns (token, address id).
pub async fn shopper(app: &TestApp, name: &str) -> (String, i64) {
    let (_, token) = app.member(name).await;
    let address = json!({"recipient": "Han Meimei", "phone": "+86 139 0000 0000", "region": "Zhejiang Hangzhou Xihu",
        "detail": "1 Lake Road"});
    let reply = app.call("POST", "/api/addresses", Some(&token), Some(address)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    (token, reply.body["id"].as_i64().unwrap())
}

pub async fn buy_now(
    app: &TestApp,
    token: &str,
    address_id: i64,
    sku_id: i64,
    quantity: u32,
) -> crate::helpers::Reply {
    let body = json!({"address_id": address_id, "buy_now": {"sku_id": sku_id, "quantity": quantity}});
    app.call("POST", "/api/checkout", Some(token), Some(body)).await
}

async fn stock(app: &TestApp, sku_id: i64) -> i32 {
    let client = app.db.get().await.unwrap();
    client.query_one("SELECT stock FROM skus WHERE id = $1", &[&sku_id]).await.unwrap().get(0)
}

pub async fn spawn_with_admin() -> TestApp {
    let app = spawn_app().await;
    app.admin("root").await;
    app
}

#[actix_web::test]
async fn buy_now_reserves_stock_in_the_same_transaction_and_keys_make_retries_safe() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "alice", "Alice Apparel", 5).await;
    let (token, address_id) = shopper(&app, "bob").await;

    let body = json!({"address_id": address_id, "buy_now": {"sku_id": shop.skus[0], "quantity": 2}});
    let headers = [("Idempotency-Key", "checkout-1")];
    let reply = app.call_with("POST", "/api/checkout", Some(&token), Some(body.clone()), &headers).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["total_cents"], 2 * 1999);
    let order = &reply.body["orders"][0];
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["shop_id"], shop.shop_id);
    assert_eq!(order["shipping_address"]["recipient"], "Han Meimei");
    assert_eq!(stock(&app, shop.skus[0]).await, 3);

    // The same key again: the same checkout, not a second one.
    let again = app.call_with("POST", "/api/checkout", Some(&token), Some(body), &headers).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.headers.get("Idempotent-Replayed").unwrap(), "true");
    assert_eq!(again.body["checkout_id"], reply.body["checkout_id"]);
    assert_eq!(stock(&app, shop.skus[0]).await, 3);
    let other = json!({"address_id": address_id, "buy_now": {"sku_id": shop.skus[1], "quantity": 1}});
    let reply = app.call_with("POST", "/api/checkout", Some(&token), Some(other), &headers).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));

    // The order keeps a snapshot of what was bought, and its history.
    let no = order["order_no"].as_str().unwrap();
    let detail = app.call("GET", &format!("/api/orders/{no}"), Some(&token), None).await;
    assert_eq!(detail.body["items"][0]["title"], "Cotton T-shirt");
    assert_eq!(detail.body["items"][0]["spec_values"], json!({"colour": "red", "size": "M"}));
    assert_eq!(detail.body["items"][0]["unit_price_cents"], 1999);
    assert_eq!(detail.body["history"][0]["to_status"], "pending_payment");
    assert!(detail.body.get("notes").is_none(), "notes are for the shop");
    let movements = app
        .call(
            "GET",
            &format!("/api/merchant/shops/{}/inventory/movements?kind=reservation", shop.shop_id),
            Some(&shop.owner),
            None,
        )
        .await;
    assert_eq!(movements.body["total"], 1);
    assert_eq!(movements.body["items"][0]["delta"], -2);

    // Bad input writes nothing.
    let reply = buy_now(&app, &token, address_id + 999, shop.skus[0], 1).await;
    assert_eq!(reply.body["details"][0]["field"], "address_id");
    let reply = buy_now(&app, &token, address_id, shop.skus[0], 0).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = buy_now(&app, &token, address_id, 999_999, 1).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "item_unavailable"));
    assert_eq!(app.count("orders").await, 1);
}

#[actix_web::test]
async fn a_checkout_short_of_stock_on_any_line_fails_whole_and_names_the_line() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "carol", "Carol Cases", 2).await;
    let (token, address_id) = shopper(&app, "dave").await;
    for (sku, quantity) in [(shop.skus[0], 1), (shop.skus[1], 3)] {
        let reply = app
            .call("POST", "/api/cart/lines", Some(&token), Some(json!({"sku_id": sku, "quantity": quantity})))
            .await;
        assert!(reply.status.is_success(), "{:?}", reply.body);
    }
    let reply =
        app.call("POST", "/api/checkout", Some(&token), Some(json!({"address_id": address_id}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "insufficient_stock"));
    assert!(
        reply.body["message"].as_str().unwrap().contains(&format!("SKU {}", shop.skus[1])),
        "{:?}",
        reply.body
    );
    assert_eq!((app.count("orders").await, app.count("checkouts").await), (0, 0));
    assert_eq!((stock(&app, shop.skus[0]).await, stock(&app, shop.skus[1]).await), (2, 2));
    assert_eq!(app.count("inventory_movements WHERE kind = 'reservation'").await, 0);
    let cart = app.call("GET", "/api/cart", Some(&token), None).await;
    assert_eq!(cart.status, StatusCode::OK);
}

#[actix_web::test]
async fn checkout_from_the_cart_places_one_order_per_shop_and_keeps_unselected_lines() {
    let app = spawn_with_admin().await;
    let tees = shop_with_stock(&app, "erin", "Erin Tees", 10).await;
    let more = shop_with_stock(&app, "frank", "Frank Fashion", 10).await;
    let (token, address_id) = shopper(&app, "grace").await;
    for (sku, quantity) in [(tees.skus[0], 2), (tees.skus[2], 1), (more.skus[1], 3), (more.skus[0], 1)] {
        let reply = app
            .call("POST", "/api/cart/lines", Some(&token), Some(json!({"sku_id": sku, "quantity": quantity})))
            .await;
        assert!(reply.status.is_success(), "{:?}", reply.body);
    }
    let reply = app
        .call(
            "POST",
            "/api/cart/selection",
            Some(&token),
            Some(json!({"sku_ids": [more.skus[0]], "selected": false})),
        )
        .await;
    assert!(reply.status.is_success(), "{:?}", reply.body);

    let reply =
        app.call("POST", "/api/checkout", Some(&token), Some(json!({"address_id": address_id}))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let orders = reply.body["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2);
    let by_shop = |shop_id: i64| orders.iter().find(|o| o["shop_id"] == shop_id).unwrap();
    assert_eq!(by_shop(tees.shop_id)["total_cents"], 2 * 1999 + 1999);
    assert_eq!(by_shop(more.shop_id)["total_cents"], 3 * 2099);
    assert_eq!(reply.body["total_cents"], 3 * 1999 + 3 * 2099);
    assert_eq!(
        (stock(&app, tees.skus[0]).await, stock(&app, more.skus[1]).await, stock(&app, more.skus[0]).await),
        (8, 7, 10)
    );

    // Bought lines left the cart; the unselected one stayed.
    let client = app.db.get().await.unwrap();
    let left: Vec<i64> = client
        .query("SELECT sku_id FROM cart_lines WHERE quantity > 0", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, vec![more.skus[0]]);
    let reply =
        app.call("POST", "/api/checkout", Some(&token), Some(json!({"address_id": address_id}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"), "nothing selected");
}

#[actix_web::test]
async fn many_shoppers_racing_for_the_last_units_never_oversell() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "heidi", "Heidi Hats", 10).await;
    let mut shoppers = Vec::new();
    for i in 0..30 {
        shoppers.push(shopper(&app, &format!("racer{i}")).await);
    }
    let sku = shop.skus[2];
    let replies = futures_util::future::join_all(
        shoppers.iter().map(|(token, address)| buy_now(&app, token, *address, sku, 1)),
    )
    .await;
    let won = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let refused: Vec<_> = replies.iter().filter(|r| r.status != StatusCode::CREATED).collect();
    assert_eq!(won, 10);
    assert!(
        refused.iter().all(|r| r.status == StatusCode::CONFLICT && r.code() == "insufficient_stock"),
        "{refused:?}"
    );
    assert_eq!(stock(&app, sku).await, 0);
    assert_eq!(app.count("orders").await, 10);
    let client = app.db.get().await.unwrap();
    let reserved: i64 = client
        .query_one(
            "SELECT -sum(delta)::int8 FROM inventory_movements WHERE sku_id = $1 AND kind = 'reservation'",
            &[&sku],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reserved, 10);
}

pub async fn order_no(reply: &crate::helpers::Reply) -> String {
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["orders"][0]["order_no"].as_str().unwrap().to_owned()
}

fn signed_webhook(app: &TestApp, body: &Value, timestamp: i64) -> (String, Vec<(String, String)>) {
    let text = body.to_string();
    let ts = timestamp.to_string();
    let signature =
        rs_cms::signature::sign(&app.settings.orders.carrier_webhook_secret, &ts, text.as_bytes());
    (
        text,
        vec![
            ("X-Carrier-Timestamp".into(), ts),
            ("X-Carrier-Signature".into(), signature),
            ("Content-Type".into(), "application/json".into()),
        ],
    )
}

async fn post_webhook(app: &TestApp, text: String, headers: &[(String, String)]) -> StatusCode {
    let mut req = app.http.post(format!("{}/api/logistics/webhook", app.address));
    for (name, value) in headers {
        req = req.insert_header((name.as_str(), value.as_str()));
    }
    req.send_body(text).await.unwrap().status()
}

#[actix_web::test]
async fn an_order_moves_through_every_state_and_refuses_every_illegal_step() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "ivan", "Ivan Irons", 5).await;
    let (token, address_id) = shopper(&app, "judy").await;
    let no = order_no(&buy_now(&app, &token, address_id, shop.skus[0], 1).await).await;
    let mine = format!("/api/orders/{no}");
    let theirs = format!("/api/merchant/shops/{}/orders/{no}", shop.shop_id);

    // pending_payment: cannot ship, complete or be marked delivered.
    let reply = app
        .call(
            "POST",
            &format!("{theirs}/ship"),
            Some(&shop.owner),
            Some(json!({"carrier": "SF", "tracking_no": "SF1"})),
        )
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "order_pending_payment"));
    let reply = app.call("POST", &format!("{mine}/confirm-receipt"), Some(&token), None).await;
    assert_eq!(reply.code(), "order_pending_payment");

    // paid: the shopper can no longer cancel; tracking needs a shipment.
    assert_eq!(app.call("POST", &format!("{mine}/pay"), Some(&token), None).await.body["status"], "paid");
    let product = app.call("GET", &format!("/api/products/{}", shop.product_id), None, None).await;
    assert_eq!(product.body["sales_count"], 1, "paid units count as sales");
    let reply = app.call("POST", &format!("{mine}/cancel"), Some(&token), None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "order_paid"));
    let reply = app
        .call("POST", &format!("{theirs}/tracking"), Some(&shop.owner), Some(json!({"status": "in_transit"})))
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"));
    let reply = app
        .call("POST", &format!("{theirs}/notes"), Some(&shop.owner), Some(json!({"note": "gift wrap"})))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);

    // shipped, then tracked by the merchant and delivered by the carrier's webhook.
    let ship = json!({"carrier": "SF", "tracking_no": "SF1001"});
    let reply = app.call("POST", &format!("{theirs}/ship"), Some(&shop.owner), Some(ship.clone())).await;
    assert_eq!(reply.body["status"], "shipped", "{:?}", reply.body);
    let reply = app.call("POST", &format!("{theirs}/ship"), Some(&shop.owner), Some(ship)).await;
    assert_eq!(reply.code(), "order_shipped");
    let reply = app
        .call(
            "POST",
            &format!("{theirs}/tracking"),
            Some(&shop.owner),
            Some(json!({"status": "in_transit", "location": "Hangzhou hub"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);

    let now = chrono::Utc::now().timestamp();
    let event = json!({"carrier": "SF", "tracking_no": "SF1001", "event_id": "ev-9", "status": "delivered",
        "location": "Front door", "occurred_at": "2026-11-22T10:00:00Z"});
    let (text, mut headers) = signed_webhook(&app, &event, now);
    headers[1].1 = "00".repeat(32);
    assert_eq!(
        post_webhook(&app, text.clone(), &headers).await,
        StatusCode::UNAUTHORIZED,
        "forged signature"
    );
    let (_, stale) = signed_webhook(&app, &event, now - 3600);
    assert_eq!(post_webhook(&app, text.clone(), &stale).await, StatusCode::UNAUTHORIZED, "stale timestamp");
    assert_eq!(app.call("GET", &mine, Some(&token), None).await.body["status"], "shipped");
    let (text, headers) = signed_webhook(&app, &event, now);
    assert_eq!(post_webhook(&app, text.clone(), &headers).await, StatusCode::OK);
    assert_eq!(post_webhook(&app, text, &headers).await, StatusCode::OK, "a redelivery is harmless");

    let detail = app.call("GET", &mine, Some(&token), None).await;
    assert_eq!(detail.body["status"], "delivered");
    assert_eq!(detail.body["shipment"]["tracking_no"], "SF1001");
    assert_eq!(detail.body["shipment"]["events"].as_array().unwrap().len(), 2);
    assert!(detail.body["complete_after"].is_string());
    let reply = app
        .call("POST", &format!("{theirs}/cancel"), Some(&shop.owner), Some(json!({"reason": "too late"})))
        .await;
    assert_eq!(reply.code(), "order_delivered");

    // completed by the shopper; nothing moves it after that.
    assert_eq!(
        app.call("POST", &format!("{mine}/confirm-receipt"), Some(&token), None).await.body["status"],
        "completed"
    );
    for (path, token) in [(format!("{mine}/cancel"), &token), (format!("{mine}/confirm-receipt"), &token)] {
        assert_eq!(app.call("POST", &path, Some(token), None).await.code(), "order_completed");
    }
    let history: Vec<String> = app.call("GET", &theirs, Some(&shop.owner), None).await.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to_status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(history, ["pending_payment", "paid", "shipped", "delivered", "completed"]);
    let notes = app.call("GET", &theirs, Some(&shop.owner), None).await.body["notes"].clone();
    assert_eq!(notes[0]["note"], "gift wrap");
}

#[actix_web::test]
async fn cancelling_returns_stock_exactly_once() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "kim", "Kim Kites", 5).await;
    let (token, address_id) = shopper(&app, "leo").await;
    let first = order_no(&buy_now(&app, &token, address_id, shop.skus[1], 2).await).await;
    let second = order_no(&buy_now(&app, &token, address_id, shop.skus[1], 1).await).await;
    assert_eq!(stock(&app, shop.skus[1]).await, 2);

    // The shopper cancels before paying; racing cancels return the units once.
    let cancel = format!("/api/orders/{first}/cancel");
    let replies =
        futures_util::future::join_all((0..5).map(|_| app.call("POST", &cancel, Some(&token), None))).await;
    assert_eq!(replies.iter().filter(|r| r.status == StatusCode::OK).count(), 1);
    assert!(replies.iter().filter(|r| r.status != StatusCode::OK).all(|r| r.code() == "order_cancelled"));
    assert_eq!(stock(&app, shop.skus[1]).await, 4);
    assert_eq!(app.count("inventory_movements WHERE kind = 'release'").await, 1);

    // The merchant cancels a paid order, but only with a reason.
    app.call("POST", &format!("/api/orders/{second}/pay"), Some(&token), None).await;
    let path = format!("/api/merchant/shops/{}/orders/{second}/cancel", shop.shop_id);
    let reply = app.call("POST", &path, Some(&shop.owner), Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = app.call("POST", &path, Some(&shop.owner), Some(json!({"reason": "out of dye"}))).await;
    assert_eq!(reply.body["status"], "cancelled", "{:?}", reply.body);
    assert_eq!(reply.body["cancel_reason"], "out of dye");
    assert_eq!(stock(&app, shop.skus[1]).await, 5);
    assert_eq!(
        app.count("payment_exceptions WHERE reason = 'order cancelled after payment'").await,
        1,
        "a refund is owed"
    );
}

pub async fn wait_for_status(app: &TestApp, token: &str, no: &str, status: &str) {
    for _ in 0..100 {
        if app.call("GET", &format!("/api/orders/{no}"), Some(token), None).await.body["status"] == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("order {no} never became {status}");
}

#[actix_web::test]
async fn unpaid_orders_expire_and_delivered_ones_complete_when_their_time_comes() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "mia", "Mia Mugs", 5).await;
    let (token, address_id) = shopper(&app, "ned").await;
    let unpaid = order_no(&buy_now(&app, &token, address_id, shop.skus[0], 2).await).await;
    let delivered = order_no(&buy_now(&app, &token, address_id, shop.skus[2], 1).await).await;
    app.call("POST", &format!("/api/orders/{delivered}/pay"), Some(&token), None).await;
    let theirs = format!("/api/merchant/shops/{}/orders/{delivered}", shop.shop_id);
    app.call(
        "POST",
        &format!("{theirs}/ship"),
        Some(&shop.owner),
        Some(json!({"carrier": "YTO", "tracking_no": "Y1"})),
    )
    .await;
    app.call("POST", &format!("{theirs}/tracking"), Some(&shop.owner), Some(json!({"status": "delivered"})))
        .await;
    wait_for_status(&app, &token, &delivered, "delivered").await;

    let clock = app.state.as_ref().unwrap().clock.clone();
    clock.advance(TimeDelta::seconds(app.settings.orders.payment_window_secs as i64 + 1));
    wait_for_status(&app, &token, &unpaid, "cancelled").await;
    assert_eq!(stock(&app, shop.skus[0]).await, 5, "the units went back");
    let reply = app.call("POST", &format!("/api/orders/{unpaid}/pay"), Some(&token), None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "order_expired"));
    assert_eq!(app.count("payment_exceptions").await, 1, "a late payment is kept for refund");
    assert_eq!(
        app.call("GET", &format!("/api/orders/{delivered}"), Some(&token), None).await.body["status"],
        "delivered"
    );

    clock.advance(TimeDelta::days(i64::from(app.settings.orders.auto_complete_days)));
    wait_for_status(&app, &token, &delivered, "completed").await;
    let history = app.call("GET", &format!("/api/orders/{delivered}"), Some(&token), None).await.body
        ["history"]
        .clone();
    assert_eq!(history.as_array().unwrap().last().unwrap()["note"], "completed automatically");
}

#[actix_web::test]
async fn shoppers_see_only_their_orders_and_shops_only_theirs() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "olga", "Olga Optics", 5).await;
    let other = shop_with_stock(&app, "pete", "Pete Pens", 5).await;
    let (token, address_id) = shopper(&app, "quinn").await;
    let (stranger, _) = shopper(&app, "rosa").await;
    let no = order_no(&buy_now(&app, &token, address_id, shop.skus[0], 1).await).await;
    app.call("POST", &format!("/api/orders/{no}/pay"), Some(&token), None).await;

    for path in
        [format!("/api/orders/{no}"), format!("/api/orders/{no}/cancel"), format!("/api/orders/{no}/pay")]
    {
        let method = if path.ends_with(&no) { "GET" } else { "POST" };
        assert_eq!(
            app.call(method, &path, Some(&stranger), None).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(app.call("GET", "/api/orders", Some(&stranger), None).await.body["total"], 0);
    assert_eq!(app.call("GET", "/api/orders", None, None).await.status, StatusCode::UNAUTHORIZED);

    // Another shop: no access to this shop's list, and this order is not in its own.
    let reply = app
        .call("GET", &format!("/api/merchant/shops/{}/orders", shop.shop_id), Some(&other.owner), None)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = app
        .call("GET", &format!("/api/merchant/shops/{}/orders/{no}", other.shop_id), Some(&other.owner), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let list = app
        .call(
            "GET",
            &format!("/api/merchant/shops/{}/orders?status=paid", shop.shop_id),
            Some(&shop.owner),
            None,
        )
        .await;
    assert_eq!(list.body["total"], 1);
    let reply = app
        .call(
            "GET",
            &format!("/api/merchant/shops/{}/orders?status=lost", shop.shop_id),
            Some(&shop.owner),
            None,
        )
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "invalid_query"));

    // Customer service reads orders but does not ship them.
    let (_, clerk) = app.member("sam").await;
    app.call(
        "POST",
        &format!("/api/merchant/shops/{}/staff", shop.shop_id),
        Some(&shop.owner),
        Some(json!({"login": "sam", "role": "customer_service"})),
    )
    .await;
    app.call("POST", &format!("/api/shops/{}/invitation", shop.shop_id), Some(&clerk), None).await;
    let theirs = format!("/api/merchant/shops/{}/orders/{no}", shop.shop_id);
    assert_eq!(app.call("GET", &theirs, Some(&clerk), None).await.status, StatusCode::OK);
    let reply = app
        .call(
            "POST",
            &format!("{theirs}/ship"),
            Some(&clerk),
            Some(json!({"carrier": "SF", "tracking_no": "X"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Operators read any order; members cannot.
    assert_eq!(
        app.call("GET", &format!("/api/system/orders/{no}"), Some(&shop.admin), None).await.status,
        StatusCode::OK
    );
    assert_eq!(app.call("GET", "/api/system/orders", Some(&token), None).await.status, StatusCode::FORBIDDEN);
    let reply = app
        .call(
            "POST",
            &format!("/api/system/orders/{no}/cancel"),
            Some(&shop.admin),
            Some(json!({"reason": "fraud check"})),
        )
        .await;
    assert_eq!(reply.body["status"], "cancelled");
}
