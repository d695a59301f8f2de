//! Payments through gateways ([`gateway`]): a payment record per attempt
//! with its event log, signed callbacks applied exactly once, and refunds
//! of money that arrives for an order that cannot take it.

pub mod gateway;
pub mod handlers;
pub mod service;
pub mod store;
