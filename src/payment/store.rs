//! SQL of payments, their event log and refunds.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::page::Paging;

/// A payment attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentView {
    pub payment_no: String,
    pub order_no: String,
    /// `alipay`, `wechat`, `bank`, `btc`, `eth`, `usdt`, `doge` or `sandbox`.
    pub provider: String,
    pub amount_cents: i64,
    pub currency: String,
    /// `pending`, `succeeded`, `failed` or `refunded`.
    pub status: String,
    /// Where the shopper pays (a page, or a QR code's payload).
    pub pay_url: String,
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A payment with its ids.
#[derive(Debug, Clone)]
pub struct PaymentRow {
    pub id: i64,
    pub user_id: i64,
    pub order_id: i64,
    pub provider_payment_id: String,
    pub provider_txn_id: Option<String>,
    pub view: PaymentView,
}

const PAYMENT_SELECT: &str = "SELECT p.id, p.user_id, p.order_id, p.provider_payment_id, p.provider_txn_id, \
     p.payment_no, o.order_no, p.provider, p.amount_cents, p.currency, p.status, p.pay_url, p.paid_at, p.created_at \
     FROM payments p JOIN orders o ON o.id = p.order_id";

impl PaymentRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            order_id: row.try_get("order_id")?,
            provider_payment_id: row.try_get("provider_payment_id")?,
            provider_txn_id: row.try_get("provider_txn_id")?,
            view: PaymentView {
                payment_no: row.try_get("payment_no")?,
                order_no: row.try_get("order_no")?,
                provider: row.try_get("provider")?,
                amount_cents: row.try_get("amount_cents")?,
                currency: row.try_get("currency")?,
                status: row.try_get("status")?,
                pay_url: row.try_get("pay_url")?,
                paid_at: row.try_get("paid_at")?,
                created_at: row.try_get("created_at")?,
            },
        })
    }
}

/// A payment to record, as the gateway opened it.
pub struct NewPayment<'a> {
    pub payment_no: &'a str,
    pub user_id: i64,
    pub order_id: i64,
    pub provider: &'a str,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub provider_payment_id: &'a str,
    pub pay_url: &'a str,
}

/// Records a pending payment with its `created` event.
pub async fn insert(client: &impl GenericClient, new: &NewPayment<'_>) -> Result<i64, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "WITH p AS (
                 INSERT INTO payments (payment_no, user_id, order_id, provider, amount_cents, currency, status,
                                       provider_payment_id, pay_url)
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8) RETURNING id
             ), e AS (
                 INSERT INTO payment_events (payment_id, kind, detail)
                 SELECT id, 'created', jsonb_build_object('amount_cents', $5::int8, 'currency', $6::text) FROM p
             )
             SELECT id FROM p",
        )
        .await?;
    client
        .query_one(
            &stmt,
            &[
                &new.payment_no,
                &new.user_id,
                &new.order_id,
                &new.provider,
                &new.amount_cents,
                &new.currency,
                &new.provider_payment_id,
                &new.pay_url,
            ],
        )
        .await?
        .try_get(0)
}

/// One payment by its number.
pub async fn find_by_no(
    client: &impl GenericClient,
    payment_no: &str,
) -> Result<Option<PaymentRow>, tokio_postgres::Error> {
    let stmt = client.prepare_cached(&format!("{PAYMENT_SELECT} WHERE p.payment_no = $1")).await?;
    client.query_opt(&stmt, &[&payment_no]).await?.map(|row| PaymentRow::from_row(&row)).transpose()
}

/// One payment by the gateway's id, locked until the transaction ends (its
/// callbacks are handled one at a time).
pub async fn lock_by_provider_id(
    client: &impl GenericClient,
    provider: &str,
    provider_payment_id: &str,
) -> Result<Option<PaymentRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "{PAYMENT_SELECT} WHERE p.provider = $1 AND p.provider_payment_id = $2 FOR UPDATE OF p"
        ))
        .await?;
    client
        .query_opt(&stmt, &[&provider, &provider_payment_id])
        .await?
        .map(|row| PaymentRow::from_row(&row))
        .transpose()
}

/// Moves a payment to `status` (stamping the settling transaction for
/// `succeeded`), with an event.
pub async fn settle(
    client: &impl GenericClient,
    payment_id: i64,
    status: &str,
    txn_id: Option<&str>,
    at: DateTime<Utc>,
    detail: &serde_json::Value,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "WITH p AS (
                 UPDATE payments SET status = $2, provider_txn_id = COALESCE($3, provider_txn_id),
                     paid_at = CASE WHEN $2 = 'succeeded' THEN $4 ELSE paid_at END, updated_at = now()
                 WHERE id = $1 RETURNING id
             )
             INSERT INTO payment_events (payment_id, kind, detail) SELECT id, $2, $5 FROM p",
        )
        .await?;
    client.execute(&stmt, &[&payment_id, &status, &txn_id, &at, detail]).await?;
    Ok(())
}

/// Adds an event to a payment's log.
pub async fn log_event(
    client: &impl GenericClient,
    payment_id: i64,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached("INSERT INTO payment_events (payment_id, kind, detail) VALUES ($1, $2, $3)")
        .await?;
    client.execute(&stmt, &[&payment_id, &kind, detail]).await?;
    Ok(())
}

/// One entry of a payment's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentEvent {
    pub kind: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// A payment's log, oldest first.
pub async fn events(
    client: &impl GenericClient,
    payment_id: i64,
) -> Result<Vec<PaymentEvent>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT kind, detail, created_at FROM payment_events WHERE payment_id = $1 ORDER BY id",
        )
        .await?;
    client
        .query(&stmt, &[&payment_id])
        .await?
        .iter()
        .map(|row| Ok(PaymentEvent { kind: row.try_get(0)?, detail: row.try_get(1)?, at: row.try_get(2)? }))
        .collect()
}

/// Filters of a payment list.
#[derive(Debug, Default)]
pub struct PaymentFilter<'a> {
    pub user_id: Option<i64>,
    pub status: Option<&'a str>,
    pub provider: Option<&'a str>,
}

/// One page of payments, newest first.
pub async fn list(
    client: &impl GenericClient,
    filter: &PaymentFilter<'_>,
    paging: Paging,
) -> Result<(Vec<PaymentView>, i64), tokio_postgres::Error> {
    const CONDITION: &str = "($1::int8 IS NULL OR p.user_id = $1) AND ($2::text IS NULL OR p.status = $2)
         AND ($3::text IS NULL OR p.provider = $3)";
    let count = client.prepare_cached(&format!("SELECT count(*) FROM payments p WHERE {CONDITION}")).await?;
    let total: i64 =
        client.query_one(&count, &[&filter.user_id, &filter.status, &filter.provider]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!("{PAYMENT_SELECT} WHERE {CONDITION} ORDER BY p.id DESC LIMIT $4 OFFSET $5"))
        .await?;
    let rows = client
        .query(&stmt, &[&filter.user_id, &filter.status, &filter.provider, &paging.limit(), &paging.offset()])
        .await?;
    let views = rows.iter().map(|row| PaymentRow::from_row(row).map(|p| p.view)).collect::<Result<_, _>>()?;
    Ok((views, total))
}

/// Records a refund owed on a payment (paying an after-sale request, when
/// one is given); its id.
pub async fn insert_refund(
    client: &impl GenericClient,
    payment_id: i64,
    amount_cents: i64,
    reason: &str,
    after_sale_id: Option<i64>,
    source_txn_id: Option<&str>,
) -> Result<i64, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO refunds (payment_id, amount_cents, reason, status, after_sale_id, source_txn_id)
             VALUES ($1, $2, $3, 'pending', $4, $5) RETURNING id",
        )
        .await?;
    client
        .query_one(&stmt, &[&payment_id, &amount_cents, &reason, &after_sale_id, &source_txn_id])
        .await?
        .try_get(0)
}

/// Whether a refund of the gateway transaction `txn_id` on `payment_id`
/// is already owed (a redelivered callback of money refunded on arrival).
pub async fn refund_of_txn_exists(
    client: &impl GenericClient,
    payment_id: i64,
    txn_id: &str,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM refunds WHERE payment_id = $1 AND source_txn_id = $2)")
        .await?;
    client.query_one(&stmt, &[&payment_id, &txn_id]).await?.try_get(0)
}

/// Records that `payment_id` is what paid the order (its refunds go back
/// through it, whatever other attempts settled).
pub async fn mark_paying(
    client: &impl GenericClient,
    order_id: i64,
    payment_id: i64,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client.prepare_cached("UPDATE orders SET paid_by_payment_id = $2 WHERE id = $1").await?;
    client.execute(&stmt, &[&order_id, &payment_id]).await?;
    Ok(())
}

/// A refund not yet taken by the gateway, with what sending it needs.
pub struct UnsentRefund {
    pub id: i64,
    pub amount_cents: i64,
    pub payment_id: i64,
    pub payment_amount_cents: i64,
    pub provider: String,
    pub provider_payment_id: String,
}

/// Locks refund `id` if it is still unsent and nobody else is sending it.
pub async fn lock_unsent_refund(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<UnsentRefund>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT r.id, r.amount_cents, r.payment_id, p.amount_cents AS payment_amount_cents, p.provider,
                    p.provider_payment_id
             FROM refunds r JOIN payments p ON p.id = r.payment_id
             WHERE r.id = $1 AND r.status <> 'succeeded' FOR UPDATE OF r SKIP LOCKED",
        )
        .await?;
    client
        .query_opt(&stmt, &[&id])
        .await?
        .map(|row| {
            Ok(UnsentRefund {
                id: row.try_get("id")?,
                amount_cents: row.try_get("amount_cents")?,
                payment_id: row.try_get("payment_id")?,
                payment_amount_cents: row.try_get("payment_amount_cents")?,
                provider: row.try_get("provider")?,
                provider_payment_id: row.try_get("provider_payment_id")?,
            })
        })
        .transpose()
}

/// Locks a payment row until the transaction ends.
pub async fn lock_payment(client: &impl GenericClient, payment_id: i64) -> Result<(), tokio_postgres::Error> {
    let stmt = client.prepare_cached("SELECT 1 FROM payments WHERE id = $1 FOR UPDATE").await?;
    client.execute(&stmt, &[&payment_id]).await?;
    Ok(())
}

/// Refunds still to send, least recently tried first, not tried within
/// `backoff_secs`.
pub async fn unsent_refunds(
    client: &impl GenericClient,
    backoff_secs: f64,
    limit: i64,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT id FROM refunds WHERE status <> 'succeeded' AND updated_at <= now() - make_interval(secs => $1)
             ORDER BY updated_at LIMIT $2",
        )
        .await?;
    client.query(&stmt, &[&backoff_secs, &limit]).await?.iter().map(|row| row.try_get(0)).collect()
}

/// Units of money already refunded on a payment.
pub async fn refunded_total(
    client: &impl GenericClient,
    payment_id: i64,
) -> Result<i64, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT COALESCE(sum(amount_cents), 0)::int8 FROM refunds WHERE payment_id = $1 AND status = 'succeeded'",
        )
        .await?;
    client.query_one(&stmt, &[&payment_id]).await?.try_get(0)
}

/// Marks a refund done (with the gateway's id) or failed once more (to be
/// retried).
pub async fn finish_refund(
    client: &impl GenericClient,
    refund_id: i64,
    provider_refund_id: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "UPDATE refunds SET status = CASE WHEN $2::text IS NULL THEN 'failed' ELSE 'succeeded' END,
                 provider_refund_id = $2, attempts = attempts + 1, updated_at = now(),
                 succeeded_at = CASE WHEN $2::text IS NULL THEN NULL ELSE now() END
             WHERE id = $1",
        )
        .await?;
    client.execute(&stmt, &[&refund_id, &provider_refund_id]).await?;
    Ok(())
}
