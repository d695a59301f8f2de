//! Payment endpoints: shoppers open payments and read them, gateways post
//! signed callbacks, operators read every payment, and the sandbox
//! gateway's pay page plays the shopper at the gateway.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::gateway::{ProviderName, SignedCallback};
use super::service::{self, CallbackEffect, SavedAccount};
use super::store::{self, PaymentEvent, PaymentFilter, PaymentRow, PaymentView};
use crate::auth::{perm, AuthUser, Require};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::page::{Page, Paging};
use crate::state::AppState;

/// Mounts the shopper, gateway and sandbox routes (absolute paths).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(start_payment)
        .service(list_my_payments)
        .service(get_my_payment)
        .service(gateway_callback)
        .service(sandbox_pay);
}

/// Mounts the operator routes (inside the `/api/system` scope).
pub fn configure_system(cfg: &mut web::ServiceConfig) {
    cfg.service(list_all_payments).service(get_any_payment);
}

/// How to pay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPaymentBody {
    pub provider: ProviderName,
    /// Pay from this saved account (of the same provider)...
    pub pay_account_id: Option<i64>,
    /// ...unlocked by its six-digit payment password.
    pub payment_password: Option<String>,
}

/// Opens a payment of one of the caller's orders at a gateway; the shopper
/// then pays at `pay_url` and the gateway tells rs-cms by a signed callback.
#[utoipa::path(post, path = "/api/orders/{order_no}/payments", tag = "payments", security(("bearer" = [])),
    params(("order_no" = String, Path)), request_body = StartPaymentBody, responses(
    (status = 201, body = PaymentView),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 403, description = "`wrong_password` (the saved account's payment password)", body = ErrorBody),
    (status = 409, description = "`order_expired` or a code naming the order's state", body = ErrorBody),
    (status = 422, description = "`provider_unavailable`, `validation_failed` (pay_account_id, payment_password) \
        or `invalid_body`", body = ErrorBody),
    (status = 429, description = "`rate_limited`: too many wrong payment passwords", body = ErrorBody)))]
#[post("/api/orders/{order_no}/payments")]
pub async fn start_payment(
    state: web::Data<AppState>,
    user: AuthUser,
    order_no: web::Path<String>,
    body: web::Json<StartPaymentBody>,
) -> ApiResult<HttpResponse> {
    let StartPaymentBody { provider, pay_account_id, payment_password } = body.into_inner();
    let saved = match (pay_account_id, payment_password) {
        (Some(account_id), Some(payment_password)) => Some(SavedAccount { account_id, payment_password }),
        (None, None) => None,
        (Some(_), None) => return Err(ApiError::invalid_field("payment_password", "required")),
        (None, Some(_)) => return Err(ApiError::invalid_field("pay_account_id", "required")),
    };
    let payment = service::start(&state, user.user_id, &order_no, provider, saved).await?;
    Ok(HttpResponse::Created().json(payment.view))
}

/// Filters and page of a payment list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentQuery {
    /// `pending`, `succeeded`, `failed` or `refunded`.
    pub status: Option<String>,
    pub provider: Option<ProviderName>,
    /// Operators only: one account's payments.
    pub user_id: Option<i64>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

async fn list(state: &AppState, query: &PaymentQuery, user_id: Option<i64>) -> ApiResult<Page<PaymentView>> {
    let paging = Paging::new(query.page, query.per_page)?;
    if !matches!(query.status.as_deref(), None | Some("pending" | "succeeded" | "failed" | "refunded")) {
        return Err(ApiError::new(ErrorCode::InvalidQuery)
            .with_message("status is pending, succeeded, failed or refunded"));
    }
    let filter = PaymentFilter {
        user_id,
        status: query.status.as_deref(),
        provider: query.provider.map(ProviderName::as_str),
    };
    let client = state.db.get().await?;
    let (items, total) = store::list(&client, &filter, paging).await?;
    Ok(paging.wrap(items, total))
}

/// The caller's payments, newest first.
#[utoipa::path(get, path = "/api/payments", tag = "payments", security(("bearer" = [])), params(PaymentQuery),
    responses((status = 200, body = Page<PaymentView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[get("/api/payments")]
pub async fn list_my_payments(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PaymentQuery>,
) -> ApiResult<HttpResponse> {
    if query.user_id.is_some() {
        return Err(ApiError::new(ErrorCode::InvalidQuery).with_message("user_id is for operators"));
    }
    Ok(HttpResponse::Ok().json(list(&state, &query, Some(user.user_id)).await?))
}

/// A payment with its event log.
#[derive(Serialize, ToSchema)]
pub struct PaymentDetail {
    #[serde(flatten)]
    pub payment: PaymentView,
    pub events: Vec<PaymentEvent>,
}

async fn detail(state: &AppState, payment: PaymentRow) -> ApiResult<PaymentDetail> {
    let client = state.db.get().await?;
    Ok(PaymentDetail { events: store::events(&client, payment.id).await?, payment: payment.view })
}

async fn find(state: &AppState, payment_no: &str) -> ApiResult<PaymentRow> {
    let client = state.db.get().await?;
    store::find_by_no(&client, payment_no)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound).with_message("no such payment"))
}

/// One of the caller's payments with its event log.
#[utoipa::path(get, path = "/api/payments/{payment_no}", tag = "payments", security(("bearer" = [])),
    params(("payment_no" = String, Path)),
    responses((status = 200, body = PaymentDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/api/payments/{payment_no}")]
pub async fn get_my_payment(
    state: web::Data<AppState>,
    user: AuthUser,
    payment_no: web::Path<String>,
) -> ApiResult<HttpResponse> {
    match find(&state, &payment_no).await {
        Ok(payment) if payment.user_id == user.user_id => {
            Ok(HttpResponse::Ok().json(detail(&state, payment).await?))
        }
        Ok(_) | Err(_) => Err(ApiError::new(ErrorCode::NotFound).with_message("no such payment")),
    }
}

/// Every payment, newest first (`payment.read`).
#[utoipa::path(get, path = "/api/system/payments", tag = "payments", security(("bearer" = [])), params(PaymentQuery),
    responses(
    (status = 200, body = Page<PaymentView>),
    (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `payment.read`", body = ErrorBody)))]
#[get("/payments")]
pub async fn list_all_payments(
    state: web::Data<AppState>,
    _user: Require<perm::PaymentRead>,
    query: web::Query<PaymentQuery>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(list(&state, &query, query.user_id).await?))
}

/// Any payment with its event log (`payment.read`).
#[utoipa::path(get, path = "/api/system/payments/{payment_no}", tag = "payments", security(("bearer" = [])),
    params(("payment_no" = String, Path)), responses(
    (status = 200, body = PaymentDetail),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `payment.read`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/payments/{payment_no}")]
pub async fn get_any_payment(
    state: web::Data<AppState>,
    _user: Require<perm::PaymentRead>,
    payment_no: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let payment = find(&state, &payment_no).await?;
    Ok(HttpResponse::Ok().json(detail(&state, payment).await?))
}

/// What rs-cms made of a callback.
#[derive(Serialize, ToSchema)]
pub struct CallbackAnswer {
    /// `paid`, `failed`, `refunded` (money for an order that could not take
    /// it, sent back) or `duplicate` (already applied; nothing changed).
    pub effect: String,
}

/// Gateway callback. Signed: `X-Pay-Timestamp` (Unix seconds) and
/// `X-Pay-Signature`, the hex HMAC-SHA256 of `"{timestamp}.{raw body}"`
/// under the gateway's secret. Idempotent on the gateway's transaction id.
#[utoipa::path(post, path = "/api/payments/callbacks/{provider}", tag = "payments",
    params(("provider" = ProviderName, Path), ("X-Pay-Timestamp" = String, Header), ("X-Pay-Signature" = String, Header)),
    responses(
    (status = 200, body = CallbackAnswer),
    (status = 401, description = "`invalid_signature`", body = ErrorBody),
    (status = 404, description = "no such payment", body = ErrorBody),
    (status = 422, description = "`amount_mismatch`, `invalid_body`, `provider_unavailable`", body = ErrorBody)))]
#[post("/api/payments/callbacks/{provider}")]
pub async fn gateway_callback(
    state: web::Data<AppState>,
    provider: web::Path<ProviderName>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let signed = SignedCallback {
        timestamp: header("x-pay-timestamp"),
        signature: header("x-pay-signature"),
        body: &body,
    };
    let effect = match service::apply_callback(&state, provider.into_inner(), &signed).await? {
        CallbackEffect::Paid => "paid",
        CallbackEffect::Failed => "failed",
        CallbackEffect::Refunded => "refunded",
        CallbackEffect::Duplicate => "duplicate",
    };
    Ok(HttpResponse::Ok().json(CallbackAnswer { effect: effect.to_owned() }))
}

/// The shopper's choice on the sandbox's pay page.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxPayBody {
    /// True pays; false declines.
    pub pay: bool,
}

/// What the sandbox did.
#[derive(Serialize, ToSchema)]
pub struct SandboxPayAnswer {
    /// The HTTP status rs-cms answered the sandbox's callback with.
    pub callback_status: u16,
}

/// The sandbox gateway's pay page (the `pay_url` of a sandbox payment):
/// plays the shopper paying or declining at the gateway, after which the
/// sandbox posts its signed callback to rs-cms. Only with the sandbox on.
#[utoipa::path(post, path = "/api/sandbox/pay/{provider_payment_id}", tag = "payments",
    params(("provider_payment_id" = String, Path)), request_body = SandboxPayBody, responses(
    (status = 200, body = SandboxPayAnswer),
    (status = 404, description = "no such sandbox payment, or the sandbox is off", body = ErrorBody)))]
// The path is `gateway::SANDBOX_PAY_PATH`, which the sandbox puts in its pay URLs.
#[post("/api/sandbox/pay/{provider_payment_id}")]
pub async fn sandbox_pay(
    state: web::Data<AppState>,
    provider_payment_id: web::Path<String>,
    body: web::Json<SandboxPayBody>,
) -> ApiResult<HttpResponse> {
    let sandbox = state.payments.gateways.sandbox().ok_or_else(|| ApiError::new(ErrorCode::NotFound))?;
    let callback_url = state.payments.callback_url(ProviderName::Sandbox);
    let callback_status = sandbox.shopper_pays(&provider_payment_id, body.pay, &callback_url).await?;
    Ok(HttpResponse::Ok().json(SandboxPayAnswer { callback_status }))
}
