//! After-sale: refunds before shipping and returns after delivery, for some
//! units or the whole order, decided by the merchant or (in a dispute) an
//! operator; stock, money and the order move together, never beyond what
//! was paid, however the requests race.

use awc::http::StatusCode;
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{Reply, TestApp};
use crate::order::{buy_now, order_no, shop_with_stock, shopper, spawn_with_admin, wait_for_status, Shop};
use crate::payment::{shopper_pays, start};

/// Buys `quantity` of `sku` and pays through the sandbox gateway.
pub async fn paid_order(app: &TestApp, token: &str, address: i64, sku: i64, quantity: u32) -> String {
    let no = order_no(&buy_now(app, token, address, sku, quantity).await).await;
    let payment = start(app, token, &no).await;
    assert_eq!(payment.status, StatusCode::CREATED, "{:?}", payment.body);
    assert_eq!(shopper_pays(app, &payment.body, true).await, 200);
    wait_for_status(app, token, &no, "paid").await;
    no
}

/// Ships an order and has the merchant mark it delivered.
pub async fn deliver(app: &TestApp, shop: &Shop, token: &str, no: &str, tracking_no: &str) {
    let theirs = format!("/api/merchant/shops/{}/orders/{no}", shop.shop_id);
    let ship = json!({"carrier": "SF", "tracking_no": tracking_no});
    let reply = app.call("POST", &format!("{theirs}/ship"), Some(&shop.owner), Some(ship)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let delivered = json!({"status": "delivered"});
    app.call("POST", &format!("{theirs}/tracking"), Some(&shop.owner), Some(delivered)).await;
    wait_for_status(app, token, no, "delivered").await;
}

/// Files a request on an order.
pub async fn request(app: &TestApp, token: &str, no: &str, body: Value) -> Reply {
    app.call("POST", &format!("/api/orders/{no}/after-sales"), Some(token), Some(body)).await
}

/// A merchant's step (`approve`, `reject`, `receive`) on a request.
pub async fn merchant_step(app: &TestApp, shop: &Shop, case_no: &str, step: &str, note: &str) -> Reply {
    let path = format!("/api/merchant/shops/{}/after-sales/{case_no}/{step}", shop.shop_id);
    app.call("POST", &path, Some(&shop.owner), Some(json!({"note": note}))).await
}

pub fn case_no(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["case_no"].as_str().unwrap().to_owned()
}

async fn stock(app: &TestApp, sku: i64) -> i32 {
    let client = app.db.get().await.unwrap();
    client.query_one("SELECT stock FROM skus WHERE id = $1", &[&sku]).await.unwrap().get(0)
}

async fn order(app: &TestApp, token: &str, no: &str) -> Value {
    app.call("GET", &format!("/api/orders/{no}"), Some(token), None).await.body
}

/// What the sandbox gateway gave back on an order's payments.
async fn gateway_refunded(app: &TestApp, no: &str) -> i64 {
    let client = app.db.get().await.unwrap();
    client
        .query_one(
            "SELECT COALESCE(sum(g.refunded_cents), 0)::int8 FROM sandbox_gateway_payments g
             JOIN payments p ON p.provider_payment_id = g.provider_payment_id JOIN orders o ON o.id = p.order_id
             WHERE o.order_no = $1",
            &[&no],
        )
        .await
        .unwrap()
        .get(0)
}

#[actix_web::test]
async fn a_partial_refund_before_shipping_returns_units_and_money_and_the_rest_still_ships() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "alice", "Alice Apparel", 5).await;
    let (token, address) = shopper(&app, "bob").await;
    let no = paid_order(&app, &token, address, shop.skus[0], 3).await;
    assert_eq!(stock(&app, shop.skus[0]).await, 2);

    let one = json!({"kind": "refund", "reason": "ordered one too many", "photos": ["https://img.example/1.jpg"],
        "items": [{"sku_id": shop.skus[0], "quantity": 1}]});
    let reply = request(&app, &token, &no, one).await;
    let case = case_no(&reply);
    assert_eq!(
        (reply.body["status"].as_str(), reply.body["amount_cents"].as_i64()),
        (Some("requested"), Some(1999))
    );

    // Only two units are left to ask for; a return is not for unshipped orders.
    let too_many = json!({"kind": "refund", "reason": "all of them", "items": [{"sku_id": shop.skus[0], "quantity": 3}]});
    let reply = request(&app, &token, &no, too_many).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "exceeds_refundable"));
    let reply = request(&app, &token, &no, json!({"kind": "return", "reason": "broken"})).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "order_paid"));
    let reply =
        request(&app, &token, &no, json!({"kind": "refund", "reason": "", "photos": ["ftp://x"]})).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> =
        reply.body["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["reason", "photos[0]"]);

    // The merchant cannot ship over an open refund request; approving pays it.
    let ship = json!({"carrier": "SF", "tracking_no": "SF-AS-1"});
    let ship_path = format!("/api/merchant/shops/{}/orders/{no}/ship", shop.shop_id);
    let reply = app.call("POST", &ship_path, Some(&shop.owner), Some(ship.clone())).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "after_sale_open"));
    let reply = merchant_step(&app, &shop, &case, "approve", "").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "refunded");
    assert_eq!(reply.body["refunds"][0]["status"], "succeeded", "{:?}", reply.body);
    let history: Vec<&str> =
        reply.body["history"].as_array().unwrap().iter().map(|h| h["to_status"].as_str().unwrap()).collect();
    assert_eq!(history, ["requested", "refunded"]);
    assert_eq!(stock(&app, shop.skus[0]).await, 3, "the unit is back on the shelf");
    assert_eq!(app.count("inventory_movements WHERE kind = 'release' AND delta = 1").await, 1);
    assert_eq!(gateway_refunded(&app, &no).await, 1999);
    let now = order(&app, &token, &no).await;
    assert_eq!((now["status"].as_str(), now["refunded_cents"].as_i64()), (Some("paid"), Some(1999)));
    let reply = merchant_step(&app, &shop, &case, "approve", "").await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"));

    let reply = app.call("POST", &ship_path, Some(&shop.owner), Some(ship)).await;
    assert_eq!(reply.body["status"], "shipped", "{:?}", reply.body);
    let shipped = app.call("GET", &format!("/api/orders/{no}"), Some(&token), None).await.body;
    assert_eq!(
        shipped["shipment"]["items"],
        json!([{"sku_id": shop.skus[0], "quantity": 2}]),
        "the refunded unit stays"
    );
    let mine = app.call("GET", "/api/after-sales", Some(&token), None).await;
    assert_eq!(mine.body["total"], 1);
}

#[actix_web::test]
async fn a_disputed_return_is_decided_by_an_operator_and_refunded_when_the_goods_arrive() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "carol", "Carol Cases", 5).await;
    let (token, address) = shopper(&app, "dave").await;
    let no = paid_order(&app, &token, address, shop.skus[1], 2).await;
    deliver(&app, &shop, &token, &no, "SF-AS-2").await;

    let case =
        case_no(&request(&app, &token, &no, json!({"kind": "return", "reason": "cracked on arrival"})).await);
    let reply = merchant_step(&app, &shop, &case, "reject", "").await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "a rejection says why");
    let reply = merchant_step(&app, &shop, &case, "reject", "the photos show no damage").await;
    assert_eq!(reply.body["status"], "rejected", "{:?}", reply.body);
    assert_eq!(reply.body["decision_note"], "the photos show no damage");

    let escalate = format!("/api/after-sales/{case}/escalate");
    let reply = app.call("POST", &escalate, Some(&token), Some(json!({"note": "it arrived cracked"}))).await;
    assert_eq!(reply.body["status"], "disputed", "{:?}", reply.body);
    let reply = merchant_step(&app, &shop, &case, "approve", "").await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "invalid_state"),
        "operators decide disputes"
    );

    // The operator's queue, and only operators reach it.
    let queue = app.call("GET", "/api/system/after-sales?status=disputed", Some(&shop.admin), None).await;
    assert_eq!(queue.body["total"], 1, "{:?}", queue.body);
    let reply = app.call("GET", "/api/system/after-sales", Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let decide = format!("/api/system/after-sales/{case}/approve");
    let reply = app.call("POST", &decide, Some(&shop.owner), Some(json!({"note": "x"}))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = app.call("POST", &decide, Some(&shop.admin), Some(json!({"note": "courier damage"}))).await;
    assert_eq!(reply.body["status"], "approved", "{:?}", reply.body);

    // The goods go back; the merchant confirms; stock and money return.
    let ship_back = format!("/api/after-sales/{case}/return-shipment");
    let reply =
        app.call("POST", &ship_back, Some(&token), Some(json!({"carrier": "YTO", "tracking_no": ""}))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let back = json!({"carrier": "YTO", "tracking_no": "YT-77"});
    let reply = app.call("POST", &ship_back, Some(&token), Some(back)).await;
    assert_eq!(reply.body["status"], "returning", "{:?}", reply.body);
    let reply = app.call("POST", &format!("/api/after-sales/{case}/withdraw"), Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "a body is required");
    let reply =
        app.call("POST", &format!("/api/after-sales/{case}/withdraw"), Some(&token), Some(json!({}))).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "invalid_state"),
        "the goods are on their way"
    );
    let confirm = app.call("POST", &format!("/api/orders/{no}/confirm-receipt"), Some(&token), None).await;
    assert_eq!(
        (confirm.status, confirm.code()),
        (StatusCode::CONFLICT, "after_sale_open"),
        "money stays in escrow"
    );
    let before = stock(&app, shop.skus[1]).await;
    let reply = merchant_step(&app, &shop, &case, "receive", "").await;
    assert_eq!(reply.body["status"], "refunded", "{:?}", reply.body);
    assert_eq!(reply.body["return_tracking_no"], "YT-77");
    assert_eq!(stock(&app, shop.skus[1]).await, before + 2);
    assert_eq!(app.count("inventory_movements WHERE kind = 'return' AND delta = 2").await, 1);
    let now = order(&app, &token, &no).await;
    let paid = now["total_cents"].as_i64().unwrap();
    assert_eq!(gateway_refunded(&app, &no).await, paid);
    assert_eq!((now["status"].as_str(), now["refunded_cents"].as_i64()), (Some("delivered"), Some(paid)));
    assert_eq!(app.count("audit_log WHERE action = 'after_sale.approved'").await, 1);
    let history: Vec<String> =
        app.call("GET", &format!("/api/after-sales/{case}"), Some(&token), None).await.body["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["to_status"].as_str().unwrap().to_owned())
            .collect();
    assert_eq!(history, ["requested", "rejected", "disputed", "approved", "returning", "refunded"]);

    // Nothing is left to return.
    let reply = request(&app, &token, &no, json!({"kind": "return", "reason": "again"})).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "exceeds_refundable"));
}

#[actix_web::test]
async fn only_the_shopper_their_shop_and_operators_reach_a_request() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "erin", "Erin Tees", 5).await;
    let other = shop_with_stock(&app, "fay", "Fay Frames", 5).await;
    let (token, address) = shopper(&app, "gus").await;
    let (stranger, _) = shopper(&app, "hal").await;
    let no = paid_order(&app, &token, address, shop.skus[0], 1).await;

    let reply = request(&app, &stranger, &no, json!({"kind": "refund", "reason": "not mine"})).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "another shopper's order");
    let case =
        case_no(&request(&app, &token, &no, json!({"kind": "refund", "reason": "changed my mind"})).await);
    let reply = app.call("GET", &format!("/api/after-sales/{case}"), Some(&stranger), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = app
        .call("POST", &format!("/api/after-sales/{case}/withdraw"), Some(&stranger), Some(json!({})))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // Another shop's owner, through their own shop's path or ours.
    let reply = merchant_step(&app, &other, &case, "approve", "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let ours = format!("/api/merchant/shops/{}/after-sales/{case}/approve", shop.shop_id);
    let reply = app.call("POST", &ours, Some(&other.owner), Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Customer service reads orders but may not decide refunds.
    let (_, service_token) = app.member("ivy").await;
    let invite = json!({"login": "ivy", "role": "customer_service"});
    let staff = format!("/api/merchant/shops/{}/staff", shop.shop_id);
    assert_eq!(app.call("POST", &staff, Some(&shop.owner), Some(invite)).await.status, StatusCode::CREATED);
    let accept = format!("/api/shops/{}/invitation", shop.shop_id);
    assert_eq!(app.call("POST", &accept, Some(&service_token), None).await.status, StatusCode::NO_CONTENT);
    let read = format!("/api/merchant/shops/{}/after-sales/{case}", shop.shop_id);
    assert_eq!(app.call("GET", &read, Some(&service_token), None).await.status, StatusCode::OK);
    let reply = app.call("POST", &ours, Some(&service_token), Some(json!({}))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Operators step in on disputes only.
    let reply = app
        .call("POST", &format!("/api/system/after-sales/{case}/approve"), Some(&shop.admin), Some(json!({})))
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"));
    let reply =
        app.call("POST", &format!("/api/after-sales/{case}/withdraw"), Some(&token), Some(json!({}))).await;
    assert_eq!(reply.body["status"], "withdrawn");
    assert_eq!(app.count("refunds").await, 0);
}

#[actix_web::test]
async fn racing_requests_and_approvals_never_refund_more_than_was_paid() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "jan", "Jan Jackets", 5).await;
    let (token, address) = shopper(&app, "kim").await;
    let no = paid_order(&app, &token, address, shop.skus[2], 3).await;

    // Ten requests for one unit each race for three units.
    let one =
        json!({"kind": "refund", "reason": "one unit", "items": [{"sku_id": shop.skus[2], "quantity": 1}]});
    let replies = join_all((0..10).map(|_| request(&app, &token, &no, one.clone()))).await;
    let cases: Vec<String> =
        replies.iter().filter(|r| r.status == StatusCode::CREATED).map(case_no).collect();
    assert_eq!(cases.len(), 3);
    assert!(replies
        .iter()
        .filter(|r| r.status != StatusCode::CREATED)
        .all(|r| r.code() == "exceeds_refundable"));
    let amounts: i64 = replies.iter().filter_map(|r| r.body["amount_cents"].as_i64()).sum();
    assert_eq!(amounts, 3 * 1999);

    // Every approval of one request races every other's: each is paid once.
    let approvals = join_all(
        cases
            .iter()
            .flat_map(|case| (0..3).map(move |_| case))
            .map(|case| merchant_step(&app, &shop, case, "approve", "")),
    )
    .await;
    assert_eq!(approvals.iter().filter(|r| r.status == StatusCode::OK).count(), 3);
    assert!(approvals.iter().filter(|r| r.status != StatusCode::OK).all(|r| r.code() == "invalid_state"));
    assert_eq!(app.count("refunds").await, 3);
    assert_eq!(gateway_refunded(&app, &no).await, 3 * 1999);

    // Everything refunded before shipping: the order is cancelled, and its
    // stock is back exactly once.
    let now = order(&app, &token, &no).await;
    assert_eq!((now["status"].as_str(), now["refunded_cents"].as_i64()), (Some("cancelled"), Some(3 * 1999)));
    assert_eq!(stock(&app, shop.skus[2]).await, 5);
    let payments = app.call("GET", "/api/payments", Some(&token), None).await;
    assert_eq!(payments.body["items"][0]["status"], "refunded");
    let client = app.db.get().await.unwrap();
    let ledger: i64 = client
        .query_one(
            "SELECT COALESCE(sum(delta), 0)::int8 FROM inventory_movements m JOIN orders o ON o.id = m.order_id
             WHERE o.order_no = $1",
            &[&no],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ledger, 0, "reserved once, released once");
}
