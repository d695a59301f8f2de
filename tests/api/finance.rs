//! The money ledgers: after a run of mixed orders, refunds, returns, late
//! payments and withdrawals the books balance, and every account agrees
//! with the records it summarises (the gateway's books, the orders, the
//! refunds); shoppers' bills and shops' balances read from them.

use awc::http::StatusCode;
use serde_json::json;

use crate::after_sale::{case_no, deliver, merchant_step, paid_order, request};
use crate::helpers::TestApp;
use crate::order::{buy_now, order_no, shop_with_stock, shopper, spawn_with_admin, wait_for_status};
use crate::payment::{shopper_pays, start};

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    let client = app.db.get().await.unwrap();
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn account(app: &TestApp, name: &str) -> i64 {
    scalar(
        app,
        &format!("SELECT COALESCE(sum(amount_cents), 0)::int8 FROM journal_lines WHERE account = '{name}'"),
    )
    .await
}

#[actix_web::test]
async fn the_books_balance_after_orders_refunds_returns_late_payments_and_withdrawals() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "alice", "Alice Apparel", 20).await;
    let (token, address) = shopper(&app, "bob").await;
    let sku = shop.skus[0]; // 1999 a unit
    let confirm = |no: &str| format!("/api/orders/{no}/confirm-receipt");

    // A: one unit, delivered and confirmed: completed.
    let a = paid_order(&app, &token, address, sku, 1).await;
    deliver(&app, &shop, &token, &a, "T-A").await;
    assert_eq!(app.call("POST", &confirm(&a), Some(&token), None).await.body["status"], "completed");
    // B: two units, one refunded before shipping, then completed.
    let b = paid_order(&app, &token, address, sku, 2).await;
    let one = json!({"kind": "refund", "reason": "one less", "items": [{"sku_id": sku, "quantity": 1}]});
    let case = case_no(&request(&app, &token, &b, one).await);
    assert_eq!(merchant_step(&app, &shop, &case, "approve", "").await.body["status"], "refunded");
    deliver(&app, &shop, &token, &b, "T-B").await;
    app.call("POST", &confirm(&b), Some(&token), None).await;
    // C: paid, then cancelled by the merchant: refunded in full.
    let c = paid_order(&app, &token, address, sku, 1).await;
    let cancel = format!("/api/merchant/shops/{}/orders/{c}/cancel", shop.shop_id);
    app.call("POST", &cancel, Some(&shop.owner), Some(json!({"reason": "stock count was wrong"}))).await;
    // D: two units completed, then one returned: the shop gives back its
    // share and the platform its commission on it.
    let d = paid_order(&app, &token, address, sku, 2).await;
    deliver(&app, &shop, &token, &d, "T-D").await;
    app.call("POST", &confirm(&d), Some(&token), None).await;
    let one = json!({"kind": "return", "reason": "too small", "items": [{"sku_id": sku, "quantity": 1}]});
    let case = case_no(&request(&app, &token, &d, one).await);
    merchant_step(&app, &shop, &case, "approve", "").await;
    let back = json!({"carrier": "SF", "tracking_no": "R-D"});
    app.call("POST", &format!("/api/after-sales/{case}/return-shipment"), Some(&token), Some(back)).await;
    assert_eq!(merchant_step(&app, &shop, &case, "receive", "").await.body["status"], "refunded");
    // E: paid, still in escrow.
    let _e = paid_order(&app, &token, address, sku, 1).await;
    // F: cancelled by the shopper, then paid late: unapplied and refunded.
    let f = order_no(&buy_now(&app, &token, address, sku, 1).await).await;
    let late = start(&app, &token, &f).await.body;
    app.call("POST", &format!("/api/orders/{f}/cancel"), Some(&token), None).await;
    wait_for_status(&app, &token, &f, "cancelled").await;
    assert_eq!(shopper_pays(&app, &late, true).await, 200);

    // Every entry balances, and so does the whole journal.
    let unbalanced = scalar(
        &app,
        "SELECT count(*) FROM (SELECT entry_id FROM journal_lines GROUP BY entry_id HAVING sum(amount_cents) <> 0) u",
    )
    .await;
    assert_eq!(unbalanced, 0);
    assert_eq!(scalar(&app, "SELECT COALESCE(sum(amount_cents), 0)::int8 FROM journal_lines").await, 0);

    // Cash is what the gateway holds for us.
    let gateway = "SELECT (COALESCE(sum(amount_cents) FILTER (WHERE status = 'paid'), 0)
                           - COALESCE(sum(refunded_cents), 0))::int8 FROM sandbox_gateway_payments";
    assert_eq!(account(&app, "cash").await, scalar(&app, gateway).await);
    // Escrow holds exactly the paid, unrefunded money of open orders (E).
    assert_eq!(account(&app, "escrow").await, -1999);
    // Every refund was sent.
    assert_eq!(account(&app, "refunds_payable").await, 0);
    assert_eq!(scalar(&app, "SELECT count(*) FROM refunds WHERE status <> 'succeeded'").await, 0);
    // Commission: 5 % (rounded down) of each settlement, less what the
    // return gave back; A, B and D each kept one unit's worth (99).
    let kept_by_d = 3998 * 500 / 10_000 - (3998 * 500 / 10_000 - 1999 * 500 / 10_000);
    let commission = 1999 * 500 / 10_000 * 2 + kept_by_d;
    assert_eq!(account(&app, "commission").await, -commission);

    // The shop sees the same figures.
    let finance = format!("/api/merchant/shops/{}/finance", shop.shop_id);
    let balance = app.call("GET", &finance, Some(&shop.owner), None).await.body;
    let owed = 1999 + 1999 + 1999 - commission;
    assert_eq!(balance["balance_cents"], owed, "{balance:?}");
    assert_eq!(balance["in_escrow_cents"], 1999);
    let entries =
        app.call("GET", &format!("{finance}/entries?per_page=100"), Some(&shop.owner), None).await.body;
    let sum: i64 =
        entries["items"].as_array().unwrap().iter().map(|e| e["amount_cents"].as_i64().unwrap()).sum();
    assert_eq!(sum, owed);

    // Withdrawals: nothing while the orders can still be returned...
    let withdraw = format!("{finance}/withdrawals");
    let ask = |cents: i64| json!({"amount_cents": cents, "payout_account": "6222 0210 0011 2233"});
    assert_eq!(
        (balance["held_for_returns_cents"].as_i64(), balance["withdrawable_cents"].as_i64()),
        (Some(owed), Some(0))
    );
    let reply = app.call("POST", &withdraw, Some(&shop.owner), Some(ask(1))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "insufficient_balance"));
    let clock = app.state.as_ref().unwrap().clock.clone();
    clock.advance(chrono::TimeDelta::days(i64::from(app.settings.finance.return_window_days) + 1));
    let balance = app.call("GET", &finance, Some(&shop.owner), None).await.body;
    assert_eq!(balance["withdrawable_cents"], owed);
    // ...then never more than the balance, held while requested.
    let reply = app.call("POST", &withdraw, Some(&shop.owner), Some(ask(owed + 1))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "insufficient_balance"));
    let paid_out = app.call("POST", &withdraw, Some(&shop.owner), Some(ask(5_000))).await;
    assert_eq!(paid_out.status, StatusCode::CREATED, "{:?}", paid_out.body);
    assert_eq!(paid_out.body["payout_account"], "****2233");
    let reply = app.call("POST", &withdraw, Some(&shop.owner), Some(ask(owed - 5_000 + 1))).await;
    assert_eq!(reply.code(), "insufficient_balance", "the first request holds its amount");
    let refused = app.call("POST", &withdraw, Some(&shop.owner), Some(ask(owed - 5_000))).await;
    assert_eq!(refused.status, StatusCode::CREATED);

    // Operators decide, once; shops and shoppers cannot.
    let queue = app.call("GET", "/api/system/withdrawals?status=requested", Some(&shop.admin), None).await;
    assert_eq!(queue.body["total"], 2);
    let pay = format!("/api/system/withdrawals/{}/pay", paid_out.body["id"]);
    assert_eq!(
        app.call("POST", &pay, Some(&shop.owner), Some(json!({}))).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.call("POST", &pay, Some(&shop.admin), Some(json!({}))).await.body["status"], "paid");
    assert_eq!(app.call("POST", &pay, Some(&shop.admin), Some(json!({}))).await.code(), "invalid_state");
    let reject = format!("/api/system/withdrawals/{}/reject", refused.body["id"]);
    assert_eq!(
        app.call("POST", &reject, Some(&shop.admin), Some(json!({}))).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let reply =
        app.call("POST", &reject, Some(&shop.admin), Some(json!({"note": "account name mismatch"}))).await;
    assert_eq!(reply.body["status"], "rejected");
    let balance = app.call("GET", &finance, Some(&shop.owner), None).await.body;
    assert_eq!(
        (balance["balance_cents"].as_i64(), balance["withdrawing_cents"].as_i64()),
        (Some(owed - 5_000), Some(0))
    );
    assert_eq!(account(&app, "cash").await, scalar(&app, gateway).await - 5_000, "the payout left our cash");
    assert_eq!(scalar(&app, "SELECT COALESCE(sum(amount_cents), 0)::int8 FROM journal_lines").await, 0);
    let trial = app.call("GET", "/api/system/finance/ledger", Some(&shop.admin), None).await.body;
    let total: i64 = trial.as_array().unwrap().iter().map(|a| a["balance_cents"].as_i64().unwrap()).sum();
    assert_eq!(total, 0);
    assert_eq!(app.count("audit_log WHERE action IN ('withdrawal.paid', 'withdrawal.rejected')").await, 2);

    // The shopper's bill: every payment and refund of the month they were
    // made in (the clock moved on past the return window, maybe into the
    // next month).
    let month: String = app
        .db
        .get()
        .await
        .unwrap()
        .query_one("SELECT to_char(min(created_at) AT TIME ZONE 'UTC', 'YYYY-MM') FROM payments", &[])
        .await
        .unwrap()
        .get(0);
    let bill = app.call("GET", &format!("/api/me/bills?month={month}"), Some(&token), None).await.body;
    let paid = scalar(
        &app,
        "SELECT sum(amount_cents)::int8 FROM payments WHERE status IN ('succeeded', 'refunded')",
    )
    .await;
    let refunded =
        scalar(&app, "SELECT sum(amount_cents)::int8 FROM refunds WHERE status = 'succeeded'").await;
    assert_eq!((bill["paid_cents"].as_i64(), bill["refunded_cents"].as_i64()), (Some(paid), Some(refunded)));
    assert_eq!(bill["net_cents"], refunded - paid);
    assert_eq!(bill["movements"]["total"], bill["entries"]);
    let months = app.call("GET", "/api/me/bills/months", Some(&token), None).await.body;
    assert_eq!(months[0]["paid_cents"], paid);
    let reply = app.call("GET", "/api/me/bills?month=2026-13", Some(&token), None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "invalid_query"));
    let (_, stranger) = app.member("nobody").await;
    let empty = app.call("GET", "/api/me/bills", Some(&stranger), None).await.body;
    assert_eq!(empty["entries"], 0);
}

#[actix_web::test]
async fn only_the_owner_withdraws_and_only_finance_staff_read_the_books() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "carl", "Carl Coats", 5).await;
    let (_, manager) = app.member("mona").await;
    let staff = format!("/api/merchant/shops/{}/staff", shop.shop_id);
    let invite = json!({"login": "mona", "role": "manager"});
    assert_eq!(app.call("POST", &staff, Some(&shop.owner), Some(invite)).await.status, StatusCode::CREATED);
    let accept = format!("/api/shops/{}/invitation", shop.shop_id);
    assert_eq!(app.call("POST", &accept, Some(&manager), None).await.status, StatusCode::NO_CONTENT);

    let finance = format!("/api/merchant/shops/{}/finance", shop.shop_id);
    assert_eq!(app.call("GET", &finance, Some(&manager), None).await.status, StatusCode::OK);
    let ask = json!({"amount_cents": 1, "payout_account": "6222 0000"});
    let reply = app.call("POST", &format!("{finance}/withdrawals"), Some(&manager), Some(ask.clone())).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "managers do not hold finance.withdraw");
    let reply = app.call("POST", &format!("{finance}/withdrawals"), Some(&shop.owner), Some(ask)).await;
    assert_eq!(reply.code(), "insufficient_balance", "nothing has completed yet");
    let reply = app
        .call(
            "POST",
            &format!("{finance}/withdrawals"),
            Some(&shop.owner),
            Some(json!({"amount_cents": 0, "payout_account": ""})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, stranger) = app.member("sam").await;
    assert_eq!(app.call("GET", &finance, Some(&stranger), None).await.status, StatusCode::FORBIDDEN);
    let other = shop_with_stock(&app, "dina", "Dina Dresses", 5).await;
    assert_eq!(app.call("GET", &finance, Some(&other.owner), None).await.status, StatusCode::FORBIDDEN);
    for path in ["/api/system/withdrawals", "/api/system/finance/ledger"] {
        assert_eq!(app.call("GET", path, Some(&shop.owner), None).await.status, StatusCode::FORBIDDEN);
    }
}

#[actix_web::test]
async fn money_of_an_order_with_an_open_return_stays_held_after_the_return_window() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "carol", "Carol Ceramics", 20).await;
    let (token, address) = shopper(&app, "dan").await;
    let sku = shop.skus[0];
    let (returned, kept) =
        (paid_order(&app, &token, address, sku, 1).await, paid_order(&app, &token, address, sku, 1).await);
    for (no, tracking) in [(&returned, "T-1"), (&kept, "T-2")] {
        deliver(&app, &shop, &token, no, tracking).await;
        let reply = app.call("POST", &format!("/api/orders/{no}/confirm-receipt"), Some(&token), None).await;
        assert_eq!(reply.body["status"], "completed");
    }
    // A return opened in the window, still open when it closes.
    let back = json!({"kind": "return", "reason": "cracked", "items": [{"sku_id": sku, "quantity": 1}]});
    let case = case_no(&request(&app, &token, &returned, back).await);
    merchant_step(&app, &shop, &case, "approve", "").await;
    let clock = app.state.as_ref().unwrap().clock.clone();
    clock.advance(chrono::TimeDelta::days(i64::from(app.settings.finance.return_window_days) + 1));

    let finance = format!("/api/merchant/shops/{}/finance", shop.shop_id);
    let balance = app.call("GET", &finance, Some(&shop.owner), None).await.body;
    // Both orders are settled (less commission); the returned one's 1999
    // is held, the other one's share may go.
    let settled = balance["balance_cents"].as_i64().unwrap();
    assert!(settled > 1999, "{balance:?}");
    assert_eq!(
        (balance["held_for_returns_cents"].as_i64(), balance["withdrawable_cents"].as_i64()),
        (Some(1999), Some(settled - 1999)),
        "{balance:?}"
    );
}
