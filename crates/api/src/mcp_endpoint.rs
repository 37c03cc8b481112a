//! `/mcp`: the built-in tasks MCP server over Streamable HTTP, behind the same bearer sign-in and
//! rate limit as the API. Both protocol eras are served: the stateless 2026-07-28 protocol and
//! the session-based one most deployed clients still speak.
//!
//! A session belongs to the user who created it: a request that names another user's session
//! is answered like an unknown session (404), so nobody can read another user's event stream.
//! Sessions are recorded in the database (owner and the client's initialize parameters), so a
//! client's next request may land on any server sharing it: that server restores the session
//! by replaying the handshake, and the client never notices.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::{SessionState, SessionStore, SessionStoreError};
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use switchboard_domain::{Id, Principal};
use switchboard_mcp::TasksServer;
use switchboard_store::Store;

use crate::error::ApiError;
use crate::AppState;

const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");

/// How long a session is remembered for another server to take over.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

tokio::task_local! {
    /// The signed-in user of the `/mcp` request being served, for the session store.
    static CALLER: Id;
}

/// Sessions whose owner is remembered in memory.
const OWNERS_CACHED: usize = 100_000;

/// Which user created each session this process has seen (a cache of the database's record).
#[derive(Default)]
pub struct SessionOwners(Mutex<HashMap<String, Id>>);

impl SessionOwners {
    fn get(&self, session: &str) -> Option<Id> {
        self.0.lock().expect("session owners lock").get(session).copied()
    }

    fn insert(&self, session: &str, owner: Id) {
        let mut owners = self.0.lock().expect("session owners lock");
        if owners.len() >= OWNERS_CACHED && !owners.contains_key(session) {
            owners.clear(); // the database still knows them all
        }
        owners.entry(session.to_owned()).or_insert(owner);
    }

    fn remove(&self, session: &str) {
        self.0.lock().expect("session owners lock").remove(session);
    }
}

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
    http.session_store = Some(Arc::new(SharedSessions { store: state.store.clone() }));
    let tasks = state.tasks.clone();
    StreamableHttpService::new(
        move || Ok(TasksServer::for_signed_in_users(tasks.clone())),
        Arc::new(LocalSessionManager::default()),
        http,
    )
}

/// Sessions in the database, seen through the caller: a session of another user is unknown.
struct SharedSessions {
    store: Arc<dyn Store>,
}

fn caller() -> Result<Id, SessionStoreError> {
    CALLER.try_with(|id| *id).map_err(|_| "an MCP session was used outside a signed-in request".into())
}

#[async_trait::async_trait]
impl SessionStore for SharedSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let caller = caller()?;
        match self.store.mcp_session(session_id).await? {
            Some((owner, state)) if owner == caller => Ok(Some(serde_json::from_value(state)?)),
            _ => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let expired_before = switchboard_domain::now() - SESSION_LIFETIME;
        let state = serde_json::to_value(state)?;
        Ok(self.store.put_mcp_session(session_id, caller()?, &state, expired_before).await?)
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.store.delete_mcp_session(session_id, caller()?).await?;
        Ok(())
    }
}

/// Middleware on `/mcp`: refuses another user's session id, records who opens a session, and
/// makes the caller known to the session store.
pub async fn bind_sessions(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(user) = req.extensions().get::<Principal>().map(Principal::user_id) else {
        return next.run(req).await;
    };
    let asked = req.headers().get(&SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(session) = &asked {
        let owner = match state.mcp_sessions.get(session) {
            Some(owner) => Some(owner),
            // Not seen here: perhaps opened on another server.
            None => match state.store.mcp_session(session).await {
                Ok(found) => found.map(|(owner, _)| owner),
                Err(e) => return ApiError::from(e).into_response(),
            },
        };
        match owner {
            Some(owner) if owner != user => {
                return ApiError::new(StatusCode::NOT_FOUND, "session_not_found", "no such MCP session").into_response()
            }
            Some(owner) => state.mcp_sessions.insert(session, owner),
            None => {}
        }
    }
    let is_delete = req.method() == axum::http::Method::DELETE;
    let mut response = CALLER.scope(user, next.run(req)).await;
    // A session ended on request has nothing left to accept: say 204, which clients expect (the
    // Python SDK reports 202 as a failed termination).
    if is_delete && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    if let Some(created) = response.headers().get(&SESSION_HEADER).and_then(|v| v.to_str().ok()) {
        state.mcp_sessions.insert(created, user);
    }
    if let (true, Some(session)) = (is_delete && response.status().is_success(), asked) {
        state.mcp_sessions.remove(&session);
    }
    response
}
