//! Menu rules: field checks, no cycles, audit rows, and the caller's tree.

use serde_json::json;

use super::store::{self, MenuRow, MenuValues};
use crate::audit::Actor;
use crate::auth::{perm, Principal};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::tree;
use crate::validate::Validator;

/// Longest name.
pub const NAME_MAX_CHARS: usize = 64;
/// Longest description or URI.
pub const TEXT_MAX_CHARS: usize = 256;

/// A menu entry's fields: all for create (name required), the changed
/// ones for update. `Some(None)` clears a nullable field.
#[derive(Debug, Default)]
pub struct MenuFields {
    pub parent_id: Option<Option<i64>>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub uri: Option<String>,
    pub shown: Option<bool>,
    pub status: Option<String>,
    pub required_permission: Option<Option<String>>,
    pub sort_order: Option<i32>,
}

fn validate(fields: &MenuFields) -> Validator {
    let mut v = Validator::new();
    if let Some(name) = &fields.name {
        v.length("name", name.trim(), 1, NAME_MAX_CHARS);
    }
    if let Some(description) = &fields.description {
        v.length("description", description, 0, TEXT_MAX_CHARS);
    }
    if let Some(uri) = &fields.uri {
        v.length("uri", uri, 0, TEXT_MAX_CHARS);
    }
    if let Some(status) = &fields.status {
        v.check("status", matches!(status.as_str(), "enabled" | "disabled"), "invalid_value");
    }
    if let Some(Some(permission)) = &fields.required_permission {
        v.check("required_permission", perm::ALL.contains(&permission.as_str()), "unknown_permission");
    }
    v
}

/// The complete values after applying `fields` over `base` (or defaults).
fn merged<'a>(fields: &'a MenuFields, base: Option<&'a MenuRow>) -> MenuValues<'a> {
    MenuValues {
        parent_id: fields.parent_id.unwrap_or(base.and_then(|b| b.parent_id)),
        name: fields.name.as_deref().or(base.map(|b| b.name.as_str())).unwrap_or("").trim(),
        description: fields.description.as_deref().or(base.map(|b| b.description.as_str())).unwrap_or(""),
        uri: fields.uri.as_deref().or(base.map(|b| b.uri.as_str())).unwrap_or(""),
        shown: fields.shown.or(base.map(|b| b.shown)).unwrap_or(true),
        status: fields.status.as_deref().or(base.map(|b| b.status.as_str())).unwrap_or("enabled"),
        required_permission: match &fields.required_permission {
            Some(given) => given.as_deref(),
            None => base.and_then(|b| b.required_permission.as_deref()),
        },
        sort_order: fields.sort_order.or(base.map(|b| b.sort_order)).unwrap_or(0),
    }
}

fn detail(values: &MenuValues<'_>) -> serde_json::Value {
    json!({"parent_id": values.parent_id, "name": values.name, "uri": values.uri, "shown": values.shown,
           "status": values.status, "required_permission": values.required_permission, "sort_order": values.sort_order})
}

/// Creates an entry.
pub async fn create(state: &AppState, actor: Actor, fields: MenuFields) -> ApiResult<MenuRow> {
    let mut v = validate(&fields);
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if let Some(Some(parent)) = fields.parent_id {
        v.check("parent_id", store::find(&tx, parent).await?.is_some(), "not_found");
    }
    v.finish()?;
    let values = merged(&fields, None);
    let menu = store::insert(&tx, &values, actor.user_id).await?;
    actor.record(&tx, "menu.create", format_args!("menu:{}", menu.id), detail(&values)).await?;
    tx.commit().await?;
    Ok(menu)
}

/// Changes an entry; a parent inside its own subtree is refused.
pub async fn update(state: &AppState, actor: Actor, id: i64, fields: MenuFields) -> ApiResult<MenuRow> {
    let mut v = validate(&fields);
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let current = store::find(&tx, id).await?.ok_or(ApiError::new(ErrorCode::NotFound))?;
    if let Some(Some(parent)) = fields.parent_id {
        if store::find(&tx, parent).await?.is_none() {
            v.problem("parent_id", "not_found");
        } else if store::in_subtree(&tx, id, parent).await? {
            v.problem("parent_id", "cycle");
        }
    }
    v.finish()?;
    let values = merged(&fields, Some(&current));
    let menu = store::update(&tx, id, &values, actor.user_id).await?;
    actor.record(&tx, "menu.update", format_args!("menu:{id}"), detail(&values)).await?;
    tx.commit().await?;
    Ok(menu)
}

/// Deletes an entry with its subtree.
pub async fn delete(state: &AppState, actor: Actor, id: i64) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if !store::delete(&tx, id).await? {
        return Err(ErrorCode::NotFound.into());
    }
    actor.record(&tx, "menu.delete", format_args!("menu:{id}"), json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// One node of an authorised menu tree.
pub struct MenuNode {
    pub menu: MenuRow,
    pub children: Vec<MenuNode>,
}

/// The caller's menu tree: enabled, shown entries whose permission the
/// caller holds (or that need none), nested under parents that pass the
/// same test, each level in sort order.
pub async fn tree_for(state: &AppState, principal: &Principal) -> ApiResult<Vec<MenuNode>> {
    let client = state.db.get().await?;
    let rows = store::list_visible(&client).await?;
    let allowed =
        rows.into_iter().filter(|row| row.required_permission.as_deref().is_none_or(|p| principal.has(p)));
    Ok(tree::nest(
        allowed.collect(),
        |row| (row.id, row.parent_id),
        |menu, children| MenuNode { menu, children },
    ))
}
