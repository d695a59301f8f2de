//! The order state machine, in one place:
//!
//! ```text
//! pending_payment --pay--> paid --ship--> shipped --deliver--> delivered --confirm / auto--> completed
//!        |                   |                |
//!        |                   |                '--confirm receipt (before the carrier says so)--> completed
//!        '--cancel (shopper, merchant, operator) / expire--> cancelled
//!                            '--cancel (merchant, operator; a refund is owed)--> cancelled
//! ```
//!
//! Every other step is refused with a 409 whose code names the current
//! state (`order_shipped`, ...). The store applies a transition only from
//! the state it was planned from, so two racing steps cannot both win.

use crate::error::{ApiError, ErrorCode};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Shipped,
    Delivered,
    Completed,
    Cancelled,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 6] =
        [Self::PendingPayment, Self::Paid, Self::Shipped, Self::Delivered, Self::Completed, Self::Cancelled];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// The 409 code that names this state.
    pub fn conflict_code(self) -> ErrorCode {
        match self {
            Self::PendingPayment => ErrorCode::OrderPendingPayment,
            Self::Paid => ErrorCode::OrderPaid,
            Self::Shipped => ErrorCode::OrderShipped,
            Self::Delivered => ErrorCode::OrderDelivered,
            Self::Completed => ErrorCode::OrderCompleted,
            Self::Cancelled => ErrorCode::OrderCancelled,
        }
    }
}

/// Who asks for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Shopper,
    Merchant,
    Operator,
    /// Sweepers, payment callbacks and carrier webhooks.
    System,
}

/// Something that happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    Pay,
    Cancel(Party),
    /// The payment window passed.
    Expire,
    Ship,
    /// The carrier (or the merchant's tracking) reports delivery.
    Deliver,
    /// The shopper confirms receipt.
    ConfirmReceipt,
    /// Delivered long enough ago.
    AutoComplete,
}

impl OrderEvent {
    /// What the step is called in messages.
    fn verb(self) -> &'static str {
        match self {
            Self::Pay => "pay",
            Self::Cancel(_) | Self::Expire => "cancel",
            Self::Ship => "ship",
            Self::Deliver => "mark delivered",
            Self::ConfirmReceipt | Self::AutoComplete => "complete",
        }
    }
}

/// The status `event` moves an order in `from` to, or the 409 naming
/// `from` when the step is not allowed there.
pub fn next(from: OrderStatus, event: OrderEvent) -> Result<OrderStatus, ApiError> {
    use OrderEvent::*;
    use OrderStatus::*;
    let to = match (from, event) {
        (PendingPayment, Pay) => Some(Paid),
        (PendingPayment, Cancel(_) | Expire) => Some(Cancelled),
        (Paid, Cancel(Party::Merchant | Party::Operator)) => Some(Cancelled),
        (Paid, Ship) => Some(Shipped),
        (Shipped, Deliver) => Some(Delivered),
        (Shipped | Delivered, ConfirmReceipt) => Some(Completed),
        (Delivered, AutoComplete) => Some(Completed),
        _ => None,
    };
    to.ok_or_else(|| {
        ApiError::new(from.conflict_code()).with_message(format!(
            "cannot {} an order that is {}",
            event.verb(),
            from.as_str()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_is_either_a_listed_transition_or_a_conflict_naming_the_state() {
        use OrderEvent::*;
        let events = [
            Pay,
            Cancel(Party::Shopper),
            Cancel(Party::Merchant),
            Cancel(Party::Operator),
            Expire,
            Ship,
            Deliver,
            ConfirmReceipt,
            AutoComplete,
        ];
        let mut allowed = 0;
        for from in OrderStatus::ALL {
            for event in events {
                match next(from, event) {
                    Ok(_) => allowed += 1,
                    Err(err) => assert_eq!(err.code(), from.conflict_code()),
                }
            }
        }
        assert_eq!(allowed, 12);
        assert_eq!(
            next(OrderStatus::Paid, Cancel(Party::Shopper)).err().map(|e| e.code()),
            Some(ErrorCode::OrderPaid)
        );
        assert!(next(OrderStatus::Completed, Cancel(Party::Operator)).is_err());
    }
}
