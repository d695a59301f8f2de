//! The address book: one default at all times, ownership, validation and
//! the size limit.

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

fn address(recipient: &str) -> Value {
    json!({
        "recipient": recipient,
        "phone": "+86 138 0000 0000",
        "region": "Zhejiang Hangzhou Xihu",
        "detail": "1 Lakeside Road, Room 301",
        "postal_code": "310000"
    })
}

async fn create(app: &TestApp, token: &str, body: Value) -> i64 {
    let reply = app.call("POST", "/api/addresses", Some(token), Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_i64().unwrap()
}

/// `(id, is_default)` of the caller's addresses, in list order.
async fn book(app: &TestApp, token: &str) -> Vec<(i64, bool)> {
    let reply = app.call("GET", "/api/addresses", Some(token), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_i64().unwrap(), a["is_default"] == true))
        .collect()
}

#[actix_web::test]
async fn a_non_empty_address_book_always_has_exactly_one_default() {
    let app = spawn_app().await;
    let (_, token) = app.member("alice").await;

    let home = create(&app, &token, address("Alice")).await;
    assert_eq!(book(&app, &token).await, [(home, true)], "the first address is the default");
    let office = create(&app, &token, address("Alice at work")).await;
    let mut parents = address("Alice's parents");
    parents["is_default"] = json!(true);
    let parents = create(&app, &token, parents).await;
    assert_eq!(book(&app, &token).await, [(parents, true), (office, false), (home, false)]);

    let reply = app.call("POST", &format!("/api/addresses/{office}/default"), Some(&token), None).await;
    assert_eq!((reply.status, reply.body["is_default"].clone()), (StatusCode::OK, json!(true)));
    assert_eq!(book(&app, &token).await, [(office, true), (parents, false), (home, false)]);

    // Deleting the default promotes the most recently added other address.
    let reply = app.call("DELETE", &format!("/api/addresses/{office}"), Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(book(&app, &token).await, [(parents, true), (home, false)]);
    app.call("DELETE", &format!("/api/addresses/{parents}"), Some(&token), None).await;
    assert_eq!(book(&app, &token).await, [(home, true)]);

    // The default cannot be unmarked by itself; other fields change.
    let mut edit = address("Alice Liddell");
    edit["is_default"] = json!(false);
    let reply = app.call("PUT", &format!("/api/addresses/{home}"), Some(&token), Some(edit)).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "invalid_state"));
    let mut edit = address("Alice Liddell");
    edit["postal_code"] = json!("");
    let reply = app.call("PUT", &format!("/api/addresses/{home}"), Some(&token), Some(edit)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        (&reply.body["recipient"], &reply.body["postal_code"], &reply.body["is_default"]),
        (&json!("Alice Liddell"), &Value::Null, &json!(true))
    );
    // Making another address the default through PUT unmarks the old one.
    let second = create(&app, &token, address("Alice again")).await;
    let mut edit = address("Alice again");
    edit["is_default"] = json!(true);
    app.call("PUT", &format!("/api/addresses/{second}"), Some(&token), Some(edit)).await;
    assert_eq!(book(&app, &token).await, [(second, true), (home, false)]);
    assert_eq!(app.count("addresses WHERE is_default").await, 1);
}

#[actix_web::test]
async fn another_users_address_is_a_404() {
    let app = spawn_app().await;
    let (_, alice) = app.member("alice").await;
    let (_, bob) = app.member("bob").await;
    let id = create(&app, &alice, address("Alice")).await;

    assert!(book(&app, &bob).await.is_empty());
    let path = format!("/api/addresses/{id}");
    for (method, path, body) in [
        ("PUT", path.clone(), Some(address("Bob"))),
        ("DELETE", path.clone(), None),
        ("POST", format!("{path}/default"), None),
    ] {
        let reply = app.call(method, &path, Some(&bob), body).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"), "{method} {path}");
    }
    assert_eq!(book(&app, &alice).await, [(id, true)]);
    let reply = app.call("GET", "/api/addresses", None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn invalid_addresses_get_422s_per_field_and_a_book_holds_twenty() {
    let app = spawn_app().await;
    let (_, token) = app.member("carol").await;

    let bad = json!({"recipient": " ", "phone": "call me", "region": "", "detail": "x".repeat(201), "postal_code": "#1"});
    let reply = app.call("POST", "/api/addresses", Some(&token), Some(bad)).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let problems: Vec<(&str, &str)> = reply.body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["field"].as_str().unwrap(), d["problem"].as_str().unwrap()))
        .collect();
    assert_eq!(
        problems,
        [
            ("recipient", "required"),
            ("region", "required"),
            ("detail", "too_long"),
            ("phone", "invalid_format"),
            ("postal_code", "invalid_format")
        ]
    );
    let reply = app.call("POST", "/api/addresses", Some(&token), Some(json!({"recipient": "Carol"}))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"));
    assert_eq!(app.count("addresses").await, 0);

    for i in 0..20 {
        create(&app, &token, address(&format!("Carol {i}"))).await;
    }
    let reply = app.call("POST", "/api/addresses", Some(&token), Some(address("Carol 21"))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "address_book_full"));
    assert_eq!(app.count("addresses").await, 20);
    assert_eq!(app.count("addresses WHERE is_default").await, 1);
}
