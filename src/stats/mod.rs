//! Shop statistics (seed 1 店铺统计): orders, GMV, refunds, average order
//! value and best sellers per day, straight from the orders, payments and
//! refunds tables.

pub mod handlers;
pub mod store;
