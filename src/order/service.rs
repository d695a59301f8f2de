//! Order rules: numbering, carrying out lifecycle steps with their side
//! effects (stock back on cancellation), the sandbox payment, and the
//! sweepers that expire unpaid orders and complete delivered ones.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use deadpool_postgres::GenericClient;
use rand::Rng;

use super::lifecycle::{self, OrderEvent, OrderStatus, Party};
use super::store::{self, OrderRow, ReturnedUnits, Transition};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::finance::order_money::{self, RefundAmount};
use crate::inventory::store::{self as inventory, Movement, MovementKind};
use crate::state::AppState;

/// Longest cancellation reason or order note.
pub const NOTE_MAX_CHARS: usize = 500;

/// A new order number: `yymmdd` + 12 random digits. Readable, sortable by
/// day, and not guessable from its neighbours.
pub fn new_order_no() -> String {
    let random: u64 = rand::thread_rng().gen_range(0..1_000_000_000_000);
    format!("{}{random:012}", Utc::now().format("%y%m%d"))
}

fn no_such_order() -> ApiError {
    ApiError::new(ErrorCode::NotFound).with_message("no such order")
}

/// Reads an order the caller owns; another user's order is a 404, as if it
/// did not exist.
pub async fn own_order(state: &AppState, user_id: i64, order_no: &str) -> ApiResult<OrderRow> {
    let client = state.db.get().await?;
    match store::find_by_no(&client, order_no).await? {
        Some(order) if order.user_id == user_id => Ok(order),
        _ => Err(no_such_order()),
    }
}

/// Reads an order of `shop_id`; another shop's order is a 404.
pub async fn shop_order(client: &impl GenericClient, shop_id: i64, order_no: &str) -> ApiResult<OrderRow> {
    match store::find_by_no(client, order_no).await? {
        Some(order) if order.view.shop_id == Some(shop_id) => Ok(order),
        _ => Err(no_such_order()),
    }
}

/// One lifecycle step as asked for.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    pub event: OrderEvent,
    /// Who acts (none for the system).
    pub actor_id: Option<i64>,
    /// Recorded in the history.
    pub note: &'a str,
    /// Why, for a cancellation.
    pub reason: Option<&'a str>,
}

/// Work that must wait until the step's transaction has committed.
#[derive(Debug, Default)]
#[must_use = "settle it after the commit"]
pub struct Aftermath {
    seckill_returns: Vec<ReturnedUnits>,
    /// Products whose stock or sales count changed.
    changed_products: Vec<i64>,
    /// Refunds decided by the step, to send through their gateways.
    refunds: Vec<i64>,
}

impl Aftermath {
    /// Refunds to send and products whose detail changed, decided outside
    /// a lifecycle step (an after-sale refund).
    pub fn of_refunds(refunds: Vec<i64>, changed_products: Vec<i64>) -> Self {
        Self { refunds, changed_products, ..Self::default() }
    }

    /// Both aftermaths' work.
    pub fn and(mut self, other: Aftermath) -> Self {
        self.seckill_returns.extend(other.seckill_returns);
        self.changed_products.extend(other.changed_products);
        self.refunds.extend(other.refunds);
        self
    }

    /// Hands flash-sale units back to their stock actors and drops
    /// changed products from the detail cache.
    pub async fn settle(self, state: &AppState) {
        for unit in self.seckill_returns {
            state
                .seckill
                .release(unit.event_id, unit.user_id, u32::try_from(unit.quantity).unwrap_or(0))
                .await;
        }
        for product_id in self.changed_products {
            state.products.invalidate(product_id).await;
        }
        for refund_id in self.refunds {
            crate::payment::service::send_refund_logged(state, refund_id).await;
        }
    }
}

/// Applies `step` to `order` inside the caller's transaction: checks it
/// against the state machine, moves the order only from the state it was
/// read in, records the history, and on cancellation returns the stock
/// exactly once (to the SKUs through the ledger, or to the flash sale).
pub async fn apply(
    tx: &impl GenericClient,
    state: &AppState,
    order: &OrderRow,
    step: Step<'_>,
) -> ApiResult<Aftermath> {
    let from = OrderStatus::parse(&order.view.status)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown order status {}", order.view.status)))?;
    let to = lifecycle::next(from, step.event)?;
    let now = state.clock.now();
    let complete_after = (to == OrderStatus::Delivered)
        .then(|| now + TimeDelta::days(i64::from(state.settings.orders.auto_complete_days)));
    let transition = Transition {
        order_id: order.id,
        from,
        to,
        now,
        actor_id: step.actor_id,
        note: step.note,
        cancel_reason: step.reason,
        complete_after,
        within_payment_window: step.event == OrderEvent::Pay,
    };
    if !store::transition(tx, &transition).await? {
        // Another step won the race (or the payment window closed): answer
        // for the state the order is in now.
        let current = store::find(tx, order.id).await?.ok_or_else(no_such_order)?;
        let status = OrderStatus::parse(&current.view.status).unwrap_or(from);
        return Err(match lifecycle::next(status, step.event) {
            Err(conflict) => conflict,
            Ok(_) if step.event == OrderEvent::Pay => ApiError::new(ErrorCode::OrderExpired),
            Ok(_) => {
                ApiError::new(ErrorCode::InvalidState).with_message("the order changed meanwhile; retry")
            }
        });
    }
    let mut aftermath = Aftermath::default();
    match to {
        OrderStatus::Cancelled => {
            // The order's money goes back whole: nothing is left to ask for.
            crate::after_sale::store::close_open(tx, order.id, step.actor_id, "the order was cancelled")
                .await?;
            if order.view.kind == "seckill" {
                aftermath.seckill_returns.extend(store::return_seckill_units(tx, order.id).await?);
            } else {
                aftermath.changed_products = restock(tx, order, step.actor_id).await?;
            }
            if from == OrderStatus::Paid {
                // Whatever after-sale requests have not refunded yet goes
                // back through the gateway that took it.
                let reason = "order cancelled after payment";
                aftermath.refunds =
                    order_money::owe_refund(tx, order.id, RefundAmount::Remaining, reason, None).await?;
                aftermath.changed_products.extend(store::count_sales(tx, order.id, -1).await?);
            }
        }
        OrderStatus::Paid => {
            order_money::record_payment(tx, order.id, order.view.total_cents).await?;
            aftermath.changed_products = store::count_sales(tx, order.id, 1).await?;
        }
        OrderStatus::Completed => {
            // Completion pays the shop; a request being worked on holds the
            // money in escrow until it is decided.
            if crate::after_sale::store::has_open(tx, order.id, None).await? {
                return Err(ApiError::new(ErrorCode::AfterSaleOpen)
                    .with_message("an after-sale request on this order is still open"));
            }
            order_money::settle(tx, order.id, state.settings.finance.commission_bps()).await?;
        }
        _ => {}
    }
    Ok(aftermath)
}

/// Returns a cancelled normal order's units to its SKUs as `release`
/// movements (less what after-sale refunds already returned); the products
/// whose stock changed.
async fn restock(tx: &impl GenericClient, order: &OrderRow, actor_id: Option<i64>) -> ApiResult<Vec<i64>> {
    let shop_id =
        order.view.shop_id.ok_or_else(|| ApiError::internal(anyhow::anyhow!("normal order without shop")))?;
    let reason = format!("order {} cancelled", order.view.order_no);
    let mut products = Vec::new();
    for item in store::items(tx, order.id).await? {
        let units = item.quantity - item.refunded_quantity;
        if units == 0 {
            continue;
        }
        let movement = Movement {
            shop_id,
            sku_id: item.sku_id,
            kind: MovementKind::Release,
            delta: units,
            order_id: Some(order.id),
            actor_id,
            reason: &reason,
        };
        let moved = inventory::record(tx, &movement).await?.ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("SKU {} of an order is missing", item.sku_id))
        })?;
        products.push(moved.product_id);
    }
    Ok(products)
}

/// Applies `step` to `order` in a transaction of its own and returns the
/// order as it is afterwards.
pub async fn act(state: &AppState, order: &OrderRow, step: Step<'_>) -> ApiResult<OrderRow> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let aftermath = apply(&tx, state, order, step).await?;
    tx.commit().await?;
    // Settling may need connections of its own (refunds): hold none meanwhile.
    drop(client);
    aftermath.settle(state).await;
    let client = state.db.get().await?;
    store::find(&client, order.id).await?.ok_or_else(no_such_order)
}

/// Who cancels, for the rules on reasons.
pub fn cancel_step(party: Party, actor_id: i64, reason: Option<&str>) -> ApiResult<Step<'_>> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let mut v = crate::validate::Validator::new();
    match reason {
        Some(reason) => v.length("reason", reason, 1, NOTE_MAX_CHARS),
        // Shoppers may just change their mind; merchants and operators say why.
        None => v.check("reason", party == Party::Shopper, "required"),
    };
    v.finish()?;
    let note = match party {
        Party::Shopper => "cancelled by the shopper",
        Party::Merchant => "cancelled by the merchant",
        Party::Operator => "cancelled by an operator",
        Party::System => "cancelled",
    };
    Ok(Step {
        event: OrderEvent::Cancel(party),
        actor_id: Some(actor_id),
        note,
        reason: reason.or(Some(note)),
    })
}

/// Pays an order through the sandbox: succeeds only while it is pending and
/// inside its payment window. Paying an already paid order is a no-op. A
/// payment for an expired or cancelled order is refused and recorded for
/// refund; it never resurrects the order.
pub async fn pay(state: &AppState, user_id: i64, order_no: &str) -> ApiResult<OrderRow> {
    let order = own_order(state, user_id, order_no).await?;
    if order.view.status == OrderStatus::Paid.as_str() {
        return Ok(order);
    }
    let step = Step { event: OrderEvent::Pay, actor_id: Some(user_id), note: "paid (sandbox)", reason: None };
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    match apply(&tx, state, &order, step).await {
        Ok(aftermath) => {
            tx.commit().await?;
            // Settling may need connections of its own (refunds): hold none meanwhile.
            drop(client);
            aftermath.settle(state).await;
            let client = state.db.get().await?;
            store::find(&client, order.id).await?.ok_or_else(no_such_order)
        }
        Err(err) if matches!(err.code(), ErrorCode::OrderExpired | ErrorCode::OrderCancelled) => {
            store::record_payment_exception(&tx, order.id, order.view.total_cents, "order_expired").await?;
            tx.commit().await?;
            Err(ApiError::new(ErrorCode::OrderExpired)
                .with_message("the payment window has passed; the payment is recorded for refund"))
        }
        Err(err) if err.code() == ErrorCode::OrderPaid => {
            drop(tx);
            store::find(&client, order.id).await?.ok_or_else(no_such_order)
        }
        Err(err) => Err(err),
    }
}

/// Runs the order sweepers every `interval`, forever: unpaid orders past
/// their deadline are cancelled (flash-sale units back to their actors,
/// cart units back to their SKUs) and delivered orders past their
/// auto-completion time complete. Driven by stored deadlines, so they
/// catch up after a restart; only the cluster's leader sweeps (and
/// `SKIP LOCKED` keeps a hand-over between leaders harmless).
pub async fn run_sweepers(state: AppState, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        if !state.leadership.is_leader() {
            continue;
        }
        if let Err(err) = sweep(&state).await {
            tracing::warn!(error = %err, "order sweep failed");
        }
    }
}

/// Orders one sweep takes at a time.
const SWEEP_BATCH: i64 = 500;

/// One pass of every sweeper, until nothing is due.
pub async fn sweep(state: &AppState) -> ApiResult<()> {
    loop {
        let now = state.clock.now();
        let client = state.db.get().await?;
        let units = store::expire_unpaid_seckill(&client, now, SWEEP_BATCH).await?;
        drop(client);
        let full = units.len() as i64 >= SWEEP_BATCH;
        Aftermath { seckill_returns: units, ..Aftermath::default() }.settle(state).await;
        if !full {
            break;
        }
    }
    while sweep_batch(state, OrderEvent::Expire).await? {}
    while sweep_batch(state, OrderEvent::AutoComplete).await? {}
    Ok(())
}

/// Applies `event` (expiry or auto-completion) to a batch of due orders,
/// each in a transaction of its own: one order that fails (and is logged)
/// never holds up the others, and no transaction locks more than one
/// order's SKUs. Whether there may be more due.
async fn sweep_batch(state: &AppState, event: OrderEvent) -> ApiResult<bool> {
    let now = state.clock.now();
    let client = state.db.get().await?;
    let (ids, step) = if event == OrderEvent::Expire {
        let step =
            Step { event, actor_id: None, note: "payment window passed", reason: Some("payment_timeout") };
        (store::due_to_expire(&client, now, SWEEP_BATCH).await?, step)
    } else {
        let step = Step { event, actor_id: None, note: "completed automatically", reason: None };
        (store::due_to_complete(&client, now, SWEEP_BATCH).await?, step)
    };
    drop(client);
    let mut failed = 0;
    for order_id in &ids {
        if let Err(err) = sweep_one(state, *order_id, step).await {
            failed += 1;
            tracing::warn!(order_id, error = %err, "order sweep skipped an order");
        }
    }
    Ok(ids.len() as i64 >= SWEEP_BATCH && failed < ids.len())
}

async fn sweep_one(state: &AppState, order_id: i64, step: Step<'_>) -> ApiResult<()> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let Some(order) = store::lock_unless_busy(&tx, order_id).await? else { return Ok(()) };
    let due = match step.event {
        OrderEvent::Expire => order.view.status == OrderStatus::PendingPayment.as_str(),
        _ => order.view.status == OrderStatus::Delivered.as_str(),
    };
    if !due {
        // Paid, cancelled or completed since it was found: nothing to do.
        return Ok(());
    }
    let aftermath = apply(&tx, state, &order, step).await?;
    tx.commit().await?;
    drop(client);
    aftermath.settle(state).await;
    Ok(())
}
