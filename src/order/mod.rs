//! Orders: numbers, reading, paying (a documented sandbox pay endpoint until
//! the payments domain lands) and the expiry of unpaid orders.

pub mod handlers;
pub mod service;
pub mod store;
