//! Liveness, readiness and metrics.

use crate::json::Json;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ready)).routes(routes!(metrics))
}

/// The protected resource metadata of `/mcp` (RFC 9728), at both places clients look.
pub fn well_known_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(protected_resource)).routes(routes!(protected_resource_of_mcp))
}

/// What `/mcp` says about itself, so MCP clients that follow the MCP authorization
/// specification find where to sign in.
#[derive(Serialize, ToSchema)]
pub struct ProtectedResource {
    /// `<public_url>/mcp`: the audience tokens for it carry.
    pub resource: String,
    /// The OpenID Connect issuers whose tokens `/mcp` accepts.
    pub authorization_servers: Vec<String>,
    pub bearer_methods_supported: Vec<&'static str>,
    pub resource_name: &'static str,
    pub resource_documentation: String,
}

fn resource_metadata(state: &AppState) -> Json<ProtectedResource> {
    let public = &state.config.public_url;
    Json(ProtectedResource {
        resource: format!("{public}/mcp"),
        authorization_servers: state.auth.issuers(),
        bearer_methods_supported: vec!["header"],
        resource_name: "Switchboard tasks",
        resource_documentation: format!("{public}/docs"),
    })
}

#[utoipa::path(get, path = "/.well-known/oauth-protected-resource", tag = "ops",
    responses((status = 200, body = ProtectedResource)))]
async fn protected_resource(State(state): State<AppState>) -> Json<ProtectedResource> {
    resource_metadata(&state)
}

#[utoipa::path(get, path = "/.well-known/oauth-protected-resource/mcp", tag = "ops",
    responses((status = 200, body = ProtectedResource)))]
async fn protected_resource_of_mcp(State(state): State<AppState>) -> Json<ProtectedResource> {
    resource_metadata(&state)
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
