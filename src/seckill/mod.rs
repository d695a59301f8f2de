//! The flash-sale (seckill) engine: events, the buy path, and its baseline.
//!
//! The buy path, in order of cost: the event's gate (atomics: not started,
//! ended, sold out) answers the late majority; then the per-user and per-IP
//! token buckets; then the purchase token if the event asks for one; then
//! the event's stock actor (`try_send`: a full mailbox is an instant 503),
//! which reserves in memory and answers once the group-commit writer has
//! committed the order.

pub mod engine;
pub mod handlers;
pub mod naive;
pub mod ratelimit;
pub mod service;
pub mod store;
pub mod token;
