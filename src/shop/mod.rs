//! Shops, the B side: a member applies, operators review (approve,
//! reject, suspend, reinstate), and the owner runs a staff with
//! shop-scoped roles ([`access`]).

pub mod access;
pub mod handlers;
pub mod service;
pub mod store;
