use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn a_blacklisted_network_gets_403_on_every_request_until_removed() {
    let app = spawn_app().await;
    let (_, root) = app.admin("root").await;
    let added = app
        .call(
            "POST",
            "/api/system/blacklist",
            Some(&root),
            Some(json!({"ip": "203.0.113.9/24", "reason": "abuse"})),
        )
        .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    assert_eq!(
        (added.body["ip"].as_str(), added.body["kind"].as_str()),
        (Some("203.0.113.0/24"), Some("ip"))
    );
    let id = added.body["id"].as_i64().unwrap();

    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    for path in ["/healthz", "/api/me", "/api/auth/login"] {
        let reply = app.call_with("GET", path, None, None, &from("203.0.113.77")).await;
        assert_eq!((reply.status.as_u16(), reply.code()), (403, "blacklisted"), "{path}");
    }
    assert_eq!(app.call_with("GET", "/healthz", None, None, &from("203.0.114.1")).await.status, 200);

    let list = app.call("GET", "/api/system/blacklist?kind=ip", Some(&root), None).await;
    assert_eq!(list.body["total"], 1);
    assert_eq!(
        app.call("DELETE", &format!("/api/system/blacklist/{id}"), Some(&root), None).await.status,
        204
    );
    assert_eq!(app.call_with("GET", "/healthz", None, None, &from("203.0.113.77")).await.status, 200);
    assert_eq!(
        app.call("DELETE", &format!("/api/system/blacklist/{id}"), Some(&root), None).await.status,
        404
    );
}

#[actix_web::test]
async fn expired_entries_stop_applying() {
    let app = spawn_app().await;
    let (_, root) = app.admin("root").await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let added = app
        .call(
            "POST",
            "/api/system/blacklist",
            Some(&root),
            Some(json!({"ip": "198.51.100.7", "reason": "cool off", "expires_at": soon})),
        )
        .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    let from = [("X-Forwarded-For", "198.51.100.7")];
    assert_eq!(app.call_with("GET", "/healthz", None, None, &from).await.code(), "blacklisted");
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    assert_eq!(app.call_with("GET", "/healthz", None, None, &from).await.status, 200);
}

#[actix_web::test]
async fn a_blacklisted_account_loses_its_sessions_and_cannot_log_in() {
    let app = spawn_app().await;
    let (_, root) = app.admin("root").await;
    let (yan, token) = app.member("yan").await;
    let added = app
        .call("POST", "/api/system/blacklist", Some(&root), Some(json!({"user_id": yan, "reason": "fraud"})))
        .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    assert_eq!(app.call("GET", "/api/me", Some(&token), None).await.status, 401);
    let login = app
        .call("POST", "/api/auth/login", None, Some(json!({"login": "yan", "password": "password-123"})))
        .await;
    assert_eq!((login.status.as_u16(), login.code()), (403, "blacklisted"));
    let audit = app.call("GET", "/api/system/audit-log?action=blacklist.add", Some(&root), None).await;
    assert_eq!(audit.body["items"][0]["target"], format!("blacklist:{}", added.body["id"]));
}

#[actix_web::test]
async fn bad_blacklist_input_is_refused_and_members_cannot_manage_it() {
    let app = spawn_app().await;
    let (_, root) = app.admin("root").await;
    let (zed, member) = app.member("zed").await;
    for body in [
        json!({"ip": "not-an-ip", "reason": "x"}),
        json!({"ip": "1.2.3.4", "user_id": zed, "reason": "x"}),
        json!({"reason": "x"}),
        json!({"ip": "1.2.3.4", "reason": ""}),
        json!({"ip": "1.2.3.4", "reason": "r".repeat(257)}),
        json!({"ip": "1.2.3.4", "reason": "x", "expires_at": "2000-01-01T00:00:00Z"}),
        json!({"user_id": 99999, "reason": "x"}),
    ] {
        let reply = app.call("POST", "/api/system/blacklist", Some(&root), Some(body.clone())).await;
        assert_eq!((reply.status.as_u16(), reply.code()), (422, "validation_failed"), "{body}");
    }
    let unknown = app
        .call(
            "POST",
            "/api/system/blacklist",
            Some(&root),
            Some(json!({"ip": "1.2.3.4", "reason": "x", "why": 1})),
        )
        .await;
    assert_eq!(unknown.code(), "invalid_body");
    assert_eq!(app.count("blacklist").await, 0);
    assert_eq!(app.count("audit_log").await, 0);
    for (method, path) in [
        ("GET", "/api/system/blacklist"),
        ("POST", "/api/system/blacklist"),
        ("DELETE", "/api/system/blacklist/1"),
    ] {
        let body = (method == "POST").then(|| json!({"ip": "1.2.3.4", "reason": "x"}));
        assert_eq!(app.call(method, path, Some(&member), body.clone()).await.code(), "forbidden");
        assert_eq!(app.call(method, path, None, body).await.status, 401);
    }
}
