//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ready)).routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: &'static str,
    /// The database backend (`/ready` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<&'static str>,
    /// The job queue's backend (`/ready` only): the database's name, or `redis`, which must answer too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<&'static str>,
}

/// Liveness: answers as long as the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok", database: None, queue: None })
}

/// Readiness: 200 when the database (and the job queue's Redis, if jobs go through Redis)
/// answers, 503 otherwise.
#[utoipa::path(get, path = "/ready", tag = "ops", responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database = Some(state.store.backend());
    let queue = Some(if state.jobs.streams().is_some() { "redis" } else { state.store.backend() });
    let checked = match state.store.ping().await {
        Ok(()) => state.jobs.ping().await,
        Err(e) => Err(e.to_string()),
    };
    match checked {
        Ok(()) => (StatusCode::OK, Json(Health { status: "ready", database, queue })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "unavailable", database, queue }))
        }
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.queue_stats(switchboard_domain::now() - chrono::Duration::seconds(30)).await {
        Ok(stats) => state.metrics.set_queue(&stats),
        Err(e) => tracing::warn!(error = %e, "queue figures unavailable for /metrics"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
