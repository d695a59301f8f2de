use serde_json::{json, Value};

use crate::catalog_fixture::Product;
use crate::helpers::{spawn_app, TestApp};

impl TestApp {
    /// Creates a category as `token`; returns the reply.
    async fn post_category(&self, token: &str, body: Value) -> crate::helpers::Reply {
        self.call("POST", "/api/system/categories", Some(token), Some(body)).await
    }

    /// Creates a category as `token` and returns its id.
    async fn create_category(&self, token: &str, name: &str, parent_id: Option<i64>, sort_order: i32) -> i64 {
        let reply = self
            .post_category(token, json!({"name": name, "parent_id": parent_id, "sort_order": sort_order}))
            .await;
        assert_eq!(reply.status, 201, "{name}: {:?}", reply.body);
        reply.body["id"].as_i64().unwrap()
    }

    async fn patch_category(&self, token: &str, id: i64, body: Value) -> crate::helpers::Reply {
        self.call("PATCH", &format!("/api/system/categories/{id}"), Some(token), Some(body)).await
    }
}

/// The public tree as nested `(name, [children])`.
fn shape(nodes: &Value) -> Vec<(String, Vec<Value>)> {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap().to_owned(), n["children"].as_array().unwrap().clone()))
        .collect()
}

fn names(nodes: &Value) -> Vec<&str> {
    nodes.as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect()
}

#[actix_web::test]
async fn operators_build_reorder_and_move_the_public_tree() {
    let app = spawn_app().await;
    let (_, root) = app.admin("root").await;
    let electronics = app.create_category(&root, "Electronics", None, 2).await;
    app.create_category(&root, "Books", None, 1).await;
    app.create_category(&root, "Clothing", None, 1).await;
    let phones = app.create_category(&root, "Phones", Some(electronics), 0).await;
    let laptops = app.create_category(&root, "Laptops", Some(electronics), 0).await;
    app.create_category(&root, "Android", Some(phones), 0).await;

    let tree = app.call("GET", "/api/categories", None, None).await;
    assert_eq!(tree.status, 200);
    assert_eq!(names(&tree.body), ["Books", "Clothing", "Electronics"]);
    let electronics_node = &tree.body[2];
    assert_eq!(electronics_node["id"], electronics);
    assert_eq!(names(&electronics_node["children"]), ["Phones", "Laptops"]);
    assert_eq!(names(&electronics_node["children"][0]["children"]), ["Android"]);

    let moved = app.patch_category(&root, laptops, json!({"sort_order": -1, "name": " Notebooks "})).await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(
        (moved.body["name"].as_str(), moved.body["parent_id"].as_i64()),
        (Some("Notebooks"), Some(electronics))
    );
    let to_root = app.patch_category(&root, phones, json!({"parent_id": null})).await;
    assert_eq!(to_root.status, 200, "{:?}", to_root.body);
    assert_eq!(to_root.body["parent_id"], Value::Null);

    let tree = app.call("GET", "/api/categories", None, None).await;
    let top = shape(&tree.body);
    assert_eq!(
        top.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["Phones", "Books", "Clothing", "Electronics"]
    );
    assert_eq!(names(&tree.body[0]["children"]), ["Android"]);
    assert_eq!(names(&tree.body[3]["children"]), ["Notebooks"]);

    let audit = app.call("GET", "/api/system/audit-log?action=category.update", Some(&root), None).await;
    assert_eq!(audit.body["total"], 2);
    assert_eq!(audit.body["items"][0]["target"], format!("category:{phones}"));
    assert_eq!(audit.body["items"][0]["detail"]["parent_id"], Value::Null);
    let created = app.call("GET", "/api/system/audit-log?action=category.create", Some(&root), None).await;
    assert_eq!(created.body["total"], 6);
}

#[actix_web::test]
async fn names_parents_and_cycles_are_checked() {
    let app = spawn_app().await;
    let (_, root) = app.admin("root").await;
    let books = app.create_category(&root, "Books", None, 0).await;
    let fiction = app.create_category(&root, "Fiction", Some(books), 0).await;
    let crime = app.create_category(&root, "Crime", Some(fiction), 0).await;

    for (body, field, problem) in [
        (json!({"name": "  "}), "name", "required"),
        (json!({"name": "x".repeat(61)}), "name", "too_long"),
        (json!({"name": "Maps", "parent_id": 9999}), "parent_id", "not_found"),
    ] {
        let reply = app.post_category(&root, body.clone()).await;
        assert_eq!((reply.status.as_u16(), reply.code()), (422, "validation_failed"), "{body}");
        assert_eq!(reply.body["details"], json!([{"field": field, "problem": problem}]), "{body}");
    }
    assert_eq!(app.post_category(&root, json!({"parent_id": books})).await.code(), "invalid_body");
    let twin = app.post_category(&root, json!({"name": "BOOKS"})).await;
    assert_eq!((twin.status.as_u16(), twin.code()), (409, "conflict"));
    // The same name elsewhere in the tree is fine.
    app.create_category(&root, "Crime", Some(books), 0).await;

    for parent in [books, fiction, crime] {
        let reply = app.patch_category(&root, books, json!({"parent_id": parent})).await;
        assert_eq!((reply.status.as_u16(), reply.code()), (422, "validation_failed"), "under {parent}");
        assert_eq!(reply.body["details"], json!([{"field": "parent_id", "problem": "cycle"}]));
    }
    let rename = app.patch_category(&root, crime, json!({"name": "fiction"})).await;
    assert_eq!(rename.status, 200, "a child may share its parent's name: {:?}", rename.body);
    let clash = app.patch_category(&root, fiction, json!({"name": "crime"})).await;
    assert_eq!((clash.status.as_u16(), clash.code()), (409, "conflict"), "sibling Crime under Books");
    let gone = app.patch_category(&root, 9999, json!({"name": "x"})).await;
    assert_eq!(gone.status, 404);
    assert_eq!(app.count("categories").await, 4);
}

#[actix_web::test]
async fn only_an_empty_category_can_be_deleted() {
    let app = spawn_app().await;
    let (_, root) = app.admin("root").await;
    let phones = app.create_category(&root, "Phones", None, 0).await;
    let android = app.create_category(&root, "Android", Some(phones), 0).await;
    let shop = app.active_shop("acme", "Acme").await;
    app.product(&Product::new(shop, android, "Pixel", 100)).await;
    let path = |id: i64| format!("/api/system/categories/{id}");

    let parent = app.call("DELETE", &path(phones), Some(&root), None).await;
    assert_eq!((parent.status.as_u16(), parent.code()), (409, "invalid_state"));
    assert!(parent.body["message"].as_str().unwrap().contains("subcategories"), "{:?}", parent.body);
    let filled = app.call("DELETE", &path(android), Some(&root), None).await;
    assert_eq!((filled.status.as_u16(), filled.code()), (409, "invalid_state"));
    assert!(filled.body["message"].as_str().unwrap().contains("products"), "{:?}", filled.body);

    let empty = app.create_category(&root, "Feature phones", Some(phones), 0).await;
    assert_eq!(app.call("DELETE", &path(empty), Some(&root), None).await.status, 204);
    assert_eq!(app.call("DELETE", &path(empty), Some(&root), None).await.status, 404);
    let audit = app.call("GET", "/api/system/audit-log?action=category.delete", Some(&root), None).await;
    assert_eq!(audit.body["items"][0]["target"], format!("category:{empty}"));
    assert_eq!(audit.body["total"], 1);
}

#[actix_web::test]
async fn renaming_or_moving_a_category_refreshes_product_pages_at_once() {
    let app = spawn_app().await;
    let (_, root) = app.admin("root").await;
    let phones = app.create_category(&root, "Phones", None, 0).await;
    let electronics = app.create_category(&root, "Electronics", None, 0).await;
    let shop = app.active_shop("acme", "Acme").await;
    let id = app.product(&Product::new(shop, phones, "Pixel", 100)).await;
    let page = format!("/api/products/{id}");
    assert_eq!(app.call("GET", &page, None, None).await.body["category"]["name"], "Phones");

    let renamed =
        app.patch_category(&root, phones, json!({"name": "Mobiles", "parent_id": electronics})).await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    let detail = app.call("GET", &page, None, None).await.body;
    assert_eq!(detail["category"], json!({"id": phones, "name": "Mobiles"}));
    assert_eq!(detail["category_path"], json!([{"id": electronics, "name": "Electronics"}]));
}

#[actix_web::test]
async fn members_cannot_manage_categories_and_strangers_must_sign_in() {
    let app = spawn_app().await;
    let (_, member) = app.member("zed").await;
    for (method, path) in [
        ("POST", "/api/system/categories"),
        ("PATCH", "/api/system/categories/1"),
        ("DELETE", "/api/system/categories/1"),
    ] {
        let body = (method != "DELETE").then(|| json!({"name": "x"}));
        let forbidden = app.call(method, path, Some(&member), body.clone()).await;
        assert_eq!((forbidden.status.as_u16(), forbidden.code()), (403, "forbidden"), "{method} {path}");
        assert_eq!(app.call(method, path, None, body).await.status, 401, "{method} {path}");
    }
    assert_eq!(app.count("categories").await, 0);
    let tree = app.call("GET", "/api/categories", None, None).await;
    assert_eq!((tree.status.as_u16(), tree.body.clone()), (200, json!([])));
}
