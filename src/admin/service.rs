//! Admin and member management rules. Nobody may demote, freeze or remove
//! themselves (so the last administrator cannot lock everyone out by
//! accident); admin and staff accounts are only touched by holders of
//! `admin.manage`; each change is audited in its own transaction and ends
//! or refreshes the target's sessions on every node.

use serde_json::json;

use super::store::{self, AccountRow};
use crate::account::service::{insert_error, validate_profile, validate_registration};
use crate::account::store::{self as account_store, ProfilePatch};
use crate::audit::{Actor, PRIVILEGED_ROLES};
use crate::auth::password;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::rbac::store as rbac_store;
use crate::state::AppState;
use crate::validate::Validator;

/// A new administrator or operator.
pub struct NewAdmin {
    pub username: String,
    pub email: String,
    pub password: String,
    /// `admin` or `staff`.
    pub role: String,
}

fn check_role(v: &mut Validator, role: &str) {
    v.check("role", PRIVILEGED_ROLES.contains(&role), "invalid_value");
}

fn not_self(actor: Actor, id: i64) -> ApiResult<()> {
    if actor.user_id == id {
        return Err(
            ApiError::new(ErrorCode::InvalidState).with_message("you cannot do this to your own account")
        );
    }
    Ok(())
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound).with_message("no such account")
}

/// Creates an active account holding `admin` or `staff`.
pub async fn add_admin(state: &AppState, actor: Actor, new: NewAdmin) -> ApiResult<AccountRow> {
    validate_registration(&new.username, &new.email, &new.password)?;
    let mut v = Validator::new();
    check_role(&mut v, &new.role);
    v.finish()?;
    let hash = password::hash(&state.settings.auth, new.password).await?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    actor
        .check_holds(rbac_store::named_role_permissions(&tx, &new.role).await?.iter().map(String::as_str))?;
    let user = account_store::insert_user(&tx, &new.username, &new.email, &hash, "active")
        .await
        .map_err(insert_error)?;
    account_store::grant_role(&tx, user.id, &new.role).await?;
    let detail = json!({"username": user.username, "role": new.role});
    actor.record(&tx, "admin.create", format_args!("user:{}", user.id), detail).await?;
    let account = store::find_account(&tx, user.id).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    Ok(account)
}

/// Loads an account holding `admin` or `staff`, else 404.
async fn find_admin(client: &impl deadpool_postgres::GenericClient, id: i64) -> ApiResult<AccountRow> {
    store::find_account(client, id)
        .await?
        .filter(|a| a.roles.iter().any(|r| PRIVILEGED_ROLES.contains(&r.as_str())))
        .ok_or_else(not_found)
}

/// Changes an administrator's role and/or status (`active` or `frozen`).
pub async fn update_admin(
    state: &AppState,
    actor: Actor,
    id: i64,
    role: Option<String>,
    status: Option<String>,
) -> ApiResult<AccountRow> {
    let mut v = Validator::new();
    if let Some(role) = &role {
        check_role(&mut v, role);
    }
    if let Some(status) = &status {
        v.check("status", matches!(status.as_str(), "active" | "frozen"), "invalid_value");
    }
    v.finish()?;
    not_self(actor, id)?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    find_admin(&tx, id).await?;
    if let Some(role) = &role {
        actor.check_holds(rbac_store::named_role_permissions(&tx, role).await?.iter().map(String::as_str))?;
        store::remove_privileged_roles(&tx, id).await?;
        account_store::grant_role(&tx, id, role).await?;
    }
    if let Some(status) = &status {
        account_store::set_status(&tx, id, status).await?;
    }
    actor
        .record(&tx, "admin.update", format_args!("user:{id}"), json!({"role": role, "status": status}))
        .await?;
    let account = store::find_account(&tx, id).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    if status.as_deref() == Some("frozen") {
        state.sessions.revoke_all(id, None).await?;
    } else {
        state.sessions.refresh_user(id).await?;
    }
    Ok(account)
}

/// Takes the `admin`/`staff` roles away and ends the account's sessions;
/// the account itself stays.
pub async fn delete_admin(state: &AppState, actor: Actor, id: i64) -> ApiResult<()> {
    not_self(actor, id)?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let admin = find_admin(&tx, id).await?;
    store::remove_privileged_roles(&tx, id).await?;
    actor.record(&tx, "admin.delete", format_args!("user:{id}"), json!({"roles": admin.roles})).await?;
    tx.commit().await?;
    state.sessions.revoke_all(id, None).await
}

/// Loads a member for a change, refusing admin/staff targets to actors
/// without `admin.manage`, and targets holding a permission the actor
/// does not: counting roles held through groups, not only direct ones.
async fn find_target(
    client: &impl deadpool_postgres::GenericClient,
    actor: Actor,
    id: i64,
) -> ApiResult<AccountRow> {
    let account = store::find_account(client, id).await?.ok_or_else(not_found)?;
    let held = account_store::find_principal(client, id).await?.ok_or_else(not_found)?;
    actor.check_privileged(held.roles.iter().map(String::as_str))?;
    actor.check_holds(held.permissions.iter().map(String::as_str))?;
    Ok(account)
}

/// Changes a member's profile.
pub async fn update_member(
    state: &AppState,
    actor: Actor,
    id: i64,
    patch: &ProfilePatch,
) -> ApiResult<AccountRow> {
    validate_profile(patch)?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    find_target(&tx, actor, id).await?;
    account_store::update_profile(&tx, id, patch).await?;
    let detail = json!({"nickname": patch.nickname, "avatar_url": patch.avatar_url, "gender": patch.gender, "phone": patch.phone});
    actor.record(&tx, "member.update", format_args!("user:{id}"), detail).await?;
    let account = store::find_account(&tx, id).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    state.sessions.refresh_user(id).await?;
    Ok(account)
}

/// Freezes (`freeze`) or unfreezes an account. Freezing ends every session
/// at once; a frozen account cannot log in.
pub async fn set_frozen(state: &AppState, actor: Actor, id: i64, freeze: bool) -> ApiResult<AccountRow> {
    not_self(actor, id)?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    find_target(&tx, actor, id).await?;
    if freeze {
        account_store::set_status(&tx, id, "frozen").await?;
    } else {
        account_store::unfreeze(&tx, id).await?;
    }
    let action = if freeze { "member.freeze" } else { "member.unfreeze" };
    actor.record(&tx, action, format_args!("user:{id}"), json!({})).await?;
    let account = store::find_account(&tx, id).await?.ok_or_else(not_found)?;
    tx.commit().await?;
    if freeze {
        state.sessions.revoke_all(id, None).await?;
    } else {
        state.sessions.refresh_user(id).await?;
    }
    Ok(account)
}
