//! Flash-sale rules: event creation, the buy path, open/close, live stats.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use actix::dev::SendError;
use actors::gate::Admission;
use actors::stock::{GetStockLevel, ReserveError, ReserveStock, Reserved};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::oneshot;
use utoipa::ToSchema;

use super::engine::{GateChange, LiveEvent};
use super::pool::Claim;
use super::ratelimit::{BuyRates, RateKey};
use super::store::{self, EventRow, NewEvent};
use super::token;
use crate::audit::Actor;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::order;
use crate::state::AppState;
use crate::validate::Validator;

/// Most units one request may buy.
pub const MAX_QUANTITY: u32 = 100;
/// Highest unit price (1 billion in major units): with [`MAX_QUANTITY`] the
/// order total stays far inside i64.
pub const MAX_PRICE_CENTS: i64 = 100_000_000_000;
/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// A new flash-sale event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventRequest {
    /// The SKU on sale.
    pub sku_id: i64,
    /// Shown to shoppers, 1-200 characters.
    pub title: String,
    /// Sale price per unit in cents.
    pub price_cents: i64,
    /// Units set aside for the sale (1 - 10,000,000).
    pub stock: i32,
    /// Most units one shopper may hold in live orders (1 - 1,000,000).
    pub per_user_limit: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Seconds a shopper has to pay before the order expires (1 - 86,400).
    pub payment_window_secs: i32,
    /// Require a purchase token from `GET .../purchase-token` (hidden URL).
    #[serde(default)]
    pub require_purchase_token: bool,
    /// Buy requests per second per shopper; null = server default, 0 = off.
    #[serde(default)]
    pub user_rate_per_sec: Option<i32>,
    /// Buy requests per second per IP; null = server default, 0 = off.
    #[serde(default)]
    pub ip_rate_per_sec: Option<i32>,
}

fn validate_event(req: &CreateEventRequest, now: DateTime<Utc>) -> ApiResult<()> {
    let mut v = Validator::new();
    v.check("sku_id", req.sku_id > 0, "must_be_positive");
    v.length("title", req.title.trim(), 1, 200);
    v.check("price_cents", (0..=MAX_PRICE_CENTS).contains(&req.price_cents), "out_of_range");
    v.check("stock", (1..=10_000_000).contains(&req.stock), "out_of_range");
    v.check("per_user_limit", (1..=1_000_000).contains(&req.per_user_limit), "out_of_range");
    v.check("ends_at", req.ends_at > req.starts_at, "must_be_after_starts_at");
    v.check("ends_at", req.ends_at > now, "must_be_in_the_future");
    v.check("payment_window_secs", (1..=86_400).contains(&req.payment_window_secs), "out_of_range");
    for (field, rate) in
        [("user_rate_per_sec", req.user_rate_per_sec), ("ip_rate_per_sec", req.ip_rate_per_sec)]
    {
        v.check(field, rate.is_none_or(|r| (0..=100_000).contains(&r)), "out_of_range");
    }
    v.finish()
}

/// Creates an event (audited) and starts its stock actor.
pub async fn create_event(state: &AppState, actor: Actor, req: CreateEventRequest) -> ApiResult<EventRow> {
    validate_event(&req, Utc::now())?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let row = store::insert_event(
        &tx,
        &NewEvent {
            sku_id: req.sku_id,
            title: req.title.trim(),
            price_cents: req.price_cents,
            stock: req.stock,
            per_user_limit: req.per_user_limit,
            starts_at: req.starts_at,
            ends_at: req.ends_at,
            payment_window_secs: req.payment_window_secs,
            require_purchase_token: req.require_purchase_token,
            user_rate_per_sec: req.user_rate_per_sec,
            ip_rate_per_sec: req.ip_rate_per_sec,
            created_by: actor.user_id,
        },
    )
    .await?;
    let detail = json!({"sku_id": row.sku_id, "stock": row.total_stock, "price_cents": row.price_cents,
        "per_user_limit": row.per_user_limit, "starts_at": row.starts_at, "ends_at": row.ends_at});
    actor.record(&tx, "seckill.create", format_args!("seckill_event:{}", row.id), detail).await?;
    tx.commit().await?;
    // Created is created: a failure to start it here (Redis or the pool
    // down) must not read as "not created" and invite a second event; it
    // starts on first use instead.
    if let Err(err) = state.seckill.add(row.clone()).await {
        tracing::warn!(event_id = row.id, error = %err, "flash sale created but not started yet");
    }
    Ok(row)
}

/// The live event `id` or a 404.
pub async fn live_event(state: &AppState, id: i64) -> ApiResult<std::sync::Arc<LiveEvent>> {
    state
        .seckill
        .event(id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound).with_message("no such sale"))
}

/// A flash-sale order as answered to the buyer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderReceipt {
    pub order_no: String,
    pub event_id: i64,
    pub quantity: i64,
    pub amount_cents: i64,
    pub currency: String,
    /// `pending_payment` for a new order.
    pub status: String,
    /// Pay before this time or the order expires and its stock returns.
    pub pay_before: Option<DateTime<Utc>>,
}

/// What a buy request carries besides the event.
pub struct BuyRequest {
    pub user_id: i64,
    pub ip: IpAddr,
    pub quantity: u32,
    pub idempotency_key: Option<String>,
    pub purchase_token: Option<String>,
}

/// How a buy request was answered.
pub enum Bought {
    /// A new order was committed.
    Created(OrderReceipt),
    /// The idempotency key had been used for this event: the same order again.
    Replayed(OrderReceipt),
}

fn count(live: &LiveEvent, state: &AppState, code: ErrorCode) -> ApiError {
    let r = &live.rejections;
    let counter = match code {
        ErrorCode::SoldOut => &r.sold_out,
        ErrorCode::LimitReached => &r.limit_reached,
        ErrorCode::NotStarted => &r.not_started,
        ErrorCode::Ended => &r.ended,
        ErrorCode::RateLimited => &r.rate_limited,
        ErrorCode::PurchaseTokenInvalid => &r.token_invalid,
        _ => &r.overloaded,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    state.metrics.seckill_rejected.with_label_values(&[code.as_str()]).inc();
    let error = ApiError::new(code);
    match code {
        ErrorCode::Overloaded | ErrorCode::RateLimited => error.retry_after(1),
        _ => error,
    }
}

/// The buy path (see the module docs for its order).
pub async fn buy(state: &AppState, event_id: i64, req: BuyRequest) -> ApiResult<Bought> {
    if req.quantity == 0 || req.quantity > MAX_QUANTITY {
        return Err(ApiError::validation(vec![crate::error::FieldError {
            field: "quantity".into(),
            problem: "out_of_range".into(),
        }]));
    }
    let live = live_event(state, event_id).await?;
    let now = SystemTime::now();
    let now_ms = Utc::now().timestamp_millis();
    let admission = live.gate.admit(now_ms);
    if admission != Admission::Go {
        // A retry of a request that succeeded must still get its order.
        if let Some(key) = &req.idempotency_key {
            if live.keys.contains_key(&(req.user_id, key.clone())) {
                return replay(state, &live, req.user_id, key).await;
            }
        }
        return Err(count(
            &live,
            state,
            match admission {
                Admission::NotStarted => ErrorCode::NotStarted,
                Admission::Ended => ErrorCode::Ended,
                _ => ErrorCode::SoldOut,
            },
        ));
    }
    let settings = &state.settings.seckill;
    let rates = BuyRates {
        user: rate(live.event.user_rate_per_sec, settings.user_rate_per_sec),
        ip: rate(live.event.ip_rate_per_sec, settings.ip_rate_per_sec),
    };
    let instant = Instant::now();
    let limiter = &state.seckill.limiter;
    if !limiter.allow(RateKey::User { event_id, user_id: req.user_id }, rates.user, instant)
        || !limiter.allow(RateKey::Ip { event_id, ip: req.ip }, rates.ip, instant)
    {
        return Err(count(&live, state, ErrorCode::RateLimited));
    }
    if live.event.require_purchase_token {
        let valid = req.purchase_token.as_deref().is_some_and(|t| {
            token::verify(&settings.purchase_token_secret, event_id, req.user_id, t, now_ms / 1000)
        });
        if !valid {
            return Err(count(&live, state, ErrorCode::PurchaseTokenInvalid));
        }
    }
    // With a shared pool this also takes the cluster-wide rate buckets'
    // tokens (the node's own, above, let it through).
    match state.seckill.claim_allowance(&live, req.user_id, req.ip, req.quantity, rates).await? {
        Claim::Claimed => {}
        Claim::RateLimited => return Err(count(&live, state, ErrorCode::RateLimited)),
        Claim::LimitReached => {
            // A retry (possibly sent to another node) of a request that
            // succeeded has used the allowance already: answer with its order.
            if let Some(key) = &req.idempotency_key {
                if let Ok(bought) = replay(state, &live, req.user_id, key).await {
                    return Ok(bought);
                }
            }
            return Err(count(&live, state, ErrorCode::LimitReached));
        }
    }
    let reserved = reserve(state, &live, &req, now).await;
    // Only an order that exists (or may) keeps its claim on the allowance.
    let written_or_maybe =
        matches!(reserved, Ok(Ok(_) | Err(ReserveError::CommitUnknown)) | Err(NotAnswered::TimedOut(_)));
    if !written_or_maybe {
        state.seckill.unclaim_allowance(&live, req.user_id, req.quantity).await;
    }
    let outcome = match reserved {
        Ok(outcome) => outcome,
        Err(NotAnswered::Full) => return Err(count(&live, state, ErrorCode::Overloaded)),
        Err(NotAnswered::Closed) => {
            return Err(ApiError::unavailable(anyhow::anyhow!("stock actor of event {event_id} stopped")))
        }
        // Timed out: the reservation may still commit; a retry with the same
        // Idempotency-Key returns it.
        Err(NotAnswered::TimedOut(late)) => {
            unclaim_unless_written(state, &live, &req, late);
            return Err(count(&live, state, ErrorCode::Overloaded));
        }
    };
    match outcome {
        Ok(reserved) => Ok(Bought::Created(receipt(&live.event, reserved))),
        Err(ReserveError::DuplicateKey { .. }) => match &req.idempotency_key {
            Some(key) => replay(state, &live, req.user_id, key).await,
            None => Err(ApiError::unavailable(anyhow::anyhow!("order number collision"))),
        },
        Err(ReserveError::SoldOut) => Err(count(&live, state, ErrorCode::SoldOut)),
        Err(ReserveError::LimitReached) => Err(count(&live, state, ErrorCode::LimitReached)),
        Err(ReserveError::NotStarted) => Err(count(&live, state, ErrorCode::NotStarted)),
        Err(ReserveError::Ended) => Err(count(&live, state, ErrorCode::Ended)),
        Err(ReserveError::Overloaded) => Err(count(&live, state, ErrorCode::Overloaded)),
        Err(ReserveError::WriteFailed | ReserveError::CommitUnknown) => {
            Err(ApiError::unavailable(anyhow::anyhow!("group commit failed")))
        }
    }
}

/// Why the stock actor gave no answer.
enum NotAnswered {
    /// Its mailbox is full (nothing was taken).
    Full,
    /// It has stopped (nothing was taken).
    Closed,
    /// No answer in time: the reservation may still commit; its answer
    /// comes here.
    TimedOut(oneshot::Receiver<Result<Reserved, ReserveError>>),
}

/// Asks the event's actor for the units and waits for its answer.
async fn reserve(
    state: &AppState,
    live: &LiveEvent,
    req: &BuyRequest,
    now: SystemTime,
) -> Result<Result<Reserved, ReserveError>, NotAnswered> {
    let (reply, mut answer) = oneshot::channel();
    let message = ReserveStock {
        user_id: req.user_id,
        quantity: req.quantity,
        order_no: order::service::new_order_no(),
        idempotency_key: req.idempotency_key.clone(),
        now,
        reply,
    };
    if let Err(err) = live.actor.try_send(message) {
        return Err(match err {
            SendError::Full(_) => NotAnswered::Full,
            SendError::Closed(_) => NotAnswered::Closed,
        });
    }
    let timeout = Duration::from_millis(state.settings.seckill.reserve_timeout_ms);
    match tokio::time::timeout(timeout, &mut answer).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(_)) | Err(_) => Err(NotAnswered::TimedOut(answer)),
    }
}

/// A reservation whose buyer was told to retry before it was answered:
/// if it turns out not written, the buyer's claim on the shared pool's
/// per-user allowance goes back, or it would count against them for the
/// rest of the sale.
fn unclaim_unless_written(
    state: &AppState,
    live: &std::sync::Arc<LiveEvent>,
    req: &BuyRequest,
    late: oneshot::Receiver<Result<Reserved, ReserveError>>,
) {
    let (state, live, user_id, quantity) = (state.clone(), live.clone(), req.user_id, req.quantity);
    actix_web::rt::spawn(async move {
        if let Ok(outcome) = late.await {
            if !matches!(outcome, Ok(_) | Err(ReserveError::CommitUnknown)) {
                state.seckill.unclaim_allowance(&live, user_id, quantity).await;
            }
        }
    });
}

fn rate(per_event: Option<i32>, default: u32) -> u32 {
    per_event.map_or(default, |r| u32::try_from(r).unwrap_or(0))
}

fn receipt(event: &EventRow, reserved: Reserved) -> OrderReceipt {
    OrderReceipt {
        order_no: reserved.order_no,
        event_id: event.id,
        quantity: i64::from(reserved.quantity),
        amount_cents: reserved.amount_cents,
        currency: event.currency.clone(),
        status: "pending_payment".into(),
        pay_before: Some(DateTime::<Utc>::from(reserved.pay_before)),
    }
}

/// Answers a retried request with the order its key created.
async fn replay(state: &AppState, live: &LiveEvent, user_id: i64, key: &str) -> ApiResult<Bought> {
    let client = state.db.get().await?;
    match order::store::find_by_idempotency_key(&client, user_id, key).await? {
        Some(order) if order.view.seckill_event_id == Some(live.event.id) => {
            Ok(Bought::Replayed(OrderReceipt {
                order_no: order.view.order_no,
                event_id: live.event.id,
                quantity: order.view.quantity,
                amount_cents: order.view.total_cents,
                currency: order.view.currency,
                status: order.view.status,
                pay_before: order.view.pay_before,
            }))
        }
        Some(_) => Err(ErrorCode::IdempotencyKeyReused.into()),
        None => Err(ApiError::new(ErrorCode::IdempotencyInProgress).retry_after(1)),
    }
}

/// An event as shoppers see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    pub sku_id: i64,
    pub title: String,
    pub price_cents: i64,
    pub currency: String,
    pub total_stock: i32,
    /// Units not yet reserved.
    pub remaining_stock: i64,
    pub per_user_limit: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub payment_window_secs: i32,
    pub require_purchase_token: bool,
    /// `upcoming`, `live`, `sold_out` or `ended`.
    pub state: &'static str,
    /// The server's clock, so clients can count down without trusting theirs.
    pub server_time: DateTime<Utc>,
}

/// The shopper's view of a live event.
pub fn view(live: &LiveEvent) -> EventView {
    let now = Utc::now();
    let state = match live.gate.admit(now.timestamp_millis()) {
        Admission::Go => "live",
        Admission::NotStarted => "upcoming",
        Admission::SoldOut => "sold_out",
        Admission::Ended => "ended",
    };
    let e = &live.event;
    EventView {
        id: e.id,
        sku_id: e.sku_id,
        title: e.title.clone(),
        price_cents: e.price_cents,
        currency: e.currency.clone(),
        total_stock: e.total_stock,
        remaining_stock: i64::from(live.gate.remaining()),
        per_user_limit: e.per_user_limit,
        starts_at: e.starts_at,
        ends_at: e.ends_at,
        payment_window_secs: e.payment_window_secs,
        require_purchase_token: e.require_purchase_token,
        state,
        server_time: now,
    }
}

/// Opens an event before its start time (audited).
pub async fn open_event(state: &AppState, actor: Actor, id: i64) -> ApiResult<EventView> {
    let live = live_event(state, id).await?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    if store::mark_opened(&tx, id).await? == 0 {
        return Err(ApiError::new(ErrorCode::InvalidState).with_message("the sale is closed"));
    }
    actor.record(&tx, "seckill.open", format_args!("seckill_event:{id}"), json!({})).await?;
    tx.commit().await?;
    live.gate.open_now();
    state.seckill.announce(id, GateChange::Opened).await;
    Ok(view(&live))
}

/// Closes an event at once (kill switch, audited). Reservations already
/// handed to the writer still commit; no new one is taken.
pub async fn close_event(state: &AppState, actor: Actor, id: i64) -> ApiResult<EventView> {
    let live = live_event(state, id).await?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    store::mark_closed(&tx, id).await?;
    actor.record(&tx, "seckill.close", format_args!("seckill_event:{id}"), json!({})).await?;
    tx.commit().await?;
    live.gate.close();
    state.seckill.announce(id, GateChange::Closed).await;
    Ok(view(&live))
}

/// Orders of one status.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusTotal {
    pub status: String,
    pub orders: i64,
    pub units: i64,
}

/// Refusals of one reason since this node started.
#[derive(Debug, Serialize, ToSchema)]
pub struct RejectionCount {
    pub reason: &'static str,
    pub count: u64,
}

/// The live dashboard of an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventStats {
    pub event: EventView,
    /// Reservations taken but not yet committed.
    pub in_flight: u32,
    /// Committed orders by status (`pending_payment`, `paid`, `cancelled` = expired, ...).
    pub orders: Vec<StatusTotal>,
    /// Refused buy requests on this node, by reason.
    pub rejected: Vec<RejectionCount>,
    /// Reservations waiting for the writer on this node.
    pub writer_queue_depth: usize,
    /// From requests to money.
    pub funnel: Funnel,
}

/// An event's funnel.
#[derive(Debug, Serialize, ToSchema)]
pub struct Funnel {
    /// Buy requests: every order placed plus every refusal counted on this
    /// node (on one node, every request the sale saw).
    pub requests: i64,
    /// Orders placed.
    pub orders: i64,
    /// Orders paid (and any further along).
    pub paid: i64,
    /// Orders cancelled because the payment window passed.
    pub expired: i64,
    /// Orders cancelled otherwise (by the shopper, a merchant or an operator).
    pub cancelled: i64,
}

/// Live numbers of an event.
pub async fn stats(state: &AppState, id: i64) -> ApiResult<EventStats> {
    let live = live_event(state, id).await?;
    let level = live
        .actor
        .send(GetStockLevel)
        .await
        .map_err(|e| ApiError::unavailable(anyhow::anyhow!("stock actor unavailable: {e}")))?;
    let client = state.db.get().await?;
    let orders = store::order_totals(&client, id)
        .await?
        .into_iter()
        .map(|(status, orders, units)| StatusTotal { status, orders, units })
        .collect();
    let rejected: Vec<RejectionCount> = live
        .rejections
        .snapshot()
        .into_iter()
        .map(|(reason, count)| RejectionCount { reason, count })
        .collect();
    let refused: u64 = rejected.iter().map(|r| r.count).sum();
    let placed = store::order_funnel(&client, id).await?;
    let funnel = Funnel {
        requests: placed.orders.saturating_add(i64::try_from(refused).unwrap_or(i64::MAX)),
        orders: placed.orders,
        paid: placed.paid,
        expired: placed.expired,
        cancelled: placed.cancelled,
    };
    Ok(EventStats {
        event: view(&live),
        in_flight: level.in_flight,
        orders,
        rejected,
        writer_queue_depth: state.seckill.writer_queue_depth(),
        funnel,
    })
}

/// A purchase token, issued only while the sale is live.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseToken {
    /// Send as `X-Purchase-Token` with the buy request.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Issues a purchase token for `user_id`, only once the sale is live.
pub async fn purchase_token(state: &AppState, id: i64, user_id: i64) -> ApiResult<PurchaseToken> {
    let live = live_event(state, id).await?;
    let now = Utc::now();
    match live.gate.admit(now.timestamp_millis()) {
        Admission::NotStarted => return Err(ErrorCode::NotStarted.into()),
        Admission::Ended => return Err(ErrorCode::Ended.into()),
        Admission::SoldOut => return Err(ErrorCode::SoldOut.into()),
        Admission::Go => {}
    }
    let settings = &state.settings.seckill;
    let expires_at =
        now + chrono::Duration::seconds(i64::try_from(settings.purchase_token_ttl_secs).unwrap_or(60));
    let token = token::issue(&settings.purchase_token_secret, id, user_id, expires_at.timestamp())
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("cannot sign purchase token")))?;
    Ok(PurchaseToken { token, expires_at })
}
