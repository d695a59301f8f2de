use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

/// An administrator `root` adds a staff account (no `admin.manage`); its token.
async fn staff_member(app: &TestApp, root: &str) -> String {
    app.call(
        "POST",
        "/api/system/admins",
        Some(root),
        Some(json!({"username": "xia", "email": "xia@example.com", "password": "password-123", "role": "staff"})),
    )
    .await;
    app.login("xia").await
}

#[actix_web::test]
async fn admins_are_added_listed_changed_and_removed() {
    let app = spawn_app().await;
    let (root_id, root) = app.admin("root").await;
    let added = app
        .call(
            "POST",
            "/api/system/admins",
            Some(&root),
            Some(json!({"username": "sam", "email": "sam@example.com", "password": "password-123", "role": "staff"})),
        )
        .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    assert_eq!(
        (added.body["status"].as_str(), added.body["roles"].clone()),
        (Some("active"), json!(["staff"]))
    );
    assert!(added.body.get("password_hash").is_none());
    let sam = added.body["id"].as_i64().unwrap();
    let sam_token = app.login("sam").await;

    let list = app.call("GET", "/api/system/admins", Some(&root), None).await;
    assert_eq!(list.body["total"], 2);
    assert!(!list.body.to_string().contains("argon2"), "no password hash in any response");

    let promoted = app
        .call("PATCH", &format!("/api/system/admins/{sam}"), Some(&root), Some(json!({"role": "admin"})))
        .await;
    assert_eq!(promoted.body["roles"], json!(["admin"]));
    let check = app
        .call("POST", "/api/auth/check", Some(&sam_token), Some(json!({"permission": "admin.manage"})))
        .await;
    assert_eq!(check.body["allowed"], true);
    let bad = app
        .call("PATCH", &format!("/api/system/admins/{sam}"), Some(&root), Some(json!({"role": "god"})))
        .await;
    assert_eq!(bad.code(), "validation_failed");
    let myself = app
        .call(
            "PATCH",
            &format!("/api/system/admins/{root_id}"),
            Some(&root),
            Some(json!({"status": "frozen"})),
        )
        .await;
    assert_eq!(myself.code(), "invalid_state");

    assert_eq!(app.call("DELETE", &format!("/api/system/admins/{sam}"), Some(&root), None).await.status, 204);
    assert_eq!(app.call("GET", "/api/me", Some(&sam_token), None).await.status, 401, "sessions end");
    assert_eq!(app.call("DELETE", &format!("/api/system/admins/{sam}"), Some(&root), None).await.status, 404);

    let (_, member) = app.member("tom").await;
    for (method, path) in [
        ("GET", "/api/system/admins"),
        ("POST", "/api/system/admins"),
        ("PATCH", "/api/system/admins/1"),
        ("DELETE", "/api/system/admins/1"),
    ] {
        let body = matches!(method, "POST" | "PATCH").then(|| json!({}));
        assert_eq!(app.call(method, path, Some(&member), body.clone()).await.code(), "forbidden");
        assert_eq!(app.call(method, path, None, body).await.status, 401);
    }
}

#[actix_web::test]
async fn members_are_filtered_paginated_updated_frozen_and_unfrozen() {
    let app = spawn_app().await;
    let (_, root) = app.admin("root").await;
    let (uma, uma_token) = app.member("uma").await;
    app.member("umberto").await;
    app.member("vera").await;

    let page = app.call("GET", "/api/system/members?q=UM&per_page=1", Some(&root), None).await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert_eq!(
        (page.body["total"].as_i64(), page.body["items"][0]["username"].as_str()),
        (Some(2), Some("uma"))
    );
    let second = app.call("GET", "/api/system/members?q=um&per_page=1&page=2", Some(&root), None).await;
    assert_eq!(second.body["items"][0]["username"], "umberto");
    let unverified = app.call("GET", "/api/system/members?status=unverified", Some(&root), None).await;
    assert_eq!(unverified.body["total"], 3);
    let future =
        app.call("GET", "/api/system/members?created_from=2999-01-01T00:00:00Z", Some(&root), None).await;
    assert_eq!(future.body["total"], 0);
    for bad in ["per_page=1000", "page=0", "status=zombie", "created_from=yesterday", "colour=red"] {
        let reply = app.call("GET", &format!("/api/system/members?{bad}"), Some(&root), None).await;
        assert_eq!((reply.status.as_u16(), reply.code()), (400, "invalid_query"), "{bad}");
    }

    let one = app.call("GET", &format!("/api/system/members/{uma}"), Some(&root), None).await;
    assert_eq!(one.body["roles"], json!(["member"]));
    let updated = app
        .call("PATCH", &format!("/api/system/members/{uma}"), Some(&root), Some(json!({"nickname": "U"})))
        .await;
    assert_eq!(updated.body["nickname"], "U");

    let frozen = app.call("POST", &format!("/api/system/members/{uma}/freeze"), Some(&root), None).await;
    assert_eq!(frozen.body["status"], "frozen");
    assert_eq!(app.call("GET", "/api/me", Some(&uma_token), None).await.status, 401, "tokens stop at once");
    let login = app
        .call("POST", "/api/auth/login", None, Some(json!({"login": "uma", "password": "password-123"})))
        .await;
    assert_eq!((login.status.as_u16(), login.code()), (403, "account_frozen"));
    let thawed = app.call("POST", &format!("/api/system/members/{uma}/unfreeze"), Some(&root), None).await;
    assert_eq!(thawed.body["status"], "unverified");
    app.login("uma").await;
    assert_eq!(app.call("GET", "/api/system/members/99999", Some(&root), None).await.status, 404);
}

#[actix_web::test]
async fn member_management_refuses_members_and_staff_cannot_touch_admins() {
    let app = spawn_app().await;
    let (root_id, root) = app.admin("root").await;
    let (wes, member) = app.member("wes").await;
    for (method, path) in [
        ("GET", "/api/system/members".to_owned()),
        ("GET", format!("/api/system/members/{wes}")),
        ("PATCH", format!("/api/system/members/{wes}")),
        ("POST", format!("/api/system/members/{wes}/freeze")),
        ("POST", format!("/api/system/members/{wes}/unfreeze")),
    ] {
        let body = (method == "PATCH").then(|| json!({}));
        assert_eq!(app.call(method, &path, Some(&member), body.clone()).await.code(), "forbidden", "{path}");
        assert_eq!(app.call(method, &path, None, body).await.status, 401);
    }
    let staff = staff_member(&app, &root).await;
    let freeze_admin =
        app.call("POST", &format!("/api/system/members/{root_id}/freeze"), Some(&staff), None).await;
    assert_eq!(freeze_admin.code(), "forbidden");
    let freeze_member =
        app.call("POST", &format!("/api/system/members/{wes}/freeze"), Some(&staff), None).await;
    assert_eq!(freeze_member.status, 200);
}

#[actix_web::test]
async fn staff_cannot_touch_an_admin_whose_admin_role_comes_through_a_group() {
    let app = spawn_app().await;
    let (_, root) = app.admin("root").await;
    let (yan, _) = app.member("yan").await;
    let roles = app.call("GET", "/api/system/roles", Some(&root), None).await;
    let admin_role = roles.body["items"].as_array().unwrap().iter().find(|r| r["name"] == "admin").unwrap()
        ["id"]
        .as_i64()
        .unwrap();
    let group = app.call("POST", "/api/system/groups", Some(&root), Some(json!({"name": "ops"}))).await;
    let gid = group.body["id"].as_i64().unwrap();
    app.call("PUT", &format!("/api/system/groups/{gid}/roles/{admin_role}"), Some(&root), None).await;
    app.call("PUT", &format!("/api/system/groups/{gid}/members/{yan}"), Some(&root), None).await;
    let staff = staff_member(&app, &root).await;
    for (method, path) in [
        ("POST", format!("/api/system/members/{yan}/freeze")),
        ("PATCH", format!("/api/system/members/{yan}")),
    ] {
        let body = (method == "PATCH").then(|| json!({"nickname": "taken over"}));
        let refused = app.call(method, &path, Some(&staff), body).await;
        assert_eq!(
            (refused.status.as_u16(), refused.code()),
            (403, "forbidden"),
            "{path}: {:?}",
            refused.body
        );
    }
    let yan_account = app.call("GET", &format!("/api/system/members/{yan}"), Some(&root), None).await;
    assert_eq!(yan_account.body["status"], "unverified", "{:?}", yan_account.body);
    assert_eq!(yan_account.body["nickname"], serde_json::Value::Null);
}
