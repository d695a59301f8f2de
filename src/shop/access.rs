//! Shop-scoped authorisation: what a member of a shop's staff may do there.
//!
//! Platform permissions (`perm`) say what an account may do on the
//! platform; these say what it may do inside one shop, through its role in
//! `shop_members`. Every merchant endpoint calls [`require`] with the shop
//! from its path, so staff of shop A can never touch shop B.

use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store::ShopStatus;
use crate::error::{ApiError, ApiResult, ErrorCode};

macro_rules! shop_permissions {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// A permission inside one shop.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        pub enum ShopPermission {
            $(#[doc = $doc] #[serde(rename = $name)] $variant,)*
        }

        impl ShopPermission {
            /// Every shop permission.
            pub const ALL: &'static [ShopPermission] = &[$(Self::$variant,)*];

            /// The stable name, as stored for custom roles.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }

            /// The permission named `name`.
            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

shop_permissions! {
    ProfileManage => "profile.manage", "Edit the shop's profile.";
    StaffManage => "staff.manage", "Invite, change and remove staff.";
    ProductManage => "product.manage", "Create and edit products, submit them, list and unlist them.";
    InventoryManage => "inventory.manage", "Adjust stock and read the inventory ledger.";
    OrderRead => "order.read", "Read the shop's orders.";
    OrderManage => "order.manage", "Annotate and cancel the shop's orders.";
    OrderShip => "order.ship", "Ship orders and add tracking events.";
    ChatServe => "chat.serve", "Answer customer-service conversations.";
    FinanceRead => "finance.read", "Read the shop's balance and ledger.";
    FinanceWithdraw => "finance.withdraw", "Request withdrawals of the shop's balance (the owner's by default).";
}

/// A staff member's role in a shop. `Custom` carries its own permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShopRole {
    /// The applicant; exactly one per shop, holds everything.
    Owner,
    /// Runs the shop day to day: everything but staff.
    Manager,
    CustomerService,
    Warehouse,
    Custom,
}

impl ShopRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Manager => "manager",
            Self::CustomerService => "customer_service",
            Self::Warehouse => "warehouse",
            Self::Custom => "custom",
        }
    }

    /// The role stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Owner, Self::Manager, Self::CustomerService, Self::Warehouse, Self::Custom]
            .into_iter()
            .find(|role| role.as_str() == name)
    }

    /// What a built-in role grants (`Custom` grants what its row lists).
    pub fn builtin_permissions(self) -> &'static [ShopPermission] {
        use ShopPermission::*;
        match self {
            Self::Owner => ShopPermission::ALL,
            Self::Manager => &[
                ProfileManage,
                ProductManage,
                InventoryManage,
                OrderRead,
                OrderManage,
                OrderShip,
                ChatServe,
                FinanceRead,
            ],
            Self::CustomerService => &[OrderRead, ChatServe],
            Self::Warehouse => &[InventoryManage, OrderRead, OrderShip],
            Self::Custom => &[],
        }
    }
}

/// The permissions a member row grants: the built-in set of its role, or
/// the stored list of a custom role (unknown names are ignored).
pub fn granted(role: ShopRole, custom: Option<&[String]>) -> Vec<ShopPermission> {
    match role {
        ShopRole::Custom => {
            custom.unwrap_or_default().iter().filter_map(|name| ShopPermission::parse(name)).collect()
        }
        builtin => builtin.builtin_permissions().to_vec(),
    }
}

/// Whether the call only reads, or changes the shop's data. Changes need
/// an active shop: a pending, rejected or suspended shop is read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Read,
    Write,
}

/// A caller's proven standing in one shop.
#[derive(Debug, Clone)]
pub struct ShopAccess {
    pub shop_id: i64,
    pub user_id: i64,
    pub role: ShopRole,
    pub permissions: Vec<ShopPermission>,
    pub shop_status: Option<ShopStatus>,
}

impl ShopAccess {
    /// 403 `forbidden` unless the role grants `needed`; 403
    /// `shop_inactive` for a write to a shop that is not active.
    pub fn check(&self, needed: ShopPermission, intent: Intent) -> ApiResult<()> {
        if !self.permissions.contains(&needed) {
            return Err(ApiError::new(ErrorCode::Forbidden)
                .with_message(format!("this action needs the shop permission {}", needed.as_str())));
        }
        if intent == Intent::Write && self.shop_status != Some(ShopStatus::Active) {
            let status = self.shop_status.map_or("not active", ShopStatus::as_str);
            return Err(ApiError::new(ErrorCode::ShopInactive).with_message(format!("the shop is {status}")));
        }
        Ok(())
    }
}

/// Checks that `user_id` is accepted staff of `shop_id` (any role): 404
/// for an unknown shop, 403 `forbidden` for anyone else.
pub async fn staff(client: &impl GenericClient, user_id: i64, shop_id: i64) -> ApiResult<ShopAccess> {
    let stmt = client
        .prepare_cached(
            "SELECT s.status, m.role, m.permissions, m.accepted_at IS NOT NULL AS accepted
             FROM shops s LEFT JOIN shop_members m ON m.shop_id = s.id AND m.user_id = $2
             WHERE s.id = $1",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&shop_id, &user_id])
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound).with_message("no such shop"))?;
    let role: Option<String> = row.try_get("role")?;
    let accepted: bool = row.try_get("accepted")?;
    let role = match role.as_deref().and_then(ShopRole::parse) {
        Some(role) if accepted => role,
        _ => {
            return Err(ApiError::new(ErrorCode::Forbidden).with_message("you are not staff of this shop"));
        }
    };
    let custom: Option<Vec<String>> = row.try_get("permissions")?;
    let status: String = row.try_get("status")?;
    Ok(ShopAccess {
        shop_id,
        user_id,
        role,
        permissions: granted(role, custom.as_deref()),
        shop_status: ShopStatus::parse(&status),
    })
}

/// [`require`] on a pooled connection of its own, given back before the
/// caller goes on to its own transaction.
pub async fn require_in(
    pool: &deadpool_postgres::Pool,
    user_id: i64,
    shop_id: i64,
    needed: ShopPermission,
    intent: Intent,
) -> ApiResult<ShopAccess> {
    let client = pool.get().await?;
    require(&client, user_id, shop_id, needed, intent).await
}

/// Checks that `user_id` is staff of `shop_id` holding `needed` (see
/// [`staff`] and [`ShopAccess::check`]).
pub async fn require(
    client: &impl GenericClient,
    user_id: i64,
    shop_id: i64,
    needed: ShopPermission,
    intent: Intent,
) -> ApiResult<ShopAccess> {
    let access = staff(client, user_id, shop_id).await?;
    access.check(needed, intent)?;
    Ok(access)
}
