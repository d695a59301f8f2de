//! The flash-sale (seckill) engine: events, the buy path, and its baseline.
//!
//! The buy path, in order of cost: the event's gate (atomics: not started,
//! ended, sold out) answers the late majority; then the per-user and per-IP
//! token buckets; then the purchase token if the event asks for one; then
//! the event's stock actor (`try_send`: a full mailbox is an instant 503),
//! which reserves in memory and answers once the group-commit writer has
//! committed the order.
//!
//! With `stock_authority = "redis"` (several nodes), the per-user limit is
//! first claimed in Redis, in the same script as the cluster-wide token
//! buckets (so those cost no extra round trip, but come after the purchase
//! token check), and the actor sells from its node's lease on the event's
//! shared pool ([`pool`], kept by [`keeper`]).

pub mod engine;
pub mod handlers;
pub mod keeper;
pub mod naive;
pub mod pool;
pub mod ratelimit;
pub mod service;
pub mod store;
pub mod token;
