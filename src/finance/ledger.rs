//! The platform's double-entry books.
//!
//! Every money event (an order paid, a refund owed or sent, an order
//! completed, a withdrawal) is one journal entry whose lines sum to zero,
//! written in the transaction of the event itself: the books move exactly
//! when the business state does. A positive line debits its account, a
//! negative one credits it. The database refuses an entry that does not
//! balance (a deferred constraint trigger) and any change to a posted one.
//!
//! ```text
//! order paid            cash +paid            escrow -paid
//! refund owed (before   escrow +r             refunds_payable -r
//!   completion)
//! refund owed (after    shop_balance +(r-c)   commission +c        refunds_payable -r
//!   completion)
//! refund sent           refunds_payable +r    cash -r
//! unapplied receipt     cash +m               refunds_payable -m   (money no order can take)
//! order completed       escrow +net           shop_balance -(net-c) commission -c
//! withdrawal requested  shop_balance +w       shop_withdrawing -w
//! withdrawal paid       shop_withdrawing +w   cash -w
//! withdrawal rejected   shop_withdrawing +w   shop_balance -w
//! ```

use deadpool_postgres::GenericClient;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// One account of the books; the shop accounts are one per shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// Money held at the gateways.
    Cash,
    /// Paid for orders that have not completed.
    Escrow,
    /// Refunds decided that the gateway has not taken yet.
    RefundsPayable,
    /// The platform's cut of completed orders.
    Commission,
    /// Completed orders that belong to no shop.
    PlatformSales,
    /// What the platform owes the shop.
    ShopBalance(i64),
    /// The shop's withdrawals awaiting an operator.
    ShopWithdrawing(i64),
}

impl Account {
    /// The stored account name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cash => "cash",
            Self::Escrow => "escrow",
            Self::RefundsPayable => "refunds_payable",
            Self::Commission => "commission",
            Self::PlatformSales => "platform_sales",
            Self::ShopBalance(_) => "shop_balance",
            Self::ShopWithdrawing(_) => "shop_withdrawing",
        }
    }

    fn shop_id(self) -> Option<i64> {
        match self {
            Self::ShopBalance(shop) | Self::ShopWithdrawing(shop) => Some(shop),
            _ => None,
        }
    }
}

/// What kind of event an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Payment,
    RefundOwed,
    RefundSent,
    UnappliedReceipt,
    Settlement,
    WithdrawalRequested,
    WithdrawalPaid,
    WithdrawalRejected,
}

impl EntryKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payment => "payment",
            Self::RefundOwed => "refund_owed",
            Self::RefundSent => "refund_sent",
            Self::UnappliedReceipt => "unapplied_receipt",
            Self::Settlement => "settlement",
            Self::WithdrawalRequested => "withdrawal_requested",
            Self::WithdrawalPaid => "withdrawal_paid",
            Self::WithdrawalRejected => "withdrawal_rejected",
        }
    }
}

/// A journal entry to post.
#[derive(Debug)]
pub struct Entry<'a> {
    pub kind: EntryKind,
    pub order_id: Option<i64>,
    pub refund_id: Option<i64>,
    pub withdrawal_id: Option<i64>,
    pub memo: &'a str,
    /// Debits positive, credits negative; zero lines are left out.
    pub lines: Vec<(Account, i64)>,
}

impl<'a> Entry<'a> {
    /// An entry of `kind` with no references yet.
    pub fn new(kind: EntryKind, memo: &'a str, lines: Vec<(Account, i64)>) -> Self {
        Self { kind, order_id: None, refund_id: None, withdrawal_id: None, memo, lines }
    }

    /// The order the entry is about.
    pub fn order(mut self, order_id: i64) -> Self {
        self.order_id = Some(order_id);
        self
    }

    /// The refund the entry is about.
    pub fn refund(mut self, refund_id: i64) -> Self {
        self.refund_id = Some(refund_id);
        self
    }

    /// The withdrawal the entry is about.
    pub fn withdrawal(mut self, withdrawal_id: i64) -> Self {
        self.withdrawal_id = Some(withdrawal_id);
        self
    }
}

/// Posts `entry` in the caller's transaction. An entry whose lines are all
/// zero posts nothing; one that does not balance is a bug, refused here
/// (and by the database at commit).
pub async fn post(client: &impl GenericClient, entry: &Entry<'_>) -> ApiResult<()> {
    let lines: Vec<_> = entry.lines.iter().filter(|(_, amount)| *amount != 0).collect();
    if lines.is_empty() {
        return Ok(());
    }
    let sum: i64 = lines.iter().map(|(_, amount)| amount).sum();
    if sum != 0 {
        return Err(ApiError::internal(anyhow::anyhow!("unbalanced journal entry: {entry:?}")));
    }
    let accounts: Vec<&str> = lines.iter().map(|(account, _)| account.name()).collect();
    let shops: Vec<Option<i64>> = lines.iter().map(|(account, _)| account.shop_id()).collect();
    let amounts: Vec<i64> = lines.iter().map(|(_, amount)| *amount).collect();
    let stmt = client
        .prepare_cached(
            "WITH e AS (
                 INSERT INTO journal_entries (kind, order_id, refund_id, withdrawal_id, memo)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id
             )
             INSERT INTO journal_lines (entry_id, account, shop_id, amount_cents)
             SELECT e.id, l.account, l.shop_id, l.amount FROM e,
                    unnest($6::text[], $7::int8[], $8::int8[]) AS l(account, shop_id, amount)",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &entry.kind.as_str(),
                &entry.order_id,
                &entry.refund_id,
                &entry.withdrawal_id,
                &entry.memo,
                &accounts,
                &shops,
                &amounts,
            ],
        )
        .await?;
    Ok(())
}

/// The platform's cut of `net` at `bps` basis points, rounded down.
pub fn commission_of(net: i64, bps: i32) -> i64 {
    i64::try_from(i128::from(net) * i128::from(bps) / 10_000).unwrap_or(0)
}

/// The lines of completing an order: its net (paid minus refunded) leaves
/// escrow for the shop, less the commission. Orders of no shop are the
/// platform's own sales.
pub fn settlement_lines(shop_id: Option<i64>, net: i64, bps: i32) -> Vec<(Account, i64)> {
    match shop_id {
        Some(shop) => {
            let commission = commission_of(net, bps);
            vec![
                (Account::Escrow, net),
                (Account::ShopBalance(shop), -(net - commission)),
                (Account::Commission, -commission),
            ]
        }
        None => vec![(Account::Escrow, net), (Account::PlatformSales, -net)],
    }
}

/// An order's money as a refund finds it.
#[derive(Debug, Clone, Copy)]
pub struct OrderMoney {
    pub shop_id: Option<i64>,
    pub total_cents: i64,
    /// Refunded before this refund.
    pub refunded_cents: i64,
    /// What completion credited (none before completion).
    pub settled_cents: Option<i64>,
    /// The commission rate completion charged.
    pub commission_bps: i32,
}

/// The lines of owing `amount` back on an order. Before completion the
/// money comes out of escrow; after it, out of the shop's balance, and the
/// commission taken on those cents goes back too, computed so that refunding
/// everything gives back exactly the commission charged.
pub fn refund_owed_lines(order: &OrderMoney, amount: i64) -> Vec<(Account, i64)> {
    let Some(settled) = order.settled_cents else {
        return vec![(Account::Escrow, amount), (Account::RefundsPayable, -amount)];
    };
    let Some(shop) = order.shop_id else {
        return vec![(Account::PlatformSales, amount), (Account::RefundsPayable, -amount)];
    };
    // What was refunded after completion, before this refund.
    let refunded_after = order.refunded_cents - (order.total_cents - settled);
    let kept_before = settled - refunded_after;
    let commission_back = commission_of(kept_before, order.commission_bps)
        - commission_of(kept_before - amount, order.commission_bps);
    vec![
        (Account::ShopBalance(shop), amount - commission_back),
        (Account::Commission, commission_back),
        (Account::RefundsPayable, -amount),
    ]
}

/// One account's balance in the trial balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountBalance {
    pub account: String,
    /// For shop accounts.
    pub shop_id: Option<i64>,
    /// Debits minus credits.
    pub balance_cents: i64,
}

/// Every account's balance (shop accounts one row per shop); they sum to
/// zero.
pub async fn trial_balance(client: &impl GenericClient) -> ApiResult<Vec<AccountBalance>> {
    let stmt = client
        .prepare_cached(
            "SELECT account, shop_id, sum(amount_cents)::int8 FROM journal_lines
             GROUP BY account, shop_id ORDER BY account, shop_id NULLS FIRST",
        )
        .await?;
    let rows = client.query(&stmt, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            Ok::<_, tokio_postgres::Error>(AccountBalance {
                account: row.try_get(0)?,
                shop_id: row.try_get(1)?,
                balance_cents: row.try_get(2)?,
            })
        })
        .collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(lines: &[(Account, i64)]) -> i64 {
        lines.iter().map(|(_, amount)| amount).sum()
    }

    #[test]
    fn settlement_balances_and_takes_the_commission() {
        let lines = settlement_lines(Some(7), 10_001, 500);
        assert_eq!(sum(&lines), 0);
        assert_eq!(lines[2], (Account::Commission, -500));
        assert_eq!(lines[1], (Account::ShopBalance(7), -9_501));
        assert_eq!(sum(&settlement_lines(None, 300, 500)), 0);
    }

    #[test]
    fn refunding_a_completed_order_piecewise_gives_back_exactly_its_commission() {
        let settled = 9_999;
        let bps = 333;
        let mut order = OrderMoney {
            shop_id: Some(1),
            total_cents: 12_000,
            refunded_cents: 12_000 - settled,
            settled_cents: Some(settled),
            commission_bps: bps,
        };
        let mut commission_back = 0;
        for amount in [1, 2_500, 3_333, 4_165] {
            let lines = refund_owed_lines(&order, amount);
            assert_eq!(sum(&lines), 0);
            commission_back += lines[1].1;
            order.refunded_cents += amount;
        }
        assert_eq!(order.refunded_cents, order.total_cents);
        assert_eq!(commission_back, commission_of(settled, bps));
    }

    #[test]
    fn refunds_before_completion_come_out_of_escrow() {
        let order = OrderMoney {
            shop_id: Some(1),
            total_cents: 500,
            refunded_cents: 0,
            settled_cents: None,
            commission_bps: 0,
        };
        assert_eq!(
            refund_owed_lines(&order, 200),
            vec![(Account::Escrow, 200), (Account::RefundsPayable, -200)]
        );
    }

    #[test]
    fn commission_does_not_overflow() {
        assert_eq!(commission_of(i64::MAX / 2, 10_000), i64::MAX / 2);
    }
}
