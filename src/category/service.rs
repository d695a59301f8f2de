//! Category rules: names, no cycles, unique sibling names, nothing deleted
//! that still has subcategories or products, an audit row per change.

use serde_json::json;

use super::store::{self, CategoryRow, CategoryValues};
use crate::audit::Actor;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::tree;
use crate::validate::Validator;

/// Longest name.
pub const NAME_MAX_CHARS: usize = 60;

/// A category's fields: all for create (name required), the changed ones
/// for update. `parent_id: Some(None)` moves it to the root.
#[derive(Debug, Default)]
pub struct CategoryFields {
    pub parent_id: Option<Option<i64>>,
    pub name: Option<String>,
    pub sort_order: Option<i32>,
}

/// The complete values after applying `fields` over `base` (or defaults).
fn merged<'a>(fields: &'a CategoryFields, base: Option<&'a CategoryRow>) -> CategoryValues<'a> {
    CategoryValues {
        parent_id: fields.parent_id.unwrap_or(base.and_then(|b| b.parent_id)),
        name: fields.name.as_deref().or(base.map(|b| b.name.as_str())).unwrap_or("").trim(),
        sort_order: fields.sort_order.or(base.map(|b| b.sort_order)).unwrap_or(0),
    }
}

fn detail(values: &CategoryValues<'_>) -> serde_json::Value {
    json!({"parent_id": values.parent_id, "name": values.name, "sort_order": values.sort_order})
}

/// Checks, inside the write transaction of category `id` (`None` for a new
/// one), the name, that a new parent exists and is neither the category
/// itself nor under it (422 per field), then that no sibling has the name
/// (409 `conflict`).
async fn check(
    tx: &deadpool_postgres::Transaction<'_>,
    id: Option<i64>,
    fields: &CategoryFields,
    values: &CategoryValues<'_>,
) -> ApiResult<()> {
    let mut v = Validator::new();
    v.length("name", values.name, 1, NAME_MAX_CHARS);
    if let Some(Some(parent)) = fields.parent_id {
        if store::find(tx, parent).await?.is_none() {
            v.problem("parent_id", "not_found");
        } else if let Some(id) = id {
            v.check("parent_id", !store::descendant_ids(tx, id).await?.contains(&parent), "cycle");
        }
    }
    v.finish()?;
    if store::name_taken(tx, values.parent_id, values.name, id).await? {
        return Err(ApiError::new(ErrorCode::Conflict)
            .with_message("a category with that name already exists at that place"));
    }
    Ok(())
}

/// Creates a category.
pub async fn create(state: &AppState, actor: Actor, fields: CategoryFields) -> ApiResult<CategoryRow> {
    let values = merged(&fields, None);
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    store::lock_tree(&tx).await?;
    check(&tx, None, &fields, &values).await?;
    let category = store::insert(&tx, &values).await?;
    actor.record(&tx, "category.create", format_args!("category:{}", category.id), detail(&values)).await?;
    tx.commit().await?;
    Ok(category)
}

/// Changes a category. A new name or place changes what product pages
/// show (category and path), so every cached product detail is dropped.
pub async fn update(
    state: &AppState,
    actor: Actor,
    id: i64,
    fields: CategoryFields,
) -> ApiResult<CategoryRow> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    store::lock_tree(&tx).await?;
    let current = store::find(&tx, id).await?.ok_or(ApiError::new(ErrorCode::NotFound))?;
    let values = merged(&fields, Some(&current));
    check(&tx, Some(id), &fields, &values).await?;
    let category = store::update(&tx, id, &values).await?;
    actor.record(&tx, "category.update", format_args!("category:{id}"), detail(&values)).await?;
    tx.commit().await?;
    if category.name != current.name || category.parent_id != current.parent_id {
        state.products.invalidate_all().await;
    }
    Ok(category)
}

/// Deletes a category that has neither subcategories nor products
/// (409 `invalid_state` saying which it still has).
pub async fn delete(state: &AppState, actor: Actor, id: i64) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    store::lock_tree(&tx).await?;
    let category = store::lock(&tx, id).await?.ok_or(ApiError::new(ErrorCode::NotFound))?;
    let dependents = store::dependents(&tx, id).await?;
    if dependents.children > 0 {
        return Err(ApiError::new(ErrorCode::InvalidState).with_message(format!(
            "the category has {} subcategories; move or delete them first",
            dependents.children
        )));
    }
    if dependents.products > 0 {
        return Err(ApiError::new(ErrorCode::InvalidState).with_message(format!(
            "the category has {} products; move them to another category first",
            dependents.products
        )));
    }
    store::delete(&tx, id).await?;
    let detail = json!({"parent_id": category.parent_id, "name": category.name});
    actor.record(&tx, "category.delete", format_args!("category:{id}"), detail).await?;
    tx.commit().await?;
    Ok(())
}

/// One category of the tree with its subcategories.
pub struct CategoryNode {
    pub category: CategoryRow,
    pub children: Vec<CategoryNode>,
}

/// The whole tree, siblings by sort order then id.
pub async fn tree(state: &AppState) -> ApiResult<Vec<CategoryNode>> {
    let client = state.db.get().await?;
    let rows = store::list_all(&client).await?;
    Ok(tree::nest(
        rows,
        |row| (row.id, row.parent_id),
        |category, children| CategoryNode { category, children },
    ))
}
