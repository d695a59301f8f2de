//! The whole API surface, wired in one place. Each area exposes
//! `configure(cfg)`; this file is the index of them.

use actix_web::web;

use crate::error::{ApiError, ErrorCode};
use crate::{account, admin, audit, blacklist, menu, openapi, order, rbac, seckill, system};

/// Mounts every route. Order matters for speed: actix tries resources in
/// registration order and each pattern with a `{param}` costs a regex
/// match, so the flash-sale routes (the hottest under load) come first.
pub fn configure(cfg: &mut web::ServiceConfig) {
    seckill::handlers::configure(cfg);
    system::configure(cfg);
    account::handlers::configure(cfg);
    order::handlers::configure(cfg);
    openapi::configure(cfg);
    audit::handlers::configure(cfg);
    blacklist::handlers::configure(cfg);
    rbac::handlers::configure(cfg);
    menu::handlers::configure(cfg);
    admin::handlers::configure(cfg);
}

/// JSON 404 for every unknown path.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound).with_message("no such endpoint"))
}
