//! The whole API surface, wired in one place. Each area exposes
//! `configure(cfg)`; this file is the index of them.

use actix_web::web;

use crate::error::{ApiError, ErrorCode};
use crate::{
    account, address, admin, after_sale, audit, blacklist, cart, category, chat, finance, inventory, menu,
    openapi, order, pay_account, payment, product, rbac, seckill, shop, stats, storefront, system,
};

/// Prefix of the platform administration API.
pub const SYSTEM_SCOPE: &str = "/api/system";

/// Mounts every route. Order matters for speed: actix tries resources in
/// registration order and each pattern with a `{param}` costs a regex
/// match, so the flash-sale routes (the hottest under load) come first, then
/// the product reads shoppers hammer before a sale, and whole areas sit
/// under static scopes (a prefix compare skips them all).
pub fn configure(cfg: &mut web::ServiceConfig) {
    seckill::handlers::configure(cfg);
    storefront::handlers::configure(cfg);
    category::handlers::configure_public(cfg);
    system::configure(cfg);
    account::handlers::configure(cfg);
    menu::handlers::configure_own(cfg);
    order::handlers::configure(cfg);
    payment::handlers::configure(cfg);
    after_sale::handlers::configure(cfg);
    finance::handlers::configure(cfg);
    cart::handlers::configure(cfg);
    chat::handlers::configure(cfg);
    address::handlers::configure(cfg);
    pay_account::handlers::configure(cfg);
    shop::handlers::configure(cfg);
    cfg.service(
        web::scope(shop::handlers::MERCHANT_SCOPE)
            .configure(shop::handlers::configure_merchant)
            .configure(product::handlers::configure_merchant)
            .configure(inventory::handlers::configure)
            .configure(order::handlers::configure_merchant)
            .configure(after_sale::handlers::configure_merchant)
            .configure(finance::handlers::configure_merchant)
            .configure(stats::handlers::configure)
            .configure(chat::handlers::configure_merchant),
    );
    openapi::configure(cfg);
    cfg.service(
        web::scope(SYSTEM_SCOPE)
            .configure(admin::handlers::configure)
            .configure(rbac::handlers::configure)
            .configure(menu::handlers::configure)
            .configure(blacklist::handlers::configure)
            .configure(audit::handlers::configure)
            .configure(shop::handlers::configure_system)
            .configure(product::handlers::configure_system)
            .configure(category::handlers::configure)
            .configure(order::handlers::configure_system)
            .configure(payment::handlers::configure_system)
            .configure(after_sale::handlers::configure_system)
            .configure(finance::handlers::configure_system)
            .configure(chat::handlers::configure_system),
    );
}

/// JSON 404 for every unknown path.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound).with_message("no such endpoint"))
}
