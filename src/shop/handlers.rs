//! Shop endpoints for three audiences:
//! - members: apply (`POST /api/shops`), see their shops and invitations,
//!   accept or decline an invitation, read an active shop's public page;
//! - staff: `/api/merchant/shops/{shop_id}` profile and staff, checked
//!   against their role in that shop;
//! - operators: `/api/system/shops` review queue and decisions.

use actix_web::{delete, get, post, put, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access::{self, Intent, ShopPermission, ShopRole};
use super::service::{self, ProfileInput, Review, RoleInput};
use super::store::{self, MemberRow, ShopFilter, ShopRow, ShopStatus};
use crate::audit::Actor;
use crate::auth::{perm, AuthUser, ClientIp, Require};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::page::{Page, Paging};
use crate::state::AppState;

/// Prefix of every merchant (shop staff) endpoint.
pub const MERCHANT_SCOPE: &str = "/api/merchant/shops/{shop_id}";

/// Mounts the member-side routes (absolute paths).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(apply_for_shop)
        .service(my_shops)
        .service(accept_invitation)
        .service(decline_invitation)
        .service(shop_page);
}

/// Mounts the staff routes (inside [`MERCHANT_SCOPE`]).
pub fn configure_merchant(cfg: &mut web::ServiceConfig) {
    cfg.service(get_own_shop)
        .service(update_own_shop)
        .service(list_staff)
        .service(invite_staff)
        .service(change_staff_role)
        .service(remove_staff);
}

/// Mounts the operator routes (inside the `/api/system` scope).
pub fn configure_system(cfg: &mut web::ServiceConfig) {
    cfg.service(list_shops)
        .service(get_shop)
        .service(approve_shop)
        .service(reject_shop)
        .service(suspend_shop)
        .service(reinstate_shop);
}

/// A shop as its staff and the operators see it.
#[derive(Serialize, ToSchema)]
pub struct ShopView {
    pub id: i64,
    pub owner_id: i64,
    pub name: String,
    pub description: String,
    pub logo_url: Option<String>,
    pub contact_name: String,
    pub contact_phone: String,
    pub return_address: String,
    /// `pending`, `active`, `rejected` or `suspended`.
    pub status: String,
    /// Why it was rejected or suspended.
    pub status_reason: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ShopRow> for ShopView {
    fn from(row: ShopRow) -> Self {
        Self {
            id: row.id,
            owner_id: row.owner_id,
            name: row.name,
            description: row.description,
            logo_url: row.logo_url,
            contact_name: row.contact_name,
            contact_phone: row.contact_phone,
            return_address: row.return_address,
            status: row.status,
            status_reason: row.status_reason,
            reviewed_at: row.reviewed_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// An active shop as shoppers see it (no contact details).
#[derive(Serialize, ToSchema)]
pub struct ShopPage {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub logo_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A shop's profile, to apply with or to replace the current one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShopProfileRequest {
    /// 2-60 characters, unique among shops.
    pub name: String,
    /// Up to 2000 characters.
    #[serde(default)]
    pub description: String,
    /// An http(s) URL.
    pub logo_url: Option<String>,
    /// 1-60 characters.
    pub contact_name: String,
    pub contact_phone: String,
    /// Where returns are sent; 5-300 characters.
    pub return_address: String,
}

impl From<ShopProfileRequest> for ProfileInput {
    fn from(body: ShopProfileRequest) -> Self {
        Self {
            name: body.name,
            description: body.description,
            logo_url: body.logo_url,
            contact_name: body.contact_name,
            contact_phone: body.contact_phone,
            return_address: body.return_address,
        }
    }
}

/// Applies to open a shop. Operators review the application; the applicant
/// follows it in `GET /api/shops/mine`.
#[utoipa::path(post, path = "/api/shops", tag = "shops", security(("bearer" = [])),
    request_body = ShopProfileRequest, responses(
    (status = 201, body = ShopView),
    (status = 401, body = ErrorBody),
    (status = 409, description = "`shop_name_taken` or `application_pending`", body = ErrorBody),
    (status = 422, description = "`validation_failed` or `invalid_body`", body = ErrorBody)))]
#[post("/api/shops")]
pub async fn apply_for_shop(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<ShopProfileRequest>,
) -> ApiResult<HttpResponse> {
    let shop = service::apply(&state, user.user_id, &body.into_inner().into()).await?;
    Ok(HttpResponse::Created().json(ShopView::from(shop)))
}

/// One shop of the caller: their role there, and whether they have accepted.
#[derive(Serialize, ToSchema)]
pub struct MyShop {
    pub shop: ShopView,
    pub role: ShopRole,
    /// What the role grants in this shop.
    pub permissions: Vec<ShopPermission>,
    /// False: an invitation waiting for the caller's answer.
    pub accepted: bool,
}

/// The caller's shops and applications (with their review status) and
/// open invitations, newest first.
#[utoipa::path(get, path = "/api/shops/mine", tag = "shops", security(("bearer" = [])), responses(
    (status = 200, body = Vec<MyShop>),
    (status = 401, body = ErrorBody)))]
#[get("/api/shops/mine")]
pub async fn my_shops(state: web::Data<AppState>, user: AuthUser) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    let shops: Vec<MyShop> = store::memberships(&client, user.user_id)
        .await?
        .into_iter()
        .filter_map(|m| {
            let role = ShopRole::parse(&m.role)?;
            let permissions = access::granted(role, m.permissions.as_deref());
            Some(MyShop { shop: m.shop.into(), role, permissions, accepted: m.accepted })
        })
        .collect();
    Ok(HttpResponse::Ok().json(shops))
}

/// Accepts an invitation to a shop's staff.
#[utoipa::path(post, path = "/api/shops/{shop_id}/invitation", tag = "shops", security(("bearer" = [])),
    params(("shop_id" = i64, Path)), responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 404, description = "no open invitation", body = ErrorBody)))]
#[post("/api/shops/{shop_id}/invitation")]
pub async fn accept_invitation(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    answer_invitation(&state, &user, path.into_inner(), true).await
}

/// Declines an invitation to a shop's staff.
#[utoipa::path(delete, path = "/api/shops/{shop_id}/invitation", tag = "shops", security(("bearer" = [])),
    params(("shop_id" = i64, Path)), responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 404, description = "no open invitation", body = ErrorBody)))]
#[delete("/api/shops/{shop_id}/invitation")]
pub async fn decline_invitation(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    answer_invitation(&state, &user, path.into_inner(), false).await
}

async fn answer_invitation(
    state: &AppState,
    user: &AuthUser,
    shop_id: i64,
    accept: bool,
) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    if !store::answer_invitation(&client, shop_id, user.user_id, accept).await? {
        return Err(ApiError::new(ErrorCode::NotFound).with_message("no open invitation to that shop"));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// An active shop's public page (its products: `GET /api/products?shop_id=`).
#[utoipa::path(get, path = "/api/shops/{shop_id}", tag = "shops", params(("shop_id" = i64, Path)), responses(
    (status = 200, body = ShopPage),
    (status = 404, description = "unknown or not active", body = ErrorBody)))]
#[get("/api/shops/{shop_id}")]
pub async fn shop_page(state: web::Data<AppState>, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    match store::find(&client, path.into_inner()).await? {
        Some(shop) if shop.status == ShopStatus::Active.as_str() => Ok(HttpResponse::Ok().json(ShopPage {
            id: shop.id,
            name: shop.name,
            description: shop.description,
            logo_url: shop.logo_url,
            created_at: shop.created_at,
        })),
        _ => Err(ApiError::new(ErrorCode::NotFound).with_message("no such shop")),
    }
}

/// The shop, for any of its staff (whatever its status).
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}", tag = "merchant", security(("bearer" = [])),
    params(("shop_id" = i64, Path)), responses(
    (status = 200, body = ShopView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: not staff of this shop", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("")]
pub async fn get_own_shop(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let shop_id = path.into_inner();
    let client = state.db.get().await?;
    access::staff(&client, user.user_id, shop_id).await?;
    let shop = store::find(&client, shop_id).await?.ok_or(ErrorCode::NotFound)?;
    Ok(HttpResponse::Ok().json(ShopView::from(shop)))
}

/// Replaces the shop's profile (`profile.manage`; the shop must be active).
#[utoipa::path(put, path = "/api/merchant/shops/{shop_id}", tag = "merchant", security(("bearer" = [])),
    params(("shop_id" = i64, Path)), request_body = ShopProfileRequest, responses(
    (status = 200, body = ShopView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 409, description = "`shop_name_taken`", body = ErrorBody),
    (status = 422, description = "`validation_failed` or `invalid_body`", body = ErrorBody)))]
#[put("")]
pub async fn update_own_shop(
    state: web::Data<AppState>,
    user: AuthUser,
    ip: ClientIp,
    path: web::Path<i64>,
    body: web::Json<ShopProfileRequest>,
) -> ApiResult<HttpResponse> {
    let access = access::require_in(
        &state.db,
        user.user_id,
        path.into_inner(),
        ShopPermission::ProfileManage,
        Intent::Write,
    )
    .await?;
    let shop =
        service::update_profile(&state, Actor::new(&user, ip), &access, &body.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(ShopView::from(shop)))
}

/// A member of a shop's staff, or an open invitation.
#[derive(Serialize, ToSchema)]
pub struct StaffMember {
    pub user_id: i64,
    pub username: String,
    pub role: ShopRole,
    pub permissions: Vec<ShopPermission>,
    pub invited_by: Option<i64>,
    /// Null while the invitation is open.
    pub accepted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl StaffMember {
    fn from_row(row: MemberRow) -> Option<Self> {
        let role = ShopRole::parse(&row.role)?;
        Some(Self {
            user_id: row.user_id,
            username: row.username,
            role,
            permissions: access::granted(role, row.permissions.as_deref()),
            invited_by: row.invited_by,
            accepted_at: row.accepted_at,
            created_at: row.created_at,
        })
    }
}

fn staff_member(row: MemberRow) -> ApiResult<StaffMember> {
    StaffMember::from_row(row).ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown shop role stored")))
}

/// The shop's staff and open invitations (`staff.manage`).
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/staff", tag = "merchant", security(("bearer" = [])),
    params(("shop_id" = i64, Path)), responses(
    (status = 200, body = Vec<StaffMember>),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/staff")]
pub async fn list_staff(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let shop_id = path.into_inner();
    let client = state.db.get().await?;
    access::require(&client, user.user_id, shop_id, ShopPermission::StaffManage, Intent::Read).await?;
    let staff = store::members(&client, shop_id)
        .await?
        .into_iter()
        .map(staff_member)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(staff))
}

/// A role to give: a built-in one, or `custom` with its permissions.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// `manager`, `customer_service`, `warehouse` or `custom` (`owner` is not grantable).
    pub role: ShopRole,
    /// Only for `custom`: the shop permissions it grants.
    pub permissions: Option<Vec<ShopPermission>>,
}

impl From<RoleRequest> for RoleInput {
    fn from(body: RoleRequest) -> Self {
        Self { role: body.role, permissions: body.permissions }
    }
}

/// An invitation to the shop's staff.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// The invitee's username or email.
    pub login: String,
    #[serde(flatten)]
    pub role: RoleRequest,
}

/// Invites an account to the staff (`staff.manage`; the shop must be
/// active). The role applies once the invitee accepts.
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/staff", tag = "merchant", security(("bearer" = [])),
    params(("shop_id" = i64, Path)), request_body = InviteRequest, responses(
    (status = 201, body = StaffMember),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 409, description = "`conflict`: already staff or invited", body = ErrorBody),
    (status = 422, description = "`validation_failed` (login, role, permissions)", body = ErrorBody)))]
#[post("/staff")]
pub async fn invite_staff(
    state: web::Data<AppState>,
    user: AuthUser,
    ip: ClientIp,
    path: web::Path<i64>,
    body: web::Json<InviteRequest>,
) -> ApiResult<HttpResponse> {
    let access = access::require_in(
        &state.db,
        user.user_id,
        path.into_inner(),
        ShopPermission::StaffManage,
        Intent::Write,
    )
    .await?;
    let InviteRequest { login, role } = body.into_inner();
    let member = service::invite(&state, Actor::new(&user, ip), &access, &login, &role.into()).await?;
    Ok(HttpResponse::Created().json(staff_member(member)?))
}

/// Changes a staff member's role (`staff.manage`). The owner's cannot change.
#[utoipa::path(put, path = "/api/merchant/shops/{shop_id}/staff/{user_id}", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("user_id" = i64, Path)),
    request_body = RoleRequest, responses(
    (status = 200, body = StaffMember),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: the owner", body = ErrorBody),
    (status = 422, description = "`validation_failed`", body = ErrorBody)))]
#[put("/staff/{user_id}")]
pub async fn change_staff_role(
    state: web::Data<AppState>,
    user: AuthUser,
    ip: ClientIp,
    path: web::Path<(i64, i64)>,
    body: web::Json<RoleRequest>,
) -> ApiResult<HttpResponse> {
    let (shop_id, member_id) = path.into_inner();
    let access =
        access::require_in(&state.db, user.user_id, shop_id, ShopPermission::StaffManage, Intent::Write)
            .await?;
    let member =
        service::change_role(&state, Actor::new(&user, ip), &access, member_id, &body.into_inner().into())
            .await?;
    Ok(HttpResponse::Ok().json(staff_member(member)?))
}

/// Removes a staff member or withdraws an invitation (`staff.manage`).
#[utoipa::path(delete, path = "/api/merchant/shops/{shop_id}/staff/{user_id}", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("user_id" = i64, Path)), responses(
    (status = 204),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: the owner", body = ErrorBody)))]
#[delete("/staff/{user_id}")]
pub async fn remove_staff(
    state: web::Data<AppState>,
    user: AuthUser,
    ip: ClientIp,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    let (shop_id, member_id) = path.into_inner();
    let access =
        access::require_in(&state.db, user.user_id, shop_id, ShopPermission::StaffManage, Intent::Write)
            .await?;
    service::remove(&state, Actor::new(&user, ip), &access, member_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Filters and page of the operators' shop list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShopQuery {
    /// `pending` (the review queue), `active`, `rejected` or `suspended`.
    pub status: Option<String>,
    /// Part of the name, case-insensitive.
    pub name: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// Shops, oldest first; `?status=pending` is the review queue (`shop.review`).
#[utoipa::path(get, path = "/api/system/shops", tag = "shops", security(("bearer" = [])), params(ShopQuery),
    responses(
    (status = 200, body = Page<ShopView>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `shop.review`", body = ErrorBody)))]
#[get("/shops")]
pub async fn list_shops(
    state: web::Data<AppState>,
    _user: Require<perm::ShopReview>,
    query: web::Query<ShopQuery>,
) -> ApiResult<HttpResponse> {
    let paging = Paging::new(query.page, query.per_page)?;
    if let Some(status) = &query.status {
        if ShopStatus::parse(status).is_none() {
            return Err(ApiError::new(ErrorCode::InvalidQuery)
                .with_message("status is pending, active, rejected or suspended"));
        }
    }
    let filter = ShopFilter { status: query.status.as_deref(), name: query.name.as_deref() };
    let client = state.db.get().await?;
    let (rows, total) = store::list(&client, &filter, paging).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(rows, total).map(ShopView::from)))
}

/// One shop, any status (`shop.review`).
#[utoipa::path(get, path = "/api/system/shops/{shop_id}", tag = "shops", security(("bearer" = [])),
    params(("shop_id" = i64, Path)), responses(
    (status = 200, body = ShopView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `shop.review`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/shops/{shop_id}")]
pub async fn get_shop(
    state: web::Data<AppState>,
    _user: Require<perm::ShopReview>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    let shop = store::find(&client, path.into_inner()).await?.ok_or(ErrorCode::NotFound)?;
    Ok(HttpResponse::Ok().json(ShopView::from(shop)))
}

/// Why a shop is rejected or suspended.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// 1-500 characters; required to reject or suspend.
    pub reason: Option<String>,
}

async fn decide(
    state: web::Data<AppState>,
    user: Require<perm::ShopReview>,
    ip: ClientIp,
    shop_id: i64,
    decision: Review,
    reason: Option<String>,
) -> ApiResult<HttpResponse> {
    let shop = service::review(&state, Actor::new(&user, ip), shop_id, decision, reason.as_deref()).await?;
    Ok(HttpResponse::Ok().json(ShopView::from(shop)))
}

/// Approves a pending application: the shop opens and its owner becomes a merchant.
#[utoipa::path(post, path = "/api/system/shops/{shop_id}/approve", tag = "shops", security(("bearer" = [])),
    params(("shop_id" = i64, Path)), responses(
    (status = 200, body = ShopView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `shop.review`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: not pending", body = ErrorBody)))]
#[post("/shops/{shop_id}/approve")]
pub async fn approve_shop(
    state: web::Data<AppState>,
    user: Require<perm::ShopReview>,
    ip: ClientIp,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    decide(state, user, ip, path.into_inner(), Review::Approve, None).await
}

/// Rejects a pending application with a reason the applicant sees.
#[utoipa::path(post, path = "/api/system/shops/{shop_id}/reject", tag = "shops", security(("bearer" = [])),
    params(("shop_id" = i64, Path)), request_body = ReasonRequest, responses(
    (status = 200, body = ShopView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `shop.review`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: not pending", body = ErrorBody),
    (status = 422, description = "`validation_failed`: reason", body = ErrorBody)))]
#[post("/shops/{shop_id}/reject")]
pub async fn reject_shop(
    state: web::Data<AppState>,
    user: Require<perm::ShopReview>,
    ip: ClientIp,
    path: web::Path<i64>,
    body: web::Json<ReasonRequest>,
) -> ApiResult<HttpResponse> {
    decide(state, user, ip, path.into_inner(), Review::Reject, body.into_inner().reason).await
}

/// Suspends an active shop: its products leave the storefront at once.
#[utoipa::path(post, path = "/api/system/shops/{shop_id}/suspend", tag = "shops", security(("bearer" = [])),
    params(("shop_id" = i64, Path)), request_body = ReasonRequest, responses(
    (status = 200, body = ShopView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `shop.review`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: not active", body = ErrorBody),
    (status = 422, description = "`validation_failed`: reason", body = ErrorBody)))]
#[post("/shops/{shop_id}/suspend")]
pub async fn suspend_shop(
    state: web::Data<AppState>,
    user: Require<perm::ShopReview>,
    ip: ClientIp,
    path: web::Path<i64>,
    body: web::Json<ReasonRequest>,
) -> ApiResult<HttpResponse> {
    decide(state, user, ip, path.into_inner(), Review::Suspend, body.into_inner().reason).await
}

/// Reinstates a suspended shop: its listed products return to the storefront.
#[utoipa::path(post, path = "/api/system/shops/{shop_id}/reinstate", tag = "shops", security(("bearer" = [])),
    params(("shop_id" = i64, Path)), responses(
    (status = 200, body = ShopView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `shop.review`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: not suspended", body = ErrorBody)))]
#[post("/shops/{shop_id}/reinstate")]
pub async fn reinstate_shop(
    state: web::Data<AppState>,
    user: Require<perm::ShopReview>,
    ip: ClientIp,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    decide(state, user, ip, path.into_inner(), Review::Reinstate, None).await
}
