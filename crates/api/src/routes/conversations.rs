//! A user's conversations and their messages. Another user's id answers 404, like a missing one.

use crate::json::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_domain::{Conversation, Id, Message, PageRequest, MAX_PAGE_SIZE};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::PageQuery;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation, rename_conversation, delete_conversation))
        .routes(routes!(list_messages))
}

#[derive(Serialize, ToSchema)]
pub struct ConversationList {
    pub items: Vec<Conversation>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: Conversation,
    /// The first messages in order (up to 100); page on with `/messages?cursor=`.
    pub messages: Vec<Message>,
    pub messages_next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub items: Vec<Message>,
    pub next_cursor: Option<String>,
}

/// The caller's conversations, most recently updated first.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = ConversationList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_conversations(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<ConversationList>> {
    let page = state.store.list_conversations(p.user_id(), q.to_request()?).await?;
    Ok(Json(ConversationList { items: page.items, next_cursor: page.next_cursor }))
}

/// One conversation with its messages in order.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Conversation id")),
    responses((status = 200, body = ConversationDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_conversation(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Id>,
) -> ApiResult<Json<ConversationDetail>> {
    let conversation =
        state.store.get_conversation(p.user_id(), id).await?.ok_or_else(|| ApiError::not_found("conversation"))?;
    let page = state
        .store
        .list_messages(p.user_id(), id, PageRequest::new(Some(MAX_PAGE_SIZE), None, None))
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok(Json(ConversationDetail { conversation, messages: page.items, messages_next_cursor: page.next_cursor }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameConversation {
    /// The new title: not blank, at most 200 characters.
    pub title: String,
}

/// Renames a conversation.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Conversation id")), request_body = RenameConversation,
    responses((status = 200, body = Conversation), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn rename_conversation(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Id>,
    JsonBody(body): JsonBody<RenameConversation>,
) -> ApiResult<Json<Conversation>> {
    let title = body.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ApiError::bad_request("invalid_title", "the title must be 1 to 200 characters"));
    }
    let renamed = state.store.rename_conversation(p.user_id(), id, title).await?;
    renamed.map(Json).ok_or_else(|| ApiError::not_found("conversation"))
}

/// Deletes a conversation and all its messages.
#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Conversation id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_conversation(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Id>,
) -> ApiResult<StatusCode> {
    if state.store.delete_conversation(p.user_id(), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("conversation"))
    }
}

/// Messages of a conversation, oldest first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Conversation id"), PageQuery),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_messages(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Id>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<MessageList>> {
    let page = state
        .store
        .list_messages(p.user_id(), id, q.to_request()?)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok(Json(MessageList { items: page.items, next_cursor: page.next_cursor }))
}
