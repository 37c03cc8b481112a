//! Switchboard's HTTP surface. Each feature is a module under [`routes`] with its own
//! `routes()`; they are merged here, behind sign-in and rate limits where they need them.

pub mod auth;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod json;
pub mod mcp_endpoint;
pub mod metrics;
pub mod ratelimit;
pub mod routes;
pub mod web;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;
use ipnet::IpNet;
use switchboard_agent::Agent;
use switchboard_mcp::TasksServer;
use switchboard_store::Store;
use switchboard_tasks::TaskService;
use tower::Layer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_scalar::{Scalar, Servable};

use crate::auth::Authenticator;
use crate::error::{ApiError, REQUEST_ID};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes (larger: 413).
    pub body_limit: usize,
    /// Longest chat message accepted, in characters.
    pub max_message_chars: usize,
    /// How many earlier messages a chat turn sends to the model.
    pub history_limit: u32,
    /// Most tokens of history a chat turn sends to the model.
    pub history_max_tokens: usize,
    /// Origins allowed to call the API from a browser; empty means same origin only.
    pub cors_allowed_origins: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Hosts and origins allowed on `/mcp`.
    pub mcp: mcp_endpoint::McpConfig,
    /// Models a chat request may name: the configured one first (empty when offline).
    pub models: Vec<String>,
    /// Longest an agent's MCP server may take to start or answer a tool call.
    pub mcp_call_timeout: std::time::Duration,
    /// Attempts a job gets before it fails.
    pub job_max_attempts: i32,
    /// Largest file attached to a chat message, in bytes.
    pub max_file_bytes: usize,
    /// Most files attached to one chat message.
    pub max_files: usize,
    /// Where people reach this server (links that come back to it).
    pub public_url: String,
    /// The catalog server the original specification's `/auth/*` routes connect.
    pub google_connection_server: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            body_limit: 1024 * 1024,
            max_message_chars: 32_000,
            history_limit: 20,
            history_max_tokens: 8000,
            cors_allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            mcp: mcp_endpoint::McpConfig {
                allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
                allowed_origins: Vec::new(),
            },
            models: Vec::new(),
            mcp_call_timeout: std::time::Duration::from_secs(30),
            job_max_attempts: 3,
            max_file_bytes: 256 * 1024,
            max_files: 5,
            public_url: "http://127.0.0.1:8080".into(),
            google_connection_server: "gmail".into(),
        }
    }
}

/// What every handler can reach: one shared [`Services`], so that the per-request clones made by
/// extractors and middleware are a single reference-count increment.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The server's parts, built once at start.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    /// `None` when rate limiting is turned off.
    pub limiter: Option<Arc<dyn RateLimiter>>,
    /// Runs chat turns against the configured model.
    pub agent: Agent,
    pub tasks: TaskService,
    /// The MCP server catalog and its search index.
    pub catalog: switchboard_catalog::Catalog,
    /// How enqueued jobs reach the workers (the database, or Redis Streams).
    pub jobs: switchboard_jobs::Queue,
    /// Turns described workflows into agents; holds the credentials (vault) service.
    pub builder: switchboard_agent::builder::Builder,
    /// The built-in tasks tools, called in-process by the agent.
    pub tasks_server: Arc<TasksServer>,
    /// External MCP servers kept running between agent runs.
    pub mcp_pool: switchboard_mcp::pool::ClientPool,
    /// Who owns each `/mcp` session.
    pub mcp_sessions: Arc<mcp_endpoint::SessionOwners>,
    /// Cancelled when the server shuts down, ending long-lived streams.
    pub shutdown: tokio_util::sync::CancellationToken,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ApiConfig>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard", description = "Self-hosted multi-user MCP agent server."),
    modifiers(&BearerScheme),
    tags(
        (name = "ops", description = "Health, readiness, metrics"),
        (name = "me", description = "The signed-in user"),
        (name = "auth", description = "Sign-in"),
        (name = "chat", description = "Talking to the assistant"),
        (name = "conversations", description = "Conversation history"),
        (name = "tasks", description = "The user's tasks (also reachable as MCP tools and from chat)"),
        (name = "catalog", description = "The MCP servers Switchboard knows, and finding the ones a request needs"),
        (name = "credentials", description = "The caller's credentials for catalog servers (write-only values, encrypted at rest)"),
        (name = "connections", description = "Accounts connected with OAuth instead of pasted keys (tokens encrypted at rest, never returned)"),
        (name = "agents", description = "Agents created from described workflows: export and run"),
        (name = "jobs", description = "Background runs: enqueue, follow, cancel"),
        (name = "admin", description = "Administrators only"),
        (name = "compat", description = "The original task-chat specification's routes (a session is a conversation)"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    split(None).1
}

fn split(state: Option<&AppState>) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut signed_in = OpenApiRouter::new()
        .merge(routes::me::routes())
        .merge(routes::chat::routes())
        .merge(routes::conversations::routes())
        .merge(routes::tasks::routes())
        .merge(routes::compat::routes())
        .merge(routes::admin::routes())
        .merge(routes::catalog::routes())
        .merge(routes::catalog::admin_routes())
        .merge(routes::credentials::routes())
        .merge(routes::connections::routes())
        .merge(routes::compat_auth::routes())
        .merge(routes::agents::routes())
        .merge(routes::jobs::routes())
        .merge(routes::jobs::admin_routes());
    let mut anonymous = routes::sign_in::routes()
        .merge(routes::connections::callback_routes())
        .merge(routes::compat_auth::callback_routes())
        .merge(routes::health::well_known_routes());
    if let Some(state) = state {
        // Layers run outside-in: sign-in first, then the per-user limit.
        signed_in = signed_in
            .layer(from_fn_with_state(state.clone(), ratelimit::limit))
            .layer(from_fn_with_state(state.clone(), auth::require_auth));
        anonymous = anonymous.layer(from_fn_with_state(state.clone(), ratelimit::limit));
    }
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(signed_in)
        .merge(anonymous)
        .merge(routes::health::routes())
        .split_for_parts()
}

/// The whole application as a service: routes, middleware, and trailing-slash tolerance.
pub fn service(state: AppState) -> NormalizePath<Router> {
    NormalizePathLayer::trim_trailing_slash().layer(router(state))
}

/// All routes with their middleware.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = split(Some(&state));
    let doc_json = Arc::new(doc.clone());
    let mcp = Router::new()
        .nest_service("/mcp", mcp_endpoint::service(&state))
        .layer(from_fn_with_state(state.clone(), mcp_endpoint::bind_sessions))
        .layer(from_fn_with_state(state.clone(), ratelimit::limit))
        .layer(from_fn_with_state(state.clone(), auth::require_auth_mcp));
    let mut router = routes
        .merge(mcp)
        .route("/openapi.json", axum::routing::get(move || async move { axum::Json(doc_json.as_ref().clone()) }))
        .merge(Scalar::with_url("/docs", doc))
        .merge(web::routes())
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
        })
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .layer(axum::extract::DefaultBodyLimit::max(state.config.body_limit))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id, user = tracing::field::Empty)
                })
                .on_request(())
                .on_response(|res: &Response, latency: std::time::Duration, _: &tracing::Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "answered"
                    );
                }),
        )
        .layer(from_fn(request_id));
    if let Some(cors) = cors(&state.config.cors_allowed_origins) {
        router = router.layer(cors);
    }
    router.with_state(state)
}

const REQUEST_ID_HEADER: &str = "x-request-id";

/// Gives every request an id (the client's `X-Request-Id` if it is sane), visible to handlers
/// and logs, and echoed on the response.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).expect("request ids are ASCII");
    req.headers_mut().insert(REQUEST_ID_HEADER, value.clone());
    let mut response = REQUEST_ID.scope(id, next.run(req)).await;
    response.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    response
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([axum::http::header::AUTHORIZATION, axum::http::header::CONTENT_TYPE])
            .expose_headers([HeaderName::from_static(REQUEST_ID_HEADER), axum::http::header::RETRY_AFTER]),
    )
}
