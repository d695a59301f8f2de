//! Checkout: turns the selected cart lines, or one "buy now" SKU, into one
//! pending order per shop under a parent checkout, with a snapshot of each
//! line and of the address. Stock is reserved in the same transaction by
//! one conditional decrement per SKU (recorded as a `reservation`
//! movement); a line short of stock fails the whole checkout with a 409
//! naming it, and nothing is written.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::service::new_order_no;
use super::store::{self, NewOrder, OrderItem, OrderRow};
use crate::auth::Principal;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::inventory::store::{self as inventory, Movement, MovementKind};
use crate::product::content::Audience;
use crate::product::store::{self as products, SkuOffer};
use crate::state::AppState;

/// What to buy.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// The selected lines of the shopper's cart.
    Cart,
    /// One SKU, bypassing the cart.
    BuyNow { sku_id: i64, quantity: u32 },
}

/// A checkout as asked for.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    pub address_id: i64,
    pub source: Source,
    pub idempotency_key: Option<String>,
}

impl CheckoutRequest {
    /// What a retry with the same `Idempotency-Key` must match.
    fn digest(&self) -> String {
        let text = match self.source {
            Source::Cart => format!("cart;address={}", self.address_id),
            Source::BuyNow { sku_id, quantity } => {
                format!("buy_now;sku={sku_id};quantity={quantity};address={}", self.address_id)
            }
        };
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

/// The orders a checkout placed.
#[derive(Debug)]
pub struct Placed {
    pub checkout_id: i64,
    pub total_cents: i64,
    pub orders: Vec<OrderRow>,
    /// The same checkout again, for a retried `Idempotency-Key`.
    pub replayed: bool,
}

/// One line to buy, priced.
struct Line {
    offer: SkuOffer,
    quantity: i32,
}

/// Places the orders of a checkout.
pub async fn checkout(state: &AppState, shopper: &Principal, request: &CheckoutRequest) -> ApiResult<Placed> {
    let digest = request.digest();
    if let Some(key) = &request.idempotency_key {
        if let Some(placed) = replay(state, shopper.user_id, key, &digest).await? {
            return Ok(placed);
        }
    }
    let wanted = wanted_lines(state, shopper.user_id, request.source).await?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let address = address_snapshot(&tx, shopper.user_id, request.address_id).await?;
    let lines = priced_lines(&tx, shopper, &wanted).await?;
    let total_cents: i64 = lines.iter().map(|l| l.offer.price_cents * i64::from(l.quantity)).sum();
    let checkout_id = store::insert_checkout(
        &tx,
        shopper.user_id,
        request.idempotency_key.as_deref(),
        &digest,
        total_cents,
    )
    .await
    .map_err(|err| match db::violated_unique(&err) {
        Some("checkouts_idempotency_key") => ApiError::new(ErrorCode::IdempotencyInProgress).retry_after(1),
        _ => err.into(),
    })?;

    let now = state.clock.now();
    let pay_before = now
        + TimeDelta::seconds(i64::try_from(state.settings.orders.payment_window_secs).unwrap_or(i64::MAX));
    let mut by_shop: BTreeMap<i64, Vec<&Line>> = BTreeMap::new();
    for line in &lines {
        by_shop.entry(line.offer.shop_id).or_default().push(line);
    }
    let mut order_of_shop = BTreeMap::new();
    for (shop_id, shop_lines) in &by_shop {
        let items: Vec<OrderItem> = shop_lines.iter().map(|line| item(line)).collect();
        let order_no = new_order_no();
        let order = NewOrder {
            order_no: &order_no,
            user_id: shopper.user_id,
            shop_id: *shop_id,
            checkout_id,
            total_cents: items.iter().map(|i| i.total_cents).sum(),
            pay_before,
            shipping_address: &address,
            now,
        };
        let order_id = store::insert_order(&tx, &order).await?;
        store::insert_items(&tx, order_id, &items).await?;
        order_of_shop.insert(*shop_id, (order_id, order_no));
    }
    // Lines are in SKU order: concurrent checkouts lock SKUs in the same
    // order and cannot deadlock.
    for line in &lines {
        let (order_id, order_no) = &order_of_shop[&line.offer.shop_id];
        reserve(&tx, line, *order_id, order_no, shopper.user_id).await?;
    }
    let orders = store::checkout_orders(&tx, checkout_id).await?;
    tx.commit().await?;

    for line in &lines {
        state.products.invalidate(line.offer.product_id).await;
    }
    if matches!(request.source, Source::Cart) {
        let bought: Vec<(i64, u32)> =
            lines.iter().map(|l| (l.offer.sku_id, u32::try_from(l.quantity).unwrap_or(u32::MAX))).collect();
        // The orders are committed: a cart that cannot be tidied now must not
        // turn them into an error the shopper would retry.
        if let Err(err) = crate::cart::service::take_bought(state, shopper.user_id, &bought).await {
            tracing::warn!(error = %err, user_id = shopper.user_id, "bought lines stay in the cart");
        }
    }
    Ok(Placed { checkout_id, total_cents, orders, replayed: false })
}

/// The checkout already placed with `key`, if any; a key reused for a
/// different request is a 422.
async fn replay(state: &AppState, user_id: i64, key: &str, digest: &str) -> ApiResult<Option<Placed>> {
    let client = state.db.get().await?;
    let Some((checkout_id, stored_digest)) = store::find_checkout_by_key(&client, user_id, key).await? else {
        return Ok(None);
    };
    if stored_digest != digest {
        return Err(ErrorCode::IdempotencyKeyReused.into());
    }
    let orders = store::checkout_orders(&client, checkout_id).await?;
    let total_cents = orders.iter().map(|o| o.view.total_cents).sum();
    Ok(Some(Placed { checkout_id, total_cents, orders, replayed: true }))
}

/// `(sku_id, quantity)` to buy, in SKU order.
async fn wanted_lines(state: &AppState, user_id: i64, source: Source) -> ApiResult<Vec<(i64, u32)>> {
    let mut wanted = match source {
        Source::BuyNow { sku_id, quantity } => {
            let max = state.settings.cart.max_line_quantity;
            if quantity == 0 || quantity > max {
                return Err(ApiError::invalid_field("buy_now.quantity", "out_of_range"));
            }
            vec![(sku_id, quantity)]
        }
        Source::Cart => crate::cart::service::selected_lines(state, user_id).await?,
    };
    if wanted.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidState).with_message("no cart lines are selected"));
    }
    wanted.sort_unstable();
    Ok(wanted)
}

async fn address_snapshot(
    client: &impl deadpool_postgres::GenericClient,
    user_id: i64,
    address_id: i64,
) -> ApiResult<serde_json::Value> {
    let address = crate::address::store::find_for_user(client, user_id, address_id)
        .await?
        .ok_or_else(|| ApiError::invalid_field("address_id", "not_found"))?;
    Ok(json!({
        "recipient": address.recipient,
        "phone": address.phone,
        "region": address.region,
        "detail": address.detail,
        "postal_code": address.postal_code,
    }))
}

/// Prices every wanted line from the live catalog, refusing lines no
/// longer on sale (409 `item_unavailable`) and members-only products for
/// accounts without a verified email (403 `members_only`).
async fn priced_lines(
    client: &impl deadpool_postgres::GenericClient,
    shopper: &Principal,
    wanted: &[(i64, u32)],
) -> ApiResult<Vec<Line>> {
    let ids: Vec<i64> = wanted.iter().map(|(sku_id, _)| *sku_id).collect();
    let mut offers: BTreeMap<i64, SkuOffer> =
        products::lock_offers(client, &ids).await?.into_iter().map(|offer| (offer.sku_id, offer)).collect();
    let verified = shopper.account.status == "active";
    wanted
        .iter()
        .map(|(sku_id, quantity)| {
            let offer = offers.remove(sku_id).filter(|offer| offer.on_sale).ok_or_else(|| {
                ApiError::new(ErrorCode::ItemUnavailable).with_message(format!("SKU {sku_id} is not on sale"))
            })?;
            if offer.audience == Audience::MembersOnly.as_str() && !verified {
                return Err(ApiError::new(ErrorCode::MembersOnly)
                    .with_message(format!("{} is for verified members only", offer.product_name)));
            }
            Ok(Line { offer, quantity: i32::try_from(*quantity).unwrap_or(i32::MAX) })
        })
        .collect()
}

fn item(line: &Line) -> OrderItem {
    OrderItem {
        sku_id: line.offer.sku_id,
        product_id: Some(line.offer.product_id),
        title: line.offer.product_name.clone(),
        spec_values: line.offer.spec_values.clone(),
        quantity: line.quantity,
        unit_price_cents: line.offer.price_cents,
        total_cents: line.offer.price_cents * i64::from(line.quantity),
        refunded_quantity: 0,
        refunded_cents: 0,
    }
}

/// Takes a line's units out of stock for its order, or fails the checkout
/// with a 409 that names the line.
async fn reserve(
    tx: &impl deadpool_postgres::GenericClient,
    line: &Line,
    order_id: i64,
    order_no: &str,
    user_id: i64,
) -> ApiResult<()> {
    let reason = format!("order {order_no}");
    let movement = Movement {
        shop_id: line.offer.shop_id,
        sku_id: line.offer.sku_id,
        kind: MovementKind::Reservation,
        delta: -line.quantity,
        order_id: Some(order_id),
        actor_id: Some(user_id),
        reason: &reason,
    };
    if inventory::record(tx, &movement).await?.is_some() {
        return Ok(());
    }
    let left = inventory::stock_of(tx, line.offer.shop_id, line.offer.sku_id).await?.unwrap_or(0);
    Err(ApiError::new(ErrorCode::InsufficientStock).with_message(format!(
        "SKU {} ({}): {left} left, {} wanted",
        line.offer.sku_id, line.offer.product_name, line.quantity
    )))
}
