//! SQL of the account domain. Every function takes a generic client so it
//! runs on a pooled connection or inside a transaction.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

/// A user row as the API shows it (never the password hash).
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub status: String,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    pub gender: String,
    pub phone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Columns read into [`UserRow`], shared by every query returning one.
pub const USER_COLUMNS: &str = "id, username, email, status, email_verified_at, nickname, avatar_url, \
                                gender, phone, created_at, updated_at";

impl UserRow {
    /// Reads a row selected with [`USER_COLUMNS`].
    pub fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            email: row.try_get("email")?,
            status: row.try_get("status")?,
            email_verified_at: row.try_get("email_verified_at")?,
            nickname: row.try_get("nickname")?,
            avatar_url: row.try_get("avatar_url")?,
            gender: row.try_get("gender")?,
            phone: row.try_get("phone")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// Why an insert of a user was refused.
#[derive(Debug)]
pub enum InsertUserError {
    UsernameTaken,
    EmailTaken,
    Db(tokio_postgres::Error),
}

/// Inserts a user; unique violations are reported by field.
pub async fn insert_user(
    client: &impl GenericClient,
    username: &str,
    email: &str,
    password_hash: &str,
    status: &str,
) -> Result<UserRow, InsertUserError> {
    let sql = format!(
        "INSERT INTO users (username, email, password_hash, status) VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}"
    );
    let stmt = client.prepare_cached(&sql).await.map_err(InsertUserError::Db)?;
    match client.query_one(&stmt, &[&username, &email, &password_hash, &status]).await {
        Ok(row) => UserRow::from_row(&row).map_err(InsertUserError::Db),
        Err(err) => {
            let constraint = err
                .as_db_error()
                .filter(|e| *e.code() == SqlState::UNIQUE_VIOLATION)
                .and_then(|e| e.constraint());
            match constraint {
                Some("users_username_key") => Err(InsertUserError::UsernameTaken),
                Some("users_email_key") => Err(InsertUserError::EmailTaken),
                _ => Err(InsertUserError::Db(err)),
            }
        }
    }
}

/// Grants the role named `role` to a user (no-op if already held).
pub async fn grant_role(
    client: &impl GenericClient,
    user_id: i64,
    role: &str,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO user_roles (user_id, role_id) SELECT $1, id FROM roles WHERE name = $2 ON CONFLICT DO NOTHING",
        )
        .await?;
    client.execute(&stmt, &[&user_id, &role]).await?;
    Ok(())
}

/// What login needs: id, status and password hash, by username or email.
pub struct Credentials {
    pub id: i64,
    pub status: String,
    pub password_hash: String,
}

/// Finds login credentials by username or email (case-insensitive).
pub async fn find_credentials(
    client: &impl GenericClient,
    login: &str,
) -> Result<Option<Credentials>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT id, status, password_hash FROM users WHERE lower(username) = lower($1) OR lower(email) = lower($1) \
             ORDER BY (lower(username) = lower($1)) DESC LIMIT 1",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&login]).await? else { return Ok(None) };
    Ok(Some(Credentials {
        id: row.try_get("id")?,
        status: row.try_get("status")?,
        password_hash: row.try_get("password_hash")?,
    }))
}

/// Reads one user.
pub async fn find_user(
    client: &impl GenericClient,
    user_id: i64,
) -> Result<Option<UserRow>, tokio_postgres::Error> {
    let stmt = client.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")).await?;
    client.query_opt(&stmt, &[&user_id]).await?.map(|row| UserRow::from_row(&row)).transpose()
}

/// The account behind a session, its roles and the union of the
/// permissions of its roles, direct or through groups.
pub struct PrincipalRow {
    pub account: UserRow,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

/// Loads a [`PrincipalRow`] in one round trip.
pub async fn find_principal(
    client: &impl GenericClient,
    user_id: i64,
) -> Result<Option<PrincipalRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "WITH held AS (
                 SELECT role_id FROM user_roles WHERE user_id = $1
                 UNION
                 SELECT gr.role_id FROM group_members gm JOIN group_roles gr ON gr.group_id = gm.group_id
                 WHERE gm.user_id = $1
             )
             SELECT u.id, u.username, u.email, u.status, u.email_verified_at, u.nickname, u.avatar_url,
                    u.gender, u.phone, u.created_at, u.updated_at,
                    COALESCE((SELECT array_agg(r.name ORDER BY r.name) FROM roles r JOIN held h ON h.role_id = r.id), '{}') AS roles,
                    COALESCE((SELECT array_agg(DISTINCT rp.permission) FROM role_permissions rp JOIN held h ON h.role_id = rp.role_id), '{}') AS permissions
             FROM users u WHERE u.id = $1",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&user_id]).await? else { return Ok(None) };
    Ok(Some(PrincipalRow {
        account: UserRow::from_row(&row)?,
        roles: row.try_get("roles")?,
        permissions: row.try_get("permissions")?,
    }))
}

/// Locks a user's row until the end of the transaction, so changes to
/// what the user owns under a per-user limit (addresses, saved payment
/// accounts) never race. `FOR NO KEY UPDATE` leaves rows that merely
/// reference the user (carts, orders) unblocked.
pub async fn lock_user(client: &impl GenericClient, user_id: i64) -> Result<(), tokio_postgres::Error> {
    let stmt = client.prepare_cached("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE").await?;
    client.query_opt(&stmt, &[&user_id]).await?;
    Ok(())
}

/// Finds a user id by username (case-insensitive).
pub async fn find_id_by_username(
    client: &impl GenericClient,
    username: &str,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let stmt = client.prepare_cached("SELECT id FROM users WHERE lower(username) = lower($1)").await?;
    client.query_opt(&stmt, &[&username]).await?.map(|row| row.try_get(0)).transpose()
}

/// The stored password hash of a user, for a password change.
pub async fn find_password_hash(
    client: &impl GenericClient,
    user_id: i64,
) -> Result<Option<String>, tokio_postgres::Error> {
    let stmt = client.prepare_cached("SELECT password_hash FROM users WHERE id = $1").await?;
    client.query_opt(&stmt, &[&user_id]).await?.map(|row| row.try_get(0)).transpose()
}

/// Replaces a user's password hash.
pub async fn set_password_hash(
    client: &impl GenericClient,
    user_id: i64,
    password_hash: &str,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .await?;
    client.execute(&stmt, &[&user_id, &password_hash]).await?;
    Ok(())
}

/// A partial profile change: `None` keeps a field, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProfilePatch {
    pub nickname: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub gender: Option<String>,
    pub phone: Option<Option<String>>,
}

/// Applies a profile change; `None` when the user does not exist.
pub async fn update_profile(
    client: &impl GenericClient,
    user_id: i64,
    patch: &ProfilePatch,
) -> Result<Option<UserRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE users SET
                 nickname = CASE WHEN $2 THEN $3 ELSE nickname END,
                 avatar_url = CASE WHEN $4 THEN $5 ELSE avatar_url END,
                 gender = COALESCE($6, gender),
                 phone = CASE WHEN $7 THEN $8 ELSE phone END,
                 updated_at = now()
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        ))
        .await?;
    let nickname = patch.nickname.as_ref().and_then(Option::as_deref);
    let avatar_url = patch.avatar_url.as_ref().and_then(Option::as_deref);
    let phone = patch.phone.as_ref().and_then(Option::as_deref);
    let row = client
        .query_opt(
            &stmt,
            &[
                &user_id,
                &patch.nickname.is_some(),
                &nickname,
                &patch.avatar_url.is_some(),
                &avatar_url,
                &patch.gender,
                &patch.phone.is_some(),
                &phone,
            ],
        )
        .await?;
    row.map(|row| UserRow::from_row(&row)).transpose()
}

/// Sets an account's status (`active`, `frozen`, ...); `None` if no such user.
pub async fn set_status(
    client: &impl GenericClient,
    user_id: i64,
    status: &str,
) -> Result<Option<UserRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE users SET status = $2, updated_at = now() WHERE id = $1 RETURNING {USER_COLUMNS}"
        ))
        .await?;
    client.query_opt(&stmt, &[&user_id, &status]).await?.map(|row| UserRow::from_row(&row)).transpose()
}

/// Lifts a freeze: back to `active` when the email is verified, else `unverified`.
pub async fn unfreeze(
    client: &impl GenericClient,
    user_id: i64,
) -> Result<Option<UserRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE users SET status = CASE WHEN email_verified_at IS NULL THEN 'unverified' ELSE 'active' END,
                 updated_at = now()
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        ))
        .await?;
    client.query_opt(&stmt, &[&user_id]).await?.map(|row| UserRow::from_row(&row)).transpose()
}

/// Stores the hash of a new email verification token.
pub async fn insert_email_token(
    client: &impl GenericClient,
    token_hash: &str,
    user_id: i64,
    email: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO email_verification_tokens (token_hash, user_id, email, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .await?;
    client.execute(&stmt, &[&token_hash, &user_id, &email, &expires_at]).await?;
    Ok(())
}

/// Queues a mail for the mailer.
pub async fn insert_outbox(
    client: &impl GenericClient,
    user_id: i64,
    to_email: &str,
    kind: &str,
    payload: &serde_json::Value,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached("INSERT INTO email_outbox (user_id, to_email, kind, payload) VALUES ($1, $2, $3, $4)")
        .await?;
    client.execute(&stmt, &[&user_id, &to_email, &kind, payload]).await?;
    Ok(())
}

/// Marks an unused, unexpired token used and verifies the email it was
/// sent to, if that is still the account's email. Returns the account, or
/// `None` when the token is unknown, expired, used, or stale.
pub async fn consume_email_token(
    client: &impl GenericClient,
    token_hash: &str,
) -> Result<Option<UserRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "WITH used AS (
                 UPDATE email_verification_tokens SET used_at = now()
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
                 RETURNING user_id AS token_user, email AS token_email
             )
             UPDATE users SET email_verified_at = now(),
                 status = CASE WHEN status = 'unverified' THEN 'active' ELSE status END,
                 updated_at = now()
             FROM used WHERE id = token_user AND lower(email) = lower(token_email)
             RETURNING {USER_COLUMNS}"
        ))
        .await?;
    client.query_opt(&stmt, &[&token_hash]).await?.map(|row| UserRow::from_row(&row)).transpose()
}
