//! SQL of the chat: the group-commit batch of messages and read receipts,
//! loading a conversation for its shard, conversations, members and
//! history.

use std::collections::{BTreeMap, HashMap, HashSet};

use actors::chat::{ChatWrite, ChatWritten, ConversationSnapshot, Written};
use actors::writer::BatchStore;
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use futures_util::future::try_join;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// Writes group-commit batches of chat writes into Postgres: all messages
/// of a batch in ONE insert, all read receipts in ONE update (the two in
/// one transaction when a batch has both).
#[derive(Clone)]
pub struct PgChat {
    pool: Pool,
}

impl PgChat {
    /// A store writing through `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

/// The batch's messages, plainly inserted. A retry the shard no longer
/// remembered (it was restarted, or the conversation left its memory)
/// violates the unique client id and fails the statement; the batch is then
/// written again through [`INSERT_MESSAGES_TOLERANT_SQL`]. Not `ON CONFLICT`
/// on every batch: its speculative insertion costs Postgres about 14,000
/// more instructions per row (callgrind, 2026-11-22: 59,900 vs 45,800 per
/// row of a 40-row `unnest` batch), a third of the insert, for a case that
/// is rare.
const INSERT_MESSAGES_SQL: &str = "
INSERT INTO messages (conversation_id, seq, sender_id, client_msg_id, kind, payload, created_at)
SELECT c, s, u, m, k, p::jsonb, t
FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])
    AS x (c, s, u, m, k, p, t)
RETURNING conversation_id, seq, id";

/// The batch's messages, skipping those whose client id the sender already
/// stored (looked up as duplicates) and those whose seq another writer
/// took (a second owner of the conversation while a lease lapsed).
const INSERT_MESSAGES_TOLERANT_SQL: &str = "
INSERT INTO messages (conversation_id, seq, sender_id, client_msg_id, kind, payload, created_at)
SELECT c, s, u, m, k, p::jsonb, t
FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])
    AS x (c, s, u, m, k, p, t)
ON CONFLICT DO NOTHING
RETURNING conversation_id, seq, id";

const FIND_DUPLICATES_SQL: &str = "
SELECT m.conversation_id, m.sender_id, m.client_msg_id, m.id, m.seq, m.created_at
FROM messages m JOIN unnest($1::int8[], $2::int8[], $3::text[]) AS x (c, u, k)
    ON m.conversation_id = x.c AND m.sender_id = x.u AND m.client_msg_id = x.k";

const MARK_READ_SQL: &str = "
UPDATE conversation_members m SET last_read_seq = GREATEST(m.last_read_seq, x.s)
FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS x (c, u, s)
WHERE m.conversation_id = x.c AND m.user_id = x.u";

impl BatchStore for PgChat {
    type Item = ChatWrite;
    type Outcome = ChatWritten;

    async fn write_batch(&self, items: &[ChatWrite]) -> Result<Vec<ChatWritten>, String> {
        let err = |e: tokio_postgres::Error| format!("{e:#}");
        let mut messages = MessageColumns::default();
        // Highest seq per (conversation, user): one row per pair in the update.
        let mut reads: BTreeMap<(i64, i64), i64> = BTreeMap::new();
        for item in items {
            match item {
                ChatWrite::Messages(drafts) => drafts.iter().for_each(|d| messages.push(d)),
                ChatWrite::ReadUpTo { conversation_id, user_id, seq } => {
                    let top = reads.entry((*conversation_id, *user_id)).or_default();
                    *top = (*top).max(*seq);
                }
            }
        }
        let mut client = self.pool.get().await.map_err(|e| format!("no connection: {e}"))?;
        let (ids, duplicates) = match write_batch_once(&mut client, &messages, &reads, false).await {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                write_batch_once(&mut client, &messages, &reads, true).await
            }
            stored => stored,
        }
        .map_err(err)?;
        items
            .iter()
            .map(|item| match item {
                ChatWrite::ReadUpTo { .. } => Ok(ChatWritten::Read),
                ChatWrite::Messages(drafts) => {
                    let written: Option<Vec<Written>> = drafts
                        .iter()
                        .map(|d| match ids.get(&(d.conversation_id, d.seq)) {
                            Some(id) => Some(Written {
                                id: *id,
                                seq: d.seq,
                                created_at: d.created_at,
                                duplicate: false,
                            }),
                            None => duplicates
                                .get(&(d.conversation_id, d.sender_id, d.client_msg_id.to_string()))
                                .copied(),
                        })
                        .collect();
                    // Neither stored nor a duplicate: its seq was taken.
                    Ok(written.map_or(ChatWritten::SeqTaken, ChatWritten::Messages))
                }
            })
            .collect()
    }
}

/// The columns of a batch of messages, for `unnest`; the texts borrowed
/// from the drafts.
#[derive(Default)]
struct MessageColumns<'a> {
    conversation: Vec<i64>,
    seq: Vec<i64>,
    sender: Vec<i64>,
    client_id: Vec<&'a str>,
    kind: Vec<&'static str>,
    payload: Vec<&'a str>,
    created_at: Vec<DateTime<Utc>>,
}

impl<'a> MessageColumns<'a> {
    fn push(&mut self, draft: &'a actors::chat::MessageDraft) {
        self.conversation.push(draft.conversation_id);
        self.seq.push(draft.seq);
        self.sender.push(draft.sender_id);
        self.client_id.push(&draft.client_msg_id);
        self.kind.push(draft.kind.as_str());
        self.payload.push(&draft.payload);
        self.created_at.push(draft.created_at.into());
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 7] {
        [
            &self.conversation,
            &self.seq,
            &self.sender,
            &self.client_id,
            &self.kind,
            &self.payload,
            &self.created_at,
        ]
    }

    fn dedup_params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 3] {
        [&self.conversation, &self.sender, &self.client_id]
    }
}

/// Message ids by `(conversation, seq)`, and the stored originals of
/// duplicates by `(conversation, sender, client id)`.
type Stored = (HashMap<(i64, i64), i64>, HashMap<(i64, i64, String), Written>);

/// Writes one batch: in a transaction when it has both messages and read
/// receipts or is `tolerant`, else as the one statement it is. `tolerant`
/// skips messages whose client id is already stored (see
/// [`INSERT_MESSAGES_SQL`]) and whole conversations of which a seq was
/// taken.
async fn write_batch_once(
    client: &mut deadpool_postgres::Client,
    messages: &MessageColumns<'_>,
    reads: &BTreeMap<(i64, i64), i64>,
    tolerant: bool,
) -> Result<Stored, tokio_postgres::Error> {
    if !tolerant && (messages.conversation.is_empty() || reads.is_empty()) {
        return write(&*client, messages, reads, tolerant).await;
    }
    let tx = client.transaction().await?;
    let stored = write(&tx, messages, reads, tolerant).await?;
    tx.commit().await?;
    Ok(stored)
}

/// The statements of one batch, on a client or inside a transaction.
async fn write(
    db: &impl GenericClient,
    messages: &MessageColumns<'_>,
    reads: &BTreeMap<(i64, i64), i64>,
    tolerant: bool,
) -> Result<Stored, tokio_postgres::Error> {
    let mut ids = HashMap::new();
    let mut duplicates = HashMap::new();
    if !messages.conversation.is_empty() {
        let sql = if tolerant { INSERT_MESSAGES_TOLERANT_SQL } else { INSERT_MESSAGES_SQL };
        let stmt = db.prepare_cached(sql).await?;
        for row in db.query(&stmt, &messages.params()).await? {
            ids.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
        }
        if ids.len() < messages.conversation.len() {
            let stmt = db.prepare_cached(FIND_DUPLICATES_SQL).await?;
            for row in db.query(&stmt, &messages.dedup_params()).await? {
                let created_at: DateTime<Utc> = row.try_get(5)?;
                let written = Written {
                    id: row.try_get(3)?,
                    seq: row.try_get(4)?,
                    created_at: created_at.into(),
                    duplicate: true,
                };
                duplicates.insert((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?), written);
            }
            take_back_taken(db, messages, &mut ids, &duplicates).await?;
        }
    }
    if !reads.is_empty() {
        let (mut c, mut u, mut s) = (Vec::new(), Vec::new(), Vec::new());
        for ((conversation, user), seq) in reads {
            c.push(*conversation);
            u.push(*user);
            s.push(*seq);
        }
        let stmt = db.prepare_cached(MARK_READ_SQL).await?;
        db.execute(&stmt, &[&c, &u, &s]).await?;
    }
    Ok((ids, duplicates))
}

/// A conversation whose write found one of its seqs taken by another writer
/// is written not at all: the rows of it this batch inserted are deleted
/// again (inside the batch's transaction), so its sends stay unacked, in
/// order, for their retries.
async fn take_back_taken(
    db: &impl GenericClient,
    messages: &MessageColumns<'_>,
    ids: &mut HashMap<(i64, i64), i64>,
    duplicates: &HashMap<(i64, i64, String), Written>,
) -> Result<(), tokio_postgres::Error> {
    let taken: HashSet<i64> = (0..messages.conversation.len())
        .filter(|&i| {
            let (conversation, seq) = (messages.conversation[i], messages.seq[i]);
            !ids.contains_key(&(conversation, seq))
                && !duplicates.contains_key(&(
                    conversation,
                    messages.sender[i],
                    messages.client_id[i].to_owned(),
                ))
        })
        .map(|i| messages.conversation[i])
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    let mut inserted = Vec::new();
    ids.retain(|(conversation, _), id| {
        let keep = !taken.contains(conversation);
        if !keep {
            inserted.push(*id);
        }
        keep
    });
    if !inserted.is_empty() {
        db.execute("DELETE FROM messages WHERE id = ANY($1)", &[&inserted]).await?;
    }
    Ok(())
}

impl PgChat {
    /// The stored state of the conversations of `ids` that exist, for their shards.
    pub async fn snapshots(&self, ids: &[i64]) -> Result<HashMap<i64, ConversationSnapshot>, String> {
        let err = |e: tokio_postgres::Error| format!("{e:#}");
        let client = self.pool.get().await.map_err(|e| format!("no connection: {e}"))?;
        let conversations = client
            .prepare_cached(
                "SELECT c.id, c.kind, c.status,
                        COALESCE((SELECT max(seq) FROM messages m WHERE m.conversation_id = c.id), 0) AS last_seq
                 FROM conversations c WHERE c.id = ANY($1)",
            )
            .await
            .map_err(err)?;
        // Members in a query of their own, over the primary key: one index
        // probe per conversation.
        let members = client
            .prepare_cached(
                "SELECT conversation_id, user_id, last_read_seq FROM conversation_members
                 WHERE conversation_id = ANY($1) AND left_at IS NULL",
            )
            .await
            .map_err(err)?;
        // Both at once: tokio-postgres pipelines them, one round trip.
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&ids];
        let both = try_join(client.query(&conversations, &params), client.query(&members, &params));
        let (conversations, members) = both.await.map_err(err)?;
        let mut found: HashMap<i64, ConversationSnapshot> = HashMap::new();
        for row in conversations {
            let kind: String = row.try_get("kind").map_err(err)?;
            let status: String = row.try_get("status").map_err(err)?;
            let snapshot = ConversationSnapshot {
                members: Vec::new(),
                is_case: kind == "case",
                closed: status == "closed",
                last_seq: row.try_get("last_seq").map_err(err)?,
            };
            found.insert(row.try_get("id").map_err(err)?, snapshot);
        }
        for row in members {
            let conversation_id: i64 = row.try_get(0).map_err(err)?;
            if let Some(snapshot) = found.get_mut(&conversation_id) {
                snapshot.members.push((row.try_get(1).map_err(err)?, row.try_get(2).map_err(err)?));
            }
        }
        Ok(found)
    }
}

/// A conversation as its members see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: i64,
    /// `service` (with a shop's staff) or `case` (the thread of a case).
    pub kind: String,
    pub shop_id: i64,
    pub shop_name: String,
    pub shopper_id: i64,
    pub product_id: Option<i64>,
    pub order_id: Option<i64>,
    pub case_id: Option<i64>,
    /// The staff member serving it; none while it waits in the shop's queue.
    pub agent_id: Option<i64>,
    /// `queued` (no agent online, or all at their limit), `open` or `closed`.
    pub status: String,
    /// The seq of its newest message (0 when empty).
    pub last_seq: i64,
    /// How far the caller has read (0 for a non-member operator).
    pub last_read_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`ConversationView`] for a caller `$1`, from `conversations c JOIN shops s`.
const CONVERSATION_COLUMNS: &str =
    "c.id, c.kind, c.shop_id, s.name AS shop_name, c.shopper_id, c.product_id, c.order_id,
    c.case_id, c.agent_id, c.status, c.created_at, c.updated_at,
    COALESCE((SELECT max(seq) FROM messages m WHERE m.conversation_id = c.id), 0) AS last_seq,
    COALESCE((SELECT last_read_seq FROM conversation_members cm
              WHERE cm.conversation_id = c.id AND cm.user_id = $1), 0) AS last_read_seq";

impl ConversationView {
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            shop_id: row.try_get("shop_id")?,
            shop_name: row.try_get("shop_name")?,
            shopper_id: row.try_get("shopper_id")?,
            product_id: row.try_get("product_id")?,
            order_id: row.try_get("order_id")?,
            case_id: row.try_get("case_id")?,
            agent_id: row.try_get("agent_id")?,
            status: row.try_get("status")?,
            last_seq: row.try_get("last_seq")?,
            last_read_seq: row.try_get("last_read_seq")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// Conversation `id` as `viewer` sees it.
pub async fn conversation(
    client: &impl GenericClient,
    viewer: i64,
    id: i64,
) -> Result<Option<ConversationView>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations c JOIN shops s ON s.id = c.shop_id WHERE c.id = $2"
        ))
        .await?;
    client.query_opt(&stmt, &[&viewer, &id]).await?.as_ref().map(ConversationView::from_row).transpose()
}

/// The conversations `user_id` is a current member of, newest first.
pub async fn my_conversations(
    client: &impl GenericClient,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ConversationView>, i64), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {CONVERSATION_COLUMNS}, count(*) OVER () AS total
             FROM conversation_members me JOIN conversations c ON c.id = me.conversation_id
             JOIN shops s ON s.id = c.shop_id
             WHERE me.user_id = $1 AND me.left_at IS NULL
             ORDER BY c.updated_at DESC, c.id DESC LIMIT $2 OFFSET $3"
        ))
        .await?;
    page(client.query(&stmt, &[&user_id, &limit, &offset]).await?)
}

/// A shop's conversations, optionally of one status, newest first.
pub async fn shop_conversations(
    client: &impl GenericClient,
    viewer: i64,
    shop_id: i64,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ConversationView>, i64), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {CONVERSATION_COLUMNS}, count(*) OVER () AS total
             FROM conversations c JOIN shops s ON s.id = c.shop_id
             WHERE c.shop_id = $2 AND c.kind = 'service' AND ($3::text IS NULL OR c.status = $3)
             ORDER BY c.id DESC LIMIT $4 OFFSET $5"
        ))
        .await?;
    page(client.query(&stmt, &[&viewer, &shop_id, &status, &limit, &offset]).await?)
}

fn page(rows: Vec<Row>) -> Result<(Vec<ConversationView>, i64), tokio_postgres::Error> {
    let total = rows.first().map(|row| row.try_get("total")).transpose()?.unwrap_or(0);
    Ok((rows.iter().map(ConversationView::from_row).collect::<Result<_, _>>()?, total))
}

/// Whether `user_id` is a current member of the conversation, and whether it is a case thread.
pub async fn membership(
    client: &impl GenericClient,
    conversation_id: i64,
    user_id: i64,
) -> Result<Option<(bool, bool)>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT c.kind = 'case' AS is_case,
                    EXISTS (SELECT 1 FROM conversation_members m WHERE m.conversation_id = c.id
                            AND m.user_id = $2 AND m.left_at IS NULL) AS member
             FROM conversations c WHERE c.id = $1",
        )
        .await?;
    client
        .query_opt(&stmt, &[&conversation_id, &user_id])
        .await?
        .map(|row| Ok((row.try_get("member")?, row.try_get("is_case")?)))
        .transpose()
}

/// A stored message, as history and resume give it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub conversation_id: i64,
    pub seq: i64,
    /// The server's id of the message.
    pub id: i64,
    pub sender_id: i64,
    pub client_msg_id: String,
    /// `text`, `image`, `product_card` or `order_card`.
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub created_at: DateTime<Utc>,
}

/// Messages of a conversation with `after < seq < before`, in seq order,
/// at most `limit`: the first ones after `after`, or the last ones before
/// `before` when only that is given.
pub async fn messages(
    client: &impl GenericClient,
    conversation_id: i64,
    after: Option<i64>,
    before: Option<i64>,
    limit: i64,
) -> ApiResult<Vec<MessageView>> {
    let newest_first = after.is_none() && before.is_some();
    let stmt = client
        .prepare_cached(
            "SELECT conversation_id, seq, id, sender_id, client_msg_id, kind, payload::text AS payload, created_at
             FROM messages WHERE conversation_id = $1 AND seq > $2 AND seq < $3
             ORDER BY CASE WHEN $5 THEN -seq ELSE seq END LIMIT $4",
        )
        .await?;
    let rows = client
        .query(
            &stmt,
            &[&conversation_id, &after.unwrap_or(0), &before.unwrap_or(i64::MAX), &limit, &newest_first],
        )
        .await?;
    let mut messages = rows
        .iter()
        .map(|row| {
            let payload: String = row.try_get("payload")?;
            Ok(MessageView {
                conversation_id: row.try_get("conversation_id")?,
                seq: row.try_get("seq")?,
                id: row.try_get("id")?,
                sender_id: row.try_get("sender_id")?,
                client_msg_id: row.try_get("client_msg_id")?,
                kind: row.try_get("kind")?,
                // Postgres printed it from JSONB: valid JSON unless something is badly wrong.
                payload: RawValue::from_string(payload).map_err(ApiError::internal)?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    if newest_first {
        messages.reverse();
    }
    Ok(messages)
}

/// Most conversations warmed for one connection (an operator may be a
/// member of very many; the rest load on first use).
const WARM_LIMIT: i64 = 200;

/// The newest conversations `user_id` is a member of and that are not closed.
pub async fn live_conversation_ids(client: &impl GenericClient, user_id: i64) -> ApiResult<Vec<i64>> {
    let statement = client
        .prepare_cached(
            "SELECT m.conversation_id FROM conversation_members m
             JOIN conversations c ON c.id = m.conversation_id
             WHERE m.user_id = $1 AND m.left_at IS NULL AND c.status <> 'closed'
             ORDER BY m.conversation_id DESC LIMIT $2",
        )
        .await?;
    let rows = client.query(&statement, &[&user_id, &WARM_LIMIT]).await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}

/// The active shops where `user_id` is accepted staff, with the role (and
/// custom permissions) to check `chat.serve` against, and their open load.
pub async fn staff_shops(
    client: &impl GenericClient,
    user_id: i64,
) -> Result<Vec<(i64, String, Option<Vec<String>>, u32, Vec<i64>)>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT m.shop_id, m.role, m.permissions,
                    ARRAY(SELECT c.shopper_id FROM conversations c WHERE c.agent_id = $1
                          AND c.shop_id = m.shop_id AND c.status = 'open') AS shoppers
             FROM shop_members m JOIN shops s ON s.id = m.shop_id
             WHERE m.user_id = $1 AND m.accepted_at IS NOT NULL AND s.status = 'active'",
        )
        .await?;
    client
        .query(&stmt, &[&user_id])
        .await?
        .iter()
        .map(|row| {
            let shoppers: Vec<i64> = row.try_get("shoppers")?;
            Ok((
                row.try_get("shop_id")?,
                row.try_get("role")?,
                row.try_get("permissions")?,
                u32::try_from(shoppers.len()).unwrap_or(u32::MAX),
                shoppers,
            ))
        })
        .collect()
}

/// The shoppers of `agent_id`'s open conversations in `shop_id`.
pub async fn agent_shoppers(
    client: &impl GenericClient,
    agent_id: i64,
    shop_id: i64,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT shopper_id FROM conversations WHERE agent_id = $1 AND shop_id = $2 AND status = 'open'",
        )
        .await?;
    Ok(client.query(&stmt, &[&agent_id, &shop_id]).await?.iter().map(|row| row.get(0)).collect())
}

/// The current members of a conversation.
pub async fn member_ids(
    client: &impl GenericClient,
    conversation_id: i64,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "SELECT user_id FROM conversation_members WHERE conversation_id = $1 AND left_at IS NULL ORDER BY user_id",
        )
        .await?;
    client.query(&stmt, &[&conversation_id]).await?.iter().map(|row| row.try_get(0)).collect()
}

/// Adds (or brings back) a member.
pub async fn join(
    client: &impl GenericClient,
    conversation_id: i64,
    user_id: i64,
    role: &str,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO conversation_members (conversation_id, user_id, role) VALUES ($1, $2, $3)
             ON CONFLICT (conversation_id, user_id) DO UPDATE SET left_at = NULL, role = EXCLUDED.role",
        )
        .await?;
    client.execute(&stmt, &[&conversation_id, &user_id, &role]).await?;
    Ok(())
}

/// Marks a member as gone (keeps the row and their read position).
pub async fn leave(
    client: &impl GenericClient,
    conversation_id: i64,
    user_id: i64,
) -> Result<(), tokio_postgres::Error> {
    let stmt = client
        .prepare_cached(
            "UPDATE conversation_members SET left_at = now()
             WHERE conversation_id = $1 AND user_id = $2 AND left_at IS NULL",
        )
        .await?;
    client.execute(&stmt, &[&conversation_id, &user_id]).await?;
    Ok(())
}
