//! Order rules: numbering, the sandbox payment, expiry of unpaid orders.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;

use super::store::{self, OrderRow};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::seckill::engine::SeckillEngine;
use crate::state::AppState;

/// A new order number: `yymmdd` + 12 random digits. Readable, sortable by
/// day, and not guessable from its neighbours.
pub fn new_order_no() -> String {
    let random: u64 = rand::thread_rng().gen_range(0..1_000_000_000_000);
    format!("{}{random:012}", Utc::now().format("%y%m%d"))
}

/// Reads an order the caller owns; another user's order is a 404, as if it
/// did not exist.
pub async fn own_order(state: &AppState, user_id: i64, order_no: &str) -> ApiResult<OrderRow> {
    let client = state.db.get().await?;
    match store::find_by_no(&client, order_no).await? {
        Some(order) if order.user_id == user_id => Ok(order),
        _ => Err(ApiError::new(ErrorCode::NotFound).with_message("no such order")),
    }
}

/// Pays an order through the sandbox: succeeds only while it is pending and
/// inside its payment window. Paying an already paid order is a no-op. A
/// payment for an expired or cancelled order is refused and recorded for
/// refund; it never resurrects the order.
pub async fn pay(state: &AppState, user_id: i64, order_no: &str) -> ApiResult<OrderRow> {
    let order = own_order(state, user_id, order_no).await?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let paid_now = store::mark_paid(&tx, order.id, user_id).await?;
    let current = store::find_by_no(&tx, order_no).await?.ok_or(ApiError::new(ErrorCode::NotFound))?;
    match (paid_now, current.view.status.as_str()) {
        (true, _) | (false, "paid") => {
            tx.commit().await?;
            Ok(current)
        }
        (false, "cancelled" | "pending_payment") => {
            store::record_payment_exception(&tx, order.id, order.view.total_cents, "order_expired").await?;
            tx.commit().await?;
            Err(ApiError::new(ErrorCode::OrderExpired)
                .with_message("the payment window has passed; the payment is recorded for refund"))
        }
        (false, other) => Err(ApiError::new(ErrorCode::InvalidState)
            .with_message(format!("the order is {other} and cannot be paid"))),
    }
}

/// Expires unpaid orders past their deadline every `interval`, forever,
/// returning flash-sale units to their stock actors. Driven by the stored
/// deadline, so it catches up after a restart.
pub async fn run_expiry_sweeper(state: AppState, engine: Arc<SeckillEngine>, interval: Duration) {
    const BATCH: i64 = 1000;
    loop {
        tokio::time::sleep(interval).await;
        loop {
            let returned = match state.db.get().await {
                Ok(client) => store::expire_unpaid(&client, BATCH).await,
                Err(err) => {
                    tracing::warn!(error = %err, "expiry sweep: no database connection");
                    break;
                }
            };
            match returned {
                Ok(units) => {
                    let full = units.len() as i64 >= BATCH;
                    for unit in units {
                        engine.release(
                            unit.event_id,
                            unit.user_id,
                            u32::try_from(unit.quantity).unwrap_or(0),
                        );
                    }
                    if !full {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "expiry sweep failed");
                    break;
                }
            }
        }
    }
}
