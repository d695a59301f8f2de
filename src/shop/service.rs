//! Shop rules: applying, the platform's review, profile edits, staff.

use serde_json::json;

use super::access::{self, ShopAccess, ShopPermission, ShopRole};
use super::store::{self, MemberRow, ShopProfile, ShopRow, ShopStatus};
use crate::account;
use crate::audit::Actor;
use crate::chat;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::validate::{self, Validator};

/// Longest reason for a rejection or suspension.
pub const REASON_MAX_CHARS: usize = 500;

/// A shop's profile as a client sends it.
pub struct ProfileInput {
    pub name: String,
    pub description: String,
    pub logo_url: Option<String>,
    pub contact_name: String,
    pub contact_phone: String,
    pub return_address: String,
}

impl ProfileInput {
    /// Trims and checks every field, reporting all problems at once.
    fn validated(&self) -> ApiResult<ShopProfile<'_>> {
        let profile = ShopProfile {
            name: self.name.trim(),
            description: self.description.trim(),
            logo_url: self.logo_url.as_deref().map(str::trim),
            contact_name: self.contact_name.trim(),
            contact_phone: self.contact_phone.trim(),
            return_address: self.return_address.trim(),
        };
        let mut v = Validator::new();
        v.length("name", profile.name, 2, 60)
            .length("description", profile.description, 0, 2000)
            .length("contact_name", profile.contact_name, 1, 60)
            .check("contact_phone", validate::is_phone(profile.contact_phone), "invalid_format")
            .length("return_address", profile.return_address, 5, 300);
        if let Some(url) = profile.logo_url {
            v.check("logo_url", validate::is_http_url(url) && url.len() <= 500, "invalid_format");
        }
        v.finish()?;
        Ok(profile)
    }
}

fn name_conflict(err: tokio_postgres::Error) -> ApiError {
    match db::violated_unique(&err) {
        Some("shops_name_key") => ErrorCode::ShopNameTaken.into(),
        Some("shops_one_pending_per_owner") => ErrorCode::ApplicationPending.into(),
        _ => err.into(),
    }
}

/// A member applies to open a shop; it waits for the platform's review.
pub async fn apply(state: &AppState, owner_id: i64, input: &ProfileInput) -> ApiResult<ShopRow> {
    let profile = input.validated()?;
    let client = state.db.get().await?;
    store::insert_application(&client, owner_id, &profile).await.map_err(name_conflict)
}

/// Replaces the profile of an active shop.
pub async fn update_profile(
    state: &AppState,
    actor: Actor,
    access: &ShopAccess,
    input: &ProfileInput,
) -> ApiResult<ShopRow> {
    let profile = input.validated()?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let shop = store::update_profile(&tx, access.shop_id, &profile)
        .await
        .map_err(name_conflict)?
        .ok_or(ErrorCode::NotFound)?;
    actor.record(&tx, "shop.update", format_args!("shop:{}", shop.id), json!({"name": shop.name})).await?;
    tx.commit().await?;
    // The shop's name and logo appear on its product pages.
    state.products.invalidate_all().await;
    Ok(shop)
}

/// An operator's decision on a shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    Approve,
    Reject,
    Suspend,
    Reinstate,
}

impl Review {
    fn rule(self) -> (&'static [ShopStatus], ShopStatus, &'static str) {
        use ShopStatus::*;
        match self {
            Self::Approve => (&[Pending], Active, "shop.approve"),
            Self::Reject => (&[Pending], Rejected, "shop.reject"),
            Self::Suspend => (&[Active], Suspended, "shop.suspend"),
            Self::Reinstate => (&[Suspended], Active, "shop.reinstate"),
        }
    }

    fn needs_reason(self) -> bool {
        matches!(self, Self::Reject | Self::Suspend)
    }
}

/// Applies an operator's decision. Approving makes the owner a merchant;
/// suspending or reinstating takes the shop's products off or back onto
/// the storefront at once.
pub async fn review(
    state: &AppState,
    actor: Actor,
    shop_id: i64,
    decision: Review,
    reason: Option<&str>,
) -> ApiResult<ShopRow> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let mut v = Validator::new();
    match reason {
        Some(reason) => v.length("reason", reason, 1, REASON_MAX_CHARS),
        None => v.check("reason", !decision.needs_reason(), "required"),
    };
    v.finish()?;
    let (from, to, action) = decision.rule();
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let Some(shop) = store::transition(&tx, shop_id, from, to, reason, Some(actor.user_id)).await? else {
        let shop = store::find(&tx, shop_id).await?.ok_or(ErrorCode::NotFound)?;
        return Err(
            ApiError::new(ErrorCode::InvalidState).with_message(format!("the shop is {}", shop.status))
        );
    };
    if decision == Review::Approve {
        account::store::grant_role(&tx, shop.owner_id, "merchant").await?;
    }
    actor.record(&tx, action, format_args!("shop:{shop_id}"), json!({"reason": reason})).await?;
    tx.commit().await?;
    match decision {
        Review::Approve => {
            // Committed already: a missed refresh only delays the new role
            // until the session cache entry expires.
            if let Err(err) = state.sessions.refresh_user(shop.owner_id).await {
                tracing::warn!(error = %err, "cannot refresh the new merchant's sessions");
            }
        }
        Review::Suspend | Review::Reinstate => state.products.invalidate_all().await,
        Review::Reject => {}
    }
    Ok(shop)
}

/// A role as a client asks for it: a built-in name, or `custom` with
/// its permissions.
pub struct RoleInput {
    pub role: ShopRole,
    pub permissions: Option<Vec<ShopPermission>>,
}

impl RoleInput {
    /// Checks the role may be given by `granter`, returning the custom
    /// permission names to store (`None` for a built-in role).
    fn validated(&self, granter: &ShopAccess) -> ApiResult<Option<Vec<String>>> {
        let mut v = Validator::new();
        v.check("role", self.role != ShopRole::Owner, "owner_is_not_grantable");
        let custom = match (self.role, &self.permissions) {
            (ShopRole::Custom, Some(perms)) if !perms.is_empty() => {
                let mut names: Vec<String> = perms.iter().map(|p| p.as_str().to_owned()).collect();
                names.sort();
                names.dedup();
                Some(names)
            }
            (ShopRole::Custom, _) => {
                v.problem("permissions", "required");
                None
            }
            (_, Some(_)) => {
                v.problem("permissions", "only_for_custom_role");
                None
            }
            (_, None) => None,
        };
        v.finish()?;
        // Only the owner hands out staff management, and nobody hands out
        // more than they hold (a staff manager cannot mint a manager).
        let granted = access::granted(self.role, custom.as_deref());
        if granter.role != ShopRole::Owner {
            if granted.contains(&ShopPermission::StaffManage) {
                return Err(
                    ApiError::new(ErrorCode::Forbidden).with_message("only the owner can grant staff.manage")
                );
            }
            if !granted.iter().all(|p| granter.permissions.contains(p)) {
                return Err(ApiError::new(ErrorCode::Forbidden)
                    .with_message("you can only grant shop permissions you hold yourself"));
            }
        }
        Ok(custom)
    }
}

/// Invites an account (by username or email) to the shop's staff. The
/// invitee accepts before the role takes effect.
pub async fn invite(
    state: &AppState,
    actor: Actor,
    access: &ShopAccess,
    login: &str,
    role: &RoleInput,
) -> ApiResult<MemberRow> {
    let custom = role.validated(access)?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let Some(invitee) = account::store::find_credentials(&tx, login.trim()).await? else {
        return Err(ApiError::invalid_field("login", "not_found"));
    };
    if !store::insert_invitation(
        &tx,
        access.shop_id,
        invitee.id,
        role.role.as_str(),
        custom.as_deref(),
        actor.user_id,
    )
    .await?
    {
        return Err(
            ApiError::new(ErrorCode::Conflict).with_message("that account is already staff or invited")
        );
    }
    actor
        .record(
            &tx,
            "shop.staff.invite",
            format_args!("shop:{}", access.shop_id),
            json!({"user_id": invitee.id, "role": role.role.as_str(), "permissions": custom}),
        )
        .await?;
    let member = store::find_member(&tx, access.shop_id, invitee.id).await?.ok_or(ErrorCode::NotFound)?;
    tx.commit().await?;
    Ok(member)
}

/// Changes a staff member's role. The owner's role never changes.
pub async fn change_role(
    state: &AppState,
    actor: Actor,
    access: &ShopAccess,
    user_id: i64,
    role: &RoleInput,
) -> ApiResult<MemberRow> {
    let custom = role.validated(access)?;
    if user_id == access.user_id {
        return Err(ApiError::new(ErrorCode::Forbidden).with_message("you cannot change your own role"));
    }
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if !store::update_member(&tx, access.shop_id, user_id, role.role.as_str(), custom.as_deref()).await? {
        return Err(not_changeable(&tx, access.shop_id, user_id).await);
    }
    actor
        .record(
            &tx,
            "shop.staff.update",
            format_args!("shop:{}", access.shop_id),
            json!({"user_id": user_id, "role": role.role.as_str(), "permissions": custom}),
        )
        .await?;
    let member = store::find_member(&tx, access.shop_id, user_id).await?.ok_or(ErrorCode::NotFound)?;
    let left = chat::service::staff_left(&tx, access.shop_id, user_id).await?;
    tx.commit().await?;
    drop(client);
    if let Some(left) = left {
        chat::service::staff_left_done(state, access.shop_id, user_id, &left).await;
    }
    Ok(member)
}

/// Removes a staff member or withdraws an invitation. The owner stays.
pub async fn remove(state: &AppState, actor: Actor, access: &ShopAccess, user_id: i64) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if !store::delete_member(&tx, access.shop_id, user_id).await? {
        return Err(not_changeable(&tx, access.shop_id, user_id).await);
    }
    actor
        .record(
            &tx,
            "shop.staff.remove",
            format_args!("shop:{}", access.shop_id),
            json!({"user_id": user_id}),
        )
        .await?;
    let left = chat::service::staff_left(&tx, access.shop_id, user_id).await?;
    tx.commit().await?;
    drop(client);
    if let Some(left) = left {
        chat::service::staff_left_done(state, access.shop_id, user_id, &left).await;
    }
    Ok(())
}

/// Why a staff change touched no row: no such member (404) or the owner (409).
async fn not_changeable(
    client: &impl deadpool_postgres::GenericClient,
    shop_id: i64,
    user_id: i64,
) -> ApiError {
    match store::find_member(client, shop_id, user_id).await {
        Ok(Some(_)) => {
            ApiError::new(ErrorCode::InvalidState).with_message("the owner cannot be changed or removed")
        }
        Ok(None) => ApiError::new(ErrorCode::NotFound).with_message("no such staff member"),
        Err(err) => err.into(),
    }
}
