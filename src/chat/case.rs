//! Complaints, appeals and arbitration: a case between a shopper and a
//! shop, with a conversation of its own between the filer and the
//! respondent, escalated into the operators' queue, taken and decided by an
//! operator. Every status change goes through [`transition`], which checks
//! the edge and records it in `case_events`.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::service::is_operator;
use super::store;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::page::{Page, Paging};
use crate::shop::access::{self, Intent, ShopPermission};
use crate::state::AppState;
use crate::validate::Validator;
use actors::chat::Event;

/// What a case is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// Against how the other side behaved.
    Complaint,
    /// Against a decision (a refused refund, a penalty).
    Appeal,
    /// Straight to an operator: filed into the operators' queue.
    Arbitration,
}

impl CaseKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Complaint => "complaint",
            Self::Appeal => "appeal",
            Self::Arbitration => "arbitration",
        }
    }
}

/// An operator's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    ResolvedForShopper,
    ResolvedForMerchant,
    Dismissed,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Self::ResolvedForShopper => "resolved_for_shopper",
            Self::ResolvedForMerchant => "resolved_for_merchant",
            Self::Dismissed => "dismissed",
        }
    }
}

/// A new case.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileCase {
    pub kind: CaseKind,
    /// The shop complained about, or (with `against_user_id`) the shop filing.
    pub shop_id: i64,
    /// The shopper a shop files against; the caller must hold `chat.serve` there.
    pub against_user_id: Option<i64>,
    /// An order between the shopper and the shop, if it is about one.
    pub order_id: Option<i64>,
    /// 1-200 characters.
    pub subject: String,
    /// 1-5000 characters.
    pub description: String,
}

/// One recorded status change.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseEvent {
    pub actor_id: i64,
    pub from_status: Option<String>,
    pub to_status: String,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

/// A case as its parties and operators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseView {
    pub id: i64,
    pub kind: String,
    pub filed_by: i64,
    pub shop_id: i64,
    pub against_user_id: Option<i64>,
    /// Who answers for the other side: the shop's owner, or the shopper.
    pub respondent_id: i64,
    pub order_id: Option<i64>,
    pub subject: String,
    pub description: String,
    /// `open`, `escalated`, `in_arbitration`, `decided` or `withdrawn`.
    pub status: String,
    pub operator_id: Option<i64>,
    pub decision: Option<String>,
    pub decision_note: Option<String>,
    /// The case's own thread.
    pub conversation_id: i64,
    pub escalated_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every status change, oldest first (only in single-case answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<CaseEvent>>,
}

const CASE_COLUMNS: &str =
    "k.id, k.kind, k.filed_by, k.shop_id, k.against_user_id, k.respondent_id, k.order_id,
    k.subject, k.description, k.status, k.operator_id, k.decision, k.decision_note, c.id AS conversation_id,
    k.escalated_at, k.decided_at, k.created_at, k.updated_at";

impl CaseView {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            filed_by: row.try_get("filed_by")?,
            shop_id: row.try_get("shop_id")?,
            against_user_id: row.try_get("against_user_id")?,
            respondent_id: row.try_get("respondent_id")?,
            order_id: row.try_get("order_id")?,
            subject: row.try_get("subject")?,
            description: row.try_get("description")?,
            status: row.try_get("status")?,
            operator_id: row.try_get("operator_id")?,
            decision: row.try_get("decision")?,
            decision_note: row.try_get("decision_note")?,
            conversation_id: row.try_get("conversation_id")?,
            escalated_at: row.try_get("escalated_at")?,
            decided_at: row.try_get("decided_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            events: None,
        })
    }
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound).with_message("no such case")
}

/// Files a case and opens its thread between the filer and the respondent.
pub async fn file(state: &AppState, user: &Principal, body: FileCase) -> ApiResult<CaseView> {
    let mut v = Validator::new();
    v.length("subject", body.subject.trim(), 1, 200).length("description", body.description.trim(), 1, 5000);
    v.finish()?;
    let mut client = state.db.get().await?;
    // Who is the shopper of the case, and who answers it.
    let (shopper_id, respondent_id) = match body.against_user_id {
        Some(against) => {
            access::require(&client, user.user_id, body.shop_id, ShopPermission::ChatServe, Intent::Read)
                .await?;
            let stmt = client.prepare_cached("SELECT 1 FROM users WHERE id = $1").await?;
            if client.query_opt(&stmt, &[&against]).await?.is_none() {
                return Err(ApiError::invalid_field("against_user_id", "not_found"));
            }
            (against, against)
        }
        None => {
            let stmt = client.prepare_cached("SELECT owner_id FROM shops WHERE id = $1").await?;
            let row = client
                .query_opt(&stmt, &[&body.shop_id])
                .await?
                .ok_or_else(|| ApiError::new(ErrorCode::NotFound).with_message("no such shop"))?;
            (user.user_id, row.try_get(0)?)
        }
    };
    if respondent_id == user.user_id {
        return Err(ApiError::invalid_field("shop_id", "own_shop"));
    }
    if let Some(order_id) = body.order_id {
        let stmt = client
            .prepare_cached("SELECT 1 FROM orders WHERE id = $1 AND user_id = $2 AND shop_id = $3")
            .await?;
        if client.query_opt(&stmt, &[&order_id, &shopper_id, &body.shop_id]).await?.is_none() {
            return Err(ApiError::invalid_field("order_id", "not_found"));
        }
    }
    let status = if body.kind == CaseKind::Arbitration { "escalated" } else { "open" };
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO cases (kind, filed_by, shop_id, against_user_id, respondent_id, order_id, subject,
                                description, status, escalated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $9 = 'escalated' THEN now() END) RETURNING id",
        )
        .await?;
    let case_id: i64 = tx
        .query_one(
            &stmt,
            &[
                &body.kind.as_str(),
                &user.user_id,
                &body.shop_id,
                &body.against_user_id,
                &respondent_id,
                &body.order_id,
                &body.subject.trim(),
                &body.description.trim(),
                &status,
            ],
        )
        .await?
        .try_get(0)?;
    record(&tx, case_id, user.user_id, None, status, "").await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO conversations (kind, shop_id, shopper_id, order_id, case_id, status)
             VALUES ('case', $1, $2, $3, $4, 'open') RETURNING id",
        )
        .await?;
    let conversation_id: i64 =
        tx.query_one(&stmt, &[&body.shop_id, &shopper_id, &body.order_id, &case_id]).await?.try_get(0)?;
    store::join(&tx, conversation_id, user.user_id, "filer").await?;
    store::join(&tx, conversation_id, respondent_id, "respondent").await?;
    tx.commit().await?;
    one(&client, case_id).await
}

async fn record(
    tx: &impl GenericClient,
    case_id: i64,
    actor: i64,
    from: Option<&str>,
    to: &str,
    note: &str,
) -> ApiResult<()> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO case_events (case_id, actor_id, from_status, to_status, note) VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    tx.execute(&stmt, &[&case_id, &actor, &from, &to, &note]).await?;
    Ok(())
}

/// The case with its events.
async fn one(client: &impl GenericClient, case_id: i64) -> ApiResult<CaseView> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {CASE_COLUMNS} FROM cases k JOIN conversations c ON c.case_id = k.id WHERE k.id = $1"
        ))
        .await?;
    let mut case = CaseView::from_row(&client.query_opt(&stmt, &[&case_id]).await?.ok_or_else(not_found)?)?;
    let stmt = client
        .prepare_cached(
            "SELECT actor_id, from_status, to_status, note, created_at FROM case_events WHERE case_id = $1 ORDER BY id",
        )
        .await?;
    let events = client
        .query(&stmt, &[&case_id])
        .await?
        .iter()
        .map(|row| {
            Ok(CaseEvent {
                actor_id: row.try_get(0)?,
                from_status: row.try_get(1)?,
                to_status: row.try_get(2)?,
                note: row.try_get(3)?,
                created_at: row.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    case.events = Some(events);
    Ok(case)
}

/// A case for one of its parties or an operator; 404 for anyone else.
pub async fn get(state: &AppState, user: &Principal, case_id: i64) -> ApiResult<CaseView> {
    let client = state.db.get().await?;
    let case = one(&client, case_id).await?;
    if case.filed_by != user.user_id && case.respondent_id != user.user_id && !is_operator(user) {
        return Err(not_found());
    }
    Ok(case)
}

async fn list(
    state: &AppState,
    filter: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    order: &str,
    paging: Paging,
) -> ApiResult<Page<CaseView>> {
    let client = state.db.get().await?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {CASE_COLUMNS}, count(*) OVER () AS total
             FROM cases k JOIN conversations c ON c.case_id = k.id WHERE {filter} ORDER BY {order}
             LIMIT {} OFFSET {}",
            paging.limit(),
            paging.offset()
        ))
        .await?;
    let rows = client.query(&stmt, params).await?;
    let total = rows.first().map(|row| row.try_get("total")).transpose()?.unwrap_or(0);
    let items = rows.iter().map(CaseView::from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(paging.wrap(items, total))
}

/// The cases the caller filed or must answer, newest first.
pub async fn mine(state: &AppState, user: &Principal, paging: Paging) -> ApiResult<Page<CaseView>> {
    list(state, "k.filed_by = $1 OR k.respondent_id = $1", &[&user.user_id], "k.id DESC", paging).await
}

/// The operators' queue: escalated and in-arbitration cases (or those of
/// one `status`), longest waiting first.
pub async fn queue(state: &AppState, status: Option<&str>, paging: Paging) -> ApiResult<Page<CaseView>> {
    let statuses: Vec<&str> = match status {
        Some(status) => vec![status],
        None => vec!["escalated", "in_arbitration"],
    };
    list(state, "k.status = ANY($1)", &[&statuses], "k.escalated_at NULLS LAST, k.id", paging).await
}

/// One edge of the case status graph.
struct Edge<'a> {
    from: &'a [&'a str],
    to: &'a str,
    /// More SQL assignments, over `$3` (the actor) and `$4` (the note).
    extra: &'a str,
    note: &'a str,
}

/// Moves case `case_id` along `edge` and records it. 404 for no such case
/// (or one `party_check` refuses), 409 `invalid_state` for a status
/// without that edge.
async fn transition(
    state: &AppState,
    user: &Principal,
    case_id: i64,
    edge: Edge<'_>,
    party_check: impl FnOnce(&Row) -> ApiResult<()>,
) -> ApiResult<CaseView> {
    let Edge { from, to, extra, note } = edge;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "SELECT k.status, k.filed_by, k.respondent_id, c.id AS conversation_id
             FROM cases k JOIN conversations c ON c.case_id = k.id WHERE k.id = $1 FOR UPDATE OF k",
        )
        .await?;
    let row = tx.query_opt(&stmt, &[&case_id]).await?.ok_or_else(not_found)?;
    party_check(&row)?;
    let current: String = row.try_get("status")?;
    if !from.contains(&current.as_str()) {
        return Err(ApiError::new(ErrorCode::InvalidState)
            .with_message(format!("a case that is {current} cannot become {to}")));
    }
    // $3 and $4 are named in every statement (Postgres must type each
    // parameter) though only some edges' `extra` uses them.
    let stmt = tx
        .prepare_cached(&format!(
            "UPDATE cases SET status = $2, updated_at = now(){extra} WHERE id = $1 AND $3::int8 IS NOT NULL
             AND $4::text IS NOT NULL"
        ))
        .await?;
    tx.execute(&stmt, &[&case_id, &to, &user.user_id, &note]).await?;
    record(&tx, case_id, user.user_id, Some(&current), to, note).await?;
    let conversation_id: i64 = row.try_get("conversation_id")?;
    let closes = matches!(to, "decided" | "withdrawn");
    if matches!(to, "in_arbitration" | "decided") {
        store::join(&tx, conversation_id, user.user_id, "operator").await?;
    }
    if closes {
        let stmt = tx
            .prepare_cached(
                "UPDATE conversations SET status = 'closed', closed_at = now(), updated_at = now() WHERE id = $1",
            )
            .await?;
        tx.execute(&stmt, &[&conversation_id]).await?;
    }
    let members = store::member_ids(&tx, conversation_id).await?;
    tx.commit().await?;
    state.chat.forget(conversation_id);
    if closes {
        state.chat.notify(&members, Event::Closed { conversation_id });
    }
    one(&client, case_id).await
}

/// 404 unless the caller is a party of the case (`filer_only`: its filer).
fn party(user: &Principal, filer_only: bool) -> impl FnOnce(&Row) -> ApiResult<()> + '_ {
    move |row| {
        let filer: i64 = row.try_get("filed_by")?;
        let respondent: i64 = row.try_get("respondent_id")?;
        if filer == user.user_id || (!filer_only && respondent == user.user_id) {
            Ok(())
        } else {
            Err(not_found())
        }
    }
}

/// A party sends the case to the operators' queue.
pub async fn escalate(state: &AppState, user: &Principal, case_id: i64) -> ApiResult<CaseView> {
    let edge = Edge { from: &["open"], to: "escalated", extra: ", escalated_at = now()", note: "" };
    transition(state, user, case_id, edge, party(user, false)).await
}

/// The filer withdraws the case before it is decided.
pub async fn withdraw(state: &AppState, user: &Principal, case_id: i64) -> ApiResult<CaseView> {
    let edge = Edge { from: &["open", "escalated"], to: "withdrawn", extra: "", note: "" };
    transition(state, user, case_id, edge, party(user, true)).await
}

/// An operator takes an escalated case and joins its thread.
pub async fn take(state: &AppState, user: &Principal, case_id: i64) -> ApiResult<CaseView> {
    let edge = Edge { from: &["escalated"], to: "in_arbitration", extra: ", operator_id = $3", note: "" };
    transition(state, user, case_id, edge, |_| Ok(())).await
}

/// An operator decides an escalated case, with a note; its thread closes.
pub async fn decide(
    state: &AppState,
    user: &Principal,
    case_id: i64,
    decision: Decision,
    note: &str,
) -> ApiResult<CaseView> {
    let mut v = Validator::new();
    v.length("note", note.trim(), 1, 2000);
    v.finish()?;
    let extra = format!(
        ", operator_id = $3, decision = '{}', decision_note = $4, decided_at = now()",
        decision.as_str()
    );
    let edge =
        Edge { from: &["escalated", "in_arbitration"], to: "decided", extra: &extra, note: note.trim() };
    transition(state, user, case_id, edge, |_| Ok(())).await
}
