//! Orders: placing them (checkout from the cart or "buy now", one order per
//! shop), their lifecycle ([`lifecycle`]), shipping and tracking, the
//! sandbox pay endpoint (until the payments domain lands) and the sweepers
//! that expire unpaid orders and complete delivered ones.

pub mod checkout;
pub mod handlers;
pub mod lifecycle;
pub mod service;
pub mod shipping;
pub mod store;
