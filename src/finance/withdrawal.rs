//! A shop's money: its balance and entries as the books have them, and
//! withdrawals, which hold the amount out of the balance when requested
//! and pay it out (or give it back) when an operator decides.

use chrono::{DateTime, TimeDelta, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::json;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::ledger::{self, Account, Entry, EntryKind};
use crate::after_sale::lifecycle::Status as AfterSaleStatus;
use crate::audit::Actor;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::page::Paging;
use crate::state::AppState;

/// A shop's standing in the books.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShopBalance {
    pub shop_id: i64,
    /// What the platform owes the shop.
    pub balance_cents: i64,
    /// Of the balance, what completed orders still inside their return
    /// window may yet take back: held until the window closes.
    pub held_for_returns_cents: i64,
    /// What the shop may withdraw now.
    pub withdrawable_cents: i64,
    /// Withdrawals requested and awaiting an operator.
    pub withdrawing_cents: i64,
    /// Paid for the shop's orders that have not completed yet (credited
    /// to the balance, less commission, when they complete).
    pub in_escrow_cents: i64,
    /// The platform's commission on completed orders, in basis points.
    pub commission_bps: u16,
}

/// The shop's balance as of now; the shop row is expected to be locked
/// by the caller when the figure decides a withdrawal.
pub async fn balance(state: &AppState, client: &impl GenericClient, shop_id: i64) -> ApiResult<ShopBalance> {
    let finance = &state.settings.finance;
    let returnable_since = state.clock.now() - TimeDelta::days(i64::from(finance.return_window_days));
    let stmt = client
        .prepare_cached(
            "SELECT
                 COALESCE(-sum(amount_cents) FILTER (WHERE account = 'shop_balance'), 0)::int8,
                 COALESCE(-sum(amount_cents) FILTER (WHERE account = 'shop_withdrawing'), 0)::int8,
                 (SELECT COALESCE(sum(total_cents - refunded_cents), 0)::int8 FROM orders
                  WHERE shop_id = $1 AND paid_at IS NOT NULL AND settled_cents IS NULL AND status <> 'cancelled'),
                 (SELECT COALESCE(sum(o.total_cents - o.refunded_cents), 0)::int8 FROM orders o
                  WHERE o.shop_id = $1 AND o.settled_cents IS NOT NULL
                    AND (COALESCE(o.delivered_at, o.completed_at) > $2
                         OR EXISTS (SELECT 1 FROM after_sales a
                                    WHERE a.order_id = o.id AND a.status = ANY($3))))
             FROM journal_lines WHERE shop_id = $1",
        )
        .await?;
    // An after-sale request opened in the window may be refunded after it
    // closes (goods on their way back, a dispute with an operator): its
    // order stays held until the request is settled.
    let open_requests: Vec<&str> = AfterSaleStatus::HOLDING.iter().map(|s| s.as_str()).collect();
    let row = client.query_one(&stmt, &[&shop_id, &returnable_since, &open_requests]).await?;
    let balance: i64 = row.try_get(0)?;
    let returnable: i64 = row.try_get(3)?;
    // The commission on returned money goes back with it, so the shop
    // stands to lose a little less than the gross; holding the gross errs
    // on the platform's side.
    let held = returnable.min(balance.max(0));
    Ok(ShopBalance {
        shop_id,
        balance_cents: balance,
        held_for_returns_cents: held,
        withdrawable_cents: (balance - held).max(0),
        withdrawing_cents: row.try_get(1)?,
        in_escrow_cents: row.try_get(2)?,
        commission_bps: finance.commission_bps,
    })
}

/// One movement of a shop's money, as the shop sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShopEntry {
    pub entry_id: i64,
    /// `settlement`, `refund_owed`, `withdrawal_requested`, `withdrawal_paid`
    /// or `withdrawal_rejected`.
    pub kind: String,
    /// `shop_balance` or `shop_withdrawing`.
    pub account: String,
    /// Positive: the shop's account grew; negative: it shrank.
    pub amount_cents: i64,
    pub order_no: Option<String>,
    pub withdrawal_id: Option<i64>,
    pub memo: String,
    pub at: DateTime<Utc>,
}

/// One page of the shop's entries, newest first.
pub async fn entries(
    client: &impl GenericClient,
    shop_id: i64,
    paging: Paging,
) -> ApiResult<(Vec<ShopEntry>, i64)> {
    let count = client.prepare_cached("SELECT count(*) FROM journal_lines WHERE shop_id = $1").await?;
    let total: i64 = client.query_one(&count, &[&shop_id]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(
            "SELECT e.id, e.kind, l.account, -l.amount_cents AS amount, o.order_no, e.withdrawal_id, e.memo, e.created_at
             FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id
             LEFT JOIN orders o ON o.id = e.order_id
             WHERE l.shop_id = $1 ORDER BY l.id DESC LIMIT $2 OFFSET $3",
        )
        .await?;
    let rows = client.query(&stmt, &[&shop_id, &paging.limit(), &paging.offset()]).await?;
    let entries = rows
        .iter()
        .map(|row| {
            Ok::<_, tokio_postgres::Error>(ShopEntry {
                entry_id: row.try_get(0)?,
                kind: row.try_get(1)?,
                account: row.try_get(2)?,
                amount_cents: row.try_get(3)?,
                order_no: row.try_get(4)?,
                withdrawal_id: row.try_get(5)?,
                memo: row.try_get(6)?,
                at: row.try_get(7)?,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((entries, total))
}

/// A withdrawal of a shop's balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct Withdrawal {
    pub id: i64,
    pub shop_id: i64,
    pub amount_cents: i64,
    /// `requested`, `paid` or `rejected`.
    pub status: String,
    /// Where the money goes, masked but for its last four characters.
    pub payout_account: String,
    pub requested_by: i64,
    pub decided_by: Option<i64>,
    /// The operator's note on the decision.
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

const WITHDRAWAL_COLUMNS: &str =
    "id, shop_id, amount_cents, status, payout_account, requested_by, decided_by, note, created_at, decided_at";

impl Withdrawal {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        let account: String = row.try_get("payout_account")?;
        Ok(Self {
            id: row.try_get("id")?,
            shop_id: row.try_get("shop_id")?,
            amount_cents: row.try_get("amount_cents")?,
            status: row.try_get("status")?,
            payout_account: mask(&account),
            requested_by: row.try_get("requested_by")?,
            decided_by: row.try_get("decided_by")?,
            note: row.try_get("note")?,
            created_at: row.try_get("created_at")?,
            decided_at: row.try_get("decided_at")?,
        })
    }
}

/// `****` and the last four characters.
fn mask(account: &str) -> String {
    let chars: Vec<char> = account.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("****{tail}")
}

/// Longest payout account description.
const PAYOUT_ACCOUNT_MAX_CHARS: usize = 100;

/// Asks to withdraw `amount_cents` of the shop's withdrawable balance to
/// `payout_account`: the amount leaves the balance at once (held until an
/// operator decides), so two requests can never spend the same money. The
/// shop row is locked while the balance is read.
pub async fn request(
    state: &AppState,
    shop_id: i64,
    user_id: i64,
    amount_cents: i64,
    payout_account: &str,
) -> ApiResult<Withdrawal> {
    let payout_account = payout_account.trim();
    let mut v = crate::validate::Validator::new();
    v.check("amount_cents", amount_cents > 0, "must_be_positive").length(
        "payout_account",
        payout_account,
        4,
        PAYOUT_ACCOUNT_MAX_CHARS,
    );
    v.finish()?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let lock = tx.prepare_cached("SELECT id FROM shops WHERE id = $1 FOR NO KEY UPDATE").await?;
    tx.query_opt(&lock, &[&shop_id]).await?.ok_or_else(|| ApiError::new(ErrorCode::NotFound))?;
    let standing = balance(state, &tx, shop_id).await?;
    if amount_cents > standing.withdrawable_cents {
        return Err(ApiError::new(ErrorCode::InsufficientBalance).with_message(format!(
            "{} cents can be withdrawn now ({} more are held until their return windows close)",
            standing.withdrawable_cents, standing.held_for_returns_cents
        )));
    }
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO shop_withdrawals (shop_id, amount_cents, status, payout_account, requested_by)
             VALUES ($1, $2, 'requested', $3, $4) RETURNING {WITHDRAWAL_COLUMNS}"
        ))
        .await?;
    let row = tx.query_one(&stmt, &[&shop_id, &amount_cents, &payout_account, &user_id]).await?;
    let withdrawal = Withdrawal::from_row(&row)?;
    let lines = vec![
        (Account::ShopBalance(shop_id), amount_cents),
        (Account::ShopWithdrawing(shop_id), -amount_cents),
    ];
    let entry =
        Entry::new(EntryKind::WithdrawalRequested, "withdrawal requested", lines).withdrawal(withdrawal.id);
    ledger::post(&tx, &entry).await?;
    tx.commit().await?;
    Ok(withdrawal)
}

/// One page of withdrawals, newest first: one shop's, or (for operators)
/// every shop's, optionally in one status.
pub async fn list(
    client: &impl GenericClient,
    shop_id: Option<i64>,
    status: Option<&str>,
    paging: Paging,
) -> ApiResult<(Vec<Withdrawal>, i64)> {
    const CONDITION: &str = "($1::int8 IS NULL OR shop_id = $1) AND ($2::text IS NULL OR status = $2)";
    let count =
        client.prepare_cached(&format!("SELECT count(*) FROM shop_withdrawals WHERE {CONDITION}")).await?;
    let total: i64 = client.query_one(&count, &[&shop_id, &status]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM shop_withdrawals WHERE {CONDITION} ORDER BY id DESC LIMIT $3 OFFSET $4"
        ))
        .await?;
    let rows = client.query(&stmt, &[&shop_id, &status, &paging.limit(), &paging.offset()]).await?;
    let list = rows.iter().map(Withdrawal::from_row).collect::<Result<_, _>>()?;
    Ok((list, total))
}

/// An operator's decision on a requested withdrawal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Paid out: the money leaves the platform's cash.
    Pay,
    /// Refused: the amount goes back to the shop's balance.
    Reject,
}

/// Decides withdrawal `id` (only once: a decided one is 409
/// `invalid_state`), posts it to the books and audits it, in one
/// transaction.
pub async fn decide(
    state: &AppState,
    actor: Actor,
    id: i64,
    decision: Decision,
    note: &str,
) -> ApiResult<Withdrawal> {
    let note = note.trim();
    let mut v = crate::validate::Validator::new();
    match decision {
        Decision::Reject => v.length("note", note, 1, 500),
        Decision::Pay => v.length("note", note, 0, 500),
    };
    v.finish()?;
    let status = match decision {
        Decision::Pay => "paid",
        Decision::Reject => "rejected",
    };
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached(&format!(
            "UPDATE shop_withdrawals SET status = $2, decided_by = $3, note = NULLIF($4, ''), decided_at = now()
             WHERE id = $1 AND status = 'requested' RETURNING {WITHDRAWAL_COLUMNS}"
        ))
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&id, &status, &actor.user_id, &note]).await? else {
        let exists = tx.prepare_cached("SELECT status FROM shop_withdrawals WHERE id = $1").await?;
        return Err(match tx.query_opt(&exists, &[&id]).await? {
            Some(row) => ApiError::new(ErrorCode::InvalidState)
                .with_message(format!("the withdrawal is {}", row.try_get::<_, String>(0)?)),
            None => ApiError::new(ErrorCode::NotFound).with_message("no such withdrawal"),
        });
    };
    let withdrawal = Withdrawal::from_row(&row)?;
    let (shop, amount) = (withdrawal.shop_id, withdrawal.amount_cents);
    let (kind, memo, lines) = match decision {
        Decision::Pay => (
            EntryKind::WithdrawalPaid,
            "withdrawal paid out",
            vec![(Account::ShopWithdrawing(shop), amount), (Account::Cash, -amount)],
        ),
        Decision::Reject => (
            EntryKind::WithdrawalRejected,
            "withdrawal rejected",
            vec![(Account::ShopWithdrawing(shop), amount), (Account::ShopBalance(shop), -amount)],
        ),
    };
    ledger::post(&tx, &Entry::new(kind, memo, lines).withdrawal(withdrawal.id)).await?;
    actor
        .record(
            &tx,
            &format!("withdrawal.{status}"),
            id,
            json!({"shop_id": shop, "amount_cents": amount, "note": note}),
        )
        .await?;
    tx.commit().await?;
    Ok(withdrawal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payout_accounts_show_only_their_last_four_characters() {
        assert_eq!(mask("6222 0210 0011 2233"), "****2233");
        assert_eq!(mask("ab"), "****ab");
        assert_eq!(mask("钱包地址一二三四五"), "****二三四五");
    }
}
