//! SQL of the blacklist. Networks are a `CIDR` column, passed as text.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::page::Paging;

/// One blacklist entry.
#[derive(Debug)]
pub struct EntryRow {
    pub id: i64,
    pub kind: String,
    pub ip_net: Option<String>,
    pub user_id: Option<i64>,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

const ENTRY_COLUMNS: &str =
    "id, kind, ip_net::text AS ip_net, user_id, reason, expires_at, created_by, created_at";

impl EntryRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            ip_net: row.try_get("ip_net")?,
            user_id: row.try_get("user_id")?,
            reason: row.try_get("reason")?,
            expires_at: row.try_get("expires_at")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// A new entry: exactly one of `ip_net` (canonical CIDR text) and `user_id`.
pub struct NewEntry<'a> {
    pub ip_net: Option<&'a str>,
    pub user_id: Option<i64>,
    pub reason: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: i64,
}

/// Inserts an entry.
pub async fn insert(
    client: &impl GenericClient,
    entry: &NewEntry<'_>,
) -> Result<EntryRow, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO blacklist (kind, ip_net, user_id, reason, expires_at, created_by)
             VALUES (CASE WHEN $1::text IS NULL THEN 'account' ELSE 'ip' END, $1::text::cidr, $2, $3, $4, $5)
             RETURNING {ENTRY_COLUMNS}"
        ))
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[&entry.ip_net, &entry.user_id, &entry.reason, &entry.expires_at, &entry.created_by],
        )
        .await?;
    EntryRow::from_row(&row)
}

/// Deletes an entry, returning it; `None` when there is no such entry.
pub async fn delete(client: &impl GenericClient, id: i64) -> Result<Option<EntryRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!("DELETE FROM blacklist WHERE id = $1 RETURNING {ENTRY_COLUMNS}"))
        .await?;
    client.query_opt(&stmt, &[&id]).await?.map(|row| EntryRow::from_row(&row)).transpose()
}

/// One page of entries, newest first, optionally of one kind.
pub async fn list(
    client: &impl GenericClient,
    kind: Option<&str>,
    paging: Paging,
) -> Result<(Vec<EntryRow>, i64), tokio_postgres::Error> {
    let count =
        client.prepare_cached("SELECT count(*) FROM blacklist WHERE ($1::text IS NULL OR kind = $1)").await?;
    let total: i64 = client.query_one(&count, &[&kind]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM blacklist WHERE ($1::text IS NULL OR kind = $1)
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        ))
        .await?;
    let rows = client.query(&stmt, &[&kind, &paging.limit(), &paging.offset()]).await?;
    let items = rows.iter().map(EntryRow::from_row).collect::<Result<Vec<_>, _>>()?;
    Ok((items, total))
}

/// Every entry not yet expired, for the in-memory snapshot.
pub async fn load_live(client: &impl GenericClient) -> Result<Vec<EntryRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM blacklist WHERE expires_at IS NULL OR expires_at > now()"
        ))
        .await?;
    let rows = client.query(&stmt, &[]).await?;
    rows.iter().map(EntryRow::from_row).collect()
}
