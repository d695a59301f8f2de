//! Authentication and authorisation.
//!
//! - [`password`]: argon2id hashing, run off the async workers.
//! - [`session`]: opaque bearer tokens stored (hashed) in Redis, with an
//!   in-process cache invalidated on every node over Redis pub/sub.
//! - [`extract`]: the typed extractors that put each endpoint's access rule
//!   in its signature: `AuthUser`, `Require<perm::X>`.
//! - [`perm`]: every permission name, once.
//! - [`throttle`]: Redis failure counters for typed secrets (logins, PINs).

pub mod extract;
pub mod password;
pub mod perm;
pub mod session;
pub mod throttle;

pub use extract::{AuthUser, ClientIp, Require};
pub use session::Principal;
