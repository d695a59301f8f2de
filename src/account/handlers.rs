//! HTTP endpoints of accounts and sessions.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::service::{self, LoginAttempt};
use super::store::{self, UserRow};
use crate::auth::session::SessionInfo;
use crate::auth::{AuthUser, ClientIp};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

/// Mounts the account routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(register)
        .service(login)
        .service(logout)
        .service(logout_all)
        .service(get_me)
        .service(list_sessions)
        .service(revoke_session);
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
pub async fn get_me(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    let row =
        store::find_user(&client, user.user_id).await?.ok_or(ApiError::new(ErrorCode::Unauthenticated))?;
    Ok(HttpResponse::Ok().json(UserView::from(row)))
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
