//! SQL of orders.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

/// An order as its owner sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderView {
    pub order_no: String,
    /// `normal` or `seckill`.
    pub kind: String,
    pub seckill_event_id: Option<i64>,
    /// `pending_payment`, `paid`, `shipped`, `delivered`, `completed` or `cancelled`.
    pub status: String,
    /// Units across all items.
    pub quantity: i64,
    pub total_cents: i64,
    pub currency: String,
    pub pay_before: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

const ORDER_SELECT: &str = "SELECT o.id, o.user_id, o.order_no, o.kind, o.seckill_event_id, o.status, \
     (SELECT COALESCE(sum(quantity), 0)::int8 FROM order_items oi WHERE oi.order_id = o.id) AS quantity, \
     o.total_cents, o.currency, o.pay_before, o.paid_at, o.cancelled_at, o.cancel_reason, o.created_at FROM orders o";

/// An order row with its owner and internal id.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub id: i64,
    pub user_id: i64,
    pub view: OrderView,
}

impl OrderRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            view: OrderView {
                order_no: row.try_get("order_no")?,
                kind: row.try_get("kind")?,
                seckill_event_id: row.try_get("seckill_event_id")?,
                status: row.try_get("status")?,
                quantity: row.try_get("quantity")?,
                total_cents: row.try_get("total_cents")?,
                currency: row.try_get("currency")?,
                pay_before: row.try_get("pay_before")?,
                paid_at: row.try_get("paid_at")?,
                cancelled_at: row.try_get("cancelled_at")?,
                cancel_reason: row.try_get("cancel_reason")?,
                created_at: row.try_get("created_at")?,
            },
        })
    }
}

/// Reads an order by number.
pub async fn find_by_no(
    client: &impl GenericClient,
    order_no: &str,
) -> Result<Option<OrderRow>, tokio_postgres::Error> {
    let stmt = client.prepare_cached(&format!("{ORDER_SELECT} WHERE o.order_no = $1")).await?;
    client.query_opt(&stmt, &[&order_no]).await?.map(|row| OrderRow::from_row(&row)).transpose()
}

/// Reads the order a user created with an idempotency key.
pub async fn find_by_idempotency_key(
    client: &impl GenericClient,
    user_id: i64,
    key: &str,
) -> Result<Option<OrderRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!("{ORDER_SELECT} WHERE o.user_id = $1 AND o.idempotency_key = $2"))
        .await?;
    client.query_opt(&stmt, &[&user_id, &key]).await?.map(|row| OrderRow::from_row(&row)).transpose()
}

/// A page of a user's orders, newest first, optionally of one status.
pub async fn list_for_user(
    client: &impl GenericClient,
    user_id: i64,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<OrderView>, i64), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "{ORDER_SELECT} WHERE o.user_id = $1 AND ($2::text IS NULL OR o.status = $2) \
             ORDER BY o.created_at DESC, o.id DESC LIMIT $3 OFFSET $4"
        ))
        .await?;
    let rows = client.query(&stmt, &[&user_id, &status, &limit, &offset]).await?;
    let count = client
        .prepare_cached(
            "SELECT count(*) FROM orders WHERE user_id = $1 AND ($2::text IS NULL OR status = $2)",
        )
        .await?;
    let total: i64 = client.query_one(&count, &[&user_id, &status]).await?.try_get(0)?;
    let orders = rows.iter().map(|row| OrderRow::from_row(row).map(|o| o.view)).collect::<Result<_, _>>()?;
    Ok((orders, total))
}

/// One status change of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor_id: Option<i64>,
    pub note: String,
    pub at: DateTime<Utc>,
}

/// The history of an order, oldest first.
pub async fn history(
    client: &impl GenericClient,
    order_id: i64,
) -> Result<Vec<HistoryEntry>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT from_status, to_status, actor_id, note, created_at FROM order_history \
             WHERE order_id = $1 ORDER BY id",
        )
        .await?;
    client
        .query(&stmt, &[&order_id])
        .await?
        .iter()
        .map(|row| {
            Ok(HistoryEntry {
                from_status: row.try_get("from_status")?,
                to_status: row.try_get("to_status")?,
                actor_id: row.try_get("actor_id")?,
                note: row.try_get("note")?,
                at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// Marks a pending order paid if its payment window is still open.
/// Returns whether it changed.
pub async fn mark_paid(
    client: &impl GenericClient,
    order_id: i64,
    actor_id: i64,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "WITH paid AS (
                 UPDATE orders SET status = 'paid', paid_at = now(), updated_at = now()
                 WHERE id = $1 AND status = 'pending_payment' AND pay_before > now() RETURNING id
             )
             INSERT INTO order_history (order_id, from_status, to_status, actor_id, note)
             SELECT id, 'pending_payment', 'paid', $2, 'paid (sandbox)' FROM paid RETURNING order_id",
        )
        .await?;
    Ok(client.query_opt(&stmt, &[&order_id, &actor_id]).await?.is_some())
}

/// Records a payment that arrived too late so it can be refunded.
pub async fn record_payment_exception(
    client: &impl GenericClient,
    order_id: i64,
    amount_cents: i64,
    reason: &str,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached("INSERT INTO payment_exceptions (order_id, amount_cents, reason) VALUES ($1, $2, $3)")
        .await?;
    client.execute(&stmt, &[&order_id, &amount_cents, &reason]).await?;
    Ok(())
}

/// Units of a flash-sale order that went back to its event.
#[derive(Debug, Clone, Copy)]
pub struct ReturnedUnits {
    pub event_id: i64,
    pub user_id: i64,
    pub quantity: i32,
}

/// Cancels up to `limit` unpaid orders past their deadline, in one
/// statement: status, history, and (for flash-sale orders) the units back
/// to the event's stock and off the user's count. `SKIP LOCKED` lets
/// several nodes sweep without waiting on each other; the status condition
/// makes each expiry happen exactly once.
pub async fn expire_unpaid(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<ReturnedUnits>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "WITH expired AS (
                 UPDATE orders SET status = 'cancelled', cancelled_at = now(), cancel_reason = 'payment_timeout',
                                   updated_at = now()
                 WHERE id IN (SELECT id FROM orders WHERE status = 'pending_payment' AND pay_before <= now()
                              ORDER BY pay_before LIMIT $1 FOR UPDATE SKIP LOCKED)
                   AND status = 'pending_payment'
                 RETURNING id, user_id, seckill_event_id
             ), units AS (
                 SELECT e.id, e.user_id, e.seckill_event_id,
                        (SELECT sum(quantity) FROM order_items oi WHERE oi.order_id = e.id)::int4 AS quantity
                 FROM expired e
             ), history AS (
                 INSERT INTO order_history (order_id, from_status, to_status, note)
                 SELECT id, 'pending_payment', 'cancelled', 'payment window passed' FROM units
             ), counts AS (
                 UPDATE seckill_user_counts c SET bought = c.bought - s.quantity
                 FROM (SELECT seckill_event_id, user_id, sum(quantity)::int4 AS quantity FROM units
                       WHERE seckill_event_id IS NOT NULL GROUP BY 1, 2) s
                 WHERE c.event_id = s.seckill_event_id AND c.user_id = s.user_id
             ), stock AS (
                 UPDATE seckill_events ev SET remaining_stock = ev.remaining_stock + s.quantity, updated_at = now()
                 FROM (SELECT seckill_event_id, sum(quantity)::int4 AS quantity FROM units
                       WHERE seckill_event_id IS NOT NULL GROUP BY 1) s
                 WHERE ev.id = s.seckill_event_id
             )
             SELECT seckill_event_id, user_id, quantity FROM units WHERE seckill_event_id IS NOT NULL",
        )
        .await?;
    client
        .query(&stmt, &[&limit])
        .await?
        .iter()
        .map(|row| {
            Ok(ReturnedUnits {
                event_id: row.try_get("seckill_event_id")?,
                user_id: row.try_get("user_id")?,
                quantity: row.try_get("quantity")?,
            })
        })
        .collect()
}
