//! The `demo-data` subcommand: a few approved shops, a category tree and
//! listed products with stock, so a newcomer has something to browse and
//! buy. Everything goes through the same store functions the API uses, in
//! one transaction; running it twice changes nothing.

use deadpool_postgres::{GenericClient, Pool};
use serde_json::json;

use crate::account;
use crate::auth::password;
use crate::category::store::{self as categories, CategoryValues};
use crate::config::AuthSettings;
use crate::error::{ApiError, ApiResult};
use crate::inventory::store::{self as inventory, Movement, MovementKind};
use crate::product::content::ProductContent;
use crate::product::lifecycle::ProductStatus;
use crate::product::store::{self as products, LifecycleChange};
use crate::shop::store::{self as shops, ShopProfile, ShopStatus};

/// Password of every demo merchant account.
pub const DEMO_PASSWORD: &str = "demo-password";

/// What `load` created.
#[derive(Debug)]
pub struct DemoSummary {
    /// False when the demo data was already there.
    pub created: bool,
    pub shops: usize,
    pub products: usize,
    /// Usernames of the shop owners (password [`DEMO_PASSWORD`]).
    pub merchants: Vec<&'static str>,
}

struct DemoShop {
    owner: &'static str,
    name: &'static str,
    description: &'static str,
    products: fn(&Categories) -> Vec<serde_json::Value>,
}

struct Categories {
    phones: i64,
    laptops: i64,
    tshirts: i64,
    tea: i64,
}

const SHOPS: &[DemoShop] = &[
    DemoShop {
        owner: "demo-tech",
        name: "Demo Tech Store",
        description: "Phones and laptops",
        products: |c| {
            vec![
                product(
                    c.phones,
                    "Huawei 手机 Mate X",
                    "Huawei",
                    &["new", "recommended"],
                    &[("network", "5G")],
                    &[("colour", &["black", "green"]), ("storage", &["256GB", "512GB"])],
                    &[599_900, 649_900],
                ),
                product(
                    c.phones,
                    "Pixel Phone 9",
                    "Google",
                    &["special_offer"],
                    &[("network", "5G")],
                    &[("colour", &["obsidian", "porcelain"])],
                    &[499_900],
                ),
                product(
                    c.laptops,
                    "ThinkPad Carbon",
                    "Lenovo",
                    &["recommended"],
                    &[("cpu", "x86")],
                    &[("memory", &["16GB", "32GB"])],
                    &[999_900, 1_199_900],
                ),
            ]
        },
    },
    DemoShop {
        owner: "demo-wear",
        name: "Demo Wear",
        description: "Plain cotton basics",
        products: |c| {
            vec![
                product(
                    c.tshirts,
                    "Cotton T-shirt",
                    "Acme",
                    &["new"],
                    &[("material", "cotton")],
                    &[("colour", &["red", "blue", "white"]), ("size", &["M", "L", "XL"])],
                    &[1_999],
                ),
                product(
                    c.tshirts,
                    "Linen T-shirt",
                    "Acme",
                    &[],
                    &[("material", "linen")],
                    &[("size", &["M", "L"])],
                    &[3_999],
                ),
            ]
        },
    },
    DemoShop {
        owner: "demo-tea",
        name: "Demo Tea House",
        description: "Leaf tea from Hangzhou",
        products: |c| {
            vec![
                product(
                    c.tea,
                    "West Lake Longjing 龙井 250g",
                    "Demo Tea",
                    &["special_offer"],
                    &[("origin", "Hangzhou")],
                    &[],
                    &[12_800],
                ),
                product(
                    c.tea,
                    "Tieguanyin Oolong 250g",
                    "Demo Tea",
                    &[],
                    &[("origin", "Anxi")],
                    &[],
                    &[9_800],
                ),
            ]
        },
    },
];

/// A product whose SKUs are every combination of `specs`, priced from
/// `prices` by the first spec's value (the last price repeats).
fn product(
    category_id: i64,
    name: &str,
    brand: &str,
    tags: &[&str],
    attributes: &[(&str, &str)],
    specs: &[(&str, &[&str])],
    prices: &[i64],
) -> serde_json::Value {
    let mut combinations: Vec<Vec<(&str, &str)>> = vec![vec![]];
    for (spec, values) in specs {
        combinations = combinations
            .into_iter()
            .flat_map(|combo| {
                values.iter().map(move |value| {
                    let mut next = combo.clone();
                    next.push((spec, value));
                    next
                })
            })
            .collect();
    }
    let code_prefix: String =
        name.chars().filter(char::is_ascii_alphanumeric).take(10).collect::<String>().to_uppercase();
    let first_values: &[&str] = specs.first().map_or(&[], |(_, values)| values);
    let skus: Vec<serde_json::Value> = combinations
        .iter()
        .enumerate()
        .map(|(i, combo)| {
            let tier = combo.first().and_then(|(_, v)| first_values.iter().position(|f| f == v)).unwrap_or(0);
            let price = prices.get(tier).or(prices.last()).copied().unwrap_or(0);
            let spec_values: serde_json::Map<String, serde_json::Value> =
                combo.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
            json!({
                "spec_values": spec_values,
                "code": format!("{code_prefix}-{}", i + 1),
                "price_cents": price,
                "market_price_cents": price + price / 5,
                "low_stock_threshold": 5
            })
        })
        .collect();
    json!({
        "name": name,
        "description": format!("{name} from {brand}. Demo data."),
        "category_id": category_id,
        "brand": brand,
        "images": [format!("https://img.example.com/demo/{}.jpg", name.len())],
        "tags": tags,
        "attributes": attributes.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "specs": specs.iter().map(|(name, values)| json!({"name": name, "values": values})).collect::<Vec<_>>(),
        "skus": skus
    })
}

async fn category(
    client: &impl GenericClient,
    parent_id: Option<i64>,
    name: &str,
    sort_order: i32,
) -> ApiResult<i64> {
    Ok(categories::insert(client, &CategoryValues { parent_id, name, sort_order }).await?.id)
}

async fn categories(client: &impl GenericClient) -> ApiResult<Categories> {
    let electronics = category(client, None, "Electronics", 1).await?;
    let clothing = category(client, None, "Clothing", 2).await?;
    let food = category(client, None, "Food & Drink", 3).await?;
    Ok(Categories {
        phones: category(client, Some(electronics), "Phones", 1).await?,
        laptops: category(client, Some(electronics), "Laptops", 2).await?,
        tshirts: category(client, Some(clothing), "T-shirts", 1).await?,
        tea: category(client, Some(food), "Tea", 1).await?,
    })
}

async fn merchant(client: &impl GenericClient, auth: &AuthSettings, username: &str) -> ApiResult<i64> {
    if let Some(id) = account::store::find_id_by_username(client, username).await? {
        return Ok(id);
    }
    let hash = password::hash(auth, DEMO_PASSWORD.to_owned()).await?;
    let email = format!("{username}@demo.rs-cms.local");
    let user = account::store::insert_user(client, username, &email, &hash, "active")
        .await
        .map_err(account::service::insert_error)?;
    account::store::grant_role(client, user.id, "member").await?;
    account::store::grant_role(client, user.id, "merchant").await?;
    Ok(user.id)
}

/// Loads the demo data unless it is already there.
pub async fn load(pool: &Pool, auth: &AuthSettings) -> ApiResult<DemoSummary> {
    let merchants = SHOPS.iter().map(|shop| shop.owner).collect();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let exists =
        tx.query_one("SELECT EXISTS (SELECT 1 FROM shops WHERE name = $1)", &[&SHOPS[0].name]).await?;
    if exists.try_get(0)? {
        return Ok(DemoSummary { created: false, shops: 0, products: 0, merchants });
    }
    let categories = categories(&tx).await?;
    let mut created_products = 0;
    for shop in SHOPS {
        let owner = merchant(&tx, auth, shop.owner).await?;
        let profile = ShopProfile {
            name: shop.name,
            description: shop.description,
            logo_url: None,
            contact_name: shop.owner,
            contact_phone: "+86 571 0000 0000",
            return_address: "1 Demo Road, Hangzhou",
        };
        let row = shops::insert_application(&tx, owner, &profile).await?;
        shops::transition(&tx, row.id, &[ShopStatus::Pending], ShopStatus::Active, None, None).await?;
        for body in (shop.products)(&categories) {
            let content: ProductContent = serde_json::from_value(body).map_err(ApiError::internal)?;
            let content = content.normalised();
            content.validate()?;
            let id = products::insert_draft(&tx, row.id, content.category_id, owner).await?;
            products::write_live(&tx, id, row.id, &content).await?;
            let listed = LifecycleChange {
                status: Some(ProductStatus::Listed.as_str()),
                listed_now: true,
                ..Default::default()
            };
            products::change(&tx, id, &listed).await?;
            for (i, sku) in products::skus(&tx, id).await?.iter().enumerate() {
                let movement = Movement {
                    shop_id: row.id,
                    sku_id: sku.id,
                    kind: MovementKind::Adjustment,
                    delta: 20 + 10 * i32::try_from(i % 4).unwrap_or(0),
                    order_id: None,
                    actor_id: Some(owner),
                    reason: "demo opening stock",
                };
                inventory::record(&tx, &movement).await?;
            }
            created_products += 1;
        }
    }
    tx.commit().await?;
    Ok(DemoSummary { created: true, shops: SHOPS.len(), products: created_products, merchants })
}
