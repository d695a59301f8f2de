//! SQL of the inventory ledger. A SKU's stock changes only here, and only
//! together with its movement row, in one conditional statement: there is
//! no read-modify-write, and a decrement below zero writes nothing.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::page::Paging;
use crate::product::store::{SkuRow, SKU_COLUMNS};

/// Most units one SKU may hold: keeps `stock + delta` far from `INT`
/// overflow whatever the movement.
pub const MAX_STOCK: i32 = 1_000_000_000;

/// Why stock moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovementKind {
    /// A merchant's correction or restock.
    Adjustment,
    /// Held for an unpaid order.
    Reservation,
    /// Sold outright.
    Sale,
    /// A reservation given back (cancelled or expired order).
    Release,
    /// Goods returned by a shopper.
    Return,
}

impl MovementKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adjustment => "adjustment",
            Self::Reservation => "reservation",
            Self::Sale => "sale",
            Self::Release => "release",
            Self::Return => "return",
        }
    }

    /// The kind stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Adjustment, Self::Reservation, Self::Sale, Self::Release, Self::Return]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// One recorded change of a SKU's stock.
#[derive(Debug)]
pub struct MovementRow {
    pub id: i64,
    pub sku_id: i64,
    pub product_id: i64,
    pub kind: String,
    pub delta: i32,
    pub stock_after: i32,
    pub order_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

impl MovementRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            sku_id: row.try_get("sku_id")?,
            product_id: row.try_get("product_id")?,
            kind: row.try_get("kind")?,
            delta: row.try_get("delta")?,
            stock_after: row.try_get("stock_after")?,
            order_id: row.try_get("order_id")?,
            actor_id: row.try_get("actor_id")?,
            reason: row.try_get("reason")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// A stock change to record.
pub struct Movement<'a> {
    pub shop_id: i64,
    pub sku_id: i64,
    pub kind: MovementKind,
    /// Units added (positive) or taken (negative); never zero.
    pub delta: i32,
    pub order_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub reason: &'a str,
}

/// Moves stock and records the movement in one statement. `None` when the
/// SKU is not the shop's or the stock would leave `0..=MAX_STOCK` (nothing
/// is written then).
pub async fn record(
    client: &impl GenericClient,
    movement: &Movement<'_>,
) -> Result<Option<MovementRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "WITH moved AS (
                 UPDATE skus SET stock = stock + $3, updated_at = now()
                 WHERE id = $1 AND shop_id = $2 AND stock::int8 + $3::int4 BETWEEN 0 AND 1000000000
                 RETURNING id, product_id, shop_id, stock
             ), recorded AS (
                 INSERT INTO inventory_movements (sku_id, shop_id, kind, delta, stock_after, order_id, actor_id, reason)
                 SELECT id, shop_id, $4, $3, stock, $5, $6, $7 FROM moved
                 RETURNING *
             )
             SELECT r.id, r.sku_id, m.product_id, r.kind, r.delta, r.stock_after, r.order_id, r.actor_id,
                    r.reason, r.created_at
             FROM recorded r JOIN moved m ON m.id = r.sku_id",
        )
        .await?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &movement.sku_id,
                &movement.shop_id,
                &movement.delta,
                &movement.kind.as_str(),
                &movement.order_id,
                &movement.actor_id,
                &movement.reason,
            ],
        )
        .await?;
    row.map(|row| MovementRow::from_row(&row)).transpose()
}

/// A SKU's current stock, if it is the shop's.
pub async fn stock_of(
    client: &impl GenericClient,
    shop_id: i64,
    sku_id: i64,
) -> Result<Option<i32>, tokio_postgres::Error> {
    let stmt = client.prepare_cached("SELECT stock FROM skus WHERE id = $1 AND shop_id = $2").await?;
    client.query_opt(&stmt, &[&sku_id, &shop_id]).await?.map(|row| row.try_get(0)).transpose()
}

/// Filters of the movement list.
pub struct MovementFilter<'a> {
    pub sku_id: Option<i64>,
    pub kind: Option<&'a str>,
}

/// One page of a shop's movements, newest first.
pub async fn list(
    client: &impl GenericClient,
    shop_id: i64,
    filter: &MovementFilter<'_>,
    paging: Paging,
) -> Result<(Vec<MovementRow>, i64), tokio_postgres::Error> {
    const CONDITION: &str =
        "i.shop_id = $1 AND ($2::int8 IS NULL OR i.sku_id = $2) AND ($3::text IS NULL OR i.kind = $3)";
    let count = client
        .prepare_cached(&format!("SELECT count(*) FROM inventory_movements i WHERE {CONDITION}"))
        .await?;
    let total: i64 = client.query_one(&count, &[&shop_id, &filter.sku_id, &filter.kind]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT i.id, i.sku_id, s.product_id, i.kind, i.delta, i.stock_after, i.order_id, i.actor_id,
                    i.reason, i.created_at
             FROM inventory_movements i JOIN skus s ON s.id = i.sku_id
             WHERE {CONDITION} ORDER BY i.id DESC LIMIT $4 OFFSET $5"
        ))
        .await?;
    let rows = client
        .query(&stmt, &[&shop_id, &filter.sku_id, &filter.kind, &paging.limit(), &paging.offset()])
        .await?;
    Ok((rows.iter().map(MovementRow::from_row).collect::<Result<_, _>>()?, total))
}

/// One page of the shop's active SKUs at or below their low-stock
/// threshold, emptiest first.
pub async fn low_stock(
    client: &impl GenericClient,
    shop_id: i64,
    paging: Paging,
) -> Result<(Vec<SkuRow>, i64), tokio_postgres::Error> {
    const CONDITION: &str = "shop_id = $1 AND active AND stock <= low_stock_threshold";
    let count = client.prepare_cached(&format!("SELECT count(*) FROM skus WHERE {CONDITION}")).await?;
    let total: i64 = client.query_one(&count, &[&shop_id]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {SKU_COLUMNS} FROM skus WHERE {CONDITION} ORDER BY stock, id LIMIT $2 OFFSET $3"
        ))
        .await?;
    let rows = client.query(&stmt, &[&shop_id, &paging.limit(), &paging.offset()]).await?;
    Ok((rows.iter().map(SkuRow::from_row).collect::<Result<_, _>>()?, total))
}
