//! SQL of shops and their staff.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::db;
use crate::page::Paging;

/// Where a shop stands with the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShopStatus {
    /// Applied for, awaiting review.
    Pending,
    /// Open: its listed products are on the storefront.
    Active,
    Rejected,
    /// Closed by operators; its products leave the storefront.
    Suspended,
}

impl ShopStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Rejected => "rejected",
            Self::Suspended => "suspended",
        }
    }

    /// The status stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Pending, Self::Active, Self::Rejected, Self::Suspended]
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// One shop.
#[derive(Debug)]
pub struct ShopRow {
    pub id: i64,
    pub owner_id: i64,
    pub name: String,
    pub description: String,
    pub logo_url: Option<String>,
    pub contact_name: String,
    pub contact_phone: String,
    pub return_address: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub reviewed_by: Option<i64>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SHOP_COLUMNS: &str = "s.id, s.owner_id, s.name, s.description, s.logo_url, s.contact_name, \
     s.contact_phone, s.return_address, s.status, s.status_reason, s.reviewed_by, s.reviewed_at, \
     s.created_at, s.updated_at";

impl ShopRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            owner_id: row.try_get("owner_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            logo_url: row.try_get("logo_url")?,
            contact_name: row.try_get("contact_name")?,
            contact_phone: row.try_get("contact_phone")?,
            return_address: row.try_get("return_address")?,
            status: row.try_get("status")?,
            status_reason: row.try_get("status_reason")?,
            reviewed_by: row.try_get("reviewed_by")?,
            reviewed_at: row.try_get("reviewed_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// The editable profile of a shop, as applied for or changed.
pub struct ShopProfile<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub logo_url: Option<&'a str>,
    pub contact_name: &'a str,
    pub contact_phone: &'a str,
    pub return_address: &'a str,
}

/// Inserts a pending application and its owner as accepted staff.
pub async fn insert_application(
    client: &impl GenericClient,
    owner_id: i64,
    profile: &ShopProfile<'_>,
) -> Result<ShopRow, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "WITH s AS (
                 INSERT INTO shops (owner_id, name, description, logo_url, contact_name, contact_phone, return_address)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *
             ), owner AS (
                 INSERT INTO shop_members (shop_id, user_id, role, accepted_at)
                 SELECT id, owner_id, 'owner', now() FROM s
             )
             SELECT {SHOP_COLUMNS} FROM s"
        ))
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &owner_id,
                &profile.name,
                &profile.description,
                &profile.logo_url,
                &profile.contact_name,
                &profile.contact_phone,
                &profile.return_address,
            ],
        )
        .await?;
    ShopRow::from_row(&row)
}

/// Replaces a shop's profile.
pub async fn update_profile(
    client: &impl GenericClient,
    shop_id: i64,
    profile: &ShopProfile<'_>,
) -> Result<Option<ShopRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE shops s SET name = $2, description = $3, logo_url = $4, contact_name = $5,
                 contact_phone = $6, return_address = $7, updated_at = now()
             WHERE id = $1 RETURNING {SHOP_COLUMNS}"
        ))
        .await?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &shop_id,
                &profile.name,
                &profile.description,
                &profile.logo_url,
                &profile.contact_name,
                &profile.contact_phone,
                &profile.return_address,
            ],
        )
        .await?;
    row.map(|row| ShopRow::from_row(&row)).transpose()
}

/// One shop by id.
pub async fn find(
    client: &impl GenericClient,
    shop_id: i64,
) -> Result<Option<ShopRow>, tokio_postgres::Error> {
    let stmt = client.prepare_cached(&format!("SELECT {SHOP_COLUMNS} FROM shops s WHERE s.id = $1")).await?;
    client.query_opt(&stmt, &[&shop_id]).await?.map(|row| ShopRow::from_row(&row)).transpose()
}

/// Moves a shop from one of `from` to `to`, recording who and why.
/// `None` when the shop is unknown or in none of `from`.
pub async fn transition(
    client: &impl GenericClient,
    shop_id: i64,
    from: &[ShopStatus],
    to: ShopStatus,
    reason: Option<&str>,
    reviewer: Option<i64>,
) -> Result<Option<ShopRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE shops s SET status = $3, status_reason = $4, reviewed_by = $5, reviewed_at = now(),
                 updated_at = now()
             WHERE id = $1 AND status = ANY($2) RETURNING {SHOP_COLUMNS}"
        ))
        .await?;
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let row = client.query_opt(&stmt, &[&shop_id, &from, &to.as_str(), &reason, &reviewer]).await?;
    row.map(|row| ShopRow::from_row(&row)).transpose()
}

/// Filters of the operators' shop list.
pub struct ShopFilter<'a> {
    pub status: Option<&'a str>,
    /// Case-insensitive substring of the name.
    pub name: Option<&'a str>,
}

/// One page of shops, oldest first (a review queue is first come, first served).
pub async fn list(
    client: &impl GenericClient,
    filter: &ShopFilter<'_>,
    paging: Paging,
) -> Result<(Vec<ShopRow>, i64), tokio_postgres::Error> {
    const CONDITION: &str = "($1::text IS NULL OR s.status = $1) AND ($2::text IS NULL OR s.name ILIKE $2)";
    let name = filter.name.map(db::contains_pattern);
    let count = client.prepare_cached(&format!("SELECT count(*) FROM shops s WHERE {CONDITION}")).await?;
    let total: i64 = client.query_one(&count, &[&filter.status, &name]).await?.try_get(0)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {SHOP_COLUMNS} FROM shops s WHERE {CONDITION} ORDER BY s.created_at, s.id LIMIT $3 OFFSET $4"
        ))
        .await?;
    let rows = client.query(&stmt, &[&filter.status, &name, &paging.limit(), &paging.offset()]).await?;
    let shops = rows.iter().map(ShopRow::from_row).collect::<Result<_, _>>()?;
    Ok((shops, total))
}

/// A shop seen from one of its staff (or invitees).
pub struct Membership {
    pub shop: ShopRow,
    pub role: String,
    pub permissions: Option<Vec<String>>,
    pub accepted: bool,
}

/// Every shop `user_id` owns, works for or is invited to, newest first.
pub async fn memberships(
    client: &impl GenericClient,
    user_id: i64,
) -> Result<Vec<Membership>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {SHOP_COLUMNS}, m.role, m.permissions, m.accepted_at IS NOT NULL AS accepted
             FROM shop_members m JOIN shops s ON s.id = m.shop_id
             WHERE m.user_id = $1 ORDER BY s.id DESC"
        ))
        .await?;
    let rows = client.query(&stmt, &[&user_id]).await?;
    rows.iter()
        .map(|row| {
            Ok(Membership {
                shop: ShopRow::from_row(row)?,
                role: row.try_get("role")?,
                permissions: row.try_get("permissions")?,
                accepted: row.try_get("accepted")?,
            })
        })
        .collect()
}

/// One member of a shop's staff.
#[derive(Debug)]
pub struct MemberRow {
    pub user_id: i64,
    pub username: String,
    pub role: String,
    pub permissions: Option<Vec<String>>,
    pub invited_by: Option<i64>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl MemberRow {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            user_id: row.try_get("user_id")?,
            username: row.try_get("username")?,
            role: row.try_get("role")?,
            permissions: row.try_get("permissions")?,
            invited_by: row.try_get("invited_by")?,
            accepted_at: row.try_get("accepted_at")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const MEMBER_COLUMNS: &str =
    "m.user_id, u.username, m.role, m.permissions, m.invited_by, m.accepted_at, m.created_at";

/// A shop's staff and open invitations, in the order they joined.
pub async fn members(
    client: &impl GenericClient,
    shop_id: i64,
) -> Result<Vec<MemberRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {MEMBER_COLUMNS} FROM shop_members m JOIN users u ON u.id = m.user_id
             WHERE m.shop_id = $1 ORDER BY m.created_at, m.user_id"
        ))
        .await?;
    client.query(&stmt, &[&shop_id]).await?.iter().map(MemberRow::from_row).collect()
}

/// One member (or invitee) of a shop.
pub async fn find_member(
    client: &impl GenericClient,
    shop_id: i64,
    user_id: i64,
) -> Result<Option<MemberRow>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {MEMBER_COLUMNS} FROM shop_members m JOIN users u ON u.id = m.user_id
             WHERE m.shop_id = $1 AND m.user_id = $2"
        ))
        .await?;
    client.query_opt(&stmt, &[&shop_id, &user_id]).await?.map(|row| MemberRow::from_row(&row)).transpose()
}

/// Invites `user_id`; `false` when they are already staff or invited.
pub async fn insert_invitation(
    client: &impl GenericClient,
    shop_id: i64,
    user_id: i64,
    role: &str,
    permissions: Option<&[String]>,
    invited_by: i64,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO shop_members (shop_id, user_id, role, permissions, invited_by)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .await?;
    Ok(client.execute(&stmt, &[&shop_id, &user_id, &role, &permissions, &invited_by]).await? == 1)
}

/// Changes a non-owner member's role; `false` when there is no such member.
pub async fn update_member(
    client: &impl GenericClient,
    shop_id: i64,
    user_id: i64,
    role: &str,
    permissions: Option<&[String]>,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "UPDATE shop_members SET role = $3, permissions = $4
             WHERE shop_id = $1 AND user_id = $2 AND role <> 'owner'",
        )
        .await?;
    Ok(client.execute(&stmt, &[&shop_id, &user_id, &role, &permissions]).await? == 1)
}

/// Removes a non-owner member or invitation; `false` when there is none.
pub async fn delete_member(
    client: &impl GenericClient,
    shop_id: i64,
    user_id: i64,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached("DELETE FROM shop_members WHERE shop_id = $1 AND user_id = $2 AND role <> 'owner'")
        .await?;
    Ok(client.execute(&stmt, &[&shop_id, &user_id]).await? == 1)
}

/// Accepts (or, with `accept` false, declines) an open invitation;
/// `false` when there is none.
pub async fn answer_invitation(
    client: &impl GenericClient,
    shop_id: i64,
    user_id: i64,
    accept: bool,
) -> Result<bool, tokio_postgres::Error> {
    let sql = if accept {
        "UPDATE shop_members SET accepted_at = now() WHERE shop_id = $1 AND user_id = $2 AND accepted_at IS NULL"
    } else {
        "DELETE FROM shop_members WHERE shop_id = $1 AND user_id = $2 AND accepted_at IS NULL"
    };
    let stmt = client.prepare_cached(sql).await?;
    Ok(client.execute(&stmt, &[&shop_id, &user_id]).await? == 1)
}
