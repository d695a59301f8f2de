//! SQL of the category tree.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

/// One category.
#[derive(Debug, Clone)]
pub struct CategoryRow {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub sort_order: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const CATEGORY_COLUMNS: &str = "id, parent_id, name, sort_order, created_at, updated_at";

impl CategoryRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            parent_id: row.try_get("parent_id")?,
            name: row.try_get("name")?,
            sort_order: row.try_get("sort_order")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// The complete values of a category, as written by insert and update.
pub struct CategoryValues<'a> {
    pub parent_id: Option<i64>,
    pub name: &'a str,
    pub sort_order: i32,
}

/// A subquery selecting the id of the category given by the placeholder
/// `root` (e.g. `$3`) and of every category under it. Product search puts
/// it in `category_id IN (...)`, so a filter on a category covers its whole
/// subtree in the same statement.
pub fn subtree_sql(root: &str) -> String {
    format!(
        "WITH RECURSIVE subtree AS (
             SELECT id FROM categories WHERE id = {root}
             UNION SELECT c.id FROM categories c JOIN subtree s ON c.parent_id = s.id
         ) SELECT id FROM subtree"
    )
}

/// The ids of `id` and of every category under it (empty if `id` does not exist).
pub async fn descendant_ids(client: &impl GenericClient, id: i64) -> Result<Vec<i64>, tokio_postgres::Error> {
    let stmt = client.prepare_cached(&subtree_sql("$1")).await?;
    client.query(&stmt, &[&id]).await?.iter().map(|row| row.try_get(0)).collect()
}

/// Every category, siblings by sort order then id: the raw material of the tree.
pub async fn list_all(client: &impl GenericClient) -> Result<Vec<CategoryRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!("SELECT {CATEGORY_COLUMNS} FROM categories ORDER BY sort_order, id"))
        .await?;
    client.query(&stmt, &[]).await?.iter().map(CategoryRow::from_row).collect()
}

/// One category.
pub async fn find(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<CategoryRow>, tokio_postgres::Error> {
    let stmt =
        client.prepare_cached(&format!("SELECT {CATEGORY_COLUMNS} FROM categories WHERE id = $1")).await?;
    client.query_opt(&stmt, &[&id]).await?.map(|row| CategoryRow::from_row(&row)).transpose()
}

/// One category, locked until the transaction ends: no product can be
/// filed under it meanwhile (a product insert waits for the lock).
pub async fn lock(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<CategoryRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!("SELECT {CATEGORY_COLUMNS} FROM categories WHERE id = $1 FOR UPDATE"))
        .await?;
    client.query_opt(&stmt, &[&id]).await?.map(|row| CategoryRow::from_row(&row)).transpose()
}

/// Serialises category writes until the transaction ends (reads go on).
/// They are rare, and one at a time closes every race between them: two
/// crossing moves that would make a cycle, a child added under a category
/// being deleted, two siblings given the same name.
pub async fn lock_tree(client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("LOCK TABLE categories IN SHARE ROW EXCLUSIVE MODE").await
}

/// Whether a sibling under `parent_id` other than `except` has this name,
/// ignoring case.
pub async fn name_taken(
    client: &impl GenericClient,
    parent_id: Option<i64>,
    name: &str,
    except: Option<i64>,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM categories WHERE COALESCE(parent_id, 0) = COALESCE($1::int8, 0)
                 AND lower(name) = lower($2) AND id IS DISTINCT FROM $3)",
        )
        .await?;
    client.query_one(&stmt, &[&parent_id, &name, &except]).await?.try_get(0)
}

/// What still hangs off a category: subcategories and products (in any status).
pub struct Dependents {
    pub children: i64,
    pub products: i64,
}

/// Counts a category's subcategories and products (a pending revision
/// filed under it counts too: approving it must not find the category gone).
pub async fn dependents(client: &impl GenericClient, id: i64) -> Result<Dependents, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT (SELECT count(*) FROM categories WHERE parent_id = $1) AS children,
                    (SELECT count(*) FROM products
                     WHERE category_id = $1 OR (pending_content->>'category_id')::int8 = $1) AS products",
        )
        .await?;
    let row = client.query_one(&stmt, &[&id]).await?;
    Ok(Dependents { children: row.try_get("children")?, products: row.try_get("products")? })
}

/// Inserts a category.
pub async fn insert(
    client: &impl GenericClient,
    values: &CategoryValues<'_>,
) -> Result<CategoryRow, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO categories (parent_id, name, sort_order) VALUES ($1, $2, $3) RETURNING {CATEGORY_COLUMNS}"
        ))
        .await?;
    let row = client.query_one(&stmt, &[&values.parent_id, &values.name, &values.sort_order]).await?;
    CategoryRow::from_row(&row)
}

/// Overwrites a category.
pub async fn update(
    client: &impl GenericClient,
    id: i64,
    values: &CategoryValues<'_>,
) -> Result<CategoryRow, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE categories SET parent_id = $2, name = $3, sort_order = $4, updated_at = now()
             WHERE id = $1 RETURNING {CATEGORY_COLUMNS}"
        ))
        .await?;
    let row = client.query_one(&stmt, &[&id, &values.parent_id, &values.name, &values.sort_order]).await?;
    CategoryRow::from_row(&row)
}

/// Deletes a category that nothing hangs off.
pub async fn delete(client: &impl GenericClient, id: i64) -> Result<(), tokio_postgres::Error> {
    let stmt = client.prepare_cached("DELETE FROM categories WHERE id = $1").await?;
    client.execute(&stmt, &[&id]).await?;
    Ok(())
}
