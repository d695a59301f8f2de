//! Shop statistics: orders, GMV, refunds, average order value, best sellers.

use awc::http::StatusCode;
use chrono::Utc;
use serde_json::json;

use crate::order::{buy_now, order_no, shop_with_stock, shopper, spawn_with_admin};
use crate::payment::{shopper_pays, start};

#[actix_web::test]
async fn a_shop_sees_its_day_in_numbers_and_nobody_else_does() {
    let app = spawn_with_admin().await;
    let shop = shop_with_stock(&app, "ada", "Ada Audio", 10).await;
    let other = shop_with_stock(&app, "ben", "Ben Bikes", 10).await;
    let (token, address) = shopper(&app, "cleo").await;

    let pay_direct = |no: String| {
        let (app, token) = (&app, &token);
        async move { app.call("POST", &format!("/api/orders/{no}/pay"), Some(token), None).await }
    };
    let first = order_no(&buy_now(&app, &token, address, shop.skus[0], 2).await).await;
    pay_direct(first).await;
    let second = order_no(&buy_now(&app, &token, address, shop.skus[1], 1).await).await;
    pay_direct(second).await;
    order_no(&buy_now(&app, &token, address, shop.skus[2], 1).await).await; // never paid
                                                                            // Paid through the gateway, then cancelled by the merchant: refunded.
    let refunded = order_no(&buy_now(&app, &token, address, shop.skus[2], 1).await).await;
    let payment = start(&app, &token, &refunded).await.body;
    assert_eq!(shopper_pays(&app, &payment, true).await, 200);
    let cancel = format!("/api/merchant/shops/{}/orders/{refunded}/cancel", shop.shop_id);
    app.call("POST", &cancel, Some(&shop.owner), Some(json!({"reason": "damaged"}))).await;
    // Another shop's sale does not count here.
    let theirs = order_no(&buy_now(&app, &token, address, other.skus[0], 3).await).await;
    pay_direct(theirs).await;

    let today = Utc::now().date_naive();
    let path = format!("/api/merchant/shops/{}/stats?from={today}&to={today}", shop.shop_id);
    let stats = app.call("GET", &path, Some(&shop.owner), None).await;
    assert_eq!(stats.status, StatusCode::OK, "{:?}", stats.body);
    let gmv = 2 * 1999 + 2099 + 1999;
    assert_eq!(
        stats.body["totals"],
        json!({"orders": 4, "paid_orders": 3, "gmv_cents": gmv, "refunded_cents": 1999, "average_order_cents": gmv / 3})
    );
    assert_eq!(stats.body["days"].as_array().unwrap().len(), 1);
    let top: Vec<(i64, i64)> = stats.body["top_skus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["sku_id"].as_i64().unwrap(), s["units"].as_i64().unwrap()))
        .collect();
    assert_eq!(top, [(shop.skus[0], 2), (shop.skus[1], 1)], "cancelled orders are not best sellers");

    // The default range is the last 30 days, zeros included.
    let month = app
        .call("GET", &format!("/api/merchant/shops/{}/stats", shop.shop_id), Some(&shop.owner), None)
        .await;
    assert_eq!(month.body["days"].as_array().unwrap().len(), 30);
    assert_eq!(month.body["totals"]["gmv_cents"], gmv);

    let reply = app
        .call(
            "GET",
            &format!("/api/merchant/shops/{}/stats?from=2026-12-01&to=2026-11-01", shop.shop_id),
            Some(&shop.owner),
            None,
        )
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "invalid_query"));
    let reply = app
        .call(
            "GET",
            &format!("/api/merchant/shops/{}/stats?from=2020-01-01", shop.shop_id),
            Some(&shop.owner),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "more than a year");
    let path = format!("/api/merchant/shops/{}/stats?to=-262144-01-10", shop.shop_id);
    let reply = app.call("GET", &path, Some(&shop.owner), None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_REQUEST, "invalid_query"),
        "no 30 days before it"
    );
    let reply = app
        .call("GET", &format!("/api/merchant/shops/{}/stats", shop.shop_id), Some(&other.owner), None)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let (_, clerk) = app.member("dora").await;
    app.call(
        "POST",
        &format!("/api/merchant/shops/{}/staff", shop.shop_id),
        Some(&shop.owner),
        Some(json!({"login": "dora", "role": "customer_service"})),
    )
    .await;
    app.call("POST", &format!("/api/shops/{}/invitation", shop.shop_id), Some(&clerk), None).await;
    let reply =
        app.call("GET", &format!("/api/merchant/shops/{}/stats", shop.shop_id), Some(&clerk), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "customer service does not read the finances");
}
