//! Carts: changes through the shopper's cart actor, racing tabs, limits,
//! members-only products, lines flagged (never dropped) when they cannot be
//! bought, eviction and rebuild from Postgres, and privacy.

use std::time::Duration;

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{fresh_settings, spawn_app, spawn_app_with, Reply, TestApp};
use crate::product::{category, listed_product, tshirt};

/// A listed T-shirt in an approved shop: its ids and the owner's token.
struct Listing {
    shop_id: i64,
    product_id: i64,
    owner: String,
    /// Red M (1999), red L (2099), blue M (1999).
    skus: [i64; 3],
}

/// Opens shop `name` for `owner` and lists a T-shirt (`body` edits it first).
async fn listing(
    app: &TestApp,
    admin: &str,
    owner: &str,
    name: &str,
    edit: impl FnOnce(&mut Value),
) -> Listing {
    let (shop_id, owner) = app.open_shop(admin, owner, name).await;
    let mut body = tshirt(category(app, admin, &format!("{name} goods")).await);
    edit(&mut body);
    let product = listed_product(app, admin, shop_id, &owner, body).await;
    let sku = |i: usize| product["skus"][i]["id"].as_i64().unwrap();
    Listing { shop_id, product_id: product["id"].as_i64().unwrap(), owner, skus: [sku(0), sku(1), sku(2)] }
}

async fn restock(app: &TestApp, listing: &Listing, sku_id: i64, delta: i32) {
    let path = format!("/api/merchant/shops/{}/skus/{sku_id}/stock", listing.shop_id);
    let reply = app
        .call("POST", &path, Some(&listing.owner), Some(json!({"delta": delta, "reason": "restock"})))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

async fn add(app: &TestApp, token: &str, sku_id: i64, quantity: i64) -> Reply {
    app.call("POST", "/api/cart/lines", Some(token), Some(json!({"sku_id": sku_id, "quantity": quantity})))
        .await
}

async fn cart(app: &TestApp, token: &str) -> Value {
    let reply = app.call("GET", "/api/cart", Some(token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

/// The line of `sku_id` in a cart body.
fn line(cart: &Value, sku_id: i64) -> Value {
    cart["shops"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|shop| shop["lines"].as_array().unwrap())
        .find(|line| line["sku_id"] == sku_id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Stored quantity of each of a user's cart rows (tombstones included).
async fn stored(app: &TestApp, user_id: i64, sku_id: i64) -> Option<i32> {
    let client = app.db.get().await.unwrap();
    client
        .query_opt("SELECT quantity FROM cart_lines WHERE user_id = $1 AND sku_id = $2", &[&user_id, &sku_id])
        .await
        .unwrap()
        .map(|row| row.get(0))
}

#[actix_web::test]
async fn a_shopper_adds_updates_selects_removes_and_clears() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let shop = listing(&app, &admin, "alice", "Alice Apparel", |_| {}).await;
    let [red_m, red_l, blue_m] = shop.skus;
    restock(&app, &shop, red_m, 10).await;
    let (user_id, token) = app.member("bob").await;

    let reply = add(&app, &token, red_m, 2).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let added = add(&app, &token, red_m, 3).await.body;
    let red = line(&added, red_m);
    assert_eq!(
        (&red["quantity"], &red["unit_price_cents"], &red["added_price_cents"], &red["price_changed"]),
        (&json!(5), &json!(1999), &json!(1999), &json!(false))
    );
    assert_eq!(
        (&red["availability"], &red["line_total_cents"], &red["stock"]),
        (&json!("available"), &json!(9995), &json!(10))
    );
    assert_eq!(
        (&red["product_id"], &red["product_name"]),
        (&json!(shop.product_id), &json!("Cotton T-shirt"))
    );
    assert_eq!(red["spec_values"], json!({"colour": "red", "size": "M"}));
    assert_eq!(red["image"], "https://img.example.com/tee.jpg");

    // Out of stock: shown, flagged, left out of the totals.
    let body = add(&app, &token, red_l, 1).await.body;
    assert_eq!(line(&body, red_l)["availability"], "insufficient_stock");
    assert_eq!(
        (&body["line_count"], &body["selected_quantity"], &body["selected_total_cents"]),
        (&json!(2), &json!(5), &json!(9995))
    );
    assert_eq!(
        (&body["shops"][0]["shop_id"], &body["shops"][0]["subtotal_cents"]),
        (&json!(shop.shop_id), &json!(9995))
    );
    assert_eq!(body["shops"][0]["lines"][0]["sku_id"], red_l, "newest first");

    let put = |sku: i64| format!("/api/cart/lines/{sku}");
    let body = app.call("PUT", &put(red_m), Some(&token), Some(json!({"quantity": 4}))).await.body;
    assert_eq!(line(&body, red_m)["quantity"], 4);
    let body = app.call("PUT", &put(red_m), Some(&token), Some(json!({"selected": false}))).await.body;
    assert_eq!(
        (line(&body, red_m)["selected"].clone(), body["selected_total_cents"].clone()),
        (json!(false), json!(0))
    );
    let body =
        app.call("POST", "/api/cart/selection", Some(&token), Some(json!({"selected": true}))).await.body;
    assert_eq!(body["selected_total_cents"], 4 * 1999);
    let selection = json!({"sku_ids": [red_l], "selected": false});
    let body = app.call("POST", "/api/cart/selection", Some(&token), Some(selection)).await.body;
    assert_eq!(
        (line(&body, red_l)["selected"].clone(), line(&body, red_m)["selected"].clone()),
        (json!(false), json!(true))
    );

    // Refusals.
    for (method, path, body, status, code) in [
        ("PUT", put(red_m), json!({"quantity": 0}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PUT", put(red_m), json!({}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("PUT", put(blue_m), json!({"quantity": 1}), StatusCode::NOT_FOUND, "not_found"),
        ("PUT", put(red_m), json!({"quantity": -1}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (
            "POST",
            "/api/cart/lines".into(),
            json!({"sku_id": red_m, "quantity": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/api/cart/lines".into(),
            json!({"sku_id": 999_999, "quantity": 1}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/api/cart/selection".into(),
            json!({"sku_ids": [blue_m], "selected": false}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let reply = app.call(method, &path, Some(&token), Some(body.clone())).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{method} {path} {body}");
    }

    let body = app.call("DELETE", &put(red_l), Some(&token), None).await.body;
    assert_eq!((line(&body, red_l), body["line_count"].clone()), (Value::Null, json!(1)));
    assert_eq!(app.call("DELETE", &put(red_l), Some(&token), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(stored(&app, user_id, red_l).await, Some(0), "a removal is a tombstone");

    let body = app.call("DELETE", "/api/cart", Some(&token), None).await.body;
    assert_eq!(
        body,
        json!({"shops": [], "line_count": 0, "selected_quantity": 0, "selected_total_cents": 0})
    );
    assert_eq!(app.count("cart_lines WHERE quantity > 0").await, 0);
    // A removed line comes back fresh.
    let body = add(&app, &token, red_l, 1).await.body;
    assert_eq!(
        (line(&body, red_l)["quantity"].clone(), line(&body, red_l)["selected"].clone()),
        (json!(1), json!(true))
    );
    assert_eq!(stored(&app, user_id, red_l).await, Some(1));
}

#[actix_web::test]
async fn racing_adds_from_two_sessions_end_at_the_exact_quantity() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let shop = listing(&app, &admin, "carol", "Carol Cotton", |_| {}).await;
    let [red_m, _, blue_m] = shop.skus;
    let (user_id, first_tab) = app.member("dave").await;
    let second_tab = app.login("dave").await;

    // 50 adds at once from one session, then 50 at once from two (within
    // the mailbox bound of 64, so none is shed).
    for (sku, tabs) in [(blue_m, [&first_tab, &first_tab]), (red_m, [&first_tab, &second_tab])] {
        let calls = (0..50).map(|i| add(&app, tabs[i % 2], sku, 1));
        let replies = futures_util::future::join_all(calls).await;
        assert!(
            replies.iter().all(|r| r.status == StatusCode::OK),
            "{:?}",
            replies.iter().find(|r| r.status != StatusCode::OK)
        );
    }

    let body = cart(&app, &second_tab).await;
    assert_eq!(
        (line(&body, red_m)["quantity"].clone(), line(&body, blue_m)["quantity"].clone()),
        (json!(50), json!(50))
    );
    assert_eq!(
        (stored(&app, user_id, red_m).await, stored(&app, user_id, blue_m).await),
        (Some(50), Some(50))
    );
}

#[actix_web::test]
async fn limits_are_refused_and_write_nothing() {
    let (mut settings, db_name) = fresh_settings().await;
    settings.cart.max_lines = 2;
    settings.cart.max_line_quantity = 5;
    let app = spawn_app_with(settings, db_name).await;
    let (_, admin) = app.admin("root").await;
    let shop = listing(&app, &admin, "erin", "Erin Essentials", |_| {}).await;
    let [red_m, red_l, blue_m] = shop.skus;
    let (user_id, token) = app.member("frank").await;

    assert_eq!(add(&app, &token, red_m, 5).await.status, StatusCode::OK);
    let reply = add(&app, &token, red_m, 1).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "line_quantity_limit"));
    assert_eq!(add(&app, &token, red_l, 1).await.status, StatusCode::OK);
    let reply = add(&app, &token, blue_m, 1).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "cart_full"));
    let reply = app
        .call("PUT", &format!("/api/cart/lines/{red_l}"), Some(&token), Some(json!({"quantity": 6})))
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "line_quantity_limit"));

    assert_eq!(
        (
            stored(&app, user_id, red_m).await,
            stored(&app, user_id, red_l).await,
            stored(&app, user_id, blue_m).await
        ),
        (Some(5), Some(1), None)
    );
    let body = cart(&app, &token).await;
    assert_eq!(
        (line(&body, red_m)["quantity"].clone(), line(&body, red_l)["quantity"].clone()),
        (json!(5), json!(1))
    );
}

#[actix_web::test]
async fn members_only_products_need_a_verified_email() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let shop =
        listing(&app, &admin, "grace", "Grace Goods", |body| body["audience"] = json!("members_only")).await;
    let (user_id, token) = app.member("heidi").await;

    let reply = add(&app, &token, shop.skus[0], 1).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "members_only"));
    assert_eq!(app.count("cart_lines").await, 0);

    let mailed = app.mailed_token(user_id).await;
    let verified = app.call("POST", "/api/auth/verify-email", None, Some(json!({"token": mailed}))).await;
    assert_eq!(verified.status, StatusCode::OK);
    let reply = add(&app, &token, shop.skus[0], 1).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(stored(&app, user_id, shop.skus[0]).await, Some(1));
}

#[actix_web::test]
async fn lines_that_cannot_be_bought_are_flagged_not_dropped() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let tees = listing(&app, &admin, "ivan", "Ivan Interiors", |_| {}).await;
    let socks = listing(&app, &admin, "judy", "Judy Jersey", |body| body["name"] = json!("Socks")).await;
    let [red_m, red_l, _] = tees.skus;
    for sku in [red_m, red_l] {
        restock(&app, &tees, sku, 5).await;
    }
    restock(&app, &socks, socks.skus[0], 5).await;
    let (_, token) = app.member("ken").await;
    for sku in [red_m, red_l, socks.skus[0]] {
        assert_eq!(add(&app, &token, sku, 1).await.status, StatusCode::OK);
    }
    let body = cart(&app, &token).await;
    assert_eq!(body["shops"][0]["shop_name"], "Judy Jersey", "the shop with the newest line first");
    assert_eq!(
        (body["shops"].as_array().unwrap().len(), body["selected_total_cents"].clone()),
        (2, json!(1999 + 2099 + 1999))
    );

    // An approved revision changes red M's price and drops red L.
    let mut revision = tshirt(category(&app, &admin, "Revised").await);
    revision["skus"][0]["price_cents"] = json!(1799);
    revision["skus"][1] =
        json!({"spec_values": {"colour": "blue", "size": "L"}, "code": "TEE-BL", "price_cents": 2199});
    let product = format!("/api/merchant/shops/{}/products/{}", tees.shop_id, tees.product_id);
    let edited = app.call("PUT", &product, Some(&tees.owner), Some(revision)).await;
    let approve = format!("/api/system/products/{}/approve", tees.product_id);
    let reply =
        app.call("POST", &approve, Some(&admin), Some(json!({"revision": edited.body["revision"]}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    // The socks' shop is suspended.
    let suspend = format!("/api/system/shops/{}/suspend", socks.shop_id);
    app.call("POST", &suspend, Some(&admin), Some(json!({"reason": "audit"}))).await;

    let body = cart(&app, &token).await;
    let red = line(&body, red_m);
    assert_eq!(
        (&red["unit_price_cents"], &red["added_price_cents"], &red["price_changed"], &red["availability"]),
        (&json!(1799), &json!(1999), &json!(true), &json!("available"))
    );
    assert_eq!(line(&body, red_l)["availability"], "gone");
    assert_eq!(line(&body, socks.skus[0])["availability"], "unlisted");
    assert_eq!((body["line_count"].clone(), body["selected_total_cents"].clone()), (json!(3), json!(1799)));
    assert_eq!(add(&app, &token, red_l, 1).await.status, StatusCode::NOT_FOUND, "a gone SKU cannot be added");

    // Unlisting flags the line too; listing it again makes it available.
    let unlist = format!("{product}/unlist");
    app.call("POST", &unlist, Some(&tees.owner), None).await;
    assert_eq!(line(&cart(&app, &token).await, red_m)["availability"], "unlisted");
    assert_eq!(add(&app, &token, red_m, 1).await.status, StatusCode::NOT_FOUND);
    app.call("POST", &format!("{product}/list"), Some(&tees.owner), None).await;
    assert_eq!(line(&cart(&app, &token).await, red_m)["availability"], "available");
}

/// The `rscms_cart_actors` gauge.
async fn cart_actors(app: &TestApp) -> i64 {
    let mut res = app.http.get(format!("{}/metrics", app.address)).send().await.unwrap();
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("rscms_cart_actors "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[actix_web::test]
async fn an_idle_cart_is_evicted_and_rebuilt_from_postgres() {
    let (mut settings, db_name) = fresh_settings().await;
    settings.cart.idle_evict_secs = 1;
    let app = spawn_app_with(settings, db_name).await;
    let (_, admin) = app.admin("root").await;
    let shop = listing(&app, &admin, "leo", "Leo Linen", |_| {}).await;
    let [red_m, red_l, _] = shop.skus;
    let (user_id, token) = app.member("mia").await;
    add(&app, &token, red_m, 2).await;
    add(&app, &token, red_l, 1).await;
    app.call("DELETE", &format!("/api/cart/lines/{red_l}"), Some(&token), None).await;
    app.call("PUT", &format!("/api/cart/lines/{red_m}"), Some(&token), Some(json!({"selected": false})))
        .await;
    assert_eq!(cart_actors(&app).await, 1);

    let mut waited = Duration::ZERO;
    while cart_actors(&app).await > 0 {
        assert!(waited < Duration::from_secs(10), "the idle cart actor was never evicted");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }

    let body = cart(&app, &token).await;
    assert_eq!(cart_actors(&app).await, 1, "rebuilt on demand");
    let red = line(&body, red_m);
    assert_eq!(
        (red["quantity"].clone(), red["selected"].clone(), body["line_count"].clone()),
        (json!(2), json!(false), json!(1))
    );
    // The rebuilt actor's changes beat the rows (and tombstone) stored before.
    add(&app, &token, red_l, 3).await;
    add(&app, &token, red_m, 1).await;
    assert_eq!((stored(&app, user_id, red_m).await, stored(&app, user_id, red_l).await), (Some(3), Some(3)));
}

#[actix_web::test]
async fn a_cart_is_private_to_its_owner() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let shop = listing(&app, &admin, "nina", "Nina Knits", |_| {}).await;
    let [red_m, ..] = shop.skus;
    let (alice_id, alice) = app.member("alice").await;
    let (_, bob) = app.member("bob").await;
    add(&app, &alice, red_m, 2).await;

    assert_eq!(cart(&app, &bob).await["line_count"], 0);
    let line_path = format!("/api/cart/lines/{red_m}");
    let reply = app.call("PUT", &line_path, Some(&bob), Some(json!({"quantity": 9}))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call("DELETE", &line_path, Some(&bob), None).await.status, StatusCode::NOT_FOUND);
    app.call("DELETE", "/api/cart", Some(&bob), None).await;
    assert_eq!(line(&cart(&app, &alice).await, red_m)["quantity"], 2);
    assert_eq!(stored(&app, alice_id, red_m).await, Some(2));

    for (method, path) in [
        ("GET", "/api/cart"),
        ("DELETE", "/api/cart"),
        ("POST", "/api/cart/lines"),
        ("PUT", line_path.as_str()),
        ("DELETE", line_path.as_str()),
        ("POST", "/api/cart/selection"),
    ] {
        let reply = app.call(method, path, None, Some(json!({"sku_id": red_m, "quantity": 1}))).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{method} {path}"
        );
    }
}

#[actix_web::test]
async fn checkout_reads_selected_lines_and_removes_them_through_the_actor() {
    let app = spawn_app().await;
    let state = app.state.clone().unwrap();
    let (_, admin) = app.admin("root").await;
    let shop = listing(&app, &admin, "olga", "Olga Outfits", |_| {}).await;
    let [red_m, red_l, blue_m] = shop.skus;
    let (user_id, token) = app.member("paul").await;
    for (sku, quantity) in [(red_m, 2), (red_l, 1), (blue_m, 4)] {
        add(&app, &token, sku, quantity).await;
    }
    app.call("PUT", &format!("/api/cart/lines/{red_l}"), Some(&token), Some(json!({"selected": false})))
        .await;

    let mut selected = rs_cms::cart::service::selected_lines(&state, user_id).await.unwrap();
    selected.sort();
    let mut expected = vec![(red_m, 2), (blue_m, 4)];
    expected.sort();
    assert_eq!(selected, expected);

    // Bought units leave their lines; what another tab added meanwhile stays,
    // and a line not in the cart is ignored.
    add(&app, &token, blue_m, 1).await;
    rs_cms::cart::service::take_bought(&state, user_id, &[(red_m, 2), (blue_m, 4), (999_999, 1)])
        .await
        .unwrap();
    assert_eq!((stored(&app, user_id, red_m).await, stored(&app, user_id, blue_m).await), (Some(0), Some(1)));
    app.call("DELETE", &format!("/api/cart/lines/{blue_m}"), Some(&token), None).await;
    rs_cms::cart::service::take_bought(&state, user_id, &[(red_m, 1)]).await.unwrap();
    let body = cart(&app, &token).await;
    assert_eq!((body["line_count"].clone(), line(&body, red_l)["quantity"].clone()), (json!(1), json!(1)));
    assert!(rs_cms::cart::service::selected_lines(&state, user_id).await.unwrap().is_empty());
}
