//! `/api/system/{permissions,roles,groups,users/{id}/roles}`: roles, groups
//! and grants. Every endpoint needs `role.manage`; touching `admin` or
//! `staff` also needs `admin.manage`.

use actix_web::{delete, get, patch, post, put, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::service::{self, GroupFields, RoleFields};
use super::store::{self, GroupRow, MemberRow, RoleRow};
use crate::audit::Actor;
use crate::auth::{perm, ClientIp, Require};
use crate::error::{ApiResult, ErrorBody};
use crate::page::{Page, PageQuery};
use crate::state::AppState;

/// Mounts the RBAC routes (inside the `/api/system` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_permissions)
        .service(list_roles)
        .service(create_role)
        .service(update_role)
        .service(delete_role)
        .service(grant_user_role)
        .service(revoke_user_role)
        .service(list_groups)
        .service(create_group)
        .service(update_group)
        .service(delete_group)
        .service(list_group_members)
        .service(add_group_member)
        .service(remove_group_member)
        .service(grant_group_role)
        .service(revoke_group_role);
}

type RoleManager = Require<perm::RoleManage>;

/// Every permission name a role may hold.
#[utoipa::path(get, path = "/api/system/permissions", tag = "rbac", security(("bearer" = [])), responses(
    (status = 200, body = [String]),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage`", body = ErrorBody)))]
#[get("/permissions")]
pub async fn list_permissions(_user: RoleManager) -> HttpResponse {
    HttpResponse::Ok().json(perm::ALL)
}

/// A role and its permissions.
#[derive(Serialize, ToSchema)]
pub struct RoleView {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Built-in roles cannot be renamed or deleted.
    pub builtin: bool,
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RoleRow> for RoleView {
    fn from(row: RoleRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            description: row.description,
            builtin: row.builtin,
            permissions: row.permissions,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Roles by id.
#[utoipa::path(get, path = "/api/system/roles", tag = "rbac", security(("bearer" = [])), params(PageQuery),
    responses(
    (status = 200, body = Page<RoleView>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage`", body = ErrorBody)))]
#[get("/roles")]
pub async fn list_roles(
    state: web::Data<AppState>,
    _user: RoleManager,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let paging = query.paging()?;
    let client = state.db.get().await?;
    let (rows, total) = store::list_roles(&client, paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(rows, total).map(RoleView::from)))
}

/// A new custom role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleRequest {
    /// 2-32 characters: lowercase letters, digits, `_`, `-`, `.`; starting with a letter.
    pub name: String,
    /// At most 256 characters.
    #[serde(default)]
    pub description: String,
    /// Names from `GET /api/system/permissions`.
    pub permissions: Vec<String>,
}

/// Creates a custom role.
#[utoipa::path(post, path = "/api/system/roles", tag = "rbac", security(("bearer" = [])),
    request_body = CreateRoleRequest, responses(
    (status = 201, body = RoleView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage`", body = ErrorBody),
    (status = 409, description = "`conflict`: the name is taken", body = ErrorBody),
    (status = 422, description = "`validation_failed` (name, description, permissions) or `invalid_body`", body = ErrorBody)))]
#[post("/roles")]
pub async fn create_role(
    state: web::Data<AppState>,
    user: RoleManager,
    ip: ClientIp,
    body: web::Json<CreateRoleRequest>,
) -> ApiResult<HttpResponse> {
    let CreateRoleRequest { name, description, permissions } = body.into_inner();
    let fields =
        RoleFields { name: Some(name), description: Some(description), permissions: Some(permissions) };
    let role = service::create_role(&state, Actor::new(&user, ip), fields).await?;
    Ok(HttpResponse::Created().json(RoleView::from(role)))
}

/// A role change; absent fields stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleRequest {
    /// Not for built-in roles.
    pub name: Option<String>,
    pub description: Option<String>,
    /// Replaces the whole set; not for `admin`.
    pub permissions: Option<Vec<String>>,
}

/// Changes a role; holders' permissions change on every node at once.
#[utoipa::path(patch, path = "/api/system/roles/{id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Role id")), request_body = UpdateRoleRequest, responses(
    (status = 200, body = RoleView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage` (and `admin.manage` for admin/staff)", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`conflict` (name taken) or `invalid_state` (built-in rename, admin permissions)", body = ErrorBody),
    (status = 422, description = "`validation_failed` or `invalid_body`", body = ErrorBody)))]
#[patch("/roles/{id}")]
pub async fn update_role(
    state: web::Data<AppState>,
    user: RoleManager,
    ip: ClientIp,
    id: web::Path<i64>,
    body: web::Json<UpdateRoleRequest>,
) -> ApiResult<HttpResponse> {
    let UpdateRoleRequest { name, description, permissions } = body.into_inner();
    let fields = RoleFields { name, description, permissions };
    let role = service::update_role(&state, Actor::new(&user, ip), id.into_inner(), fields).await?;
    Ok(HttpResponse::Ok().json(RoleView::from(role)))
}

/// Deletes a custom role.
#[utoipa::path(delete, path = "/api/system/roles/{id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Role id")), responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: built-in roles cannot be deleted", body = ErrorBody)))]
#[delete("/roles/{id}")]
pub async fn delete_role(
    state: web::Data<AppState>,
    user: RoleManager,
    ip: ClientIp,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    service::delete_role(&state, Actor::new(&user, ip), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Grants a role to a user.
#[utoipa::path(put, path = "/api/system/users/{id}/roles/{role_id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id"), ("role_id" = i64, Path, description = "Role id")),
    responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage` (and `admin.manage` for admin/staff)", body = ErrorBody),
    (status = 404, description = "no such user or role", body = ErrorBody)))]
#[put("/users/{id}/roles/{role_id}")]
pub async fn grant_user_role(
    state: web::Data<AppState>,
    user: RoleManager,
    ip: ClientIp,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    let (user_id, role_id) = path.into_inner();
    service::set_user_role(&state, Actor::new(&user, ip), user_id, role_id, true).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revokes a role granted directly to a user.
#[utoipa::path(delete, path = "/api/system/users/{id}/roles/{role_id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id"), ("role_id" = i64, Path, description = "Role id")),
    responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage` (and `admin.manage` for admin/staff)", body = ErrorBody),
    (status = 404, description = "no such user or role, or not held", body = ErrorBody)))]
#[delete("/users/{id}/roles/{role_id}")]
pub async fn revoke_user_role(
    state: web::Data<AppState>,
    user: RoleManager,
    ip: ClientIp,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    let (user_id, role_id) = path.into_inner();
    service::set_user_role(&state, Actor::new(&user, ip), user_id, role_id, false).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A group with its roles.
#[derive(Serialize, ToSchema)]
pub struct GroupView {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Names of the roles every member holds through the group.
    pub roles: Vec<String>,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
}

impl From<GroupRow> for GroupView {
    fn from(row: GroupRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            description: row.description,
            roles: row.roles,
            member_count: row.member_count,
            created_at: row.created_at,
        }
    }
}

/// Groups by id.
#[utoipa::path(get, path = "/api/system/groups", tag = "rbac", security(("bearer" = [])), params(PageQuery),
    responses(
    (status = 200, body = Page<GroupView>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage`", body = ErrorBody)))]
#[get("/groups")]
pub async fn list_groups(
    state: web::Data<AppState>,
    _user: RoleManager,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let paging = query.paging()?;
    let client = state.db.get().await?;
    let (rows, total) = store::list_groups(&client, paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(rows, total).map(GroupView::from)))
}

/// A new group.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    /// 1-32 characters.
    pub name: String,
    /// At most 256 characters.
    #[serde(default)]
    pub description: String,
}

/// Creates a group.
#[utoipa::path(post, path = "/api/system/groups", tag = "rbac", security(("bearer" = [])),
    request_body = CreateGroupRequest, responses(
    (status = 201, body = GroupView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage`", body = ErrorBody),
    (status = 409, description = "`conflict`: the name is taken", body = ErrorBody),
    (status = 422, description = "`validation_failed` or `invalid_body`", body = ErrorBody)))]
#[post("/groups")]
pub async fn create_group(
    state: web::Data<AppState>,
    user: RoleManager,
    ip: ClientIp,
    body: web::Json<CreateGroupRequest>,
) -> ApiResult<HttpResponse> {
    let CreateGroupRequest { name, description } = body.into_inner();
    let fields = GroupFields { name: Some(name), description: Some(description) };
    let group = service::create_group(&state, Actor::new(&user, ip), fields).await?;
    Ok(HttpResponse::Created().json(GroupView::from(group)))
}

/// A group change; absent fields stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroupRequest {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// Renames or redescribes a group.
#[utoipa::path(patch, path = "/api/system/groups/{id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Group id")), request_body = UpdateGroupRequest, responses(
    (status = 200, body = GroupView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`conflict`: the name is taken", body = ErrorBody),
    (status = 422, description = "`validation_failed` or `invalid_body`", body = ErrorBody)))]
#[patch("/groups/{id}")]
pub async fn update_group(
    state: web::Data<AppState>,
    user: RoleManager,
    ip: ClientIp,
    id: web::Path<i64>,
    body: web::Json<UpdateGroupRequest>,
) -> ApiResult<HttpResponse> {
    let UpdateGroupRequest { name, description } = body.into_inner();
    let group = service::update_group(
        &state,
        Actor::new(&user, ip),
        id.into_inner(),
        GroupFields { name, description },
    )
    .await?;
    Ok(HttpResponse::Ok().json(GroupView::from(group)))
}

/// Deletes a group; its members lose the roles it gave them.
#[utoipa::path(delete, path = "/api/system/groups/{id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Group id")), responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage` (and `admin.manage` if it grants admin/staff)", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[delete("/groups/{id}")]
pub async fn delete_group(
    state: web::Data<AppState>,
    user: RoleManager,
    ip: ClientIp,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    service::delete_group(&state, Actor::new(&user, ip), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A member of a group.
#[derive(Serialize, ToSchema)]
pub struct GroupMember {
    pub user_id: i64,
    pub username: String,
}

impl From<MemberRow> for GroupMember {
    fn from(row: MemberRow) -> Self {
        Self { user_id: row.user_id, username: row.username }
    }
}

/// A group's members by user id.
#[utoipa::path(get, path = "/api/system/groups/{id}/members", tag = "rbac", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Group id"), PageQuery), responses(
    (status = 200, body = Page<GroupMember>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage`", body = ErrorBody)))]
#[get("/groups/{id}/members")]
pub async fn list_group_members(
    state: web::Data<AppState>,
    _user: RoleManager,
    id: web::Path<i64>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let paging = query.paging()?;
    let client = state.db.get().await?;
    let (rows, total) = store::list_group_members(&client, id.into_inner(), paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(rows, total).map(GroupMember::from)))
}

/// Adds a user to a group.
#[utoipa::path(put, path = "/api/system/groups/{id}/members/{user_id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Group id"), ("user_id" = i64, Path, description = "User id")),
    responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage` (and `admin.manage` if it grants admin/staff)", body = ErrorBody),
    (status = 404, description = "no such group or user", body = ErrorBody)))]
#[put("/groups/{id}/members/{user_id}")]
pub async fn add_group_member(
    state: web::Data<AppState>,
    user: RoleManager,
    ip: ClientIp,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    let (group_id, user_id) = path.into_inner();
    service::set_group_member(&state, Actor::new(&user, ip), group_id, user_id, true).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Removes a user from a group.
#[utoipa::path(delete, path = "/api/system/groups/{id}/members/{user_id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Group id"), ("user_id" = i64, Path, description = "User id")),
    responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage` (and `admin.manage` if it grants admin/staff)", body = ErrorBody),
    (status = 404, description = "no such group or user, or not a member", body = ErrorBody)))]
#[delete("/groups/{id}/members/{user_id}")]
pub async fn remove_group_member(
    state: web::Data<AppState>,
    user: RoleManager,
    ip: ClientIp,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    let (group_id, user_id) = path.into_inner();
    service::set_group_member(&state, Actor::new(&user, ip), group_id, user_id, false).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Grants a role to every member of a group.
#[utoipa::path(put, path = "/api/system/groups/{id}/roles/{role_id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Group id"), ("role_id" = i64, Path, description = "Role id")),
    responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage` (and `admin.manage` for admin/staff)", body = ErrorBody),
    (status = 404, description = "no such group or role", body = ErrorBody)))]
#[put("/groups/{id}/roles/{role_id}")]
pub async fn grant_group_role(
    state: web::Data<AppState>,
    user: RoleManager,
    ip: ClientIp,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    let (group_id, role_id) = path.into_inner();
    service::set_group_role(&state, Actor::new(&user, ip), group_id, role_id, true).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revokes a role of a group.
#[utoipa::path(delete, path = "/api/system/groups/{id}/roles/{role_id}", tag = "rbac", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Group id"), ("role_id" = i64, Path, description = "Role id")),
    responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `role.manage` (and `admin.manage` for admin/staff)", body = ErrorBody),
    (status = 404, description = "no such group or role, or not held", body = ErrorBody)))]
#[delete("/groups/{id}/roles/{role_id}")]
pub async fn revoke_group_role(
    state: web::Data<AppState>,
    user: RoleManager,
    ip: ClientIp,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    let (group_id, role_id) = path.into_inner();
    service::set_group_role(&state, Actor::new(&user, ip), group_id, role_id, false).await?;
    Ok(HttpResponse::NoContent().finish())
}
