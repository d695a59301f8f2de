//! HTTP endpoints of accounts and sessions.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::service::{self, LoginAttempt};
use super::store::{ProfilePatch, UserRow};
use crate::auth::session::SessionInfo;
use crate::auth::{AuthUser, ClientIp};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;
use crate::validate;

/// Mounts the account routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(register)
        .service(login)
        .service(logout)
        .service(logout_all)
        .service(get_me)
        .service(list_sessions)
        .service(revoke_session)
        .service(update_me)
        .service(change_password)
        .service(request_email_verification)
        .service(verify_email);
}

/// Registration request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3-32 characters: letters, digits, `_`, `-`, `.`, starting with a letter.
    pub username: String,
    /// A valid email address, at most 254 characters.
    pub email: String,
    /// 8-128 characters, not only letters.
    pub password: String,
}

/// An account as its owner and admins see it.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub email: String,
    /// `unverified`, `active` or `frozen`.
    pub status: String,
    pub email_verified: bool,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    /// `male`, `female` or `unknown`.
    pub gender: String,
    pub phone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserRow> for UserView {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            username: row.username,
            email: row.email,
            status: row.status,
            email_verified: row.email_verified_at.is_some(),
            nickname: row.nickname,
            avatar_url: row.avatar_url,
            gender: row.gender,
            phone: row.phone,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Registers a member account.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, body = UserView),
    (status = 409, description = "`username_taken` or `email_taken`", body = ErrorBody),
    (status = 422, description = "`validation_failed` with per-field details, or `invalid_body`", body = ErrorBody)))]
#[post("/api/auth/register")]
pub async fn register(
    state: web::Data<AppState>,
    body: web::Json<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    let RegisterRequest { username, email, password } = body.into_inner();
    let user = service::register(&state, username.trim(), email.trim(), password).await?;
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

/// Login request: by username or email.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username or email.
    pub login: String,
    pub password: String,
}

/// A new session's bearer token, shown once.
#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Session id, as listed by `GET /api/auth/sessions`.
    pub session_id: String,
    pub user_id: i64,
    pub expires_at: DateTime<Utc>,
}

/// Logs in and returns a bearer token.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = LoginResponse),
    (status = 401, description = "`invalid_credentials`", body = ErrorBody),
    (status = 403, description = "`account_frozen` or `blacklisted`", body = ErrorBody),
    (status = 429, description = "`rate_limited`: too many failures for this account or IP", body = ErrorBody)))]
#[post("/api/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    ip: ClientIp,
    body: web::Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let LoginRequest { login, password } = body.into_inner();
    if login.is_empty() || login.len() > 254 || password.chars().count() > service::PASSWORD_MAX_CHARS {
        return Err(ErrorCode::InvalidCredentials.into());
    }
    let user_agent = req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("");
    let attempt = LoginAttempt { login: login.trim(), password, ip: ip.0.to_string(), user_agent };
    let (session, user_id) = service::login(&state, attempt).await?;
    Ok(HttpResponse::Ok().json(LoginResponse {
        token: session.token,
        session_id: session.id,
        user_id,
        expires_at: session.expires_at,
    }))
}

/// Ends the calling session; its token stops working at once.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])), responses(
    (status = 204), (status = 401, body = ErrorBody)))]
#[post("/api/auth/logout")]
pub async fn logout(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    state.sessions.revoke(user.user_id, &user.session_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ends every session of the caller, this one included.
#[utoipa::path(post, path = "/api/auth/logout-all", tag = "auth", security(("bearer" = [])), responses(
    (status = 204), (status = 401, body = ErrorBody)))]
#[post("/api/auth/logout-all")]
pub async fn logout_all(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    state.sessions.revoke_all(user.user_id, None).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's own account and profile.
#[utoipa::path(get, path = "/api/me", tag = "account", security(("bearer" = [])), responses(
    (status = 200, body = UserView), (status = 401, body = ErrorBody)))]
#[get("/api/me")]
pub async fn get_me(user: AuthUser) -> ApiResult<HttpResponse> {
    // Served from the session cache: every write to the account refreshes it
    // on every node, so this costs no database or Redis round trip, and the
    // JSON is rendered once per cached session.
    let body = match user.rendered_account.get() {
        Some(body) => body.clone(),
        None => {
            let json =
                serde_json::to_vec(&UserView::from(user.account.clone())).map_err(ApiError::internal)?;
            user.rendered_account.get_or_init(|| json.into()).clone()
        }
    };
    Ok(HttpResponse::Ok().content_type("application/json").body(body))
}

/// The caller's live sessions, newest first.
#[utoipa::path(get, path = "/api/auth/sessions", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = [SessionInfo]), (status = 401, body = ErrorBody)))]
#[get("/api/auth/sessions")]
pub async fn list_sessions(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    let sessions = state.sessions.list(user.user_id, &user.session_id).await?;
    Ok(HttpResponse::Ok().json(sessions))
}

/// Revokes one of the caller's sessions.
#[utoipa::path(delete, path = "/api/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/api/auth/sessions/{id}")]
pub async fn revoke_session(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    if !state.sessions.revoke(user.user_id, &id).await? {
        return Err(ApiError::new(ErrorCode::NotFound).with_message("no such session"));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// A profile change. Absent fields stay; `null` clears a nullable field.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    /// 1-32 characters, or null.
    #[serde(default, deserialize_with = "validate::nullable")]
    #[schema(value_type = Option<String>)]
    pub nickname: Option<Option<String>>,
    /// An http(s) URL of at most 512 characters, or null.
    #[serde(default, deserialize_with = "validate::nullable")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
    /// `male`, `female` or `unknown`.
    pub gender: Option<String>,
    /// 5-20 characters: digits, spaces, `+`, `-`, parentheses; or null.
    #[serde(default, deserialize_with = "validate::nullable")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
}

impl From<ProfileUpdate> for ProfilePatch {
    fn from(body: ProfileUpdate) -> Self {
        Self { nickname: body.nickname, avatar_url: body.avatar_url, gender: body.gender, phone: body.phone }
    }
}

/// Changes the caller's profile.
#[utoipa::path(patch, path = "/api/me", tag = "account", security(("bearer" = [])), request_body = ProfileUpdate,
    responses(
    (status = 200, body = UserView),
    (status = 401, body = ErrorBody),
    (status = 422, description = "`validation_failed` per field, or `invalid_body`", body = ErrorBody)))]
#[patch("/api/me")]
pub async fn update_me(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<ProfileUpdate>,
) -> ApiResult<HttpResponse> {
    let row = service::update_profile(&state, user.user_id, &body.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(UserView::from(row)))
}

/// Password change request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// 8-128 characters, not only letters.
    pub new_password: String,
}

/// Changes the caller's password; every other session of the account ends.
#[utoipa::path(post, path = "/api/me/password", tag = "account", security(("bearer" = [])),
    request_body = ChangePasswordRequest, responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`wrong_password`", body = ErrorBody),
    (status = 422, description = "`validation_failed` (new_password) or `invalid_body`", body = ErrorBody)))]
#[post("/api/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<ChangePasswordRequest>,
) -> ApiResult<HttpResponse> {
    let ChangePasswordRequest { current_password, new_password } = body.into_inner();
    service::change_password(&state, &user, current_password, new_password).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Queues a new verification mail to the caller's email.
#[utoipa::path(post, path = "/api/me/email-verification", tag = "account", security(("bearer" = [])),
    responses(
    (status = 202, description = "the mail is queued"),
    (status = 401, body = ErrorBody),
    (status = 409, description = "`invalid_state`: already verified", body = ErrorBody)))]
#[post("/api/me/email-verification")]
pub async fn request_email_verification(
    state: web::Data<AppState>,
    user: AuthUser,
) -> ApiResult<HttpResponse> {
    service::request_email_verification(&state, user.user_id).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Email verification request: the token from the mail.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    pub token: String,
}

/// Verifies an email with the mailed token; the account becomes active.
#[utoipa::path(post, path = "/api/auth/verify-email", tag = "auth", request_body = VerifyEmailRequest, responses(
    (status = 200, body = UserView),
    (status = 422, description = "`invalid_token` (unknown, expired or used) or `invalid_body`", body = ErrorBody)))]
#[post("/api/auth/verify-email")]
pub async fn verify_email(
    state: web::Data<AppState>,
    body: web::Json<VerifyEmailRequest>,
) -> ApiResult<HttpResponse> {
    let user = service::verify_email(&state, body.token.trim()).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}
