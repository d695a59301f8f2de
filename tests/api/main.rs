//! Integration tests: real HTTP, real Postgres, real Redis. One binary so
//! the build links once; each module covers one area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account;
mod address;
mod admin;
mod after_sale;
mod audit;
mod blacklist;
mod cart;
mod catalog_fixture;
mod category;
mod chat;
mod cluster;
mod crash;
mod demo;
mod finance;
mod helpers;
mod lease;
mod menu;
mod nodes;
mod order;
mod pay_account;
mod payment;
mod product;
mod profile;
mod rbac;
mod seckill;
mod shop;
mod stats;
mod storefront;
mod system;
