//! After-sale endpoints: shoppers file, follow, escalate and withdraw
//! requests and ship goods back; merchants approve, reject and confirm
//! returns; operators decide disputes.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::lifecycle::{Event, Kind};
use super::service::{self, AfterSaleStep, NewRequest, RequestedLine, Scope};
use super::store::{self, AfterSaleEvent, AfterSaleItem, AfterSaleRow, AfterSaleView, Filter, RefundView};
use crate::audit::Actor;
use crate::auth::{perm, AuthUser, ClientIp, Require};
use crate::error::{ApiResult, ErrorBody};
use crate::order::lifecycle::Party;
use crate::page::{Page, Paging};
use crate::shop::access::{self, Intent, ShopPermission};
use crate::state::AppState;

/// Mounts the shopper routes (absolute paths).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(open_request)
        .service(list_my_requests)
        .service(get_my_request)
        .service(withdraw_request)
        .service(escalate_request)
        .service(ship_back);
}

/// Mounts the merchant routes (inside the merchant scope).
pub fn configure_merchant(cfg: &mut web::ServiceConfig) {
    cfg.service(list_shop_requests)
        .service(get_shop_request)
        .service(approve_shop_request)
        .service(reject_shop_request)
        .service(receive_return);
}

/// Mounts the operator routes (inside the `/api/system` scope).
pub fn configure_system(cfg: &mut web::ServiceConfig) {
    cfg.service(list_all_requests).service(get_any_request).service(approve_dispute).service(reject_dispute);
}

/// `refund` or `return`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KindName {
    /// Money back for an order that has not shipped.
    Refund,
    /// Goods back, then money back, for a delivered order.
    Return,
}

/// Units of one line.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    pub sku_id: i64,
    pub quantity: i32,
}

/// A refund or return request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    pub kind: KindName,
    pub reason: String,
    /// Up to 9 photo URLs.
    #[serde(default)]
    pub photos: Vec<String>,
    /// Some lines; leave out for everything not refunded yet. Flash-sale
    /// orders are refunded whole.
    pub items: Option<Vec<LineBody>>,
}

/// A request with its lines, refunds and history.
#[derive(Serialize, ToSchema)]
pub struct AfterSaleDetail {
    #[serde(flatten)]
    pub request: AfterSaleView,
    pub items: Vec<AfterSaleItem>,
    pub refunds: Vec<RefundView>,
    pub history: Vec<AfterSaleEvent>,
}

async fn detail(state: &AppState, request: AfterSaleRow) -> ApiResult<AfterSaleDetail> {
    let client = state.db.get().await?;
    Ok(AfterSaleDetail {
        items: store::items(&client, request.id).await?,
        refunds: store::refunds(&client, request.id).await?,
        history: store::events(&client, request.id).await?,
        request: request.view,
    })
}

/// Asks for a refund (paid, unshipped order) or a return (delivered order,
/// within the return window) of a whole order or some of its units.
#[utoipa::path(post, path = "/api/orders/{order_no}/after-sales", tag = "after-sale", security(("bearer" = [])),
    params(("order_no" = String, Path)), request_body = OpenBody, responses(
    (status = 201, body = AfterSaleDetail),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`exceeds_refundable`, `return_window_closed` or a code naming the order's \
        state", body = ErrorBody),
    (status = 422, description = "`validation_failed` (reason, photos, items) or `invalid_body`", body = ErrorBody)))]
#[post("/api/orders/{order_no}/after-sales")]
pub async fn open_request(
    state: web::Data<AppState>,
    user: AuthUser,
    order_no: web::Path<String>,
    body: web::Json<OpenBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let request = NewRequest {
        kind: match body.kind {
            KindName::Refund => Kind::Refund,
            KindName::Return => Kind::Return,
        },
        reason: body.reason,
        photos: body.photos,
        items: body.items.map(|items| {
            items
                .into_iter()
                .map(|line| RequestedLine { sku_id: line.sku_id, quantity: line.quantity })
                .collect()
        }),
    };
    let opened = service::open(&state, user.user_id, &order_no, request).await?;
    Ok(HttpResponse::Created().json(detail(&state, opened).await?))
}

/// Filters and page of a request list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RequestQuery {
    /// One status (`disputed` is the operators' queue).
    pub status: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

async fn list(state: &AppState, filter: Filter<'_>, query: &RequestQuery) -> ApiResult<Page<AfterSaleView>> {
    let paging = Paging::new(query.page, query.per_page)?;
    let filter = Filter { status: query.status.as_deref(), ..filter };
    let client = state.db.get().await?;
    let (views, total) = store::list(&client, &filter, paging).await?;
    Ok(paging.wrap(views, total))
}

/// The caller's requests, newest first.
#[utoipa::path(get, path = "/api/after-sales", tag = "after-sale", security(("bearer" = [])),
    params(RequestQuery), responses(
    (status = 200, body = Page<AfterSaleView>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody)))]
#[get("/api/after-sales")]
pub async fn list_my_requests(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<RequestQuery>,
) -> ApiResult<HttpResponse> {
    let filter = Filter { user_id: Some(user.user_id), ..Filter::default() };
    Ok(HttpResponse::Ok().json(list(&state, filter, &query).await?))
}

/// One of the caller's requests.
#[utoipa::path(get, path = "/api/after-sales/{case_no}", tag = "after-sale", security(("bearer" = [])),
    params(("case_no" = String, Path)), responses(
    (status = 200, body = AfterSaleDetail),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/api/after-sales/{case_no}")]
pub async fn get_my_request(
    state: web::Data<AppState>,
    user: AuthUser,
    case_no: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    let request = service::find(&client, Scope::Shopper(user.user_id), &case_no).await?;
    drop(client);
    Ok(HttpResponse::Ok().json(detail(&state, request).await?))
}

/// Why a step is taken.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// Required to reject or escalate; up to 500 characters.
    #[serde(default)]
    pub note: String,
}

async fn step(
    state: &AppState,
    scope: Scope,
    case_no: &str,
    event: Event,
    actor_id: i64,
    note: &str,
) -> ApiResult<HttpResponse> {
    let step = AfterSaleStep { event, actor_id, note, return_shipment: None };
    let request = service::act(state, scope, case_no, step).await?;
    Ok(HttpResponse::Ok().json(detail(state, request).await?))
}

/// Drops one of the caller's requests before goods are on their way back.
#[utoipa::path(post, path = "/api/after-sales/{case_no}/withdraw", tag = "after-sale", security(("bearer" = [])),
    params(("case_no" = String, Path)), request_body = NoteBody, responses(
    (status = 200, body = AfterSaleDetail),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`", body = ErrorBody)))]
#[post("/api/after-sales/{case_no}/withdraw")]
pub async fn withdraw_request(
    state: web::Data<AppState>,
    user: AuthUser,
    case_no: web::Path<String>,
    body: web::Json<NoteBody>,
) -> ApiResult<HttpResponse> {
    step(&state, Scope::Shopper(user.user_id), &case_no, Event::Withdraw, user.user_id, &body.note).await
}

/// Asks the platform to decide (after a rejection, or when the merchant
/// does not answer or does not confirm the returned goods).
#[utoipa::path(post, path = "/api/after-sales/{case_no}/escalate", tag = "after-sale", security(("bearer" = [])),
    params(("case_no" = String, Path)), request_body = NoteBody, responses(
    (status = 200, body = AfterSaleDetail),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state` or `exceeds_refundable`", body = ErrorBody),
    (status = 422, description = "`validation_failed`: note", body = ErrorBody)))]
#[post("/api/after-sales/{case_no}/escalate")]
pub async fn escalate_request(
    state: web::Data<AppState>,
    user: AuthUser,
    case_no: web::Path<String>,
    body: web::Json<NoteBody>,
) -> ApiResult<HttpResponse> {
    step(&state, Scope::Shopper(user.user_id), &case_no, Event::Escalate, user.user_id, &body.note).await
}

/// How the goods travel back.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnShipmentBody {
    pub carrier: String,
    pub tracking_no: String,
}

/// Records the return shipment of an approved return.
#[utoipa::path(post, path = "/api/after-sales/{case_no}/return-shipment", tag = "after-sale",
    security(("bearer" = [])), params(("case_no" = String, Path)), request_body = ReturnShipmentBody, responses(
    (status = 200, body = AfterSaleDetail),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`", body = ErrorBody),
    (status = 422, description = "`validation_failed`: carrier, tracking_no", body = ErrorBody)))]
#[post("/api/after-sales/{case_no}/return-shipment")]
pub async fn ship_back(
    state: web::Data<AppState>,
    user: AuthUser,
    case_no: web::Path<String>,
    body: web::Json<ReturnShipmentBody>,
) -> ApiResult<HttpResponse> {
    let shipment = Some((body.carrier.as_str(), body.tracking_no.as_str()));
    let step =
        AfterSaleStep { event: Event::ShipBack, actor_id: user.user_id, note: "", return_shipment: shipment };
    let request = service::act(&state, Scope::Shopper(user.user_id), &case_no, step).await?;
    Ok(HttpResponse::Ok().json(detail(&state, request).await?))
}

/// The shop's requests, newest first (`order.read`).
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/after-sales", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), RequestQuery), responses(
    (status = 200, body = Page<AfterSaleView>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/after-sales")]
pub async fn list_shop_requests(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    query: web::Query<RequestQuery>,
) -> ApiResult<HttpResponse> {
    let access = access::require_in(
        &state.db,
        user.user_id,
        path.into_inner(),
        ShopPermission::OrderRead,
        Intent::Read,
    )
    .await?;
    let filter = Filter { shop_id: Some(access.shop_id), ..Filter::default() };
    Ok(HttpResponse::Ok().json(list(&state, filter, &query).await?))
}

/// One of the shop's requests (`order.read`).
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/after-sales/{case_no}", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("case_no" = String, Path)), responses(
    (status = 200, body = AfterSaleDetail),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/after-sales/{case_no}")]
pub async fn get_shop_request(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, String)>,
) -> ApiResult<HttpResponse> {
    let (shop_id, case_no) = path.into_inner();
    let client = state.db.get().await?;
    access::require(&client, user.user_id, shop_id, ShopPermission::OrderRead, Intent::Read).await?;
    let request = service::find(&client, Scope::Shop(shop_id), &case_no).await?;
    drop(client);
    Ok(HttpResponse::Ok().json(detail(&state, request).await?))
}

/// A merchant's step on one of the shop's requests (`order.manage`).
async fn shop_step(
    state: &AppState,
    user: &AuthUser,
    (shop_id, case_no): (i64, String),
    event: Event,
    note: &str,
) -> ApiResult<HttpResponse> {
    access::require_in(&state.db, user.user_id, shop_id, ShopPermission::OrderManage, Intent::Write).await?;
    step(state, Scope::Shop(shop_id), &case_no, event, user.user_id, note).await
}

/// Approves a request: a refund is paid at once; a return waits for the
/// goods (`order.manage`).
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/after-sales/{case_no}/approve", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("case_no" = String, Path)),
    request_body = NoteBody, responses(
    (status = 200, body = AfterSaleDetail),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`, `exceeds_refundable` or a code naming the order's state",
        body = ErrorBody)))]
#[post("/after-sales/{case_no}/approve")]
pub async fn approve_shop_request(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, String)>,
    body: web::Json<NoteBody>,
) -> ApiResult<HttpResponse> {
    shop_step(&state, &user, path.into_inner(), Event::Approve(Party::Merchant), &body.note).await
}

/// Rejects a request with a reason (`order.manage`); the shopper may
/// escalate it.
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/after-sales/{case_no}/reject", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("case_no" = String, Path)),
    request_body = NoteBody, responses(
    (status = 200, body = AfterSaleDetail),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`", body = ErrorBody),
    (status = 422, description = "`validation_failed`: note", body = ErrorBody)))]
#[post("/after-sales/{case_no}/reject")]
pub async fn reject_shop_request(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, String)>,
    body: web::Json<NoteBody>,
) -> ApiResult<HttpResponse> {
    shop_step(&state, &user, path.into_inner(), Event::Reject(Party::Merchant), &body.note).await
}

/// Confirms the returned goods arrived: stock goes back and the refund is
/// paid (`order.manage`).
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/after-sales/{case_no}/receive", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("case_no" = String, Path)),
    request_body = NoteBody, responses(
    (status = 200, body = AfterSaleDetail),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state` or `exceeds_refundable`", body = ErrorBody)))]
#[post("/after-sales/{case_no}/receive")]
pub async fn receive_return(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, String)>,
    body: web::Json<NoteBody>,
) -> ApiResult<HttpResponse> {
    shop_step(&state, &user, path.into_inner(), Event::Receive, &body.note).await
}

/// Every request, newest first; `?status=disputed` is the queue of
/// disputes to decide (`order.intervene`).
#[utoipa::path(get, path = "/api/system/after-sales", tag = "after-sale", security(("bearer" = [])),
    params(RequestQuery), responses(
    (status = 200, body = Page<AfterSaleView>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `order.intervene`", body = ErrorBody)))]
#[get("/after-sales")]
pub async fn list_all_requests(
    state: web::Data<AppState>,
    _user: Require<perm::OrderIntervene>,
    query: web::Query<RequestQuery>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(list(&state, Filter::default(), &query).await?))
}

/// Any request (`order.intervene`).
#[utoipa::path(get, path = "/api/system/after-sales/{case_no}", tag = "after-sale", security(("bearer" = [])),
    params(("case_no" = String, Path)), responses(
    (status = 200, body = AfterSaleDetail),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `order.intervene`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/after-sales/{case_no}")]
pub async fn get_any_request(
    state: web::Data<AppState>,
    user: Require<perm::OrderIntervene>,
    ip: ClientIp,
    case_no: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let client = state.db.get().await?;
    let request = service::find(&client, Scope::Operator(Actor::new(&user, ip)), &case_no).await?;
    drop(client);
    Ok(HttpResponse::Ok().json(detail(&state, request).await?))
}

/// Decides a dispute for the shopper: refunded at once when nothing needs
/// to come back (or it already has), else the return goes ahead
/// (`order.intervene`; audited).
#[utoipa::path(post, path = "/api/system/after-sales/{case_no}/approve", tag = "after-sale",
    security(("bearer" = [])), params(("case_no" = String, Path)), request_body = NoteBody, responses(
    (status = 200, body = AfterSaleDetail),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `order.intervene`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state` (only disputes), `exceeds_refundable` or a code naming the \
        order's state", body = ErrorBody)))]
#[post("/after-sales/{case_no}/approve")]
pub async fn approve_dispute(
    state: web::Data<AppState>,
    user: Require<perm::OrderIntervene>,
    ip: ClientIp,
    case_no: web::Path<String>,
    body: web::Json<NoteBody>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::Operator(Actor::new(&user, ip));
    step(&state, scope, &case_no, Event::Approve(Party::Operator), user.user_id, &body.note).await
}

/// Decides a dispute for the merchant and closes it, with a reason
/// (`order.intervene`; audited).
#[utoipa::path(post, path = "/api/system/after-sales/{case_no}/reject", tag = "after-sale",
    security(("bearer" = [])), params(("case_no" = String, Path)), request_body = NoteBody, responses(
    (status = 200, body = AfterSaleDetail),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `order.intervene`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state` (only disputes)", body = ErrorBody),
    (status = 422, description = "`validation_failed`: note", body = ErrorBody)))]
#[post("/after-sales/{case_no}/reject")]
pub async fn reject_dispute(
    state: web::Data<AppState>,
    user: Require<perm::OrderIntervene>,
    ip: ClientIp,
    case_no: web::Path<String>,
    body: web::Json<NoteBody>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::Operator(Actor::new(&user, ip));
    step(&state, scope, &case_no, Event::Reject(Party::Operator), user.user_id, &body.note).await
}
