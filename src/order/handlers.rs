//! Order endpoints for shoppers (`/api/checkout`, `/api/orders`), merchants
//! (`/api/merchant/shops/{shop_id}/orders`, by shop role), operators
//! (`/api/system/orders`) and carriers (`/api/logistics/webhook`, signed).

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::checkout::{self, CheckoutRequest, Placed, Source};
use super::lifecycle::{OrderEvent, OrderStatus, Party};
use super::service::{self, Step, NOTE_MAX_CHARS};
use super::shipping::{self, NewShipment, NewTrackingEvent, Shipment, ShippedItem, TrackingStatus};
use super::store::{self, HistoryEntry, OrderItem, OrderNote, OrderQuery, OrderRow, OrderView};
use crate::auth::{perm, AuthUser, Require};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::page::{Page, Paging};
use crate::seckill::service::MAX_IDEMPOTENCY_KEY_LEN;
use crate::shop::access::{self, Intent, ShopPermission};
use crate::signature;
use crate::state::AppState;
use crate::validate::{self, Validator};

/// Mounts the shopper and carrier routes (absolute paths).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(place_checkout)
        .service(list_my_orders)
        .service(get_my_order)
        .service(pay_order)
        .service(cancel_my_order)
        .service(confirm_receipt)
        .service(carrier_webhook);
}

/// Mounts the merchant routes (inside the merchant scope).
pub fn configure_merchant(cfg: &mut web::ServiceConfig) {
    cfg.service(list_shop_orders)
        .service(get_shop_order)
        .service(add_order_note)
        .service(ship_order)
        .service(add_tracking_event)
        .service(cancel_shop_order);
}

/// Mounts the operator routes (inside the `/api/system` scope).
pub fn configure_system(cfg: &mut web::ServiceConfig) {
    cfg.service(list_all_orders).service(get_any_order).service(cancel_any_order);
}

/// What to check out: the selected cart lines (no `buy_now`), or one SKU.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    /// One of the shopper's addresses.
    pub address_id: i64,
    /// Buy this SKU now, bypassing the cart.
    pub buy_now: Option<BuyNow>,
}

/// A "buy now" line.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyNow {
    pub sku_id: i64,
    pub quantity: u32,
}

/// The orders one checkout placed (one per shop).
#[derive(Serialize, ToSchema)]
pub struct CheckoutReceipt {
    pub checkout_id: i64,
    pub total_cents: i64,
    pub orders: Vec<OrderView>,
}

impl From<Placed> for CheckoutReceipt {
    fn from(placed: Placed) -> Self {
        Self {
            checkout_id: placed.checkout_id,
            total_cents: placed.total_cents,
            orders: placed.orders.into_iter().map(|o| o.view).collect(),
        }
    }
}

/// Checks out: one pending order per shop, stock reserved in the same
/// transaction. Send an `Idempotency-Key` so a retry returns the same
/// orders rather than placing new ones.
#[utoipa::path(post, path = "/api/checkout", tag = "orders", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1-128 visible ASCII characters")),
    request_body = CheckoutBody, responses(
    (status = 201, description = "placed (or, with `Idempotent-Replayed: true`, the same checkout again)",
        body = CheckoutReceipt),
    (status = 400, description = "`invalid_header`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`members_only`", body = ErrorBody),
    (status = 409, description = "`insufficient_stock` (names the line), `item_unavailable`, `invalid_state` \
        (nothing selected), `idempotency_in_progress`", body = ErrorBody),
    (status = 422, description = "`validation_failed` (address_id, buy_now.quantity), `idempotency_key_reused`",
        body = ErrorBody)))]
#[post("/api/checkout")]
pub async fn place_checkout(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: web::Json<CheckoutBody>,
) -> ApiResult<HttpResponse> {
    let source = match &body.buy_now {
        Some(line) => Source::BuyNow { sku_id: line.sku_id, quantity: line.quantity },
        None => Source::Cart,
    };
    let idempotency_key = validate::header_value(req.headers(), "idempotency-key", MAX_IDEMPOTENCY_KEY_LEN)?;
    let request = CheckoutRequest { address_id: body.address_id, source, idempotency_key };
    let placed = checkout::checkout(&state, &user, &request).await?;
    let mut response = HttpResponse::Created();
    if placed.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(CheckoutReceipt::from(placed)))
}

fn parse_status(status: Option<&str>) -> ApiResult<Option<&str>> {
    match status {
        Some(name) if OrderStatus::parse(name).is_none() => {
            Err(ApiError::new(ErrorCode::InvalidQuery).with_message(format!("unknown status {name}")))
        }
        other => Ok(other),
    }
}

/// Filter of the shopper's order list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderFilter {
    /// Only orders in this status.
    pub status: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/api/orders", tag = "orders", security(("bearer" = [])), params(OrderFilter),
    responses((status = 200, body = Page<OrderView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[get("/api/orders")]
pub async fn list_my_orders(
    state: web::Data<AppState>,
    user: AuthUser,
    filter: web::Query<OrderFilter>,
) -> ApiResult<HttpResponse> {
    let paging = Paging::new(filter.page, filter.per_page)?;
    let status = parse_status(filter.status.as_deref())?;
    let client = state.db.get().await?;
    let (orders, total) =
        store::list_for_user(&client, user.user_id, status, paging.limit(), paging.offset()).await?;
    Ok(HttpResponse::Ok().json(paging.wrap(orders, total)))
}

/// An order with its lines, history and shipment. Notes appear for the
/// shop's staff and operators only.
#[derive(Serialize, ToSchema)]
pub struct OrderDetail {
    #[serde(flatten)]
    pub order: OrderView,
    pub items: Vec<OrderItem>,
    pub history: Vec<HistoryEntry>,
    pub shipment: Option<Shipment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<Vec<OrderNote>>,
}

async fn detail(client: &impl GenericClient, order: OrderRow, with_notes: bool) -> ApiResult<OrderDetail> {
    let notes = if with_notes { Some(store::notes(client, order.id).await?) } else { None };
    Ok(OrderDetail {
        items: store::items(client, order.id).await?,
        history: store::history(client, order.id).await?,
        shipment: shipping::shipment_of(client, order.id).await?,
        notes,
        order: order.view,
    })
}

/// One of the caller's orders with its lines, history and tracking.
#[utoipa::path(get, path = "/api/orders/{order_no}", tag = "orders", security(("bearer" = [])),
    params(("order_no" = String, Path)),
    responses((status = 200, body = OrderDetail), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/api/orders/{order_no}")]
pub async fn get_my_order(
    state: web::Data<AppState>,
    user: AuthUser,
    order_no: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let order = service::own_order(&state, user.user_id, &order_no).await?;
    let client = state.db.get().await?;
    Ok(HttpResponse::Ok().json(detail(&client, order, false).await?))
}

/// Marks one of the caller's orders paid with no gateway at all: a shortcut
/// for tests and demos, served only with `payments.direct_pay_enabled`
/// (off by default; pay through `POST /api/orders/{order_no}/payments`).
#[utoipa::path(post, path = "/api/orders/{order_no}/pay", tag = "orders", security(("bearer" = [])),
    params(("order_no" = String, Path)),
    responses((status = 200, body = OrderView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`order_expired` (recorded for refund) or a code naming the state", body = ErrorBody)))]
#[post("/api/orders/{order_no}/pay")]
pub async fn pay_order(
    state: web::Data<AppState>,
    user: AuthUser,
    order_no: web::Path<String>,
) -> ApiResult<HttpResponse> {
    if !state.settings.payments.direct_pay_enabled {
        return Err(
            ApiError::new(ErrorCode::NotFound).with_message("direct payment is off; pay through a gateway")
        );
    }
    let order = service::pay(&state, user.user_id, &order_no).await?;
    Ok(HttpResponse::Ok().json(order.view))
}

/// An optional (shopper) or required (merchant, operator) reason.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// 1-500 characters.
    pub reason: Option<String>,
}

/// Cancels one of the caller's orders before payment; the stock goes back.
#[utoipa::path(post, path = "/api/orders/{order_no}/cancel", tag = "orders", security(("bearer" = [])),
    params(("order_no" = String, Path)), request_body(content = Option<CancelBody>), responses(
    (status = 200, body = OrderView),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "a code naming the state, e.g. `order_paid`", body = ErrorBody)))]
#[post("/api/orders/{order_no}/cancel")]
pub async fn cancel_my_order(
    state: web::Data<AppState>,
    user: AuthUser,
    order_no: web::Path<String>,
    body: Option<web::Json<CancelBody>>,
) -> ApiResult<HttpResponse> {
    let order = service::own_order(&state, user.user_id, &order_no).await?;
    let reason = body.and_then(|b| b.into_inner().reason);
    let step = service::cancel_step(Party::Shopper, user.user_id, reason.as_deref())?;
    Ok(HttpResponse::Ok().json(service::act(&state, &order, step).await?.view))
}

/// Confirms receipt of a shipped or delivered order: it completes.
#[utoipa::path(post, path = "/api/orders/{order_no}/confirm-receipt", tag = "orders", security(("bearer" = [])),
    params(("order_no" = String, Path)), responses(
    (status = 200, body = OrderView),
    (status = 401, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "a code naming the state, e.g. `order_paid`", body = ErrorBody)))]
#[post("/api/orders/{order_no}/confirm-receipt")]
pub async fn confirm_receipt(
    state: web::Data<AppState>,
    user: AuthUser,
    order_no: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let order = service::own_order(&state, user.user_id, &order_no).await?;
    let step = Step {
        event: OrderEvent::ConfirmReceipt,
        actor_id: Some(user.user_id),
        note: "receipt confirmed",
        reason: None,
    };
    Ok(HttpResponse::Ok().json(service::act(&state, &order, step).await?.view))
}

/// Filters of a shop's or the platform's order list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderSearch {
    pub status: Option<String>,
    /// Placed at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Placed before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// The buyer's account id.
    pub buyer_id: Option<i64>,
    pub order_no: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

async fn search(state: &AppState, shop_id: Option<i64>, filter: &OrderSearch) -> ApiResult<Page<OrderView>> {
    let paging = Paging::new(filter.page, filter.per_page)?;
    let query = OrderQuery {
        shop_id,
        status: parse_status(filter.status.as_deref())?,
        from: filter.from,
        to: filter.to,
        buyer_id: filter.buyer_id,
        order_no: filter.order_no.as_deref(),
    };
    let client = state.db.get().await?;
    let (rows, total) = store::search(&client, &query, paging).await?;
    Ok(paging.wrap(rows, total).map(|row| row.view))
}

/// The shop's orders, newest first (`order.read`).
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/orders", tag = "merchant", security(("bearer" = [])),
    params(("shop_id" = i64, Path), OrderSearch), responses(
    (status = 200, body = Page<OrderView>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/orders")]
pub async fn list_shop_orders(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    filter: web::Query<OrderSearch>,
) -> ApiResult<HttpResponse> {
    let shop_id = path.into_inner();
    access::require_in(&state.db, user.user_id, shop_id, ShopPermission::OrderRead, Intent::Read).await?;
    Ok(HttpResponse::Ok().json(search(&state, Some(shop_id), &filter).await?))
}

/// Checks the caller's shop role and loads the shop's order.
async fn shop_order_for(
    state: &AppState,
    user: &AuthUser,
    (shop_id, order_no): (i64, String),
    needed: ShopPermission,
    intent: Intent,
) -> ApiResult<OrderRow> {
    let client = state.db.get().await?;
    access::require(&client, user.user_id, shop_id, needed, intent).await?;
    service::shop_order(&client, shop_id, &order_no).await
}

/// One of the shop's orders with lines, history, shipment and notes.
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/orders/{order_no}", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("order_no" = String, Path)), responses(
    (status = 200, body = OrderDetail),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/orders/{order_no}")]
pub async fn get_shop_order(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, String)>,
) -> ApiResult<HttpResponse> {
    let order =
        shop_order_for(&state, &user, path.into_inner(), ShopPermission::OrderRead, Intent::Read).await?;
    let client = state.db.get().await?;
    Ok(HttpResponse::Ok().json(detail(&client, order, true).await?))
}

/// A note on an order.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// 1-500 characters.
    pub note: String,
}

/// Adds an internal note to one of the shop's orders (`order.manage`).
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/orders/{order_no}/notes", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("order_no" = String, Path)),
    request_body = NoteBody, responses(
    (status = 201, body = OrderNote),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 422, description = "`validation_failed`", body = ErrorBody)))]
#[post("/orders/{order_no}/notes")]
pub async fn add_order_note(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, String)>,
    body: web::Json<NoteBody>,
) -> ApiResult<HttpResponse> {
    let note = body.note.trim();
    Validator::new().length("note", note, 1, NOTE_MAX_CHARS).finish()?;
    let order =
        shop_order_for(&state, &user, path.into_inner(), ShopPermission::OrderManage, Intent::Write).await?;
    let client = state.db.get().await?;
    Ok(HttpResponse::Created().json(store::insert_note(&client, order.id, user.user_id, note).await?))
}

/// A shipment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipBody {
    /// 1-40 characters, e.g. `SF Express`.
    pub carrier: String,
    /// 1-60 characters, unique per carrier.
    pub tracking_no: String,
    /// What is in the box; defaults to the whole order.
    pub items: Option<Vec<ShippedItem>>,
}

/// Ships a paid order of the shop (`order.ship`).
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/orders/{order_no}/ship", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("order_no" = String, Path)),
    request_body = ShipBody, responses(
    (status = 200, body = OrderView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "a code naming the state (e.g. `order_pending_payment`) or `conflict` \
        (tracking number in use)", body = ErrorBody),
    (status = 422, description = "`validation_failed`", body = ErrorBody)))]
#[post("/orders/{order_no}/ship")]
pub async fn ship_order(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, String)>,
    body: web::Json<ShipBody>,
) -> ApiResult<HttpResponse> {
    let order =
        shop_order_for(&state, &user, path.into_inner(), ShopPermission::OrderShip, Intent::Write).await?;
    let ShipBody { carrier, tracking_no, items } = body.into_inner();
    let shipped =
        shipping::ship(&state, &order, user.user_id, NewShipment { carrier, tracking_no, items }).await?;
    Ok(HttpResponse::Ok().json(shipped.view))
}

/// A tracking event the merchant adds.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackingBody {
    pub status: TrackingStatus,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub description: String,
    /// Defaults to now.
    pub occurred_at: Option<DateTime<Utc>>,
}

/// Appends a tracking event to a shipped order (`order.ship`); `delivered`
/// moves the order to delivered.
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/orders/{order_no}/tracking", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("order_no" = String, Path)),
    request_body = TrackingBody, responses(
    (status = 201, description = "recorded"),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: not shipped", body = ErrorBody)))]
#[post("/orders/{order_no}/tracking")]
pub async fn add_tracking_event(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, String)>,
    body: web::Json<TrackingBody>,
) -> ApiResult<HttpResponse> {
    let order =
        shop_order_for(&state, &user, path.into_inner(), ShopPermission::OrderShip, Intent::Write).await?;
    let event = NewTrackingEvent {
        status: body.status,
        location: body.location.trim(),
        description: body.description.trim(),
        occurred_at: body.occurred_at.unwrap_or_else(|| state.clock.now()),
        source: "merchant",
        external_id: None,
        actor_id: Some(user.user_id),
    };
    shipping::track(&state, &order, &event).await?;
    Ok(HttpResponse::Created().finish())
}

/// Cancels one of the shop's orders before it ships, with a reason
/// (`order.manage`); a paid order is owed a refund.
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/orders/{order_no}/cancel", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("order_no" = String, Path)),
    request_body = CancelBody, responses(
    (status = 200, body = OrderView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "a code naming the state", body = ErrorBody),
    (status = 422, description = "`validation_failed`: reason", body = ErrorBody)))]
#[post("/orders/{order_no}/cancel")]
pub async fn cancel_shop_order(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, String)>,
    body: web::Json<CancelBody>,
) -> ApiResult<HttpResponse> {
    let order =
        shop_order_for(&state, &user, path.into_inner(), ShopPermission::OrderManage, Intent::Write).await?;
    let step = service::cancel_step(Party::Merchant, user.user_id, body.reason.as_deref())?;
    Ok(HttpResponse::Ok().json(service::act(&state, &order, step).await?.view))
}

/// Any order, newest first (platform permission `order.audit`).
#[utoipa::path(get, path = "/api/system/orders", tag = "orders", security(("bearer" = [])), params(OrderSearch),
    responses(
    (status = 200, body = Page<OrderView>),
    (status = 400, description = "`invalid_query`", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `order.audit`", body = ErrorBody)))]
#[get("/orders")]
pub async fn list_all_orders(
    state: web::Data<AppState>,
    _user: Require<perm::OrderAudit>,
    filter: web::Query<OrderSearch>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(search(&state, None, &filter).await?))
}

async fn any_order(state: &AppState, order_no: &str) -> ApiResult<OrderRow> {
    let client = state.db.get().await?;
    store::find_by_no(&client, order_no)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound).with_message("no such order"))
}

/// Any order with lines, history, shipment and notes (`order.audit`).
#[utoipa::path(get, path = "/api/system/orders/{order_no}", tag = "orders", security(("bearer" = [])),
    params(("order_no" = String, Path)), responses(
    (status = 200, body = OrderDetail),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `order.audit`", body = ErrorBody),
    (status = 404, body = ErrorBody)))]
#[get("/orders/{order_no}")]
pub async fn get_any_order(
    state: web::Data<AppState>,
    _user: Require<perm::OrderAudit>,
    order_no: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let order = any_order(&state, &order_no).await?;
    let client = state.db.get().await?;
    Ok(HttpResponse::Ok().json(detail(&client, order, true).await?))
}

/// Cancels any order before it ships, with a reason (`order.intervene`).
#[utoipa::path(post, path = "/api/system/orders/{order_no}/cancel", tag = "orders", security(("bearer" = [])),
    params(("order_no" = String, Path)), request_body = CancelBody, responses(
    (status = 200, body = OrderView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: needs `order.intervene`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "a code naming the state", body = ErrorBody),
    (status = 422, description = "`validation_failed`: reason", body = ErrorBody)))]
#[post("/orders/{order_no}/cancel")]
pub async fn cancel_any_order(
    state: web::Data<AppState>,
    user: Require<perm::OrderIntervene>,
    order_no: web::Path<String>,
    body: web::Json<CancelBody>,
) -> ApiResult<HttpResponse> {
    let order = any_order(&state, &order_no).await?;
    let step = service::cancel_step(Party::Operator, user.user_id, body.reason.as_deref())?;
    Ok(HttpResponse::Ok().json(service::act(&state, &order, step).await?.view))
}

/// A carrier's tracking update.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CarrierEvent {
    pub carrier: String,
    pub tracking_no: String,
    /// The carrier's id of this event; a redelivery with the same id is ignored.
    pub event_id: String,
    pub status: TrackingStatus,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub description: String,
    pub occurred_at: DateTime<Utc>,
}

/// Tracking webhook for carriers. Sign with `X-Carrier-Timestamp` (Unix
/// seconds) and `X-Carrier-Signature`: hex HMAC-SHA256 of
/// `"{timestamp}.{raw body}"` under `orders.carrier_webhook_secret`.
#[utoipa::path(post, path = "/api/logistics/webhook", tag = "orders",
    params(("X-Carrier-Timestamp" = String, Header), ("X-Carrier-Signature" = String, Header)),
    request_body = CarrierEvent, responses(
    (status = 200, description = "recorded, or a redelivery (ignored)"),
    (status = 400, description = "`malformed_json`", body = ErrorBody),
    (status = 401, description = "`invalid_signature`", body = ErrorBody),
    (status = 404, description = "no such shipment", body = ErrorBody),
    (status = 422, description = "`invalid_body`", body = ErrorBody)))]
#[post("/api/logistics/webhook")]
pub async fn carrier_webhook(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let settings = &state.settings.orders;
    if !signature::verify(
        &settings.carrier_webhook_secret,
        header("x-carrier-timestamp"),
        header("x-carrier-signature"),
        &body,
        // Signatures age in wall-clock time, whatever the business clock says.
        Utc::now().timestamp(),
        settings.carrier_webhook_max_age_secs,
    ) {
        tracing::warn!("carrier webhook refused: bad or stale signature");
        state.metrics.callbacks_refused.inc();
        return Err(ErrorCode::InvalidSignature.into());
    }
    let event: CarrierEvent = serde_json::from_slice(&body).map_err(|err| {
        let code = if err.is_data() { ErrorCode::InvalidBody } else { ErrorCode::MalformedJson };
        ApiError::new(code).with_message(err.to_string())
    })?;
    let order = shipping::order_by_tracking(&state, &event.carrier, &event.tracking_no).await?;
    let tracking = NewTrackingEvent {
        status: event.status,
        location: event.location.trim(),
        description: event.description.trim(),
        occurred_at: event.occurred_at,
        source: "carrier",
        external_id: Some(&event.event_id),
        actor_id: None,
    };
    let recorded = shipping::track(&state, &order, &tracking).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"recorded": recorded})))
}
