//! The OpenAPI 3 document, generated from the handlers' annotations and
//! served at `/api/openapi.json`. Each area lists its paths here.

use actix_web::{get, web, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{
    account, address, admin, after_sale, audit, blacklist, cart, category, chat, error, finance, inventory,
    menu, order, pay_account, payment, product, rbac, seckill, shop, stats, storefront, system,
};

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(title = "rs-cms API", description = "Multi-merchant mall with a flash-sale engine. Every error is \
        `{\"code\": \"...\", \"message\": \"...\"}` with a stable code."),
    paths(
        system::healthz, system::readyz, system::metrics,
        account::handlers::register, account::handlers::login, account::handlers::logout,
        account::handlers::logout_all, account::handlers::get_me, account::handlers::list_sessions,
        account::handlers::revoke_session, account::handlers::update_me, account::handlers::change_password,
        account::handlers::request_email_verification, account::handlers::verify_email,
        menu::handlers::my_menus, menu::handlers::check_permission,
        menu::handlers::list_menus, menu::handlers::get_menu, menu::handlers::create_menu,
        menu::handlers::update_menu, menu::handlers::delete_menu,
        rbac::handlers::list_permissions, rbac::handlers::list_roles, rbac::handlers::create_role,
        rbac::handlers::update_role, rbac::handlers::delete_role, rbac::handlers::grant_user_role,
        rbac::handlers::revoke_user_role, rbac::handlers::list_groups, rbac::handlers::create_group,
        rbac::handlers::update_group, rbac::handlers::delete_group, rbac::handlers::list_group_members,
        rbac::handlers::add_group_member, rbac::handlers::remove_group_member,
        rbac::handlers::grant_group_role, rbac::handlers::revoke_group_role,
        admin::handlers::list_admins, admin::handlers::add_admin, admin::handlers::update_admin,
        admin::handlers::delete_admin, admin::handlers::list_members, admin::handlers::get_member,
        admin::handlers::update_member, admin::handlers::freeze_member, admin::handlers::unfreeze_member,
        blacklist::handlers::list_blacklist, blacklist::handlers::add_blacklist,
        blacklist::handlers::remove_blacklist,
        audit::handlers::list_audit_log,
        seckill::handlers::create_event, seckill::handlers::open_event, seckill::handlers::close_event,
        seckill::handlers::event_stats, seckill::handlers::list_events, seckill::handlers::get_event,
        seckill::handlers::get_purchase_token, seckill::handlers::create_seckill_order,
        seckill::naive::create_naive_order,
        order::handlers::place_checkout, order::handlers::list_my_orders, order::handlers::get_my_order,
        order::handlers::pay_order, order::handlers::cancel_my_order, order::handlers::confirm_receipt,
        order::handlers::carrier_webhook, order::handlers::list_shop_orders, order::handlers::get_shop_order,
        order::handlers::add_order_note, order::handlers::ship_order, order::handlers::add_tracking_event,
        order::handlers::cancel_shop_order, order::handlers::list_all_orders, order::handlers::get_any_order,
        order::handlers::cancel_any_order,
        payment::handlers::start_payment, payment::handlers::list_my_payments, payment::handlers::get_my_payment,
        payment::handlers::gateway_callback, payment::handlers::sandbox_pay, payment::handlers::list_all_payments,
        payment::handlers::get_any_payment,
        after_sale::handlers::open_request, after_sale::handlers::list_my_requests,
        after_sale::handlers::get_my_request, after_sale::handlers::withdraw_request,
        after_sale::handlers::escalate_request, after_sale::handlers::ship_back,
        after_sale::handlers::list_shop_requests, after_sale::handlers::get_shop_request,
        after_sale::handlers::approve_shop_request, after_sale::handlers::reject_shop_request,
        after_sale::handlers::receive_return, after_sale::handlers::list_all_requests,
        after_sale::handlers::get_any_request, after_sale::handlers::approve_dispute,
        after_sale::handlers::reject_dispute,
        finance::handlers::month_bill, finance::handlers::bill_months, finance::handlers::shop_balance,
        finance::handlers::shop_entries, finance::handlers::shop_withdrawals, finance::handlers::request_withdrawal,
        finance::handlers::list_withdrawals, finance::handlers::pay_withdrawal, finance::handlers::reject_withdrawal,
        finance::handlers::trial_balance,
        stats::handlers::shop_stats,
        cart::handlers::get_cart, cart::handlers::add_cart_line, cart::handlers::update_cart_line,
        cart::handlers::remove_cart_line, cart::handlers::clear_cart, cart::handlers::select_cart_lines,
        chat::ws::connect, chat::handlers::open_conversation, chat::handlers::list_my_conversations,
        chat::handlers::get_conversation, chat::handlers::conversation_history,
        chat::handlers::list_shop_conversations, chat::handlers::transfer_conversation,
        chat::handlers::close_conversation, chat::handlers::file_case, chat::handlers::list_my_cases,
        chat::handlers::get_case, chat::handlers::escalate_case, chat::handlers::withdraw_case,
        chat::handlers::case_queue, chat::handlers::take_case, chat::handlers::decide_case,
        address::handlers::list_addresses, address::handlers::create_address,
        address::handlers::update_address, address::handlers::delete_address,
        address::handlers::set_default_address,
        pay_account::handlers::list_pay_accounts, pay_account::handlers::create_pay_account,
        pay_account::handlers::delete_pay_account, pay_account::handlers::set_payment_password,
        shop::handlers::apply_for_shop, shop::handlers::my_shops, shop::handlers::accept_invitation,
        shop::handlers::decline_invitation, shop::handlers::shop_page, shop::handlers::get_own_shop,
        shop::handlers::update_own_shop, shop::handlers::list_staff, shop::handlers::invite_staff,
        shop::handlers::change_staff_role, shop::handlers::remove_staff, shop::handlers::list_shops,
        shop::handlers::get_shop, shop::handlers::approve_shop, shop::handlers::reject_shop,
        shop::handlers::suspend_shop, shop::handlers::reinstate_shop,
        product::handlers::list_shop_products, product::handlers::create_product,
        product::handlers::get_shop_product, product::handlers::edit_product, product::handlers::submit_product,
        product::handlers::list_product, product::handlers::unlist_product, product::handlers::review_queue,
        product::handlers::get_product_for_review, product::handlers::approve_product,
        product::handlers::reject_product,
        inventory::handlers::adjust_stock, inventory::handlers::list_movements, inventory::handlers::low_stock,
        storefront::handlers::list_products, storefront::handlers::get_product,
        category::handlers::category_tree, category::handlers::create_category,
        category::handlers::update_category, category::handlers::delete_category,
    ),
    components(schemas(error::ErrorBody, error::FieldError)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Mounts `/api/openapi.json`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(openapi_json);
}

#[get("/api/openapi.json")]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
