//! The admin menu tree of seed 2 (`auth_ms_menu`): entries with a parent,
//! a URI, visibility, status and an optional required permission. Admins
//! edit it; every signed-in account sees the part its permissions allow.

pub mod handlers;
pub mod service;
pub mod store;
