use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

async fn allowed(app: &TestApp, token: &str, permission: &str) -> bool {
    let reply =
        app.call("POST", "/api/auth/check", Some(token), Some(json!({"permission": permission}))).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body["allowed"].as_bool().unwrap()
}

async fn role_id(app: &TestApp, token: &str, name: &str) -> i64 {
    let roles = app.call("GET", "/api/system/roles", Some(token), None).await;
    roles.body["items"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["id"]
        .as_i64()
        .unwrap()
}

#[actix_web::test]
async fn custom_roles_are_created_granted_changed_and_deleted_with_immediate_effect() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (kim, kim_token) = app.member("kim").await;
    let perms = app.call("GET", "/api/system/permissions", Some(&admin), None).await;
    assert!(perms.body.as_array().unwrap().contains(&json!("menu.manage")));

    let created = app
        .call(
            "POST",
            "/api/system/roles",
            Some(&admin),
            Some(json!({"name": "editor", "description": "menus", "permissions": ["menu.manage", "menu.manage"]})),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["permissions"], json!(["menu.manage"]));
    let id = created.body["id"].as_i64().unwrap();
    let dup = app
        .call("POST", "/api/system/roles", Some(&admin), Some(json!({"name": "editor", "permissions": []})))
        .await;
    assert_eq!((dup.status.as_u16(), dup.code()), (409, "conflict"));

    assert!(!allowed(&app, &kim_token, "menu.manage").await);
    let grant = app.call("PUT", &format!("/api/system/users/{kim}/roles/{id}"), Some(&admin), None).await;
    assert_eq!(grant.status, 204);
    assert!(allowed(&app, &kim_token, "menu.manage").await, "a grant applies at once");

    let changed = app
        .call(
            "PATCH",
            &format!("/api/system/roles/{id}"),
            Some(&admin),
            Some(json!({"permissions": ["audit.read"]})),
        )
        .await;
    assert_eq!(changed.status, 200);
    assert!(!allowed(&app, &kim_token, "menu.manage").await);
    assert!(allowed(&app, &kim_token, "audit.read").await);

    let revoke = app.call("DELETE", &format!("/api/system/users/{kim}/roles/{id}"), Some(&admin), None).await;
    assert_eq!(revoke.status, 204);
    assert!(!allowed(&app, &kim_token, "audit.read").await);
    let again = app.call("DELETE", &format!("/api/system/users/{kim}/roles/{id}"), Some(&admin), None).await;
    assert_eq!(again.status, 404);

    assert_eq!(app.call("DELETE", &format!("/api/system/roles/{id}"), Some(&admin), None).await.status, 204);
    let audit = app.call("GET", "/api/system/audit-log?action=role.create", Some(&admin), None).await;
    assert_eq!(audit.body["total"], 1);
}

#[actix_web::test]
async fn built_in_roles_are_protected_and_bad_role_input_writes_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let member = role_id(&app, &admin, "member").await;
    let admin_role = role_id(&app, &admin, "admin").await;
    let delete = app.call("DELETE", &format!("/api/system/roles/{member}"), Some(&admin), None).await;
    assert_eq!((delete.status.as_u16(), delete.code()), (409, "invalid_state"));
    let rename = app
        .call("PATCH", &format!("/api/system/roles/{member}"), Some(&admin), Some(json!({"name": "shopper"})))
        .await;
    assert_eq!(rename.code(), "invalid_state");
    let strip = app
        .call(
            "PATCH",
            &format!("/api/system/roles/{admin_role}"),
            Some(&admin),
            Some(json!({"permissions": []})),
        )
        .await;
    assert_eq!(strip.code(), "invalid_state");

    let before = app.count("roles").await;
    let bad = app
        .call(
            "POST",
            "/api/system/roles",
            Some(&admin),
            Some(json!({"name": "Bad Name", "description": "d".repeat(300), "permissions": ["fly"]})),
        )
        .await;
    assert_eq!((bad.status.as_u16(), bad.code()), (422, "validation_failed"));
    let fields: Vec<&str> =
        bad.body["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "description", "permissions"]);
    let missing = app.call("POST", "/api/system/roles", Some(&admin), Some(json!({"name": "x1"}))).await;
    assert_eq!(missing.code(), "invalid_body");
    let wrong_type = app
        .call("POST", "/api/system/roles", Some(&admin), Some(json!({"name": "xy", "permissions": "all"})))
        .await;
    assert_eq!(wrong_type.code(), "invalid_body");
    assert_eq!(app.count("roles").await, before);
}

#[actix_web::test]
async fn groups_hold_members_and_roles() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (lee, lee_token) = app.member("lee").await;
    let group = app
        .call(
            "POST",
            "/api/system/groups",
            Some(&admin),
            Some(json!({"name": "auditors", "description": "read logs"})),
        )
        .await;
    assert_eq!(group.status, 201, "{:?}", group.body);
    let gid = group.body["id"].as_i64().unwrap();
    let renamed = app
        .call(
            "PATCH",
            &format!("/api/system/groups/{gid}"),
            Some(&admin),
            Some(json!({"name": "log-readers"})),
        )
        .await;
    assert_eq!(renamed.body["name"], "log-readers");

    let staff = role_id(&app, &admin, "staff").await;
    assert_eq!(
        app.call("PUT", &format!("/api/system/groups/{gid}/roles/{staff}"), Some(&admin), None).await.status,
        204
    );
    assert_eq!(
        app.call("PUT", &format!("/api/system/groups/{gid}/members/{lee}"), Some(&admin), None).await.status,
        204
    );
    assert!(allowed(&app, &lee_token, "audit.read").await);
    let members = app.call("GET", &format!("/api/system/groups/{gid}/members"), Some(&admin), None).await;
    assert_eq!(members.body["items"][0]["username"], "lee");
    let list = app.call("GET", "/api/system/groups", Some(&admin), None).await;
    assert_eq!(
        (list.body["total"].as_i64(), list.body["items"][0]["roles"].clone()),
        (Some(1), json!(["staff"]))
    );

    assert_eq!(
        app.call("DELETE", &format!("/api/system/groups/{gid}/roles/{staff}"), Some(&admin), None)
            .await
            .status,
        204
    );
    assert!(!allowed(&app, &lee_token, "audit.read").await);
    assert_eq!(
        app.call("PUT", &format!("/api/system/groups/{gid}/roles/{staff}"), Some(&admin), None).await.status,
        204
    );
    assert_eq!(
        app.call("DELETE", &format!("/api/system/groups/{gid}/members/{lee}"), Some(&admin), None)
            .await
            .status,
        204
    );
    assert!(!allowed(&app, &lee_token, "audit.read").await);
    assert_eq!(
        app.call("PUT", &format!("/api/system/groups/{gid}/members/{lee}"), Some(&admin), None).await.status,
        204
    );
    assert_eq!(
        app.call("DELETE", &format!("/api/system/groups/{gid}"), Some(&admin), None).await.status,
        204
    );
    assert!(!allowed(&app, &lee_token, "audit.read").await, "deleting a group takes its roles away");
    assert_eq!(
        app.call("PUT", &format!("/api/system/groups/{gid}/members/{lee}"), Some(&admin), None).await.status,
        404
    );
}

#[actix_web::test]
async fn rbac_endpoints_refuse_members_and_anonymous_callers() {
    let app = spawn_app().await;
    let (mia, member) = app.member("mia").await;
    for (method, path) in [
        ("GET", "/api/system/permissions".to_owned()),
        ("GET", "/api/system/roles".to_owned()),
        ("POST", "/api/system/roles".to_owned()),
        ("PATCH", "/api/system/roles/1".to_owned()),
        ("DELETE", "/api/system/roles/1".to_owned()),
        ("PUT", format!("/api/system/users/{mia}/roles/1")),
        ("DELETE", format!("/api/system/users/{mia}/roles/1")),
        ("GET", "/api/system/groups".to_owned()),
        ("POST", "/api/system/groups".to_owned()),
        ("PATCH", "/api/system/groups/1".to_owned()),
        ("DELETE", "/api/system/groups/1".to_owned()),
        ("GET", "/api/system/groups/1/members".to_owned()),
        ("PUT", format!("/api/system/groups/1/members/{mia}")),
        ("DELETE", format!("/api/system/groups/1/members/{mia}")),
        ("PUT", "/api/system/groups/1/roles/1".to_owned()),
        ("DELETE", "/api/system/groups/1/roles/1".to_owned()),
    ] {
        let body = matches!(method, "POST" | "PATCH").then(|| json!({"name": "zz", "permissions": []}));
        let forbidden = app.call(method, &path, Some(&member), body.clone()).await;
        assert_eq!((forbidden.status.as_u16(), forbidden.code()), (403, "forbidden"), "{method} {path}");
        let anonymous = app.call(method, &path, None, body).await;
        assert_eq!(anonymous.status, 401, "{method} {path}");
    }
    assert!(!allowed(&app, &member, "role.manage").await);
}

#[actix_web::test]
async fn role_managers_without_admin_manage_cannot_grant_admin() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (ned, ned_token) = app.member("ned").await;
    let (olga, _) = app.member("olga").await;
    let managers = app
        .call(
            "POST",
            "/api/system/roles",
            Some(&admin),
            Some(json!({"name": "rolemgr", "permissions": ["role.manage"]})),
        )
        .await;
    let rid = managers.body["id"].as_i64().unwrap();
    app.call("PUT", &format!("/api/system/users/{ned}/roles/{rid}"), Some(&admin), None).await;
    let admin_role = role_id(&app, &admin, "admin").await;
    let escalate = app
        .call("PUT", &format!("/api/system/users/{olga}/roles/{admin_role}"), Some(&ned_token), None)
        .await;
    assert_eq!((escalate.status.as_u16(), escalate.code()), (403, "forbidden"));
}

#[actix_web::test]
async fn role_managers_cannot_hand_out_permissions_they_do_not_hold() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (ned, ned_token) = app.member("ned").await;
    let (olga, olga_token) = app.member("olga").await;
    let role = |name: &str, permissions: serde_json::Value| json!({"name": name, "permissions": permissions});
    let managers = app
        .call("POST", "/api/system/roles", Some(&admin), Some(role("rolemgr", json!(["role.manage"]))))
        .await;
    let rid = managers.body["id"].as_i64().unwrap();
    app.call("PUT", &format!("/api/system/users/{ned}/roles/{rid}"), Some(&admin), None).await;

    // A new role, or a change to one, with more than ned holds.
    let create = app
        .call("POST", "/api/system/roles", Some(&ned_token), Some(role("payer", json!(["finance.manage"]))))
        .await;
    assert_eq!((create.status.as_u16(), create.code()), (403, "forbidden"), "{:?}", create.body);
    let member_role = role_id(&app, &admin, "member").await;
    let patch = app
        .call(
            "PATCH",
            &format!("/api/system/roles/{member_role}"),
            Some(&ned_token),
            Some(json!({"permissions": ["admin.manage"]})),
        )
        .await;
    assert_eq!((patch.status.as_u16(), patch.code()), (403, "forbidden"), "{:?}", patch.body);

    // Granting (to a user or a group ned can fill) a role stronger than his.
    let auditors = app
        .call("POST", "/api/system/roles", Some(&admin), Some(role("auditor", json!(["audit.read"]))))
        .await;
    let auditor = auditors.body["id"].as_i64().unwrap();
    let grant =
        app.call("PUT", &format!("/api/system/users/{olga}/roles/{auditor}"), Some(&ned_token), None).await;
    assert_eq!((grant.status.as_u16(), grant.code()), (403, "forbidden"), "{:?}", grant.body);
    let group =
        app.call("POST", "/api/system/groups", Some(&admin), Some(json!({"name": "audit team"}))).await;
    let gid = group.body["id"].as_i64().unwrap();
    app.call("PUT", &format!("/api/system/groups/{gid}/roles/{auditor}"), Some(&admin), None).await;
    let join =
        app.call("PUT", &format!("/api/system/groups/{gid}/members/{olga}"), Some(&ned_token), None).await;
    assert_eq!((join.status.as_u16(), join.code()), (403, "forbidden"), "{:?}", join.body);
    assert!(!allowed(&app, &olga_token, "audit.read").await);
    assert!(!allowed(&app, &ned_token, "finance.manage").await);

    // What he holds, he may hand out.
    let own = app
        .call("POST", "/api/system/roles", Some(&ned_token), Some(role("helper", json!(["role.manage"]))))
        .await;
    assert_eq!(own.status, 201, "{:?}", own.body);
}
