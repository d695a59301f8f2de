//! `GET /api/merchant/shops/{shop_id}/stats`: a shop's orders, GMV,
//! refunds and best sellers per day (shop permission `finance.read`).

use actix_web::{get, web, HttpResponse};
use chrono::{NaiveDate, TimeDelta};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::store::{self, DayStats, TopSku};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::shop::access::{self, Intent, ShopPermission};
use crate::state::AppState;

/// Longest range one request may ask for.
pub const MAX_DAYS: i64 = 366;
/// Range when none is given: the last 30 days, today included.
pub const DEFAULT_DAYS: i64 = 30;
/// Best sellers listed.
pub const TOP_SKUS: i64 = 10;

/// Mounts the route (inside the merchant scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(shop_stats);
}

/// The range, as UTC calendar days.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// First day, `YYYY-MM-DD` (default: 29 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last day, included (default: today).
    pub to: Option<NaiveDate>,
}

/// Totals over the range.
#[derive(Serialize, ToSchema)]
pub struct Totals {
    pub orders: i64,
    pub paid_orders: i64,
    pub gmv_cents: i64,
    pub refunded_cents: i64,
    /// GMV per paid order, rounded down (0 without paid orders).
    pub average_order_cents: i64,
}

/// A shop's statistics over a range of days.
#[derive(Serialize, ToSchema)]
pub struct ShopStats {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub totals: Totals,
    pub days: Vec<DayStats>,
    pub top_skus: Vec<TopSku>,
}

/// The shop's orders, paid amount (GMV), refunds, average order value and
/// best sellers, per day.
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/stats", tag = "merchant", security(("bearer" = [])),
    params(("shop_id" = i64, Path), StatsQuery), responses(
    (status = 200, body = ShopStats),
    (status = 400, description = "`invalid_query`: bad dates, `from` after `to`, more than 366 days", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `finance.read` in this shop", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/stats")]
pub async fn shop_stats(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    query: web::Query<StatsQuery>,
) -> ApiResult<HttpResponse> {
    let shop_id = path.into_inner();
    let to = query.to.unwrap_or_else(|| state.clock.now().date_naive());
    // Checked: a `to` near the calendar's start has no 30 days before it.
    let from = query.from.or_else(|| to.checked_sub_signed(TimeDelta::days(DEFAULT_DAYS - 1)));
    let Some(from) = from.filter(|from| (1..=MAX_DAYS).contains(&((to - *from).num_days() + 1))) else {
        return Err(ApiError::new(ErrorCode::InvalidQuery)
            .with_message(format!("from must not be after to, and the range is at most {MAX_DAYS} days")));
    };
    let client = state.db.get().await?;
    access::require(&client, user.user_id, shop_id, ShopPermission::FinanceRead, Intent::Read).await?;
    let days = store::days(&client, shop_id, from, to).await?;
    let top_skus = store::top_skus(&client, shop_id, from, to, TOP_SKUS).await?;
    let sum = |f: fn(&DayStats) -> i64| days.iter().map(f).sum::<i64>();
    let (paid_orders, gmv_cents) = (sum(|d| d.paid_orders), sum(|d| d.gmv_cents));
    let totals = Totals {
        orders: sum(|d| d.orders),
        paid_orders,
        gmv_cents,
        refunded_cents: sum(|d| d.refunded_cents),
        average_order_cents: if paid_orders > 0 { gmv_cents / paid_orders } else { 0 },
    };
    Ok(HttpResponse::Ok().json(ShopStats { from, to, totals, days, top_skus }))
}
