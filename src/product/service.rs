//! Product rules: creating and editing a product with its SKUs in one
//! transaction, and carrying out lifecycle steps ([`lifecycle::plan`]).

use serde_json::json;

use super::content::ProductContent;
use super::lifecycle::{self, Step};
use super::store::{self, ProductRow, SkuRow};
use crate::audit::Actor;
use crate::category;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::shop::access::ShopAccess;
use crate::state::AppState;
use crate::validate::Validator;

/// Longest rejection reason.
pub const REASON_MAX_CHARS: usize = 500;

/// A product and all its SKUs.
pub struct Product {
    pub row: ProductRow,
    pub skus: Vec<SkuRow>,
}

fn sku_code_conflict(err: tokio_postgres::Error) -> ApiError {
    match db::violated_unique(&err) {
        Some("skus_code_key") => ErrorCode::SkuCodeTaken.into(),
        _ => err.into(),
    }
}

async fn check_category(
    client: &impl deadpool_postgres::GenericClient,
    content: &ProductContent,
) -> ApiResult<()> {
    if category::store::find(client, content.category_id).await?.is_some() {
        Ok(())
    } else {
        Err(ApiError::invalid_field("category_id", "not_found"))
    }
}

/// Creates a draft product with its SKUs (no stock yet: stock comes in
/// through inventory movements).
pub async fn create(
    state: &AppState,
    actor: Actor,
    access: &ShopAccess,
    content: ProductContent,
) -> ApiResult<Product> {
    let content = content.normalised();
    content.validate()?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    check_category(&tx, &content).await?;
    let id = store::insert_draft(&tx, access.shop_id, content.category_id, actor.user_id).await?;
    store::write_live(&tx, id, access.shop_id, &content).await.map_err(sku_code_conflict)?;
    actor
        .record(&tx, "product.create", format_args!("product:{id}"), json!({"shop_id": access.shop_id}))
        .await?;
    let product = load(&tx, id, false).await?;
    tx.commit().await?;
    Ok(product)
}

/// Loads a product with its SKUs; 404 when unknown.
pub async fn load(
    client: &impl deadpool_postgres::GenericClient,
    product_id: i64,
    lock: bool,
) -> ApiResult<Product> {
    let row = store::find(client, product_id, lock)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound).with_message("no such product"))?;
    let skus = store::skus(client, product_id).await?;
    Ok(Product { row, skus })
}

/// Who is acting on a product: staff of its shop, or a platform operator.
#[derive(Clone, Copy)]
pub enum Acting<'a> {
    Merchant(&'a ShopAccess),
    Operator,
}

/// Edits a product. Before its first approval the edit is the product;
/// afterwards a customer-facing change waits for review as a revision
/// while the live version stays up.
pub async fn edit(
    state: &AppState,
    actor: Actor,
    access: &ShopAccess,
    product_id: i64,
    content: ProductContent,
) -> ApiResult<Product> {
    let content = content.normalised();
    content.validate()?;
    let content_json = serde_json::to_value(&content).map_err(ApiError::internal)?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    check_category(&tx, &content).await?;
    let current = load_for(&tx, product_id, Acting::Merchant(access)).await?;
    let live = current.row.live_content(&current.skus);
    let plan = lifecycle::plan(
        &current.row,
        Step::Edit { content: &content, live: &live, content_json: &content_json },
    )?;
    let product = carry_out(&tx, &current.row, plan).await?;
    let detail = json!({"revision": product.row.revision, "pending": product.row.pending_state});
    actor.record(&tx, "product.edit", format_args!("product:{product_id}"), detail).await?;
    tx.commit().await?;
    state.products.invalidate(product_id).await;
    Ok(product)
}

/// A lifecycle step other than an edit.
pub enum Decision<'a> {
    Submit,
    List,
    Unlist,
    Approve { revision: i32 },
    Reject { revision: i32, reason: &'a str },
}

/// Carries out a lifecycle step: merchants submit, list and unlist;
/// operators approve and reject.
pub async fn decide(
    state: &AppState,
    actor: Actor,
    acting: Acting<'_>,
    product_id: i64,
    decision: Decision<'_>,
) -> ApiResult<Product> {
    let (step, action) = match decision {
        Decision::Submit => (Step::Submit, "product.submit"),
        Decision::List => (Step::List, "product.list"),
        Decision::Unlist => (Step::Unlist, "product.unlist"),
        Decision::Approve { revision } => (Step::Approve { revision }, "product.approve"),
        Decision::Reject { revision, reason } => {
            let mut v = Validator::new();
            v.length("reason", reason.trim(), 1, REASON_MAX_CHARS).finish()?;
            (Step::Reject { revision, reason: reason.trim() }, "product.reject")
        }
    };
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let current = load_for(&tx, product_id, acting).await?;
    let plan = lifecycle::plan(&current.row, step)?;
    if let Some(content) = &plan.write_live {
        check_category(&tx, content).await?;
    }
    let product = carry_out(&tx, &current.row, plan).await?;
    let detail = json!({"revision": product.row.revision, "status": product.row.status, "pending": product.row.pending_state});
    actor.record(&tx, action, format_args!("product:{product_id}"), detail).await?;
    tx.commit().await?;
    state.products.invalidate(product_id).await;
    Ok(product)
}

/// Loads and locks a product the actor may act on: a merchant only their
/// own shop's (another shop's product is a 404, as if it did not exist).
async fn load_for(
    client: &impl deadpool_postgres::GenericClient,
    product_id: i64,
    acting: Acting<'_>,
) -> ApiResult<Product> {
    let product = load(client, product_id, true).await?;
    match acting {
        Acting::Merchant(access) if product.row.shop_id != access.shop_id => {
            Err(ApiError::new(ErrorCode::NotFound).with_message("no such product in this shop"))
        }
        _ => Ok(product),
    }
}

async fn carry_out(
    client: &impl deadpool_postgres::GenericClient,
    row: &ProductRow,
    plan: lifecycle::Plan<'_>,
) -> ApiResult<Product> {
    if let Some(content) = &plan.write_live {
        store::write_live(client, row.id, row.shop_id, content).await.map_err(sku_code_conflict)?;
    }
    let row = store::change(client, row.id, &plan.change).await?;
    let skus = store::skus(client, row.id).await?;
    Ok(Product { row, skus })
}
