//! Platform administration of accounts: administrators and operators
//! (`/api/system/admins`) and members (`/api/system/members`).

pub mod handlers;
pub mod service;
pub mod store;
