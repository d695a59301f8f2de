//! SQL of the menu tree.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::page::Paging;

/// One menu entry.
#[derive(Debug, Clone)]
pub struct MenuRow {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub description: String,
    pub uri: String,
    pub shown: bool,
    pub status: String,
    pub required_permission: Option<String>,
    pub sort_order: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const MENU_COLUMNS: &str = "id, parent_id, name, description, uri, shown, status, required_permission, \
                            sort_order, created_at, updated_at";

impl MenuRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            parent_id: row.try_get("parent_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            uri: row.try_get("uri")?,
            shown: row.try_get("shown")?,
            status: row.try_get("status")?,
            required_permission: row.try_get("required_permission")?,
            sort_order: row.try_get("sort_order")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// The complete values of an entry, as written by insert and update.
pub struct MenuValues<'a> {
    pub parent_id: Option<i64>,
    pub name: &'a str,
    pub description: &'a str,
    pub uri: &'a str,
    pub shown: bool,
    pub status: &'a str,
    pub required_permission: Option<&'a str>,
    pub sort_order: i32,
}

/// One page of entries, roots first, then by sort order.
pub async fn list(
    client: &impl GenericClient,
    paging: Paging,
) -> Result<(Vec<MenuRow>, i64), tokio_postgres::Error> {
    let count = client.prepare_cached("SELECT count(*) FROM menus").await?;
    let total: i64 = client.query_one(&count, &[]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {MENU_COLUMNS} FROM menus ORDER BY parent_id NULLS FIRST, sort_order, id LIMIT $1 OFFSET $2"
        ))
        .await?;
    let rows = client.query(&stmt, &[&paging.limit(), &paging.offset()]).await?;
    Ok((rows.iter().map(MenuRow::from_row).collect::<Result<_, _>>()?, total))
}

/// Every enabled, shown entry, by sort order: the raw material of a tree.
pub async fn list_visible(client: &impl GenericClient) -> Result<Vec<MenuRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {MENU_COLUMNS} FROM menus WHERE status = 'enabled' AND shown ORDER BY sort_order, id"
        ))
        .await?;
    client.query(&stmt, &[]).await?.iter().map(MenuRow::from_row).collect()
}

/// One entry.
pub async fn find(client: &impl GenericClient, id: i64) -> Result<Option<MenuRow>, tokio_postgres::Error> {
    let stmt = client.prepare_cached(&format!("SELECT {MENU_COLUMNS} FROM menus WHERE id = $1")).await?;
    client.query_opt(&stmt, &[&id]).await?.map(|row| MenuRow::from_row(&row)).transpose()
}

/// Inserts an entry.
pub async fn insert(
    client: &impl GenericClient,
    values: &MenuValues<'_>,
    actor_id: i64,
) -> Result<MenuRow, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO menus (parent_id, name, description, uri, shown, status, required_permission, sort_order,
                                created_by, updated_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {MENU_COLUMNS}"
        ))
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &values.parent_id,
                &values.name,
                &values.description,
                &values.uri,
                &values.shown,
                &values.status,
                &values.required_permission,
                &values.sort_order,
                &actor_id,
            ],
        )
        .await?;
    MenuRow::from_row(&row)
}

/// Overwrites an entry.
pub async fn update(
    client: &impl GenericClient,
    id: i64,
    values: &MenuValues<'_>,
    actor_id: i64,
) -> Result<MenuRow, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE menus SET parent_id = $2, name = $3, description = $4, uri = $5, shown = $6, status = $7,
                 required_permission = $8, sort_order = $9, updated_by = $10, updated_at = now()
             WHERE id = $1 RETURNING {MENU_COLUMNS}"
        ))
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &id,
                &values.parent_id,
                &values.name,
                &values.description,
                &values.uri,
                &values.shown,
                &values.status,
                &values.required_permission,
                &values.sort_order,
                &actor_id,
            ],
        )
        .await?;
    MenuRow::from_row(&row)
}

/// Deletes an entry and (by cascade) its subtree; `false` if there was none.
pub async fn delete(client: &impl GenericClient, id: i64) -> Result<bool, tokio_postgres::Error> {
    let stmt = client.prepare_cached("DELETE FROM menus WHERE id = $1").await?;
    Ok(client.execute(&stmt, &[&id]).await? == 1)
}

/// Whether `candidate` is `id` itself or lies in its subtree (so making it
/// `id`'s parent would close a cycle).
pub async fn in_subtree(
    client: &impl GenericClient,
    id: i64,
    candidate: i64,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "WITH RECURSIVE sub AS (
                 SELECT id FROM menus WHERE id = $1
                 UNION SELECT m.id FROM menus m JOIN sub ON m.parent_id = sub.id
             )
             SELECT EXISTS (SELECT 1 FROM sub WHERE id = $2)",
        )
        .await?;
    client.query_one(&stmt, &[&id, &candidate]).await?.try_get(0)
}
