//! What shoppers browse: listing and searching listed products, and
//! product detail (served from [`cache`]). Read-only; every write that
//! changes what is shown here invalidates the cache.
//!
//! - [`handlers`]: `GET /api/products`, `GET /api/products/{id}`;
//! - [`query`]: the list's query string, checked;
//! - [`service`]: detail through the cache, rendered once;
//! - [`store`]: the SQL, visible products only.

pub mod cache;
pub mod handlers;
pub mod query;
pub mod service;
pub mod store;
