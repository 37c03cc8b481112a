//! The original task-chat specification's routes, as thin adapters over the canonical handlers:
//! a session there is a conversation here.

use crate::json::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_domain::{Conversation, Message, PageRequest, MAX_PAGE_SIZE};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::attachments;
use super::chat::{begin, run_turn, ChatRequest};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat))
        .routes(routes!(history))
        .routes(routes!(session_messages))
        .routes(routes!(run))
        .routes(routes!(result))
        .routes(routes!(jobs))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompatChatRequest {
    pub message: String,
    /// The session (conversation) to continue; a new one when absent.
    #[serde(default)]
    pub session_id: Option<Uuid>,
    /// Credentials for the workflow being set up: `{"server": {"KEY": "value"}}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credentials:
        Option<std::collections::BTreeMap<String, std::collections::BTreeMap<String, secrecy::SecretString>>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompatChatReply {
    pub reply: String,
    pub session_id: Uuid,
    /// Credentials the workflow still needs: `mcp_server`, `credential_key`, `description`, `instructions`.
    pub required_credentials: Vec<switchboard_agent::credentials::MissingCredential>,
    /// `success`, `pending_credentials`, `analyzing` or `no_match`.
    #[schema(value_type = String)]
    pub status: switchboard_agent::builder::Status,
    pub agent_created: bool,
    pub agent_id: Option<Uuid>,
}

/// The form `POST /api/chat` also accepts, to attach text files to the message.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the multipart form; the fields are read by `attachments`
pub struct CompatChatForm {
    pub message: String,
    pub session_id: Option<Uuid>,
    /// Text-like files (plain text, Markdown, CSV, JSON, YAML, XML, source code), UTF-8; their
    /// content is given to the model after the message.
    #[schema(value_type = Vec<String>, format = Binary)]
    #[allow(non_snake_case)]
    pub files: Vec<Vec<u8>>,
}

/// `POST /api/chat`: `POST /api/v1/chat` in the original specification's shape. Send JSON, or
/// `multipart/form-data` with `message`, `session_id` and `files[]` to attach text files.
#[utoipa::path(post, path = "/api/chat", tag = "compat", security(("bearer" = [])),
    request_body(content((CompatChatRequest = "application/json"), (CompatChatForm = "multipart/form-data"))),
    responses((status = 200, body = CompatChatReply), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, description = "A file (or the body) is larger than allowed", body = ErrorBody),
        (status = 415, description = "A file that is not text", body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn chat(State(state): State<AppState>, Auth(p): Auth, request: Request) -> ApiResult<Json<CompatChatReply>> {
    let is_form = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (req, files) = if is_form {
        let form = Multipart::from_request(request, &state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_form", e.body_text()))?;
        attachments::read_form(form, &state.config).await?
    } else {
        let JsonBody(req) = JsonBody::<CompatChatRequest>::from_request(request, &state).await?;
        (req, Vec::new())
    };
    let request = ChatRequest {
        message: req.message,
        conversation_id: req.session_id,
        model: None,
        credentials: req.credentials,
        attachments: files,
    };
    let begun = begin(&state, p.user_id(), request).await?;
    let reply = run_turn(&state, &begun, None).await?;
    Ok(Json(CompatChatReply {
        reply: reply.message.content,
        session_id: reply.conversation_id,
        required_credentials: reply.required_credentials,
        status: reply.status,
        agent_created: reply.agent_created,
        agent_id: reply.agent_id,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Sessions per page, 1–100 (default 20).
    pub limit: Option<u32>,
    pub offset: Option<u64>,
    /// Only this session.
    pub session_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompatMessage {
    pub id: Uuid,
    /// `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompatSession {
    pub session_id: Uuid,
    pub title: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistorySession {
    pub session_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub messages: Vec<CompatMessage>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    pub sessions: Vec<HistorySession>,
    /// All of the caller's sessions (or 1 with `session_id`).
    pub total_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionMessages {
    pub session: CompatSession,
    pub messages: Vec<CompatMessage>,
}

fn compat_message(m: Message) -> CompatMessage {
    CompatMessage { id: m.id, role: m.role.as_str().to_owned(), content: m.content, created_at: m.created_at }
}

async fn first_messages(state: &AppState, owner: Uuid, conversation: &Conversation) -> ApiResult<Vec<CompatMessage>> {
    let page = state
        .store
        .list_messages(owner, conversation.id, PageRequest::new(Some(MAX_PAGE_SIZE), None, None))
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    Ok(page.items.into_iter().map(compat_message).collect())
}

/// `GET /api/chat/history`: the caller's sessions with their messages, newest first.
#[utoipa::path(get, path = "/api/chat/history", tag = "compat", security(("bearer" = [])), params(HistoryQuery),
    responses((status = 200, body = History), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn history(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<History>> {
    let owner = p.user_id();
    let (conversations, total_count) = match q.session_id {
        Some(id) => {
            let c = state.store.get_conversation(owner, id).await?.ok_or_else(|| ApiError::not_found("session"))?;
            (vec![c], 1)
        }
        None => {
            let page = state.store.list_conversations(owner, PageRequest::new(q.limit, None, q.offset)).await?;
            (page.items, state.store.count_conversations(owner).await?)
        }
    };
    let mut sessions = Vec::with_capacity(conversations.len());
    for c in &conversations {
        sessions.push(HistorySession {
            session_id: c.id,
            created_at: c.created_at,
            messages: first_messages(&state, owner, c).await?,
        });
    }
    Ok(Json(History { sessions, total_count }))
}

/// `GET /api/sessions/{id}/messages`: one session and its messages.
#[utoipa::path(get, path = "/api/sessions/{id}/messages", tag = "compat", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Session (conversation) id")),
    responses((status = 200, body = SessionMessages), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn session_messages(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<SessionMessages>> {
    let owner = p.user_id();
    let c = state.store.get_conversation(owner, id).await?.ok_or_else(|| ApiError::not_found("session"))?;
    let messages = first_messages(&state, owner, &c).await?;
    Ok(Json(SessionMessages {
        session: CompatSession { session_id: c.id, title: c.title, created_at: c.created_at, updated_at: c.updated_at },
        messages,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompatRunRequest {
    pub message: String,
    /// Continue this session.
    #[serde(default)]
    pub session_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompatRunAccepted {
    pub job_id: Uuid,
    /// `queued`.
    pub status: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompatTokenUsage {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompatJob {
    pub job_id: Uuid,
    pub status: String,
    /// The assistant's reply, when completed.
    pub result: Option<String>,
    pub error_message: Option<String>,
    pub token_usage: CompatTokenUsage,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

fn compat_job(job: switchboard_domain::Job) -> CompatJob {
    CompatJob {
        job_id: job.id,
        status: job.status.as_str().to_owned(),
        result: job.result.as_ref().and_then(|r| r["message"]["content"].as_str()).map(str::to_owned),
        error_message: job.error,
        token_usage: CompatTokenUsage {
            input_tokens: job.input_tokens,
            output_tokens: job.output_tokens,
            total_tokens: job.total_tokens,
        },
        created_at: job.created_at,
        started_at: job.started_at,
        completed_at: job.completed_at,
    }
}

/// `POST /run`: a chat message run in the background (`POST /api/v1/jobs`).
#[utoipa::path(post, path = "/run", tag = "compat", security(("bearer" = [])), request_body = CompatRunRequest,
    responses((status = 202, body = CompatRunAccepted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn run(
    State(state): State<AppState>,
    Auth(p): Auth,
    JsonBody(req): JsonBody<CompatRunRequest>,
) -> ApiResult<(axum::http::StatusCode, Json<CompatRunAccepted>)> {
    let request = super::jobs::JobRequest {
        message: Some(req.message),
        conversation_id: req.session_id,
        model: None,
        agent_id: None,
        input: None,
    };
    let job = super::jobs::enqueue(&state, p.user_id(), request).await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(CompatRunAccepted {
            job_id: job.id,
            status: job.status.as_str().to_owned(),
            message: format!("job queued; follow it at /result/{}", job.id),
        }),
    ))
}

/// `GET /result/{job_id}`: the job in the original specification's shape.
#[utoipa::path(get, path = "/result/{job_id}", tag = "compat", security(("bearer" = [])), params(("job_id" = Uuid, Path)),
    responses((status = 200, body = CompatJob), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn result(State(state): State<AppState>, Auth(p): Auth, Path(job_id): Path<Uuid>) -> ApiResult<Json<CompatJob>> {
    let job = state.store.get_job(p.user_id(), job_id).await?.ok_or_else(|| ApiError::not_found("job"))?;
    Ok(Json(compat_job(job)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompatJobsQuery {
    pub status: Option<String>,
    /// 1–100 (default 20).
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompatJobList {
    pub jobs: Vec<CompatJob>,
}

/// `GET /jobs`: the caller's jobs, newest first.
#[utoipa::path(get, path = "/jobs", tag = "compat", security(("bearer" = [])), params(CompatJobsQuery),
    responses((status = 200, body = CompatJobList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn jobs(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<CompatJobsQuery>,
) -> ApiResult<Json<CompatJobList>> {
    let status = super::jobs::parse_status(q.status.as_deref())?;
    let page = PageRequest::new(q.limit, None, q.offset);
    let page = state.store.list_jobs(p.user_id(), status, page).await?;
    Ok(Json(CompatJobList { jobs: page.items.into_iter().map(compat_job).collect() }))
}
