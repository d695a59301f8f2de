//! HTTP endpoints of the caller's own address book. Another user's address
//! is a 404, never a 403: its existence is not disclosed.

use actix_web::{delete, get, post, put, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::service::{self, AddressInput};
use super::store::{self, AddressRow};
use crate::auth::AuthUser;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// Path prefix of the address routes.
pub const SCOPE: &str = "/api/addresses";

/// Mounts the address routes under their static prefix.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(SCOPE)
            .service(list_addresses)
            .service(create_address)
            .service(update_address)
            .service(delete_address)
            .service(set_default_address),
    );
}

/// One address of the caller's book.
#[derive(Serialize, ToSchema)]
pub struct AddressView {
    pub id: i64,
    pub recipient: String,
    pub phone: String,
    /// Province / city / district.
    pub region: String,
    pub detail: String,
    pub postal_code: Option<String>,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AddressRow> for AddressView {
    fn from(row: AddressRow) -> Self {
        Self {
            id: row.id,
            recipient: row.recipient,
            phone: row.phone,
            region: row.region,
            detail: row.detail,
            postal_code: row.postal_code,
            is_default: row.is_default,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The caller's addresses (at most 20, so not paged), the default first,
/// then newest first.
#[utoipa::path(get, path = "/api/addresses", tag = "addresses", security(("bearer" = [])), responses(
    (status = 200, body = Vec<AddressView>),
    (status = 401, body = ErrorBody)))]
#[get("")]
pub async fn list_addresses(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    let rows = store::list_for_user(&client, user.user_id).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(AddressView::from).collect::<Vec<_>>()))
}

/// Adds an address; the first one becomes the default.
#[utoipa::path(post, path = "/api/addresses", tag = "addresses", security(("bearer" = [])),
    request_body = AddressInput, responses(
    (status = 201, body = AddressView),
    (status = 401, body = ErrorBody),
    (status = 409, description = "`address_book_full`", body = ErrorBody),
    (status = 422, description = "`validation_failed` per field or `invalid_body`", body = ErrorBody)))]
#[post("")]
pub async fn create_address(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<AddressInput>,
) -> ApiResult<HttpResponse> {
    let row = service::create(&state, user.user_id, &body).await?;
    Ok(HttpResponse::Created().json(AddressView::from(row)))
}

/// Replaces an address.
#[utoipa::path(put, path = "/api/addresses/{id}", tag = "addresses", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = AddressInput, responses(
    (status = 200, body = AddressView),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: `is_default: false` on the default address", body = ErrorBody),
    (status = 422, description = "`validation_failed` per field or `invalid_body`", body = ErrorBody)))]
#[put("/{id}")]
pub async fn update_address(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    body: web::Json<AddressInput>,
) -> ApiResult<HttpResponse> {
    let row = service::update(&state, user.user_id, path.into_inner(), &body).await?;
    Ok(HttpResponse::Ok().json(AddressView::from(row)))
}

/// Deletes an address; if it was the default, the most recently added
/// other address becomes the default.
#[utoipa::path(delete, path = "/api/addresses/{id}", tag = "addresses", security(("bearer" = [])),
    params(("id" = i64, Path)), responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[delete("/{id}")]
pub async fn delete_address(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    service::delete(&state, user.user_id, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Makes an address the default (the old default is unmarked).
#[utoipa::path(post, path = "/api/addresses/{id}/default", tag = "addresses", security(("bearer" = [])),
    params(("id" = i64, Path)), responses(
    (status = 200, body = AddressView),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[post("/{id}/default")]
pub async fn set_default_address(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let row = service::make_default(&state, user.user_id, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(AddressView::from(row)))
}
