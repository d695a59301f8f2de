//! Money ledgers: the platform's double-entry books ([`ledger`]), an
//! order's money moving with them ([`order_money`]), shop balances and
//! withdrawals ([`withdrawal`]), and shoppers' monthly bills ([`bills`]).

pub mod bills;
pub mod handlers;
pub mod ledger;
pub mod order_money;
pub mod withdrawal;
