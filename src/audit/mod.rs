//! The audit log: every admin action writes one row (who, what, target,
//! details, from which IP) in the same transaction as the change itself, so
//! the log can never miss a committed change nor record a rolled-back one.

pub mod handlers;
pub mod store;

use std::net::IpAddr;

use deadpool_postgres::GenericClient;

use crate::error::{ApiError, ApiResult, ErrorCode};

use crate::auth::perm::{self, Permission};
use crate::auth::{ClientIp, Principal};

/// Built-in roles that make an account an administrator or operator.
pub const PRIVILEGED_ROLES: &[&str] = &["admin", "staff"];

/// The administrator performing an action, as the audit log records them.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub user_id: i64,
    pub ip: IpAddr,
    /// Holds `admin.manage`: only such actors may touch admin and staff
    /// accounts or grants, so a lesser permission cannot be escalated.
    pub manages_admins: bool,
    /// The permissions the actor holds, one bit per entry of [`perm::ALL`]:
    /// a role manager may only hand out (or take back) what they hold
    /// themselves.
    holds: u64,
}

impl Actor {
    /// The actor behind a request.
    pub fn new(principal: &Principal, ip: ClientIp) -> Self {
        let holds = perm::ALL
            .iter()
            .enumerate()
            .filter(|(_, name)| principal.has(name))
            .fold(0, |bits, (i, _)| bits | 1 << i);
        Self {
            user_id: principal.user_id,
            ip: ip.0,
            manages_admins: principal.has(perm::AdminManage::NAME),
            holds,
        }
    }

    /// Refuses with 403 unless the actor holds every one of `permissions`:
    /// creating, changing, granting or revoking a role (or a group's
    /// roles) that carries more than the actor holds would be an
    /// escalation, to the actor or to anyone they pick.
    pub fn check_holds<'a>(&self, permissions: impl IntoIterator<Item = &'a str>) -> ApiResult<()> {
        let missing: Vec<&str> = permissions
            .into_iter()
            .filter(|name| {
                perm::ALL.iter().position(|p| p == name).is_none_or(|i| self.holds & (1 << i) == 0)
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(ApiError::new(ErrorCode::Forbidden)
            .with_message(format!("you cannot hand out permissions you do not hold: {}", missing.join(", "))))
    }

    /// Refuses with 403 unless the actor may manage admin and staff
    /// accounts (needed whenever `roles` include `admin` or `staff`).
    pub fn check_privileged<'a>(&self, roles: impl IntoIterator<Item = &'a str>) -> ApiResult<()> {
        let privileged = roles.into_iter().any(|r| PRIVILEGED_ROLES.contains(&r));
        if privileged && !self.manages_admins {
            return Err(ApiError::new(ErrorCode::Forbidden).with_message(format!(
                "admin and staff accounts and roles need {}",
                perm::AdminManage::NAME
            )));
        }
        Ok(())
    }

    /// Writes one audit row for this actor on `client` (normally the
    /// transaction of the change).
    pub async fn record(
        &self,
        client: &impl GenericClient,
        action: &str,
        target: impl std::fmt::Display,
        detail: serde_json::Value,
    ) -> Result<(), tokio_postgres::Error> {
        store::insert(client, self.user_id, action, &target.to_string(), &detail, &self.ip.to_string()).await
    }
}
