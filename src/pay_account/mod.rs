//! Saved payment accounts (seed `user_pay_info`): up to ten per shopper.
//! Only a masked number is stored, never the full one; an optional
//! six-digit payment password is hashed like a login password, never
//! returned, and checked before a payment with
//! [`service::verify_payment_password`].

pub mod handlers;
pub mod number;
pub mod service;
pub mod store;
