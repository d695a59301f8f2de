use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn healthz_and_readyz_answer_ok() {
    let app = spawn_app().await;
    let health = app.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, json!({"status": "ok"}));
    let ready = app.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 200);
    assert!(ready.headers.contains_key("x-request-id"));
}

#[actix_web::test]
async fn metrics_count_requests_per_route_and_status() {
    let app = spawn_app().await;
    app.call("GET", "/healthz", None, None).await;
    let res = app.http.get(format!("{}/metrics", app.address)).send().await.unwrap().body().await.unwrap();
    let text = String::from_utf8(res.to_vec()).unwrap();
    assert!(
        text.contains(r#"rscms_http_requests_total{method="GET",route="/healthz",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("rscms_http_request_duration_seconds_bucket"));
    assert!(text.contains("rscms_db_pool_connections"));
}

#[actix_web::test]
async fn unknown_route_is_a_json_404() {
    let app = spawn_app().await;
    let reply = app.call("GET", "/api/nothing-here", None, None).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.code(), "not_found");
}

#[actix_web::test]
async fn openapi_document_lists_every_route() {
    let app = spawn_app().await;
    let doc = app.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/auth/register",
        "/api/auth/login",
        "/api/me",
        "/api/me/password",
        "/api/me/email-verification",
        "/api/auth/verify-email",
        "/api/auth/menus",
        "/api/auth/check",
        "/api/system/menus/{id}",
        "/api/system/roles/{id}",
        "/api/system/users/{id}/roles/{role_id}",
        "/api/system/groups/{id}/members/{user_id}",
        "/api/system/groups/{id}/roles/{role_id}",
        "/api/system/admins/{id}",
        "/api/system/members/{id}/freeze",
        "/api/system/blacklist/{id}",
        "/api/system/audit-log",
        "/api/admin/seckill/events",
        "/api/admin/seckill/events/{id}/stats",
        "/api/seckill/events/{id}/orders",
        "/api/seckill/events/{id}/purchase-token",
        "/api/orders/{order_no}/pay",
        "/api/cart",
        "/api/cart/lines",
        "/api/cart/lines/{sku_id}",
        "/api/cart/selection",
        "/api/addresses",
        "/api/addresses/{id}",
        "/api/addresses/{id}/default",
        "/api/products",
        "/api/products/{id}",
        "/api/categories",
        "/api/system/categories",
        "/api/system/categories/{id}",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
    // Every `{param}` of a path is declared as a path parameter of each of
    // its operations, and nothing else is (what OpenAPI validators check).
    for (path, operations) in paths {
        let in_path: Vec<&str> = path.split('{').skip(1).filter_map(|s| s.split('}').next()).collect();
        for (method, operation) in operations.as_object().unwrap() {
            let declared: Vec<&str> = operation["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect()
                })
                .unwrap_or_default();
            let mut expected = in_path.clone();
            expected.sort();
            let mut declared = declared;
            declared.sort();
            assert_eq!(declared, expected, "{method} {path}: path parameters");
        }
    }
}
