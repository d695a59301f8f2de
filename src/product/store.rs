//! SQL of products and their SKUs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;
use tokio_postgres::Row;

use super::content::{Audience, ProductContent, ProductType, SkuContent, Spec, Tag};
use crate::page::Paging;

/// A product's live columns, lifecycle state and pending revision.
#[derive(Debug)]
pub struct ProductRow {
    pub id: i64,
    pub shop_id: i64,
    pub category_id: i64,
    pub name: String,
    pub description: String,
    pub brand: String,
    pub images: Vec<String>,
    pub tags: Vec<String>,
    pub audience: String,
    pub product_type: String,
    pub attributes: Value,
    pub specs: Value,
    pub status: String,
    pub review_reason: Option<String>,
    pub revision: i32,
    pub pending_content: Option<Value>,
    pub pending_state: Option<String>,
    pub pending_reason: Option<String>,
    pub min_price_cents: i64,
    pub max_price_cents: i64,
    pub sales_count: i64,
    pub listed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const PRODUCT_COLUMNS: &str = "id, shop_id, category_id, name, description, brand, images, tags, audience, \
     product_type, attributes, specs, status, review_reason, revision, pending_content, pending_state, \
     pending_reason, min_price_cents, max_price_cents, sales_count, listed_at, created_at, updated_at";

impl ProductRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            shop_id: row.try_get("shop_id")?,
            category_id: row.try_get("category_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            brand: row.try_get("brand")?,
            images: row.try_get("images")?,
            tags: row.try_get("tags")?,
            audience: row.try_get("audience")?,
            product_type: row.try_get("product_type")?,
            attributes: row.try_get("attributes")?,
            specs: row.try_get("specs")?,
            status: row.try_get("status")?,
            review_reason: row.try_get("review_reason")?,
            revision: row.try_get("revision")?,
            pending_content: row.try_get("pending_content")?,
            pending_state: row.try_get("pending_state")?,
            pending_reason: row.try_get("pending_reason")?,
            min_price_cents: row.try_get("min_price_cents")?,
            max_price_cents: row.try_get("max_price_cents")?,
            sales_count: row.try_get("sales_count")?,
            listed_at: row.try_get("listed_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// The live content, rebuilt from the columns and the active `skus`.
    pub fn live_content(&self, skus: &[SkuRow]) -> ProductContent {
        ProductContent {
            name: self.name.clone(),
            description: self.description.clone(),
            category_id: self.category_id,
            brand: self.brand.clone(),
            images: self.images.clone(),
            tags: self.tags.iter().filter_map(|t| Tag::parse(t)).collect(),
            audience: Audience::parse(&self.audience).unwrap_or_default(),
            product_type: ProductType::parse(&self.product_type).unwrap_or_default(),
            attributes: serde_json::from_value(self.attributes.clone()).unwrap_or_default(),
            specs: serde_json::from_value::<Vec<Spec>>(self.specs.clone()).unwrap_or_default(),
            skus: skus.iter().filter(|sku| sku.active).map(SkuRow::content).collect(),
        }
    }
}

/// One SKU with its stock.
#[derive(Debug)]
pub struct SkuRow {
    pub id: i64,
    pub product_id: i64,
    pub spec_values: BTreeMap<String, String>,
    pub code: String,
    pub price_cents: i64,
    pub market_price_cents: Option<i64>,
    pub stock: i32,
    pub low_stock_threshold: i32,
    pub active: bool,
}

/// The columns [`SkuRow::from_row`] reads.
pub const SKU_COLUMNS: &str = "id, product_id, spec_values, code, price_cents, market_price_cents, stock, \
     low_stock_threshold, active";

impl SkuRow {
    /// Maps a row holding [`SKU_COLUMNS`].
    pub fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        let spec_values: Value = row.try_get("spec_values")?;
        Ok(Self {
            id: row.try_get("id")?,
            product_id: row.try_get("product_id")?,
            spec_values: serde_json::from_value(spec_values).unwrap_or_default(),
            code: row.try_get("code")?,
            price_cents: row.try_get("price_cents")?,
            market_price_cents: row.try_get("market_price_cents")?,
            stock: row.try_get("stock")?,
            low_stock_threshold: row.try_get("low_stock_threshold")?,
            active: row.try_get("active")?,
        })
    }

    fn content(&self) -> SkuContent {
        SkuContent {
            spec_values: self.spec_values.clone(),
            code: self.code.clone(),
            price_cents: self.price_cents,
            market_price_cents: self.market_price_cents,
            low_stock_threshold: self.low_stock_threshold,
        }
    }
}

/// Inserts a draft product with no SKUs yet (see [`write_live`]).
pub async fn insert_draft(
    client: &impl GenericClient,
    shop_id: i64,
    category_id: i64,
    created_by: i64,
) -> Result<i64, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO products (shop_id, category_id, name, created_by) VALUES ($1, $2, '', $3) RETURNING id",
        )
        .await?;
    client.query_one(&stmt, &[&shop_id, &category_id, &created_by]).await?.try_get(0)
}

/// Writes `content` as the product's live version: its columns, and its
/// SKUs matched by spec combination (a kept combination keeps its SKU id
/// and stock; a new one gets a SKU with no stock; a dropped one is
/// deactivated). Run it in the transaction of the change.
pub async fn write_live(
    client: &impl GenericClient,
    product_id: i64,
    shop_id: i64,
    content: &ProductContent,
) -> Result<(), tokio_postgres::Error> {
    let (min_price, max_price) = content.price_range();
    let tags: Vec<&str> = content.tags.iter().map(|t| t.as_str()).collect();
    let attributes = serde_json::to_value(&content.attributes).unwrap_or_default();
    let specs = serde_json::to_value(&content.specs).unwrap_or_default();
    let update = client
        .prepare_cached(
            "UPDATE products SET category_id = $2, name = $3, description = $4, brand = $5, images = $6,
                 tags = $7, audience = $8, product_type = $9, attributes = $10, specs = $11,
                 min_price_cents = $12, max_price_cents = $13, updated_at = now()
             WHERE id = $1",
        )
        .await?;
    client
        .execute(
            &update,
            &[
                &product_id,
                &content.category_id,
                &content.name,
                &content.description,
                &content.brand,
                &content.images,
                &tags,
                &content.audience.as_str(),
                &content.product_type.as_str(),
                &attributes,
                &specs,
                &min_price,
                &max_price,
            ],
        )
        .await?;
    // Deactivate first, so codes can move between this product's SKUs
    // without tripping the unique index on active codes.
    // In id order, as checkout locks them, so the two cannot deadlock.
    let deactivate = client
        .prepare_cached(
            "UPDATE skus SET active = false
             WHERE id IN (SELECT id FROM skus WHERE product_id = $1 ORDER BY id FOR NO KEY UPDATE)",
        )
        .await?;
    client.execute(&deactivate, &[&product_id]).await?;
    let upsert = client
        .prepare_cached(
            "INSERT INTO skus (product_id, shop_id, spec_values, spec_key, code, price_cents, market_price_cents,
                               low_stock_threshold)
             SELECT $1, $2, v, k, c, p, m, t
             FROM unnest($3::jsonb[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::int4[]) AS x (v, k, c, p, m, t)
             ON CONFLICT (product_id, spec_key) DO UPDATE SET
                 spec_values = EXCLUDED.spec_values, code = EXCLUDED.code, price_cents = EXCLUDED.price_cents,
                 market_price_cents = EXCLUDED.market_price_cents,
                 low_stock_threshold = EXCLUDED.low_stock_threshold, active = true, updated_at = now()",
        )
        .await?;
    let skus = &content.skus;
    let values: Vec<Value> =
        skus.iter().map(|s| serde_json::to_value(&s.spec_values).unwrap_or_default()).collect();
    let keys: Vec<String> = skus.iter().map(SkuContent::spec_key).collect();
    let codes: Vec<&str> = skus.iter().map(|s| s.code.as_str()).collect();
    let prices: Vec<i64> = skus.iter().map(|s| s.price_cents).collect();
    let market: Vec<Option<i64>> = skus.iter().map(|s| s.market_price_cents).collect();
    let thresholds: Vec<i32> = skus.iter().map(|s| s.low_stock_threshold).collect();
    client
        .execute(&upsert, &[&product_id, &shop_id, &values, &keys, &codes, &prices, &market, &thresholds])
        .await?;
    Ok(())
}

/// One product by id, locked for update when `lock` (every lifecycle
/// change reads and writes under that lock).
pub async fn find(
    client: &impl GenericClient,
    product_id: i64,
    lock: bool,
) -> Result<Option<ProductRow>, tokio_postgres::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let stmt =
        client.prepare_cached(&format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1{lock}")).await?;
    client.query_opt(&stmt, &[&product_id]).await?.map(|row| ProductRow::from_row(&row)).transpose()
}

/// Every SKU of a product (inactive ones too), in creation order.
pub async fn skus(
    client: &impl GenericClient,
    product_id: i64,
) -> Result<Vec<SkuRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!("SELECT {SKU_COLUMNS} FROM skus WHERE product_id = $1 ORDER BY id"))
        .await?;
    client.query(&stmt, &[&product_id]).await?.iter().map(SkuRow::from_row).collect()
}

/// The lifecycle columns a transition sets.
#[derive(Debug, Default)]
pub struct LifecycleChange<'a> {
    pub status: Option<&'a str>,
    /// Sets `review_reason` (to NULL when `Some(None)`).
    pub review_reason: Option<Option<&'a str>>,
    /// Sets the pending revision and its state, or clears both (`Some(None)`).
    pub pending: Option<Option<(&'a Value, &'a str)>>,
    /// Sets `pending_reason` (to NULL when `Some(None)`).
    pub pending_reason: Option<Option<&'a str>>,
    /// Bumps the revision: the content changed.
    pub new_revision: bool,
    /// Stamps `listed_at` (first listing).
    pub listed_now: bool,
}

/// Applies a lifecycle change to a product, returning the updated row.
pub async fn change(
    client: &impl GenericClient,
    product_id: i64,
    change: &LifecycleChange<'_>,
) -> Result<ProductRow, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE products SET
                 status = COALESCE($2, status),
                 review_reason = CASE WHEN $3 THEN $4 ELSE review_reason END,
                 pending_content = CASE WHEN $5 THEN $6 ELSE pending_content END,
                 pending_state = CASE WHEN $5 THEN $7 ELSE pending_state END,
                 pending_reason = CASE WHEN $8 THEN $9 ELSE pending_reason END,
                 revision = revision + CASE WHEN $10 THEN 1 ELSE 0 END,
                 listed_at = CASE WHEN $11 THEN now() ELSE listed_at END,
                 updated_at = now()
             WHERE id = $1 RETURNING {PRODUCT_COLUMNS}"
        ))
        .await?;
    let pending = change.pending.flatten();
    let row = client
        .query_one(
            &stmt,
            &[
                &product_id,
                &change.status,
                &change.review_reason.is_some(),
                &change.review_reason.flatten(),
                &change.pending.is_some(),
                &pending.map(|(content, _)| content),
                &pending.map(|(_, state)| state),
                &change.pending_reason.is_some(),
                &change.pending_reason.flatten(),
                &change.new_revision,
                &change.listed_now,
            ],
        )
        .await?;
    ProductRow::from_row(&row)
}

/// One page of a shop's products, newest first, optionally of one status.
pub async fn list_for_shop(
    client: &impl GenericClient,
    shop_id: i64,
    status: Option<&str>,
    paging: Paging,
) -> Result<(Vec<ProductRow>, i64), tokio_postgres::Error> {
    const CONDITION: &str = "shop_id = $1 AND ($2::text IS NULL OR status = $2)";
    let count = client.prepare_cached(&format!("SELECT count(*) FROM products WHERE {CONDITION}")).await?;
    let total: i64 = client.query_one(&count, &[&shop_id, &status]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE {CONDITION} ORDER BY id DESC LIMIT $3 OFFSET $4"
        ))
        .await?;
    let rows = client.query(&stmt, &[&shop_id, &status, &paging.limit(), &paging.offset()]).await?;
    Ok((rows.iter().map(ProductRow::from_row).collect::<Result<_, _>>()?, total))
}

/// One page of the operators' review queue: new products and revisions of
/// listed ones waiting for a decision, oldest first.
pub async fn review_queue(
    client: &impl GenericClient,
    paging: Paging,
) -> Result<(Vec<ProductRow>, i64), tokio_postgres::Error> {
    const CONDITION: &str = "status = 'pending_review' OR pending_state = 'pending_review'";
    let count = client.prepare_cached(&format!("SELECT count(*) FROM products WHERE {CONDITION}")).await?;
    let total: i64 = client.query_one(&count, &[]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE {CONDITION} ORDER BY updated_at, id LIMIT $1 OFFSET $2"
        ))
        .await?;
    let rows = client.query(&stmt, &[&paging.limit(), &paging.offset()]).await?;
    Ok((rows.iter().map(ProductRow::from_row).collect::<Result<_, _>>()?, total))
}

/// A SKU as a buyer meets it: price, stock, and whether it is on sale.
#[derive(Debug, Clone)]
pub struct SkuOffer {
    pub sku_id: i64,
    pub product_id: i64,
    pub shop_id: i64,
    pub product_name: String,
    pub image: Option<String>,
    pub spec_values: BTreeMap<String, String>,
    pub price_cents: i64,
    pub stock: i32,
    /// `anyone` or `members_only`.
    pub audience: String,
    /// Active SKU of a listed product of an active shop.
    pub on_sale: bool,
    /// The SKU was dropped from its product.
    pub gone: bool,
}

/// The offers of `sku_ids` (unknown ids are left out), in one query, with
/// the SKU rows locked in id order until the transaction ends: a price
/// change or deactivation waits for the checkout reading them, and
/// concurrent checkouts lock in the same order.
pub async fn lock_offers(
    client: &impl GenericClient,
    sku_ids: &[i64],
) -> Result<Vec<SkuOffer>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT s.id, s.product_id, s.shop_id, p.name, p.images[1] AS image, s.spec_values, s.price_cents,
                    s.stock, p.audience, s.active, p.status = 'listed' AND sh.status = 'active' AS listed
             FROM skus s JOIN products p ON p.id = s.product_id JOIN shops sh ON sh.id = s.shop_id
             WHERE s.id = ANY($1) ORDER BY s.id FOR NO KEY UPDATE OF s",
        )
        .await?;
    client
        .query(&stmt, &[&sku_ids])
        .await?
        .iter()
        .map(|row| {
            let spec_values: Value = row.try_get("spec_values")?;
            let active: bool = row.try_get("active")?;
            let listed: bool = row.try_get("listed")?;
            Ok(SkuOffer {
                sku_id: row.try_get("id")?,
                product_id: row.try_get("product_id")?,
                shop_id: row.try_get("shop_id")?,
                product_name: row.try_get("name")?,
                image: row.try_get("image")?,
                spec_values: serde_json::from_value(spec_values).unwrap_or_default(),
                price_cents: row.try_get("price_cents")?,
                stock: row.try_get("stock")?,
                audience: row.try_get("audience")?,
                on_sale: active && listed,
                gone: !active,
            })
        })
        .collect()
}
