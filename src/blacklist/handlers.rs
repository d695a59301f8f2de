//! `/api/system/blacklist`: list, add, remove. Needs `blacklist.manage`.

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::service::{self, Listing};
use super::store::{self, EntryRow};
use crate::audit::Actor;
use crate::auth::{perm, ClientIp, Require};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::page::{Page, Paging};
use crate::state::AppState;

/// Mounts the blacklist routes (inside the `/api/system` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_blacklist).service(add_blacklist).service(remove_blacklist);
}

/// A blacklist entry.
#[derive(Serialize, ToSchema)]
pub struct BlacklistEntry {
    pub id: i64,
    /// `ip` or `account`.
    pub kind: String,
    /// The network, e.g. `10.0.0.0/8` or `1.2.3.4/32`, for `ip` entries.
    pub ip: Option<String>,
    /// The account, for `account` entries.
    pub user_id: Option<i64>,
    pub reason: String,
    /// Null: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl From<EntryRow> for BlacklistEntry {
    fn from(row: EntryRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            ip: row.ip_net,
            user_id: row.user_id,
            reason: row.reason,
            expires_at: row.expires_at,
            created_by: row.created_by,
            created_at: row.created_at,
        }
    }
}

/// Filters and page of the blacklist.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BlacklistQuery {
    /// `ip` or `account`.
    pub kind: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// Lists entries, newest first (expired ones included, for the record).
#[utoipa::path(get, path = "/api/system/blacklist", tag = "blacklist", security(("bearer" = [])),
    params(BlacklistQuery), responses(
    (status = 200, body = Page<BlacklistEntry>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `blacklist.manage`", body = ErrorBody)))]
#[get("/blacklist")]
pub async fn list_blacklist(
    state: web::Data<AppState>,
    _user: Require<perm::BlacklistManage>,
    query: web::Query<BlacklistQuery>,
) -> ApiResult<HttpResponse> {
    let paging = Paging::new(query.page, query.per_page)?;
    if !matches!(query.kind.as_deref(), None | Some("ip" | "account")) {
        return Err(ApiError::new(ErrorCode::InvalidQuery).with_message("kind is `ip` or `account`"));
    }
    let client = state.db.get().await?;
    let (rows, total) = store::list(&client, query.kind.as_deref(), paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(rows, total).map(BlacklistEntry::from)))
}

/// A new entry: give exactly one of `ip` and `user_id`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddBlacklistRequest {
    /// An address (`1.2.3.4`) or network (`10.0.0.0/8`).
    pub ip: Option<String>,
    /// An account id.
    pub user_id: Option<i64>,
    /// 1-256 characters.
    pub reason: String,
    /// When the entry stops applying; must be in the future. Null: never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Blacklists an IP, a network or an account. An account's sessions end at once.
#[utoipa::path(post, path = "/api/system/blacklist", tag = "blacklist", security(("bearer" = [])),
    request_body = AddBlacklistRequest, responses(
    (status = 201, body = BlacklistEntry),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `blacklist.manage`", body = ErrorBody),
    (status = 422, description = "`validation_failed` (ip, user_id, reason, expires_at) or `invalid_body`", body = ErrorBody)))]
#[post("/blacklist")]
pub async fn add_blacklist(
    state: web::Data<AppState>,
    user: Require<perm::BlacklistManage>,
    ip: ClientIp,
    body: web::Json<AddBlacklistRequest>,
) -> ApiResult<HttpResponse> {
    let AddBlacklistRequest { ip: net, user_id, reason, expires_at } = body.into_inner();
    let entry =
        service::add(&state, Actor::new(&user, ip), Listing { ip: net, user_id, reason, expires_at }).await?;
    Ok(HttpResponse::Created().json(BlacklistEntry::from(entry)))
}

/// Removes an entry; it stops applying on every node at once.
#[utoipa::path(delete, path = "/api/system/blacklist/{id}", tag = "blacklist", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Entry id")), responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `blacklist.manage`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[delete("/blacklist/{id}")]
pub async fn remove_blacklist(
    state: web::Data<AppState>,
    user: Require<perm::BlacklistManage>,
    ip: ClientIp,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    service::remove(&state, Actor::new(&user, ip), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
