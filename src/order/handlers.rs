//! HTTP endpoints of a shopper's own orders.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::service;
use super::store::{self, HistoryEntry, OrderView};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::page::{Page, Paging};
use crate::state::AppState;

/// Mounts the order routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_my_orders).service(get_my_order).service(pay_order);
}

/// Every order status, for validating filters.
pub const ORDER_STATUSES: &[&str] =
    &["pending_payment", "paid", "shipped", "delivered", "completed", "cancelled"];

/// Filter of the order list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    /// Only orders in this status.
    pub status: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/api/orders", tag = "orders", security(("bearer" = [])), params(OrderFilter),
    responses((status = 200, body = Page<OrderView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[get("/api/orders")]
pub async fn list_my_orders(
    state: web::Data<AppState>,
    user: AuthUser,
    filter: web::Query<OrderFilter>,
) -> ApiResult<HttpResponse> {
    let paging = Paging::new(filter.page, filter.per_page)?;
    if let Some(status) = filter.status.as_deref() {
        if !ORDER_STATUSES.contains(&status) {
            return Err(
                ApiError::new(ErrorCode::InvalidQuery).with_message(format!("unknown status {status}"))
            );
        }
    }
    let client = state.db.get().await?;
    let (orders, total) = store::list_for_user(
        &client,
        user.user_id,
        filter.status.as_deref(),
        paging.limit(),
        paging.offset(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(paging.wrap(orders, total)))
}

/// An order with its history.
#[derive(Serialize, ToSchema)]
pub struct OrderDetail {
    #[serde(flatten)]
    pub order: OrderView,
    pub history: Vec<HistoryEntry>,
}

/// One of the caller's orders with its status history.
#[utoipa::path(get, path = "/api/orders/{order_no}", tag = "orders", security(("bearer" = [])),
    params(("order_no" = String, Path)),
    responses((status = 200, body = OrderDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/api/orders/{order_no}")]
pub async fn get_my_order(
    state: web::Data<AppState>,
    user: AuthUser,
    order_no: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let order = service::own_order(&state, user.user_id, &order_no).await?;
    let client = state.db.get().await?;
    let history = store::history(&client, order.id).await?;
    Ok(HttpResponse::Ok().json(OrderDetail { order: order.view, history }))
}

/// Sandbox payment of one of the caller's orders (stands in for the
/// payment provider flow until the payments domain lands).
#[utoipa::path(post, path = "/api/orders/{order_no}/pay", tag = "orders", security(("bearer" = [])),
    params(("order_no" = String, Path)),
    responses((status = 200, body = OrderView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`order_expired` (recorded for refund) or `invalid_state`", body = ErrorBody)))]
#[post("/api/orders/{order_no}/pay")]
pub async fn pay_order(
    state: web::Data<AppState>,
    user: AuthUser,
    order_no: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let order = service::pay(&state, user.user_id, &order_no).await?;
    Ok(HttpResponse::Ok().json(order.view))
}
