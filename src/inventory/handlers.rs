//! Inventory endpoints of a shop (shop permission `inventory.manage`):
//! adjust a SKU's stock, read the ledger, list SKUs low on stock.

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::service::{self, REASON_MAX_CHARS};
use super::store::{self, Movement, MovementFilter, MovementKind, MovementRow};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::page::{Page, PageQuery, Paging};
use crate::product::handlers::SkuView;
use crate::shop::access::{self, Intent, ShopPermission};
use crate::state::AppState;
use crate::validate::Validator;

/// Mounts the inventory routes (inside the merchant scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(low_stock).service(adjust_stock).service(list_movements);
}

/// One ledger entry.
#[derive(Serialize, ToSchema)]
pub struct MovementView {
    pub id: i64,
    pub sku_id: i64,
    pub product_id: i64,
    /// `adjustment`, `reservation`, `sale`, `release` or `return`.
    pub kind: String,
    pub delta: i32,
    /// The SKU's stock right after this movement.
    pub stock_after: i32,
    pub order_id: Option<i64>,
    /// Who moved it (null for the system).
    pub actor_id: Option<i64>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

impl From<MovementRow> for MovementView {
    fn from(row: MovementRow) -> Self {
        Self {
            id: row.id,
            sku_id: row.sku_id,
            product_id: row.product_id,
            kind: row.kind,
            delta: row.delta,
            stock_after: row.stock_after,
            order_id: row.order_id,
            actor_id: row.actor_id,
            reason: row.reason,
            created_at: row.created_at,
        }
    }
}

/// A stock adjustment: a restock, a count correction, a write-off.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustStockRequest {
    /// Units to add (positive) or remove (negative); not zero.
    pub delta: i32,
    /// 1-200 characters: why.
    pub reason: String,
}

/// Adjusts a SKU's stock by `delta`, recorded in the ledger with who and
/// why. Concurrent adjustments never lose one another, and stock never goes
/// below zero.
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/skus/{sku_id}/stock", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("sku_id" = i64, Path)),
    request_body = AdjustStockRequest, responses(
    (status = 201, body = MovementView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, description = "no such SKU in this shop", body = ErrorBody),
    (status = 409, description = "`insufficient_stock`", body = ErrorBody),
    (status = 422, description = "`validation_failed` (delta, reason)", body = ErrorBody)))]
#[post("/skus/{sku_id}/stock")]
pub async fn adjust_stock(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, i64)>,
    body: web::Json<AdjustStockRequest>,
) -> ApiResult<HttpResponse> {
    let (shop_id, sku_id) = path.into_inner();
    let reason = body.reason.trim();
    let mut v = Validator::new();
    v.check("delta", body.delta != 0, "zero").length("reason", reason, 1, REASON_MAX_CHARS);
    v.finish()?;
    access::require_in(&state.db, user.user_id, shop_id, ShopPermission::InventoryManage, Intent::Write)
        .await?;
    let movement = Movement {
        shop_id,
        sku_id,
        kind: MovementKind::Adjustment,
        delta: body.delta,
        order_id: None,
        actor_id: Some(user.user_id),
        reason,
    };
    let recorded = service::record(&state, &movement).await?;
    Ok(HttpResponse::Created().json(MovementView::from(recorded)))
}

/// Filters and page of the ledger.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MovementQuery {
    pub sku_id: Option<i64>,
    /// `adjustment`, `reservation`, `sale`, `release` or `return`.
    pub kind: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// The shop's inventory ledger, newest first.
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/inventory/movements", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), MovementQuery), responses(
    (status = 200, body = Page<MovementView>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/inventory/movements")]
pub async fn list_movements(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    query: web::Query<MovementQuery>,
) -> ApiResult<HttpResponse> {
    let shop_id = path.into_inner();
    let paging = Paging::new(query.page, query.per_page)?;
    if query.kind.as_deref().is_some_and(|k| MovementKind::parse(k).is_none()) {
        return Err(ApiError::new(ErrorCode::InvalidQuery)
            .with_message("kind is adjustment, reservation, sale, release or return"));
    }
    let client = state.db.get().await?;
    access::require(&client, user.user_id, shop_id, ShopPermission::InventoryManage, Intent::Read).await?;
    let filter = MovementFilter { sku_id: query.sku_id, kind: query.kind.as_deref() };
    let (rows, total) = store::list(&client, shop_id, &filter, paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(rows, total).map(MovementView::from)))
}

/// A SKU low on stock, with its product.
#[derive(Serialize, ToSchema)]
pub struct LowStockSku {
    pub product_id: i64,
    #[serde(flatten)]
    pub sku: SkuView,
}

/// The shop's active SKUs at or below their low-stock threshold, emptiest first.
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/skus/low-stock", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), PageQuery), responses(
    (status = 200, body = Page<LowStockSku>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/skus/low-stock")]
pub async fn low_stock(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let shop_id = path.into_inner();
    let paging = query.paging()?;
    let client = state.db.get().await?;
    access::require(&client, user.user_id, shop_id, ShopPermission::InventoryManage, Intent::Read).await?;
    let (rows, total) = store::low_stock(&client, shop_id, paging).await?;
    Ok(HttpResponse::Ok().json(
        paging.wrap(rows, total).map(|sku| LowStockSku { product_id: sku.product_id, sku: sku.into() }),
    ))
}
