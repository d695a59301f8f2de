//! Public product reads: `GET /api/products` (search and browse) and
//! `GET /api/products/{id}` (detail, from memory when cached).

use actix_web::http::header::ContentType;
use actix_web::{get, web, HttpResponse};

use super::query::ProductQuery;
use super::service;
use super::store::{self, ProductCard, ProductDetail};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::page::{Page, Paging};
use crate::state::AppState;

/// Path prefix of the product reads.
pub const SCOPE: &str = "/api/products";

/// Mounts the product reads under their static prefix (a prefix compare,
/// then only the short rest is matched), the detail first: it is the read
/// crowds hammer before a flash sale.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope(SCOPE).service(get_product).service(list_products));
}

/// Listed products of active shops, filtered, sorted and paged.
#[utoipa::path(get, path = "/api/products", tag = "storefront", params(ProductQuery), responses(
    (status = 200, body = Page<ProductCard>),
    (status = 400, description = "`invalid_query`: a filter, the sort or the page is malformed", body = ErrorBody)))]
#[get("")]
pub async fn list_products(
    state: web::Data<AppState>,
    query: web::Query<ProductQuery>,
) -> ApiResult<HttpResponse> {
    let paging = Paging::new(query.page, query.per_page)?;
    let filter = query.filter()?;
    let client = state.db.get().await?;
    let (items, total) = store::search(&client, &filter, paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(items, total)))
}

/// A product on sale with its shop, category path and active SKUs.
#[utoipa::path(get, path = "/api/products/{id}", tag = "storefront",
    params(("id" = i64, Path, description = "Product id")), responses(
    (status = 200, body = ProductDetail),
    (status = 400, description = "`invalid_path`", body = ErrorBody),
    (status = 404, description = "`not_found`: unknown, not listed, or its shop is not active", body = ErrorBody)))]
#[get("/{id}")]
pub async fn get_product(state: web::Data<AppState>, id: web::Path<i64>) -> ApiResult<HttpResponse> {
    match service::detail(&state, id.into_inner()).await? {
        Some(body) => Ok(HttpResponse::Ok().content_type(ContentType::json()).body(body)),
        None => Err(ApiError::new(ErrorCode::NotFound).with_message("no such product on sale")),
    }
}
