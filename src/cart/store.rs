//! SQL of carts: the group-commit batch of cart changes, loading a cart to
//! rebuild its actor, and the SKUs behind cart lines.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use actors::cart::{CartLine, CartSnapshot, CartWrite, CartWriteOutcome, LineWrite};
use actors::writer::BatchStore;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use serde_json::Value;
use tokio_postgres::Row;

use crate::product::content::Audience;
use crate::storefront::store::ON_SALE;

/// Writes group-commit batches of cart changes into Postgres.
///
/// A whole batch is ONE upsert in one transaction. A line is
/// stored only if its version is newer than the stored one, so a late write
/// never rolls a line back, and only if the stored one is no newer than the
/// writing actor expected, so an actor on one node never overwrites a
/// change made on another that it has not seen; a removed line is stored
/// as a tombstone (quantity 0). A user's write is all or nothing: if one of
/// its lines loses, none is stored. Rows are de-duplicated per (user, SKU),
/// keeping the highest version (Postgres refuses to update one row twice in
/// one statement), and sorted, so concurrent batches lock rows in the same
/// order.
#[derive(Clone)]
pub struct PgCartLines {
    pool: Pool,
}

impl PgCartLines {
    /// A store writing through `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

const WRITE_BATCH_SQL: &str = "
INSERT INTO cart_lines AS c (user_id, sku_id, quantity, selected, added_price_cents, version, added_at, updated_at)
SELECT user_id, sku_id, quantity, selected, added_price_cents, version, added_at, now()
FROM unnest($1::int8[], $2::int8[], $3::int4[], $4::bool[], $5::int8[], $6::int8[], $7::timestamptz[])
    AS x (user_id, sku_id, quantity, selected, added_price_cents, version, added_at)
ON CONFLICT (user_id, sku_id) DO UPDATE SET
    quantity = EXCLUDED.quantity, selected = EXCLUDED.selected,
    added_price_cents = EXCLUDED.added_price_cents, version = EXCLUDED.version,
    added_at = EXCLUDED.added_at, updated_at = now()
WHERE c.version < EXCLUDED.version
  AND c.version <= ($8::jsonb ->> (c.user_id || ' ' || c.sku_id))::int8
RETURNING user_id, sku_id";

impl BatchStore for PgCartLines {
    type Item = CartWrite;
    type Outcome = CartWriteOutcome;

    async fn write_batch(&self, items: &[CartWrite]) -> Result<Vec<CartWriteOutcome>, String> {
        let mut rows: Vec<(i64, &LineWrite)> =
            items.iter().flat_map(|item| item.lines.iter().map(move |line| (item.user_id, line))).collect();
        rows.sort_by(|(a_user, a), (b_user, b)| {
            (a_user, a.line.sku_id).cmp(&(b_user, b.line.sku_id)).then(b.line.version.cmp(&a.line.version))
        });
        rows.dedup_by_key(|(user_id, write)| (*user_id, write.line.sku_id));
        let mut client = self.pool.get().await.map_err(|e| format!("no connection: {e}"))?;
        let err = |e: tokio_postgres::Error| format!("{e:#}");
        // Users left out of the batch: a line of theirs lost to a newer
        // version. A write is all or nothing (its callers are told it
        // failed, and retry), so a batch that stored part of one user's
        // lines is rolled back and written again without that user.
        let mut left_out: HashSet<i64> = HashSet::new();
        for _ in 0..WRITE_ATTEMPTS {
            let columns = LineColumns::new(rows.iter().filter(|(user_id, _)| !left_out.contains(user_id)));
            let tx = client.transaction().await.map_err(err)?;
            let stmt = tx.prepare_cached(WRITE_BATCH_SQL).await.map_err(err)?;
            let stored: HashSet<(i64, i64)> = tx
                .query(&stmt, &columns.params())
                .await
                .map_err(err)?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<_, tokio_postgres::Error>>()
                .map_err(err)?;
            let all_stored = |item: &CartWrite| {
                item.lines.iter().all(|write| stored.contains(&(item.user_id, write.line.sku_id)))
            };
            let lost: Vec<i64> = items
                .iter()
                .filter(|item| !left_out.contains(&item.user_id) && !all_stored(item))
                .map(|item| item.user_id)
                .collect();
            if !lost.is_empty() {
                left_out.extend(lost);
                continue;
            }
            tx.commit().await.map_err(err)?;
            // A user left out lost a line to a newer stored version: its
            // actor is stale.
            return Ok(items
                .iter()
                .map(|item| {
                    if left_out.contains(&item.user_id) {
                        CartWriteOutcome::Superseded
                    } else {
                        CartWriteOutcome::Committed
                    }
                })
                .collect());
        }
        Err(format!("cart lines kept changing under {WRITE_ATTEMPTS} attempts"))
    }
}

/// Attempts at a batch whose users keep losing lines to other nodes
/// meanwhile; then the whole batch fails (nothing of it stored).
const WRITE_ATTEMPTS: usize = 3;

/// The columns of a batch's lines, for `unnest`.
struct LineColumns {
    user_id: Vec<i64>,
    sku_id: Vec<i64>,
    quantity: Vec<i32>,
    selected: Vec<bool>,
    added_price: Vec<i64>,
    version: Vec<i64>,
    added_at: Vec<DateTime<Utc>>,
    /// The version each line's writer expects stored: a JSON object
    /// ("{user} {sku}" -> version), looked up per updated row, is a binary
    /// search where a second unnest would be a scan per row.
    expected: Value,
}

impl LineColumns {
    fn new<'a>(rows: impl Iterator<Item = &'a (i64, &'a LineWrite)>) -> Self {
        let mut columns = Self {
            user_id: Vec::new(),
            sku_id: Vec::new(),
            quantity: Vec::new(),
            selected: Vec::new(),
            added_price: Vec::new(),
            version: Vec::new(),
            added_at: Vec::new(),
            expected: Value::Null,
        };
        let mut expected = serde_json::Map::new();
        for (user, LineWrite { line, expected: replaces }) in rows {
            columns.user_id.push(*user);
            columns.sku_id.push(line.sku_id);
            columns.quantity.push(i32::try_from(line.quantity).unwrap_or(i32::MAX));
            columns.selected.push(line.selected);
            columns.added_price.push(line.added_price_cents);
            columns.version.push(line.version);
            columns.added_at.push(DateTime::<Utc>::from(line.added_at));
            expected.insert(format!("{user} {}", line.sku_id), Value::from(*replaces));
        }
        columns.expected = Value::Object(expected);
        columns
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 8] {
        [
            &self.user_id,
            &self.sku_id,
            &self.quantity,
            &self.selected,
            &self.added_price,
            &self.version,
            &self.added_at,
            &self.expected,
        ]
    }
}

/// A user's cart as stored: its live lines, and the highest version of any
/// of its rows (tombstones included), where the actor's counter resumes.
/// One statement, so both come from one snapshot.
pub async fn load(client: &impl GenericClient, user_id: i64) -> Result<CartSnapshot, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT top.version AS top, l.sku_id, l.quantity, l.selected, l.added_price_cents, l.added_at, l.version
             FROM (SELECT COALESCE(max(version), 0) AS version FROM cart_lines WHERE user_id = $1) top
             LEFT JOIN cart_lines l ON l.user_id = $1 AND l.quantity > 0",
        )
        .await?;
    let rows = client.query(&stmt, &[&user_id]).await?;
    let mut snapshot = CartSnapshot::default();
    for row in &rows {
        snapshot.version = row.try_get("top")?;
        // The one row of an empty cart carries no line.
        let Some(sku_id) = row.try_get("sku_id")? else { continue };
        let quantity: i32 = row.try_get("quantity")?;
        let added_at: DateTime<Utc> = row.try_get("added_at")?;
        snapshot.lines.push(CartLine {
            sku_id,
            quantity: u32::try_from(quantity).unwrap_or(0),
            selected: row.try_get("selected")?,
            added_price_cents: row.try_get("added_price_cents")?,
            added_at: SystemTime::from(added_at),
            version: row.try_get("version")?,
        });
    }
    Ok(snapshot)
}

/// A SKU as a cart shows it: its product and shop, price, stock and
/// whether it can be bought.
#[derive(Debug)]
pub struct CartSku {
    pub sku_id: i64,
    pub product_id: i64,
    pub product_name: String,
    pub spec_values: BTreeMap<String, String>,
    /// The product's first image.
    pub image: Option<String>,
    pub shop_id: i64,
    pub shop_name: String,
    pub price_cents: i64,
    pub stock: i32,
    /// False once an approved revision dropped the SKU.
    pub active: bool,
    /// The product is listed and its shop active.
    pub on_sale: bool,
    /// `anyone` or `members_only`.
    pub audience: String,
}

impl CartSku {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        let spec_values: Value = row.try_get("spec_values")?;
        Ok(Self {
            sku_id: row.try_get("sku_id")?,
            product_id: row.try_get("product_id")?,
            product_name: row.try_get("product_name")?,
            spec_values: serde_json::from_value(spec_values).unwrap_or_default(),
            image: row.try_get("image")?,
            shop_id: row.try_get("shop_id")?,
            shop_name: row.try_get("shop_name")?,
            price_cents: row.try_get("price_cents")?,
            stock: row.try_get("stock")?,
            active: row.try_get("active")?,
            on_sale: row.try_get("on_sale")?,
            audience: row.try_get("audience")?,
        })
    }

    /// Only verified members may buy it.
    pub fn members_only(&self) -> bool {
        self.audience == Audience::MembersOnly.as_str()
    }
}

/// The SKUs `sku_ids` (unknown ids are left out), in one statement.
pub async fn skus(
    client: &impl GenericClient,
    sku_ids: &[i64],
) -> Result<Vec<CartSku>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT k.id AS sku_id, k.product_id, p.name AS product_name, k.spec_values, p.images[1] AS image,
                    p.shop_id, s.name AS shop_name, k.price_cents, k.stock, k.active, ({ON_SALE}) AS on_sale,
                    p.audience
             FROM skus k JOIN products p ON p.id = k.product_id JOIN shops s ON s.id = p.shop_id
             WHERE k.id = ANY($1)"
        ))
        .await?;
    client.query(&stmt, &[&sku_ids]).await?.iter().map(CartSku::from_row).collect()
}
