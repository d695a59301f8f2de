//! `GET /api/system/audit-log`.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::store::{self, AuditFilter, AuditRow};
use crate::auth::{perm, Require};
use crate::error::{ApiResult, ErrorBody};
use crate::page::{Page, Paging};
use crate::state::AppState;

/// Mounts the audit routes (inside the `/api/system` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_audit_log);
}

/// Filters and page of the audit list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only actions by this account id.
    pub actor: Option<i64>,
    /// Only this action, e.g. `member.freeze`.
    pub action: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// One recorded admin action.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// Null when the acting account was deleted since.
    pub actor_id: Option<i64>,
    pub actor_username: Option<String>,
    /// What was done, e.g. `role.create`, `member.freeze`.
    pub action: String,
    /// What it was done to, e.g. `user:42`.
    pub target: String,
    /// Action-specific details.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        Self {
            id: row.id,
            actor_id: row.actor_id,
            actor_username: row.actor_username,
            action: row.action,
            target: row.target,
            detail: row.detail,
            ip: row.ip,
            created_at: row.created_at,
        }
    }
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/system/audit-log", tag = "system", security(("bearer" = [])),
    params(AuditQuery), responses(
    (status = 200, body = Page<AuditEntry>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `audit.read`", body = ErrorBody)))]
#[get("/audit-log")]
pub async fn list_audit_log(
    state: web::Data<AppState>,
    _user: Require<perm::AuditRead>,
    query: web::Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    let paging = Paging::new(query.page, query.per_page)?;
    let filter = AuditFilter { actor_id: query.actor, action: query.action.as_deref() };
    let client = state.db.get().await?;
    let (rows, total) = store::list(&client, &filter, paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(rows, total).map(AuditEntry::from)))
}
