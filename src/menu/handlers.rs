//! Menu CRUD under `/api/system/menus` (`menu.manage`), the caller's own
//! tree at `GET /api/auth/menus`, and `POST /api/auth/check`.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::service::{self, MenuFields, MenuNode};
use super::store::{self, MenuRow};
use crate::audit::Actor;
use crate::auth::{perm, AuthUser, ClientIp, Require};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::page::{Page, PageQuery};
use crate::state::AppState;
use crate::validate;

/// Mounts the menu administration routes (inside the `/api/system` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_menus).service(create_menu).service(get_menu).service(update_menu).service(delete_menu);
}

/// Mounts the caller's own menu and permission check (`/api/auth/...`).
pub fn configure_own(cfg: &mut web::ServiceConfig) {
    cfg.service(my_menus).service(check_permission);
}

type MenuManager = Require<perm::MenuManage>;

/// A menu entry as admins edit it.
#[derive(Serialize, ToSchema)]
pub struct MenuView {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub description: String,
    pub uri: String,
    pub shown: bool,
    /// `enabled` or `disabled`.
    pub status: String,
    /// Null: every signed-in account may see it.
    pub required_permission: Option<String>,
    pub sort_order: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<MenuRow> for MenuView {
    fn from(row: MenuRow) -> Self {
        Self {
            id: row.id,
            parent_id: row.parent_id,
            name: row.name,
            description: row.description,
            uri: row.uri,
            shown: row.shown,
            status: row.status,
            required_permission: row.required_permission,
            sort_order: row.sort_order,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Every entry, flat: roots first, then by sort order.
#[utoipa::path(get, path = "/api/system/menus", tag = "menu", security(("bearer" = [])), params(PageQuery),
    responses(
    (status = 200, body = Page<MenuView>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `menu.manage`", body = ErrorBody)))]
#[get("/menus")]
pub async fn list_menus(
    state: web::Data<AppState>,
    _user: MenuManager,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let paging = query.paging()?;
    let client = state.db.get().await?;
    let (rows, total) = store::list(&client, paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(rows, total).map(MenuView::from)))
}

/// One entry.
#[utoipa::path(get, path = "/api/system/menus/{id}", tag = "menu", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Menu id")), responses(
    (status = 200, body = MenuView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `menu.manage`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/menus/{id}")]
pub async fn get_menu(
    state: web::Data<AppState>,
    _user: MenuManager,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    let menu = store::find(&client, id.into_inner()).await?.ok_or(ApiError::new(ErrorCode::NotFound))?;
    Ok(HttpResponse::Ok().json(MenuView::from(menu)))
}

/// A new menu entry.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMenuRequest {
    pub parent_id: Option<i64>,
    /// 1-64 characters.
    pub name: String,
    /// At most 256 characters.
    pub description: Option<String>,
    /// At most 256 characters.
    pub uri: Option<String>,
    /// Default true.
    pub shown: Option<bool>,
    /// `enabled` (default) or `disabled`.
    pub status: Option<String>,
    /// A name from `GET /api/system/permissions`, or null.
    pub required_permission: Option<String>,
    /// Default 0; lower comes first.
    pub sort_order: Option<i32>,
}

/// Creates an entry.
#[utoipa::path(post, path = "/api/system/menus", tag = "menu", security(("bearer" = [])),
    request_body = CreateMenuRequest, responses(
    (status = 201, body = MenuView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `menu.manage`", body = ErrorBody),
    (status = 422, description = "`validation_failed` (e.g. parent_id not_found) or `invalid_body`", body = ErrorBody)))]
#[post("/menus")]
pub async fn create_menu(
    state: web::Data<AppState>,
    user: MenuManager,
    ip: ClientIp,
    body: web::Json<CreateMenuRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let fields = MenuFields {
        parent_id: Some(b.parent_id),
        name: Some(b.name),
        description: b.description,
        uri: b.uri,
        shown: b.shown,
        status: b.status,
        required_permission: Some(b.required_permission),
        sort_order: b.sort_order,
    };
    let menu = service::create(&state, Actor::new(&user, ip), fields).await?;
    Ok(HttpResponse::Created().json(MenuView::from(menu)))
}

/// A menu change; absent fields stay, `null` clears `parent_id` or `required_permission`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMenuRequest {
    #[serde(default, deserialize_with = "validate::nullable")]
    #[schema(value_type = Option<i64>)]
    pub parent_id: Option<Option<i64>>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub uri: Option<String>,
    pub shown: Option<bool>,
    pub status: Option<String>,
    #[serde(default, deserialize_with = "validate::nullable")]
    #[schema(value_type = Option<String>)]
    pub required_permission: Option<Option<String>>,
    pub sort_order: Option<i32>,
}

/// Changes an entry.
#[utoipa::path(patch, path = "/api/system/menus/{id}", tag = "menu", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Menu id")), request_body = UpdateMenuRequest, responses(
    (status = 200, body = MenuView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `menu.manage`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 422, description = "`validation_failed` (e.g. parent_id cycle) or `invalid_body`", body = ErrorBody)))]
#[patch("/menus/{id}")]
pub async fn update_menu(
    state: web::Data<AppState>,
    user: MenuManager,
    ip: ClientIp,
    id: web::Path<i64>,
    body: web::Json<UpdateMenuRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let fields = MenuFields {
        parent_id: b.parent_id,
        name: b.name,
        description: b.description,
        uri: b.uri,
        shown: b.shown,
        status: b.status,
        required_permission: b.required_permission,
        sort_order: b.sort_order,
    };
    let menu = service::update(&state, Actor::new(&user, ip), id.into_inner(), fields).await?;
    Ok(HttpResponse::Ok().json(MenuView::from(menu)))
}

/// Deletes an entry and everything under it.
#[utoipa::path(delete, path = "/api/system/menus/{id}", tag = "menu", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Menu id")), responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `menu.manage`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[delete("/menus/{id}")]
pub async fn delete_menu(
    state: web::Data<AppState>,
    user: MenuManager,
    ip: ClientIp,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    service::delete(&state, Actor::new(&user, ip), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One entry of the caller's menu tree.
#[derive(Serialize, ToSchema)]
pub struct MenuTreeNode {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub uri: String,
    pub sort_order: i32,
    #[schema(no_recursion)]
    pub children: Vec<MenuTreeNode>,
}

impl From<MenuNode> for MenuTreeNode {
    fn from(node: MenuNode) -> Self {
        Self {
            id: node.menu.id,
            name: node.menu.name,
            description: node.menu.description,
            uri: node.menu.uri,
            sort_order: node.menu.sort_order,
            children: node.children.into_iter().map(Self::from).collect(),
        }
    }
}

/// The caller's authorised menu tree, nested and in sort order.
#[utoipa::path(get, path = "/api/auth/menus", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = [MenuTreeNode]),
    (status = 401, body = ErrorBody)))]
#[get("/api/auth/menus")]
pub async fn my_menus(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    let tree = service::tree_for(&state, &user).await?;
    Ok(HttpResponse::Ok().json(tree.into_iter().map(MenuTreeNode::from).collect::<Vec<_>>()))
}

/// A permission to check.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// e.g. `member.manage`; unknown names are simply not held.
    pub permission: String,
}

/// Whether the caller holds a permission.
#[derive(Serialize, ToSchema)]
pub struct CheckResponse {
    pub allowed: bool,
}

/// Answers whether the caller holds a permission.
#[utoipa::path(post, path = "/api/auth/check", tag = "auth", security(("bearer" = [])),
    request_body = CheckRequest, responses(
    (status = 200, body = CheckResponse),
    (status = 401, body = ErrorBody),
    (status = 422, description = "`invalid_body`", body = ErrorBody)))]
#[post("/api/auth/check")]
pub async fn check_permission(user: AuthUser, body: web::Json<CheckRequest>) -> HttpResponse {
    HttpResponse::Ok().json(CheckResponse { allowed: user.has(&body.permission) })
}
