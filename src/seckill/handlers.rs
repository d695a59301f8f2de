//! HTTP endpoints of flash sales: operators manage events, shoppers buy.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::service::{
    self, Bought, BuyRequest, CreateEventRequest, EventStats, EventView, OrderReceipt, PurchaseToken,
};
use super::store;
use crate::audit::Actor;
use crate::auth::{perm, AuthUser, ClientIp, Require};
use crate::error::{ApiResult, ErrorBody};
use crate::page::{Page, PageQuery};
use crate::state::AppState;
use crate::validate;

/// Path prefix of the shoppers' flash-sale routes.
pub const SHOP_SCOPE: &str = "/api/seckill/events";
/// Path prefix of the operators' flash-sale routes.
pub const ADMIN_SCOPE: &str = "/api/admin/seckill/events";

/// Mounts the flash-sale routes under their two static prefixes (a prefix
/// is a plain string comparison; only the short rest is matched by a
/// pattern), the buy path first (see `routes`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(SHOP_SCOPE)
            .service(create_seckill_order)
            .service(get_event)
            .service(get_purchase_token)
            .service(list_events)
            .configure(super::naive::configure),
    )
    .service(
        web::scope(ADMIN_SCOPE)
            .service(create_event)
            .service(open_event)
            .service(close_event)
            .service(event_stats),
    );
}

/// Creates a flash-sale event and starts its stock actor.
#[utoipa::path(post, path = "/api/admin/seckill/events", tag = "seckill", security(("bearer" = [])),
    request_body = CreateEventRequest,
    responses((status = 201, body = EventView), (status = 401, body = ErrorBody),
        (status = 403, description = "needs `seckill.manage`", body = ErrorBody),
        (status = 422, description = "`validation_failed` per field", body = ErrorBody)))]
#[post("")]
pub async fn create_event(
    state: web::Data<AppState>,
    operator: Require<perm::SeckillManage>,
    ip: ClientIp,
    body: web::Json<CreateEventRequest>,
) -> ApiResult<HttpResponse> {
    let row = service::create_event(&state, Actor::new(&operator, ip), body.into_inner()).await?;
    let live = service::live_event(&state, row.id).await?;
    Ok(HttpResponse::Created().json(service::view(&live)))
}

/// Opens a sale now, before its start time.
#[utoipa::path(post, path = "/api/admin/seckill/events/{id}/open", tag = "seckill", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = EventView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`invalid_state`: already closed", body = ErrorBody)))]
#[post("/{id}/open")]
pub async fn open_event(
    state: web::Data<AppState>,
    operator: Require<perm::SeckillManage>,
    ip: ClientIp,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::open_event(&state, Actor::new(&operator, ip), *id).await?))
}

/// Closes a sale at once (kill switch).
#[utoipa::path(post, path = "/api/admin/seckill/events/{id}/close", tag = "seckill", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = EventView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/{id}/close")]
pub async fn close_event(
    state: web::Data<AppState>,
    operator: Require<perm::SeckillManage>,
    ip: ClientIp,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::close_event(&state, Actor::new(&operator, ip), *id).await?))
}

/// Live numbers of a sale: stock, orders by status, refusals by reason.
#[utoipa::path(get, path = "/api/admin/seckill/events/{id}/stats", tag = "seckill", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = EventStats), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/{id}/stats")]
pub async fn event_stats(
    state: web::Data<AppState>,
    _operator: Require<perm::SeckillManage>,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::stats(&state, *id).await?))
}

/// Current and upcoming sales, soonest first.
#[utoipa::path(get, path = "/api/seckill/events", tag = "seckill", params(PageQuery),
    responses((status = 200, body = Page<EventView>), (status = 400, body = ErrorBody)))]
#[get("")]
pub async fn list_events(state: web::Data<AppState>, page: web::Query<PageQuery>) -> ApiResult<HttpResponse> {
    let paging = page.paging()?;
    let client = state.db.get().await?;
    let (rows, total) = store::list_unfinished(&client, paging.limit(), paging.offset()).await?;
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        let live = service::live_event(&state, row.id).await?;
        views.push(service::view(&live));
    }
    Ok(HttpResponse::Ok().json(paging.wrap(views, total)))
}

/// One sale: state, server time, start, remaining stock. Served from
/// memory, without a database query.
#[utoipa::path(get, path = "/api/seckill/events/{id}", tag = "seckill", params(("id" = i64, Path)),
    responses((status = 200, body = EventView), (status = 404, body = ErrorBody)))]
#[get("/{id}")]
pub async fn get_event(state: web::Data<AppState>, id: web::Path<i64>) -> ApiResult<HttpResponse> {
    let live = service::live_event(&state, *id).await?;
    Ok(HttpResponse::Ok().json(service::view(&live)))
}

/// A short-lived purchase token for this sale (issued only once it is live).
#[utoipa::path(get, path = "/api/seckill/events/{id}/purchase-token", tag = "seckill", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = PurchaseToken), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`not_started` or `sold_out`", body = ErrorBody),
        (status = 410, description = "`ended`", body = ErrorBody)))]
#[get("/{id}/purchase-token")]
pub async fn get_purchase_token(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::purchase_token(&state, *id, user.user_id).await?))
}

/// Body of a buy request.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyBody {
    /// Units to buy (1 - 100, and within the per-user limit).
    pub quantity: u32,
}

/// Buys in a flash sale. Send an `Idempotency-Key` so a retry returns the
/// same order; events that require it need `X-Purchase-Token`.
#[utoipa::path(post, path = "/api/seckill/events/{id}/orders", tag = "seckill", security(("bearer" = [])),
    params(("id" = i64, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "1-128 visible ASCII characters"),
        ("X-Purchase-Token" = Option<String>, Header, description = "required when the event says so")),
    request_body = BuyBody,
    responses(
        (status = 201, description = "order created (or, with `Idempotent-Replayed: true`, the same order again)", body = OrderReceipt),
        (status = 400, description = "`invalid_header`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "`purchase_token_invalid`, `account_frozen`, `blacklisted`", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`sold_out`, `limit_reached`, `not_started`, `idempotency_in_progress`", body = ErrorBody),
        (status = 410, description = "`ended`", body = ErrorBody),
        (status = 422, description = "`validation_failed` (quantity), `idempotency_key_reused`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 503, description = "`overloaded` or `unavailable`, with Retry-After", body = ErrorBody)))]
#[post("/{id}/orders")]
pub async fn create_seckill_order(
    state: web::Data<AppState>,
    user: AuthUser,
    ip: ClientIp,
    id: web::Path<i64>,
    req: HttpRequest,
    body: web::Json<BuyBody>,
) -> ApiResult<HttpResponse> {
    let request = BuyRequest {
        user_id: user.user_id,
        ip: ip.0,
        quantity: body.quantity,
        idempotency_key: validate::header_value(
            req.headers(),
            "idempotency-key",
            service::MAX_IDEMPOTENCY_KEY_LEN,
        )?,
        purchase_token: validate::header_value(req.headers(), "x-purchase-token", 256)?,
    };
    Ok(match service::buy(&state, *id, request).await? {
        Bought::Created(receipt) => HttpResponse::Created().json(receipt),
        Bought::Replayed(receipt) => {
            HttpResponse::Created().insert_header(("Idempotent-Replayed", "true")).json(receipt)
        }
    })
}
