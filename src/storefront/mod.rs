//! What shoppers browse: listing and searching listed products, product
//! detail (served from [`cache`]) and shop pages. Read-only; every write
//! that changes what is shown here invalidates the cache.

pub mod cache;
