//! Payments through the sandbox gateway: signed callbacks applied once,
//! refused forgeries and mismatches, late and double payments refunded.

use awc::http::StatusCode;
use chrono::{TimeDelta, Utc};
use serde_json::{json, Value};

use crate::helpers::{Reply, TestApp};
use crate::order::{buy_now, order_no, shop_with_stock, shopper, spawn_with_admin, wait_for_status};

pub async fn start(app: &TestApp, token: &str, no: &str) -> Reply {
    app.call("POST", &format!("/api/orders/{no}/payments"), Some(token), Some(json!({"provider": "sandbox"})))
        .await
}

/// The sandbox pay page's path of a payment (its `pay_url` without the host).
fn pay_path(payment: &Value) -> String {
    let url = payment["pay_url"].as_str().unwrap();
    url[url.find("/api/sandbox/pay/").unwrap()..].to_owned()
}

pub async fn shopper_pays(app: &TestApp, payment: &Value, pay: bool) -> u64 {
    let reply = app.call("POST", &pay_path(payment), None, Some(json!({"pay": pay}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["callback_status"].as_u64().unwrap()
}

/// Posts a callback signed with `secret`; returns the reply.
async fn callback(app: &TestApp, body: &Value, secret: &str, sent_at: i64) -> Reply {
    let text = body.to_string();
    let ts = sent_at.to_string();
    let signature = rs_cms::signature::sign(secret, &ts, text.as_bytes());
    let mut res = app
        .http
        .post(format!("{}/api/payments/callbacks/sandbox", app.address))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-Pay-Timestamp", ts))
        .insert_header(("X-Pay-Signature", signature))
        .send_body(text)
        .await
        .unwrap();
    let bytes = res.body().await.unwrap();
    Reply {
        status: res.status(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        headers: res.headers().clone(),
    }
}

async fn payment(app: &TestApp, token: &str, payment_no: &str) -> Value {
    app.call("GET", &format!("/api/payments/{payment_no}"), Some(token), None).await.body
}

async fn gateway_row(app: &TestApp, provider_payment_id: &str) -> (String, i64) {
    let client = app.db.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT txn_id, refunded_cents FROM sandbox_gateway_payments WHERE provider_payment_id = $1",
            &[&provider_payment_id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

fn provider_id(payment: &Value) -> String {
    pay_path(payment).rsplit('/').next().unwrap().to_owned()
}

#[actix_web::test]
async fn a_sandbox_payment_pays_the_order_once_however_often_its_callback_comes() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "alice", "Alice Apparel", 5).await;
    let (token, address) = shopper(&app, "bob").await;
    let no = order_no(&buy_now(&app, &token, address, shop.skus[0], 2).await).await;

    let started = start(&app, &token, &no).await;
    assert_eq!(started.status, StatusCode::CREATED, "{:?}", started.body);
    assert_eq!(started.body["status"], "pending");
    assert_eq!(started.body["amount_cents"], 2 * 1999);
    assert!(started.body["pay_url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
    let payment_no = started.body["payment_no"].as_str().unwrap().to_owned();

    assert_eq!(shopper_pays(&app, &started.body, true).await, 200);
    let paid = payment(&app, &token, &payment_no).await;
    assert_eq!(paid["status"], "succeeded");
    let kinds: Vec<&str> =
        paid["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "succeeded"]);
    assert_eq!(
        app.call("GET", &format!("/api/orders/{no}"), Some(&token), None).await.body["status"],
        "paid"
    );

    // The gateway redelivers, and someone replays the signed callback: nothing changes.
    assert_eq!(shopper_pays(&app, &started.body, true).await, 200);
    let (txn_id, _) = gateway_row(&app, &provider_id(&started.body)).await;
    let body = json!({"provider_payment_id": provider_id(&started.body), "txn_id": txn_id, "outcome": "succeeded",
        "amount_cents": 2 * 1999, "currency": "CNY", "occurred_at": Utc::now()});
    let secret = app.settings.payments.sandbox_secret.clone();
    let reply = callback(&app, &body, &secret, Utc::now().timestamp()).await;
    assert_eq!((reply.status, reply.body["effect"].as_str()), (StatusCode::OK, Some("duplicate")));
    assert_eq!(payment(&app, &token, &payment_no).await["events"].as_array().unwrap().len(), 2);
    let history =
        app.call("GET", &format!("/api/orders/{no}"), Some(&token), None).await.body["history"].clone();
    assert_eq!(history.as_array().unwrap().iter().filter(|h| h["to_status"] == "paid").count(), 1);
    assert_eq!(app.count("refunds").await, 0);

    // A second charge of the settled payment is refunded once, however
    // often the gateway redelivers it.
    let mut twice = body.clone();
    twice["txn_id"] = json!("second-charge");
    let reply = callback(&app, &twice, &secret, Utc::now().timestamp()).await;
    assert_eq!((reply.status, reply.body["effect"].as_str()), (StatusCode::OK, Some("refunded")));
    let reply = callback(&app, &twice, &secret, Utc::now().timestamp()).await;
    assert_eq!((reply.status, reply.body["effect"].as_str()), (StatusCode::OK, Some("duplicate")));
    assert_eq!(app.count("refunds").await, 1);
}

#[actix_web::test]
async fn forged_stale_and_mismatched_callbacks_change_nothing() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "carol", "Carol Cases", 5).await;
    let (token, address) = shopper(&app, "dave").await;
    let no = order_no(&buy_now(&app, &token, address, shop.skus[0], 1).await).await;
    let started = start(&app, &token, &no).await.body;
    let body = json!({"provider_payment_id": provider_id(&started), "txn_id": "forged-1", "outcome": "succeeded",
        "amount_cents": 1999, "currency": "CNY", "occurred_at": Utc::now()});
    let secret = app.settings.payments.sandbox_secret.clone();

    let reply = callback(&app, &body, "not-the-secret", Utc::now().timestamp()).await;
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_signature"))
    );
    let reply = callback(&app, &body, &secret, Utc::now().timestamp() - 3600).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "a stale timestamp is a replay");
    let mut cheap = body.clone();
    cheap["amount_cents"] = json!(1);
    let reply = callback(&app, &cheap, &secret, Utc::now().timestamp()).await;
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("amount_mismatch"))
    );

    // The mismatched money is not applied: the attempt fails, what the gateway
    // took is owed back, and the order still waits for a proper payment.
    let now = payment(&app, &token, started["payment_no"].as_str().unwrap()).await;
    assert_eq!(now["status"], "failed");
    let kinds: Vec<&str> =
        now["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(&kinds[..4], ["created", "callback_rejected", "failed", "refund_requested"]);
    assert_eq!(app.count("refunds WHERE amount_cents = 1").await, 1);
    let status =
        app.call("GET", &format!("/api/orders/{no}"), Some(&token), None).await.body["status"].clone();
    assert_eq!(status, "pending_payment");
    let reply = callback(&app, &cheap, &secret, Utc::now().timestamp()).await;
    assert_eq!(reply.body["effect"], "duplicate", "the gateway's retry changes nothing");
    let metrics = app.call_raw("GET", "/metrics", None, "text/plain", "").await;
    assert_eq!(metrics.status, StatusCode::OK);
}

#[actix_web::test]
async fn money_for_an_expired_or_already_paid_order_is_refunded_and_never_resurrects_it() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "erin", "Erin Tees", 5).await;
    let (token, address) = shopper(&app, "frank").await;

    // Two attempts on one order, both paid: the second is refunded.
    let no = order_no(&buy_now(&app, &token, address, shop.skus[0], 1).await).await;
    let first = start(&app, &token, &no).await.body;
    let second = start(&app, &token, &no).await.body;
    assert_eq!(shopper_pays(&app, &first, true).await, 200);
    assert_eq!(shopper_pays(&app, &second, true).await, 200);
    let refunded = payment(&app, &token, second["payment_no"].as_str().unwrap()).await;
    assert_eq!(refunded["status"], "refunded", "{refunded:?}");
    let kinds: Vec<&str> =
        refunded["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "succeeded", "refund_requested", "refunded"]);
    assert_eq!(gateway_row(&app, &provider_id(&second)).await.1, 1999, "the gateway sent the money back");

    // A payment that lands after the window: recorded, refunded, order stays cancelled.
    let late = order_no(&buy_now(&app, &token, address, shop.skus[1], 1).await).await;
    let attempt = start(&app, &token, &late).await.body;
    let clock = app.state.as_ref().unwrap().clock.clone();
    clock.advance(TimeDelta::seconds(app.settings.orders.payment_window_secs as i64 + 1));
    wait_for_status(&app, &token, &late, "cancelled").await;
    assert_eq!(shopper_pays(&app, &attempt, true).await, 200);
    assert_eq!(payment(&app, &token, attempt["payment_no"].as_str().unwrap()).await["status"], "refunded");
    assert_eq!(
        app.call("GET", &format!("/api/orders/{late}"), Some(&token), None).await.body["status"],
        "cancelled"
    );
    assert_eq!(app.count("refunds WHERE status = 'succeeded'").await, 2);
    // A new attempt on the cancelled order is refused up front.
    let reply = start(&app, &token, &late).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "order_cancelled"));

    // A paid order the merchant cancels gets its money back through the gateway.
    let cancelled = order_no(&buy_now(&app, &token, address, shop.skus[2], 1).await).await;
    let paid = start(&app, &token, &cancelled).await.body;
    assert_eq!(shopper_pays(&app, &paid, true).await, 200);
    let path = format!("/api/merchant/shops/{}/orders/{cancelled}/cancel", shop.shop_id);
    let reply = app
        .call("POST", &path, Some(&shop.owner), Some(json!({"reason": "out of stock in the warehouse"})))
        .await;
    assert_eq!(reply.body["status"], "cancelled", "{:?}", reply.body);
    assert_eq!(payment(&app, &token, paid["payment_no"].as_str().unwrap()).await["status"], "refunded");
    assert_eq!(gateway_row(&app, &provider_id(&paid)).await.1, 1999);
    assert_eq!(app.count("payment_exceptions").await, 0, "gateway money goes back through the gateway");
}

#[actix_web::test]
async fn a_declined_payment_leaves_the_order_waiting_and_others_cannot_touch_it() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "grace", "Grace Goods", 5).await;
    let (token, address) = shopper(&app, "heidi").await;
    let (stranger, _) = shopper(&app, "ivan").await;
    let no = order_no(&buy_now(&app, &token, address, shop.skus[2], 1).await).await;

    let declined = start(&app, &token, &no).await.body;
    assert_eq!(shopper_pays(&app, &declined, false).await, 200);
    let payment_no = declined["payment_no"].as_str().unwrap();
    assert_eq!(payment(&app, &token, payment_no).await["status"], "failed");
    assert_eq!(
        app.call("GET", &format!("/api/orders/{no}"), Some(&token), None).await.body["status"],
        "pending_payment"
    );
    let retry = start(&app, &token, &no).await.body;
    assert_eq!(shopper_pays(&app, &retry, true).await, 200);
    assert_eq!(
        app.call("GET", &format!("/api/orders/{no}"), Some(&token), None).await.body["status"],
        "paid"
    );

    let reply = app
        .call(
            "POST",
            &format!("/api/orders/{no}/payments"),
            Some(&token),
            Some(json!({"provider": "alipay"})),
        )
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "provider_unavailable"));
    assert_eq!(start(&app, &stranger, &no).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.call("GET", &format!("/api/payments/{payment_no}"), Some(&stranger), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.call("GET", "/api/payments", Some(&token), None).await.body["total"], 2);
    assert_eq!(app.call("GET", "/api/payments", Some(&stranger), None).await.body["total"], 0);
    assert_eq!(
        app.call("GET", "/api/system/payments", Some(&token), None).await.status,
        StatusCode::FORBIDDEN
    );
    let all = app.call("GET", "/api/system/payments?status=succeeded", Some(&shop.admin), None).await;
    assert_eq!(all.body["total"], 1);
    let detail =
        app.call("GET", &format!("/api/system/payments/{payment_no}"), Some(&shop.admin), None).await;
    assert_eq!(detail.body["events"][1]["kind"], "failed");
}

#[actix_web::test]
async fn flash_sale_orders_pay_through_the_same_gateway() {
    let app = spawn_with_admin().await;
    let admin = app.login("root").await;
    let event = crate::seckill::create_event(&app, &admin, crate::seckill::event_body(5, 1, json!({}))).await;
    let (_, token) = app.member("judy").await;
    let reply = app
        .call(
            "POST",
            &format!("/api/seckill/events/{event}/orders"),
            Some(&token),
            Some(json!({"quantity": 1})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let no = reply.body["order_no"].as_str().unwrap().to_owned();
    let started = start(&app, &token, &no).await;
    assert_eq!(started.status, StatusCode::CREATED, "{:?}", started.body);
    assert_eq!(shopper_pays(&app, &started.body, true).await, 200);
    assert_eq!(
        app.call("GET", &format!("/api/orders/{no}"), Some(&token), None).await.body["status"],
        "paid"
    );
}

#[actix_web::test]
async fn paying_from_a_saved_account_needs_its_payment_password() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "kim", "Kim Kites", 5).await;
    let (token, address) = shopper(&app, "leo").await;
    let save = |provider: &str, number: &str| json!({"provider": provider, "holder_name": "Leo", "account_number": number, "payment_password": "123456"});
    let card = app
        .call("POST", "/api/me/pay-accounts", Some(&token), Some(save("sandbox", "4242 4242 4242 4242")))
        .await;
    assert_eq!(card.status, StatusCode::CREATED, "{:?}", card.body);
    let card_id = card.body["id"].as_i64().unwrap();
    let alipay =
        app.call("POST", "/api/me/pay-accounts", Some(&token), Some(save("alipay", "13800000000"))).await;
    let alipay_id = alipay.body["id"].as_i64().unwrap();
    let no = order_no(&buy_now(&app, &token, address, shop.skus[0], 1).await).await;
    let path = format!("/api/orders/{no}/payments");
    let pay = |account: i64, pin: &str| json!({"provider": "sandbox", "pay_account_id": account, "payment_password": pin});

    let reply = app.call("POST", &path, Some(&token), Some(pay(card_id, "000000"))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "wrong_password"));
    let reply = app.call("POST", &path, Some(&token), Some(pay(alipay_id, "123456"))).await;
    assert_eq!(reply.body["details"][0], json!({"field": "pay_account_id", "problem": "other_provider"}));
    let (stranger, _) = shopper(&app, "mia").await;
    let stranger_order =
        order_no(&buy_now(&app, &stranger, address_of(&app, &stranger).await, shop.skus[1], 1).await).await;
    let reply = app
        .call(
            "POST",
            &format!("/api/orders/{stranger_order}/payments"),
            Some(&stranger),
            Some(pay(card_id, "123456")),
        )
        .await;
    assert_eq!(reply.body["details"][0], json!({"field": "pay_account_id", "problem": "not_found"}));
    let reply = app
        .call("POST", &path, Some(&token), Some(json!({"provider": "sandbox", "pay_account_id": card_id})))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("payments").await, 0);

    let reply = app.call("POST", &path, Some(&token), Some(pay(card_id, "123456"))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(shopper_pays(&app, &reply.body, true).await, 200);
}

async fn address_of(app: &TestApp, token: &str) -> i64 {
    app.call("GET", "/api/addresses", Some(token), None).await.body[0]["id"].as_i64().unwrap()
}

#[actix_web::test]
async fn a_refund_left_unsent_is_sent_by_the_worker_exactly_once() {
    let (mut settings, db_name) = crate::helpers::fresh_settings().await;
    settings.payments.refund_retry_secs = 1;
    let app = crate::helpers::spawn_app_with(settings, db_name).await;
    app.admin("root").await;
    let shop = shop_with_stock(&app, "nina", "Nina Notes", 5).await;
    let (token, address) = shopper(&app, "omar").await;
    let no = order_no(&buy_now(&app, &token, address, shop.skus[0], 1).await).await;
    let paid = start(&app, &token, &no).await.body;
    assert_eq!(shopper_pays(&app, &paid, true).await, 200);

    // A node decided a refund and stopped before sending it.
    let client = app.db.get().await.unwrap();
    let refund_id: i64 = client
        .query_one(
            "INSERT INTO refunds (payment_id, amount_cents, reason, status, updated_at)
             SELECT id, amount_cents, 'test: node stopped', 'pending', now() - interval '1 minute'
             FROM payments WHERE payment_no = $1 RETURNING id",
            &[&paid["payment_no"].as_str().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    let mut status = String::new();
    for _ in 0..100 {
        status =
            client.query_one("SELECT status FROM refunds WHERE id = $1", &[&refund_id]).await.unwrap().get(0);
        if status == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "succeeded");
    assert_eq!(payment(&app, &token, paid["payment_no"].as_str().unwrap()).await["status"], "refunded");
    // Sending it again (a second worker, a retry) refunds nothing more.
    rs_cms::payment::service::send_refund(app.state.as_ref().unwrap(), refund_id).await.unwrap();
    client.execute("UPDATE refunds SET status = 'failed' WHERE id = $1", &[&refund_id]).await.unwrap();
    rs_cms::payment::service::send_refund(app.state.as_ref().unwrap(), refund_id).await.unwrap();
    assert_eq!(gateway_row(&app, &provider_id(&paid)).await.1, 1999, "the gateway refunded once");
}
