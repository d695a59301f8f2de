//! SQL of saved payment accounts. Rows are always looked up by id *and*
//! owner, so another user's account reads as absent. The payment password
//! hash is read only by [`find_payment_password_hash`], never with a row.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

/// A saved payment account as its owner sees it.
#[derive(Debug, Clone)]
pub struct PayAccountRow {
    pub id: i64,
    pub provider: String,
    pub holder_name: String,
    /// e.g. `**** **** **** 4242`; the full number is never stored.
    pub account_masked: String,
    pub has_payment_password: bool,
    pub created_at: DateTime<Utc>,
}

const PAY_ACCOUNT_COLUMNS: &str = "id, provider, holder_name, account_masked, \
                                   payment_password_hash IS NOT NULL AS has_payment_password, created_at";

impl PayAccountRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            provider: row.try_get("provider")?,
            holder_name: row.try_get("holder_name")?,
            account_masked: row.try_get("account_masked")?,
            has_payment_password: row.try_get("has_payment_password")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// A new account as validated: the number already masked.
#[derive(Debug)]
pub struct NewPayAccount<'a> {
    pub provider: &'a str,
    pub holder_name: &'a str,
    pub account_masked: String,
}

/// A user's saved accounts, newest first.
pub async fn list_for_user(
    client: &impl GenericClient,
    user_id: i64,
) -> Result<Vec<PayAccountRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {PAY_ACCOUNT_COLUMNS} FROM user_pay_accounts WHERE user_id = $1 ORDER BY id DESC"
        ))
        .await?;
    client.query(&stmt, &[&user_id]).await?.iter().map(PayAccountRow::from_row).collect()
}

/// How many accounts a user has saved.
pub async fn count_for_user(client: &impl GenericClient, user_id: i64) -> Result<i64, tokio_postgres::Error> {
    let stmt = client.prepare_cached("SELECT count(*) FROM user_pay_accounts WHERE user_id = $1").await?;
    client.query_one(&stmt, &[&user_id]).await?.try_get(0)
}

/// Saves an account for a user (check the limit under
/// [`crate::account::store::lock_user`] first).
pub async fn insert(
    client: &impl GenericClient,
    user_id: i64,
    account: &NewPayAccount<'_>,
    payment_password_hash: Option<&str>,
) -> Result<PayAccountRow, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO user_pay_accounts (user_id, provider, holder_name, account_masked, payment_password_hash)
             VALUES ($1, $2, $3, $4, $5) RETURNING {PAY_ACCOUNT_COLUMNS}"
        ))
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &user_id,
                &account.provider,
                &account.holder_name,
                &account.account_masked,
                &payment_password_hash,
            ],
        )
        .await?;
    PayAccountRow::from_row(&row)
}

/// Deletes one of a user's accounts; false if it is not the user's.
pub async fn delete(
    client: &impl GenericClient,
    user_id: i64,
    account_id: i64,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client.prepare_cached("DELETE FROM user_pay_accounts WHERE id = $1 AND user_id = $2").await?;
    Ok(client.execute(&stmt, &[&account_id, &user_id]).await? > 0)
}

/// The payment password hash of one of a user's accounts: `None` if the
/// account is not the user's, `Some(None)` if it has no payment password.
pub async fn find_payment_password_hash(
    client: &impl GenericClient,
    user_id: i64,
    account_id: i64,
) -> Result<Option<Option<String>>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached("SELECT payment_password_hash FROM user_pay_accounts WHERE id = $1 AND user_id = $2")
        .await?;
    client.query_opt(&stmt, &[&account_id, &user_id]).await?.map(|row| row.try_get(0)).transpose()
}

/// Replaces the payment password hash of one of a user's accounts; false
/// if it is not the user's.
pub async fn set_payment_password_hash(
    client: &impl GenericClient,
    user_id: i64,
    account_id: i64,
    payment_password_hash: &str,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "UPDATE user_pay_accounts SET payment_password_hash = $3 WHERE id = $1 AND user_id = $2",
        )
        .await?;
    Ok(client.execute(&stmt, &[&account_id, &user_id, &payment_password_hash]).await? > 0)
}

/// The provider of one of a user's saved accounts; `None` if it is not the user's.
pub async fn provider_of(
    client: &impl GenericClient,
    user_id: i64,
    account_id: i64,
) -> Result<Option<String>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached("SELECT provider FROM user_pay_accounts WHERE id = $1 AND user_id = $2")
        .await?;
    client.query_opt(&stmt, &[&account_id, &user_id]).await?.map(|row| row.try_get(0)).transpose()
}
