//! Product endpoints for merchants (`/api/merchant/shops/{shop_id}/products`,
//! shop permission `product.manage`) and for the operators' review
//! (`/api/system/products`, platform permission `product.review`).

use std::collections::BTreeMap;

use actix_web::{get, post, put, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::content::{ProductContent, Spec};
use super::lifecycle::ProductStatus;
use super::service::{self, Acting, Decision, Product};
use super::store::{self, ProductRow, SkuRow};
use crate::audit::Actor;
use crate::auth::{perm, AuthUser, ClientIp, Require};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::page::{Page, PageQuery, Paging};
use crate::shop::access::{self, Intent, ShopPermission};
use crate::state::AppState;

/// Mounts the merchant routes (inside the merchant scope).
pub fn configure_merchant(cfg: &mut web::ServiceConfig) {
    cfg.service(list_shop_products)
        .service(create_product)
        .service(get_shop_product)
        .service(edit_product)
        .service(submit_product)
        .service(list_product)
        .service(unlist_product);
}

/// Mounts the operator routes (inside the `/api/system` scope).
pub fn configure_system(cfg: &mut web::ServiceConfig) {
    cfg.service(review_queue)
        .service(get_product_for_review)
        .service(approve_product)
        .service(reject_product);
}

/// A SKU as its shop and the operators see it.
#[derive(Serialize, ToSchema)]
pub struct SkuView {
    pub id: i64,
    pub spec_values: BTreeMap<String, String>,
    pub code: String,
    pub price_cents: i64,
    pub market_price_cents: Option<i64>,
    pub stock: i32,
    pub low_stock_threshold: i32,
    /// False: dropped from the product by an edit (kept for orders and stock).
    pub active: bool,
}

impl From<SkuRow> for SkuView {
    fn from(sku: SkuRow) -> Self {
        Self {
            id: sku.id,
            spec_values: sku.spec_values,
            code: sku.code,
            price_cents: sku.price_cents,
            market_price_cents: sku.market_price_cents,
            stock: sku.stock,
            low_stock_threshold: sku.low_stock_threshold,
            active: sku.active,
        }
    }
}

/// An edit of a listed product waiting for (or refused by) review.
#[derive(Serialize, ToSchema)]
pub struct PendingRevision {
    /// `pending_review` or `rejected`.
    pub state: String,
    pub reason: Option<String>,
    pub content: ProductContent,
}

/// A product as its shop and the operators see it: the live version, its
/// lifecycle state and any pending revision.
#[derive(Serialize, ToSchema)]
pub struct ProductView {
    pub id: i64,
    pub shop_id: i64,
    /// `draft`, `pending_review`, `rejected`, `listed` or `unlisted`.
    pub status: String,
    /// Why the product was rejected.
    pub review_reason: Option<String>,
    /// Name it when approving or rejecting.
    pub revision: i32,
    pub name: String,
    pub description: String,
    pub category_id: i64,
    pub brand: String,
    pub images: Vec<String>,
    pub tags: Vec<String>,
    pub audience: String,
    pub product_type: String,
    pub attributes: BTreeMap<String, String>,
    pub specs: Vec<Spec>,
    pub skus: Vec<SkuView>,
    pub min_price_cents: i64,
    pub max_price_cents: i64,
    pub sales_count: i64,
    pub pending: Option<PendingRevision>,
    pub listed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Product> for ProductView {
    fn from(Product { row, skus }: Product) -> Self {
        let pending = match (row.pending_state, row.pending_content) {
            (Some(state), Some(content)) => serde_json::from_value(content)
                .ok()
                .map(|content| PendingRevision { state, reason: row.pending_reason, content }),
            _ => None,
        };
        Self {
            id: row.id,
            shop_id: row.shop_id,
            status: row.status,
            review_reason: row.review_reason,
            revision: row.revision,
            name: row.name,
            description: row.description,
            category_id: row.category_id,
            brand: row.brand,
            images: row.images,
            tags: row.tags,
            audience: row.audience,
            product_type: row.product_type,
            attributes: serde_json::from_value(row.attributes).unwrap_or_default(),
            specs: serde_json::from_value(row.specs).unwrap_or_default(),
            skus: skus.into_iter().map(SkuView::from).collect(),
            min_price_cents: row.min_price_cents,
            max_price_cents: row.max_price_cents,
            sales_count: row.sales_count,
            pending,
            listed_at: row.listed_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A product in a list.
#[derive(Serialize, ToSchema)]
pub struct ProductSummary {
    pub id: i64,
    pub shop_id: i64,
    pub name: String,
    pub status: String,
    pub revision: i32,
    /// State of a pending revision of a listed product, if any.
    pub pending_state: Option<String>,
    pub category_id: i64,
    pub min_price_cents: i64,
    pub max_price_cents: i64,
    pub updated_at: DateTime<Utc>,
}

impl From<ProductRow> for ProductSummary {
    fn from(row: ProductRow) -> Self {
        Self {
            id: row.id,
            shop_id: row.shop_id,
            name: row.name,
            status: row.status,
            revision: row.revision,
            pending_state: row.pending_state,
            category_id: row.category_id,
            min_price_cents: row.min_price_cents,
            max_price_cents: row.max_price_cents,
            updated_at: row.updated_at,
        }
    }
}

/// Filters and page of a shop's products.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShopProductQuery {
    /// `draft`, `pending_review`, `rejected`, `listed` or `unlisted`.
    pub status: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

async fn merchant(
    state: &AppState,
    user: &AuthUser,
    shop_id: i64,
    intent: Intent,
) -> ApiResult<access::ShopAccess> {
    access::require_in(&state.db, user.user_id, shop_id, ShopPermission::ProductManage, intent).await
}

/// The shop's products, newest first.
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/products", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ShopProductQuery), responses(
    (status = 200, body = Page<ProductSummary>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `product.manage` in this shop", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/products")]
pub async fn list_shop_products(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    query: web::Query<ShopProductQuery>,
) -> ApiResult<HttpResponse> {
    let shop_id = path.into_inner();
    let paging = Paging::new(query.page, query.per_page)?;
    if query.status.as_deref().is_some_and(|s| ProductStatus::parse(s).is_none()) {
        return Err(ApiError::new(ErrorCode::InvalidQuery)
            .with_message("status is draft, pending_review, rejected, listed or unlisted"));
    }
    merchant(&state, &user, shop_id, Intent::Read).await?;
    let client = state.db.get().await?;
    let (rows, total) = store::list_for_shop(&client, shop_id, query.status.as_deref(), paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(rows, total).map(ProductSummary::from)))
}

/// Creates a draft product with its specs and SKUs, in one transaction.
/// Stock starts at zero: add it with `POST .../skus/{sku_id}/stock`.
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/products", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path)), request_body = ProductContent, responses(
    (status = 201, body = ProductView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 409, description = "`sku_code_taken`", body = ErrorBody),
    (status = 422, description = "`validation_failed` (e.g. `skus[1].spec_values`: `duplicate_combination`, \
        `missing_spec`; `skus[0].price_cents`: `negative`; `category_id`: `not_found`) or `invalid_body`",
        body = ErrorBody)))]
#[post("/products")]
pub async fn create_product(
    state: web::Data<AppState>,
    user: AuthUser,
    ip: ClientIp,
    path: web::Path<i64>,
    body: web::Json<ProductContent>,
) -> ApiResult<HttpResponse> {
    let access = merchant(&state, &user, path.into_inner(), Intent::Write).await?;
    let product = service::create(&state, Actor::new(&user, ip), &access, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(ProductView::from(product)))
}

/// One of the shop's products with all its SKUs and any pending revision.
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/products/{product_id}", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("product_id" = i64, Path)), responses(
    (status = 200, body = ProductView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/products/{product_id}")]
pub async fn get_shop_product(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    let (shop_id, product_id) = path.into_inner();
    merchant(&state, &user, shop_id, Intent::Read).await?;
    let client = state.db.get().await?;
    let product = service::load(&client, product_id, false).await?;
    if product.row.shop_id != shop_id {
        return Err(ApiError::new(ErrorCode::NotFound).with_message("no such product in this shop"));
    }
    Ok(HttpResponse::Ok().json(ProductView::from(product)))
}

/// Replaces a product's content. Before its first approval this edits the
/// product itself; once listed, a customer-facing change becomes a pending
/// revision for review and the live version stays up until it is approved
/// (a change of SKU codes or low-stock thresholds alone applies at once).
#[utoipa::path(put, path = "/api/merchant/shops/{shop_id}/products/{product_id}", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("product_id" = i64, Path)),
    request_body = ProductContent, responses(
    (status = 200, body = ProductView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`sku_code_taken`", body = ErrorBody),
    (status = 422, description = "`validation_failed` or `invalid_body`", body = ErrorBody)))]
#[put("/products/{product_id}")]
pub async fn edit_product(
    state: web::Data<AppState>,
    user: AuthUser,
    ip: ClientIp,
    path: web::Path<(i64, i64)>,
    body: web::Json<ProductContent>,
) -> ApiResult<HttpResponse> {
    let (shop_id, product_id) = path.into_inner();
    let access = merchant(&state, &user, shop_id, Intent::Write).await?;
    let product =
        service::edit(&state, Actor::new(&user, ip), &access, product_id, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ProductView::from(product)))
}

async fn merchant_step(
    state: web::Data<AppState>,
    user: AuthUser,
    ip: ClientIp,
    (shop_id, product_id): (i64, i64),
    decision: Decision<'_>,
) -> ApiResult<HttpResponse> {
    let access = merchant(&state, &user, shop_id, Intent::Write).await?;
    let actor = Actor::new(&user, ip);
    let product = service::decide(&state, actor, Acting::Merchant(&access), product_id, decision).await?;
    Ok(HttpResponse::Ok().json(ProductView::from(product)))
}

/// Sends a draft (or rejected) product for review, or resubmits a
/// rejected revision of a listed one.
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/products/{product_id}/submit", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("product_id" = i64, Path)), responses(
    (status = 200, body = ProductView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`", body = ErrorBody)))]
#[post("/products/{product_id}/submit")]
pub async fn submit_product(
    state: web::Data<AppState>,
    user: AuthUser,
    ip: ClientIp,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    merchant_step(state, user, ip, path.into_inner(), Decision::Submit).await
}

/// Puts an unlisted product back on the storefront.
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/products/{product_id}/list", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("product_id" = i64, Path)), responses(
    (status = 200, body = ProductView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: not unlisted", body = ErrorBody)))]
#[post("/products/{product_id}/list")]
pub async fn list_product(
    state: web::Data<AppState>,
    user: AuthUser,
    ip: ClientIp,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    merchant_step(state, user, ip, path.into_inner(), Decision::List).await
}

/// Takes a listed product off the storefront.
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/products/{product_id}/unlist", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("product_id" = i64, Path)), responses(
    (status = 200, body = ProductView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: not listed", body = ErrorBody)))]
#[post("/products/{product_id}/unlist")]
pub async fn unlist_product(
    state: web::Data<AppState>,
    user: AuthUser,
    ip: ClientIp,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    merchant_step(state, user, ip, path.into_inner(), Decision::Unlist).await
}

/// New products and revisions of listed ones awaiting a decision, oldest first.
#[utoipa::path(get, path = "/api/system/products/review-queue", tag = "products", security(("bearer" = [])),
    params(PageQuery), responses(
    (status = 200, body = Page<ProductSummary>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `product.review`", body = ErrorBody)))]
#[get("/products/review-queue")]
pub async fn review_queue(
    state: web::Data<AppState>,
    _user: Require<perm::ProductReview>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let paging = query.paging()?;
    let client = state.db.get().await?;
    let (rows, total) = store::review_queue(&client, paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(rows, total).map(ProductSummary::from)))
}

/// Any product with its SKUs and pending revision, for review.
#[utoipa::path(get, path = "/api/system/products/{product_id}", tag = "products", security(("bearer" = [])),
    params(("product_id" = i64, Path)), responses(
    (status = 200, body = ProductView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `product.review`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/products/{product_id}")]
pub async fn get_product_for_review(
    state: web::Data<AppState>,
    _user: Require<perm::ProductReview>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    Ok(HttpResponse::Ok().json(ProductView::from(service::load(&client, path.into_inner(), false).await?)))
}

/// An operator's approval: names the revision that was reviewed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The product's `revision` as reviewed.
    pub revision: i32,
}

/// Approves a product (it is listed) or a pending revision (it goes live).
#[utoipa::path(post, path = "/api/system/products/{product_id}/approve", tag = "products",
    security(("bearer" = [])), params(("product_id" = i64, Path)), request_body = ApproveRequest, responses(
    (status = 200, body = ProductView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `product.review`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: nothing awaits review; `stale_revision`: edited since",
        body = ErrorBody)))]
#[post("/products/{product_id}/approve")]
pub async fn approve_product(
    state: web::Data<AppState>,
    user: Require<perm::ProductReview>,
    ip: ClientIp,
    path: web::Path<i64>,
    body: web::Json<ApproveRequest>,
) -> ApiResult<HttpResponse> {
    let decision = Decision::Approve { revision: body.revision };
    let product =
        service::decide(&state, Actor::new(&user, ip), Acting::Operator, path.into_inner(), decision).await?;
    Ok(HttpResponse::Ok().json(ProductView::from(product)))
}

/// An operator's rejection.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// The product's `revision` as reviewed.
    pub revision: i32,
    /// 1-500 characters, shown to the merchant.
    pub reason: String,
}

/// Rejects a product or a pending revision, with a reason.
#[utoipa::path(post, path = "/api/system/products/{product_id}/reject", tag = "products",
    security(("bearer" = [])), params(("product_id" = i64, Path)), request_body = RejectRequest, responses(
    (status = 200, body = ProductView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `product.review`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state` or `stale_revision`", body = ErrorBody),
    (status = 422, description = "`validation_failed`: reason", body = ErrorBody)))]
#[post("/products/{product_id}/reject")]
pub async fn reject_product(
    state: web::Data<AppState>,
    user: Require<perm::ProductReview>,
    ip: ClientIp,
    path: web::Path<i64>,
    body: web::Json<RejectRequest>,
) -> ApiResult<HttpResponse> {
    let decision = Decision::Reject { revision: body.revision, reason: &body.reason };
    let product =
        service::decide(&state, Actor::new(&user, ip), Acting::Operator, path.into_inner(), decision).await?;
    Ok(HttpResponse::Ok().json(ProductView::from(product)))
}
