//! RBAC rules: names and permission sets, built-in role protection,
//! privilege checks, audit rows, and cache refreshes after each change.

use serde_json::json;

use super::store::{self, GroupRow, RoleRow};
use crate::account;
use crate::audit::Actor;
use crate::auth::perm;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::validate::Validator;

/// Longest role or group name.
pub const NAME_MAX_CHARS: usize = 32;
/// Longest description.
pub const DESCRIPTION_MAX_CHARS: usize = 256;

/// A role's fields, for create (all given) and update (absent ones stay).
#[derive(Debug, Default)]
pub struct RoleFields {
    pub name: Option<String>,
    pub description: Option<String>,
    pub permissions: Option<Vec<String>>,
}

fn is_role_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

fn validate_role(fields: &RoleFields) -> ApiResult<()> {
    let mut v = Validator::new();
    if let Some(name) = &fields.name {
        v.length("name", name, 2, NAME_MAX_CHARS);
        if !name.is_empty() {
            v.check("name", is_role_name(name), "invalid_format");
        }
    }
    if let Some(description) = &fields.description {
        v.length("description", description, 0, DESCRIPTION_MAX_CHARS);
    }
    if let Some(permissions) = &fields.permissions {
        v.check(
            "permissions",
            permissions.iter().all(|p| perm::ALL.contains(&p.as_str())),
            "unknown_permission",
        );
    }
    v.finish()
}

fn sorted_unique(permissions: &[String]) -> Vec<String> {
    let mut all = permissions.to_vec();
    all.sort();
    all.dedup();
    all
}

fn taken() -> ApiError {
    ApiError::new(ErrorCode::Conflict).with_message("that name is already taken")
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound).with_message(format!("no such {what}"))
}

/// Creates a custom role.
pub async fn create_role(state: &AppState, actor: Actor, fields: RoleFields) -> ApiResult<RoleRow> {
    validate_role(&fields)?;
    let name = fields.name.unwrap_or_default();
    let description = fields.description.unwrap_or_default();
    let permissions = sorted_unique(&fields.permissions.unwrap_or_default());
    actor.check_holds(permissions.iter().map(String::as_str))?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let id = store::insert_role(&tx, &name, &description).await?.ok_or_else(taken)?;
    store::set_permissions(&tx, id, &permissions).await?;
    actor
        .record(
            &tx,
            "role.create",
            format_args!("role:{id}"),
            json!({"name": name, "permissions": permissions}),
        )
        .await?;
    let role = store::find_role(&tx, id).await?.ok_or_else(|| not_found("role"))?;
    tx.commit().await?;
    Ok(role)
}

/// Changes a role. Built-in roles keep their names, and `admin` keeps
/// every permission (so the platform can never lose its administrators).
pub async fn update_role(state: &AppState, actor: Actor, id: i64, fields: RoleFields) -> ApiResult<RoleRow> {
    validate_role(&fields)?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let role = store::find_role(&tx, id).await?.ok_or_else(|| not_found("role"))?;
    if role.builtin && fields.name.as_ref().is_some_and(|n| *n != role.name) {
        return Err(ApiError::new(ErrorCode::InvalidState).with_message("built-in roles cannot be renamed"));
    }
    if role.name == "admin" && fields.permissions.is_some() {
        return Err(
            ApiError::new(ErrorCode::InvalidState).with_message("the admin role keeps every permission")
        );
    }
    actor.check_privileged([role.name.as_str()])?;
    actor.check_holds(
        role.permissions.iter().chain(fields.permissions.iter().flatten()).map(String::as_str),
    )?;
    let name = fields.name.unwrap_or(role.name);
    let description = fields.description.unwrap_or(role.description);
    if !store::update_role(&tx, id, &name, &description).await? {
        return Err(taken());
    }
    let permissions = fields.permissions.as_deref().map(sorted_unique);
    if let Some(permissions) = &permissions {
        store::set_permissions(&tx, id, permissions).await?;
    }
    let detail = json!({"name": name, "description": description, "permissions": permissions});
    actor.record(&tx, "role.update", format_args!("role:{id}"), detail).await?;
    let updated = store::find_role(&tx, id).await?.ok_or_else(|| not_found("role"))?;
    tx.commit().await?;
    if permissions.is_some() {
        state.sessions.refresh_all().await?;
    }
    Ok(updated)
}

/// Deletes a custom role; built-in roles cannot be deleted.
pub async fn delete_role(state: &AppState, actor: Actor, id: i64) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let role = store::find_role(&tx, id).await?.ok_or_else(|| not_found("role"))?;
    if role.builtin {
        return Err(ApiError::new(ErrorCode::InvalidState).with_message("built-in roles cannot be deleted"));
    }
    actor.check_holds(role.permissions.iter().map(String::as_str))?;
    store::delete_role(&tx, id).await?;
    actor.record(&tx, "role.delete", format_args!("role:{id}"), json!({"name": role.name})).await?;
    tx.commit().await?;
    state.sessions.refresh_all().await
}

/// Grants (`grant`) or revokes a role of a user.
pub async fn set_user_role(
    state: &AppState,
    actor: Actor,
    user_id: i64,
    role_id: i64,
    grant: bool,
) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    account::store::find_user(&tx, user_id).await?.ok_or_else(|| not_found("user"))?;
    let role = store::find_role(&tx, role_id).await?.ok_or_else(|| not_found("role"))?;
    actor.check_privileged([role.name.as_str()])?;
    actor.check_holds(role.permissions.iter().map(String::as_str))?;
    let changed = if grant {
        store::grant_user_role(&tx, user_id, role_id).await?
    } else {
        store::revoke_user_role(&tx, user_id, role_id).await?
    };
    if !grant && !changed {
        return Err(ApiError::new(ErrorCode::NotFound).with_message("the user does not hold that role"));
    }
    let action = if grant { "user_role.grant" } else { "user_role.revoke" };
    actor.record(&tx, action, format_args!("user:{user_id}"), json!({"role": role.name})).await?;
    tx.commit().await?;
    state.sessions.refresh_user(user_id).await
}

/// A group's fields, for create (name given) and update (absent ones stay).
#[derive(Debug, Default)]
pub struct GroupFields {
    pub name: Option<String>,
    pub description: Option<String>,
}

fn validate_group(fields: &GroupFields) -> ApiResult<()> {
    let mut v = Validator::new();
    if let Some(name) = &fields.name {
        v.length("name", name.trim(), 1, NAME_MAX_CHARS);
    }
    if let Some(description) = &fields.description {
        v.length("description", description, 0, DESCRIPTION_MAX_CHARS);
    }
    v.finish()
}

/// Creates a group.
pub async fn create_group(state: &AppState, actor: Actor, fields: GroupFields) -> ApiResult<GroupRow> {
    validate_group(&fields)?;
    let name = fields.name.unwrap_or_default().trim().to_owned();
    let description = fields.description.unwrap_or_default();
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let id = store::insert_group(&tx, &name, &description).await?.ok_or_else(taken)?;
    actor.record(&tx, "group.create", format_args!("group:{id}"), json!({"name": name})).await?;
    let group = store::find_group(&tx, id).await?.ok_or_else(|| not_found("group"))?;
    tx.commit().await?;
    Ok(group)
}

/// Renames or redescribes a group.
pub async fn update_group(
    state: &AppState,
    actor: Actor,
    id: i64,
    fields: GroupFields,
) -> ApiResult<GroupRow> {
    validate_group(&fields)?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let group = store::find_group(&tx, id).await?.ok_or_else(|| not_found("group"))?;
    let name = fields.name.map(|n| n.trim().to_owned()).unwrap_or(group.name);
    let description = fields.description.unwrap_or(group.description);
    if !store::update_group(&tx, id, &name, &description).await? {
        return Err(taken());
    }
    let detail = json!({"name": name, "description": description});
    actor.record(&tx, "group.update", format_args!("group:{id}"), detail).await?;
    let updated = store::find_group(&tx, id).await?.ok_or_else(|| not_found("group"))?;
    tx.commit().await?;
    Ok(updated)
}

/// Deletes a group; its members lose the roles it gave them.
pub async fn delete_group(state: &AppState, actor: Actor, id: i64) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let group = store::find_group(&tx, id).await?.ok_or_else(|| not_found("group"))?;
    actor.check_privileged(group.roles.iter().map(String::as_str))?;
    actor.check_holds(store::group_permissions(&tx, group.id).await?.iter().map(String::as_str))?;
    let members = store::delete_group(&tx, id).await?;
    actor.record(&tx, "group.delete", format_args!("group:{id}"), json!({"name": group.name})).await?;
    tx.commit().await?;
    for user_id in members {
        state.sessions.refresh_user(user_id).await?;
    }
    Ok(())
}

/// Adds (`add`) or removes a member of a group.
pub async fn set_group_member(
    state: &AppState,
    actor: Actor,
    group_id: i64,
    user_id: i64,
    add: bool,
) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let group = store::find_group(&tx, group_id).await?.ok_or_else(|| not_found("group"))?;
    account::store::find_user(&tx, user_id).await?.ok_or_else(|| not_found("user"))?;
    actor.check_privileged(group.roles.iter().map(String::as_str))?;
    actor.check_holds(store::group_permissions(&tx, group.id).await?.iter().map(String::as_str))?;
    let changed = store::set_group_member(&tx, group_id, user_id, add).await?;
    if !add && !changed {
        return Err(ApiError::new(ErrorCode::NotFound).with_message("the user is not in that group"));
    }
    let action = if add { "group.member_add" } else { "group.member_remove" };
    actor.record(&tx, action, format_args!("group:{group_id}"), json!({"user_id": user_id})).await?;
    tx.commit().await?;
    state.sessions.refresh_user(user_id).await
}

/// Grants (`add`) or revokes a role of a group; all its members change.
pub async fn set_group_role(
    state: &AppState,
    actor: Actor,
    group_id: i64,
    role_id: i64,
    add: bool,
) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    store::find_group(&tx, group_id).await?.ok_or_else(|| not_found("group"))?;
    let role = store::find_role(&tx, role_id).await?.ok_or_else(|| not_found("role"))?;
    actor.check_privileged([role.name.as_str()])?;
    actor.check_holds(role.permissions.iter().map(String::as_str))?;
    let changed = store::set_group_role(&tx, group_id, role_id, add).await?;
    if !add && !changed {
        return Err(ApiError::new(ErrorCode::NotFound).with_message("the group does not hold that role"));
    }
    let action = if add { "group.role_grant" } else { "group.role_revoke" };
    actor.record(&tx, action, format_args!("group:{group_id}"), json!({"role": role.name})).await?;
    tx.commit().await?;
    state.sessions.refresh_all().await
}
