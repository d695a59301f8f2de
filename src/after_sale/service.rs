//! After-sale rules: what a shopper may ask to get back, and carrying out
//! each step of a request; the step that refunds moves the order's lines,
//! stock, sales count, refund records and books in one transaction.

use chrono::{TimeDelta, Utc};
use deadpool_postgres::GenericClient;
use rand::Rng;
use serde_json::json;

use super::lifecycle::{self, Event, Kind, Status};
use super::store::{self, AfterSaleItem, AfterSaleRow, Change, NewAfterSale};
use crate::audit::Actor;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::finance::order_money::{self, RefundAmount};
use crate::inventory::store::{self as inventory, Movement, MovementKind};
use crate::order::lifecycle::{OrderEvent, OrderStatus, Party};
use crate::order::service::{self as orders, Aftermath, Step};
use crate::order::store::{self as order_store, OrderItem, OrderRow};
use crate::state::AppState;
use crate::validate::Validator;

/// Longest reason or note.
const NOTE_MAX_CHARS: usize = 500;
/// Most photos on one request.
const MAX_PHOTOS: usize = 9;

/// Units of one line a shopper asks about.
#[derive(Debug, Clone, Copy)]
pub struct RequestedLine {
    pub sku_id: i64,
    pub quantity: i32,
}

/// A request as the shopper files it.
#[derive(Debug)]
pub struct NewRequest {
    pub kind: Kind,
    pub reason: String,
    /// Photo URLs (http or https).
    pub photos: Vec<String>,
    /// Some lines; none means everything not refunded yet.
    pub items: Option<Vec<RequestedLine>>,
}

/// A new case number: `R` + `yymmdd` + 12 random digits.
fn new_case_no() -> String {
    let random: u64 = rand::thread_rng().gen_range(0..1_000_000_000_000);
    format!("R{}{random:012}", Utc::now().format("%y%m%d"))
}

fn no_such_request() -> ApiError {
    ApiError::new(ErrorCode::NotFound).with_message("no such after-sale request")
}

fn validate(request: &NewRequest) -> ApiResult<()> {
    let mut v = Validator::new();
    v.length("reason", request.reason.trim(), 1, NOTE_MAX_CHARS);
    v.check("photos", request.photos.len() <= MAX_PHOTOS, "too_many");
    for (n, url) in request.photos.iter().enumerate() {
        let web = url.starts_with("https://") || url.starts_with("http://");
        v.check(&format!("photos[{n}]"), web && url.len() <= 500, "not_a_url");
    }
    if let Some(items) = &request.items {
        v.check("items", !items.is_empty(), "required");
        for (n, item) in items.iter().enumerate() {
            v.check(&format!("items[{n}].quantity"), item.quantity > 0, "must_be_positive");
            let repeated = items[..n].iter().any(|earlier| earlier.sku_id == item.sku_id);
            v.check(&format!("items[{n}].sku_id"), !repeated, "duplicate");
        }
    }
    v.finish()
}

/// What is left to ask for on one line: units and cents neither refunded
/// nor held by another open request.
fn left(line: &OrderItem, held: &[(i64, i32, i64)]) -> (i32, i64) {
    let (held_units, held_cents) = held
        .iter()
        .filter(|(sku, _, _)| *sku == line.sku_id)
        .fold((0, 0), |(u, c), (_, hu, hc)| (u + hu, c + hc));
    (line.quantity - line.refunded_quantity - held_units, line.total_cents - line.refunded_cents - held_cents)
}

/// The cents `units` of `line` refund: their share of the line's price,
/// and exactly what is left when they are the last units, so refunding a
/// line piece by piece adds up to what was paid for it.
fn share(line: &OrderItem, units: i32, left: (i32, i64)) -> i64 {
    if units == left.0 {
        left.1
    } else {
        let share = i128::from(line.total_cents) * i128::from(units) / i128::from(line.quantity.max(1));
        i64::try_from(share).unwrap_or(i64::MAX).min(left.1)
    }
}

/// Chooses the lines and cents of a request from what is left on the order
/// (409 `exceeds_refundable` for more than that).
fn plan(
    lines: &[OrderItem],
    held: &[(i64, i32, i64)],
    wanted: Option<&[RequestedLine]>,
) -> ApiResult<Vec<AfterSaleItem>> {
    let planned: Vec<AfterSaleItem> = match wanted {
        None => lines
            .iter()
            .filter_map(|line| {
                let left = left(line, held);
                (left.0 > 0).then(|| AfterSaleItem {
                    sku_id: line.sku_id,
                    title: line.title.clone(),
                    quantity: left.0,
                    amount_cents: share(line, left.0, left),
                })
            })
            .collect(),
        Some(wanted) => {
            let mut v = Validator::new();
            for (n, item) in wanted.iter().enumerate() {
                v.check(
                    &format!("items[{n}].sku_id"),
                    lines.iter().any(|l| l.sku_id == item.sku_id),
                    "not_in_order",
                );
            }
            v.finish()?;
            let mut planned = Vec::with_capacity(wanted.len());
            for item in wanted {
                let Some(line) = lines.iter().find(|l| l.sku_id == item.sku_id) else { continue };
                let left = left(line, held);
                if item.quantity > left.0 {
                    return Err(ApiError::new(ErrorCode::ExceedsRefundable).with_message(format!(
                        "only {} units of SKU {} are left to refund",
                        left.0.max(0),
                        item.sku_id
                    )));
                }
                planned.push(AfterSaleItem {
                    sku_id: item.sku_id,
                    title: line.title.clone(),
                    quantity: item.quantity,
                    amount_cents: share(line, item.quantity, left),
                });
            }
            planned
        }
    };
    if planned.iter().map(|item| item.amount_cents).sum::<i64>() <= 0 {
        return Err(ApiError::new(ErrorCode::ExceedsRefundable).with_message("nothing is left to refund"));
    }
    Ok(planned)
}

/// Locks an order for the rest of the transaction.
async fn lock_order(tx: &impl GenericClient, order_id: i64) -> ApiResult<OrderRow> {
    let stmt = tx.prepare_cached("SELECT id FROM orders WHERE id = $1 FOR UPDATE").await?;
    tx.query_opt(&stmt, &[&order_id]).await?.ok_or_else(no_such_order)?;
    order_store::find(tx, order_id).await?.ok_or_else(no_such_order)
}

fn no_such_order() -> ApiError {
    ApiError::new(ErrorCode::NotFound).with_message("no such order")
}

/// Whether `order` can take a request of `kind` now: a refund while it is
/// paid and unshipped, a return once delivered and within the window.
fn check_order(state: &AppState, order: &OrderRow, kind: Kind) -> ApiResult<()> {
    check_order_state(order, kind)?;
    if kind == Kind::Return {
        let received = order.view.delivered_at.or(order.view.completed_at);
        let window = TimeDelta::days(i64::from(state.settings.finance.return_window_days));
        if received.is_some_and(|at| at + window < state.clock.now()) {
            return Err(ApiError::new(ErrorCode::ReturnWindowClosed));
        }
    }
    Ok(())
}

/// Files a request on one of the shopper's orders. The order is locked
/// while the lines are chosen, so racing requests can never ask for the
/// same units twice.
pub async fn open(
    state: &AppState,
    user_id: i64,
    order_no: &str,
    request: NewRequest,
) -> ApiResult<AfterSaleRow> {
    validate(&request)?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let order = match order_store::find_by_no(&tx, order_no).await? {
        Some(order) if order.user_id == user_id => lock_order(&tx, order.id).await?,
        _ => return Err(no_such_order()),
    };
    check_order(state, &order, request.kind)?;
    if order.view.kind == "seckill" && request.items.is_some() {
        // A flash-sale order is one item at one price: all or nothing.
        return Err(ApiError::invalid_field("items", "whole_order_only"));
    }
    let lines = order_store::items(&tx, order.id).await?;
    let held = store::held(&tx, order.id).await?;
    let planned = plan(&lines, &held, request.items.as_deref())?;
    let case_no = new_case_no();
    let new = NewAfterSale {
        case_no: &case_no,
        order_id: order.id,
        user_id,
        shop_id: order.view.shop_id,
        kind: request.kind.as_str(),
        reason: request.reason.trim(),
        photos: &request.photos,
        items: &planned,
    };
    store::insert(&tx, &new).await?;
    tx.commit().await?;
    store::find_by_no(&client, &case_no, false).await?.ok_or_else(no_such_request)
}

/// Who takes a step, which decides which requests they reach (any other
/// request is a 404, as if it did not exist).
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Shopper(i64),
    Shop(i64),
    /// Audited.
    Operator(Actor),
}

impl Scope {
    /// Whether the request is within reach.
    pub fn reaches(&self, request: &AfterSaleRow) -> bool {
        match self {
            Self::Shopper(user_id) => request.user_id == *user_id,
            Self::Shop(shop_id) => request.view.shop_id == Some(*shop_id),
            Self::Operator(_) => true,
        }
    }

    fn party(&self) -> Party {
        match self {
            Self::Shopper(_) => Party::Shopper,
            Self::Shop(_) => Party::Merchant,
            Self::Operator(_) => Party::Operator,
        }
    }
}

/// Reads a request within `scope`.
pub async fn find(client: &impl GenericClient, scope: Scope, case_no: &str) -> ApiResult<AfterSaleRow> {
    match store::find_by_no(client, case_no, false).await? {
        Some(request) if scope.reaches(&request) => Ok(request),
        _ => Err(no_such_request()),
    }
}

/// One step of a request as asked for.
#[derive(Debug, Clone, Copy)]
pub struct AfterSaleStep<'a> {
    pub event: Event,
    /// The acting user.
    pub actor_id: i64,
    /// Why (required to reject or escalate).
    pub note: &'a str,
    /// Carrier and tracking number, to ship goods back.
    pub return_shipment: Option<(&'a str, &'a str)>,
}

fn validate_step(step: &AfterSaleStep<'_>) -> ApiResult<()> {
    let mut v = Validator::new();
    let note_required = matches!(step.event, Event::Reject(_) | Event::Escalate);
    v.length("note", step.note.trim(), usize::from(note_required), NOTE_MAX_CHARS);
    if step.event == Event::ShipBack {
        let (carrier, tracking_no) = step.return_shipment.unwrap_or_default();
        v.length("carrier", carrier.trim(), 1, 40).length("tracking_no", tracking_no.trim(), 1, 60);
    }
    v.finish()
}

/// Takes one step of a request within `scope`, in one transaction with
/// everything it sets off (the refund above all), and returns the request
/// as it is afterwards.
pub async fn act(
    state: &AppState,
    scope: Scope,
    case_no: &str,
    step: AfterSaleStep<'_>,
) -> ApiResult<AfterSaleRow> {
    validate_step(&step)?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    // The order first, then the request: the order's own steps (a
    // cancellation closing its requests) lock in that order too.
    let order_id = match store::find_by_no(&tx, case_no, false).await? {
        Some(request) if scope.reaches(&request) => request.order_id,
        _ => return Err(no_such_request()),
    };
    let order = lock_order(&tx, order_id).await?;
    let request = store::find_by_no(&tx, case_no, true).await?.ok_or_else(no_such_request)?;
    let broken = || ApiError::internal(anyhow::anyhow!("after-sale {case_no} has an unknown kind or status"));
    let kind = Kind::parse(&request.view.kind).ok_or_else(broken)?;
    let from = Status::parse(&request.view.status).ok_or_else(broken)?;
    let goods_returned = request.view.return_tracking_no.is_some();
    let to = lifecycle::next(kind, from, step.event, goods_returned)?;
    if from == Status::Rejected && to == Status::Disputed {
        // A rejected request let go of its units; they must still be free,
        // and the order still able to take the request.
        check_order_state(&order, kind)?;
        let lines = order_store::items(&tx, request.order_id).await?;
        let held = store::held(&tx, request.order_id).await?;
        let wanted: Vec<_> = store::items(&tx, request.id)
            .await?
            .iter()
            .map(|item| RequestedLine { sku_id: item.sku_id, quantity: item.quantity })
            .collect();
        plan(&lines, &held, Some(&wanted))?;
    }
    let note = step.note.trim();
    let change = Change {
        id: request.id,
        from,
        to,
        actor_id: Some(step.actor_id),
        note,
        decision: matches!(step.event, Event::Approve(_) | Event::Reject(_)),
        return_shipment: step.return_shipment.map(|(carrier, tracking)| (carrier.trim(), tracking.trim())),
    };
    store::change(&tx, &change).await?;
    let aftermath = if to == Status::Refunded {
        pay_out(&tx, state, &order, &request, kind, scope.party(), step.actor_id).await?
    } else {
        Aftermath::default()
    };
    if let Scope::Operator(actor) = scope {
        let detail = json!({"from": from.as_str(), "to": to.as_str(), "note": note});
        actor.record(&tx, &format!("after_sale.{}", to.as_str()), case_no, detail).await?;
    }
    tx.commit().await?;
    // Settling may need connections of its own (refunds): hold none meanwhile.
    drop(client);
    aftermath.settle(state).await;
    let client = state.db.get().await?;
    store::find_by_no(&client, case_no, false).await?.ok_or_else(no_such_request)
}

/// Refunds a request: marks its units refunded on the order's lines
/// (their CHECKs refuse more than was bought or paid), puts catalog stock
/// back as a recorded movement, takes the units off the sales count, owes
/// the money through the gateway with its books entry, and cancels an
/// unshipped order that has nothing left in it.
async fn pay_out(
    tx: &impl GenericClient,
    state: &AppState,
    order: &OrderRow,
    request: &AfterSaleRow,
    kind: Kind,
    party: Party,
    actor_id: i64,
) -> ApiResult<Aftermath> {
    check_order_state(order, kind)?;
    let case_no = &request.view.case_no;
    let reason = format!("after-sale {case_no}");
    // Stock first (SKUs in id order), then sales counts (products in id
    // order), so racing refunds and cancellations lock rows in one order.
    let mut sold_back: Vec<(i64, i32)> = Vec::new();
    for item in store::items(tx, request.id).await? {
        let product = store::refund_line(tx, order.id, item.sku_id, item.quantity, item.amount_cents)
            .await
            .map_err(|err| match db::violated_check(&err) {
                Some(_) => ApiError::new(ErrorCode::ExceedsRefundable),
                None => err.into(),
            })?
            .ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("{case_no}: SKU {} not in the order", item.sku_id))
            })?;
        let (Some(product_id), Some(shop_id)) = (product, order.view.shop_id) else { continue };
        if order.view.kind != "normal" {
            continue;
        }
        let movement = Movement {
            shop_id,
            sku_id: item.sku_id,
            kind: match kind {
                Kind::Refund => MovementKind::Release,
                Kind::Return => MovementKind::Return,
            },
            delta: item.quantity,
            order_id: Some(order.id),
            actor_id: Some(actor_id),
            reason: &reason,
        };
        inventory::record(tx, &movement).await?;
        sold_back.push((product_id, item.quantity));
    }
    sold_back.sort_unstable();
    for (product_id, units) in &sold_back {
        store::uncount_sales(tx, *product_id, *units).await?;
    }
    let changed_products = sold_back.into_iter().map(|(product_id, _)| product_id).collect();
    let refunds = order_money::owe_refund(
        tx,
        order.id,
        RefundAmount::Exact(request.view.amount_cents),
        &reason,
        Some(request.id),
    )
    .await?;
    let mut aftermath = Aftermath::of_refunds(refunds, changed_products);
    let nothing_left =
        order_store::items(tx, order.id).await?.iter().all(|line| line.refunded_quantity == line.quantity);
    if kind == Kind::Refund && nothing_left {
        let note = format!("refunded in full by {case_no}");
        let step = Step {
            event: OrderEvent::Cancel(party),
            actor_id: Some(actor_id),
            note: &note,
            reason: Some(&note),
        };
        aftermath = aftermath.and(orders::apply(tx, state, order, step).await?);
    }
    Ok(aftermath)
}

/// A refund needs the order still unshipped (shipping is refused while
/// one is open), a return needs it delivered.
fn check_order_state(order: &OrderRow, kind: Kind) -> ApiResult<()> {
    let status = OrderStatus::parse(&order.view.status).unwrap_or(OrderStatus::Cancelled);
    let hint = match (kind, status) {
        (Kind::Refund, OrderStatus::Paid)
        | (Kind::Return, OrderStatus::Delivered | OrderStatus::Completed) => return Ok(()),
        (Kind::Return, OrderStatus::Paid) => "; it has not shipped: ask for a refund",
        (Kind::Refund, OrderStatus::Delivered | OrderStatus::Completed) => "; ask for a return",
        _ => "",
    };
    Err(ApiError::new(status.conflict_code()).with_message(format!("the order is {}{hint}", status.as_str())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn line(sku_id: i64, quantity: i32, total_cents: i64) -> OrderItem {
        OrderItem {
            sku_id,
            product_id: Some(1),
            title: format!("sku {sku_id}"),
            spec_values: Default::default(),
            quantity,
            unit_price_cents: total_cents / i64::from(quantity),
            total_cents,
            refunded_quantity: 0,
            refunded_cents: 0,
        }
    }

    #[test]
    fn refunding_a_line_unit_by_unit_adds_up_to_what_was_paid() {
        let mut order_line = line(1, 3, 1_000);
        let mut refunded = 0;
        for _ in 0..3 {
            let planned = plan(
                std::slice::from_ref(&order_line),
                &[],
                Some(&[RequestedLine { sku_id: 1, quantity: 1 }]),
            )
            .unwrap();
            refunded += planned[0].amount_cents;
            order_line.refunded_quantity += 1;
            order_line.refunded_cents += planned[0].amount_cents;
        }
        assert_eq!(refunded, 1_000);
        let more = plan(&[order_line], &[], Some(&[RequestedLine { sku_id: 1, quantity: 1 }]));
        assert_eq!(more.unwrap_err().code(), ErrorCode::ExceedsRefundable);
    }

    #[test]
    fn units_held_by_an_open_request_cannot_be_asked_for_again() {
        let lines = [line(1, 2, 500), line(2, 1, 300)];
        let held = [(1, 2, 500)];
        let whole = plan(&lines, &held, None).unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!((whole[0].sku_id, whole[0].quantity, whole[0].amount_cents), (2, 1, 300));
        let again = plan(&lines, &held, Some(&[RequestedLine { sku_id: 1, quantity: 1 }]));
        assert_eq!(again.unwrap_err().code(), ErrorCode::ExceedsRefundable);
    }

    #[test]
    fn a_sku_outside_the_order_is_named() {
        let err =
            plan(&[line(1, 1, 100)], &[], Some(&[RequestedLine { sku_id: 9, quantity: 1 }])).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationFailed);
    }
}
