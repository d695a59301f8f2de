use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn profile_is_updated_cleared_and_validated_per_field() {
    let app = spawn_app().await;
    let (_, token) = app.member("gina").await;
    let body = json!({"nickname": "Gi", "avatar_url": "https://img.example.com/g.png", "gender": "female", "phone": "+1 555-0100"});
    let updated = app.call("PATCH", "/api/me", Some(&token), Some(body)).await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["nickname"], "Gi");
    assert_eq!(updated.body["gender"], "female");
    assert!(updated.body.get("password_hash").is_none());

    let cleared = app.call("PATCH", "/api/me", Some(&token), Some(json!({"nickname": null}))).await;
    assert_eq!(cleared.body["nickname"], serde_json::Value::Null);
    assert_eq!(cleared.body["phone"], "+1 555-0100");

    let bad = json!({"nickname": "x".repeat(33), "avatar_url": "ftp://x", "gender": "robot", "phone": "abc"});
    let refused = app.call("PATCH", "/api/me", Some(&token), Some(bad)).await;
    assert_eq!((refused.status.as_u16(), refused.code()), (422, "validation_failed"));
    let fields: Vec<&str> =
        refused.body["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["nickname", "avatar_url", "gender", "phone"]);
    let me = app.call("GET", "/api/me", Some(&token), None).await;
    assert_eq!(me.body["gender"], "female", "a refused patch writes nothing");

    let unknown = app.call("PATCH", "/api/me", Some(&token), Some(json!({"status": "active"}))).await;
    assert_eq!((unknown.status.as_u16(), unknown.code()), (422, "invalid_body"));
    let wrong_type = app.call("PATCH", "/api/me", Some(&token), Some(json!({"nickname": 5}))).await;
    assert_eq!(wrong_type.code(), "invalid_body");
    let broken = app.call_raw("PATCH", "/api/me", Some(&token), "application/json", "{").await;
    assert_eq!(broken.code(), "malformed_json");
    assert_eq!(app.call("PATCH", "/api/me", None, Some(json!({}))).await.status, 401);
}

#[actix_web::test]
async fn password_change_keeps_this_session_and_ends_the_others() {
    let app = spawn_app().await;
    let (_, token) = app.member("hank").await;
    let other = app.login("hank").await;
    let wrong = app
        .call(
            "POST",
            "/api/me/password",
            Some(&token),
            Some(json!({"current_password": "nope-nope-1", "new_password": "fresh-pass-9"})),
        )
        .await;
    assert_eq!((wrong.status.as_u16(), wrong.code()), (403, "wrong_password"));
    let weak = app
        .call(
            "POST",
            "/api/me/password",
            Some(&token),
            Some(json!({"current_password": "password-123", "new_password": "short"})),
        )
        .await;
    assert_eq!(
        (weak.status.as_u16(), weak.body["details"][0]["field"].as_str()),
        (422, Some("new_password"))
    );
    let changed = app
        .call(
            "POST",
            "/api/me/password",
            Some(&token),
            Some(json!({"current_password": "password-123", "new_password": "fresh-pass-9"})),
        )
        .await;
    assert_eq!(changed.status, 204);
    assert_eq!(app.call("GET", "/api/me", Some(&token), None).await.status, 200);
    assert_eq!(app.call("GET", "/api/me", Some(&other), None).await.status, 401);
    let old = app
        .call("POST", "/api/auth/login", None, Some(json!({"login": "hank", "password": "password-123"})))
        .await;
    assert_eq!(old.status, 401);
    let new = app
        .call("POST", "/api/auth/login", None, Some(json!({"login": "hank", "password": "fresh-pass-9"})))
        .await;
    assert_eq!(new.status, 200);
}

#[actix_web::test]
async fn email_verification_activates_the_account_once() {
    let app = spawn_app().await;
    let (id, token) = app.member("ivy").await;
    assert_eq!(app.count("email_outbox").await, 1, "registration mails a token");
    let again = app.call("POST", "/api/me/email-verification", Some(&token), None).await;
    assert_eq!(again.status, 202);
    let mailed = app.mailed_token(id).await;
    let client = app.db.get().await.unwrap();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM email_verification_tokens WHERE token_hash = $1", &[&mailed])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "only the hash is stored");

    let bogus = app.call("POST", "/api/auth/verify-email", None, Some(json!({"token": "deadbeef"}))).await;
    assert_eq!((bogus.status.as_u16(), bogus.code()), (422, "invalid_token"));
    let verified = app.call("POST", "/api/auth/verify-email", None, Some(json!({"token": mailed}))).await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    assert_eq!(
        (verified.body["status"].as_str(), verified.body["email_verified"].as_bool()),
        (Some("active"), Some(true))
    );
    let reused = app.call("POST", "/api/auth/verify-email", None, Some(json!({"token": mailed}))).await;
    assert_eq!(reused.code(), "invalid_token");
    let done = app.call("POST", "/api/me/email-verification", Some(&token), None).await;
    assert_eq!((done.status.as_u16(), done.code()), (409, "invalid_state"));
}

#[actix_web::test]
async fn expired_verification_tokens_are_refused() {
    let app = spawn_app().await;
    let (id, _) = app.member("jack").await;
    let mailed = app.mailed_token(id).await;
    let client = app.db.get().await.unwrap();
    client
        .execute("UPDATE email_verification_tokens SET expires_at = now() - interval '1 second'", &[])
        .await
        .unwrap();
    let reply = app.call("POST", "/api/auth/verify-email", None, Some(json!({"token": mailed}))).await;
    assert_eq!(reply.code(), "invalid_token");
}

#[actix_web::test]
async fn the_cached_profile_follows_every_change_at_once() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (id, token) = app.member("cached").await;
    assert_eq!(
        app.call("GET", "/api/me", Some(&token), None).await.body["nickname"],
        serde_json::Value::Null
    );

    let own = app.call("PATCH", "/api/me", Some(&token), Some(json!({"nickname": "Mine"}))).await;
    assert_eq!(own.status, 200, "{:?}", own.body);
    assert_eq!(app.call("GET", "/api/me", Some(&token), None).await.body["nickname"], "Mine");

    let by_admin = app
        .call(
            "PATCH",
            &format!("/api/system/members/{id}"),
            Some(&admin),
            Some(json!({"nickname": "Theirs"})),
        )
        .await;
    assert_eq!(by_admin.status, 200, "{:?}", by_admin.body);
    assert_eq!(app.call("GET", "/api/me", Some(&token), None).await.body["nickname"], "Theirs");
}
