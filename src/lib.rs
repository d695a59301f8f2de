//! rs-cms: a multi-merchant mall whose heart is a flash-sale engine.
//!
//! # Layout
//! - [`config`]: layered settings (files, then `RSCMS__SECTION__KEY`).
//! - [`startup`]: builds the app from settings; `main`, the tests, the
//!   loadtest and the benches all start this very same app.
//! - [`routes`]: the one place that wires every area's `configure`.
//! - [`error`]: the single error contract (`ApiError`, every code once).
//! - [`clock`]: "now" for stored deadlines, movable in tests;
//!   [`cluster`]: which node runs the once-per-cluster jobs.
//! - [`db`], [`kv`]: Postgres pool and migrations; Redis with key prefix.
//! - [`auth`]: sessions, password hashing, typed permission extractors.
//! - [`account`], [`system`]: accounts; health, readiness, metrics.
//! - [`blacklist`]: the in-memory IP/account blacklist and its middleware.
//! - [`rbac`]: roles, groups and grants; [`menu`]: the admin menu tree.
//! - [`admin`]: admin and member management.
//! - [`audit`]: the log of admin actions; [`page`]: shared pagination.
//! - [`seckill`], [`order`]: the flash-sale engine and its orders.
//! - [`cart`]: shopping carts, one actor per active shopper;
//! - [`chat`]: customer-service chat over WebSocket, and the complaint,
//!   appeal and arbitration cases with their threads;
//!   [`address`]: the shopper's address book; [`pay_account`]: saved
//!   payment accounts (masked numbers, hashed payment passwords).
//! - [`inventory`]: the stock ledger; stock moves only with a movement row.
//! - [`payment`]: gateways (a working sandbox), signed callbacks, refunds.
//! - [`after_sale`]: refund and return requests, decided by merchants and,
//!   in a dispute, operators.
//! - [`finance`]: the double-entry books, shop balances and withdrawals,
//!   shoppers' monthly bills.
//! - [`product`]: products with specs and SKUs, and their review.
//! - [`shop`]: shops, their review and their staff's shop-scoped roles.
//! - [`demo`]: the `demo-data` subcommand's shops and products.
//! - [`category`]: the category tree; [`storefront`]: what shoppers
//!   browse, with the product-detail cache.
//! - [`tree`]: nesting parent-linked rows (menus, categories).
//!
//! Each domain is split into `handlers` (extract, authorise, call, respond),
//! `service` (rules, transactions, actor calls) and `store` (SQL only).

pub mod account;
pub mod address;
pub mod admin;
pub mod after_sale;
pub mod audit;
pub mod auth;
pub mod blacklist;
pub mod cart;
pub mod category;
pub mod chat;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod db;
pub mod demo;
pub mod error;
pub mod finance;
pub mod inventory;
pub mod kv;
pub mod menu;
pub mod metrics;
pub mod openapi;
pub mod order;
pub mod page;
pub mod pay_account;
pub mod payment;
pub mod product;
pub mod rbac;
pub mod routes;
pub mod seckill;
pub mod shop;
pub mod signature;
pub mod startup;
pub mod state;
pub mod stats;
pub mod storefront;
pub mod system;
pub mod telemetry;
pub mod tree;
pub mod validate;
