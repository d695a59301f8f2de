//! The naive flash-sale design, kept only as a baseline for the load test:
//! every request runs its own transaction (conditional stock decrement,
//! per-user count, order and item inserts) straight against Postgres, with
//! no actor and no batching. Served only when `seckill.naive_baseline` is
//! on (off by default); never use it for real sales.

use actix_web::{post, web, HttpResponse};
use chrono::{DateTime, Utc};
use tokio_postgres::error::SqlState;

use super::handlers::BuyBody;
use super::service::OrderReceipt;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::order;
use crate::state::AppState;

/// Mounts the baseline route inside the shoppers' flash-sale scope (it
/// answers 404 unless enabled).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create_naive_order);
}

/// Baseline buy: one transaction per request. Disabled unless
/// `seckill.naive_baseline = true`.
#[utoipa::path(post, path = "/api/seckill/events/{id}/orders-naive", tag = "seckill", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = BuyBody,
    responses((status = 201, body = OrderReceipt),
        (status = 404, description = "disabled, or no such event", body = ErrorBody),
        (status = 409, description = "`sold_out` or `limit_reached`", body = ErrorBody)))]
#[post("/{id}/orders-naive")]
pub async fn create_naive_order(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<i64>,
    body: web::Json<BuyBody>,
) -> ApiResult<HttpResponse> {
    if !state.settings.seckill.naive_baseline {
        return Err(ApiError::new(ErrorCode::NotFound).with_message("no such endpoint"));
    }
    let quantity = i32::try_from(body.quantity).unwrap_or(0);
    if !(1..=100).contains(&quantity) {
        return Err(ErrorCode::ValidationFailed.into());
    }
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let taken = tx
        .query_opt(
            "UPDATE seckill_events SET remaining_stock = remaining_stock - $2, updated_at = now()
             WHERE id = $1 AND remaining_stock >= $2 AND closed_at IS NULL
               AND (opened_at IS NOT NULL OR starts_at <= now()) AND ends_at > now()
             RETURNING sku_id, title, price_cents, currency, per_user_limit, payment_window_secs",
            &[&*id, &quantity],
        )
        .await?
        .ok_or(ApiError::new(ErrorCode::SoldOut))?;
    let price: i64 = taken.try_get("price_cents")?;
    let limit: i32 = taken.try_get("per_user_limit")?;
    let window: i32 = taken.try_get("payment_window_secs")?;
    let counted = tx
        .execute(
            "INSERT INTO seckill_user_counts (event_id, user_id, per_user_limit, bought) VALUES ($1, $2, $3, $4)
             ON CONFLICT (event_id, user_id) DO UPDATE SET bought = seckill_user_counts.bought + EXCLUDED.bought",
            &[&*id, &user.user_id, &limit, &quantity],
        )
        .await;
    if let Err(err) = counted {
        if err.code() == Some(&SqlState::CHECK_VIOLATION) {
            return Err(ErrorCode::LimitReached.into());
        }
        return Err(err.into());
    }
    let order_no = order::service::new_order_no();
    let total = price * i64::from(quantity);
    let pay_before: DateTime<Utc> = Utc::now() + chrono::Duration::seconds(i64::from(window));
    let order = tx
        .query_one(
            "INSERT INTO orders (order_no, user_id, kind, seckill_event_id, status, total_cents, pay_before)
             VALUES ($1, $2, 'seckill', $3, 'pending_payment', $4, $5) RETURNING id",
            &[&order_no, &user.user_id, &*id, &total, &pay_before],
        )
        .await?;
    let order_id: i64 = order.try_get(0)?;
    let sku_id: i64 = taken.try_get("sku_id")?;
    let title: String = taken.try_get("title")?;
    tx.execute(
        "INSERT INTO order_items (order_id, sku_id, title, quantity, unit_price_cents, total_cents)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&order_id, &sku_id, &title, &quantity, &price, &total],
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(OrderReceipt {
        order_no,
        event_id: *id,
        quantity: i64::from(quantity),
        amount_cents: total,
        currency: taken.try_get("currency")?,
        status: "pending_payment".into(),
        pay_before: Some(pay_before),
    }))
}
