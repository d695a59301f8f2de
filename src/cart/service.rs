//! Cart rules: what may be added (a SKU on sale; members-only products for
//! verified members), every change through the shopper's cart actor, and
//! the priced view of the cart. Checkout uses [`selected_lines`] and
//! [`take_bought`].

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;

use actors::cart::{
    AddLine, CartError, CartLine, ClearCart, GetCart, RemoveLines, SelectLines, SetLine, TakeUnits,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::store::{self, CartSku};
use crate::auth::session::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::validate::Validator;

impl From<CartError> for ApiError {
    fn from(error: CartError) -> Self {
        match error {
            CartError::CartFull { max_lines } => ApiError::new(ErrorCode::CartFull)
                .with_message(format!("the cart holds at most {max_lines} lines")),
            CartError::QuantityLimit { max } => ApiError::new(ErrorCode::LineQuantityLimit)
                .with_message(format!("a cart line holds at most {max} units")),
            CartError::NotInCart => {
                ApiError::new(ErrorCode::NotFound).with_message("no such line in the cart")
            }
            CartError::Overloaded => ApiError::new(ErrorCode::Overloaded).retry_after(1),
            CartError::WriteFailed => ApiError::unavailable(anyhow::anyhow!("a cart change was not stored")),
            // The engine asks the next actor; past its attempts, a retry will.
            CartError::Evicted => ApiError::unavailable(anyhow::anyhow!("the cart actor kept being evicted")),
        }
    }
}

/// Whether a line can be bought as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Can be bought as it stands.
    Available,
    /// Fewer units in stock than the line holds.
    InsufficientStock,
    /// The product is not listed, or its shop is not active.
    Unlisted,
    /// The SKU was dropped from its product.
    Gone,
}

impl Availability {
    fn of(sku: &CartSku, quantity: u32) -> Self {
        if !sku.active {
            Self::Gone
        } else if !sku.on_sale {
            Self::Unlisted
        } else if i64::from(sku.stock) < i64::from(quantity) {
            Self::InsufficientStock
        } else {
            Self::Available
        }
    }
}

/// One line of the cart, priced now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartLineView {
    pub sku_id: i64,
    pub product_id: i64,
    pub product_name: String,
    pub spec_values: BTreeMap<String, String>,
    /// The product's first image.
    pub image: Option<String>,
    pub quantity: u32,
    /// Ticked for checkout.
    pub selected: bool,
    /// The SKU's price now.
    pub unit_price_cents: i64,
    /// The SKU's price when the line was added.
    pub added_price_cents: i64,
    /// The price differs from when the line was added.
    pub price_changed: bool,
    pub stock: i32,
    pub availability: Availability,
    /// `unit_price_cents` x `quantity`.
    pub line_total_cents: i64,
    pub added_at: DateTime<Utc>,
}

/// The lines of one shop.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShopCart {
    pub shop_id: i64,
    pub shop_name: String,
    /// Newest first.
    pub lines: Vec<CartLineView>,
    /// Total of the selected lines that are `available`.
    pub subtotal_cents: i64,
}

/// The shopper's cart: lines grouped by shop (the shop with the newest
/// line first), flagged rather than dropped when they cannot be bought.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartView {
    pub shops: Vec<ShopCart>,
    /// Lines in the cart, whatever their state.
    pub line_count: usize,
    /// Units in the selected lines that are `available`.
    pub selected_quantity: u64,
    /// Total of the selected lines that are `available`.
    pub selected_total_cents: i64,
}

/// Prices `lines` (newest first) with one query and groups them by shop.
async fn priced(state: &AppState, lines: Vec<CartLine>) -> ApiResult<CartView> {
    let mut view = CartView {
        shops: Vec::new(),
        line_count: lines.len(),
        selected_quantity: 0,
        selected_total_cents: 0,
    };
    if lines.is_empty() {
        return Ok(view);
    }
    let client = state.db.get().await?;
    let ids: Vec<i64> = lines.iter().map(|line| line.sku_id).collect();
    let skus: HashMap<i64, CartSku> =
        store::skus(&client, &ids).await?.into_iter().map(|sku| (sku.sku_id, sku)).collect();
    drop(client);
    for line in lines {
        // Cart lines reference SKUs, which are never deleted.
        let sku = skus.get(&line.sku_id).ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("cart line of SKU {} without its SKU row", line.sku_id))
        })?;
        let availability = Availability::of(sku, line.quantity);
        let line_total_cents = sku.price_cents.saturating_mul(i64::from(line.quantity));
        let shop = match view.shops.iter().position(|shop| shop.shop_id == sku.shop_id) {
            Some(index) => &mut view.shops[index],
            None => {
                view.shops.push(ShopCart {
                    shop_id: sku.shop_id,
                    shop_name: sku.shop_name.clone(),
                    lines: Vec::new(),
                    subtotal_cents: 0,
                });
                let last = view.shops.len() - 1;
                &mut view.shops[last]
            }
        };
        if line.selected && availability == Availability::Available {
            shop.subtotal_cents = shop.subtotal_cents.saturating_add(line_total_cents);
            view.selected_total_cents = view.selected_total_cents.saturating_add(line_total_cents);
            view.selected_quantity += u64::from(line.quantity);
        }
        shop.lines.push(CartLineView {
            sku_id: line.sku_id,
            product_id: sku.product_id,
            product_name: sku.product_name.clone(),
            spec_values: sku.spec_values.clone(),
            image: sku.image.clone(),
            quantity: line.quantity,
            selected: line.selected,
            unit_price_cents: sku.price_cents,
            added_price_cents: line.added_price_cents,
            price_changed: sku.price_cents != line.added_price_cents,
            stock: sku.stock,
            availability,
            line_total_cents,
            added_at: DateTime::<Utc>::from(line.added_at),
        });
    }
    Ok(view)
}

/// A quantity of at least one, or a 422 on `field`.
fn units(field: &str, quantity: u32) -> ApiResult<NonZeroU32> {
    NonZeroU32::new(quantity).ok_or_else(|| ApiError::invalid_field(field, "must_be_positive"))
}

/// The caller's cart.
pub async fn view(state: &AppState, user_id: i64) -> ApiResult<CartView> {
    let lines = state.carts.ask(user_id, |reply| GetCart { reply }).await?;
    priced(state, lines).await
}

/// Adds `quantity` units of a SKU on sale (to its line, if there is one).
/// 404 for a SKU that is unknown or not on sale; 403 `members_only` for a
/// members-only product when the caller has not verified their email.
pub async fn add(state: &AppState, user: &Principal, sku_id: i64, quantity: u32) -> ApiResult<CartView> {
    let quantity = units("quantity", quantity)?;
    let client = state.db.get().await?;
    let sku = store::skus(&client, &[sku_id])
        .await?
        .pop()
        .filter(|sku| sku.active && sku.on_sale)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound).with_message("no such SKU on sale"))?;
    drop(client);
    if sku.members_only() && user.account.status != "active" {
        return Err(ErrorCode::MembersOnly.into());
    }
    let unit_price_cents = sku.price_cents;
    let lines =
        state.carts.ask(user.user_id, |reply| AddLine { sku_id, quantity, unit_price_cents, reply }).await?;
    priced(state, lines).await
}

/// Sets a line's quantity (at least one) and/or whether it is selected.
pub async fn update(
    state: &AppState,
    user_id: i64,
    sku_id: i64,
    quantity: Option<u32>,
    selected: Option<bool>,
) -> ApiResult<CartView> {
    let mut v = Validator::new();
    v.check("quantity", quantity.is_some() || selected.is_some(), "required");
    v.check("quantity", quantity != Some(0), "must_be_positive");
    v.finish()?;
    let quantity = quantity.map(|n| units("quantity", n)).transpose()?;
    let lines = state.carts.ask(user_id, |reply| SetLine { sku_id, quantity, selected, reply }).await?;
    priced(state, lines).await
}

/// Removes a line (404 if it is not in the cart).
pub async fn remove(state: &AppState, user_id: i64, sku_id: i64) -> ApiResult<CartView> {
    let lines = state.carts.ask(user_id, |reply| RemoveLines { sku_ids: vec![sku_id], reply }).await?;
    priced(state, lines).await
}

/// Removes every line.
pub async fn clear(state: &AppState, user_id: i64) -> ApiResult<CartView> {
    let lines = state.carts.ask(user_id, |reply| ClearCart { reply }).await?;
    priced(state, lines).await
}

/// Selects or deselects the lines `sku_ids` (all lines when `None`); 404,
/// changing nothing, if one of them is not in the cart.
pub async fn select(
    state: &AppState,
    user_id: i64,
    sku_ids: Option<Vec<i64>>,
    selected: bool,
) -> ApiResult<CartView> {
    let max_lines = state.settings.cart.max_lines;
    if sku_ids.as_ref().is_some_and(|ids| ids.len() > max_lines) {
        return Err(ApiError::invalid_field("sku_ids", "too_many"));
    }
    let lines =
        state.carts.ask(user_id, |reply| SelectLines { sku_ids: sku_ids.clone(), selected, reply }).await?;
    priced(state, lines).await
}

/// The selected lines of `user_id`'s cart as `(sku_id, quantity)`, for
/// checkout: answered once every change of the cart committed before the
/// call, on this node or another, is in it (see
/// [`CartEngine::current`](super::engine::CartEngine::current)). Lines
/// are not checked for availability here.
pub async fn selected_lines(state: &AppState, user_id: i64) -> ApiResult<Vec<(i64, u32)>> {
    let lines = state.carts.current(user_id).await?;
    Ok(lines
        .into_iter()
        .filter(|line| line.selected && line.quantity > 0)
        .map(|line| (line.sku_id, line.quantity))
        .collect())
}

/// Takes bought units off `user_id`'s cart lines (lines not in it are
/// ignored; units added meanwhile stay) through the cart actor; returns
/// once the change is committed.
pub async fn take_bought(state: &AppState, user_id: i64, units: &[(i64, u32)]) -> ApiResult<()> {
    if units.is_empty() {
        return Ok(());
    }
    let removal = state.carts.ask(user_id, |reply| TakeUnits { units: units.to_vec(), reply }).await;
    match removal {
        Ok(_) => Ok(()),
        // None of them was in the cart any more.
        Err(error) if error.code() == ErrorCode::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}
