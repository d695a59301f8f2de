//! SQL of after-sale requests, their lines and their history.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::lifecycle::Status;
use crate::page::Paging;

/// An after-sale request as its parties see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AfterSaleView {
    pub case_no: String,
    pub order_no: String,
    pub shop_id: Option<i64>,
    /// `refund` (before shipping) or `return` (after delivery).
    pub kind: String,
    /// `requested`, `rejected`, `disputed`, `approved`, `returning`,
    /// `refunded`, `withdrawn` or `closed`.
    pub status: String,
    pub reason: String,
    pub photos: Vec<String>,
    /// What the request refunds.
    pub amount_cents: i64,
    /// The latest reason given by the merchant or an operator.
    pub decision_note: Option<String>,
    pub return_carrier: Option<String>,
    pub return_tracking_no: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A request with its ids.
#[derive(Debug, Clone)]
pub struct AfterSaleRow {
    pub id: i64,
    pub order_id: i64,
    pub user_id: i64,
    pub view: AfterSaleView,
}

const SELECT: &str = "SELECT a.id, a.order_id, a.user_id, a.case_no, o.order_no, a.shop_id, a.kind, a.status, \
     a.reason, a.photos, a.amount_cents, a.decision_note, a.return_carrier, a.return_tracking_no, a.created_at, \
     a.updated_at FROM after_sales a JOIN orders o ON o.id = a.order_id";

impl AfterSaleRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        let photos: serde_json::Value = row.try_get("photos")?;
        Ok(Self {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            user_id: row.try_get("user_id")?,
            view: AfterSaleView {
                case_no: row.try_get("case_no")?,
                order_no: row.try_get("order_no")?,
                shop_id: row.try_get("shop_id")?,
                kind: row.try_get("kind")?,
                status: row.try_get("status")?,
                reason: row.try_get("reason")?,
                photos: serde_json::from_value(photos).unwrap_or_default(),
                amount_cents: row.try_get("amount_cents")?,
                decision_note: row.try_get("decision_note")?,
                return_carrier: row.try_get("return_carrier")?,
                return_tracking_no: row.try_get("return_tracking_no")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            },
        })
    }
}

/// One line of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AfterSaleItem {
    pub sku_id: i64,
    pub title: String,
    pub quantity: i32,
    pub amount_cents: i64,
}

/// A request to record.
pub struct NewAfterSale<'a> {
    pub case_no: &'a str,
    pub order_id: i64,
    pub user_id: i64,
    pub shop_id: Option<i64>,
    pub kind: &'a str,
    pub reason: &'a str,
    pub photos: &'a [String],
    pub items: &'a [AfterSaleItem],
}

/// Records a request with its lines and its first history entry; its id.
pub async fn insert(
    client: &impl GenericClient,
    new: &NewAfterSale<'_>,
) -> Result<i64, tokio_postgres::Error> {
    let skus: Vec<i64> = new.items.iter().map(|i| i.sku_id).collect();
    let quantities: Vec<i32> = new.items.iter().map(|i| i.quantity).collect();
    let amounts: Vec<i64> = new.items.iter().map(|i| i.amount_cents).collect();
    let total: i64 = amounts.iter().sum();
    let photos = serde_json::json!(new.photos);
    let stmt = client
        .prepare_cached(
            "WITH a AS (
                 INSERT INTO after_sales (case_no, order_id, user_id, shop_id, kind, status, reason, photos, amount_cents)
                 VALUES ($1, $2, $3, $4, $5, 'requested', $6, $7, $8) RETURNING id
             ), i AS (
                 INSERT INTO after_sale_items (after_sale_id, sku_id, quantity, amount_cents)
                 SELECT a.id, l.sku_id, l.quantity, l.amount FROM a,
                        unnest($9::int8[], $10::int4[], $11::int8[]) AS l(sku_id, quantity, amount)
             ), e AS (
                 INSERT INTO after_sale_events (after_sale_id, from_status, to_status, actor_id, note)
                 SELECT id, NULL, 'requested', $3, $6 FROM a
             )
             SELECT id FROM a",
        )
        .await?;
    client
        .query_one(
            &stmt,
            &[
                &new.case_no,
                &new.order_id,
                &new.user_id,
                &new.shop_id,
                &new.kind,
                &new.reason,
                &photos,
                &total,
                &skus,
                &quantities,
                &amounts,
            ],
        )
        .await?
        .try_get(0)
}

/// One request by its number; `lock` holds it until the transaction ends.
pub async fn find_by_no(
    client: &impl GenericClient,
    case_no: &str,
    lock: bool,
) -> Result<Option<AfterSaleRow>, tokio_postgres::Error> {
    let sql = if lock {
        format!("{SELECT} WHERE a.case_no = $1 FOR UPDATE OF a")
    } else {
        format!("{SELECT} WHERE a.case_no = $1")
    };
    let stmt = client.prepare_cached(&sql).await?;
    client.query_opt(&stmt, &[&case_no]).await?.map(|row| AfterSaleRow::from_row(&row)).transpose()
}

/// The lines of a request, in SKU order.
pub async fn items(
    client: &impl GenericClient,
    after_sale_id: i64,
) -> Result<Vec<AfterSaleItem>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT i.sku_id, COALESCE(min(oi.title), '') AS title, i.quantity, i.amount_cents
             FROM after_sale_items i JOIN after_sales a ON a.id = i.after_sale_id
             LEFT JOIN order_items oi ON oi.order_id = a.order_id AND oi.sku_id = i.sku_id
             WHERE i.after_sale_id = $1 GROUP BY i.sku_id, i.quantity, i.amount_cents ORDER BY i.sku_id",
        )
        .await?;
    client
        .query(&stmt, &[&after_sale_id])
        .await?
        .iter()
        .map(|row| {
            Ok(AfterSaleItem {
                sku_id: row.try_get(0)?,
                title: row.try_get(1)?,
                quantity: row.try_get(2)?,
                amount_cents: row.try_get(3)?,
            })
        })
        .collect()
}

/// Units and cents of an order's SKUs held by open requests.
pub async fn held(
    client: &impl GenericClient,
    order_id: i64,
) -> Result<Vec<(i64, i32, i64)>, tokio_postgres::Error> {
    let holding: Vec<&str> = Status::HOLDING.iter().map(|s| s.as_str()).collect();
    let stmt = client
        .prepare_cached(
            "SELECT i.sku_id, sum(i.quantity)::int4, sum(i.amount_cents)::int8
             FROM after_sale_items i JOIN after_sales a ON a.id = i.after_sale_id
             WHERE a.order_id = $1 AND a.status = ANY($2) GROUP BY i.sku_id",
        )
        .await?;
    client
        .query(&stmt, &[&order_id, &holding])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect()
}

/// Whether an order has a request of `kind` (any kind when `None`) that
/// is still being worked on.
pub async fn has_open(
    client: &impl GenericClient,
    order_id: i64,
    kind: Option<&str>,
) -> Result<bool, tokio_postgres::Error> {
    let holding: Vec<&str> = Status::HOLDING.iter().map(|s| s.as_str()).collect();
    let stmt = client
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM after_sales WHERE order_id = $1 AND status = ANY($2)
                            AND ($3::text IS NULL OR kind = $3))",
        )
        .await?;
    client.query_one(&stmt, &[&order_id, &holding, &kind]).await?.try_get(0)
}

/// Closes an order's requests still being worked on (the order was
/// cancelled and refunded whole), with their history.
pub async fn close_open(
    client: &impl GenericClient,
    order_id: i64,
    actor_id: Option<i64>,
    note: &str,
) -> Result<(), tokio_postgres::Error> {
    let holding: Vec<&str> = Status::HOLDING.iter().map(|s| s.as_str()).collect();
    let stmt = client
        .prepare_cached(
            "WITH closed AS (
                 UPDATE after_sales a SET status = 'closed', decision_note = $4, updated_at = now()
                 FROM (SELECT id, status FROM after_sales WHERE order_id = $1 AND status = ANY($2) FOR UPDATE) old
                 WHERE a.id = old.id RETURNING a.id, old.status
             )
             INSERT INTO after_sale_events (after_sale_id, from_status, to_status, actor_id, note)
             SELECT id, status, 'closed', $3, $4 FROM closed",
        )
        .await?;
    client.execute(&stmt, &[&order_id, &holding, &actor_id, &note]).await?;
    Ok(())
}

/// A status change to record.
pub struct Change<'a> {
    pub id: i64,
    pub from: Status,
    pub to: Status,
    pub actor_id: Option<i64>,
    pub note: &'a str,
    /// Kept as the request's decision note (merchant and operator steps).
    pub decision: bool,
    /// The return shipment (shipping back).
    pub return_shipment: Option<(&'a str, &'a str)>,
}

/// Moves a request and records the step in its history.
pub async fn change(client: &impl GenericClient, c: &Change<'_>) -> Result<(), tokio_postgres::Error> {
    let (carrier, tracking_no) = c.return_shipment.unzip();
    let stmt = client
        .prepare_cached(
            "WITH a AS (
                 UPDATE after_sales SET status = $3, updated_at = now(),
                     decision_note = CASE WHEN $6 THEN NULLIF($5, '') ELSE decision_note END,
                     return_carrier = COALESCE($7, return_carrier),
                     return_tracking_no = COALESCE($8, return_tracking_no)
                 WHERE id = $1 AND status = $2 RETURNING id
             )
             INSERT INTO after_sale_events (after_sale_id, from_status, to_status, actor_id, note)
             SELECT id, $2, $3, $4, $5 FROM a",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &c.id,
                &c.from.as_str(),
                &c.to.as_str(),
                &c.actor_id,
                &c.note,
                &c.decision,
                &carrier,
                &tracking_no,
            ],
        )
        .await?;
    Ok(())
}

/// One entry of a request's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct AfterSaleEvent {
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor_id: Option<i64>,
    pub note: String,
    pub at: DateTime<Utc>,
}

/// A request's history, oldest first.
pub async fn events(
    client: &impl GenericClient,
    after_sale_id: i64,
) -> Result<Vec<AfterSaleEvent>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT from_status, to_status, actor_id, note, created_at FROM after_sale_events
             WHERE after_sale_id = $1 ORDER BY id",
        )
        .await?;
    client
        .query(&stmt, &[&after_sale_id])
        .await?
        .iter()
        .map(|row| {
            Ok(AfterSaleEvent {
                from_status: row.try_get(0)?,
                to_status: row.try_get(1)?,
                actor_id: row.try_get(2)?,
                note: row.try_get(3)?,
                at: row.try_get(4)?,
            })
        })
        .collect()
}

/// A refund paying a request, as its parties see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundView {
    pub amount_cents: i64,
    /// `pending`, `succeeded` or `failed` (retried).
    pub status: String,
    pub succeeded_at: Option<DateTime<Utc>>,
}

/// The refunds paying a request.
pub async fn refunds(
    client: &impl GenericClient,
    after_sale_id: i64,
) -> Result<Vec<RefundView>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT amount_cents, status, succeeded_at FROM refunds WHERE after_sale_id = $1 ORDER BY id",
        )
        .await?;
    client
        .query(&stmt, &[&after_sale_id])
        .await?
        .iter()
        .map(|row| {
            Ok(RefundView {
                amount_cents: row.try_get(0)?,
                status: row.try_get(1)?,
                succeeded_at: row.try_get(2)?,
            })
        })
        .collect()
}

/// Filters of a request list.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    pub user_id: Option<i64>,
    pub shop_id: Option<i64>,
    pub status: Option<&'a str>,
}

/// One page of requests, newest first.
pub async fn list(
    client: &impl GenericClient,
    filter: &Filter<'_>,
    paging: Paging,
) -> Result<(Vec<AfterSaleView>, i64), tokio_postgres::Error> {
    const CONDITION: &str = "($1::int8 IS NULL OR a.user_id = $1) AND ($2::int8 IS NULL OR a.shop_id = $2)
         AND ($3::text IS NULL OR a.status = $3)";
    let count =
        client.prepare_cached(&format!("SELECT count(*) FROM after_sales a WHERE {CONDITION}")).await?;
    let params =
        [&filter.user_id as &(dyn tokio_postgres::types::ToSql + Sync), &filter.shop_id, &filter.status];
    let total: i64 = client.query_one(&count, &params).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!("{SELECT} WHERE {CONDITION} ORDER BY a.id DESC LIMIT $4 OFFSET $5"))
        .await?;
    let rows = client
        .query(&stmt, &[&filter.user_id, &filter.shop_id, &filter.status, &paging.limit(), &paging.offset()])
        .await?;
    let views =
        rows.iter().map(|row| AfterSaleRow::from_row(row).map(|a| a.view)).collect::<Result<_, _>>()?;
    Ok((views, total))
}

/// Marks `quantity` units (worth `cents`) of an order's SKU refunded and
/// returns the line's product (none for flash-sale SKUs), or `None` when the
/// SKU is not in the order. More than the line holds breaks its CHECK.
pub async fn refund_line(
    client: &impl GenericClient,
    order_id: i64,
    sku_id: i64,
    quantity: i32,
    cents: i64,
) -> Result<Option<Option<i64>>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "UPDATE order_items SET refunded_quantity = refunded_quantity + $3, refunded_cents = refunded_cents + $4
             WHERE id = (SELECT id FROM order_items WHERE order_id = $1 AND sku_id = $2 ORDER BY id LIMIT 1)
             RETURNING product_id",
        )
        .await?;
    client
        .query_opt(&stmt, &[&order_id, &sku_id, &quantity, &cents])
        .await?
        .map(|row| row.try_get(0))
        .transpose()
}

/// Takes refunded units off a product's sales count.
pub async fn uncount_sales(
    client: &impl GenericClient,
    product_id: i64,
    units: i32,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached("UPDATE products SET sales_count = GREATEST(sales_count - $2, 0) WHERE id = $1")
        .await?;
    client.execute(&stmt, &[&product_id, &i64::from(units)]).await?;
    Ok(())
}
