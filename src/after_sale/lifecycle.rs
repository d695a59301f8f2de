//! The after-sale state machine, in one place:
//!
//! ```text
//! requested --approve (merchant)--> refunded            (refund before shipping)
//!     |      \-approve (merchant)--> approved --ship back (shopper)--> returning --receive (merchant)--> refunded
//!     |-reject (merchant)--> rejected                                      |
//!     '-escalate (shopper)-----------+--------------------------------------' escalate
//!                rejected --escalate-'--> disputed --approve (operator)--> refunded / approved
//!                                                 '-reject (operator)--> closed
//! requested, rejected, disputed, approved --withdraw (shopper)--> withdrawn
//! ```
//!
//! An operator's approval refunds at once when there is nothing to send
//! back (a refund before shipping, or goods already returned). Every other
//! step is a 409 `invalid_state` naming the current status.

use crate::error::{ApiError, ErrorCode};
use crate::order::lifecycle::Party;

/// Refund only (the order has not shipped) or return and refund (it was
/// delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Refund,
    Return,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refund => "refund",
            Self::Return => "return",
        }
    }

    /// The kind stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Refund, Self::Return].into_iter().find(|kind| kind.as_str() == name)
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Requested,
    Rejected,
    Disputed,
    Approved,
    Returning,
    Refunded,
    Withdrawn,
    Closed,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 8] = [
        Self::Requested,
        Self::Rejected,
        Self::Disputed,
        Self::Approved,
        Self::Returning,
        Self::Refunded,
        Self::Withdrawn,
        Self::Closed,
    ];

    /// Statuses whose units are spoken for: nobody may ask for them again
    /// while a request holds them.
    pub const HOLDING: [Status; 4] = [Self::Requested, Self::Disputed, Self::Approved, Self::Returning];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Rejected => "rejected",
            Self::Disputed => "disputed",
            Self::Approved => "approved",
            Self::Returning => "returning",
            Self::Refunded => "refunded",
            Self::Withdrawn => "withdrawn",
            Self::Closed => "closed",
        }
    }

    /// The status stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

/// Something that happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The merchant (or, in a dispute, an operator) agrees.
    Approve(Party),
    /// The merchant refuses, or an operator closes a dispute.
    Reject(Party),
    /// The shopper asks the platform to decide.
    Escalate,
    /// The shopper drops the request.
    Withdraw,
    /// The shopper sent the goods back (with a tracking number).
    ShipBack,
    /// The merchant confirms the goods came back.
    Receive,
}

/// The status `event` moves a request of `kind` in `from` to.
/// `goods_returned`: the shopper has shipped the goods back already.
pub fn next(kind: Kind, from: Status, event: Event, goods_returned: bool) -> Result<Status, ApiError> {
    use Event::*;
    use Party::{Merchant, Operator};
    use Status::*;
    let approved = |refund_now: bool| if refund_now { Refunded } else { Approved };
    let to = match (from, event) {
        (Requested, Approve(Merchant)) => Some(approved(kind == Kind::Refund)),
        (Requested, Reject(Merchant)) => Some(Rejected),
        (Requested | Rejected | Returning, Escalate) => Some(Disputed),
        (Disputed, Approve(Operator)) => Some(approved(kind == Kind::Refund || goods_returned)),
        (Disputed, Reject(Operator)) => Some(Closed),
        (Approved, ShipBack) if kind == Kind::Return => Some(Returning),
        (Returning, Receive) => Some(Refunded),
        (Requested | Rejected | Disputed | Approved, Withdraw) => Some(Withdrawn),
        _ => None,
    };
    to.ok_or_else(|| {
        let hint = match (from, event) {
            (Disputed, Approve(Merchant) | Reject(Merchant)) => "; an operator decides a disputed request",
            _ => "",
        };
        ApiError::new(ErrorCode::InvalidState).with_message(format!("the request is {}{hint}", from.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: Kind, path: &[Event]) -> Result<Status, ApiError> {
        path.iter().try_fold(Status::Requested, |status, event| next(kind, status, *event, false))
    }

    #[test]
    fn a_refund_before_shipping_is_paid_on_approval() {
        assert_eq!(step(Kind::Refund, &[Event::Approve(Party::Merchant)]).ok(), Some(Status::Refunded));
    }

    #[test]
    fn a_return_is_paid_when_the_goods_come_back() {
        let path = [Event::Approve(Party::Merchant), Event::ShipBack, Event::Receive];
        assert_eq!(step(Kind::Return, &path).ok(), Some(Status::Refunded));
        // Nothing to ship back for a refund.
        let err = step(Kind::Refund, &[Event::Approve(Party::Merchant), Event::ShipBack]);
        assert_eq!(err.err().map(|e| e.code()), Some(ErrorCode::InvalidState));
    }

    #[test]
    fn disputes_are_decided_by_operators_only() {
        let disputed = step(Kind::Return, &[Event::Reject(Party::Merchant), Event::Escalate]).ok();
        assert_eq!(disputed, Some(Status::Disputed));
        let disputed = Status::Disputed;
        assert!(next(Kind::Return, disputed, Event::Approve(Party::Merchant), false).is_err());
        assert_eq!(
            next(Kind::Return, disputed, Event::Approve(Party::Operator), false).ok(),
            Some(Status::Approved)
        );
        assert_eq!(
            next(Kind::Return, disputed, Event::Approve(Party::Operator), true).ok(),
            Some(Status::Refunded)
        );
        assert_eq!(
            next(Kind::Return, disputed, Event::Reject(Party::Operator), false).ok(),
            Some(Status::Closed)
        );
    }

    #[test]
    fn finished_requests_accept_nothing() {
        for from in [Status::Refunded, Status::Withdrawn, Status::Closed] {
            for event in [
                Event::Approve(Party::Merchant),
                Event::Approve(Party::Operator),
                Event::Reject(Party::Merchant),
                Event::Escalate,
                Event::Withdraw,
                Event::ShipBack,
                Event::Receive,
            ] {
                assert!(next(Kind::Return, from, event, true).is_err(), "{from:?} {event:?}");
            }
        }
    }

    #[test]
    fn goods_on_their_way_back_cannot_be_withdrawn() {
        let returning = Status::Returning;
        assert!(next(Kind::Return, returning, Event::Withdraw, true).is_err());
        assert_eq!(next(Kind::Return, returning, Event::Escalate, true).ok(), Some(Status::Disputed));
    }
}
