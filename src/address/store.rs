//! SQL of the address book. Every change runs in a transaction that first
//! locks the owner ([`crate::account::store::lock_user`]), and clears the
//! old default before setting a new one, so the one-default index is never
//! violated.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

/// One address of a user's book.
#[derive(Debug, Clone)]
pub struct AddressRow {
    pub id: i64,
    pub user_id: i64,
    pub recipient: String,
    pub phone: String,
    /// Province / city / district as one line.
    pub region: String,
    pub detail: String,
    pub postal_code: Option<String>,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ADDRESS_COLUMNS: &str =
    "id, user_id, recipient, phone, region, detail, postal_code, is_default, created_at, updated_at";

impl AddressRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            recipient: row.try_get("recipient")?,
            phone: row.try_get("phone")?,
            region: row.try_get("region")?,
            detail: row.try_get("detail")?,
            postal_code: row.try_get("postal_code")?,
            is_default: row.try_get("is_default")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// The fields of an address as written.
#[derive(Debug)]
pub struct AddressFields<'a> {
    pub recipient: &'a str,
    pub phone: &'a str,
    pub region: &'a str,
    pub detail: &'a str,
    pub postal_code: Option<&'a str>,
}

/// A user's addresses, the default first, then newest first.
pub async fn list_for_user(
    client: &impl GenericClient,
    user_id: i64,
) -> Result<Vec<AddressRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {ADDRESS_COLUMNS} FROM addresses WHERE user_id = $1 ORDER BY is_default DESC, id DESC"
        ))
        .await?;
    client.query(&stmt, &[&user_id]).await?.iter().map(AddressRow::from_row).collect()
}

/// How many addresses a user has.
pub async fn count_for_user(client: &impl GenericClient, user_id: i64) -> Result<i64, tokio_postgres::Error> {
    let stmt = client.prepare_cached("SELECT count(*) FROM addresses WHERE user_id = $1").await?;
    client.query_one(&stmt, &[&user_id]).await?.try_get(0)
}

/// One of a user's addresses; `None` if it does not exist or is someone
/// else's.
pub async fn find_for_user(
    client: &impl GenericClient,
    user_id: i64,
    address_id: i64,
) -> Result<Option<AddressRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!("SELECT {ADDRESS_COLUMNS} FROM addresses WHERE id = $1 AND user_id = $2"))
        .await?;
    client.query_opt(&stmt, &[&address_id, &user_id]).await?.map(|row| AddressRow::from_row(&row)).transpose()
}

/// Adds an address to a user's book (clear the default first if it is one).
pub async fn insert(
    client: &impl GenericClient,
    user_id: i64,
    fields: &AddressFields<'_>,
    is_default: bool,
) -> Result<AddressRow, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO addresses (user_id, recipient, phone, region, detail, postal_code, is_default)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ADDRESS_COLUMNS}"
        ))
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &user_id,
                &fields.recipient,
                &fields.phone,
                &fields.region,
                &fields.detail,
                &fields.postal_code,
                &is_default,
            ],
        )
        .await?;
    AddressRow::from_row(&row)
}

/// Replaces an address's fields and default flag (clear the default first
/// if it becomes one); `None` if it is not the user's.
pub async fn update(
    client: &impl GenericClient,
    user_id: i64,
    address_id: i64,
    fields: &AddressFields<'_>,
    is_default: bool,
) -> Result<Option<AddressRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE addresses SET recipient = $3, phone = $4, region = $5, detail = $6, postal_code = $7,
                 is_default = $8, updated_at = now()
             WHERE id = $1 AND user_id = $2 RETURNING {ADDRESS_COLUMNS}"
        ))
        .await?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &address_id,
                &user_id,
                &fields.recipient,
                &fields.phone,
                &fields.region,
                &fields.detail,
                &fields.postal_code,
                &is_default,
            ],
        )
        .await?;
    row.map(|row| AddressRow::from_row(&row)).transpose()
}

/// Unmarks the user's default address, if any.
pub async fn clear_default(client: &impl GenericClient, user_id: i64) -> Result<u64, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "UPDATE addresses SET is_default = false, updated_at = now() WHERE user_id = $1 AND is_default",
        )
        .await?;
    client.execute(&stmt, &[&user_id]).await
}

/// Marks one address the default (clear the old one first); `None` if it
/// is not the user's.
pub async fn mark_default(
    client: &impl GenericClient,
    user_id: i64,
    address_id: i64,
) -> Result<Option<AddressRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE addresses SET is_default = true, updated_at = now()
             WHERE id = $1 AND user_id = $2 RETURNING {ADDRESS_COLUMNS}"
        ))
        .await?;
    client.query_opt(&stmt, &[&address_id, &user_id]).await?.map(|row| AddressRow::from_row(&row)).transpose()
}

/// Marks the user's most recently added address the default (after the
/// default was deleted); no-op for an empty book.
pub async fn promote_newest(client: &impl GenericClient, user_id: i64) -> Result<u64, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "UPDATE addresses SET is_default = true, updated_at = now()
             WHERE id = (SELECT id FROM addresses WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1)",
        )
        .await?;
    client.execute(&stmt, &[&user_id]).await
}

/// Deletes one of a user's addresses, returning it; `None` if it is not
/// the user's.
pub async fn delete(
    client: &impl GenericClient,
    user_id: i64,
    address_id: i64,
) -> Result<Option<AddressRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "DELETE FROM addresses WHERE id = $1 AND user_id = $2 RETURNING {ADDRESS_COLUMNS}"
        ))
        .await?;
    client.query_opt(&stmt, &[&address_id, &user_id]).await?.map(|row| AddressRow::from_row(&row)).transpose()
}
