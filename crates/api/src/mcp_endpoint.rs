//! `/mcp`: the built-in tasks MCP server over Streamable HTTP, behind the same bearer sign-in and
//! rate limit as the API. Both protocol eras are served: the stateless 2026-07-28 protocol and
//! the session-based one most deployed clients still speak.
//!
//! A session belongs to the user who created it: a request that names another user's session
//! is answered like an unknown session (404), so nobody can read another user's event stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use switchboard_domain::{Id, Principal};
use switchboard_mcp::TasksServer;

use crate::error::ApiError;
use crate::AppState;

const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");

/// Which user created each live session.
#[derive(Default)]
pub struct SessionOwners(Mutex<HashMap<String, Id>>);

/// Who may reach `/mcp` from where.
#[derive(Debug, Clone)]
pub struct McpConfig {
    /// `Host` values accepted (DNS-rebinding protection); `*` accepts any.
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted; empty refuses every request that carries an `Origin`; `*` accepts any.
    pub allowed_origins: Vec<String>,
}

pub fn service(state: &AppState) -> StreamableHttpService<TasksServer, LocalSessionManager> {
    let config = &state.config.mcp;
    let mut http = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_cancellation_token(state.shutdown.child_token());
    http = if config.allowed_hosts.iter().any(|h| h == "*") {
        http.disable_allowed_hosts()
    } else {
        http.with_allowed_hosts(config.allowed_hosts.clone())
    };
    http = if config.allowed_origins.iter().any(|o| o == "*") {
        http.disable_allowed_origins()
    } else {
        http.with_allowed_origins(config.allowed_origins.clone()).enforce_origin_validation()
    };
    let tasks = state.tasks.clone();
    StreamableHttpService::new(
        move || Ok(TasksServer::for_signed_in_users(tasks.clone())),
        Arc::new(LocalSessionManager::default()),
        http,
    )
}

/// Middleware on `/mcp`: refuses another user's session id and records who opens a session.
pub async fn bind_sessions(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(user) = req.extensions().get::<Principal>().map(Principal::user_id) else {
        return next.run(req).await;
    };
    let asked = req.headers().get(&SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(session) = &asked {
        let owner = state.mcp_sessions.0.lock().expect("session owners lock").get(session).copied();
        if owner.is_some_and(|owner| owner != user) {
            return ApiError::new(StatusCode::NOT_FOUND, "session_not_found", "no such MCP session").into_response();
        }
    }
    let is_delete = req.method() == axum::http::Method::DELETE;
    let mut response = next.run(req).await;
    // A session ended on request has nothing left to accept: say 204, which clients expect (the
    // Python SDK reports 202 as a failed termination).
    if is_delete && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    let mut owners = state.mcp_sessions.0.lock().expect("session owners lock");
    if let Some(created) = response.headers().get(&SESSION_HEADER).and_then(|v| v.to_str().ok()) {
        owners.entry(created.to_owned()).or_insert(user);
    }
    if let (true, Some(session)) = (is_delete && response.status().is_success(), asked) {
        owners.remove(&session);
    }
    response
}
