//! Integration tests: real HTTP, real Postgres, real Redis. One binary so
//! the build links once; each module covers one area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account;
mod admin;
mod audit;
mod blacklist;
mod catalog_fixture;
mod category;
mod crash;
mod helpers;
mod menu;
mod profile;
mod rbac;
mod seckill;
mod storefront;
mod system;
