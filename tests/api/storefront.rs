use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use crate::catalog_fixture::{Product, Sku};
use crate::helpers::{spawn_app, TestApp};

impl TestApp {
    /// The ids of `GET /api/products?{query}`, in order, asserting a 200.
    async fn product_ids(&self, query: &str) -> Vec<i64> {
        let reply = self.call("GET", &format!("/api/products?{query}"), None, None).await;
        assert_eq!(reply.status, 200, "{query}: {:?}", reply.body);
        reply.body["items"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect()
    }
}

/// A fixed moment, so products can share a listing time exactly.
fn at(secs_before: i64) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap() - chrono::Duration::seconds(secs_before)
}

#[actix_web::test]
async fn search_filters_by_category_subtree_shop_price_tag_attributes_and_keyword() {
    let app = spawn_app().await;
    let (acme, bolt) = (app.active_shop("acme", "Acme").await, app.active_shop("bolt", "Bolt").await);
    let electronics = app.category_row(None, "Electronics").await;
    let phones = app.category_row(Some(electronics), "Phones").await;
    let android = app.category_row(Some(phones), "Android").await;
    let clothing = app.category_row(None, "Clothing").await;
    let mate = app
        .product(&Product {
            brand: "Huawei".into(),
            tags: vec!["new".into()],
            attributes: json!({"colour": "black", "line": "mate"}),
            listed_at: at(10),
            ..Product::new(acme, android, "华为手机 Mate", 399_900)
        })
        .await;
    let pixel = app
        .product(&Product {
            description: "A phone by Google".into(),
            tags: vec!["recommended".into()],
            attributes: json!({"colour": "white"}),
            listed_at: at(20),
            ..Product::new(bolt, phones, "Pixel", 299_900)
        })
        .await;
    let cotton = app
        .product(&Product {
            tags: vec!["special_offer".into(), "new".into()],
            attributes: json!({"material": "cotton", "fit": "slim"}),
            listed_at: at(30),
            ..Product::new(acme, clothing, "Cotton Shirt", 9_900)
        })
        .await;
    let linen = app
        .product(&Product {
            attributes: json!({"material": "linen"}),
            listed_at: at(40),
            ..Product::new(bolt, clothing, "Linen Shirt 50%_off", 12_900)
        })
        .await;

    for (query, expected) in [
        ("", vec![mate, pixel, cotton, linen]),
        (&*format!("category_id={electronics}"), vec![mate, pixel]),
        (&format!("category_id={phones}"), vec![mate, pixel]),
        (&format!("category_id={android}"), vec![mate]),
        (&format!("category_id={clothing}&tag=new"), vec![cotton]),
        ("category_id=9999", vec![]),
        (&format!("shop_id={acme}"), vec![mate, cotton]),
        ("min_price=10000&max_price=300000", vec![pixel, linen]),
        ("min_price=299900", vec![mate, pixel]),
        ("max_price=9900", vec![cotton]),
        ("tag=new", vec![mate, cotton]),
        ("tag=recommended", vec![pixel]),
        ("attributes=material:cotton", vec![cotton]),
        ("attributes=material:cotton,fit:slim", vec![cotton]),
        ("attributes=material:cotton,fit:loose", vec![]),
        ("attributes=colour:black", vec![mate]),
        ("q=shirt", vec![cotton, linen]),
        ("q=google", vec![pixel]),
        ("q=huawei", vec![mate]),
        ("q=Mate", vec![mate]),
        ("q=%E6%89%8B%E6%9C%BA", vec![mate]),
        // `%` and `_` match themselves, not anything.
        ("q=%25", vec![linen]),
        ("q=n_s", vec![]),
    ] {
        assert_eq!(app.product_ids(query).await, expected, "{query}");
    }
}

#[actix_web::test]
async fn every_sort_breaks_ties_by_id_and_pages_add_up() {
    let app = spawn_app().await;
    let shop = app.active_shop("acme", "Acme").await;
    let category = app.category_row(None, "All").await;
    let mut ids = vec![];
    for (price, sales, age) in [(100, 5, 30), (200, 5, 10), (200, 1, 10), (300, 9, 20), (200, 5, 10)] {
        let product = Product {
            sales_count: sales,
            listed_at: at(age),
            ..Product::new(shop, category, "Thing", price)
        };
        ids.push(app.product(&product).await);
    }
    let [p1, p2, p3, p4, p5] = ids[..] else { unreachable!() };
    for (sort, expected) in [
        ("newest", vec![p5, p3, p2, p4, p1]),
        ("price_asc", vec![p1, p2, p3, p5, p4]),
        ("price_desc", vec![p4, p5, p3, p2, p1]),
        ("sales", vec![p4, p5, p2, p1, p3]),
    ] {
        assert_eq!(app.product_ids(&format!("sort={sort}")).await, expected, "{sort}");
    }
    assert_eq!(app.product_ids("").await, [p5, p3, p2, p4, p1], "newest is the default");

    let mut seen = vec![];
    for page in 1..=4 {
        let reply = app
            .call("GET", &format!("/api/products?sort=price_asc&per_page=2&page={page}"), None, None)
            .await;
        assert_eq!((reply.body["total"].as_i64(), reply.body["page"].as_i64()), (Some(5), Some(page)));
        seen.extend(reply.body["items"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()));
    }
    assert_eq!(seen, [p1, p2, p3, p5, p4]);
}

#[actix_web::test]
async fn unlisted_products_suspended_shops_and_inactive_skus_are_hidden() {
    let app = spawn_app().await;
    let (acme, bolt) = (app.active_shop("acme", "Acme").await, app.active_shop("bolt", "Bolt").await);
    let category = app.category_row(None, "All").await;
    let shown = app
        .product(&Product {
            skus: vec![
                Sku::new(json!({"size": "S"}), 100, 0),
                Sku { active: false, ..Sku::new(json!({"size": "M"}), 50, 10) },
            ],
            ..Product::new(acme, category, "Shown", 100)
        })
        .await;
    let unlisted =
        app.product(&Product { status: "unlisted", ..Product::new(acme, category, "Unlisted", 100) }).await;
    let draft = app.product(&Product { status: "draft", ..Product::new(acme, category, "Draft", 100) }).await;
    let suspended = app.product(&Product::new(bolt, category, "Suspended shop", 100)).await;
    app.execute(&format!("UPDATE shops SET status = 'suspended' WHERE id = {bolt}")).await;

    let list = app.call("GET", "/api/products", None, None).await;
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["items"][0]["id"], shown);
    assert_eq!(list.body["items"][0]["in_stock"], false, "only the inactive SKU has stock");
    let detail = app.call("GET", &format!("/api/products/{shown}"), None, None).await;
    let skus = detail.body["skus"].as_array().unwrap();
    assert_eq!((skus.len(), &skus[0]["spec_values"]), (1, &json!({"size": "S"})));
    assert_eq!(skus[0]["in_stock"], false);

    for hidden in [unlisted, draft, suspended, 9999] {
        let reply = app.call("GET", &format!("/api/products/{hidden}"), None, None).await;
        assert_eq!((reply.status.as_u16(), reply.code()), (404, "not_found"), "{hidden}");
    }
    let bad = app.call("GET", "/api/products/abc", None, None).await;
    assert_eq!((bad.status.as_u16(), bad.code()), (400, "invalid_path"));
}

#[actix_web::test]
async fn detail_shows_shop_category_path_and_skus_but_nothing_internal() {
    let app = spawn_app().await;
    let shop = app.active_shop("acme", "Acme").await;
    let electronics = app.category_row(None, "Electronics").await;
    let phones = app.category_row(Some(electronics), "Phones").await;
    let android = app.category_row(Some(phones), "Android").await;
    let listed_at = at(0);
    let id = app
        .product(&Product {
            brand: "Huawei".into(),
            description: "Flagship".into(),
            images: vec!["https://img.example.com/a.png".into(), "https://img.example.com/b.png".into()],
            tags: vec!["new".into()],
            attributes: json!({"colour": "black"}),
            specs: json!([{"name": "storage", "values": ["128G", "256G"]}]),
            sales_count: 42,
            listed_at,
            skus: vec![
                Sku::new(json!({"storage": "128G"}), 399_900, 5),
                Sku::new(json!({"storage": "256G"}), 449_900, 0),
            ],
            ..Product::new(shop, android, "华为手机 Mate", 0)
        })
        .await;

    let reply = app.call("GET", &format!("/api/products/{id}"), None, None).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.headers.get("content-type").unwrap(), "application/json");
    let mut body = reply.body;
    let sku_ids: Vec<Value> = body["skus"].as_array().unwrap().iter().map(|s| s["id"].clone()).collect();
    assert_eq!(body["listed_at"].as_str().unwrap().parse::<chrono::DateTime<Utc>>().unwrap(), listed_at);
    body["listed_at"] = Value::Null;
    assert_eq!(
        body,
        json!({
            "id": id,
            "shop": {"id": shop, "name": "Acme", "logo_url": "https://img.example.com/acme.png"},
            "category": {"id": android, "name": "Android"},
            "category_path": [{"id": electronics, "name": "Electronics"}, {"id": phones, "name": "Phones"}],
            "name": "华为手机 Mate",
            "description": "Flagship",
            "brand": "Huawei",
            "images": ["https://img.example.com/a.png", "https://img.example.com/b.png"],
            "tags": ["new"],
            "audience": "anyone",
            "product_type": "normal",
            "attributes": {"colour": "black"},
            "specs": [{"name": "storage", "values": ["128G", "256G"]}],
            "skus": [
                {"id": sku_ids[0], "spec_values": {"storage": "128G"}, "price_cents": 399_900,
                 "market_price_cents": 400_900, "stock": 5, "in_stock": true},
                {"id": sku_ids[1], "spec_values": {"storage": "256G"}, "price_cents": 449_900,
                 "market_price_cents": 450_900, "stock": 0, "in_stock": false},
            ],
            "min_price_cents": 399_900,
            "max_price_cents": 449_900,
            "sales_count": 42,
            "listed_at": null,
        })
    );

    let card = &app.call("GET", "/api/products", None, None).await.body["items"][0];
    assert_eq!(
        (&card["shop_name"], &card["image"], &card["in_stock"], &card["category_id"]),
        (&json!("Acme"), &json!("https://img.example.com/a.png"), &json!(true), &json!(android))
    );
}

#[actix_web::test]
async fn detail_is_served_from_memory_until_an_invalidation_arrives() {
    let app = spawn_app().await;
    let shop = app.active_shop("acme", "Acme").await;
    let category = app.category_row(None, "All").await;
    let id = app.product(&Product::new(shop, category, "Old name", 100)).await;
    let redis = redis::Client::open(app.settings.redis.url.as_str()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let channel = format!("{}catalog:invalidate", app.settings.redis.key_prefix);
    // Wait for the app's subscription: its (re)subscribe clears the cache.
    for _ in 0..100 {
        let (_, subscribers): (String, i64) =
            redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel).query_async(&mut conn).await.unwrap();
        if subscribers > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let name = |reply: crate::helpers::Reply| reply.body["name"].as_str().unwrap_or_default().to_owned();
    let path = format!("/api/products/{id}");
    assert_eq!(name(app.call("GET", &path, None, None).await), "Old name");

    app.execute(&format!("UPDATE products SET name = 'New name' WHERE id = {id}")).await;
    assert_eq!(name(app.call("GET", &path, None, None).await), "Old name", "cached");

    let _: () = redis::cmd("PUBLISH").arg(&channel).arg(id.to_string()).query_async(&mut conn).await.unwrap();
    let mut fresh = String::new();
    for _ in 0..100 {
        fresh = name(app.call("GET", &path, None, None).await);
        if fresh == "New name" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fresh, "New name");

    let metrics =
        app.http.get(format!("{}/metrics", app.address)).send().await.unwrap().body().await.unwrap();
    let text = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(text.contains(r#"rscms_product_detail_cache_total{result="miss"} 2"#), "{text}");
    assert!(text.contains(r#"rscms_product_detail_cache_total{result="hit"}"#), "{text}");
}

#[actix_web::test]
async fn malformed_list_queries_are_400() {
    let app = spawn_app().await;
    for query in [
        "min_price=-1",
        "min_price=abc",
        "min_price=5&max_price=4",
        "category_id=x",
        "tag=cheap",
        "sort=random",
        "attributes=nocolon",
        "attributes=a:1,a:2",
        "q=%20%20",
        &format!("q={}", "x".repeat(101)),
        "page=0",
        "per_page=101",
        "colour=red",
    ] {
        let reply = app.call("GET", &format!("/api/products?{query}"), None, None).await;
        assert_eq!((reply.status.as_u16(), reply.code()), (400, "invalid_query"), "{query}");
    }
}
