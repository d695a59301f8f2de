//! HTTP endpoints of the chat: conversations and their history for their
//! members, the shop staff's transfer and close, and cases for their
//! parties and the operators. Messages themselves travel over the
//! WebSocket ([`super::ws`]).

use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::case::{self, CaseView, Decision, FileCase};
use super::service;
use super::store::{ConversationView, MessageView};
use crate::auth::perm::CaseArbitrate;
use crate::auth::{AuthUser, Require};
use crate::error::{ApiResult, ErrorBody};
use crate::page::PageQuery;
use crate::state::AppState;

/// Mounts the member-side routes (absolute paths).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::ws::connect)
        .service(open_conversation)
        .service(list_my_conversations)
        .service(get_conversation)
        .service(conversation_history)
        .service(file_case)
        .service(list_my_cases)
        .service(get_case)
        .service(escalate_case)
        .service(withdraw_case);
}

/// Mounts the staff routes (inside the merchant scope).
pub fn configure_merchant(cfg: &mut web::ServiceConfig) {
    cfg.service(list_shop_conversations).service(transfer_conversation).service(close_conversation);
}

/// Mounts the operator routes (inside the `/api/system` scope).
pub fn configure_system(cfg: &mut web::ServiceConfig) {
    cfg.service(case_queue).service(take_case).service(decide_case);
}

/// A conversation to open with a shop.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenConversation {
    pub shop_id: i64,
    /// One of the shop's products it is about.
    pub product_id: Option<i64>,
    /// One of the caller's orders from the shop it is about.
    pub order_id: Option<i64>,
}

/// Opens a conversation with a shop's customer service, routed to the
/// least-loaded online agent or queued (`status: queued`) when none is
/// free. A live one with the shop is answered instead (200).
#[utoipa::path(post, path = "/api/chat/conversations", tag = "chat", security(("bearer" = [])),
    request_body = OpenConversation, responses(
    (status = 201, body = ConversationView),
    (status = 200, description = "the caller's live conversation with the shop", body = ConversationView),
    (status = 401, body = ErrorBody),
    (status = 404, description = "no such active shop", body = ErrorBody),
    (status = 422, description = "`validation_failed`: product or order not of that shop", body = ErrorBody)))]
#[post("/api/chat/conversations")]
pub async fn open_conversation(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<OpenConversation>,
) -> ApiResult<HttpResponse> {
    let (view, created) = service::open(&state, &user, body.shop_id, body.product_id, body.order_id).await?;
    Ok(if created { HttpResponse::Created() } else { HttpResponse::Ok() }.json(view))
}

/// The caller's conversations (service and case threads), newest activity first.
#[utoipa::path(get, path = "/api/chat/conversations", tag = "chat", security(("bearer" = [])),
    params(PageQuery), responses(
    (status = 200, body = inline(crate::page::Page<ConversationView>)),
    (status = 401, body = ErrorBody)))]
#[get("/api/chat/conversations")]
pub async fn list_my_conversations(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::mine(&state, user.user_id, query.paging()?).await?))
}

/// One conversation, for its members (and operators, for a case thread).
#[utoipa::path(get, path = "/api/chat/conversations/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path)), responses(
    (status = 200, body = ConversationView),
    (status = 401, body = ErrorBody),
    (status = 404, description = "no such conversation, or not a member", body = ErrorBody)))]
#[get("/api/chat/conversations/{id}")]
pub async fn get_conversation(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::get(&state, &user, path.into_inner()).await?))
}

/// A window of history by seq.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Messages with a seq above this, oldest first.
    pub after_seq: Option<i64>,
    /// Messages with a seq below this; alone, the newest ones before it.
    pub before_seq: Option<i64>,
    /// 1-200 (default 50).
    pub limit: Option<i64>,
}

/// Pages through a conversation's messages by seq: `after_seq` forwards,
/// `before_seq` backwards (the newest page when neither is given is the
/// oldest: page forwards from 0).
#[utoipa::path(get, path = "/api/chat/conversations/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path), HistoryQuery), responses(
    (status = 200, body = [MessageView]),
    (status = 400, description = "`invalid_query` (limit)", body = ErrorBody),
    (status = 401, body = ErrorBody),
    (status = 404, description = "no such conversation, or not a member", body = ErrorBody)))]
#[get("/api/chat/conversations/{id}/messages")]
pub async fn conversation_history(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    query: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    let q = query.into_inner();
    let messages =
        service::history(&state, &user, path.into_inner(), q.after_seq, q.before_seq, q.limit).await?;
    Ok(HttpResponse::Ok().json(messages))
}

/// Filter of a shop's conversations.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShopConversationsQuery {
    /// `queued`, `open` or `closed`.
    pub status: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// The shop's customer-service conversations (`chat.serve`).
#[utoipa::path(get, path = "/api/merchant/shops/{shop_id}/chat/conversations", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ShopConversationsQuery), responses(
    (status = 200, body = inline(crate::page::Page<ConversationView>)),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: not chat staff of this shop", body = ErrorBody)))]
#[get("/chat/conversations")]
pub async fn list_shop_conversations(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
    query: web::Query<ShopConversationsQuery>,
) -> ApiResult<HttpResponse> {
    let paging = crate::page::Paging::new(query.page, query.per_page)?;
    let page = service::shop_list(&state, &user, path.into_inner(), query.status.as_deref(), paging).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// A colleague to hand a conversation to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// Staff of the shop holding `chat.serve`, online and below the cap.
    pub agent_id: i64,
}

/// Hands a conversation to a colleague (`chat.serve`).
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/chat/conversations/{id}/transfer", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("id" = i64, Path)), request_body = TransferRequest,
    responses(
    (status = 200, body = ConversationView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden` or `shop_inactive`", body = ErrorBody),
    (status = 404, description = "no such conversation in this shop", body = ErrorBody),
    (status = 409, description = "`invalid_state`: closed, already theirs, or the colleague is offline or full", body = ErrorBody),
    (status = 422, description = "`validation_failed`: agent_id is not chat staff here", body = ErrorBody)))]
#[post("/chat/conversations/{id}/transfer")]
pub async fn transfer_conversation(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, i64)>,
    body: web::Json<TransferRequest>,
) -> ApiResult<HttpResponse> {
    let (shop_id, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(service::transfer(&state, &user, shop_id, id, body.agent_id).await?))
}

/// Closes a conversation (`chat.serve`); its agent's slot goes to the queue.
#[utoipa::path(post, path = "/api/merchant/shops/{shop_id}/chat/conversations/{id}/close", tag = "merchant",
    security(("bearer" = [])), params(("shop_id" = i64, Path), ("id" = i64, Path)), responses(
    (status = 200, body = ConversationView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`", body = ErrorBody),
    (status = 404, description = "no such conversation in this shop", body = ErrorBody),
    (status = 409, description = "`invalid_state`: already closed", body = ErrorBody)))]
#[post("/chat/conversations/{id}/close")]
pub async fn close_conversation(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    let (shop_id, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(service::close(&state, &user, shop_id, id).await?))
}

/// Files a complaint, appeal or arbitration request; its thread opens
/// between the filer and the respondent.
#[utoipa::path(post, path = "/api/cases", tag = "cases", security(("bearer" = [])), request_body = FileCase,
    responses(
    (status = 201, body = CaseView),
    (status = 401, body = ErrorBody),
    (status = 403, description = "`forbidden`: filing for a shop without `chat.serve` there", body = ErrorBody),
    (status = 404, description = "no such shop", body = ErrorBody),
    (status = 422, description = "`validation_failed` (subject, description, order_id, against_user_id)", body = ErrorBody)))]
#[post("/api/cases")]
pub async fn file_case(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<FileCase>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Created().json(case::file(&state, &user, body.into_inner()).await?))
}

/// The cases the caller filed or must answer, newest first.
#[utoipa::path(get, path = "/api/cases", tag = "cases", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = inline(crate::page::Page<CaseView>)),
    (status = 401, body = ErrorBody)))]
#[get("/api/cases")]
pub async fn list_my_cases(
    state: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(case::mine(&state, &user, query.paging()?).await?))
}

/// A case with its status history, for its parties and operators.
#[utoipa::path(get, path = "/api/cases/{id}", tag = "cases", security(("bearer" = [])),
    params(("id" = i64, Path)), responses(
    (status = 200, body = CaseView),
    (status = 401, body = ErrorBody),
    (status = 404, description = "no such case, or not a party", body = ErrorBody)))]
#[get("/api/cases/{id}")]
pub async fn get_case(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(case::get(&state, &user, path.into_inner()).await?))
}

/// A party escalates an open case to the operators' queue.
#[utoipa::path(post, path = "/api/cases/{id}/escalate", tag = "cases", security(("bearer" = [])),
    params(("id" = i64, Path)), responses(
    (status = 200, body = CaseView),
    (status = 401, body = ErrorBody),
    (status = 404, description = "no such case, or not a party", body = ErrorBody),
    (status = 409, description = "`invalid_state`: not open", body = ErrorBody)))]
#[post("/api/cases/{id}/escalate")]
pub async fn escalate_case(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(case::escalate(&state, &user, path.into_inner()).await?))
}

/// The filer withdraws a case that is not yet being arbitrated.
#[utoipa::path(post, path = "/api/cases/{id}/withdraw", tag = "cases", security(("bearer" = [])),
    params(("id" = i64, Path)), responses(
    (status = 200, body = CaseView),
    (status = 401, body = ErrorBody),
    (status = 404, description = "no such case, or not its filer", body = ErrorBody),
    (status = 409, description = "`invalid_state`", body = ErrorBody)))]
#[post("/api/cases/{id}/withdraw")]
pub async fn withdraw_case(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(case::withdraw(&state, &user, path.into_inner()).await?))
}

/// Filter of the operators' queue.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CaseQueueQuery {
    /// One status instead of `escalated` + `in_arbitration`.
    pub status: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// The operators' queue of cases waiting for a decision, longest waiting first (`case.arbitrate`).
#[utoipa::path(get, path = "/api/system/cases", tag = "system", security(("bearer" = [])),
    params(CaseQueueQuery), responses(
    (status = 200, body = inline(crate::page::Page<CaseView>)),
    (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody)))]
#[get("/cases")]
pub async fn case_queue(
    state: web::Data<AppState>,
    _operator: Require<CaseArbitrate>,
    query: web::Query<CaseQueueQuery>,
) -> ApiResult<HttpResponse> {
    let paging = crate::page::Paging::new(query.page, query.per_page)?;
    Ok(HttpResponse::Ok().json(case::queue(&state, query.status.as_deref(), paging).await?))
}

/// An operator takes an escalated case and joins its thread (`case.arbitrate`).
#[utoipa::path(post, path = "/api/system/cases/{id}/take", tag = "system", security(("bearer" = [])),
    params(("id" = i64, Path)), responses(
    (status = 200, body = CaseView),
    (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: not escalated", body = ErrorBody)))]
#[post("/cases/{id}/take")]
pub async fn take_case(
    state: web::Data<AppState>,
    operator: Require<CaseArbitrate>,
    path: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(case::take(&state, &operator, path.into_inner()).await?))
}

/// An operator's decision.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    pub decision: Decision,
    /// 1-2000 characters, shown to both parties.
    pub note: String,
}

/// Decides an escalated case; its thread closes (`case.arbitrate`).
#[utoipa::path(post, path = "/api/system/cases/{id}/decision", tag = "system", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = DecideRequest, responses(
    (status = 200, body = CaseView),
    (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "`invalid_state`: not escalated", body = ErrorBody),
    (status = 422, description = "`validation_failed` (note) or `invalid_body` (decision)", body = ErrorBody)))]
#[post("/cases/{id}/decision")]
pub async fn decide_case(
    state: web::Data<AppState>,
    operator: Require<CaseArbitrate>,
    path: web::Path<i64>,
    body: web::Json<DecideRequest>,
) -> ApiResult<HttpResponse> {
    let case = case::decide(&state, &operator, path.into_inner(), body.decision, &body.note).await?;
    Ok(HttpResponse::Ok().json(case))
}
