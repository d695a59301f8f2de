//! After-sale (seed 1 订单退款/退货): a shopper asks for money back before
//! shipping, or to return goods after delivery, for a whole order or some
//! of its units; the merchant decides, a dispute goes to an operator, and
//! the refund moves the order, stock, gateway and books together.

pub mod handlers;
pub mod lifecycle;
pub mod service;
pub mod store;
