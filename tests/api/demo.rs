//! The `demo-data` subcommand's loader.

use awc::http::StatusCode;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn demo_data_loads_once_and_its_merchants_run_their_shops() {
    let app = spawn_app().await;
    let first = rs_cms::demo::load(&app.db, &app.settings.auth).await.unwrap();
    assert!(first.created);
    assert_eq!((first.shops, first.products), (3, 7));
    let again = rs_cms::demo::load(&app.db, &app.settings.auth).await.unwrap();
    assert!(!again.created);
    assert_eq!(app.count("shops WHERE status = 'active'").await, 3);
    assert_eq!(app.count("products WHERE status = 'listed'").await, 7);
    // Every unit of stock came in through the ledger.
    assert_eq!(app.count("skus WHERE stock > 0").await, app.count("inventory_movements").await);

    let login = serde_json::json!({"login": "demo-tea", "password": rs_cms::demo::DEMO_PASSWORD});
    let token = app.call("POST", "/api/auth/login", None, Some(login)).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mine = app.call("GET", "/api/shops/mine", Some(&token), None).await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.body[0]["shop"]["name"], "Demo Tea House");
    assert_eq!(mine.body[0]["role"], "owner");
    let shop_id = mine.body[0]["shop"]["id"].as_i64().unwrap();
    let products =
        app.call("GET", &format!("/api/merchant/shops/{shop_id}/products"), Some(&token), None).await;
    assert_eq!(products.body["total"], 2);
}
