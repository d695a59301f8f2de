//! The public category tree at `GET /api/categories`, and its management
//! under `/api/system/categories` (`catalog.manage`).

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::service::{self, CategoryFields, CategoryNode};
use super::store::CategoryRow;
use crate::audit::Actor;
use crate::auth::{perm, ClientIp, Require};
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;
use crate::validate;

/// Mounts the public tree.
pub fn configure_public(cfg: &mut web::ServiceConfig) {
    cfg.service(category_tree);
}

/// Mounts the category management routes (inside the `/api/system` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create_category).service(update_category).service(delete_category);
}

type CatalogManager = Require<perm::CatalogManage>;

/// A category as operators edit it.
#[derive(Serialize, ToSchema)]
pub struct CategoryView {
    pub id: i64,
    /// Null: a root category.
    pub parent_id: Option<i64>,
    pub name: String,
    /// Lower comes first among siblings.
    pub sort_order: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<CategoryRow> for CategoryView {
    fn from(row: CategoryRow) -> Self {
        Self {
            id: row.id,
            parent_id: row.parent_id,
            name: row.name,
            sort_order: row.sort_order,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// One category of the public tree.
#[derive(Serialize, ToSchema)]
pub struct CategoryTreeNode {
    pub id: i64,
    pub name: String,
    pub sort_order: i32,
    /// Subcategories, by sort order then id.
    #[schema(no_recursion)]
    pub children: Vec<CategoryTreeNode>,
}

impl From<CategoryNode> for CategoryTreeNode {
    fn from(node: CategoryNode) -> Self {
        Self {
            id: node.category.id,
            name: node.category.name,
            sort_order: node.category.sort_order,
            children: node.children.into_iter().map(Self::from).collect(),
        }
    }
}

/// The whole category tree, nested; siblings by sort order then id.
#[utoipa::path(get, path = "/api/categories", tag = "catalog", responses((status = 200, body = [CategoryTreeNode])))]
#[get("/api/categories")]
pub async fn category_tree(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let tree = service::tree(&state).await?;
    Ok(HttpResponse::Ok().json(tree.into_iter().map(CategoryTreeNode::from).collect::<Vec<_>>()))
}

/// A new category.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCategoryRequest {
    /// 1-60 characters, unique among its siblings (ignoring case).
    pub name: String,
    /// Null or absent: a root category.
    pub parent_id: Option<i64>,
    /// Default 0; lower comes first.
    pub sort_order: Option<i32>,
}

/// Creates a category.
#[utoipa::path(post, path = "/api/system/categories", tag = "catalog", security(("bearer" = [])),
    request_body = CreateCategoryRequest, responses(
    (status = 201, body = CategoryView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `catalog.manage`", body = ErrorBody),
    (status = 409, description = "`conflict`: a sibling has that name", body = ErrorBody),
    (status = 422, description = "`validation_failed` (name, parent_id not_found) or `invalid_body`", body = ErrorBody)))]
#[post("/categories")]
pub async fn create_category(
    state: web::Data<AppState>,
    user: CatalogManager,
    ip: ClientIp,
    body: web::Json<CreateCategoryRequest>,
) -> ApiResult<HttpResponse> {
    let CreateCategoryRequest { name, parent_id, sort_order } = body.into_inner();
    let fields = CategoryFields { parent_id: Some(parent_id), name: Some(name), sort_order };
    let category = service::create(&state, Actor::new(&user, ip), fields).await?;
    Ok(HttpResponse::Created().json(CategoryView::from(category)))
}

/// A category change; absent fields stay, `"parent_id": null` moves it to the root.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCategoryRequest {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "validate::nullable")]
    #[schema(value_type = Option<i64>)]
    pub parent_id: Option<Option<i64>>,
    pub sort_order: Option<i32>,
}

/// Renames, moves or reorders a category.
#[utoipa::path(patch, path = "/api/system/categories/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Category id")), request_body = UpdateCategoryRequest, responses(
    (status = 200, body = CategoryView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `catalog.manage`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`conflict`: a sibling has that name", body = ErrorBody),
    (status = 422, description = "`validation_failed` (name, parent_id not_found or cycle) or `invalid_body`", body = ErrorBody)))]
#[patch("/categories/{id}")]
pub async fn update_category(
    state: web::Data<AppState>,
    user: CatalogManager,
    ip: ClientIp,
    id: web::Path<i64>,
    body: web::Json<UpdateCategoryRequest>,
) -> ApiResult<HttpResponse> {
    let UpdateCategoryRequest { name, parent_id, sort_order } = body.into_inner();
    let fields = CategoryFields { parent_id, name, sort_order };
    let category = service::update(&state, Actor::new(&user, ip), id.into_inner(), fields).await?;
    Ok(HttpResponse::Ok().json(CategoryView::from(category)))
}

/// Deletes a category without subcategories or products.
#[utoipa::path(delete, path = "/api/system/categories/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Category id")), responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `catalog.manage`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: it still has subcategories or products", body = ErrorBody)))]
#[delete("/categories/{id}")]
pub async fn delete_category(
    state: web::Data<AppState>,
    user: CatalogManager,
    ip: ClientIp,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    service::delete(&state, Actor::new(&user, ip), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
