//! SQL of the flash-sale engine, including the group-commit batch.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actors::stock::{Refusal, Reservation, ReservationOutcome, StockSnapshot};
use actors::writer::BatchStore;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

/// A flash-sale event as stored.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: i64,
    pub sku_id: i64,
    pub title: String,
    pub price_cents: i64,
    pub currency: String,
    pub total_stock: i32,
    pub remaining_stock: i32,
    pub per_user_limit: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub payment_window_secs: i32,
    pub require_purchase_token: bool,
    pub user_rate_per_sec: Option<i32>,
    pub ip_rate_per_sec: Option<i32>,
    pub opened_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const EVENT_COLUMNS: &str =
    "id, sku_id, title, price_cents, currency, total_stock, remaining_stock, per_user_limit, \
     starts_at, ends_at, payment_window_secs, require_purchase_token, user_rate_per_sec, ip_rate_per_sec, \
     opened_at, closed_at, created_at";

impl EventRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            sku_id: row.try_get("sku_id")?,
            title: row.try_get("title")?,
            price_cents: row.try_get("price_cents")?,
            currency: row.try_get("currency")?,
            total_stock: row.try_get("total_stock")?,
            remaining_stock: row.try_get("remaining_stock")?,
            per_user_limit: row.try_get("per_user_limit")?,
            starts_at: row.try_get("starts_at")?,
            ends_at: row.try_get("ends_at")?,
            payment_window_secs: row.try_get("payment_window_secs")?,
            require_purchase_token: row.try_get("require_purchase_token")?,
            user_rate_per_sec: row.try_get("user_rate_per_sec")?,
            ip_rate_per_sec: row.try_get("ip_rate_per_sec")?,
            opened_at: row.try_get("opened_at")?,
            closed_at: row.try_get("closed_at")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// The fields of a new event.
pub struct NewEvent<'a> {
    pub sku_id: i64,
    pub title: &'a str,
    pub price_cents: i64,
    pub stock: i32,
    pub per_user_limit: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub payment_window_secs: i32,
    pub require_purchase_token: bool,
    pub user_rate_per_sec: Option<i32>,
    pub ip_rate_per_sec: Option<i32>,
    pub created_by: i64,
}

/// Inserts an event with all of its stock remaining.
pub async fn insert_event(
    client: &impl GenericClient,
    new: &NewEvent<'_>,
) -> Result<EventRow, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO seckill_events (sku_id, title, price_cents, total_stock, remaining_stock, per_user_limit, \
         starts_at, ends_at, payment_window_secs, require_purchase_token, user_rate_per_sec, ip_rate_per_sec, created_by) \
         VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {EVENT_COLUMNS}"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &new.sku_id,
                &new.title,
                &new.price_cents,
                &new.stock,
                &new.per_user_limit,
                &new.starts_at,
                &new.ends_at,
                &new.payment_window_secs,
                &new.require_purchase_token,
                &new.user_rate_per_sec,
                &new.ip_rate_per_sec,
                &new.created_by,
            ],
        )
        .await?;
    EventRow::from_row(&row)
}

/// Reads one event.
pub async fn find_event(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<EventRow>, tokio_postgres::Error> {
    let stmt =
        client.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM seckill_events WHERE id = $1")).await?;
    client.query_opt(&stmt, &[&id]).await?.map(|row| EventRow::from_row(&row)).transpose()
}

/// Events that are not over: not closed and not past their end.
pub async fn unfinished_events(client: &impl GenericClient) -> Result<Vec<EventRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM seckill_events WHERE closed_at IS NULL AND ends_at > now() ORDER BY id"
        ))
        .await?;
    client.query(&stmt, &[]).await?.iter().map(EventRow::from_row).collect()
}

/// A page of unfinished events, soonest first, with the total count.
pub async fn list_unfinished(
    client: &impl GenericClient,
    limit: i64,
    offset: i64,
) -> Result<(Vec<EventRow>, i64), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS}, count(*) OVER () AS total FROM seckill_events \
             WHERE closed_at IS NULL AND ends_at > now() ORDER BY starts_at, id LIMIT $1 OFFSET $2"
        ))
        .await?;
    let rows = client.query(&stmt, &[&limit, &offset]).await?;
    let total = match rows.first() {
        Some(row) => row.try_get("total")?,
        None => 0,
    };
    Ok((rows.iter().map(EventRow::from_row).collect::<Result<_, _>>()?, total))
}

/// Marks an event opened early (no-op if already opened).
pub async fn mark_opened(client: &impl GenericClient, id: i64) -> Result<u64, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "UPDATE seckill_events SET opened_at = COALESCE(opened_at, now()), updated_at = now() \
             WHERE id = $1 AND closed_at IS NULL",
        )
        .await?;
    client.execute(&stmt, &[&id]).await
}

/// Whether an event was opened early and whether it was closed, by hand
/// (on any node); `None` if it is gone.
pub async fn find_switches(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<(bool, bool)>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT opened_at IS NOT NULL, closed_at IS NOT NULL FROM seckill_events WHERE id = $1",
        )
        .await?;
    Ok(client.query_opt(&stmt, &[&id]).await?.map(|row| (row.get(0), row.get(1))))
}

/// Marks an event closed (no-op if already closed).
pub async fn mark_closed(client: &impl GenericClient, id: i64) -> Result<u64, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "UPDATE seckill_events SET closed_at = COALESCE(closed_at, now()), updated_at = now() WHERE id = $1",
        )
        .await?;
    client.execute(&stmt, &[&id]).await
}

/// Rebuilds an event's in-memory state from what is committed: remaining
/// stock, units held per user in live orders, and used idempotency keys.
pub async fn load_snapshot(
    client: &impl GenericClient,
    event: &EventRow,
) -> Result<StockSnapshot, tokio_postgres::Error> {
    let counts = client
        .prepare_cached("SELECT user_id, bought FROM seckill_user_counts WHERE event_id = $1 AND bought > 0")
        .await?;
    let mut held_by_user = HashMap::new();
    for row in client.query(&counts, &[&event.id]).await? {
        let bought: i32 = row.try_get("bought")?;
        held_by_user.insert(row.try_get("user_id")?, u32::try_from(bought).unwrap_or(0));
    }
    let keys = client
        .prepare_cached(
            "SELECT user_id, idempotency_key, order_no FROM orders \
             WHERE seckill_event_id = $1 AND idempotency_key IS NOT NULL",
        )
        .await?;
    let orders_by_key = Arc::new(DashMap::new());
    for row in client.query(&keys, &[&event.id]).await? {
        orders_by_key
            .insert((row.try_get("user_id")?, row.try_get("idempotency_key")?), row.try_get("order_no")?);
    }
    Ok(StockSnapshot {
        remaining: u32::try_from(event.remaining_stock).unwrap_or(0),
        held_by_user,
        orders_by_key,
    })
}

/// Order counts and units of an event by status.
pub async fn order_totals(
    client: &impl GenericClient,
    event_id: i64,
) -> Result<Vec<(String, i64, i64)>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT o.status, count(*) AS orders, COALESCE(sum(oi.quantity), 0)::bigint AS units \
             FROM orders o JOIN order_items oi ON oi.order_id = o.id \
             WHERE o.seckill_event_id = $1 GROUP BY o.status ORDER BY o.status",
        )
        .await?;
    client
        .query(&stmt, &[&event_id])
        .await?
        .iter()
        .map(|row| Ok((row.try_get("status")?, row.try_get("orders")?, row.try_get("units")?)))
        .collect()
}

/// An event's orders along the way to money: placed, paid (or further),
/// expired unpaid, cancelled otherwise.
pub struct OrderFunnel {
    pub orders: i64,
    pub paid: i64,
    pub expired: i64,
    pub cancelled: i64,
}

/// The order side of an event's funnel.
pub async fn order_funnel(
    client: &impl GenericClient,
    event_id: i64,
) -> Result<OrderFunnel, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT count(*) AS orders,
                    count(*) FILTER (WHERE status IN ('paid', 'shipped', 'delivered', 'completed')) AS paid,
                    count(*) FILTER (WHERE status = 'cancelled' AND cancel_reason = 'payment_timeout') AS expired,
                    count(*) FILTER (WHERE status = 'cancelled'
                                     AND cancel_reason IS DISTINCT FROM 'payment_timeout') AS cancelled
             FROM orders WHERE seckill_event_id = $1",
        )
        .await?;
    let row = client.query_one(&stmt, &[&event_id]).await?;
    Ok(OrderFunnel {
        orders: row.try_get("orders")?,
        paid: row.try_get("paid")?,
        expired: row.try_get("expired")?,
        cancelled: row.try_get("cancelled")?,
    })
}

/// Writes group-commit batches of reservations into Postgres.
///
/// A whole batch is ONE statement (so one round trip and one transaction):
/// it inserts the orders (skipping any whose idempotency key the user has
/// already used), their items and history, adds the units to the per-user
/// counts (whose CHECK backs the limit) and takes them off each event's
/// remaining stock (whose CHECK backs "no oversell"), one update per event.
#[derive(Clone)]
pub struct PgReservations {
    pool: Pool,
}

impl PgReservations {
    /// A store writing through `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

const WRITE_BATCH_SQL: &str = "
WITH input AS (
    SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::int4[], $7::int8[],
                         $8::int4[], $9::text[], $10::timestamptz[], $11::timestamptz[])
        AS x(order_no, user_id, event_id, sku_id, title, quantity, unit_price_cents, per_user_limit,
             idempotency_key, created_at, pay_before)
), inserted AS (
    INSERT INTO orders (order_no, user_id, kind, seckill_event_id, status, total_cents, idempotency_key,
                        pay_before, created_at, updated_at)
    SELECT order_no, user_id, 'seckill', event_id, 'pending_payment', unit_price_cents * quantity,
           idempotency_key, pay_before, created_at, created_at
    FROM input
    ON CONFLICT DO NOTHING
    RETURNING id, order_no
), placed AS (
    SELECT i.*, ins.id AS order_id FROM inserted ins JOIN input i USING (order_no)
), items AS (
    INSERT INTO order_items (order_id, sku_id, title, quantity, unit_price_cents, total_cents)
    SELECT order_id, sku_id, title, quantity, unit_price_cents, unit_price_cents * quantity FROM placed
), history AS (
    INSERT INTO order_history (order_id, from_status, to_status, actor_id, note, created_at)
    SELECT order_id, NULL, 'pending_payment', user_id, 'flash-sale order placed', created_at FROM placed
), counts AS (
    INSERT INTO seckill_user_counts (event_id, user_id, per_user_limit, bought)
    SELECT event_id, user_id, max(per_user_limit), sum(quantity)::int4 FROM placed GROUP BY event_id, user_id
    ON CONFLICT (event_id, user_id) DO UPDATE SET bought = seckill_user_counts.bought + EXCLUDED.bought
), stock AS (
    UPDATE seckill_events e SET remaining_stock = e.remaining_stock - s.units, updated_at = now()
    FROM (SELECT event_id, sum(quantity)::int4 AS units FROM placed GROUP BY event_id) s
    WHERE e.id = s.event_id
)
SELECT order_no FROM placed";

/// Why one attempt at a batch statement failed.
enum BatchFailure {
    /// No connection: nothing was sent, so nothing was written.
    NoConnection(String),
    /// The statement ran and Postgres refused it: nothing was written.
    Refused(tokio_postgres::Error),
    /// The connection broke mid-statement: it may or may not have committed.
    Ambiguous(tokio_postgres::Error),
}

impl BatchFailure {
    fn code(&self) -> Option<&SqlState> {
        match self {
            BatchFailure::Refused(e) => e.code(),
            _ => None,
        }
    }
}

impl std::fmt::Display for BatchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchFailure::NoConnection(e) => write!(f, "no connection: {e}"),
            BatchFailure::Refused(e) | BatchFailure::Ambiguous(e) => write!(f, "{e:#}"),
        }
    }
}

impl PgReservations {
    /// Runs the batch statement once and returns the order numbers placed.
    async fn write_once(&self, items: &[Reservation]) -> Result<HashSet<String>, BatchFailure> {
        let n = items.len();
        let mut order_no = Vec::with_capacity(n);
        let mut user_id = Vec::with_capacity(n);
        let mut event_id = Vec::with_capacity(n);
        let mut sku_id = Vec::with_capacity(n);
        let mut title = Vec::with_capacity(n);
        let mut quantity = Vec::with_capacity(n);
        let mut unit_price = Vec::with_capacity(n);
        let mut limit = Vec::with_capacity(n);
        let mut key = Vec::with_capacity(n);
        let mut created_at = Vec::with_capacity(n);
        let mut pay_before = Vec::with_capacity(n);
        for r in items {
            order_no.push(r.order_no.as_str());
            user_id.push(r.user_id);
            event_id.push(r.event_id);
            sku_id.push(r.sku_id);
            title.push(r.title.as_str());
            quantity.push(i32::try_from(r.quantity).unwrap_or(i32::MAX));
            unit_price.push(r.unit_price_cents);
            limit.push(i32::try_from(r.per_user_limit).unwrap_or(i32::MAX));
            key.push(r.idempotency_key.as_deref());
            created_at.push(DateTime::<Utc>::from(r.created_at));
            pay_before.push(DateTime::<Utc>::from(r.pay_before));
        }
        let client = self.pool.get().await.map_err(|e| BatchFailure::NoConnection(e.to_string()))?;
        let classify = |e: tokio_postgres::Error| {
            if e.as_db_error().is_some() {
                BatchFailure::Refused(e)
            } else {
                BatchFailure::Ambiguous(e)
            }
        };
        let stmt = client.prepare_cached(WRITE_BATCH_SQL).await.map_err(classify)?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 11] = [
            &order_no,
            &user_id,
            &event_id,
            &sku_id,
            &title,
            &quantity,
            &unit_price,
            &limit,
            &key,
            &created_at,
            &pay_before,
        ];
        let rows = client.query(&stmt, &params).await.map_err(classify)?;
        rows.iter().map(|row| row.try_get::<_, String>(0).map_err(BatchFailure::Ambiguous)).collect()
    }

    /// After a broken connection: the orders of `items` that did commit.
    async fn committed_among(&self, items: &[Reservation]) -> Option<HashSet<String>> {
        let numbers: Vec<&str> = items.iter().map(|r| r.order_no.as_str()).collect();
        let client = self.pool.get().await.ok()?;
        let rows =
            client.query("SELECT order_no FROM orders WHERE order_no = ANY($1)", &[&numbers]).await.ok()?;
        rows.iter().map(|row| row.try_get::<_, String>(0).ok()).collect()
    }

    /// Writes the batch, and copes with what can go wrong: a deadlock or
    /// serialization failure is retried once; a CHECK violation (memory
    /// believed in stock or allowance the database does not have) is
    /// isolated by writing the items one by one; a broken connection is
    /// resolved by looking the orders up, and what cannot be resolved is
    /// reported `Unknown` so its units stay reserved.
    async fn write_resilient(&self, items: &[Reservation]) -> Result<Vec<ReservationOutcome>, String> {
        let mut attempt = self.write_once(items).await;
        if let Err(failure) = &attempt {
            if matches!(
                failure.code(),
                Some(&SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE)
            ) {
                attempt = self.write_once(items).await;
            }
        }
        match attempt {
            // Not placed after a successful statement: the user had already
            // used that idempotency key.
            Ok(placed) => Ok(outcomes(items, &placed, ReservationOutcome::DuplicateKey)),
            Err(BatchFailure::Refused(e))
                if e.code() == Some(&SqlState::CHECK_VIOLATION) && items.len() > 1 =>
            {
                tracing::error!(error = %e, rows = items.len(), "batch refused by a CHECK: memory and database disagree; writing rows one by one");
                let mut all = Vec::with_capacity(items.len());
                for item in items {
                    all.push(match self.write_once(std::slice::from_ref(item)).await {
                        Ok(placed) if placed.contains(&item.order_no) => ReservationOutcome::Committed,
                        Ok(_) => ReservationOutcome::DuplicateKey,
                        Err(BatchFailure::Refused(e)) => refusal(&e),
                        Err(BatchFailure::NoConnection(_)) => ReservationOutcome::NotWritten,
                        Err(BatchFailure::Ambiguous(_)) => ReservationOutcome::Unknown,
                    });
                }
                Ok(all)
            }
            Err(BatchFailure::Refused(e)) if items.len() == 1 => Ok(vec![refusal(&e)]),
            Err(BatchFailure::Ambiguous(e)) => {
                tracing::warn!(error = %e, rows = items.len(), "connection broke during a group commit");
                Ok(match self.committed_among(items).await {
                    Some(found) => outcomes(items, &found, ReservationOutcome::Unknown),
                    None => vec![ReservationOutcome::Unknown; items.len()],
                })
            }
            Err(failure) => Err(failure.to_string()),
        }
    }
}

/// Items whose order is in `placed` are committed; the others get `absent`.
fn outcomes(
    items: &[Reservation],
    placed: &HashSet<String>,
    absent: ReservationOutcome,
) -> Vec<ReservationOutcome> {
    items
        .iter()
        .map(|r| if placed.contains(&r.order_no) { ReservationOutcome::Committed } else { absent })
        .collect()
}

/// The outcome of a one-row statement Postgres refused.
fn refusal(e: &tokio_postgres::Error) -> ReservationOutcome {
    let constraint = e.as_db_error().and_then(|d| d.constraint()).unwrap_or("");
    match e.code() {
        Some(&SqlState::CHECK_VIOLATION) if constraint.starts_with("seckill_user_counts") => {
            ReservationOutcome::Refused(Refusal::LimitReached)
        }
        Some(&SqlState::CHECK_VIOLATION) => ReservationOutcome::Refused(Refusal::SoldOut),
        _ => ReservationOutcome::NotWritten,
    }
}

impl BatchStore for PgReservations {
    type Item = Reservation;
    type Outcome = ReservationOutcome;

    async fn write_batch(&self, items: &[Reservation]) -> Result<Vec<ReservationOutcome>, String> {
        self.write_resilient(items).await
    }
}
