//! Catalog test data written straight into the test database: an active
//! shop, categories, and products with their SKUs, shaped exactly as the
//! tables hold them, so storefront tests do not depend on the merchant API.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::helpers::TestApp;

/// A SKU to insert.
pub struct Sku {
    pub spec_values: Value,
    pub price_cents: i64,
    pub stock: i32,
    pub active: bool,
}

impl Sku {
    /// An active SKU.
    pub fn new(spec_values: Value, price_cents: i64, stock: i32) -> Self {
        Self { spec_values, price_cents, stock, active: true }
    }
}

/// A product to insert; `min/max_price_cents` are derived from its active SKUs.
pub struct Product {
    pub shop_id: i64,
    pub category_id: i64,
    pub name: String,
    pub brand: String,
    pub description: String,
    pub images: Vec<String>,
    pub tags: Vec<String>,
    pub attributes: Value,
    pub specs: Value,
    pub status: &'static str,
    pub listed_at: DateTime<Utc>,
    pub sales_count: i64,
    pub skus: Vec<Sku>,
}

impl Product {
    /// A listed product, listed now, with one SKU at `price_cents` and stock 10.
    pub fn new(shop_id: i64, category_id: i64, name: &str, price_cents: i64) -> Self {
        Self {
            shop_id,
            category_id,
            name: name.to_owned(),
            brand: String::new(),
            description: String::new(),
            images: vec![],
            tags: vec![],
            attributes: json!({}),
            specs: json!([]),
            status: "listed",
            listed_at: Utc::now(),
            sales_count: 0,
            skus: vec![Sku::new(json!({}), price_cents, 10)],
        }
    }
}

impl TestApp {
    /// Runs SQL statements on the test database (to change catalog rows).
    pub async fn execute(&self, sql: &str) {
        self.db.get().await.expect("db").batch_execute(sql).await.expect("execute");
    }

    /// Registers member `owner` and gives them an active shop named `name`.
    pub async fn active_shop(&self, owner: &str, name: &str) -> i64 {
        let owner_id = self.register(owner).await;
        let client = self.db.get().await.expect("db");
        let row = client
            .query_one(
                "WITH shop AS (
                     INSERT INTO shops (owner_id, name, logo_url, contact_name, contact_phone, return_address, status)
                     VALUES ($1, $2, $3, 'Owner', '+86 10 5555 0100', '1 Market St', 'active')
                     RETURNING id, owner_id)
                 INSERT INTO shop_members (shop_id, user_id, role, accepted_at)
                 SELECT id, owner_id, 'owner', now() FROM shop RETURNING shop_id",
                &[&owner_id, &name, &format!("https://img.example.com/{owner}.png")],
            )
            .await
            .expect("insert shop");
        row.get(0)
    }

    /// Inserts a category.
    pub async fn category_row(&self, parent_id: Option<i64>, name: &str) -> i64 {
        let client = self.db.get().await.expect("db");
        client
            .query_one(
                "INSERT INTO categories (parent_id, name) VALUES ($1, $2) RETURNING id",
                &[&parent_id, &name],
            )
            .await
            .expect("insert category")
            .get(0)
    }

    /// Inserts a product and its SKUs; returns the product id.
    pub async fn product(&self, product: &Product) -> i64 {
        let mut client = self.db.get().await.expect("db");
        let tx = client.transaction().await.expect("tx");
        let active = product.skus.iter().filter(|s| s.active).map(|s| s.price_cents);
        let (min, max) = (active.clone().min().unwrap_or(0), active.max().unwrap_or(0));
        let id: i64 = tx
            .query_one(
                "INSERT INTO products (shop_id, category_id, name, brand, description, images, tags, attributes,
                                       specs, status, listed_at, sales_count, min_price_cents, max_price_cents)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                &[
                    &product.shop_id,
                    &product.category_id,
                    &product.name,
                    &product.brand,
                    &product.description,
                    &product.images,
                    &product.tags,
                    &product.attributes,
                    &product.specs,
                    &product.status,
                    &product.listed_at,
                    &product.sales_count,
                    &min,
                    &max,
                ],
            )
            .await
            .expect("insert product")
            .get(0);
        for (i, sku) in product.skus.iter().enumerate() {
            tx.execute(
                "INSERT INTO skus (product_id, shop_id, spec_values, spec_key, code, price_cents,
                                   market_price_cents, stock, low_stock_threshold, active)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 3, $9)",
                &[
                    &id,
                    &product.shop_id,
                    &sku.spec_values,
                    &sku.spec_values.to_string(),
                    &format!("P{id}-{i}"),
                    &sku.price_cents,
                    &(sku.price_cents + 1000),
                    &sku.stock,
                    &sku.active,
                ],
            )
            .await
            .expect("insert sku");
        }
        tx.commit().await.expect("commit");
        id
    }
}
