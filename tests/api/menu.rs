use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

async fn create(app: &TestApp, token: &str, body: Value) -> i64 {
    let reply = app.call("POST", "/api/system/menus", Some(token), Some(body)).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body["id"].as_i64().unwrap()
}

#[actix_web::test]
async fn each_caller_sees_the_menu_tree_their_permissions_allow() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (_, member) = app.member("pia").await;
    let home = create(&app, &admin, json!({"name": "Home", "uri": "/", "sort_order": 1})).await;
    let system = create(
        &app,
        &admin,
        json!({"name": "System", "required_permission": "admin.manage", "sort_order": 0}),
    )
    .await;
    create(&app, &admin, json!({"name": "Admins", "parent_id": system, "uri": "/admins"})).await;
    create(&app, &admin, json!({"name": "Orders", "parent_id": home, "sort_order": 2})).await;
    create(&app, &admin, json!({"name": "Cart", "parent_id": home, "sort_order": 1})).await;
    create(&app, &admin, json!({"name": "Hidden", "shown": false})).await;
    create(&app, &admin, json!({"name": "Off", "status": "disabled"})).await;

    let mine = app.call("GET", "/api/auth/menus", Some(&member), None).await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.body.as_array().unwrap().len(), 1);
    assert_eq!(mine.body[0]["name"], "Home");
    let children: Vec<&str> =
        mine.body[0]["children"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(children, ["Cart", "Orders"]);

    let theirs = app.call("GET", "/api/auth/menus", Some(&admin), None).await;
    let roots: Vec<&str> =
        theirs.body.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(roots, ["System", "Home"]);
    assert_eq!(theirs.body[0]["children"][0]["name"], "Admins");
    assert_eq!(app.call("GET", "/api/auth/menus", None, None).await.status, 401);
}

#[actix_web::test]
async fn menus_are_read_updated_and_deleted_by_menu_managers_only() {
    let app = spawn_app().await;
    let (_, admin) = app.admin("root").await;
    let (_, member) = app.member("quin").await;
    let root = create(&app, &admin, json!({"name": "Root"})).await;
    let child = create(&app, &admin, json!({"name": "Child", "parent_id": root})).await;
    let one = app.call("GET", &format!("/api/system/menus/{child}"), Some(&admin), None).await;
    assert_eq!(one.body["parent_id"], root);
    let list = app.call("GET", "/api/system/menus?per_page=1", Some(&admin), None).await;
    assert_eq!((list.body["total"].as_i64(), list.body["items"].as_array().unwrap().len()), (Some(2), 1));

    let cycle = app
        .call("PATCH", &format!("/api/system/menus/{root}"), Some(&admin), Some(json!({"parent_id": child})))
        .await;
    assert_eq!((cycle.status.as_u16(), cycle.body["details"][0]["problem"].as_str()), (422, Some("cycle")));
    let moved = app
        .call(
            "PATCH",
            &format!("/api/system/menus/{child}"),
            Some(&admin),
            Some(json!({"parent_id": null, "required_permission": "audit.read", "name": "Logs"})),
        )
        .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!((moved.body["parent_id"].clone(), moved.body["name"].as_str()), (Value::Null, Some("Logs")));

    let before = app.count("menus").await;
    let bad = app
        .call(
            "POST",
            "/api/system/menus",
            Some(&admin),
            Some(json!({"name": "", "status": "maybe", "required_permission": "fly", "parent_id": 999})),
        )
        .await;
    assert_eq!(bad.code(), "validation_failed");
    assert_eq!(bad.body["details"].as_array().unwrap().len(), 4);
    let unknown =
        app.call("POST", "/api/system/menus", Some(&admin), Some(json!({"name": "x", "icon": "y"}))).await;
    assert_eq!(unknown.code(), "invalid_body");
    assert_eq!(app.count("menus").await, before);

    for (method, path) in [
        ("GET", "/api/system/menus".to_owned()),
        ("POST", "/api/system/menus".to_owned()),
        ("GET", format!("/api/system/menus/{root}")),
        ("PATCH", format!("/api/system/menus/{root}")),
        ("DELETE", format!("/api/system/menus/{root}")),
    ] {
        let body = matches!(method, "POST" | "PATCH").then(|| json!({"name": "x"}));
        assert_eq!(app.call(method, &path, Some(&member), body.clone()).await.code(), "forbidden");
        assert_eq!(app.call(method, &path, None, body).await.status, 401);
    }
    assert_eq!(
        app.call("DELETE", &format!("/api/system/menus/{root}"), Some(&admin), None).await.status,
        204
    );
    assert_eq!(app.call("GET", &format!("/api/system/menus/{root}"), Some(&admin), None).await.status, 404);
}
