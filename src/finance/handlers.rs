//! Money endpoints: a shopper's monthly bills, a shop's balance, entries
//! and withdrawals, and the operators' withdrawal queue and trial balance.

use actix_web::{get, post, web, HttpResponse};
use chrono::Datelike;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::bills::{self, MonthBill, MonthTotals};
use super::ledger::{self, AccountBalance};
use super::withdrawal::{self, Decision, ShopBalance, ShopEntry, Withdrawal};
use crate::audit::Actor;
use crate::auth::{perm, AuthUser, ClientIp, Require};
use crate::error::{ApiResult, ErrorBody};
use crate::page::{Page, PageQuery, Paging};
use crate::shop::access::{self, Intent, ShopPermission};
use crate::state::AppState;

/// Mounts the shopper routes (absolute paths).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(bill_months).service(month_bill);
}

/// Mounts the merchant routes (inside the merchant scope).
pub fn configure_merchant(cfg: &mut web::ServiceConfig) {
    cfg.service(shop_balance).service(shop_entries).service(shop_withdrawals).service(request_withdrawal);
}

/// Mounts the operator routes (inside the `/api/system` scope).
pub fn configure_system(cfg: &mut web::ServiceConfig) {
    cfg.service(list_withdrawals).service(pay_withdrawal).service(reject_withdrawal).service(trial_balance);
}

/// Which month of the bill.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// `YYYY-MM` (UTC); default this month.
    pub month: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// One month of the caller's bill: payments and refunds with the month's
/// totals.
#[utoipa::path(get, path = "/api/me/bills", tag = "finance", security(("bearer" = [])), params(MonthQuery),
    responses(
    (status = 200, body = MonthBill),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody)))]
#[get("/api/me/bills")]
pub async fn month_bill(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<MonthQuery>,
) -> ApiResult<HttpResponse> {
    let first = match &query.month {
        Some(month) => bills::parse_month(month)?,
        None => {
            let today = state.clock.now().date_naive();
            today.with_day(1).unwrap_or(today)
        }
    };
    let paging = Paging::new(query.page, query.per_page)?;
    let client = state.db.get().await?;
    Ok(HttpResponse::Ok().json(bills::month(&client, user.user_id, first, paging).await?))
}

/// Which year's months.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct YearQuery {
    /// Default this year (UTC).
    pub year: Option<i32>,
}

/// The totals of every month of a year in which the caller paid or was
/// refunded.
#[utoipa::path(get, path = "/api/me/bills/months", tag = "finance", security(("bearer" = [])),
    params(YearQuery), responses(
    (status = 200, body = Vec<MonthTotals>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody)))]
#[get("/api/me/bills/months")]
pub async fn bill_months(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<YearQuery>,
) -> ApiResult<HttpResponse> {
    let year = query.year.unwrap_or_else(|| state.clock.now().year());
    let client = state.db.get().await?;
    Ok(HttpResponse::Ok().json(bills::months(&client, user.user_id, year).await?))
}

/// The shop's balance, what it is withdrawing, and what is still in
/// escrow (`finance.read`).
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/finance", tag = "merchant", security(("bearer" = [])),
    params(("shop_id" = i64, Path)), responses(
    (status = 200, body = ShopBalance),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `finance.read` in this shop", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/finance")]
pub async fn shop_balance(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    let access =
        access::require(&client, user.user_id, path.into_inner(), ShopPermission::FinanceRead, Intent::Read)
            .await?;
    Ok(HttpResponse::Ok().json(withdrawal::balance(&state, &client, access.shop_id).await?))
}

/// The shop's ledger entries, newest first (`finance.read`).
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/finance/entries", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), PageQuery), responses(
    (status = 200, body = Page<ShopEntry>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `finance.read` in this shop", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/finance/entries")]
pub async fn shop_entries(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let paging = query.paging()?;
    let client = state.db.get().await?;
    let access =
        access::require(&client, user.user_id, path.into_inner(), ShopPermission::FinanceRead, Intent::Read)
            .await?;
    let (entries, total) = withdrawal::entries(&client, access.shop_id, paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(entries, total)))
}

/// The shop's withdrawals, newest first (`finance.read`).
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/finance/withdrawals", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), PageQuery), responses(
    (status = 200, body = Page<Withdrawal>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `finance.read` in this shop", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/finance/withdrawals")]
pub async fn shop_withdrawals(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let paging = query.paging()?;
    let client = state.db.get().await?;
    let access =
        access::require(&client, user.user_id, path.into_inner(), ShopPermission::FinanceRead, Intent::Read)
            .await?;
    let (list, total) = withdrawal::list(&client, Some(access.shop_id), None, paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(list, total)))
}

/// A withdrawal to request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawalBody {
    pub amount_cents: i64,
    /// Where to pay it (a bank account or wallet), 4-100 characters.
    pub payout_account: String,
}

/// Asks to withdraw part of the shop's balance; the amount is held until
/// an operator pays it or rejects it (`finance.withdraw`, the owner's).
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/finance/withdrawals", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path)), request_body = WithdrawalBody, responses(
    (status = 201, body = Withdrawal),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` (needs `finance.withdraw`) or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`insufficient_balance`", body = ErrorBody),
    (status = 422, description = "`validation_failed`: amount_cents, payout_account", body = ErrorBody)))]
#[post("/finance/withdrawals")]
pub async fn request_withdrawal(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    body: web::Json<WithdrawalBody>,
) -> ApiResult<HttpResponse> {
    let access = access::require_in(
        &state.db,
        user.user_id,
        path.into_inner(),
        ShopPermission::FinanceWithdraw,
        Intent::Write,
    )
    .await?;
    let body = body.into_inner();
    let created =
        withdrawal::request(&state, access.shop_id, user.user_id, body.amount_cents, &body.payout_account)
            .await?;
    Ok(HttpResponse::Created().json(created))
}

/// Filters of the operators' withdrawal list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WithdrawalQuery {
    /// `requested` (the queue), `paid` or `rejected`.
    pub status: Option<String>,
    pub shop_id: Option<i64>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// Every shop's withdrawals, newest first (`finance.manage`).
#[utoipa::path(get, path = "/api/system/withdrawals", tag = "finance", security(("bearer" = [])),
    params(WithdrawalQuery), responses(
    (status = 200, body = Page<Withdrawal>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `finance.manage`", body = ErrorBody)))]
#[get("/withdrawals")]
pub async fn list_withdrawals(
    state: web::Data<AppState>,
    _user: Require<perm::FinanceManage>,
    query: web::Query<WithdrawalQuery>,
) -> ApiResult<HttpResponse> {
    let paging = Paging::new(query.page, query.per_page)?;
    let client = state.db.get().await?;
    let (list, total) = withdrawal::list(&client, query.shop_id, query.status.as_deref(), paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(list, total)))
}

/// An operator's note on a decision.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Optional when paying; required when rejecting.
    #[serde(default)]
    pub note: String,
}

/// Pays a requested withdrawal out (`finance.manage`; audited).
#[utoipa::path(post, path = "/api/system/withdrawals/{id}/pay", tag = "finance", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = DecisionBody, responses(
    (status = 200, body = Withdrawal),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `finance.manage`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: already decided", body = ErrorBody)))]
#[post("/withdrawals/{id}/pay")]
pub async fn pay_withdrawal(
    state: web::Data<AppState>,
    user: Require<perm::FinanceManage>,
    ip: ClientIp,
    id: web::Path<i64>,
    body: web::Json<DecisionBody>,
) -> ApiResult<HttpResponse> {
    let decided = withdrawal::decide(&state, Actor::new(&user, ip), *id, Decision::Pay, &body.note).await?;
    Ok(HttpResponse::Ok().json(decided))
}

/// Rejects a requested withdrawal with a note; the amount goes back to the
/// shop's balance (`finance.manage`; audited).
#[utoipa::path(post, path = "/api/system/withdrawals/{id}/reject", tag = "finance", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = DecisionBody, responses(
    (status = 200, body = Withdrawal),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `finance.manage`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: already decided", body = ErrorBody),
    (status = 422, description = "`validation_failed`: note", body = ErrorBody)))]
#[post("/withdrawals/{id}/reject")]
pub async fn reject_withdrawal(
    state: web::Data<AppState>,
    user: Require<perm::FinanceManage>,
    ip: ClientIp,
    id: web::Path<i64>,
    body: web::Json<DecisionBody>,
) -> ApiResult<HttpResponse> {
    let decided =
        withdrawal::decide(&state, Actor::new(&user, ip), *id, Decision::Reject, &body.note).await?;
    Ok(HttpResponse::Ok().json(decided))
}

/// The platform's trial balance: every account's debits minus credits,
/// one row per shop account; the rows sum to zero (`finance.manage`).
#[utoipa::path(get, path = "/api/system/finance/ledger", tag = "finance", security(("bearer" = [])),
    responses(
    (status = 200, body = Vec<AccountBalance>),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `finance.manage`", body = ErrorBody)))]
#[get("/finance/ledger")]
pub async fn trial_balance(
    state: web::Data<AppState>,
    _user: Require<perm::FinanceManage>,
) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    Ok(HttpResponse::Ok().json(ledger::trial_balance(&client).await?))
}
