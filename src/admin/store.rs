//! SQL of admin and member management.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::account::store::{UserRow, USER_COLUMNS};
use crate::page::Paging;

/// An account with its directly granted roles.
#[derive(Debug)]
pub struct AccountRow {
    pub user: UserRow,
    pub roles: Vec<String>,
}

impl AccountRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self { user: UserRow::from_row(row)?, roles: row.try_get("roles")? })
    }
}

fn select_accounts(filter: &str, tail: &str) -> String {
    format!(
        "SELECT {USER_COLUMNS}, ARRAY(SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                                      WHERE ur.user_id = users.id ORDER BY r.name) AS roles
         FROM users WHERE {filter} {tail}"
    )
}

const ADMIN_FILTER: &str = "EXISTS (SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                                    WHERE ur.user_id = users.id AND r.name IN ('admin', 'staff'))";

/// One account, locked for update when inside a transaction.
pub async fn find_account(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<AccountRow>, tokio_postgres::Error> {
    let stmt = client.prepare_cached(&select_accounts("id = $1", "FOR UPDATE")).await?;
    client.query_opt(&stmt, &[&id]).await?.map(|row| AccountRow::from_row(&row)).transpose()
}

/// One page of accounts holding `admin` or `staff`, by id.
pub async fn list_admins(
    client: &impl GenericClient,
    paging: Paging,
) -> Result<(Vec<AccountRow>, i64), tokio_postgres::Error> {
    let count = client.prepare_cached(&format!("SELECT count(*) FROM users WHERE {ADMIN_FILTER}")).await?;
    let total: i64 = client.query_one(&count, &[]).await?.try_get(0)?;
    let stmt =
        client.prepare_cached(&select_accounts(ADMIN_FILTER, "ORDER BY id LIMIT $1 OFFSET $2")).await?;
    let rows = client.query(&stmt, &[&paging.limit(), &paging.offset()]).await?;
    Ok((rows.iter().map(AccountRow::from_row).collect::<Result<_, _>>()?, total))
}

/// Filters of the member list; `None` matches everything.
#[derive(Debug, Default)]
pub struct MemberFilter<'a> {
    pub status: Option<&'a str>,
    /// Case-insensitive substring of the username or email.
    pub q: Option<&'a str>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
}

const MEMBER_FILTER: &str = "($1::text IS NULL OR status = $1)
    AND ($2::text IS NULL OR strpos(lower(username), lower($2)) > 0 OR strpos(lower(email), lower($2)) > 0)
    AND ($3::timestamptz IS NULL OR created_at >= $3)
    AND ($4::timestamptz IS NULL OR created_at < $4)";

/// One page of accounts matching `filter`, oldest first (stable: then by id).
pub async fn list_members(
    client: &impl GenericClient,
    filter: &MemberFilter<'_>,
    paging: Paging,
) -> Result<(Vec<AccountRow>, i64), tokio_postgres::Error> {
    let params = [
        &filter.status as &(dyn tokio_postgres::types::ToSql + Sync),
        &filter.q,
        &filter.created_from,
        &filter.created_to,
    ];
    let count = client.prepare_cached(&format!("SELECT count(*) FROM users WHERE {MEMBER_FILTER}")).await?;
    let total: i64 = client.query_one(&count, &params).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&select_accounts(MEMBER_FILTER, "ORDER BY created_at, id LIMIT $5 OFFSET $6"))
        .await?;
    let (limit, offset) = (paging.limit(), paging.offset());
    let rows = client.query(&stmt, &[params[0], params[1], params[2], params[3], &limit, &offset]).await?;
    Ok((rows.iter().map(AccountRow::from_row).collect::<Result<_, _>>()?, total))
}

/// Removes the `admin` and `staff` grants of a user; returns how many.
pub async fn remove_privileged_roles(
    client: &impl GenericClient,
    user_id: i64,
) -> Result<u64, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "DELETE FROM user_roles WHERE user_id = $1
             AND role_id IN (SELECT id FROM roles WHERE name IN ('admin', 'staff'))",
        )
        .await?;
    client.execute(&stmt, &[&user_id]).await
}
