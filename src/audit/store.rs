//! SQL of the audit log.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use crate::page::Paging;

/// One audit row.
#[derive(Debug)]
pub struct AuditRow {
    pub id: i64,
    pub actor_id: Option<i64>,
    pub actor_username: Option<String>,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Appends one row.
pub async fn insert(
    client: &impl GenericClient,
    actor_id: i64,
    action: &str,
    target: &str,
    detail: &serde_json::Value,
    ip: &str,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO audit_log (actor_id, action, target, detail, ip) VALUES ($1, $2, $3, $4, $5::text::inet)",
        )
        .await?;
    client.execute(&stmt, &[&actor_id, &action, &target, detail, &ip]).await?;
    Ok(())
}

/// Filters of the audit list; `None` matches everything.
pub struct AuditFilter<'a> {
    pub actor_id: Option<i64>,
    pub action: Option<&'a str>,
}

const AUDIT_WHERE: &str = "($1::bigint IS NULL OR a.actor_id = $1) AND ($2::text IS NULL OR a.action = $2)";

/// One page of the log, newest first, and the total matching.
pub async fn list(
    client: &impl GenericClient,
    filter: &AuditFilter<'_>,
    paging: Paging,
) -> Result<(Vec<AuditRow>, i64), tokio_postgres::Error> {
    let count =
        client.prepare_cached(&format!("SELECT count(*) FROM audit_log a WHERE {AUDIT_WHERE}")).await?;
    let total: i64 = client.query_one(&count, &[&filter.actor_id, &filter.action]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT a.id, a.actor_id, u.username AS actor_username, a.action, a.target, a.detail,
                    host(a.ip) AS ip, a.created_at
             FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id
             WHERE {AUDIT_WHERE} ORDER BY a.created_at DESC, a.id DESC LIMIT $3 OFFSET $4"
        ))
        .await?;
    let rows =
        client.query(&stmt, &[&filter.actor_id, &filter.action, &paging.limit(), &paging.offset()]).await?;
    let items = rows
        .iter()
        .map(|row| {
            Ok(AuditRow {
                id: row.try_get("id")?,
                actor_id: row.try_get("actor_id")?,
                actor_username: row.try_get("actor_username")?,
                action: row.try_get("action")?,
                target: row.try_get("target")?,
                detail: row.try_get("detail")?,
                ip: row.try_get("ip")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok((items, total))
}
