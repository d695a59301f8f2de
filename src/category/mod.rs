//! The category tree shoppers browse by and merchants file products under
//! (seed 1 商品分类): nested categories with a sort order among siblings.
//! Operators with `catalog.manage` edit it; anyone may read it.

pub mod handlers;
pub mod service;
pub mod store;
