//! Conversation rules: opening one with a shop (routed to the least-loaded
//! online agent, else queued), the shop's queue drained as agents come
//! online or free up, transfer and close, and who may read what.

use std::sync::Arc;

use actors::chat::Event;
use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;

use super::store::{self, ConversationView, MessageView};
use crate::auth::perm::{CaseArbitrate, Permission};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::page::{Page, Paging};
use crate::shop::access::{self, Intent, ShopPermission, ShopRole};
use crate::state::AppState;

/// Most messages one history page holds.
pub const MAX_HISTORY_PAGE: i64 = 200;

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound).with_message("no such conversation")
}

/// Whether the principal may work case threads.
pub fn is_operator(user: &Principal) -> bool {
    user.has(CaseArbitrate::NAME)
}

/// Opens (or finds the live) conversation of `user` with `shop_id`,
/// optionally about one of its products or one of the user's orders there.
/// Routed at once when an agent is free; `created` tells a new one apart.
pub async fn open(
    state: &AppState,
    user: &Principal,
    shop_id: i64,
    product_id: Option<i64>,
    order_id: Option<i64>,
) -> ApiResult<(ConversationView, bool)> {
    let mut client = state.db.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM shops WHERE id = $1 AND status = 'active'),
                    $2::int8 IS NULL OR EXISTS (SELECT 1 FROM products WHERE id = $2 AND shop_id = $1),
                    $3::int8 IS NULL OR EXISTS (SELECT 1 FROM orders WHERE id = $3 AND shop_id = $1 AND user_id = $4)",
        )
        .await?;
    let row = client.query_one(&stmt, &[&shop_id, &product_id, &order_id, &user.user_id]).await?;
    if !row.try_get::<_, bool>(0)? {
        return Err(ApiError::new(ErrorCode::NotFound).with_message("no such shop"));
    }
    if !row.try_get::<_, bool>(1)? {
        return Err(ApiError::invalid_field("product_id", "not_found"));
    }
    if !row.try_get::<_, bool>(2)? {
        return Err(ApiError::invalid_field("order_id", "not_found"));
    }
    let created = {
        let tx = client.transaction().await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO conversations (kind, shop_id, shopper_id, product_id, order_id, status)
             VALUES ('service', $1, $2, $3, $4, 'queued') RETURNING id",
            )
            .await?;
        match tx.query_one(&insert, &[&shop_id, &user.user_id, &product_id, &order_id]).await {
            Ok(row) => {
                let id: i64 = row.try_get(0)?;
                store::join(&tx, id, user.user_id, "shopper").await?;
                tx.commit().await?;
                Some(id)
            }
            Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => None,
            Err(err) => return Err(err.into()),
        }
    };
    drop(client);
    let id = match created {
        Some(id) => {
            route(state, shop_id, id).await?;
            id
        }
        None => {
            let client = state.db.get().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT id FROM conversations WHERE shop_id = $1 AND shopper_id = $2 AND kind = 'service'
                     AND status <> 'closed'",
                )
                .await?;
            client.query_one(&stmt, &[&shop_id, &user.user_id]).await?.try_get(0)?
        }
    };
    let client = state.db.get().await?;
    let view = store::conversation(&client, user.user_id, id).await?.ok_or_else(not_found)?;
    Ok((view, created.is_some()))
}

/// Asks the shop's routing for an agent (reserving a slot), an `only` one
/// for a transfer. An agent who no longer serves the shop (removed from
/// its staff, or their role changed, on any node) is taken out of its
/// routing, and the next one is asked.
async fn pick(
    state: &AppState,
    client: &impl GenericClient,
    shop_id: i64,
    only: Option<i64>,
) -> ApiResult<Option<i64>> {
    loop {
        let Some(agent_id) = state.chat.pick_agent(shop_id, only).await? else { return Ok(None) };
        let serving = serves(client, agent_id, shop_id).await;
        if serving.as_ref().is_ok_and(|serving| *serving) {
            return Ok(Some(agent_id));
        }
        release(state, shop_id, agent_id).await;
        serving?;
        state.chat.agent_gone(shop_id, agent_id).await?;
    }
}

/// Whether `agent_id` is accepted staff of `shop_id` holding `chat.serve`.
async fn serves(client: &impl GenericClient, agent_id: i64, shop_id: i64) -> ApiResult<bool> {
    match access::staff(client, agent_id, shop_id).await {
        Ok(staff) => Ok(staff.permissions.contains(&ShopPermission::ChatServe)),
        Err(err) if matches!(err.code(), ErrorCode::Forbidden | ErrorCode::NotFound) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Staff who may no longer serve the shop's chats (removed, or given a
/// role without `chat.serve`) leave every conversation they served there
/// (closed ones included: no more reading), and the open ones go back to
/// the queue, in the caller's transaction. `None` while they still serve;
/// else call [`staff_left_done`] with the conversations left, after the
/// commit.
pub async fn staff_left(
    client: &impl GenericClient,
    shop_id: i64,
    user_id: i64,
) -> ApiResult<Option<Vec<i64>>> {
    if serves(client, user_id, shop_id).await? {
        return Ok(None);
    }
    let requeue = client
        .prepare_cached(
            "UPDATE conversations SET agent_id = NULL, status = 'queued', updated_at = now()
             WHERE shop_id = $1 AND agent_id = $2 AND status = 'open'",
        )
        .await?;
    client.execute(&requeue, &[&shop_id, &user_id]).await?;
    let leave = client
        .prepare_cached(
            "UPDATE conversation_members m SET left_at = now()
             FROM conversations c
             WHERE c.id = m.conversation_id AND c.shop_id = $1 AND c.case_id IS NULL
               AND m.user_id = $2 AND m.role = 'agent' AND m.left_at IS NULL
             RETURNING m.conversation_id",
        )
        .await?;
    Ok(Some(client.query(&leave, &[&shop_id, &user_id]).await?.iter().map(|r| r.get(0)).collect()))
}

/// After [`staff_left`] committed: the shards reload the conversations
/// left (the agent is no longer a member), the agent leaves the shop's
/// routing, and the queue goes to the other agents.
pub async fn staff_left_done(state: &AppState, shop_id: i64, user_id: i64, left: &[i64]) {
    for &id in left {
        state.chat.forget(id);
    }
    if let Err(err) = state.chat.agent_gone(shop_id, user_id).await {
        tracing::warn!(shop_id, user_id, error = %err, "cannot take a former agent out of chat routing");
    }
    drain_logged(state, shop_id).await;
}

async fn release(state: &AppState, shop_id: i64, agent_id: i64) {
    state.chat.release_agent(shop_id, agent_id).await;
}

/// Gives queued conversation `id` of `shop_id` to the least-loaded online
/// agent, if any is free; it stays queued otherwise.
async fn route(state: &AppState, shop_id: i64, id: i64) -> ApiResult<()> {
    let sql = "SELECT id, shopper_id FROM conversations WHERE id = $1 AND status = 'queued' FOR UPDATE";
    assign_queued(state, shop_id, sql, &[&id]).await.map(drop)
}

/// Gives the shop's queued conversations, oldest first, to free online
/// agents until either runs out.
pub async fn drain_queue(state: &AppState, shop_id: i64) -> ApiResult<()> {
    let sql = "SELECT id, shopper_id FROM conversations WHERE shop_id = $1 AND status = 'queued'
               ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED";
    while assign_queued(state, shop_id, sql, &[&shop_id]).await? {}
    Ok(())
}

/// Locks the queued conversation `select` finds (`id`, `shopper_id`),
/// then reserves the least-loaded free agent for it and stores the
/// assignment, in one transaction. A slot is only reserved for a
/// conversation in hand, so a drain never holds one that a transfer could
/// have used. Whether a conversation was assigned.
async fn assign_queued(
    state: &AppState,
    shop_id: i64,
    select: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> ApiResult<bool> {
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let stmt = tx.prepare_cached(select).await?;
    let Some(row) = tx.query_opt(&stmt, params).await? else { return Ok(false) };
    let (id, shopper_id): (i64, i64) = (row.try_get("id")?, row.try_get("shopper_id")?);
    let Some(agent_id) = pick(state, &tx, shop_id, None).await? else { return Ok(false) };
    let stored = async {
        let stmt = tx
            .prepare_cached(
                "UPDATE conversations SET agent_id = $2, status = 'open', updated_at = now() WHERE id = $1",
            )
            .await?;
        tx.execute(&stmt, &[&id, &agent_id]).await?;
        store::join(&tx, id, agent_id, "agent").await?;
        tx.commit().await
    }
    .await;
    if let Err(err) = stored {
        release(state, shop_id, agent_id).await;
        return Err(err.into());
    }
    announce(state, shop_id, id, agent_id, &[shopper_id, agent_id]);
    Ok(true)
}

/// Tells the shard to reload and the people involved that the conversation has an agent.
fn announce(state: &AppState, shop_id: i64, conversation_id: i64, agent_id: i64, users: &[i64]) {
    state.chat.forget(conversation_id);
    state.chat.notify(users, Event::Assigned { conversation_id, shop_id, agent_id });
}

/// The shops where `user_id` may serve chats (accepted staff holding
/// `chat.serve` in an active shop), with the shoppers of their open
/// conversations there.
pub async fn served_shops(state: &AppState, user_id: i64) -> ApiResult<Vec<(i64, Vec<i64>)>> {
    let client = state.db.get().await?;
    let rows = store::staff_shops(&client, user_id).await?;
    Ok(rows
        .into_iter()
        .filter(|(_, role, custom, _, _)| {
            ShopRole::parse(role).is_some_and(|role| {
                access::granted(role, custom.as_deref()).contains(&ShopPermission::ChatServe)
            })
        })
        .map(|(shop_id, _, _, _, shoppers)| (shop_id, shoppers))
        .collect())
}

/// A member connected: have their live conversations loaded before they
/// use them. Best effort: on failure they load on first use.
pub async fn warm_conversations(state: Arc<AppState>, user_id: i64) {
    let ids = match state.db.get().await {
        Ok(client) => store::live_conversation_ids(&client, user_id).await,
        Err(error) => Err(ApiError::from(error)),
    };
    match ids {
        Ok(ids) => state.chat.warm(&ids),
        Err(error) => tracing::debug!(user_id, %error, "cannot warm a member's conversations"),
    }
}

/// An agent's connection came up: count it online in each shop they serve,
/// tell their shoppers if they just came online, and route the queue.
/// Resolves once the agent counts online everywhere; the queues are
/// drained by tasks of their own (a disconnect waits only for the counts).
pub async fn agent_connected(state: AppState, agent_id: i64, shops: Vec<(i64, Vec<i64>)>) {
    for (shop_id, shoppers) in &shops {
        let open = u32::try_from(shoppers.len()).unwrap_or(u32::MAX);
        match state.chat.agent_online(*shop_id, agent_id, open).await {
            Ok(true) => {
                let event = Event::Presence { shop_id: *shop_id, user_id: agent_id, online: true };
                state.chat.notify(shoppers, event)
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(shop_id, agent_id, error = %err, "cannot count a chat agent online"),
        }
    }
    for (shop_id, _) in shops {
        let state = state.clone();
        actix_web::rt::spawn(async move { drain_logged(&state, shop_id).await });
    }
}

/// An agent's connection went away: the reverse of [`agent_connected`].
/// Shoppers are told of the agent's open conversations now, not only of
/// those they had when they connected.
pub async fn agent_disconnected(state: AppState, agent_id: i64, shops: Vec<(i64, Vec<i64>)>) {
    for (shop_id, shoppers_then) in shops {
        match state.chat.agent_offline(shop_id, agent_id).await {
            Ok(true) => {
                let shoppers = match state.db.get().await {
                    Ok(client) => store::agent_shoppers(&client, agent_id, shop_id).await.ok(),
                    Err(_) => None,
                };
                let shoppers = shoppers.unwrap_or(shoppers_then);
                state.chat.notify(&shoppers, Event::Presence { shop_id, user_id: agent_id, online: false })
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(shop_id, agent_id, error = %err, "cannot count a chat agent offline"),
        }
    }
}

/// The online agents of a shop.
pub async fn online_agents(state: &AppState, shop_id: i64) -> ApiResult<Vec<i64>> {
    state.chat.online_agents(shop_id).await
}

/// The caller's conversations, newest activity first.
pub async fn mine(state: &AppState, user_id: i64, paging: Paging) -> ApiResult<Page<ConversationView>> {
    let client = state.db.get().await?;
    let (items, total) = store::my_conversations(&client, user_id, paging.limit(), paging.offset()).await?;
    Ok(paging.wrap(items, total))
}

/// Checks that `user` may read conversation `id`: a current member, or an
/// operator for a case thread. Anyone else gets 404 (existence is not revealed).
pub async fn check_reader(client: &impl GenericClient, user: &Principal, id: i64) -> ApiResult<()> {
    match store::membership(client, id, user.user_id).await? {
        Some((true, _)) => Ok(()),
        Some((false, true)) if is_operator(user) => Ok(()),
        _ => Err(not_found()),
    }
}

/// One conversation, for a reader.
pub async fn get(state: &AppState, user: &Principal, id: i64) -> ApiResult<ConversationView> {
    let client = state.db.get().await?;
    check_reader(&client, user, id).await?;
    store::conversation(&client, user.user_id, id).await?.ok_or_else(not_found)
}

/// A page of history by seq (see [`store::messages`]), for a reader.
pub async fn history(
    state: &AppState,
    user: &Principal,
    id: i64,
    after: Option<i64>,
    before: Option<i64>,
    limit: Option<i64>,
) -> ApiResult<Vec<MessageView>> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
        return Err(ApiError::new(ErrorCode::InvalidQuery)
            .with_message(format!("limit must be between 1 and {MAX_HISTORY_PAGE}")));
    }
    let client = state.db.get().await?;
    check_reader(&client, user, id).await?;
    store::messages(&client, id, after, before, limit).await
}

/// A shop's service conversations, for its chat staff.
pub async fn shop_list(
    state: &AppState,
    user: &Principal,
    shop_id: i64,
    status: Option<&str>,
    paging: Paging,
) -> ApiResult<Page<ConversationView>> {
    let client = state.db.get().await?;
    access::require(&client, user.user_id, shop_id, ShopPermission::ChatServe, Intent::Read).await?;
    let (items, total) =
        store::shop_conversations(&client, user.user_id, shop_id, status, paging.limit(), paging.offset())
            .await?;
    Ok(paging.wrap(items, total))
}

/// The shop's service conversation `id` as `(agent, status, shopper)`, locked.
async fn locked(tx: &impl GenericClient, shop_id: i64, id: i64) -> ApiResult<(Option<i64>, String, i64)> {
    let stmt = tx
        .prepare_cached(
            "SELECT agent_id, status, shopper_id FROM conversations
             WHERE id = $1 AND shop_id = $2 AND kind = 'service' FOR UPDATE",
        )
        .await?;
    let row = tx.query_opt(&stmt, &[&id, &shop_id]).await?.ok_or_else(not_found)?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

/// Hands the shop's conversation `id` to colleague `to_agent` (who must
/// hold `chat.serve` there, be online and below the cap).
pub async fn transfer(
    state: &AppState,
    user: &Principal,
    shop_id: i64,
    id: i64,
    to_agent: i64,
) -> ApiResult<ConversationView> {
    access::require_in(&state.db, user.user_id, shop_id, ShopPermission::ChatServe, Intent::Write).await?;
    let picked = {
        let client = state.db.get().await?;
        if !serves(&client, to_agent, shop_id).await? {
            return Err(ApiError::invalid_field("agent_id", "not_chat_staff"));
        }
        pick(state, &client, shop_id, Some(to_agent)).await?
    };
    let Some(agent_id) = picked else {
        return Err(ApiError::new(ErrorCode::InvalidState)
            .with_message("that colleague is offline or at their conversation limit"));
    };
    let moved = async {
        let mut client = state.db.get().await?;
        let tx = client.transaction().await?;
        let (from, status, shopper_id) = locked(&tx, shop_id, id).await?;
        if status == "closed" {
            return Err(ApiError::new(ErrorCode::InvalidState).with_message("the conversation is closed"));
        }
        if from == Some(agent_id) {
            return Err(ApiError::new(ErrorCode::InvalidState).with_message("it is already theirs"));
        }
        let stmt = tx
            .prepare_cached(
                "UPDATE conversations SET agent_id = $2, status = 'open', updated_at = now() WHERE id = $1",
            )
            .await?;
        tx.execute(&stmt, &[&id, &agent_id]).await?;
        if let Some(from) = from {
            store::leave(&tx, id, from).await?;
        }
        store::join(&tx, id, agent_id, "agent").await?;
        tx.commit().await?;
        Ok((from, shopper_id))
    }
    .await;
    let (from, shopper_id) = match moved {
        Ok(moved) => moved,
        Err(err) => {
            release(state, shop_id, agent_id).await;
            return Err(err);
        }
    };
    let mut told = vec![shopper_id, agent_id];
    if let Some(from) = from {
        release(state, shop_id, from).await;
        told.push(from);
    }
    announce(state, shop_id, id, agent_id, &told);
    if from.is_some() {
        drain_logged(state, shop_id).await;
    }
    let client = state.db.get().await?;
    store::conversation(&client, user.user_id, id).await?.ok_or_else(not_found)
}

async fn drain_logged(state: &AppState, shop_id: i64) {
    if let Err(err) = drain_queue(state, shop_id).await {
        tracing::warn!(shop_id, error = %err, "cannot route the chat queue");
    }
}

/// Closes the shop's conversation `id`; its agent's slot goes to the next
/// in the queue.
pub async fn close(state: &AppState, user: &Principal, shop_id: i64, id: i64) -> ApiResult<ConversationView> {
    access::require_in(&state.db, user.user_id, shop_id, ShopPermission::ChatServe, Intent::Read).await?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let (agent, status, _) = locked(&tx, shop_id, id).await?;
    if status == "closed" {
        return Err(ApiError::new(ErrorCode::InvalidState).with_message("the conversation is already closed"));
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE conversations SET status = 'closed', closed_at = now(), updated_at = now() WHERE id = $1",
        )
        .await?;
    tx.execute(&stmt, &[&id]).await?;
    let members = store::member_ids(&tx, id).await?;
    tx.commit().await?;
    state.chat.forget(id);
    state.chat.notify(&members, Event::Closed { conversation_id: id });
    if let (Some(agent), "open") = (agent, status.as_str()) {
        release(state, shop_id, agent).await;
        drain_logged(state, shop_id).await;
    }
    store::conversation(&client, user.user_id, id).await?.ok_or_else(not_found)
}
