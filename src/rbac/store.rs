//! SQL of roles, groups and grants.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::page::Paging;

/// A role and its permissions.
#[derive(Debug)]
pub struct RoleRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub builtin: bool,
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ROLE_COLUMNS: &str = "r.id, r.name, r.description, r.builtin, r.created_at, r.updated_at,
    ARRAY(SELECT rp.permission FROM role_permissions rp WHERE rp.role_id = r.id ORDER BY rp.permission) AS permissions";

impl RoleRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            builtin: row.try_get("builtin")?,
            permissions: row.try_get("permissions")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// One page of roles by id.
pub async fn list_roles(
    client: &impl GenericClient,
    paging: Paging,
) -> Result<(Vec<RoleRow>, i64), tokio_postgres::Error> {
    let count = client.prepare_cached("SELECT count(*) FROM roles").await?;
    let total: i64 = client.query_one(&count, &[]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!("SELECT {ROLE_COLUMNS} FROM roles r ORDER BY r.id LIMIT $1 OFFSET $2"))
        .await?;
    let rows = client.query(&stmt, &[&paging.limit(), &paging.offset()]).await?;
    Ok((rows.iter().map(RoleRow::from_row).collect::<Result<_, _>>()?, total))
}

/// One role, locked for update when inside a transaction.
pub async fn find_role(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<RoleRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!("SELECT {ROLE_COLUMNS} FROM roles r WHERE r.id = $1 FOR UPDATE"))
        .await?;
    client.query_opt(&stmt, &[&id]).await?.map(|row| RoleRow::from_row(&row)).transpose()
}

/// Inserts a custom role; `None` when the name is taken.
pub async fn insert_role(
    client: &impl GenericClient,
    name: &str,
    description: &str,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO roles (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .await?;
    client.query_opt(&stmt, &[&name, &description]).await?.map(|row| row.try_get(0)).transpose()
}

/// Renames or redescribes a role; `Ok(false)` when the new name is taken.
pub async fn update_role(
    client: &impl GenericClient,
    id: i64,
    name: &str,
    description: &str,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "UPDATE roles SET name = $2, description = $3, updated_at = now() WHERE id = $1
             AND NOT EXISTS (SELECT 1 FROM roles o WHERE o.name = $2 AND o.id <> $1)",
        )
        .await?;
    Ok(client.execute(&stmt, &[&id, &name, &description]).await? == 1)
}

/// Replaces a role's permission set.
pub async fn set_permissions(
    client: &impl GenericClient,
    role_id: i64,
    permissions: &[String],
) -> Result<(), tokio_postgres::Error> {
    let clear = client.prepare_cached("DELETE FROM role_permissions WHERE role_id = $1").await?;
    client.execute(&clear, &[&role_id]).await?;
    let insert = client
        .prepare_cached(
            "INSERT INTO role_permissions (role_id, permission) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        )
        .await?;
    client.execute(&insert, &[&role_id, &permissions]).await?;
    Ok(())
}

/// Deletes a role (grants go with it).
pub async fn delete_role(client: &impl GenericClient, id: i64) -> Result<(), tokio_postgres::Error> {
    let stmt = client.prepare_cached("DELETE FROM roles WHERE id = $1").await?;
    client.execute(&stmt, &[&id]).await?;
    Ok(())
}

/// Grants a role to a user; `false` when it was already held.
pub async fn grant_user_role(
    client: &impl GenericClient,
    user_id: i64,
    role_id: i64,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached("INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .await?;
    Ok(client.execute(&stmt, &[&user_id, &role_id]).await? == 1)
}

/// Revokes a directly granted role; `false` when it was not held.
pub async fn revoke_user_role(
    client: &impl GenericClient,
    user_id: i64,
    role_id: i64,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client.prepare_cached("DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2").await?;
    Ok(client.execute(&stmt, &[&user_id, &role_id]).await? == 1)
}

/// A group with its roles and member count.
#[derive(Debug)]
pub struct GroupRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub roles: Vec<String>,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
}

const GROUP_COLUMNS: &str = "g.id, g.name, g.description, g.created_at,
    ARRAY(SELECT r.name FROM group_roles gr JOIN roles r ON r.id = gr.role_id WHERE gr.group_id = g.id ORDER BY r.name) AS roles,
    (SELECT count(*) FROM group_members gm WHERE gm.group_id = g.id) AS member_count";

impl GroupRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            roles: row.try_get("roles")?,
            member_count: row.try_get("member_count")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// One page of groups by id.
pub async fn list_groups(
    client: &impl GenericClient,
    paging: Paging,
) -> Result<(Vec<GroupRow>, i64), tokio_postgres::Error> {
    let count = client.prepare_cached("SELECT count(*) FROM user_groups").await?;
    let total: i64 = client.query_one(&count, &[]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {GROUP_COLUMNS} FROM user_groups g ORDER BY g.id LIMIT $1 OFFSET $2"
        ))
        .await?;
    let rows = client.query(&stmt, &[&paging.limit(), &paging.offset()]).await?;
    Ok((rows.iter().map(GroupRow::from_row).collect::<Result<_, _>>()?, total))
}

/// One group.
pub async fn find_group(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<GroupRow>, tokio_postgres::Error> {
    let stmt =
        client.prepare_cached(&format!("SELECT {GROUP_COLUMNS} FROM user_groups g WHERE g.id = $1")).await?;
    client.query_opt(&stmt, &[&id]).await?.map(|row| GroupRow::from_row(&row)).transpose()
}

/// The permissions of the role named `name` (none if there is no such role).
pub async fn named_role_permissions(
    client: &impl GenericClient,
    name: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT rp.permission FROM role_permissions rp JOIN roles r ON r.id = rp.role_id WHERE r.name = $1",
        )
        .await?;
    Ok(client.query(&stmt, &[&name]).await?.iter().map(|row| row.get(0)).collect())
}

/// Every permission the roles of a group grant (what its members get).
pub async fn group_permissions(
    client: &impl GenericClient,
    group_id: i64,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT DISTINCT rp.permission FROM group_roles gr
             JOIN role_permissions rp ON rp.role_id = gr.role_id WHERE gr.group_id = $1",
        )
        .await?;
    Ok(client.query(&stmt, &[&group_id]).await?.iter().map(|row| row.get(0)).collect())
}

/// Inserts a group; `None` when the name is taken.
pub async fn insert_group(
    client: &impl GenericClient,
    name: &str,
    description: &str,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO user_groups (name, description) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .await?;
    client.query_opt(&stmt, &[&name, &description]).await?.map(|row| row.try_get(0)).transpose()
}

/// Renames or redescribes a group; `Ok(false)` when the new name is taken.
pub async fn update_group(
    client: &impl GenericClient,
    id: i64,
    name: &str,
    description: &str,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "UPDATE user_groups SET name = $2, description = $3 WHERE id = $1
             AND NOT EXISTS (SELECT 1 FROM user_groups o WHERE o.name = $2 AND o.id <> $1)",
        )
        .await?;
    Ok(client.execute(&stmt, &[&id, &name, &description]).await? == 1)
}

/// Deletes a group, returning its members (whose permissions may shrink).
pub async fn delete_group(client: &impl GenericClient, id: i64) -> Result<Vec<i64>, tokio_postgres::Error> {
    let members = client.prepare_cached("SELECT user_id FROM group_members WHERE group_id = $1").await?;
    let ids =
        client.query(&members, &[&id]).await?.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
    let stmt = client.prepare_cached("DELETE FROM user_groups WHERE id = $1").await?;
    client.execute(&stmt, &[&id]).await?;
    Ok(ids)
}

/// A group member.
#[derive(Debug)]
pub struct MemberRow {
    pub user_id: i64,
    pub username: String,
}

/// One page of a group's members by user id.
pub async fn list_group_members(
    client: &impl GenericClient,
    group_id: i64,
    paging: Paging,
) -> Result<(Vec<MemberRow>, i64), tokio_postgres::Error> {
    let count = client.prepare_cached("SELECT count(*) FROM group_members WHERE group_id = $1").await?;
    let total: i64 = client.query_one(&count, &[&group_id]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(
            "SELECT u.id, u.username FROM group_members gm JOIN users u ON u.id = gm.user_id
             WHERE gm.group_id = $1 ORDER BY u.id LIMIT $2 OFFSET $3",
        )
        .await?;
    let rows = client.query(&stmt, &[&group_id, &paging.limit(), &paging.offset()]).await?;
    let items = rows
        .iter()
        .map(|row| Ok(MemberRow { user_id: row.try_get("id")?, username: row.try_get("username")? }))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok((items, total))
}

/// Adds or removes a group member (`add`); `false` when nothing changed.
pub async fn set_group_member(
    client: &impl GenericClient,
    group_id: i64,
    user_id: i64,
    add: bool,
) -> Result<bool, tokio_postgres::Error> {
    let sql = if add {
        "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2"
    };
    let stmt = client.prepare_cached(sql).await?;
    Ok(client.execute(&stmt, &[&group_id, &user_id]).await? == 1)
}

/// Grants or revokes a group role (`add`); `false` when nothing changed.
pub async fn set_group_role(
    client: &impl GenericClient,
    group_id: i64,
    role_id: i64,
    add: bool,
) -> Result<bool, tokio_postgres::Error> {
    let sql = if add {
        "INSERT INTO group_roles (group_id, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM group_roles WHERE group_id = $1 AND role_id = $2"
    };
    let stmt = client.prepare_cached(sql).await?;
    Ok(client.execute(&stmt, &[&group_id, &role_id]).await? == 1)
}
