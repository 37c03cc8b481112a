//! Background jobs: enqueue a chat message or an agent run, follow it, cancel it. The user's
//! message is stored at enqueue time, so nothing is lost whatever happens to the run.

use std::collections::VecDeque;
use std::convert::Infallible;

use crate::json::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_domain::{Job, JobEvent, JobStatus, NewJob, QueueStats};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::chat::{enqueue_turn, ChatRequest};
use super::PageQuery;
use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::jobs::{AGENT, CHAT};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_job, list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(job_events))
}

pub fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(queue))
}

/// A job: a message for the assistant, or an input for one of the caller's agents.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// A chat message, run like `POST /api/v1/chat`.
    #[serde(default)]
    pub message: Option<String>,
    /// Continue this conversation (with `message`).
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
    #[serde(default)]
    pub model: Option<String>,
    /// Run this agent (with `input`).
    #[serde(default)]
    pub agent_id: Option<Uuid>,
    #[serde(default)]
    pub input: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobCreated {
    pub job_id: Uuid,
    /// Always `queued`.
    pub status: JobStatus,
    pub conversation_id: Uuid,
}

/// Enqueues a job and answers at once; follow it with `GET /api/v1/jobs/{id}` or its events.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", security(("bearer" = [])), request_body = JobRequest,
    responses((status = 202, body = JobCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "Unknown agent or conversation", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_job(
    State(state): State<AppState>,
    Auth(p): Auth,
    JsonBody(req): JsonBody<JobRequest>,
) -> ApiResult<(StatusCode, Json<JobCreated>)> {
    let job = enqueue(&state, p.user_id(), req).await?;
    let conversation_id = job.input["conversation_id"].as_str().and_then(|s| s.parse().ok()).unwrap_or_default();
    Ok((StatusCode::ACCEPTED, Json(JobCreated { job_id: job.id, status: job.status, conversation_id })))
}

/// Stores the user's message and enqueues its run.
pub(crate) async fn enqueue(state: &AppState, owner: Uuid, req: JobRequest) -> ApiResult<Job> {
    let (kind, message, agent_id) = match (req.message, req.agent_id, req.input) {
        (Some(message), None, None) => (CHAT, message, None),
        (None, Some(agent), Some(input)) => {
            if req.conversation_id.is_some() || req.model.is_some() {
                return Err(ApiError::bad_request("invalid_job", "an agent job takes `agent_id` and `input` only"));
            }
            super::agents::owned_agent(state, owner, agent).await?;
            (AGENT, input, Some(agent))
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_job",
                "give either `message` (a chat job) or `agent_id` and `input` (an agent run)",
            ))
        }
    };
    let model = req.model.clone();
    let chat = ChatRequest {
        message: message.clone(),
        conversation_id: req.conversation_id,
        model: req.model,
        credentials: None,
        attachments: Vec::new(),
    };
    // The message, the job and its first event are stored in one transaction.
    let job = NewJob {
        kind: kind.into(),
        input: json!({ "message": message, "model": model, "agent_id": agent_id }),
        max_attempts: state.config.job_max_attempts,
    };
    let job = enqueue_turn(state, owner, chat, job).await?;
    state.jobs.enqueued(job.id).await;
    tracing::info!(job = %job.id, kind, "job enqueued");
    Ok(job)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// `queued`, `running`, `completed`, `failed` or `cancelled`.
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub offset: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub items: Vec<Job>,
    pub next_cursor: Option<String>,
}

/// The caller's jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", security(("bearer" = [])), params(JobListQuery),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_jobs(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<JobListQuery>,
) -> ApiResult<Json<JobList>> {
    let status = parse_status(q.status.as_deref())?;
    let page = PageQuery { limit: q.limit, cursor: q.cursor, offset: q.offset }.to_request()?;
    let page = state.store.list_jobs(p.user_id(), status, page).await?;
    Ok(Json(JobList { items: page.items, next_cursor: page.next_cursor }))
}

pub(crate) fn parse_status(status: Option<&str>) -> ApiResult<Option<JobStatus>> {
    match status {
        None | Some("") => Ok(None),
        Some(s) => JobStatus::parse(s).map(Some).ok_or_else(|| {
            ApiError::bad_request("invalid_status", "status is one of queued, running, completed, failed, cancelled")
        }),
    }
}

/// One job: status, result or error, token usage, attempts, times.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Job), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_job(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<Uuid>) -> ApiResult<Json<Job>> {
    Ok(Json(state.store.get_job(p.user_id(), id).await?.ok_or_else(|| ApiError::not_found("job"))?))
}

/// Cancels a queued job at once; a running one stops within a second. A finished job is
/// returned unchanged.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Job), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn cancel_job(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<Uuid>) -> ApiResult<Json<Job>> {
    let before = state.store.get_job(p.user_id(), id).await?.ok_or_else(|| ApiError::not_found("job"))?;
    let job = state.store.cancel_job(p.user_id(), id).await?.ok_or_else(|| ApiError::not_found("job"))?;
    if before.status == JobStatus::Queued && job.status == JobStatus::Cancelled {
        let event = json!({"status": "cancelled", "error": "cancelled by its owner"});
        let _ = state.store.append_job_event(id, "status", &event, true).await;
    }
    Ok(Json(job))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Replay only events after this number (also read from `Last-Event-ID`).
    pub after: Option<i64>,
}

/// The job's progress as Server-Sent Events — `status`, `tool_call`, `tool_result`, `delta`,
/// `result` — each with its number as the event id. Everything that already happened is
/// replayed first; the stream ends after the job's final status.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", tag = "jobs", security(("bearer" = [])),
    params(("id" = Uuid, Path), EventsQuery),
    responses((status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn job_events(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>> {
    let owner = p.user_id();
    let last_seen = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let after = q.after.or(last_seen).unwrap_or(0);
    let first = state.store.job_events(owner, id, after).await?.ok_or_else(|| ApiError::not_found("job"))?;
    let follow = Follow { state, owner, job: id, last: after, pending: first.into(), done: false, quiet_polls: 0 };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        let event = f.next().await?;
        let sse = Event::default().id(event.seq.to_string()).event(&event.kind).data(event.payload.to_string());
        Some((Ok(sse), f))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Following a job's events: what was fetched and not yet sent, and whether the end was seen.
struct Follow {
    state: AppState,
    owner: Uuid,
    job: Uuid,
    last: i64,
    pending: VecDeque<JobEvent>,
    done: bool,
    quiet_polls: u32,
}

impl Follow {
    async fn next(&mut self) -> Option<JobEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.last = event.seq;
                let status = event.payload.get("status").and_then(|s| s.as_str()).and_then(JobStatus::parse);
                if event.kind == "status" && status.is_some_and(JobStatus::is_final) {
                    self.done = true;
                }
                return Some(event);
            }
            if self.done {
                return None;
            }
            tokio::select! {
                () = self.state.shutdown.cancelled() => return None,
                () = tokio::time::sleep(switchboard_jobs::PROGRESS_EVERY) => {}
            }
            match self.state.store.job_events(self.owner, self.job, self.last).await {
                Ok(Some(events)) if !events.is_empty() => {
                    self.quiet_polls = 0;
                    self.pending.extend(events);
                }
                Ok(Some(_)) => {
                    // A job finished without its final event (its worker died while recording
                    // it): stop once it has been quiet for a while.
                    self.quiet_polls += 1;
                    if self.quiet_polls.is_multiple_of(20) {
                        let job = self.state.store.get_job(self.owner, self.job).await.ok().flatten();
                        if job.is_none_or(|j| j.status.is_final()) {
                            return None;
                        }
                    }
                }
                Ok(None) => return None,
                Err(e) => tracing::warn!(error = %e, "reading job events failed; retrying"),
            }
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct QueueReport {
    #[serde(flatten)]
    pub stats: QueueStats,
    /// Where the queue lives: `sqlite` or `postgres` (the database), or `redis` (Redis Streams).
    pub backend: &'static str,
    /// The database holding the job records: `sqlite` or `postgres`.
    pub database: &'static str,
    /// With Redis Streams: what the stream holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streams: Option<StreamBacklog>,
}

/// What the Redis stream holds for the workers.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamBacklog {
    /// Job ids not handed to a worker yet.
    pub waiting: u64,
    /// Handed to a worker, not acknowledged yet (running, or left by a worker that died).
    pub pending: u64,
    /// Retries waiting out their backoff.
    pub delayed: u64,
}

/// The queue at a glance: jobs by status, failures in the last hour, live workers and their
/// last heartbeat.
#[utoipa::path(get, path = "/api/v1/admin/queue", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = QueueReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn queue(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<QueueReport>> {
    let stats = state.store.queue_stats(switchboard_domain::now() - chrono::Duration::seconds(30)).await?;
    let streams = match state.jobs.streams() {
        Some(streams) => {
            let backlog = streams.backlog().await.map_err(|e| {
                tracing::warn!(error = %e, "the Redis stream's figures are unavailable");
                ApiError::unavailable("queue_unavailable", "the job queue's Redis cannot be reached")
            })?;
            Some(StreamBacklog { waiting: backlog.waiting, pending: backlog.pending, delayed: backlog.delayed })
        }
        None => None,
    };
    let database = state.store.backend();
    let backend = if streams.is_some() { "redis" } else { database };
    Ok(Json(QueueReport { stats, backend, database, streams }))
}
