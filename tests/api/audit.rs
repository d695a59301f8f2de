use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn admin_actions_are_audited_with_actor_target_and_ip() {
    let app = spawn_app().await;
    let (root_id, root) = app.admin("root").await;
    let (abe, _) = app.member("abe").await;
    app.call_with(
        "POST",
        &format!("/api/system/members/{abe}/freeze"),
        Some(&root),
        None,
        &[("X-Forwarded-For", "192.0.2.5")],
    )
    .await;
    app.call("POST", "/api/system/groups", Some(&root), Some(json!({"name": "g"}))).await;

    let all = app.call("GET", "/api/system/audit-log", Some(&root), None).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body["total"], 2);
    assert_eq!(all.body["items"][0]["action"], "group.create", "newest first");
    let freeze = app
        .call(
            "GET",
            &format!("/api/system/audit-log?actor={root_id}&action=member.freeze"),
            Some(&root),
            None,
        )
        .await;
    let entry = &freeze.body["items"][0];
    assert_eq!(
        (entry["target"].as_str(), entry["ip"].as_str()),
        (Some(format!("user:{abe}").as_str()), Some("192.0.2.5"))
    );
    assert_eq!(entry["actor_username"], "root");
    let bad = app.call("GET", "/api/system/audit-log?actor=abc", Some(&root), None).await;
    assert_eq!(bad.code(), "invalid_query");

    let (_, member) = app.member("bea").await;
    assert_eq!(app.call("GET", "/api/system/audit-log", Some(&member), None).await.code(), "forbidden");
    assert_eq!(app.call("GET", "/api/system/audit-log", None, None).await.status, 401);
}
