//! Saved payment accounts: masked numbers only, per-field validation, the
//! limit, ownership, and payment passwords that are hashed, checked and
//! throttled.

use awc::http::StatusCode;
use rs_cms::error::ErrorCode;
use rs_cms::pay_account::service::verify_payment_password;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// One account of every provider kind: (provider, number, expected mask).
const ACCOUNTS: &[(&str, &str, &str)] = &[
    ("bank", "4242 4242 4242 4242", "**** **** **** 4242"),
    ("sandbox", "4000056655665556", "**** **** **** 5556"),
    ("alipay", "13800138000", "138****8000"),
    ("wechat", "li.lei@example.com", "l***@example.com"),
    ("btc", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "bc1qar…5mdq"),
    ("eth", "0x52908400098527886E0F7030069857D2E4169EE7", "0x5290…9EE7"),
    ("usdt", "0xdAC17F958D2ee523a2206206994597C13D831ec7", "0xdAC1…1ec7"),
    ("doge", "DH5yaieqoZN36fDVciNyRueRGvGLR3mr7L", "DH5yai…mr7L"),
];

fn account(provider: &str, number: &str) -> Value {
    json!({"provider": provider, "holder_name": "Li Lei", "account_number": number})
}

async fn create(app: &TestApp, token: &str, body: Value) -> i64 {
    let reply = app.call("POST", "/api/me/pay-accounts", Some(token), Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["id"].as_i64().unwrap()
}

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    let reply = app.call("GET", "/api/me/pay-accounts", Some(token), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body.as_array().unwrap().clone()
}

/// `(field, problem)` of a 422's details.
fn problems(body: &Value) -> Vec<(String, String)> {
    body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["field"].as_str().unwrap().to_owned(), d["problem"].as_str().unwrap().to_owned()))
        .collect()
}

#[actix_web::test]
async fn every_provider_kind_is_saved_with_only_a_masked_number() {
    let app = spawn_app().await;
    let (_, token) = app.member("alice").await;

    let mut ids = Vec::new();
    for (i, (provider, number, mask)) in ACCOUNTS.iter().enumerate() {
        let mut body = account(provider, number);
        if i == 0 {
            body["payment_password"] = json!("135790");
        }
        let reply = app.call("POST", "/api/me/pay-accounts", Some(&token), Some(body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{provider}: {:?}", reply.body);
        assert_eq!(
            (&reply.body["provider"], &reply.body["account_masked"], &reply.body["has_payment_password"]),
            (&json!(provider), &json!(mask), &json!(i == 0)),
            "{provider}"
        );
        ids.push(reply.body["id"].as_i64().unwrap());
    }

    let listed = list(&app, &token).await;
    let listed_ids: Vec<i64> = listed.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    ids.reverse();
    assert_eq!(listed_ids, ids, "newest first");
    let keys: Vec<&str> = listed[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["account_masked", "created_at", "has_payment_password", "holder_name", "id", "provider"]
    );

    let json_text = serde_json::to_string(&listed).unwrap();
    let client = app.db.get().await.unwrap();
    let stored: Vec<String> = client
        .query("SELECT row_to_json(a)::text FROM user_pay_accounts a", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let stored = stored.join("\n");
    for (provider, number, _) in ACCOUNTS {
        let bare = number.replace(' ', "");
        for text in [&json_text, &stored] {
            assert!(
                !text.contains(number) && !text.contains(&bare),
                "{provider}'s full number leaked: {text}"
            );
        }
    }
    assert!(!json_text.contains("135790") && !stored.contains("135790"), "the PIN is never kept in clear");
    assert!(stored.contains("$argon2id$"), "the PIN is hashed like a login password");
    assert!(!json_text.contains("argon2"), "the hash is never returned");
}

#[actix_web::test]
async fn invalid_accounts_get_422s_per_field_write_nothing_and_ten_is_the_limit() {
    let app = spawn_app().await;
    let (_, token) = app.member("carol").await;

    let cases = [
        (
            json!({"provider": "bank", "holder_name": " ", "account_number": "4242 4242 4242 4241",
                   "payment_password": "12345"}),
            vec![
                ("holder_name", "required"),
                ("account_number", "invalid_checksum"),
                ("payment_password", "invalid_format"),
            ],
        ),
        (account("bank", "4242-4242-4242-4242"), vec![("account_number", "invalid_format")]),
        (
            account("eth", "0x52908400098527886E0F7030069857D2E4169EE"),
            vec![("account_number", "invalid_format")],
        ),
        (account("btc", "1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf0O"), vec![("account_number", "invalid_format")]),
        (
            account("doge", "0x52908400098527886E0F7030069857D2E4169EE7"),
            vec![("account_number", "invalid_format")],
        ),
        (account("alipay", "call me"), vec![("account_number", "invalid_format")]),
        (account("paypal", "li.lei@example.com"), vec![("provider", "invalid_value")]),
        (account("wechat", ""), vec![("account_number", "required")]),
    ];
    for (body, expected) in cases {
        let reply = app.call("POST", "/api/me/pay-accounts", Some(&token), Some(body.clone())).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{body}"
        );
        let expected: Vec<(String, String)> =
            expected.into_iter().map(|(f, p)| (f.to_owned(), p.to_owned())).collect();
        assert_eq!(problems(&reply.body), expected, "{body}");
    }
    let mut pin = account("bank", "4242 4242 4242 4242");
    pin["payment_password"] = json!("12ab56");
    let reply = app.call("POST", "/api/me/pay-accounts", Some(&token), Some(pin)).await;
    assert_eq!(problems(&reply.body), [("payment_password".to_owned(), "invalid_format".to_owned())]);
    let mut unknown = account("bank", "4242 4242 4242 4242");
    unknown["cvv"] = json!("123");
    let reply = app.call("POST", "/api/me/pay-accounts", Some(&token), Some(unknown)).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"));
    assert_eq!(app.count("user_pay_accounts").await, 0);

    for _ in 0..10 {
        create(&app, &token, account("bank", "4242 4242 4242 4242")).await;
    }
    let reply =
        app.call("POST", "/api/me/pay-accounts", Some(&token), Some(account("alipay", "13800138000"))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "pay_accounts_full"));
    assert_eq!(app.count("user_pay_accounts").await, 10);
}

#[actix_web::test]
async fn another_users_account_is_a_404_and_the_owner_deletes_it() {
    let app = spawn_app().await;
    let state = app.state.as_ref().unwrap();
    let (alice_id, alice) = app.member("alice").await;
    let (bob_id, bob) = app.member("bob").await;
    let mut body = account("bank", "4242 4242 4242 4242");
    body["payment_password"] = json!("246810");
    let id = create(&app, &alice, body).await;

    assert!(list(&app, &bob).await.is_empty());
    let path = format!("/api/me/pay-accounts/{id}");
    for (method, path, body) in [
        ("DELETE", path.clone(), None),
        ("PUT", format!("{path}/payment-password"), Some(json!({"new_password": "111111"}))),
    ] {
        let reply = app.call(method, &path, Some(&bob), body).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"), "{method} {path}");
    }
    let err = verify_payment_password(state, bob_id, id, "246810".to_owned()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    verify_payment_password(state, alice_id, id, "246810".to_owned()).await.unwrap();

    for (method, body) in [("GET", None), ("POST", Some(account("alipay", "13800138000")))] {
        let reply = app.call(method, "/api/me/pay-accounts", None, body).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::UNAUTHORIZED, "unauthenticated"), "{method}");
    }
    let reply = app.call("DELETE", &path, None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let reply = app.call("DELETE", &path, Some(&alice), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(list(&app, &alice).await.is_empty());
    let reply = app.call("DELETE", &path, Some(&alice), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let err = verify_payment_password(state, alice_id, id, "246810".to_owned()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
}

#[actix_web::test]
async fn payment_passwords_are_set_changed_verified_and_throttled() {
    let app = spawn_app().await;
    let state = app.state.as_ref().unwrap();
    let (user_id, token) = app.member("dave").await;
    let id = create(&app, &token, account("alipay", "13800138000")).await;
    let other = create(&app, &token, account("wechat", "dave@example.com")).await;
    let pin_path = format!("/api/me/pay-accounts/{id}/payment-password");
    let verify = |pin: &str| verify_payment_password(state, user_id, id, pin.to_owned());

    let err = verify("123456").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::WrongPassword, "no payment password set yet");

    let reply = app.call("PUT", &pin_path, Some(&token), Some(json!({"new_password": "12345a"}))).await;
    assert_eq!(problems(&reply.body), [("new_password".to_owned(), "invalid_format".to_owned())]);
    let reply = app.call("PUT", &pin_path, Some(&token), Some(json!({"new_password": "123456"}))).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
    let listed = list(&app, &token).await;
    let flags: Vec<(i64, bool)> = listed
        .iter()
        .map(|a| (a["id"].as_i64().unwrap(), a["has_payment_password"].as_bool().unwrap()))
        .collect();
    assert_eq!(flags, [(other, false), (id, true)]);
    verify("123456").await.unwrap();
    assert_eq!(verify("654321").await.unwrap_err().code(), ErrorCode::WrongPassword);

    // Changing needs the present payment password.
    for body in
        [json!({"new_password": "654321"}), json!({"current_password": "000000", "new_password": "654321"})]
    {
        let reply = app.call("PUT", &pin_path, Some(&token), Some(body.clone())).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, "wrong_password"), "{body}");
    }
    let change = json!({"current_password": "123456", "new_password": "654321"});
    let reply = app.call("PUT", &pin_path, Some(&token), Some(change)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
    assert_eq!(verify("123456").await.unwrap_err().code(), ErrorCode::WrongPassword);
    verify("654321").await.unwrap();

    // A success cleared the count; now the limit of wrong guesses locks
    // this account (the right PIN and changes included), not the others.
    for _ in 0..app.settings.auth.login_max_failures {
        assert_eq!(verify("000000").await.unwrap_err().code(), ErrorCode::WrongPassword);
    }
    assert_eq!(verify("654321").await.unwrap_err().code(), ErrorCode::RateLimited);
    let change = json!({"current_password": "654321", "new_password": "111111"});
    let reply = app.call("PUT", &pin_path, Some(&token), Some(change)).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
    assert!(reply.headers.contains_key("retry-after"));
    let other_path = format!("/api/me/pay-accounts/{other}/payment-password");
    let reply = app.call("PUT", &other_path, Some(&token), Some(json!({"new_password": "222222"}))).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    verify_payment_password(state, user_id, other, "222222".to_owned()).await.unwrap();
}

#[actix_web::test]
async fn guesses_sent_in_parallel_get_no_more_tries_than_guesses_sent_one_by_one() {
    let app = spawn_app().await;
    let state = app.state.as_ref().unwrap();
    let (user_id, token) = app.member("erin").await;
    let id = create(&app, &token, account("alipay", "13800138001")).await;
    let pin_path = format!("/api/me/pay-accounts/{id}/payment-password");
    let reply = app.call("PUT", &pin_path, Some(&token), Some(json!({"new_password": "123456"}))).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);

    let limit = app.settings.auth.login_max_failures as usize;
    let guesses =
        (0..limit * 4).map(|i| verify_payment_password(state, user_id, id, format!("{:06}", i + 200_000)));
    let codes: Vec<ErrorCode> =
        futures_util::future::join_all(guesses).await.into_iter().map(|r| r.unwrap_err().code()).collect();
    let wrong = codes.iter().filter(|c| **c == ErrorCode::WrongPassword).count();
    assert!(wrong <= limit, "{wrong} guesses were checked, the limit is {limit}");
    assert!(
        codes.iter().all(|c| matches!(c, ErrorCode::WrongPassword | ErrorCode::RateLimited)),
        "{codes:?}"
    );
    let right = verify_payment_password(state, user_id, id, "123456".to_owned()).await;
    assert_eq!(right.unwrap_err().code(), ErrorCode::RateLimited);
}
