//! Account rules: field validation, registration, login with throttling.

use chrono::Utc;
use deadpool_postgres::{GenericClient, Pool};
use rand::RngCore;
use serde_json::json;

use super::store::{self, InsertUserError, ProfilePatch, UserRow};
use crate::auth::password;
use crate::auth::session::{token_id, NewSession};
use crate::auth::throttle::{self, FailureLimit};
use crate::auth::Principal;
use crate::config::AuthSettings;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::validate::{self, Validator};

/// Longest accepted password; argon2 cost grows with input, so cap it.
pub const PASSWORD_MAX_CHARS: usize = 128;
/// Shortest accepted password.
pub const PASSWORD_MIN_CHARS: usize = 8;

/// Checks the registration fields, reporting every problem at once.
pub fn validate_registration(username: &str, email: &str, password: &str) -> ApiResult<()> {
    let mut v = Validator::new();
    v.length("username", username, 3, 32);
    if !username.is_empty() {
        v.check("username", validate::is_username(username), "invalid_format");
    }
    v.length("email", email, 3, 254);
    if !email.is_empty() {
        v.check("email", validate::is_email(email), "invalid_format");
    }
    validate_password(&mut v, "password", password);
    v.finish()
}

/// Password rules: length bounds and not only one kind of character.
pub fn validate_password(v: &mut Validator, field: &str, password: &str) {
    v.length(field, password, PASSWORD_MIN_CHARS, PASSWORD_MAX_CHARS);
    let has_letter = password.chars().any(char::is_alphabetic);
    let has_other = password.chars().any(|c| !c.is_alphabetic());
    if password.chars().count() >= PASSWORD_MIN_CHARS {
        v.check(field, has_letter && has_other, "too_weak");
    }
}

/// Creates a verification token for the account's current email and queues
/// the mail carrying it. Only the token's hash is kept.
async fn queue_verification_mail(
    client: &impl GenericClient,
    settings: &AuthSettings,
    user: &UserRow,
) -> ApiResult<()> {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let ttl = i64::try_from(settings.email_token_ttl_secs).unwrap_or(i64::MAX);
    let expires_at = Utc::now() + chrono::Duration::seconds(ttl);
    store::insert_email_token(client, &token_id(&token), user.id, &user.email, expires_at).await?;
    let payload = json!({"username": user.username, "token": token, "expires_at": expires_at});
    store::insert_outbox(client, user.id, &user.email, "verify_email", &payload).await?;
    Ok(())
}

/// Sends (queues) a new verification mail; refused once the email is verified.
pub async fn request_email_verification(state: &AppState, user_id: i64) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let user = store::find_user(&tx, user_id).await?.ok_or(ApiError::new(ErrorCode::Unauthenticated))?;
    if user.email_verified_at.is_some() {
        return Err(ApiError::new(ErrorCode::InvalidState).with_message("the email is already verified"));
    }
    queue_verification_mail(&tx, &state.settings.auth, &user).await?;
    tx.commit().await?;
    Ok(())
}

/// Longest token accepted by verification (ours are 64 hex characters).
const EMAIL_TOKEN_MAX_CHARS: usize = 128;

/// Redeems a verification token: the email becomes verified and an
/// `unverified` account becomes `active`.
pub async fn verify_email(state: &AppState, token: &str) -> ApiResult<UserRow> {
    if token.is_empty() || token.len() > EMAIL_TOKEN_MAX_CHARS {
        return Err(ErrorCode::InvalidToken.into());
    }
    let client = state.db.get().await?;
    let user = store::consume_email_token(&client, &token_id(token))
        .await?
        .ok_or(ApiError::new(ErrorCode::InvalidToken))?;
    state.sessions.refresh_user(user.id).await?;
    Ok(user)
}

/// Changes the caller's password after checking the current one, then
/// ends every other session of the account (this one stays).
pub async fn change_password(
    state: &AppState,
    user: &Principal,
    current_password: String,
    new_password: String,
) -> ApiResult<()> {
    let mut v = Validator::new();
    validate_password(&mut v, "new_password", &new_password);
    v.finish()?;
    if current_password.chars().count() > PASSWORD_MAX_CHARS {
        return Err(ErrorCode::WrongPassword.into());
    }
    let client = state.db.get().await?;
    let stored = store::find_password_hash(&client, user.user_id)
        .await?
        .ok_or(ApiError::new(ErrorCode::Unauthenticated))?;
    if !password::verify(current_password, stored).await? {
        return Err(ErrorCode::WrongPassword.into());
    }
    let hash = password::hash(&state.settings.auth, new_password).await?;
    store::set_password_hash(&client, user.user_id, &hash).await?;
    state.sessions.revoke_all(user.user_id, Some(&user.session_id)).await?;
    Ok(())
}

/// Longest nickname.
pub const NICKNAME_MAX_CHARS: usize = 32;
/// Longest avatar URL.
pub const AVATAR_URL_MAX_CHARS: usize = 512;

/// Phone number length bounds.
const PHONE_MIN_CHARS: usize = 5;
const PHONE_MAX_CHARS: usize = 20;

/// Checks a profile change, reporting every bad field at once.
pub fn validate_profile(patch: &ProfilePatch) -> ApiResult<()> {
    let mut v = Validator::new();
    if let Some(Some(nickname)) = &patch.nickname {
        v.length("nickname", nickname, 1, NICKNAME_MAX_CHARS);
    }
    if let Some(Some(url)) = &patch.avatar_url {
        v.length("avatar_url", url, 1, AVATAR_URL_MAX_CHARS);
        if !url.is_empty() {
            v.check("avatar_url", validate::is_http_url(url), "invalid_format");
        }
    }
    if let Some(gender) = &patch.gender {
        v.check("gender", matches!(gender.as_str(), "male" | "female" | "unknown"), "invalid_value");
    }
    if let Some(Some(phone)) = &patch.phone {
        v.length("phone", phone, PHONE_MIN_CHARS, PHONE_MAX_CHARS);
        if (PHONE_MIN_CHARS..=PHONE_MAX_CHARS).contains(&phone.chars().count()) {
            v.check("phone", validate::is_phone(phone), "invalid_format");
        }
    }
    v.finish()
}

/// Changes the caller's own profile.
pub async fn update_profile(state: &AppState, user_id: i64, patch: &ProfilePatch) -> ApiResult<UserRow> {
    validate_profile(patch)?;
    let client = state.db.get().await?;
    let row = store::update_profile(&client, user_id, patch)
        .await?
        .ok_or(ApiError::new(ErrorCode::Unauthenticated))?;
    state.sessions.refresh_user(user_id).await?;
    Ok(row)
}

/// Registers a member account (status `unverified`).
pub async fn register(state: &AppState, username: &str, email: &str, password: String) -> ApiResult<UserRow> {
    validate_registration(username, email, &password)?;
    let hash = password::hash(&state.settings.auth, password).await?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let user = store::insert_user(&tx, username, email, &hash, "unverified").await.map_err(insert_error)?;
    store::grant_role(&tx, user.id, "member").await?;
    queue_verification_mail(&tx, &state.settings.auth, &user).await?;
    tx.commit().await?;
    Ok(user)
}

/// Maps a refused user insert to its API error.
pub fn insert_error(err: InsertUserError) -> ApiError {
    match err {
        InsertUserError::UsernameTaken => ErrorCode::UsernameTaken.into(),
        InsertUserError::EmailTaken => ErrorCode::EmailTaken.into(),
        InsertUserError::Db(e) => e.into(),
    }
}

/// Creates an active administrator, or grants `admin` to an existing
/// account of that username. Used by the `create-admin` subcommand.
pub async fn create_admin(
    pool: &Pool,
    settings: &AuthSettings,
    username: &str,
    email: &str,
    password: &str,
) -> ApiResult<i64> {
    validate_registration(username, email, password)?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let id = match store::find_id_by_username(&tx, username).await? {
        Some(id) => id,
        None => {
            let hash = password::hash(settings, password.to_owned()).await?;
            store::insert_user(&tx, username, email, &hash, "active").await.map_err(insert_error)?.id
        }
    };
    store::grant_role(&tx, id, "admin").await?;
    tx.commit().await?;
    Ok(id)
}

/// Where a login attempt comes from.
pub struct LoginAttempt<'a> {
    pub login: &'a str,
    pub password: String,
    pub ip: String,
    pub user_agent: &'a str,
}

/// Checks credentials and opens a session. Failures are counted per
/// account and per IP in Redis; past the limit both get 429 until the
/// window passes. Unknown accounts cost the same time as known ones.
pub async fn login(state: &AppState, attempt: LoginAttempt<'_>) -> ApiResult<(NewSession, i64)> {
    let auth = &state.settings.auth;
    let ip_key = state.kv.key(format_args!("login_fail:ip:{}", attempt.ip));
    let account_key = state.kv.key(format_args!("login_fail:account:{}", attempt.login.to_lowercase()));
    let limit = FailureLimit::login(auth);
    let check = async {
        let credentials = {
            let client = state.db.get().await?;
            store::find_credentials(&client, attempt.login).await?
        };
        let verified = match &credentials {
            Some(c) => password::verify(attempt.password, c.password_hash.clone()).await?,
            None => {
                password::dummy_verify(auth, attempt.password).await?;
                false
            }
        };
        Ok((credentials, verified))
    };
    let message = "too many failed logins; try again later";
    let (credentials, verified) = limit.checked(&state.kv, &account_key, &[&ip_key], message, check).await?;
    let Some(credentials) = credentials.filter(|_| verified) else {
        limit.record_failure(&state.kv, &[&ip_key]).await?;
        return Err(ErrorCode::InvalidCredentials.into());
    };
    throttle::clear(&state.kv, &account_key).await?;
    if credentials.status == "frozen" {
        return Err(ErrorCode::AccountFrozen.into());
    }
    if state.blacklist.account_blocked(credentials.id) {
        return Err(ErrorCode::Blacklisted.into());
    }
    let session = state.sessions.create(credentials.id, &attempt.ip, attempt.user_agent).await?;
    Ok((session, credentials.id))
}
