//! Shops: application and review, staff roles, and who may do what.

use awc::http::StatusCode;
use serde_json::json;

use crate::helpers::{shop_body, spawn_app};

#[actix_web::test]
async fn application_is_reviewed_and_the_applicant_follows_it() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (owner_id, owner) = app.member("alice").await;

    let reply = app.call("POST", "/api/shops", Some(&owner), Some(shop_body("Alice Tea"))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "pending");
    let shop_id = reply.body["id"].as_i64().unwrap();

    // Not on the storefront, and the owner cannot run it yet.
    assert_eq!(
        app.call("GET", &format!("/api/shops/{shop_id}"), None, None).await.status,
        StatusCode::NOT_FOUND
    );
    let profile = shop_body("Alice Tea House");
    let reply =
        app.call("PUT", &format!("/api/merchant/shops/{shop_id}"), Some(&owner), Some(profile.clone())).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "shop_inactive"));

    // The review queue holds it; a member cannot see the queue or decide.
    let queue = app.call("GET", "/api/system/shops?status=pending", Some(&admin), None).await;
    assert_eq!(queue.body["total"], 1);
    assert_eq!(queue.body["items"][0]["id"], shop_id);
    assert_eq!(app.call("GET", "/api/system/shops", Some(&owner), None).await.status, StatusCode::FORBIDDEN);
    let approve = format!("/api/system/shops/{shop_id}/approve");
    assert_eq!(app.call("POST", &approve, Some(&owner), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.call("POST", &approve, None, None).await.status, StatusCode::UNAUTHORIZED);

    let reply = app.call("POST", &approve, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "active");
    let reply = app.call("POST", &approve, Some(&admin), None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"));

    // The owner is now a merchant and sees the shop as its owner.
    let client = app.db.get().await.unwrap();
    let merchant: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id
             WHERE ur.user_id = $1 AND r.name = 'merchant')",
            &[&owner_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(merchant);
    let mine = app.call("GET", "/api/shops/mine", Some(&owner), None).await;
    assert_eq!(mine.body[0]["shop"]["status"], "active");
    assert_eq!(mine.body[0]["role"], "owner");
    assert_eq!(mine.body[0]["shop"]["owner_id"], owner_id);
    let page = app.call("GET", &format!("/api/shops/{shop_id}"), None, None).await;
    assert_eq!(page.body["name"], "Alice Tea");
    assert!(page.body.get("contact_phone").is_none(), "contact details stay private");
    let reply = app.call("PUT", &format!("/api/merchant/shops/{shop_id}"), Some(&owner), Some(profile)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["name"], "Alice Tea House");
}

#[actix_web::test]
async fn rejection_needs_a_reason_that_the_applicant_sees() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (_, owner) = app.member("bob").await;
    let shop_id = app.call("POST", "/api/shops", Some(&owner), Some(shop_body("Bob Bikes"))).await.body["id"]
        .as_i64()
        .unwrap();
    let reject = format!("/api/system/shops/{shop_id}/reject");

    let reply = app.call("POST", &reject, Some(&admin), Some(json!({}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let reply =
        app.call("POST", &reject, Some(&admin), Some(json!({"reason": "licence photo unreadable"}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);

    let mine = app.call("GET", "/api/shops/mine", Some(&owner), None).await;
    assert_eq!(mine.body[0]["shop"]["status"], "rejected");
    assert_eq!(mine.body[0]["shop"]["status_reason"], "licence photo unreadable");

    // The name is free again and the applicant may apply anew.
    let reply = app.call("POST", "/api/shops", Some(&owner), Some(shop_body("Bob Bikes"))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
}

#[actix_web::test]
async fn bad_or_duplicate_applications_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    app.open_shop(&admin, "carol", "Carol Cakes").await;
    let (_, dave) = app.member("dave").await;
    let before = app.count("shops").await;

    let reply = app.call("POST", "/api/shops", Some(&dave), Some(shop_body("carol cakes"))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "shop_name_taken"));

    let mut bad = shop_body("D");
    bad["contact_phone"] = json!("call me");
    bad["logo_url"] = json!("ftp://logo");
    let reply = app.call("POST", "/api/shops", Some(&dave), Some(bad)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> =
        reply.body["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "contact_phone", "logo_url"]);
    assert_eq!(app.count("shops").await, before);

    let reply = app.call("POST", "/api/shops", Some(&dave), Some(shop_body("Dave Drums"))).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = app.call("POST", "/api/shops", Some(&dave), Some(shop_body("Dave Drums Two"))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "application_pending"));
}

#[actix_web::test]
async fn staff_roles_decide_what_each_member_may_do() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (shop_id, owner) = app.open_shop(&admin, "erin", "Erin Electronics").await;
    let (manager_id, manager) = app.member("frank").await;
    let (service_id, service) = app.member("grace").await;
    let staff = format!("/api/merchant/shops/{shop_id}/staff");
    let shop = format!("/api/merchant/shops/{shop_id}");

    let reply =
        app.call("POST", &staff, Some(&owner), Some(json!({"login": "frank", "role": "manager"}))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert!(reply.body["accepted_at"].is_null());
    // An invitation grants nothing until it is accepted.
    assert_eq!(app.call("GET", &shop, Some(&manager), None).await.status, StatusCode::FORBIDDEN);
    let mine = app.call("GET", "/api/shops/mine", Some(&manager), None).await;
    assert_eq!(mine.body[0]["accepted"], false);
    let accept = format!("/api/shops/{shop_id}/invitation");
    assert_eq!(app.call("POST", &accept, Some(&manager), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.call("POST", &accept, Some(&manager), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.call("GET", &shop, Some(&manager), None).await.status, StatusCode::OK);

    // A manager runs the shop but does not manage staff.
    let reply = app.call("GET", &staff, Some(&manager), None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "forbidden"));

    let reply = app
        .call(
            "POST",
            &staff,
            Some(&owner),
            Some(json!({"login": "grace@example.com", "role": "customer_service"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    app.call("POST", &accept, Some(&service), None).await;
    let reply = app.call("PUT", &shop, Some(&service), Some(shop_body("Grace's Takeover"))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "forbidden"));

    // Custom roles: a permission list is required, and only the owner hands out staff.manage.
    let reply = app
        .call("PUT", &format!("{staff}/{service_id}"), Some(&owner), Some(json!({"role": "custom"})))
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let custom = json!({"role": "custom", "permissions": ["staff.manage", "order.read"]});
    let reply = app.call("PUT", &format!("{staff}/{service_id}"), Some(&owner), Some(custom.clone())).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["permissions"], json!(["order.read", "staff.manage"]));
    let reply = app.call("PUT", &format!("{staff}/{manager_id}"), Some(&service), Some(custom)).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let reply =
        app.call("POST", &staff, Some(&owner), Some(json!({"login": "grace", "role": "owner"}))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The owner can be neither demoted nor removed; others can be removed.
    let owner_id = app.call("GET", "/api/me", Some(&owner), None).await.body["id"].as_i64().unwrap();
    let reply = app.call("DELETE", &format!("{staff}/{owner_id}"), Some(&service), None).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"));
    let reply = app.call("DELETE", &format!("{staff}/{manager_id}"), Some(&owner), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(app.call("GET", &shop, Some(&manager), None).await.status, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn staff_of_one_shop_cannot_touch_another() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (shop_a, owner_a) = app.open_shop(&admin, "heidi", "Heidi Hats").await;
    let (shop_b, owner_b) = app.open_shop(&admin, "ivan", "Ivan Irons").await;
    let (_, stranger) = app.member("judy").await;

    for token in [&owner_b, &stranger] {
        let reply = app.call("GET", &format!("/api/merchant/shops/{shop_a}"), Some(token), None).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "forbidden"));
        let reply = app
            .call(
                "POST",
                &format!("/api/merchant/shops/{shop_a}/staff"),
                Some(token),
                Some(json!({"login": "judy", "role": "manager"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    let reply = app.call("GET", &format!("/api/merchant/shops/{shop_b}/staff"), Some(&owner_a), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = app.call("GET", "/api/merchant/shops/999999", Some(&owner_a), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_suspended_shop_is_read_only_until_reinstated() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (shop_id, owner) = app.open_shop(&admin, "kim", "Kim Kites").await;
    let suspend = format!("/api/system/shops/{shop_id}/suspend");

    let reply = app.call("POST", &suspend, Some(&admin), Some(json!({"reason": "counterfeit goods"}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        app.call("GET", &format!("/api/shops/{shop_id}"), None, None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call("GET", &format!("/api/merchant/shops/{shop_id}"), Some(&owner), None).await.status,
        StatusCode::OK
    );
    let reply = app
        .call(
            "POST",
            &format!("/api/merchant/shops/{shop_id}/staff"),
            Some(&owner),
            Some(json!({"login": "root", "role": "manager"})),
        )
        .await;
    assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "shop_inactive"));
    let reply = app.call("POST", &suspend, Some(&admin), Some(json!({"reason": "again"}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"));

    let reply = app.call("POST", &format!("/api/system/shops/{shop_id}/reinstate"), Some(&admin), None).await;
    assert_eq!(reply.body["status"], "active");
    assert_eq!(app.call("GET", &format!("/api/shops/{shop_id}"), None, None).await.status, StatusCode::OK);
}
