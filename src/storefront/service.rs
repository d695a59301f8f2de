//! Product detail through the cache: a miss loads the product once and
//! renders its JSON once; every later reader gets the same bytes.

use actix_web::web::Bytes;

use super::cache::Detail;
use super::store;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The rendered detail of product `id`, or `None` when it is not on sale.
pub async fn detail(state: &AppState, id: i64) -> ApiResult<Detail> {
    let mut loaded = false;
    let body = state
        .products
        .get_or_load(id, || {
            loaded = true;
            load(state, id)
        })
        .await?;
    let result = if loaded { "miss" } else { "hit" };
    state.metrics.product_detail_cache.with_label_values(&[result]).inc();
    Ok(body)
}

async fn load(state: &AppState, id: i64) -> ApiResult<Detail> {
    let client = state.db.get().await?;
    let Some(detail) = store::find_detail(&client, id).await? else { return Ok(None) };
    let body = serde_json::to_vec(&detail).map_err(ApiError::internal)?;
    Ok(Some(Bytes::from(body)))
}
