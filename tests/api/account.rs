use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn register_login_me_logout() {
    let app = spawn_app().await;
    let id = app.register("alice").await;
    let token = app.login("alice@example.com").await;

    let me = app.call("GET", "/api/me", Some(&token), None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["id"], id);
    assert_eq!(me.body["status"], "unverified");
    assert!(me.body.get("password_hash").is_none());

    let out = app.call("POST", "/api/auth/logout", Some(&token), None).await;
    assert_eq!(out.status, 204);
    let after = app.call("GET", "/api/me", Some(&token), None).await;
    assert_eq!(after.status, 401);
    assert_eq!(after.code(), "unauthenticated");
}

#[actix_web::test]
async fn duplicate_username_or_email_is_a_409() {
    let app = spawn_app().await;
    app.register("bob").await;
    let same_name = app
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"username": "BOB", "email": "other@example.com", "password": "password-123"})),
        )
        .await;
    assert_eq!((same_name.status.as_u16(), same_name.code()), (409, "username_taken"));
    let same_email = app
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"username": "bobby", "email": "Bob@example.com", "password": "password-123"})),
        )
        .await;
    assert_eq!((same_email.status.as_u16(), same_email.code()), (409, "email_taken"));
}

#[actix_web::test]
async fn invalid_registration_reports_each_field_and_writes_nothing() {
    let app = spawn_app().await;
    let reply = app
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"username": "x", "email": "nope", "password": "short"})),
        )
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.code(), "validation_failed");
    let fields: Vec<&str> =
        reply.body["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["username", "email", "password"]);
    let long = "a".repeat(300);
    let too_long = app
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"username": long, "email": "a@b.io", "password": "password-123"})),
        )
        .await;
    assert_eq!(too_long.body["details"][0]["problem"], "too_long");
    let client = app.db.get().await.unwrap();
    let count: i64 = client.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0);
    assert_eq!(count, 0);
}

#[actix_web::test]
async fn malformed_and_mistyped_bodies_get_the_error_contract() {
    let app = spawn_app().await;
    let broken =
        app.call_raw("POST", "/api/auth/register", None, "application/json", "{\"username\": ").await;
    assert_eq!((broken.status.as_u16(), broken.code()), (400, "malformed_json"));
    let wrong_type = app
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"username": 5, "email": "a@b.io", "password": "password-123"})),
        )
        .await;
    assert_eq!((wrong_type.status.as_u16(), wrong_type.code()), (422, "invalid_body"));
    let missing = app.call("POST", "/api/auth/register", None, Some(json!({"username": "carol"}))).await;
    assert_eq!((missing.status.as_u16(), missing.code()), (422, "invalid_body"));
    let unknown = app
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"username": "carol", "email": "c@b.io", "password": "password-123", "admin": true})),
        )
        .await;
    assert_eq!((unknown.status.as_u16(), unknown.code()), (422, "invalid_body"));
    let not_json = app.call_raw("POST", "/api/auth/register", None, "text/plain", "hello").await;
    assert_eq!((not_json.status.as_u16(), not_json.code()), (400, "malformed_json"));
}

#[actix_web::test]
async fn wrong_password_is_refused_and_repeated_failures_are_throttled() {
    let app = spawn_app().await;
    app.register("dave").await;
    for _ in 0..app.settings.auth.login_max_failures {
        let reply = app
            .call("POST", "/api/auth/login", None, Some(json!({"login": "dave", "password": "wrong-pass-1"})))
            .await;
        assert_eq!((reply.status.as_u16(), reply.code()), (401, "invalid_credentials"));
    }
    let throttled = app
        .call("POST", "/api/auth/login", None, Some(json!({"login": "dave", "password": "password-123"})))
        .await;
    assert_eq!((throttled.status.as_u16(), throttled.code()), (429, "rate_limited"));
    assert!(throttled.headers.contains_key("retry-after"));
}

#[actix_web::test]
async fn many_people_logging_in_at_once_from_one_address_are_not_throttled() {
    let app = spawn_app().await;
    let people: Vec<String> =
        (0..app.settings.auth.login_max_failures * 3).map(|i| format!("office{i}")).collect();
    for name in &people {
        app.register(name).await;
    }
    let logins = people.iter().map(|name| {
        app.call("POST", "/api/auth/login", None, Some(json!({"login": name, "password": "password-123"})))
    });
    for reply in futures_util::future::join_all(logins).await {
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    // Parallel guesses at one account get no more tries than the limit.
    app.register("target").await;
    let guesses = (0..app.settings.auth.login_max_failures * 3).map(|i| {
        let body = json!({"login": "target", "password": format!("guess-{i}-xyz")});
        app.call("POST", "/api/auth/login", None, Some(body))
    });
    let replies = futures_util::future::join_all(guesses).await;
    let checked = replies.iter().filter(|r| r.code() == "invalid_credentials").count();
    assert!(checked <= app.settings.auth.login_max_failures as usize, "{checked} guesses were checked");
}

#[actix_web::test]
async fn sessions_are_listed_and_revoked_and_logout_all_ends_every_one() {
    let app = spawn_app().await;
    app.register("erin").await;
    let first = app.login("erin").await;
    let second = app.login("erin").await;
    let list = app.call("GET", "/api/auth/sessions", Some(&first), None).await;
    assert_eq!(list.status, 200);
    let sessions = list.body.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.call("DELETE", &format!("/api/auth/sessions/{other}"), Some(&first), None).await.status,
        204
    );
    assert_eq!(app.call("GET", "/api/me", Some(&second), None).await.status, 401);
    assert_eq!(app.call("DELETE", "/api/auth/sessions/not-mine", Some(&first), None).await.status, 404);

    let third = app.login("erin").await;
    assert_eq!(app.call("POST", "/api/auth/logout-all", Some(&first), None).await.status, 204);
    assert_eq!(app.call("GET", "/api/me", Some(&first), None).await.status, 401);
    assert_eq!(app.call("GET", "/api/me", Some(&third), None).await.status, 401);
}

#[actix_web::test]
async fn missing_or_garbage_tokens_are_401() {
    let app = spawn_app().await;
    assert_eq!(app.call("GET", "/api/me", None, None).await.code(), "unauthenticated");
    assert_eq!(app.call("GET", "/api/me", Some("garbage"), None).await.status, 401);
}

#[actix_web::test]
async fn create_admin_makes_an_active_account_and_members_start_unverified() {
    let app = spawn_app().await;
    let (admin_id, admin_token) = app.admin("root").await;
    let (member_id, member_token) = app.member("frank").await;
    let admin = app.call("GET", "/api/me", Some(&admin_token), None).await;
    assert_eq!((admin.body["id"].as_i64(), admin.body["status"].as_str()), (Some(admin_id), Some("active")));
    let member = app.call("GET", "/api/me", Some(&member_token), None).await;
    assert_eq!(
        (member.body["id"].as_i64(), member.body["status"].as_str()),
        (Some(member_id), Some("unverified"))
    );
}

#[actix_web::test]
async fn an_expired_session_stops_working_even_if_cached() {
    let (mut settings, db_name) = crate::helpers::fresh_settings().await;
    settings.auth.session_ttl_secs = 1;
    let app = crate::helpers::spawn_app_with(settings, db_name).await;
    let (_, token) = app.member("brief").await;
    assert_eq!(app.call("GET", "/api/me", Some(&token), None).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let expired = app.call("GET", "/api/me", Some(&token), None).await;
    assert_eq!((expired.status.as_u16(), expired.code()), (401, "unauthenticated"));
}
