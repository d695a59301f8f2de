//! Stock rules: a movement either applies whole, with its ledger row, or
//! not at all.

use super::store::{self, Movement, MovementRow, MAX_STOCK};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// Longest reason for a movement.
pub const REASON_MAX_CHARS: usize = 200;

/// Records `movement` (stock and ledger in one statement) and drops the
/// product from the detail cache. 404 for a SKU that is not the shop's,
/// 409 `insufficient_stock` when it would take stock below zero.
pub async fn record(state: &AppState, movement: &Movement<'_>) -> ApiResult<MovementRow> {
    let client = state.db.get().await?;
    let Some(recorded) = store::record(&client, movement).await? else {
        return Err(match store::stock_of(&client, movement.shop_id, movement.sku_id).await? {
            None => ApiError::new(ErrorCode::NotFound).with_message("no such SKU in this shop"),
            Some(stock) if movement.delta < 0 => ApiError::new(ErrorCode::InsufficientStock).with_message(
                format!("the SKU has {stock} in stock; cannot take {}", movement.delta.unsigned_abs()),
            ),
            Some(stock) => ApiError::new(ErrorCode::InvalidState)
                .with_message(format!("the SKU has {stock} in stock; it cannot hold more than {MAX_STOCK}")),
        });
    };
    drop(client);
    state.products.invalidate(recorded.product_id).await;
    Ok(recorded)
}
