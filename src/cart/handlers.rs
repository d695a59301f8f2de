//! HTTP endpoints of the caller's own cart. Every change answers with the
//! cart as it now is, once the change is committed.

use actix_web::{delete, get, post, put, web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::service::{self, CartView};
use crate::auth::AuthUser;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// Path prefix of the cart routes.
pub const SCOPE: &str = "/api/cart";

/// Mounts the cart routes under their static prefix.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(SCOPE)
            .service(get_cart)
            .service(clear_cart)
            .service(add_cart_line)
            .service(update_cart_line)
            .service(remove_cart_line)
            .service(select_cart_lines),
    );
}

/// Units of a SKU to put in the cart.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddLineRequest {
    pub sku_id: i64,
    /// At least 1; added to the line if the SKU is in the cart already.
    pub quantity: u32,
}

/// New values for a line; at least one of them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLineRequest {
    /// The line's new quantity, at least 1 (remove a line with DELETE).
    pub quantity: Option<u32>,
    pub selected: Option<bool>,
}

/// Lines to tick or untick for checkout.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectionRequest {
    /// SKUs of the lines; absent means every line.
    pub sku_ids: Option<Vec<i64>>,
    pub selected: bool,
}

fn cart(view: CartView) -> HttpResponse {
    HttpResponse::Ok().json(view)
}

/// The caller's cart: lines grouped by shop with current prices, stock and
/// availability (lines that cannot be bought are flagged, never dropped).
#[utoipa::path(get, path = "/api/cart", tag = "cart", security(("bearer" = [])), responses(
    (status = 200, body = CartView),
    (status = 401, body = ErrorBody),
    (status = 503, description = "`overloaded` or `unavailable`", body = ErrorBody)))]
#[get("")]
pub async fn get_cart(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    Ok(cart(service::view(&state, user.user_id).await?))
}

/// Puts units of a SKU in the cart: a new line at today's price, or more
/// of an existing line.
#[utoipa::path(post, path = "/api/cart/lines", tag = "cart", security(("bearer" = [])),
    request_body = AddLineRequest, responses(
    (status = 200, body = CartView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`members_only`: verify your email to buy this product", body = ErrorBody),
    (status = 404, description = "no such SKU on sale", body = ErrorBody),
    (status = 409, description = "`cart_full` or `line_quantity_limit`", body = ErrorBody),
    (status = 422, description = "`validation_failed` (quantity) or `invalid_body`", body = ErrorBody),
    (status = 503, description = "`overloaded` or `unavailable`", body = ErrorBody)))]
#[post("/lines")]
pub async fn add_cart_line(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<AddLineRequest>,
) -> ApiResult<HttpResponse> {
    Ok(cart(service::add(&state, &user, body.sku_id, body.quantity).await?))
}

/// Sets a line's quantity and/or whether it is selected.
#[utoipa::path(put, path = "/api/cart/lines/{sku_id}", tag = "cart", security(("bearer" = [])),
    params(("sku_id" = i64, Path)), request_body = UpdateLineRequest, responses(
    (status = 200, body = CartView),
    (status = 401, body = ErrorBody),
    (status = 404, description = "no such line in the cart", body = ErrorBody),
    (status = 409, description = "`line_quantity_limit`", body = ErrorBody),
    (status = 422, description = "`validation_failed`: quantity 0, or nothing to change", body = ErrorBody),
    (status = 503, description = "`overloaded` or `unavailable`", body = ErrorBody)))]
#[put("/lines/{sku_id}")]
pub async fn update_cart_line(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    body: web::Json<UpdateLineRequest>,
) -> ApiResult<HttpResponse> {
    let view = service::update(&state, user.user_id, path.into_inner(), body.quantity, body.selected).await?;
    Ok(cart(view))
}

/// Removes a line.
#[utoipa::path(delete, path = "/api/cart/lines/{sku_id}", tag = "cart", security(("bearer" = [])),
    params(("sku_id" = i64, Path)), responses(
    (status = 200, body = CartView),
    (status = 401, body = ErrorBody),
    (status = 404, description = "no such line in the cart", body = ErrorBody),
    (status = 503, description = "`overloaded` or `unavailable`", body = ErrorBody)))]
#[delete("/lines/{sku_id}")]
pub async fn remove_cart_line(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(cart(service::remove(&state, user.user_id, path.into_inner()).await?))
}

/// Empties the cart.
#[utoipa::path(delete, path = "/api/cart", tag = "cart", security(("bearer" = [])), responses(
    (status = 200, body = CartView),
    (status = 401, body = ErrorBody),
    (status = 503, description = "`overloaded` or `unavailable`", body = ErrorBody)))]
#[delete("")]
pub async fn clear_cart(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    Ok(cart(service::clear(&state, user.user_id).await?))
}

/// Selects or deselects lines for checkout (all of them when `sku_ids` is
/// absent); nothing changes if one of them is not in the cart.
#[utoipa::path(post, path = "/api/cart/selection", tag = "cart", security(("bearer" = [])),
    request_body = SelectionRequest, responses(
    (status = 200, body = CartView),
    (status = 401, body = ErrorBody),
    (status = 404, description = "a line is not in the cart", body = ErrorBody),
    (status = 422, description = "`validation_failed` (sku_ids: too_many) or `invalid_body`", body = ErrorBody),
    (status = 503, description = "`overloaded` or `unavailable`", body = ErrorBody)))]
#[post("/selection")]
pub async fn select_cart_lines(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<SelectionRequest>,
) -> ApiResult<HttpResponse> {
    let SelectionRequest { sku_ids, selected } = body.into_inner();
    Ok(cart(service::select(&state, user.user_id, sku_ids, selected).await?))
}
