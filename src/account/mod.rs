//! Accounts: registration, login and sessions, profile, account status.

pub mod handlers;
pub mod service;
pub mod store;
