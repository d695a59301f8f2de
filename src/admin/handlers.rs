//! `/api/system/admins` (`admin.manage`) and `/api/system/members`
//! (`member.read` to read, `member.manage` to change).

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::service::{self, NewAdmin};
use super::store::{self, AccountRow, MemberFilter};
use crate::account::handlers::{ProfileUpdate, UserView};
use crate::audit::Actor;
use crate::auth::{perm, ClientIp, Require};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::page::{Page, PageQuery, Paging};
use crate::state::AppState;

/// Mounts the admin and member management routes (inside the `/api/system` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_admins)
        .service(add_admin)
        .service(update_admin)
        .service(delete_admin)
        .service(list_members)
        .service(get_member)
        .service(update_member)
        .service(freeze_member)
        .service(unfreeze_member);
}

/// An account with its directly granted roles, as admins see it.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    #[serde(flatten)]
    pub user: UserView,
    pub roles: Vec<String>,
}

impl From<AccountRow> for AccountView {
    fn from(row: AccountRow) -> Self {
        Self { user: row.user.into(), roles: row.roles }
    }
}

/// Accounts holding `admin` or `staff`, by id.
#[utoipa::path(get, path = "/api/system/admins", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses(
    (status = 200, body = Page<AccountView>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `admin.manage`", body = ErrorBody)))]
#[get("/admins")]
pub async fn list_admins(
    state: web::Data<AppState>,
    _user: Require<perm::AdminManage>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let paging = query.paging()?;
    let client = state.db.get().await?;
    let (rows, total) = store::list_admins(&client, paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(rows, total).map(AccountView::from)))
}

/// A new administrator or operator.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddAdminRequest {
    /// Same rules as registration.
    pub username: String,
    pub email: String,
    pub password: String,
    /// `admin` or `staff`.
    pub role: String,
}

/// Creates an active account with role `admin` or `staff`.
#[utoipa::path(post, path = "/api/system/admins", tag = "admin", security(("bearer" = [])),
    request_body = AddAdminRequest, responses(
    (status = 201, body = AccountView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `admin.manage`", body = ErrorBody),
    (status = 409, description = "`username_taken` or `email_taken`", body = ErrorBody),
    (status = 422, description = "`validation_failed` or `invalid_body`", body = ErrorBody)))]
#[post("/admins")]
pub async fn add_admin(
    state: web::Data<AppState>,
    user: Require<perm::AdminManage>,
    ip: ClientIp,
    body: web::Json<AddAdminRequest>,
) -> ApiResult<HttpResponse> {
    let AddAdminRequest { username, email, password, role } = body.into_inner();
    let new =
        NewAdmin { username: username.trim().to_owned(), email: email.trim().to_owned(), password, role };
    let account = service::add_admin(&state, Actor::new(&user, ip), new).await?;
    Ok(HttpResponse::Created().json(AccountView::from(account)))
}

/// An administrator change; absent fields stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAdminRequest {
    /// `admin` or `staff`: replaces the current one.
    pub role: Option<String>,
    /// `active` or `frozen` (freezing ends every session).
    pub status: Option<String>,
}

/// Changes an administrator's role or status.
#[utoipa::path(patch, path = "/api/system/admins/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")), request_body = UpdateAdminRequest, responses(
    (status = 200, body = AccountView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `admin.manage`", body = ErrorBody),
    (status = 404, description = "no such administrator", body = ErrorBody),
    (status = 409, description = "`invalid_state`: not on your own account", body = ErrorBody),
    (status = 422, description = "`validation_failed` or `invalid_body`", body = ErrorBody)))]
#[patch("/admins/{id}")]
pub async fn update_admin(
    state: web::Data<AppState>,
    user: Require<perm::AdminManage>,
    ip: ClientIp,
    id: web::Path<i64>,
    body: web::Json<UpdateAdminRequest>,
) -> ApiResult<HttpResponse> {
    let UpdateAdminRequest { role, status } = body.into_inner();
    let account = service::update_admin(&state, Actor::new(&user, ip), id.into_inner(), role, status).await?;
    Ok(HttpResponse::Ok().json(AccountView::from(account)))
}

/// Removes an administrator: the admin/staff roles go and every session ends.
#[utoipa::path(delete, path = "/api/system/admins/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")), responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `admin.manage`", body = ErrorBody),
    (status = 404, description = "no such administrator", body = ErrorBody),
    (status = 409, description = "`invalid_state`: not your own account", body = ErrorBody)))]
#[delete("/admins/{id}")]
pub async fn delete_admin(
    state: web::Data<AppState>,
    user: Require<perm::AdminManage>,
    ip: ClientIp,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    service::delete_admin(&state, Actor::new(&user, ip), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Filters and page of the member list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MemberQuery {
    /// `unverified`, `active` or `frozen`.
    pub status: Option<String>,
    /// Case-insensitive substring of the username or email (at most 64 characters).
    pub q: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// Longest search substring.
const QUERY_MAX_CHARS: usize = 64;

/// Accounts, oldest first, filtered.
#[utoipa::path(get, path = "/api/system/members", tag = "admin", security(("bearer" = [])), params(MemberQuery),
    responses(
    (status = 200, body = Page<AccountView>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `member.read`", body = ErrorBody)))]
#[get("/members")]
pub async fn list_members(
    state: web::Data<AppState>,
    _user: Require<perm::MemberRead>,
    query: web::Query<MemberQuery>,
) -> ApiResult<HttpResponse> {
    let paging = Paging::new(query.page, query.per_page)?;
    if !matches!(query.status.as_deref(), None | Some("unverified" | "active" | "frozen")) {
        return Err(
            ApiError::new(ErrorCode::InvalidQuery).with_message("status is unverified, active or frozen")
        );
    }
    if query.q.as_ref().is_some_and(|q| q.chars().count() > QUERY_MAX_CHARS) {
        return Err(ApiError::new(ErrorCode::InvalidQuery).with_message("q is at most 64 characters"));
    }
    let filter = MemberFilter {
        status: query.status.as_deref(),
        q: query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()),
        created_from: query.created_from,
        created_to: query.created_to,
    };
    let client = state.db.get().await?;
    let (rows, total) = store::list_members(&client, &filter, paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(rows, total).map(AccountView::from)))
}

/// One account.
#[utoipa::path(get, path = "/api/system/members/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")), responses(
    (status = 200, body = AccountView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `member.read`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/members/{id}")]
pub async fn get_member(
    state: web::Data<AppState>,
    _user: Require<perm::MemberRead>,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    let account = store::find_account(&client, id.into_inner())
        .await?
        .ok_or(ApiError::new(ErrorCode::NotFound).with_message("no such account"))?;
    Ok(HttpResponse::Ok().json(AccountView::from(account)))
}

/// Changes a member's profile (same fields and rules as `PATCH /api/me`).
#[utoipa::path(patch, path = "/api/system/members/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")), request_body = ProfileUpdate, responses(
    (status = 200, body = AccountView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `member.manage` (and `admin.manage` for admin/staff)", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 422, description = "`validation_failed` or `invalid_body`", body = ErrorBody)))]
#[patch("/members/{id}")]
pub async fn update_member(
    state: web::Data<AppState>,
    user: Require<perm::MemberManage>,
    ip: ClientIp,
    id: web::Path<i64>,
    body: web::Json<ProfileUpdate>,
) -> ApiResult<HttpResponse> {
    let patch = body.into_inner().into();
    let account = service::update_member(&state, Actor::new(&user, ip), id.into_inner(), &patch).await?;
    Ok(HttpResponse::Ok().json(AccountView::from(account)))
}

/// Freezes an account: it cannot log in and its tokens stop working at once.
#[utoipa::path(post, path = "/api/system/members/{id}/freeze", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")), responses(
    (status = 200, body = AccountView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `member.manage` (and `admin.manage` for admin/staff)", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: not your own account", body = ErrorBody)))]
#[post("/members/{id}/freeze")]
pub async fn freeze_member(
    state: web::Data<AppState>,
    user: Require<perm::MemberManage>,
    ip: ClientIp,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let account = service::set_frozen(&state, Actor::new(&user, ip), id.into_inner(), true).await?;
    Ok(HttpResponse::Ok().json(AccountView::from(account)))
}

/// Lifts a freeze (back to `active`, or `unverified` if the email is not verified).
#[utoipa::path(post, path = "/api/system/members/{id}/unfreeze", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")), responses(
    (status = 200, body = AccountView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `member.manage` (and `admin.manage` for admin/staff)", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: not your own account", body = ErrorBody)))]
#[post("/members/{id}/unfreeze")]
pub async fn unfreeze_member(
    state: web::Data<AppState>,
    user: Require<perm::MemberManage>,
    ip: ClientIp,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let account = service::set_frozen(&state, Actor::new(&user, ip), id.into_inner(), false).await?;
    Ok(HttpResponse::Ok().json(AccountView::from(account)))
}
