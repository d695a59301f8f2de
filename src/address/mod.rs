//! The shopper's address book (收货地址): up to twenty addresses, exactly
//! one of them the default. Checkout reads an address with
//! [`store::find_for_user`] and copies it into the order.

pub mod handlers;
pub mod service;
pub mod store;
