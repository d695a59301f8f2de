//! HTTP endpoints of the caller's saved payment accounts. Another user's
//! account is a 404, never a 403: its existence is not disclosed.

use actix_web::{delete, get, post, put, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::service::{self, PayAccountInput};
use super::store::{self, PayAccountRow};
use crate::auth::AuthUser;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// Path prefix of the payment account routes. A scope of its own, so it
/// never shadows the `/api/me` resources of the account module.
pub const SCOPE: &str = "/api/me/pay-accounts";

/// Mounts the payment account routes under their static prefix.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(SCOPE)
            .service(list_pay_accounts)
            .service(create_pay_account)
            .service(delete_pay_account)
            .service(set_payment_password),
    );
}

/// One saved payment account: the number masked, the payment password
/// only as whether there is one.
#[derive(Serialize, ToSchema)]
pub struct PayAccountView {
    pub id: i64,
    pub provider: String,
    pub holder_name: String,
    /// e.g. `**** **** **** 4242`, `138****0000`, `a***@example.com`, `0x5290…9ee7`.
    pub account_masked: String,
    pub has_payment_password: bool,
    pub created_at: DateTime<Utc>,
}

impl From<PayAccountRow> for PayAccountView {
    fn from(row: PayAccountRow) -> Self {
        Self {
            id: row.id,
            provider: row.provider,
            holder_name: row.holder_name,
            account_masked: row.account_masked,
            has_payment_password: row.has_payment_password,
            created_at: row.created_at,
        }
    }
}

/// The caller's saved payment accounts (at most 10, so not paged), newest first.
#[utoipa::path(get, path = "/api/me/pay-accounts", tag = "pay-accounts", security(("bearer" = [])), responses(
    (status = 200, body = Vec<PayAccountView>),
    (status = 401, body = ErrorBody)))]
#[get("")]
pub async fn list_pay_accounts(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    let rows = store::list_for_user(&client, user.user_id).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(PayAccountView::from).collect::<Vec<_>>()))
}

/// Saves a payment account; only its masked number is kept.
#[utoipa::path(post, path = "/api/me/pay-accounts", tag = "pay-accounts", security(("bearer" = [])),
    request_body = PayAccountInput, responses(
    (status = 201, body = PayAccountView),
    (status = 401, body = ErrorBody),
    (status = 409, description = "`pay_accounts_full`", body = ErrorBody),
    (status = 422, description = "`validation_failed` per field or `invalid_body`", body = ErrorBody),
    (status = 503, description = "`overloaded`: too many passwords waiting to be hashed", body = ErrorBody)))]
#[post("")]
pub async fn create_pay_account(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<PayAccountInput>,
) -> ApiResult<HttpResponse> {
    let row = service::create(&state, user.user_id, &body).await?;
    Ok(HttpResponse::Created().json(PayAccountView::from(row)))
}

/// Deletes a saved payment account.
#[utoipa::path(delete, path = "/api/me/pay-accounts/{id}", tag = "pay-accounts", security(("bearer" = [])),
    params(("id" = i64, Path)), responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[delete("/{id}")]
pub async fn delete_pay_account(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    service::delete(&state, user.user_id, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Payment password change request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPaymentPasswordRequest {
    /// The present payment password; required when the account has one.
    #[serde(default)]
    pub current_password: Option<String>,
    /// Six digits.
    pub new_password: String,
}

/// Sets a saved account's payment password, or changes it given the
/// present one.
#[utoipa::path(put, path = "/api/me/pay-accounts/{id}/payment-password", tag = "pay-accounts",
    security(("bearer" = [])), params(("id" = i64, Path)), request_body = SetPaymentPasswordRequest, responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`wrong_password`: the current payment password is missing or wrong", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 422, description = "`validation_failed` (new_password) or `invalid_body`", body = ErrorBody),
    (status = 429, description = "`rate_limited`: too many wrong payment passwords for this account", body = ErrorBody),
    (status = 503, description = "`overloaded`: too many passwords waiting to be hashed", body = ErrorBody)))]
#[put("/{id}/payment-password")]
pub async fn set_payment_password(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    body: web::Json<SetPaymentPasswordRequest>,
) -> ApiResult<HttpResponse> {
    let SetPaymentPasswordRequest { current_password, new_password } = body.into_inner();
    service::set_payment_password(&state, user.user_id, path.into_inner(), current_password, new_password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
