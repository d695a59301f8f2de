//! Products: validation, the review lifecycle (including revisions of
//! listed products), ownership rules, and the inventory ledger under races.

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// A category to file products under, created by operator `admin`.
pub async fn category(app: &TestApp, admin: &str, name: &str) -> i64 {
    let reply = app.call("POST", "/api/system/categories", Some(admin), Some(json!({"name": name}))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_i64().unwrap()
}

/// A T-shirt in two colours and two sizes (three of the four combinations).
pub fn tshirt(category_id: i64) -> Value {
    json!({
        "name": "Cotton T-shirt",
        "description": "Soft and plain",
        "category_id": category_id,
        "brand": "Acme",
        "images": ["https://img.example.com/tee.jpg"],
        "tags": ["new", "recommended"],
        "attributes": {"material": "cotton"},
        "specs": [{"name": "colour", "values": ["red", "blue"]}, {"name": "size", "values": ["M", "L"]}],
        "skus": [
            {"spec_values": {"colour": "red", "size": "M"}, "code": "TEE-RM", "price_cents": 1999, "market_price_cents": 2999},
            {"spec_values": {"colour": "red", "size": "L"}, "code": "TEE-RL", "price_cents": 2099, "low_stock_threshold": 5},
            {"spec_values": {"colour": "blue", "size": "M"}, "code": "TEE-BM", "price_cents": 1999}
        ]
    })
}

/// Creates, submits and approves `body` in `shop_id`; returns the product.
pub async fn listed_product(app: &TestApp, admin: &str, shop_id: i64, owner: &str, body: Value) -> Value {
    let created =
        app.call("POST", &format!("/api/merchant/shops/{shop_id}/products"), Some(owner), Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    let submitted = app
        .call("POST", &format!("/api/merchant/shops/{shop_id}/products/{id}/submit"), Some(owner), None)
        .await;
    assert_eq!(submitted.status, StatusCode::OK, "{:?}", submitted.body);
    let approved = app
        .call(
            "POST",
            &format!("/api/system/products/{id}/approve"),
            Some(admin),
            Some(json!({"revision": submitted.body["revision"]})),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    approved.body
}

#[actix_web::test]
async fn a_product_is_reviewed_before_it_is_listed() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (shop_id, owner) = app.open_shop(&admin, "alice", "Alice Apparel").await;
    let cat = category(&app, &admin, "Clothing").await;
    let products = format!("/api/merchant/shops/{shop_id}/products");

    let reply = app.call("POST", &products, Some(&owner), Some(tshirt(cat))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "draft");
    assert_eq!(reply.body["skus"].as_array().unwrap().len(), 3);
    assert_eq!(reply.body["min_price_cents"], 1999);
    assert_eq!(reply.body["max_price_cents"], 2099);
    assert!(reply.body["skus"].as_array().unwrap().iter().all(|s| s["stock"] == 0));
    let id = reply.body["id"].as_i64().unwrap();
    let product = format!("{products}/{id}");

    // Nothing to approve before it is submitted; a merchant cannot approve.
    let approve = format!("/api/system/products/{id}/approve");
    let reply = app.call("POST", &approve, Some(&admin), Some(json!({"revision": 1}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"));
    let submitted = app.call("POST", &format!("{product}/submit"), Some(&owner), None).await;
    assert_eq!(submitted.body["status"], "pending_review");
    let revision = submitted.body["revision"].as_i64().unwrap();
    assert_eq!(
        app.call("POST", &approve, Some(&owner), Some(json!({"revision": revision}))).await.status,
        StatusCode::FORBIDDEN
    );

    // In the queue; an edit during review makes the reviewed revision stale.
    let queue = app.call("GET", "/api/system/products/review-queue", Some(&admin), None).await;
    assert_eq!(queue.body["items"][0]["id"], id);
    let mut edited = tshirt(cat);
    edited["name"] = json!("Organic cotton T-shirt");
    let reply = app.call("PUT", &product, Some(&owner), Some(edited)).await;
    assert_eq!(reply.body["status"], "pending_review");
    let reply = app.call("POST", &approve, Some(&admin), Some(json!({"revision": revision}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "stale_revision"));

    // Rejected with a reason, edited back to draft, resubmitted, approved.
    let latest = reply_revision(&app, &admin, id).await;
    let reply = app
        .call(
            "POST",
            &format!("/api/system/products/{id}/reject"),
            Some(&admin),
            Some(json!({"revision": latest, "reason": "blurry photo"})),
        )
        .await;
    assert_eq!(reply.body["status"], "rejected");
    assert_eq!(reply.body["review_reason"], "blurry photo");
    let reply = app.call("PUT", &product, Some(&owner), Some(tshirt(cat))).await;
    assert_eq!(reply.body["status"], "draft");
    assert!(reply.body["review_reason"].is_null());
    let submitted = app.call("POST", &format!("{product}/submit"), Some(&owner), None).await;
    let reply =
        app.call("POST", &approve, Some(&admin), Some(json!({"revision": submitted.body["revision"]}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "listed");
    assert!(reply.body["listed_at"].is_string());

    // Unlist and list again; listing a listed product is refused.
    assert_eq!(
        app.call("POST", &format!("{product}/unlist"), Some(&owner), None).await.body["status"],
        "unlisted"
    );
    assert_eq!(
        app.call("POST", &format!("{product}/list"), Some(&owner), None).await.body["status"],
        "listed"
    );
    let reply = app.call("POST", &format!("{product}/list"), Some(&owner), None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"));
    assert_eq!(app.count("audit_log WHERE action LIKE 'product.%'").await, 9);
}

async fn reply_revision(app: &TestApp, admin: &str, id: i64) -> i64 {
    app.call("GET", &format!("/api/system/products/{id}"), Some(admin), None).await.body["revision"]
        .as_i64()
        .unwrap()
}

#[actix_web::test]
async fn editing_a_listed_product_keeps_the_live_version_until_the_revision_is_approved() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (shop_id, owner) = app.open_shop(&admin, "bob", "Bob Basics").await;
    let cat = category(&app, &admin, "Clothing").await;
    let live = listed_product(&app, &admin, shop_id, &owner, tshirt(cat)).await;
    let id = live["id"].as_i64().unwrap();
    let product = format!("/api/merchant/shops/{shop_id}/products/{id}");
    let red_m = live["skus"][0]["id"].as_i64().unwrap();
    let red_l = live["skus"][1]["id"].as_i64().unwrap();

    // An internal-only change (a code, a threshold) applies at once.
    let mut internal = tshirt(cat);
    internal["skus"][0]["code"] = json!("TEE-RED-M");
    internal["skus"][0]["low_stock_threshold"] = json!(3);
    let reply = app.call("PUT", &product, Some(&owner), Some(internal.clone())).await;
    assert!(reply.body["pending"].is_null(), "{:?}", reply.body);
    assert_eq!(reply.body["skus"][0]["code"], "TEE-RED-M");
    assert_eq!(reply.body["status"], "listed");

    // A price change and a new combination wait for review.
    let mut revision = internal.clone();
    revision["name"] = json!("Cotton T-shirt (2026)");
    revision["skus"][0]["price_cents"] = json!(1799);
    revision["skus"][1] =
        json!({"spec_values": {"colour": "blue", "size": "L"}, "code": "TEE-BL", "price_cents": 2199});
    let reply = app.call("PUT", &product, Some(&owner), Some(revision)).await;
    assert_eq!(reply.body["status"], "listed");
    assert_eq!(reply.body["name"], "Cotton T-shirt", "live version unchanged");
    assert_eq!(reply.body["skus"][0]["price_cents"], 1999);
    assert_eq!(reply.body["pending"]["state"], "pending_review");
    assert_eq!(reply.body["pending"]["content"]["name"], "Cotton T-shirt (2026)");

    let rev = reply.body["revision"].clone();
    let reply = app
        .call(
            "POST",
            &format!("/api/system/products/{id}/approve"),
            Some(&admin),
            Some(json!({"revision": rev})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["name"], "Cotton T-shirt (2026)");
    assert!(reply.body["pending"].is_null());
    let skus = reply.body["skus"].as_array().unwrap();
    let by_id = |id: i64| skus.iter().find(|s| s["id"] == id).unwrap();
    assert_eq!(by_id(red_m)["price_cents"], 1799, "a kept combination keeps its SKU");
    assert_eq!(by_id(red_l)["active"], false, "a dropped combination is deactivated");
    assert!(skus.iter().any(|s| s["code"] == "TEE-BL" && s["active"] == true));
    assert_eq!(reply.body["min_price_cents"], 1799);
    // Never stale after the approval: the cached detail was dropped.
    let detail = app.call("GET", &format!("/api/products/{id}"), None, None).await;
    assert_eq!(detail.body["name"], "Cotton T-shirt (2026)");
    assert_eq!(detail.body["skus"].as_array().unwrap().len(), 3, "only active SKUs are shown");
    assert!(detail.body["skus"][0].get("code").is_none(), "codes stay internal");

    // A rejected revision stays with its reason until resubmitted.
    let mut again = internal;
    again["brand"] = json!("Acme Pro");
    let rev = app.call("PUT", &product, Some(&owner), Some(again)).await.body["revision"].clone();
    let reply = app
        .call(
            "POST",
            &format!("/api/system/products/{id}/reject"),
            Some(&admin),
            Some(json!({"revision": rev, "reason": "brand not verified"})),
        )
        .await;
    assert_eq!(reply.body["pending"]["state"], "rejected");
    assert_eq!(reply.body["pending"]["reason"], "brand not verified");
    assert_eq!(reply.body["brand"], "Acme");
    let reply = app.call("POST", &format!("{product}/submit"), Some(&owner), None).await;
    assert_eq!(reply.body["pending"]["state"], "pending_review");

    // Unlisting, or suspending the shop, takes the product off the storefront at once.
    app.call("POST", &format!("{product}/unlist"), Some(&owner), None).await;
    assert_eq!(
        app.call("GET", &format!("/api/products/{id}"), None, None).await.status,
        StatusCode::NOT_FOUND
    );
    app.call("POST", &format!("{product}/list"), Some(&owner), None).await;
    assert_eq!(app.call("GET", &format!("/api/products/{id}"), None, None).await.status, StatusCode::OK);
    let suspend = json!({"reason": "audit"});
    app.call("POST", &format!("/api/system/shops/{shop_id}/suspend"), Some(&admin), Some(suspend)).await;
    assert_eq!(
        app.call("GET", &format!("/api/products/{id}"), None, None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn invalid_products_get_422s_per_field_and_write_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (shop_id, owner) = app.open_shop(&admin, "carol", "Carol Cases").await;
    let cat = category(&app, &admin, "Phones").await;
    let products = format!("/api/merchant/shops/{shop_id}/products");

    let mut bad = tshirt(cat);
    bad["skus"][1]["spec_values"] = json!({"colour": "red", "size": "M"});
    bad["skus"][2]["spec_values"] = json!({"colour": "blue"});
    bad["skus"][2]["price_cents"] = json!(-5);
    bad["specs"][0]["values"] = json!(["red", "red", "blue"]);
    let reply = app.call("POST", &products, Some(&owner), Some(bad)).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let problems: Vec<(String, String)> = reply.body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["field"].as_str().unwrap().to_owned(), d["problem"].as_str().unwrap().to_owned()))
        .collect();
    for expected in [
        ("specs[0].values", "duplicate"),
        ("skus[1].spec_values", "duplicate_combination"),
        ("skus[2].spec_values", "missing_spec"),
        ("skus[2].price_cents", "negative"),
    ] {
        assert!(
            problems.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {problems:?}"
        );
    }

    let mut no_skus = tshirt(cat);
    no_skus["skus"] = json!([]);
    let reply = app.call("POST", &products, Some(&owner), Some(no_skus)).await;
    assert_eq!(reply.body["details"][0], json!({"field": "skus", "problem": "required"}));
    let reply = app.call("POST", &products, Some(&owner), Some(tshirt(cat + 1000))).await;
    assert_eq!(reply.body["details"][0], json!({"field": "category_id", "problem": "not_found"}));
    let mut bad_tag = tshirt(cat);
    bad_tag["tags"] = json!(["cheap"]);
    let reply = app.call("POST", &products, Some(&owner), Some(bad_tag)).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"));
    assert_eq!((app.count("products").await, app.count("skus").await), (0, 0));

    // SKU codes are unique among the shop's active SKUs.
    app.call("POST", &products, Some(&owner), Some(tshirt(cat))).await;
    let reply = app.call("POST", &products, Some(&owner), Some(tshirt(cat))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "sku_code_taken"));
    assert_eq!((app.count("products").await, app.count("skus").await), (1, 3));
}

#[actix_web::test]
async fn only_the_shops_own_staff_with_the_right_role_touch_its_products() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (shop_a, owner_a) = app.open_shop(&admin, "dave", "Dave Digital").await;
    let (shop_b, owner_b) = app.open_shop(&admin, "erin", "Erin Audio").await;
    let (_, member) = app.member("frank").await;
    let (_, clerk) = app.member("grace").await;
    let (_, packer) = app.member("heidi").await;
    for (login, role) in [("grace", "customer_service"), ("heidi", "warehouse")] {
        let reply = app
            .call(
                "POST",
                &format!("/api/merchant/shops/{shop_a}/staff"),
                Some(&owner_a),
                Some(json!({"login": login, "role": role})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    app.call("POST", &format!("/api/shops/{shop_a}/invitation"), Some(&clerk), None).await;
    app.call("POST", &format!("/api/shops/{shop_a}/invitation"), Some(&packer), None).await;
    let cat = category(&app, &admin, "Audio").await;
    let created = app
        .call("POST", &format!("/api/merchant/shops/{shop_a}/products"), Some(&owner_a), Some(tshirt(cat)))
        .await;
    let id = created.body["id"].as_i64().unwrap();
    let sku = created.body["skus"][0]["id"].as_i64().unwrap();

    for token in [&owner_b, &member, &clerk, &packer] {
        let reply = app
            .call("POST", &format!("/api/merchant/shops/{shop_a}/products"), Some(token), Some(tshirt(cat)))
            .await;
        assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "forbidden"));
        let reply = app
            .call(
                "PUT",
                &format!("/api/merchant/shops/{shop_a}/products/{id}"),
                Some(token),
                Some(tshirt(cat)),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    // Through its own shop's path, shop B cannot reach shop A's product or SKU.
    let reply = app
        .call(
            "PUT",
            &format!("/api/merchant/shops/{shop_b}/products/{id}"),
            Some(&owner_b),
            Some(tshirt(cat)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.call("GET", &format!("/api/merchant/shops/{shop_b}/products/{id}"), Some(&owner_b), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let adjust = json!({"delta": 5, "reason": "restock"});
    let reply = app
        .call(
            "POST",
            &format!("/api/merchant/shops/{shop_b}/skus/{sku}/stock"),
            Some(&owner_b),
            Some(adjust.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // The warehouse adjusts stock; customer service cannot.
    let reply = app
        .call(
            "POST",
            &format!("/api/merchant/shops/{shop_a}/skus/{sku}/stock"),
            Some(&clerk),
            Some(adjust.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = app
        .call(
            "POST",
            &format!("/api/merchant/shops/{shop_a}/skus/{sku}/stock"),
            Some(&packer),
            Some(adjust.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    // Operators review; they do not edit through the merchant API.
    let reply = app
        .call("PUT", &format!("/api/merchant/shops/{shop_a}/products/{id}"), Some(&admin), Some(tshirt(cat)))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // A suspended shop's products and stock are frozen.
    app.call(
        "POST",
        &format!("/api/system/shops/{shop_a}/suspend"),
        Some(&admin),
        Some(json!({"reason": "audit"})),
    )
    .await;
    let reply = app
        .call(
            "PUT",
            &format!("/api/merchant/shops/{shop_a}/products/{id}"),
            Some(&owner_a),
            Some(tshirt(cat)),
        )
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "shop_inactive"));
    let reply = app
        .call("POST", &format!("/api/merchant/shops/{shop_a}/skus/{sku}/stock"), Some(&packer), Some(adjust))
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "shop_inactive"));
    let reply =
        app.call("GET", &format!("/api/merchant/shops/{shop_a}/products/{id}"), Some(&owner_a), None).await;
    assert_eq!(reply.status, StatusCode::OK, "reads still work");
}

#[actix_web::test]
async fn concurrent_stock_adjustments_end_at_the_exact_total_with_a_complete_ledger() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (shop_id, owner) = app.open_shop(&admin, "ivan", "Ivan Inks").await;
    let cat = category(&app, &admin, "Stationery").await;
    let created = app
        .call("POST", &format!("/api/merchant/shops/{shop_id}/products"), Some(&owner), Some(tshirt(cat)))
        .await;
    let sku = created.body["skus"][1]["id"].as_i64().unwrap();
    let stock = format!("/api/merchant/shops/{shop_id}/skus/{sku}/stock");
    let reply =
        app.call("POST", &stock, Some(&owner), Some(json!({"delta": 100, "reason": "opening stock"}))).await;
    assert_eq!(reply.body["stock_after"], 100);

    // 60 adjustments at once: 40 x +3 and 20 x -2 -> 100 + 120 - 40 = 180.
    let calls = (0..60).map(|i| {
        let delta = if i % 3 == 2 { -2 } else { 3 };
        let (app, stock, owner) = (&app, &stock, &owner);
        async move {
            app.call("POST", stock, Some(owner), Some(json!({"delta": delta, "reason": format!("race {i}")})))
                .await
        }
    });
    let replies = futures_util::future::join_all(calls).await;
    assert!(
        replies.iter().all(|r| r.status == StatusCode::CREATED),
        "{:?}",
        replies.iter().find(|r| r.status != StatusCode::CREATED)
    );

    let client = app.db.get().await.unwrap();
    let level: i32 = client.query_one("SELECT stock FROM skus WHERE id = $1", &[&sku]).await.unwrap().get(0);
    assert_eq!(level, 180);
    let rows = client
        .query("SELECT delta, stock_after FROM inventory_movements WHERE sku_id = $1 ORDER BY id", &[&sku])
        .await
        .unwrap();
    assert_eq!(rows.len(), 61);
    let mut running = 0;
    for row in &rows {
        running += row.get::<_, i32>(0);
        assert_eq!(row.get::<_, i32>(1), running, "each stock_after follows from the one before");
    }
    assert_eq!(running, level);

    // Taking more than there is writes nothing.
    let reply =
        app.call("POST", &stock, Some(&owner), Some(json!({"delta": -181, "reason": "write-off"}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "insufficient_stock"));
    let reply =
        app.call("POST", &stock, Some(&owner), Some(json!({"delta": i32::MIN, "reason": "write-off"}))).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::CONFLICT, "insufficient_stock"),
        "{:?}",
        reply.body
    );
    let reply =
        app.call("POST", &stock, Some(&owner), Some(json!({"delta": 1_000_000_000, "reason": "typo"}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"), "stock is capped");
    let reply = app.call("POST", &stock, Some(&owner), Some(json!({"delta": 0, "reason": ""}))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("inventory_movements").await, 61);

    // The ledger and the low-stock list (thresholds: 0, 5, 0; stock: 0, 180, 0).
    let movements = app
        .call(
            "GET",
            &format!("/api/merchant/shops/{shop_id}/inventory/movements?sku_id={sku}&per_page=5"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(movements.body["total"], 61);
    assert_eq!(movements.body["items"][0]["stock_after"], 180);
    let reply = app
        .call(
            "GET",
            &format!("/api/merchant/shops/{shop_id}/inventory/movements?kind=theft"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "invalid_query"));
    let low =
        app.call("GET", &format!("/api/merchant/shops/{shop_id}/skus/low-stock"), Some(&owner), None).await;
    assert_eq!(low.body["total"], 2);
    assert!(low.body["items"].as_array().unwrap().iter().all(|s| s["sku_id"].is_null() && s["id"] != sku));
}
