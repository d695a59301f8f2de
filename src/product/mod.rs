//! Products (SPU) with specs and SKUs, and their review lifecycle
//! ([`lifecycle`]): merchants write [`content`]; operators approve it
//! before shoppers see it.

pub mod content;
pub mod handlers;
pub mod lifecycle;
pub mod service;
pub mod store;
