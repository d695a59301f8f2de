//! Preparing a run: buyers and an admin (one registration through the API,
//! the rest inserted in one statement with the same password hash, then
//! everyone logged in through the API), an address per buyer (one
//! statement), the seckill events, and a catalog of listed products (a shop
//! owner registered through the API, the shop, category, products, stocked
//! SKUs and their opening stock movements inserted in one statement).

use std::collections::HashMap;

use anyhow::{bail, Context};
use awc::Client;
use chrono::{SecondsFormat, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::json;

use crate::client::{post_json, Buyer, Shopper};

/// The run's accounts, logged in.
pub struct Accounts {
    /// Username prefix unique to this run.
    pub prefix: String,
    pub buyers: Vec<Buyer>,
    /// Usernames of the buyers, in the order of `buyers`.
    pub buyer_names: Vec<String>,
    /// The password every prepared account shares.
    pub password: String,
    pub admin: Buyer,
}

#[derive(Deserialize)]
struct Registered {
    id: i64,
}

#[derive(Deserialize)]
struct LoggedIn {
    token: String,
    user_id: i64,
}

#[derive(Deserialize)]
struct Created {
    id: i64,
}

/// A per-run prefix such as `lt3f9a0c12`: usernames start with a letter and
/// never collide with an earlier run's.
pub fn run_prefix() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("lt{}", &id[..8])
}

/// Registers `username` through the API and returns its id.
async fn register(http: &Client, base: &str, username: &str, password: &str) -> anyhow::Result<i64> {
    let registered: Registered = post_json(
        http,
        &format!("{base}/api/auth/register"),
        &json!({ "username": username, "email": format!("{username}@example.com"), "password": password }),
        None,
        201,
    )
    .await
    .with_context(|| format!("registering {username}"))?;
    Ok(registered.id)
}

/// Creates `buyers` active buyers and one admin, and logs them all in with at
/// most `logins_at_once` logins in flight (each costs the server an argon2id
/// hash, ~25 ms of CPU).
pub async fn accounts(
    http: &Client,
    db: &tokio_postgres::Client,
    base: &str,
    buyers: u32,
    logins_at_once: usize,
) -> anyhow::Result<Accounts> {
    let prefix = run_prefix();
    let password = format!("Lt-{}", uuid::Uuid::new_v4().simple());
    let seed = register(http, base, &format!("{prefix}_seed"), &password).await?;
    let hash: String = db
        .query_one("SELECT password_hash FROM users WHERE id = $1", &[&seed])
        .await
        .context("reading the seed user's password hash")?
        .try_get(0)?;
    let count = i32::try_from(buyers).context("--users is too large")?;
    // User 0 is the admin; buyers get `member`, as registration grants it.
    let rows = db
        .query(
            "WITH new_users AS (
                 INSERT INTO users (username, email, password_hash, status)
                 SELECT $1 || CASE WHEN g = 0 THEN '_admin' ELSE '_b' || g END,
                        $1 || CASE WHEN g = 0 THEN '_admin' ELSE '_b' || g END || '@example.com',
                        $2, 'active'
                   FROM generate_series(0, $3::int4) AS g
                 RETURNING id, username),
             granted AS (
                 INSERT INTO user_roles (user_id, role_id)
                 SELECT u.id, r.id FROM new_users u JOIN roles r
                     ON r.name = CASE WHEN u.username = $1 || '_admin' THEN 'admin' ELSE 'member' END)
             SELECT username FROM new_users ORDER BY id",
            &[&prefix, &hash, &count],
        )
        .await
        .context("inserting buyers and the admin")?;
    let usernames = rows.iter().map(|r| r.try_get::<_, String>(0)).collect::<Result<Vec<_>, _>>()?;
    let logged_in: Vec<(String, Buyer)> = stream::iter(usernames)
        .map(|username| {
            let password = &password;
            async move {
                let answer: LoggedIn = post_json(
                    http,
                    &format!("{base}/api/auth/login"),
                    &json!({ "login": username, "password": password }),
                    None,
                    200,
                )
                .await
                .with_context(|| format!("logging in {username}"))?;
                Ok::<_, anyhow::Error>((username, Buyer::new(answer.user_id, &answer.token)?))
            }
        })
        .buffer_unordered(logins_at_once.max(1))
        .try_collect()
        .await?;
    let admin_name = format!("{prefix}_admin");
    let mut admin = None;
    let mut buyer_list = Vec::with_capacity(logged_in.len());
    let mut buyer_names = Vec::with_capacity(logged_in.len());
    for (username, buyer) in logged_in {
        if username == admin_name {
            admin = Some(buyer);
        } else {
            buyer_list.push(buyer);
            buyer_names.push(username);
        }
    }
    let Some(admin) = admin else { bail!("the admin {admin_name} was not created") };
    Ok(Accounts { prefix, buyers: buyer_list, buyer_names, password, admin })
}

/// Gives every buyer a default address (inserted in one statement, as the
/// address book would store a first address) and returns them as shoppers,
/// in the order of `buyers`.
pub async fn addresses(db: &tokio_postgres::Client, buyers: &[Buyer]) -> anyhow::Result<Vec<Shopper>> {
    let user_ids: Vec<i64> = buyers.iter().map(|b| b.user_id).collect();
    let rows = db
        .query(
            "INSERT INTO addresses (user_id, recipient, phone, region, detail, is_default)
             SELECT u, 'Load Test', '+1 555 0100', 'Test Region', u || ' Test Street', true
               FROM unnest($1::int8[]) AS u
             RETURNING user_id, id",
            &[&user_ids],
        )
        .await
        .context("inserting the shoppers' addresses")?;
    let mut address_of = HashMap::with_capacity(rows.len());
    for row in rows {
        address_of.insert(row.try_get::<_, i64>("user_id")?, row.try_get::<_, i64>("id")?);
    }
    buyers
        .iter()
        .map(|buyer| {
            let address_id = *address_of
                .get(&buyer.user_id)
                .with_context(|| format!("no address was inserted for user {}", buyer.user_id))?;
            Ok(Shopper { buyer: buyer.clone(), address_id })
        })
        .collect()
}

/// The parameters of an event the run creates.
#[derive(Clone, Debug)]
pub struct EventSpec {
    pub sku_id: i64,
    pub title: String,
    pub price_cents: i64,
    pub stock: i32,
    pub per_user_limit: i32,
    /// How long the sale stays open from now.
    pub sale_secs: i64,
    pub payment_window_secs: i32,
    /// Token-bucket limits; 0 turns a limit off, `None` takes the server default.
    pub user_rate_per_sec: Option<i32>,
    pub ip_rate_per_sec: Option<i32>,
}

/// Creates a live event (it started a second ago) and returns its id.
pub async fn create_event(http: &Client, base: &str, admin: &Buyer, spec: &EventSpec) -> anyhow::Result<i64> {
    let now = Utc::now();
    let at = |secs: i64| (now + chrono::Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let created: Created = post_json(
        http,
        &format!("{base}/api/admin/seckill/events"),
        &json!({
            "sku_id": spec.sku_id,
            "title": spec.title,
            "price_cents": spec.price_cents,
            "stock": spec.stock,
            "per_user_limit": spec.per_user_limit,
            "starts_at": at(-1),
            "ends_at": at(spec.sale_secs),
            "payment_window_secs": spec.payment_window_secs,
            "require_purchase_token": false,
            "user_rate_per_sec": spec.user_rate_per_sec,
            "ip_rate_per_sec": spec.ip_rate_per_sec,
        }),
        Some(&admin.auth),
        201,
    )
    .await
    .context("creating the seckill event")?;
    Ok(created.id)
}

/// The run's listed products.
pub struct Catalog {
    /// Names of the shop, category and products start with it.
    pub prefix: String,
    pub product_ids: Vec<i64>,
    /// Their SKUs, three per product, in product order.
    pub sku_ids: Vec<i64>,
}

/// Prepares an active shop (its owner registered through the API), a
/// category, and `products` listed products with three SKUs each (sizes S,
/// M, L), all visible on the storefront at once. Every SKU holds `stock`
/// units (at least 1), recorded as one `adjustment` movement so the stock
/// equals the sum of its ledger, as it does for stock set through the API.
pub async fn products(
    http: &Client,
    db: &tokio_postgres::Client,
    base: &str,
    products: u32,
    stock: i32,
) -> anyhow::Result<Catalog> {
    let prefix = run_prefix();
    let password = format!("Lt-{}", uuid::Uuid::new_v4().simple());
    let owner = register(http, base, &format!("{prefix}_owner"), &password).await?;
    let count = i32::try_from(products).context("--products is too large")?;
    let rows = db
        .query(
            "WITH shop AS (
                 INSERT INTO shops (owner_id, name, contact_name, contact_phone, return_address, status)
                 VALUES ($1, $2::text || ' shop', 'Load Test', '+1 555 0100', '1 Test Street', 'active')
                 RETURNING id, owner_id),
             staff AS (
                 INSERT INTO shop_members (shop_id, user_id, role, accepted_at)
                 SELECT id, owner_id, 'owner', now() FROM shop),
             category AS (
                 INSERT INTO categories (name) VALUES ($2::text) RETURNING id),
             product AS (
                 INSERT INTO products (shop_id, category_id, name, brand, description, images, tags, attributes,
                                       specs, status, listed_at, min_price_cents, max_price_cents)
                 SELECT shop.id, category.id, $2::text || ' product ' || g, 'Loadtest',
                        'A product prepared by the load test.',
                        ARRAY['https://img.example.com/' || $2::text || '/' || g || '.png'], ARRAY['new'],
                        jsonb_build_object('material', 'cotton'),
                        jsonb_build_array(jsonb_build_object('name', 'size', 'values', jsonb_build_array('S', 'M', 'L'))),
                        'listed', now(), 1000, 3000
                   FROM shop, category, generate_series(1, $3::int4) AS g
                 RETURNING id, shop_id),
             sku AS (
                 INSERT INTO skus (product_id, shop_id, spec_values, spec_key, code, price_cents,
                                   market_price_cents, stock)
                 SELECT p.id, p.shop_id, jsonb_build_object('size', s.size), 'size=' || s.size,
                        $2::text || '-' || p.id || '-' || s.size, s.price, s.price + 500, $4::int4
                   FROM product p CROSS JOIN (VALUES ('S', 1000), ('M', 2000), ('L', 3000)) AS s (size, price)
                 RETURNING id, product_id, shop_id, stock),
             opening AS (
                 INSERT INTO inventory_movements (sku_id, shop_id, kind, delta, stock_after, reason)
                 SELECT id, shop_id, 'adjustment', stock, stock, 'load test opening stock' FROM sku)
             SELECT product_id, id FROM sku ORDER BY product_id, id",
            &[&owner, &prefix, &count, &stock],
        )
        .await
        .context("inserting the shop, category, products, SKUs and their stock")?;
    let mut product_ids: Vec<i64> = Vec::with_capacity(rows.len() / 3);
    let mut sku_ids = Vec::with_capacity(rows.len());
    for row in rows {
        let product_id = row.try_get("product_id")?;
        if product_ids.last() != Some(&product_id) {
            product_ids.push(product_id);
        }
        sku_ids.push(row.try_get("id")?);
    }
    Ok(Catalog { prefix, product_ids, sku_ids })
}

/// Active shops for the chat scenario: `shops` of them, each owned by one
/// of `agent_ids`, the other agents spread over them as customer service
/// (accepted). Inserted in two statements.
pub async fn chat_shops(
    db: &tokio_postgres::Client,
    prefix: &str,
    agent_ids: &[i64],
    shops: u32,
) -> anyhow::Result<Vec<i64>> {
    let owners = &agent_ids[..(shops as usize).min(agent_ids.len())];
    let rows = db
        .query(
            "INSERT INTO shops (owner_id, name, contact_name, contact_phone, return_address, status)
             SELECT o, $1 || '_chat_' || o, 'Load Test', '+86 138 0000 0000', '1 Test Road', 'active'
             FROM unnest($2::int8[]) AS x (o)
             RETURNING id, owner_id",
            &[&prefix, &owners],
        )
        .await
        .context("inserting chat shops")?;
    let mut shop_of: HashMap<i64, i64> = HashMap::new();
    for row in rows {
        shop_of.insert(row.try_get(1)?, row.try_get(0)?);
    }
    let shop_ids: Vec<i64> = owners.iter().filter_map(|o| shop_of.get(o).copied()).collect();
    let (mut shop, mut role) = (Vec::new(), Vec::new());
    for (i, _) in agent_ids.iter().enumerate() {
        shop.push(shop_ids[i % shop_ids.len()]);
        role.push(if i < shop_ids.len() { "owner" } else { "customer_service" });
    }
    db.execute(
        "INSERT INTO shop_members (shop_id, user_id, role, accepted_at)
         SELECT s, u, r, now() FROM unnest($1::int8[], $2::int8[], $3::text[]) AS x (s, u, r)",
        &[&shop, &agent_ids, &role],
    )
    .await
    .context("inserting chat staff")?;
    Ok(shop_ids)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn prefixes_make_valid_unique_usernames() {
        let (a, b) = (run_prefix(), run_prefix());
        assert_ne!(a, b);
        let longest = format!("{a}_b{}", u32::MAX);
        assert!(longest.len() <= 32, "{longest}");
        assert!(a.starts_with(|c: char| c.is_ascii_alphabetic()));
        assert!(longest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }
}
