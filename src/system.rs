//! Liveness, readiness and metrics endpoints for operators.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Mounts `/healthz`, `/readyz` and `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

/// Liveness answer.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process serves requests.
    pub status: &'static str,
}

/// Alive: answers without touching any backing service.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Ready: Postgres and Redis both answer.
#[utoipa::path(get, path = "/readyz", tag = "system", responses(
    (status = 200, body = Health),
    (status = 503, description = "Postgres or Redis is down", body = crate::error::ErrorBody)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    client.simple_query("SELECT 1").await.map_err(ApiError::unavailable)?;
    state.kv.ping().await?;
    Ok(HttpResponse::Ok().json(Health { status: "ok" }))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", body = String)))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let status = state.db.status();
    let gauge = |name: &str, value: usize| {
        state.metrics.db_pool.with_label_values(&[name]).set(i64::try_from(value).unwrap_or(i64::MAX));
    };
    gauge("size", status.size);
    gauge("available", status.available);
    gauge("waiting", status.waiting);
    state
        .metrics
        .writer_queue_depth
        .set(i64::try_from(state.seckill.writer_queue_depth()).unwrap_or(i64::MAX));
    state.metrics.product_cache_entries.set(i64::try_from(state.products.len()).unwrap_or(i64::MAX));
    state
        .metrics
        .cart_writer_queue_depth
        .set(i64::try_from(state.carts.writer_queue_depth()).unwrap_or(i64::MAX));
    state.metrics.cart_actors.set(i64::try_from(state.carts.live_actors()).unwrap_or(i64::MAX));
    state.metrics.seckill_live_events.set(i64::try_from(state.seckill.live_events()).unwrap_or(i64::MAX));
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}
