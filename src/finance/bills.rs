//! A shopper's bill: every money movement between them and the mall (a
//! payment taken, a refund given back), by calendar month (UTC) with the
//! month's totals. Read straight from the payment and refund records, so
//! the bill can never disagree with them.

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::page::{Page, Paging};

/// One money movement of a shopper.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillEntry {
    /// `payment` (money out of the shopper) or `refund` (money back).
    pub kind: String,
    /// Negative for payments, positive for refunds.
    pub amount_cents: i64,
    pub currency: String,
    pub payment_no: String,
    pub order_no: String,
    pub provider: String,
    pub at: DateTime<Utc>,
}

/// A month's totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthTotals {
    /// `YYYY-MM`.
    pub month: String,
    pub paid_cents: i64,
    pub refunded_cents: i64,
    /// Refunded minus paid: what the month cost the shopper, negated.
    pub net_cents: i64,
    pub entries: i64,
}

/// One month of a shopper's bill.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonthBill {
    #[serde(flatten)]
    pub totals: MonthTotals,
    /// The month's movements, newest first.
    pub movements: Page<BillEntry>,
}

/// The movements of a user between two instants, as one relation.
const MOVEMENTS: &str =
    "SELECT 'payment' AS kind, -p.amount_cents AS amount, p.currency, p.payment_no, o.order_no,
            p.provider, p.paid_at AS at, p.id AS seq
     FROM payments p JOIN orders o ON o.id = p.order_id
     WHERE p.user_id = $1 AND p.status IN ('succeeded', 'refunded') AND p.paid_at >= $2 AND p.paid_at < $3
     UNION ALL
     SELECT 'refund', r.amount_cents, p.currency, p.payment_no, o.order_no, p.provider, r.succeeded_at, r.id
     FROM refunds r JOIN payments p ON p.id = r.payment_id JOIN orders o ON o.id = p.order_id
     WHERE p.user_id = $1 AND r.status = 'succeeded' AND r.succeeded_at >= $2 AND r.succeeded_at < $3";

/// Parses `YYYY-MM` into the month's first day.
pub fn parse_month(month: &str) -> ApiResult<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .ok()
        .filter(|day| month.len() == 7 && (2000..=9999).contains(&day.year()))
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidQuery).with_message("month is YYYY-MM"))
}

fn utc_midnight(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN))
}

/// The half-open UTC interval of the `months` months from `first`.
fn span(first: NaiveDate, months: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = first.checked_add_months(Months::new(months)).unwrap_or(NaiveDate::MAX);
    (utc_midnight(first), utc_midnight(end))
}

/// Totals of every month of `year` with any movement, oldest first.
pub async fn months(client: &impl GenericClient, user_id: i64, year: i32) -> ApiResult<Vec<MonthTotals>> {
    let first = NaiveDate::from_ymd_opt(year, 1, 1)
        .filter(|_| (2000..=9999).contains(&year))
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidQuery).with_message("year is 2000-9999"))?;
    totals_by_month(client, user_id, first, 12).await
}

/// Totals of each month with any movement among the `count` months from
/// `first`, oldest first.
async fn totals_by_month(
    client: &impl GenericClient,
    user_id: i64,
    first: NaiveDate,
    count: u32,
) -> ApiResult<Vec<MonthTotals>> {
    let (from, to) = span(first, count);
    let stmt = client
        .prepare_cached(&format!(
            "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
                    COALESCE(-sum(amount) FILTER (WHERE kind = 'payment'), 0)::int8 AS paid,
                    COALESCE(sum(amount) FILTER (WHERE kind = 'refund'), 0)::int8 AS refunded,
                    count(*) AS entries
             FROM ({MOVEMENTS}) m GROUP BY 1 ORDER BY 1"
        ))
        .await?;
    let rows = client.query(&stmt, &[&user_id, &from, &to]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let paid: i64 = row.try_get("paid")?;
            let refunded: i64 = row.try_get("refunded")?;
            Ok::<_, tokio_postgres::Error>(MonthTotals {
                month: row.try_get("month")?,
                paid_cents: paid,
                refunded_cents: refunded,
                net_cents: refunded - paid,
                entries: row.try_get("entries")?,
            })
        })
        .collect::<Result<_, _>>()?)
}

/// One month of the bill: its totals and one page of its movements.
pub async fn month(
    client: &impl GenericClient,
    user_id: i64,
    first: NaiveDate,
    paging: Paging,
) -> ApiResult<MonthBill> {
    let totals = totals_by_month(client, user_id, first, 1).await?.pop().unwrap_or_else(|| MonthTotals {
        month: first.format("%Y-%m").to_string(),
        paid_cents: 0,
        refunded_cents: 0,
        net_cents: 0,
        entries: 0,
    });
    let (from, to) = span(first, 1);
    let page =
        client.prepare_cached(&format!("{MOVEMENTS} ORDER BY at DESC, seq DESC LIMIT $4 OFFSET $5")).await?;
    let rows = client.query(&page, &[&user_id, &from, &to, &paging.limit(), &paging.offset()]).await?;
    let entries = rows
        .iter()
        .map(|row| {
            Ok::<_, tokio_postgres::Error>(BillEntry {
                kind: row.try_get("kind")?,
                amount_cents: row.try_get("amount")?,
                currency: row.try_get("currency")?,
                payment_no: row.try_get("payment_no")?,
                order_no: row.try_get("order_no")?,
                provider: row.try_get("provider")?,
                at: row.try_get("at")?,
            })
        })
        .collect::<Result<_, _>>()?;
    let count = totals.entries;
    Ok(MonthBill { totals, movements: paging.wrap(entries, count) })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn months_parse_strictly() {
        assert_eq!(parse_month("2026-11").unwrap(), NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        for bad in ["2026-13", "2026-1", "26-11", "2026-11-01", "", "1999-12"] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn december_ends_at_the_next_new_year() {
        let (from, to) = span(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(), 1);
        assert_eq!(from.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }
}
