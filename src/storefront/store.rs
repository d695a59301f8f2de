//! SQL of what shoppers see: only listed products of active shops, and only
//! their active SKUs. SKU codes and stock thresholds are merchant-internal
//! and never selected here.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::category;
use crate::page::Paging;

/// The list's order; each ends with `id` so pages never overlap or skip.
#[derive(Debug, Clone, Copy)]
pub enum Sort {
    /// Most recently listed first.
    Newest,
    /// Cheapest SKU, low to high.
    PriceAsc,
    /// Cheapest SKU, high to low.
    PriceDesc,
    /// Best selling first.
    Sales,
}

impl Sort {
    fn order_by(self) -> &'static str {
        match self {
            Sort::Newest => "p.listed_at DESC, p.id DESC",
            Sort::PriceAsc => "p.min_price_cents, p.id",
            Sort::PriceDesc => "p.min_price_cents DESC, p.id DESC",
            Sort::Sales => "p.sales_count DESC, p.id DESC",
        }
    }
}

/// A keyword search: the words for the full-text index, and the same text
/// as an escaped `ILIKE` pattern for the trigram index on names (Chinese
/// names have no word boundaries, so words alone would miss `手机` in
/// `华为手机`).
#[derive(Debug)]
pub struct Keyword {
    pub words: String,
    pub name_pattern: String,
}

/// What the product list is narrowed to; `None` matches everything.
#[derive(Debug)]
pub struct ProductFilter {
    /// A category and everything under it.
    pub category_id: Option<i64>,
    pub shop_id: Option<i64>,
    pub min_price_cents: Option<i64>,
    pub max_price_cents: Option<i64>,
    pub tag: Option<&'static str>,
    /// A JSON object the product's attributes must contain.
    pub attributes: Option<serde_json::Value>,
    pub keyword: Option<Keyword>,
    pub sort: Sort,
}

/// A product in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductCard {
    pub id: i64,
    pub shop_id: i64,
    pub shop_name: String,
    pub category_id: i64,
    pub name: String,
    pub brand: String,
    /// The first image, if any.
    pub image: Option<String>,
    /// Of `special_offer`, `recommended`, `new`.
    pub tags: Vec<String>,
    /// `anyone` or `members_only`.
    pub audience: String,
    /// `normal`, `recharge` or `license`.
    pub product_type: String,
    /// Cheapest and dearest active SKU.
    pub min_price_cents: i64,
    pub max_price_cents: i64,
    pub sales_count: i64,
    pub listed_at: Option<DateTime<Utc>>,
    /// Some active SKU has stock.
    pub in_stock: bool,
}

impl ProductCard {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            shop_id: row.try_get("shop_id")?,
            shop_name: row.try_get("shop_name")?,
            category_id: row.try_get("category_id")?,
            name: row.try_get("name")?,
            brand: row.try_get("brand")?,
            image: row.try_get("image")?,
            tags: row.try_get("tags")?,
            audience: row.try_get("audience")?,
            product_type: row.try_get("product_type")?,
            min_price_cents: row.try_get("min_price_cents")?,
            max_price_cents: row.try_get("max_price_cents")?,
            sales_count: row.try_get("sales_count")?,
            listed_at: row.try_get("listed_at")?,
            in_stock: row.try_get("in_stock")?,
        })
    }
}

const CARD_COLUMNS: &str = "p.id, p.shop_id, s.name AS shop_name, p.category_id, p.name, p.brand, \
     p.images[1] AS image, p.tags, p.audience, p.product_type, p.min_price_cents, p.max_price_cents, \
     p.sales_count, p.listed_at, \
     EXISTS (SELECT 1 FROM skus k WHERE k.product_id = p.id AND k.active AND k.stock > 0) AS in_stock";

/// Products with their shops, narrowed by [`ON_SALE`].
const PRODUCTS_AND_SHOPS: &str = "products p JOIN shops s ON s.id = p.shop_id";
/// What shoppers may see (and buy): listed products (`p`) of active shops
/// (`s`).
pub const ON_SALE: &str = "p.status = 'listed' AND s.status = 'active'";

/// A `WHERE` clause under construction: conditions joined by `AND`, every
/// value a numbered parameter (user input never becomes SQL text).
struct Conditions<'a> {
    sql: String,
    params: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Conditions<'a> {
    /// The next placeholder, `$n`, bound to `value`.
    fn bind(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// Adds `condition(placeholder of value)`.
    fn and(&mut self, value: &'a (dyn ToSql + Sync), condition: impl FnOnce(&str) -> String) {
        let placeholder = self.bind(value);
        self.sql.push_str(" AND ");
        self.sql.push_str(&condition(&placeholder));
    }
}

/// One page of visible products matching `filter`, and the total matching.
/// The statement text depends only on which filters are set and the sort,
/// so the prepared-statement cache stays small (a few hundred at most).
pub async fn search(
    client: &impl GenericClient,
    filter: &ProductFilter,
    paging: Paging,
) -> Result<(Vec<ProductCard>, i64), tokio_postgres::Error> {
    let (limit, offset) = (paging.limit(), paging.offset());
    let mut w = Conditions { sql: format!("FROM {PRODUCTS_AND_SHOPS} WHERE {ON_SALE}"), params: Vec::new() };
    if let Some(id) = &filter.category_id {
        w.and(id, |p| format!("p.category_id IN ({})", category::store::subtree_sql(p)));
    }
    if let Some(id) = &filter.shop_id {
        w.and(id, |p| format!("p.shop_id = {p}"));
    }
    if let Some(cents) = &filter.min_price_cents {
        w.and(cents, |p| format!("p.min_price_cents >= {p}"));
    }
    if let Some(cents) = &filter.max_price_cents {
        w.and(cents, |p| format!("p.min_price_cents <= {p}"));
    }
    if let Some(tag) = &filter.tag {
        w.and(tag, |p| format!("{p} = ANY (p.tags)"));
    }
    if let Some(attributes) = &filter.attributes {
        w.and(attributes, |p| format!("p.attributes @> {p}"));
    }
    if let Some(keyword) = &filter.keyword {
        let words = w.bind(&keyword.words);
        w.and(&keyword.name_pattern, |p| {
            format!("(p.search @@ websearch_to_tsquery('simple', {words}) OR p.name ILIKE {p})")
        });
    }
    let count = client.prepare_cached(&format!("SELECT count(*) {}", w.sql)).await?;
    let total: i64 = client.query_one(&count, &w.params).await?.try_get(0)?;
    let (limit_at, offset_at) = (w.bind(&limit), w.bind(&offset));
    let page = client
        .prepare_cached(&format!(
            "SELECT {CARD_COLUMNS} {} ORDER BY {} LIMIT {limit_at} OFFSET {offset_at}",
            w.sql,
            filter.sort.order_by()
        ))
        .await?;
    let rows = client.query(&page, &w.params).await?;
    Ok((rows.iter().map(ProductCard::from_row).collect::<Result<_, _>>()?, total))
}

/// A shop as a product page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShopRef {
    pub id: i64,
    pub name: String,
    pub logo_url: Option<String>,
}

/// A category as a product page shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CategoryRef {
    pub id: i64,
    pub name: String,
}

/// A SKU as shoppers see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkuView {
    pub id: i64,
    /// The SKU's value of each spec, e.g. `{"colour": "red", "size": "XL"}`.
    #[schema(value_type = Object)]
    pub spec_values: serde_json::Value,
    pub price_cents: i64,
    /// The crossed-out "was" price, if any.
    pub market_price_cents: Option<i64>,
    pub stock: i32,
    pub in_stock: bool,
}

/// Everything a product page shows, rendered once and cached.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductDetail {
    pub id: i64,
    pub shop: ShopRef,
    pub category: CategoryRef,
    /// The category's ancestors, root first (empty for a root category).
    pub category_path: Vec<CategoryRef>,
    pub name: String,
    pub description: String,
    pub brand: String,
    pub images: Vec<String>,
    /// Of `special_offer`, `recommended`, `new`.
    pub tags: Vec<String>,
    /// `anyone` or `members_only`.
    pub audience: String,
    /// `normal`, `recharge` or `license`.
    pub product_type: String,
    /// Display attributes, e.g. `{"material": "cotton"}`.
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// Spec definitions, `[{"name": "colour", "values": ["red", "blue"]}]`.
    #[schema(value_type = Vec<Object>)]
    pub specs: serde_json::Value,
    /// Active SKUs, oldest first.
    pub skus: Vec<SkuView>,
    pub min_price_cents: i64,
    pub max_price_cents: i64,
    pub sales_count: i64,
    pub listed_at: Option<DateTime<Utc>>,
}

/// A visible product with its shop, category and category path (one
/// statement), then its active SKUs (a second). `None` when the product is
/// unknown, not listed, or its shop is not active.
pub async fn find_detail(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<ProductDetail>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT p.id, p.shop_id, s.name AS shop_name, s.logo_url, c.id AS category_id, c.name AS category_name,
                    COALESCE((
                        WITH RECURSIVE up AS (
                            SELECT a.id, a.parent_id, a.name, 1 AS depth FROM categories a WHERE a.id = c.parent_id
                            UNION ALL
                            SELECT a.id, a.parent_id, a.name, up.depth + 1 FROM categories a
                            JOIN up ON a.id = up.parent_id
                            WHERE up.depth < 64
                        )
                        SELECT json_agg(json_build_object('id', up.id, 'name', up.name) ORDER BY up.depth DESC)
                        FROM up), '[]') AS category_path,
                    p.name, p.description, p.brand, p.images, p.tags, p.audience, p.product_type, p.attributes,
                    p.specs, p.min_price_cents, p.max_price_cents, p.sales_count, p.listed_at
             FROM {PRODUCTS_AND_SHOPS} JOIN categories c ON c.id = p.category_id
             WHERE {ON_SALE} AND p.id = $1"
        ))
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&id]).await? else { return Ok(None) };
    let skus = client
        .prepare_cached(
            "SELECT id, spec_values, price_cents, market_price_cents, stock FROM skus
             WHERE product_id = $1 AND active ORDER BY id",
        )
        .await?;
    let skus = client
        .query(&skus, &[&id])
        .await?
        .iter()
        .map(|sku| {
            let stock: i32 = sku.try_get("stock")?;
            Ok(SkuView {
                id: sku.try_get("id")?,
                spec_values: sku.try_get("spec_values")?,
                price_cents: sku.try_get("price_cents")?,
                market_price_cents: sku.try_get("market_price_cents")?,
                stock,
                in_stock: stock > 0,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let Json(category_path) = row.try_get("category_path")?;
    Ok(Some(ProductDetail {
        id: row.try_get("id")?,
        shop: ShopRef {
            id: row.try_get("shop_id")?,
            name: row.try_get("shop_name")?,
            logo_url: row.try_get("logo_url")?,
        },
        category: CategoryRef { id: row.try_get("category_id")?, name: row.try_get("category_name")? },
        category_path,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        brand: row.try_get("brand")?,
        images: row.try_get("images")?,
        tags: row.try_get("tags")?,
        audience: row.try_get("audience")?,
        product_type: row.try_get("product_type")?,
        attributes: row.try_get("attributes")?,
        specs: row.try_get("specs")?,
        skus,
        min_price_cents: row.try_get("min_price_cents")?,
        max_price_cents: row.try_get("max_price_cents")?,
        sales_count: row.try_get("sales_count")?,
        listed_at: row.try_get("listed_at")?,
    }))
}
