//! An order's money, moved together with its books: the payment into
//! escrow, refunds owed back to the shopper, and completion, which settles
//! the order's net to its shop less the platform's commission. Each runs in
//! the caller's transaction, so the order, the refund records and the
//! journal always change together.

use deadpool_postgres::GenericClient;
use serde_json::json;

use super::ledger::{self, Account, Entry, EntryKind, OrderMoney};
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::order::store as order_store;
use crate::payment::store as payment_store;

/// The order's payment arrived: `total_cents` goes into escrow.
pub async fn record_payment(client: &impl GenericClient, order_id: i64, total_cents: i64) -> ApiResult<()> {
    let entry = Entry::new(
        EntryKind::Payment,
        "order paid",
        vec![(Account::Cash, total_cents), (Account::Escrow, -total_cents)],
    )
    .order(order_id);
    ledger::post(client, &entry).await
}

/// The order completed: what is left of its payment after refunds is
/// credited to its shop, less `commission_bps`, and remembered so later
/// refunds take it back from the shop.
pub async fn settle(client: &impl GenericClient, order_id: i64, commission_bps: i32) -> ApiResult<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE orders SET settled_cents = total_cents - refunded_cents, commission_bps = $2
             WHERE id = $1 AND settled_cents IS NULL AND paid_at IS NOT NULL
             RETURNING shop_id, settled_cents",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&order_id, &commission_bps]).await? else { return Ok(()) };
    let shop_id: Option<i64> = row.try_get(0)?;
    let net: i64 = row.try_get(1)?;
    let lines = ledger::settlement_lines(shop_id, net, commission_bps);
    ledger::post(client, &Entry::new(EntryKind::Settlement, "order completed", lines).order(order_id)).await
}

/// How much of an order to refund.
#[derive(Debug, Clone, Copy)]
pub enum RefundAmount {
    /// Everything not refunded yet (a paid order was cancelled).
    Remaining,
    /// Exactly this much (an after-sale request).
    Exact(i64),
}

/// Owes money back on a paid order: adds it to the order's refunded total
/// (the database refuses more than was paid: 409 `exceeds_refundable`),
/// records a refund against the payment that paid the order for the refund
/// worker to send (or, for an order paid with no gateway, a payment
/// exception for an operator), and posts it to the books. The refunds'
/// ids, to send after commit.
pub async fn owe_refund(
    client: &impl GenericClient,
    order_id: i64,
    amount: RefundAmount,
    reason: &str,
    after_sale_id: Option<i64>,
) -> ApiResult<Vec<i64>> {
    let exact = match amount {
        RefundAmount::Remaining => None,
        RefundAmount::Exact(cents) => Some(cents),
    };
    let stmt = client
        .prepare_cached(
            "WITH old AS (SELECT refunded_cents FROM orders WHERE id = $1 FOR UPDATE)
             UPDATE orders o SET refunded_cents = COALESCE(old.refunded_cents + $2, o.total_cents), updated_at = now()
             FROM old WHERE o.id = $1
             RETURNING o.shop_id, o.total_cents, old.refunded_cents AS before, o.refunded_cents AS after,
                       o.settled_cents, COALESCE(o.commission_bps, 0) AS commission_bps, o.paid_by_payment_id",
        )
        .await?;
    let row =
        client.query_opt(&stmt, &[&order_id, &exact]).await.map_err(|err| {
            match db::violated_check(&err) {
                Some(_) => ApiError::new(ErrorCode::ExceedsRefundable),
                None => err.into(),
            }
        })?;
    let row = row.ok_or_else(|| ApiError::new(ErrorCode::NotFound).with_message("no such order"))?;
    let before: i64 = row.try_get("before")?;
    let owed = row.try_get::<_, i64>("after")? - before;
    if owed <= 0 {
        return Ok(Vec::new());
    }
    let money = OrderMoney {
        shop_id: row.try_get("shop_id")?,
        total_cents: row.try_get("total_cents")?,
        refunded_cents: before,
        settled_cents: row.try_get("settled_cents")?,
        commission_bps: row.try_get("commission_bps")?,
    };
    let refund_id = match row.try_get::<_, Option<i64>>("paid_by_payment_id")? {
        Some(payment_id) => {
            let refund_id =
                payment_store::insert_refund(client, payment_id, owed, reason, after_sale_id, None).await?;
            payment_store::log_event(
                client,
                payment_id,
                "refund_requested",
                &json!({"reason": reason, "amount_cents": owed}),
            )
            .await?;
            Some(refund_id)
        }
        None => {
            order_store::record_payment_exception(client, order_id, owed, reason).await?;
            None
        }
    };
    let mut entry =
        Entry::new(EntryKind::RefundOwed, reason, ledger::refund_owed_lines(&money, owed)).order(order_id);
    entry.refund_id = refund_id;
    ledger::post(client, &entry).await?;
    Ok(refund_id.into_iter().collect())
}

/// Money arrived that no order can take (a late, doubled or mismatched
/// settlement) and refund `refund_id` sends it back: into cash, owed out.
pub async fn record_unapplied_receipt(
    client: &impl GenericClient,
    refund_id: i64,
    amount_cents: i64,
    reason: &str,
) -> ApiResult<()> {
    let lines = vec![(Account::Cash, amount_cents), (Account::RefundsPayable, -amount_cents)];
    ledger::post(client, &Entry::new(EntryKind::UnappliedReceipt, reason, lines).refund(refund_id)).await
}

/// The gateway took refund `refund_id`: the money leaves cash.
pub async fn record_refund_sent(
    client: &impl GenericClient,
    refund_id: i64,
    amount_cents: i64,
) -> ApiResult<()> {
    let lines = vec![(Account::RefundsPayable, amount_cents), (Account::Cash, -amount_cents)];
    ledger::post(client, &Entry::new(EntryKind::RefundSent, "refund sent", lines).refund(refund_id)).await
}
