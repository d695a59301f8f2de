//! Inventory: every change of a SKU's stock is a recorded movement
//! (adjustment, reservation, sale, release, return) with who and why.

pub mod handlers;
pub mod service;
pub mod store;
