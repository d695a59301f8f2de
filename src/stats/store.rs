//! SQL of a shop's statistics. Days are UTC calendar days.

use chrono::NaiveDate;
use deadpool_postgres::GenericClient;
use serde::Serialize;
use utoipa::ToSchema;

/// One day of a shop's business.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayStats {
    pub day: NaiveDate,
    /// Orders placed that day (any status now).
    pub orders: i64,
    /// Orders paid that day.
    pub paid_orders: i64,
    /// Gross merchandise value: the totals of the orders paid that day, in cents.
    pub gmv_cents: i64,
    /// Money refunded that day, in cents.
    pub refunded_cents: i64,
}

/// The shop's figures for every day from `from` to `to` (inclusive),
/// days without business included as zeros.
pub async fn days(
    client: &impl GenericClient,
    shop_id: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DayStats>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "WITH days AS (SELECT generate_series($2::date, $3::date, interval '1 day')::date AS day),
             placed AS (
                 SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS orders FROM orders
                 WHERE shop_id = $1 AND created_at >= ($2::date::timestamp AT TIME ZONE 'UTC') AND created_at < (($3::date + 1)::timestamp AT TIME ZONE 'UTC') GROUP BY 1
             ), paid AS (
                 SELECT (paid_at AT TIME ZONE 'UTC')::date AS day, count(*) AS paid_orders,
                        sum(total_cents)::int8 AS gmv
                 FROM orders WHERE shop_id = $1 AND paid_at >= ($2::date::timestamp AT TIME ZONE 'UTC') AND paid_at < (($3::date + 1)::timestamp AT TIME ZONE 'UTC')
                 GROUP BY 1
             ), refunded AS (
                 SELECT (r.succeeded_at AT TIME ZONE 'UTC')::date AS day, sum(r.amount_cents)::int8 AS refunded
                 FROM refunds r JOIN payments p ON p.id = r.payment_id JOIN orders o ON o.id = p.order_id
                 WHERE o.shop_id = $1 AND r.status = 'succeeded'
                   AND r.succeeded_at >= ($2::date::timestamp AT TIME ZONE 'UTC')
                   AND r.succeeded_at < (($3::date + 1)::timestamp AT TIME ZONE 'UTC')
                 GROUP BY 1
             )
             SELECT d.day, COALESCE(placed.orders, 0) AS orders, COALESCE(paid.paid_orders, 0) AS paid_orders,
                    COALESCE(paid.gmv, 0) AS gmv, COALESCE(refunded.refunded, 0) AS refunded
             FROM days d LEFT JOIN placed USING (day) LEFT JOIN paid USING (day) LEFT JOIN refunded USING (day)
             ORDER BY d.day",
        )
        .await?;
    client
        .query(&stmt, &[&shop_id, &from, &to])
        .await?
        .iter()
        .map(|row| {
            Ok(DayStats {
                day: row.try_get("day")?,
                orders: row.try_get("orders")?,
                paid_orders: row.try_get("paid_orders")?,
                gmv_cents: row.try_get("gmv")?,
                refunded_cents: row.try_get("refunded")?,
            })
        })
        .collect()
}

/// A best-selling SKU.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopSku {
    pub sku_id: i64,
    pub title: String,
    /// Units in orders paid in the range and not cancelled since.
    pub units: i64,
    pub revenue_cents: i64,
}

/// The shop's best sellers by units in the range, at most `limit`.
pub async fn top_skus(
    client: &impl GenericClient,
    shop_id: i64,
    from: NaiveDate,
    to: NaiveDate,
    limit: i64,
) -> Result<Vec<TopSku>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT oi.sku_id, min(oi.title) AS title, sum(oi.quantity)::int8 AS units,
                    sum(oi.total_cents)::int8 AS revenue
             FROM orders o JOIN order_items oi ON oi.order_id = o.id
             WHERE o.shop_id = $1 AND o.status <> 'cancelled'
               AND o.paid_at >= ($2::date::timestamp AT TIME ZONE 'UTC')
               AND o.paid_at < (($3::date + 1)::timestamp AT TIME ZONE 'UTC')
             GROUP BY oi.sku_id ORDER BY units DESC, oi.sku_id LIMIT $4",
        )
        .await?;
    client
        .query(&stmt, &[&shop_id, &from, &to, &limit])
        .await?
        .iter()
        .map(|row| {
            Ok(TopSku {
                sku_id: row.try_get("sku_id")?,
                title: row.try_get("title")?,
                units: row.try_get("units")?,
                revenue_cents: row.try_get("revenue")?,
            })
        })
        .collect()
}
