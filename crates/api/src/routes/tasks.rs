//! `/api/v1/tasks`: the signed-in user's tasks. A task is named in the path by its per-user
//! number (`/api/v1/tasks/3`) or its id.

use crate::json::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_domain::{Task, TaskFilter, TaskStatus};
use switchboard_tasks::{AddTask, TaskError, UpdateTask};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tasks, add_task))
        .routes(routes!(get_task, update_task, delete_task))
        .routes(routes!(complete_task))
}

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> ApiError {
        match e {
            TaskError::Invalid(message) => ApiError::bad_request("invalid_task", message),
            TaskError::NotFound(_) => ApiError::not_found("task"),
            TaskError::Store(e) => e.into(),
            other => ApiError::internal(&other),
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// Only tasks with this status.
    pub status: Option<TaskStatus>,
    /// Only tasks whose title or description contains this text (case-insensitive).
    pub q: Option<String>,
    /// Items per page, 1–100. Default 20.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items to skip (ignored with `cursor`).
    pub offset: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct TaskList {
    pub items: Vec<Task>,
    pub next_cursor: Option<String>,
}

/// The caller's tasks in the order they were created.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", security(("bearer" = [])), params(TaskQuery),
    responses((status = 200, body = TaskList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_tasks(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<TaskQuery>,
) -> ApiResult<Json<TaskList>> {
    let page = super::PageQuery { limit: q.limit, cursor: q.cursor, offset: q.offset }.to_request()?;
    let filter = TaskFilter { status: q.status, search: q.q.filter(|s| !s.trim().is_empty()) };
    let page = state.tasks.list(p.user_id(), filter, page).await?;
    Ok(Json(TaskList { items: page.items, next_cursor: page.next_cursor }))
}

/// Adds a task; it gets the caller's next task number.
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks", security(("bearer" = [])), request_body = AddTask,
    responses((status = 201, body = Task), (status = 400, body = ErrorBody), (status = 404, description = "Unknown parent task", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_task(
    State(state): State<AppState>,
    Auth(p): Auth,
    JsonBody(input): JsonBody<AddTask>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    Ok((StatusCode::CREATED, Json(state.tasks.add(p.user_id(), input).await?)))
}

/// One task, by number or id.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Task number (e.g. 3) or id")),
    responses((status = 200, body = Task), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_task(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<Task>> {
    Ok(Json(state.tasks.get(p.user_id(), &id).await?))
}

/// Changes a task; `null` clears `description` or `due_date`.
#[utoipa::path(patch, path = "/api/v1/tasks/{id}", tag = "tasks", security(("bearer" = [])), request_body = UpdateTask,
    params(("id" = String, Path, description = "Task number (e.g. 3) or id")),
    responses((status = 200, body = Task), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_task(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<UpdateTask>,
) -> ApiResult<Json<Task>> {
    Ok(Json(state.tasks.update(p.user_id(), &id, input).await?))
}

/// Deletes a task (its subtasks stay, without a parent).
#[utoipa::path(delete, path = "/api/v1/tasks/{id}", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Task number (e.g. 3) or id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_task(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.tasks.delete(p.user_id(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Marks a task completed.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/complete", tag = "tasks", security(("bearer" = [])),
    params(("id" = String, Path, description = "Task number (e.g. 3) or id")),
    responses((status = 200, body = Task), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn complete_task(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<String>) -> ApiResult<Json<Task>> {
    Ok(Json(state.tasks.complete(p.user_id(), &id).await?))
}
