//! Blacklist rules: what may be listed, and what a change sets off.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde_json::json;

use super::store::{self, EntryRow, NewEntry};
use crate::account;
use crate::audit::Actor;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::validate::Validator;

/// Longest reason.
pub const REASON_MAX_CHARS: usize = 256;

/// What to blacklist: an IP or network, or an account.
pub struct Listing {
    pub ip: Option<String>,
    pub user_id: Option<i64>,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Parses `1.2.3.4`, `10.0.0.0/8` or an IPv6 form into a network with
/// its host bits cleared (Postgres `CIDR` refuses them set).
pub fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(|ip| IpNet::from(ip.to_canonical())))
        .map(|net| net.trunc())
}

/// Adds an entry. An account entry also ends the account's sessions.
pub async fn add(state: &AppState, actor: Actor, listing: Listing) -> ApiResult<EntryRow> {
    let mut v = Validator::new();
    let net = match (&listing.ip, listing.user_id) {
        (Some(ip), None) => {
            let net = parse_net(ip.trim());
            v.check("ip", net.is_some(), "invalid_format");
            net
        }
        (None, Some(_)) => None,
        _ => {
            v.problem("ip", "exactly_one_of_ip_or_user_id");
            None
        }
    };
    v.length("reason", listing.reason.trim(), 1, REASON_MAX_CHARS);
    if let Some(at) = listing.expires_at {
        v.check("expires_at", at > Utc::now(), "in_the_past");
    }
    v.finish()?;
    let net_text = net.map(|n| n.to_string());
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if let Some(user_id) = listing.user_id {
        if account::store::find_user(&tx, user_id).await?.is_none() {
            return Err(ApiError::invalid_field("user_id", "not_found"));
        }
    }
    let entry = store::insert(
        &tx,
        &NewEntry {
            ip_net: net_text.as_deref(),
            user_id: listing.user_id,
            reason: listing.reason.trim(),
            expires_at: listing.expires_at,
            created_by: actor.user_id,
        },
    )
    .await?;
    let detail = json!({"ip": entry.ip_net, "user_id": entry.user_id, "reason": entry.reason, "expires_at": entry.expires_at});
    actor.record(&tx, "blacklist.add", format_args!("blacklist:{}", entry.id), detail).await?;
    tx.commit().await?;
    state.blacklist.changed().await?;
    if let Some(user_id) = entry.user_id {
        state.sessions.revoke_all(user_id, None).await?;
    }
    Ok(entry)
}

/// Removes an entry.
pub async fn remove(state: &AppState, actor: Actor, id: i64) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let entry = store::delete(&tx, id).await?.ok_or(ApiError::new(ErrorCode::NotFound))?;
    let detail = json!({"ip": entry.ip_net, "user_id": entry.user_id});
    actor.record(&tx, "blacklist.remove", format_args!("blacklist:{id}"), detail).await?;
    tx.commit().await?;
    state.blacklist.changed().await
}
