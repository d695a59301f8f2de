//! Role-based access control (seed 2): roles with permission sets, groups of
//! users holding roles, direct role grants, and the admin menu tree.
//!
//! Whatever changes someone's effective permissions ends with
//! `Sessions::refresh_user` or `refresh_all`, so cached principals on every
//! node pick the change up at once.

pub mod handlers;
pub mod service;
pub mod store;
