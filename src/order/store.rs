//! SQL of orders.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::lifecycle::OrderStatus;
use crate::page::Paging;

/// An order as its owner sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderView {
    pub order_no: String,
    /// The shop selling it (null for flash-sale orders of events without one).
    pub shop_id: Option<i64>,
    /// The checkout that placed it with its sibling orders (one per shop).
    pub checkout_id: Option<i64>,
    /// `normal` or `seckill`.
    pub kind: String,
    pub seckill_event_id: Option<i64>,
    /// `pending_payment`, `paid`, `shipped`, `delivered`, `completed` or `cancelled`.
    pub status: String,
    /// Units across all items.
    pub quantity: i64,
    pub total_cents: i64,
    /// Refunded so far (after-sale requests, or a cancellation after payment).
    pub refunded_cents: i64,
    pub currency: String,
    pub pay_before: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// When a delivered order completes by itself.
    pub complete_after: Option<DateTime<Utc>>,
    /// The address as it was at checkout.
    #[schema(value_type = Option<Object>)]
    pub shipping_address: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

const ORDER_SELECT: &str = "SELECT o.id, o.user_id, o.order_no, o.shop_id, o.checkout_id, o.kind, \
     o.seckill_event_id, o.status, \
     (SELECT COALESCE(sum(quantity), 0)::int8 FROM order_items oi WHERE oi.order_id = o.id) AS quantity, \
     o.total_cents, o.refunded_cents, o.currency, o.pay_before, o.paid_at, o.cancelled_at, o.cancel_reason, o.shipped_at, \
     o.delivered_at, o.completed_at, o.complete_after, o.shipping_address, o.created_at FROM orders o";

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
                shop_id: row.try_get("shop_id")?,
                checkout_id: row.try_get("checkout_id")?,
                kind: row.try_get("kind")?,
                seckill_event_id: row.try_get("seckill_event_id")?,
                status: row.try_get("status")?,
                quantity: row.try_get("quantity")?,
                total_cents: row.try_get("total_cents")?,
                refunded_cents: row.try_get("refunded_cents")?,
                currency: row.try_get("currency")?,
                pay_before: row.try_get("pay_before")?,
                paid_at: row.try_get("paid_at")?,
                cancelled_at: row.try_get("cancelled_at")?,
                cancel_reason: row.try_get("cancel_reason")?,
                shipped_at: row.try_get("shipped_at")?,
                delivered_at: row.try_get("delivered_at")?,
                completed_at: row.try_get("completed_at")?,
                complete_after: row.try_get("complete_after")?,
                shipping_address: row.try_get("shipping_address")?,
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

/// One status change to apply.
pub struct Transition<'a> {
    pub order_id: i64,
    /// The status it was planned from: the change applies only if the
    /// order is still in it.
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub now: DateTime<Utc>,
    pub actor_id: Option<i64>,
    pub note: &'a str,
    /// For `cancelled`.
    pub cancel_reason: Option<&'a str>,
    /// For `delivered`: when the order completes by itself.
    pub complete_after: Option<DateTime<Utc>>,
    /// For `paid`: only while the payment window is still open.
    pub within_payment_window: bool,
}

/// Applies a status change and records it in the history, in one
/// statement, stamping the matching timestamp. `false` when the order was
/// no longer in `from` (another step won) or its payment window closed.
pub async fn transition(
    client: &impl GenericClient,
    t: &Transition<'_>,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "WITH moved AS (
                 UPDATE orders SET status = $3, updated_at = $4,
                     paid_at = CASE WHEN $3 = 'paid' THEN $4 ELSE paid_at END,
                     shipped_at = CASE WHEN $3 = 'shipped' THEN $4 ELSE shipped_at END,
                     delivered_at = CASE WHEN $3 = 'delivered' THEN $4 ELSE delivered_at END,
                     complete_after = CASE WHEN $3 = 'delivered' THEN $7 ELSE complete_after END,
                     completed_at = CASE WHEN $3 = 'completed' THEN $4 ELSE completed_at END,
                     cancelled_at = CASE WHEN $3 = 'cancelled' THEN $4 ELSE cancelled_at END,
                     cancel_reason = CASE WHEN $3 = 'cancelled' THEN $8 ELSE cancel_reason END
                 WHERE id = $1 AND status = $2 AND (NOT $9 OR pay_before > $4)
                 RETURNING id
             )
             INSERT INTO order_history (order_id, from_status, to_status, actor_id, note, created_at)
             SELECT id, $2, $3, $5, $6, $4 FROM moved RETURNING order_id",
        )
        .await?;
    let moved = client
        .query_opt(
            &stmt,
            &[
                &t.order_id,
                &t.from.as_str(),
                &t.to.as_str(),
                &t.now,
                &t.actor_id,
                &t.note,
                &t.complete_after,
                &t.cancel_reason,
                &t.within_payment_window,
            ],
        )
        .await?;
    Ok(moved.is_some())
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

impl ReturnedUnits {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            event_id: row.try_get("seckill_event_id")?,
            user_id: row.try_get("user_id")?,
            quantity: row.try_get("quantity")?,
        })
    }
}

/// Cancels up to `limit` unpaid orders past their deadline, in one
/// statement: status, history, and (for flash-sale orders) the units back
/// to the event's stock and off the user's count. `SKIP LOCKED` lets
/// several nodes sweep without waiting on each other; the status condition
/// makes each expiry happen exactly once.
pub async fn expire_unpaid_seckill(
    client: &impl GenericClient,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ReturnedUnits>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "WITH expired AS (
                 UPDATE orders SET status = 'cancelled', cancelled_at = $2, cancel_reason = 'payment_timeout',
                                   updated_at = $2
                 WHERE id IN (SELECT id FROM orders
                              WHERE status = 'pending_payment' AND pay_before <= $2 AND kind = 'seckill'
                              ORDER BY pay_before LIMIT $1 FOR UPDATE SKIP LOCKED)
                   AND status = 'pending_payment'
                 RETURNING id, user_id, seckill_event_id
             ), units AS (
                 SELECT e.id, e.user_id, e.seckill_event_id,
                        (SELECT sum(quantity) FROM order_items oi WHERE oi.order_id = e.id)::int4 AS quantity
                 FROM expired e
             ), history AS (
                 INSERT INTO order_history (order_id, from_status, to_status, note, created_at)
                 SELECT id, 'pending_payment', 'cancelled', 'payment window passed', $2 FROM units
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
    client.query(&stmt, &[&limit, &now]).await?.iter().map(ReturnedUnits::from_row).collect()
}

/// Gives a cancelled flash-sale order's units back to its event's stock
/// and the buyer's count (the expiry sweep does the same in bulk).
pub async fn return_seckill_units(
    client: &impl GenericClient,
    order_id: i64,
) -> Result<Option<ReturnedUnits>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "WITH units AS (
                 SELECT o.seckill_event_id, o.user_id, sum(oi.quantity)::int4 AS quantity
                 FROM orders o JOIN order_items oi ON oi.order_id = o.id
                 WHERE o.id = $1 AND o.seckill_event_id IS NOT NULL GROUP BY 1, 2
             ), counts AS (
                 UPDATE seckill_user_counts c SET bought = c.bought - u.quantity FROM units u
                 WHERE c.event_id = u.seckill_event_id AND c.user_id = u.user_id
             ), stock AS (
                 UPDATE seckill_events ev SET remaining_stock = ev.remaining_stock + u.quantity, updated_at = now()
                 FROM units u WHERE ev.id = u.seckill_event_id
             )
             SELECT seckill_event_id, user_id, quantity FROM units",
        )
        .await?;
    client.query_opt(&stmt, &[&order_id]).await?.map(|row| ReturnedUnits::from_row(&row)).transpose()
}

/// Unpaid normal orders past their deadline, oldest first.
pub async fn due_to_expire(
    client: &impl GenericClient,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT id FROM orders WHERE status = 'pending_payment' AND pay_before <= $1 AND kind = 'normal'
             ORDER BY pay_before LIMIT $2",
        )
        .await?;
    client.query(&stmt, &[&now, &limit]).await?.iter().map(|row| row.try_get(0)).collect()
}

/// Delivered orders past their auto-completion time, oldest first.
pub async fn due_to_complete(
    client: &impl GenericClient,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT id FROM orders o WHERE status = 'delivered' AND complete_after <= $1
               -- not while a request (after_sale::lifecycle::Status::HOLDING) is open
               AND NOT EXISTS (SELECT 1 FROM after_sales a WHERE a.order_id = o.id
                               AND a.status IN ('requested', 'disputed', 'approved', 'returning'))
             ORDER BY complete_after LIMIT $2",
        )
        .await?;
    client.query(&stmt, &[&now, &limit]).await?.iter().map(|row| row.try_get(0)).collect()
}

/// Reads and locks an order for this transaction, or `None` when another
/// transaction holds it (`SKIP LOCKED`: sweepers on several nodes never
/// wait on each other or on a shopper).
pub async fn lock_unless_busy(
    client: &impl GenericClient,
    order_id: i64,
) -> Result<Option<OrderRow>, tokio_postgres::Error> {
    let stmt =
        client.prepare_cached(&format!("{ORDER_SELECT} WHERE o.id = $1 FOR UPDATE OF o SKIP LOCKED")).await?;
    client.query_opt(&stmt, &[&order_id]).await?.map(|row| OrderRow::from_row(&row)).transpose()
}

/// Reads an order by id.
pub async fn find(
    client: &impl GenericClient,
    order_id: i64,
) -> Result<Option<OrderRow>, tokio_postgres::Error> {
    let stmt = client.prepare_cached(&format!("{ORDER_SELECT} WHERE o.id = $1")).await?;
    client.query_opt(&stmt, &[&order_id]).await?.map(|row| OrderRow::from_row(&row)).transpose()
}

/// One line of an order, as bought.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderItem {
    pub sku_id: i64,
    pub product_id: Option<i64>,
    /// The product's name when bought.
    pub title: String,
    pub spec_values: std::collections::BTreeMap<String, String>,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub total_cents: i64,
    /// Units and cents of this line refunded by after-sale requests.
    pub refunded_quantity: i32,
    pub refunded_cents: i64,
}

/// The lines of an order, in SKU order.
pub async fn items(
    client: &impl GenericClient,
    order_id: i64,
) -> Result<Vec<OrderItem>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT sku_id, product_id, title, spec_values, quantity, unit_price_cents, total_cents,
                    refunded_quantity, refunded_cents
             FROM order_items WHERE order_id = $1 ORDER BY sku_id, id",
        )
        .await?;
    client
        .query(&stmt, &[&order_id])
        .await?
        .iter()
        .map(|row| {
            let spec_values: serde_json::Value = row.try_get("spec_values")?;
            Ok(OrderItem {
                sku_id: row.try_get("sku_id")?,
                product_id: row.try_get("product_id")?,
                title: row.try_get("title")?,
                spec_values: serde_json::from_value(spec_values).unwrap_or_default(),
                quantity: row.try_get("quantity")?,
                unit_price_cents: row.try_get("unit_price_cents")?,
                total_cents: row.try_get("total_cents")?,
                refunded_quantity: row.try_get("refunded_quantity")?,
                refunded_cents: row.try_get("refunded_cents")?,
            })
        })
        .collect()
}

/// Inserts the parent row of a checkout.
pub async fn insert_checkout(
    client: &impl GenericClient,
    user_id: i64,
    idempotency_key: Option<&str>,
    request_digest: &str,
    total_cents: i64,
) -> Result<i64, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO checkouts (user_id, idempotency_key, request_digest, total_cents)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .await?;
    client.query_one(&stmt, &[&user_id, &idempotency_key, &request_digest, &total_cents]).await?.try_get(0)
}

/// A checkout found by its idempotency key: its id and request digest.
pub async fn find_checkout_by_key(
    client: &impl GenericClient,
    user_id: i64,
    key: &str,
) -> Result<Option<(i64, String)>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT id, request_digest FROM checkouts WHERE user_id = $1 AND idempotency_key = $2",
        )
        .await?;
    client
        .query_opt(&stmt, &[&user_id, &key])
        .await?
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .transpose()
}

/// The orders a checkout placed, by shop.
pub async fn checkout_orders(
    client: &impl GenericClient,
    checkout_id: i64,
) -> Result<Vec<OrderRow>, tokio_postgres::Error> {
    let stmt =
        client.prepare_cached(&format!("{ORDER_SELECT} WHERE o.checkout_id = $1 ORDER BY o.shop_id")).await?;
    client.query(&stmt, &[&checkout_id]).await?.iter().map(OrderRow::from_row).collect()
}

/// A normal order to insert, with its lines.
pub struct NewOrder<'a> {
    pub order_no: &'a str,
    pub user_id: i64,
    pub shop_id: i64,
    pub checkout_id: i64,
    pub total_cents: i64,
    pub pay_before: DateTime<Utc>,
    pub shipping_address: &'a serde_json::Value,
    pub now: DateTime<Utc>,
}

/// Inserts a pending normal order and its first history entry.
pub async fn insert_order(
    client: &impl GenericClient,
    order: &NewOrder<'_>,
) -> Result<i64, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "WITH placed AS (
                 INSERT INTO orders (order_no, user_id, shop_id, kind, status, total_cents, pay_before,
                                     checkout_id, shipping_address, created_at, updated_at)
                 VALUES ($1, $2, $3, 'normal', 'pending_payment', $4, $5, $6, $7, $8, $8) RETURNING id, user_id
             ), history AS (
                 INSERT INTO order_history (order_id, from_status, to_status, actor_id, note, created_at)
                 SELECT id, NULL, 'pending_payment', user_id, 'placed', $8 FROM placed
             )
             SELECT id FROM placed",
        )
        .await?;
    client
        .query_one(
            &stmt,
            &[
                &order.order_no,
                &order.user_id,
                &order.shop_id,
                &order.total_cents,
                &order.pay_before,
                &order.checkout_id,
                &order.shipping_address,
                &order.now,
            ],
        )
        .await?
        .try_get(0)
}

/// Inserts an order's lines.
pub async fn insert_items(
    client: &impl GenericClient,
    order_id: i64,
    items: &[OrderItem],
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO order_items (order_id, sku_id, product_id, title, spec_values, quantity,
                                      unit_price_cents, total_cents)
             SELECT $1, s, p, t, v, q, u, c
             FROM unnest($2::int8[], $3::int8[], $4::text[], $5::jsonb[], $6::int4[], $7::int8[], $8::int8[])
                  AS x (s, p, t, v, q, u, c)",
        )
        .await?;
    let skus: Vec<i64> = items.iter().map(|i| i.sku_id).collect();
    let products: Vec<Option<i64>> = items.iter().map(|i| i.product_id).collect();
    let titles: Vec<&str> = items.iter().map(|i| i.title.as_str()).collect();
    let specs: Vec<serde_json::Value> =
        items.iter().map(|i| serde_json::to_value(&i.spec_values).unwrap_or_default()).collect();
    let quantities: Vec<i32> = items.iter().map(|i| i.quantity).collect();
    let units: Vec<i64> = items.iter().map(|i| i.unit_price_cents).collect();
    let totals: Vec<i64> = items.iter().map(|i| i.total_cents).collect();
    client
        .execute(&stmt, &[&order_id, &skus, &products, &titles, &specs, &quantities, &units, &totals])
        .await?;
    Ok(())
}

/// Filters of a shop's (or the platform's) order list.
#[derive(Debug, Default)]
pub struct OrderQuery<'a> {
    pub shop_id: Option<i64>,
    pub status: Option<&'a str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub buyer_id: Option<i64>,
    pub order_no: Option<&'a str>,
}

/// One page of orders matching `query`, newest first.
pub async fn search(
    client: &impl GenericClient,
    query: &OrderQuery<'_>,
    paging: Paging,
) -> Result<(Vec<OrderRow>, i64), tokio_postgres::Error> {
    const CONDITION: &str = "($1::int8 IS NULL OR o.shop_id = $1) AND ($2::text IS NULL OR o.status = $2)
         AND ($3::timestamptz IS NULL OR o.created_at >= $3) AND ($4::timestamptz IS NULL OR o.created_at < $4)
         AND ($5::int8 IS NULL OR o.user_id = $5) AND ($6::text IS NULL OR o.order_no = $6)";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&query.shop_id, &query.status, &query.from, &query.to, &query.buyer_id, &query.order_no];
    let count = client.prepare_cached(&format!("SELECT count(*) FROM orders o WHERE {CONDITION}")).await?;
    let total: i64 = client.query_one(&count, &params).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!(
            "{ORDER_SELECT} WHERE {CONDITION} ORDER BY o.created_at DESC, o.id DESC LIMIT $7 OFFSET $8"
        ))
        .await?;
    let (limit, offset) = (paging.limit(), paging.offset());
    let mut all = params.to_vec();
    all.push(&limit);
    all.push(&offset);
    let rows = client.query(&stmt, &all).await?;
    Ok((rows.iter().map(OrderRow::from_row).collect::<Result<_, _>>()?, total))
}

/// A note on an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderNote {
    pub id: i64,
    pub author_id: Option<i64>,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

impl OrderNote {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            author_id: row.try_get("author_id")?,
            note: row.try_get("note")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// Adds a note to an order.
pub async fn insert_note(
    client: &impl GenericClient,
    order_id: i64,
    author_id: i64,
    note: &str,
) -> Result<OrderNote, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO order_notes (order_id, author_id, note) VALUES ($1, $2, $3)
             RETURNING id, author_id, note, created_at",
        )
        .await?;
    OrderNote::from_row(&client.query_one(&stmt, &[&order_id, &author_id, &note]).await?)
}

/// An order's notes, oldest first.
pub async fn notes(
    client: &impl GenericClient,
    order_id: i64,
) -> Result<Vec<OrderNote>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT id, author_id, note, created_at FROM order_notes WHERE order_id = $1 ORDER BY id",
        )
        .await?;
    client.query(&stmt, &[&order_id]).await?.iter().map(OrderNote::from_row).collect()
}

/// Adds a paid order's units to its products' sales counts (the
/// storefront's "sales" sort), or takes them off again (`sign` -1, a paid
/// order cancelled); the products counted.
pub async fn count_sales(
    client: &impl GenericClient,
    order_id: i64,
    sign: i64,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "UPDATE products p SET sales_count = GREATEST(p.sales_count + $2 * s.quantity, 0)
             FROM (SELECT product_id, sum(quantity - refunded_quantity)::int8 AS quantity FROM order_items
                   WHERE order_id = $1 AND product_id IS NOT NULL GROUP BY product_id) s
             WHERE p.id = s.product_id RETURNING p.id",
        )
        .await?;
    client.query(&stmt, &[&order_id, &sign]).await?.iter().map(|row| row.try_get(0)).collect()
}
