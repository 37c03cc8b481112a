//! The caller's agents: list, read, delete, export for another MCP client, run here.

use std::collections::BTreeMap;

use crate::json::Json;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_agent::connections::ConnectionError;
use switchboard_agent::credentials::{scrub, CredentialError};
use switchboard_agent::export::{export, ExportServer, Format};
use switchboard_agent::launch::ServerTools;
use switchboard_domain::{Agent, Id};
use switchboard_mcp::client::ClientError;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::chat::{begin, run_turn_with, Begun, ChatReply, ChatRequest};
use super::credentials::credential_error;
use super::PageQuery;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::AppState;
use switchboard_agent::AgentEvent;
use tokio::sync::mpsc::UnboundedSender;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents))
        .routes(routes!(get_agent, delete_agent))
        .routes(routes!(agent_config))
        .routes(routes!(run_agent))
}

#[derive(Serialize, ToSchema)]
pub struct AgentList {
    pub items: Vec<Agent>,
    pub next_cursor: Option<String>,
}

/// The caller's agents, newest first.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = AgentList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_agents(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<AgentList>> {
    let page = state.store.list_agents(p.user_id(), q.to_request()?).await?;
    Ok(Json(AgentList { items: page.items, next_cursor: page.next_cursor }))
}

/// One agent.
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Agent), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_agent(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<Uuid>) -> ApiResult<Json<Agent>> {
    Ok(Json(owned_agent(&state, p.user_id(), id).await?))
}

/// Deletes an agent (the credentials stay: other agents may use them).
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_agent(State(state): State<AppState>, Auth(p): Auth, Path(id): Path<Uuid>) -> ApiResult<StatusCode> {
    if !state.store.delete_agent(p.user_id(), id).await? {
        return Err(ApiError::not_found("agent"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfigQuery {
    /// `claude` (Claude Desktop), `mcp-json` (Claude Code, Cursor), `fast-agent` or `vscode`. Default `mcp-json`.
    pub format: Option<String>,
    /// Put the stored secret values in the file instead of `${KEY}` placeholders.
    #[serde(default)]
    pub include_secrets: bool,
}

/// The agent's servers as another MCP client's configuration file. Secrets are placeholders
/// unless `include_secrets=true`.
#[utoipa::path(get, path = "/api/v1/agents/{id}/config", tag = "agents", security(("bearer" = [])),
    params(("id" = Uuid, Path), ConfigQuery),
    responses((status = 200, description = "The configuration file (JSON or YAML)", body = String),
        (status = 400, description = "Unknown format", body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn agent_config(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    Query(q): Query<ConfigQuery>,
) -> ApiResult<Response> {
    let format: Format = q
        .format
        .as_deref()
        .unwrap_or("mcp-json")
        .parse()
        .map_err(|e: String| ApiError::bad_request("unknown_format", e))?;
    let agent = owned_agent(&state, p.user_id(), id).await?;
    let credentials = state.builder.credentials();
    let mut entries = Vec::new();
    for name in &agent.servers {
        let entry = credentials.entry(name).await.map_err(credential_error)?;
        let values = if q.include_secrets {
            credentials.values(p.user_id(), &entry).await.map_err(credential_error)?
        } else {
            BTreeMap::new()
        };
        entries.push((entry, values));
    }
    if q.include_secrets {
        tracing::info!(agent = %agent.id, "configuration exported with secrets at the owner's request");
    }
    let servers: Vec<ExportServer> =
        entries.iter().map(|(entry, values)| ExportServer { entry, values: values.clone() }).collect();
    let text = export(format, &servers);
    let (file, media_type) = format.file();
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// What to ask the agent.
    pub input: String,
    /// Continue an earlier run's conversation; a new one otherwise.
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
}

/// Runs the agent with its servers (started for the run, with the caller's credentials) and
/// answers like a chat turn.
#[utoipa::path(post, path = "/api/v1/agents/{id}/run", tag = "agents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RunRequest,
    responses((status = 200, body = ChatReply), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "A credential the agent's servers need is not set", body = ErrorBody),
        (status = 502, description = "A server could not be started or reached; the input was kept", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn run_agent(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<Uuid>,
    body: Result<JsonBody<RunRequest>, ApiError>,
) -> ApiResult<Json<ChatReply>> {
    let owner = p.user_id();
    // Another user's agent is a 404 whatever the body holds.
    let agent = owned_agent(&state, owner, id).await?;
    let JsonBody(req) = body?;
    let servers = prepare_servers(&state, owner, &agent).await?;
    let request = ChatRequest {
        message: req.input,
        conversation_id: req.conversation_id,
        model: None,
        credentials: None,
        attachments: Vec::new(),
    };
    let begun = begin(&state, owner, request).await?;
    Ok(Json(run_prepared(&state, &begun, &agent, servers, None).await?))
}

/// An agent's servers, ready to start: their configurations with the owner's credentials, and
/// those credentials' values (to scrub from error messages).
pub(crate) struct PreparedServers {
    pub(crate) configs: Vec<switchboard_mcp::client::ServerConfig>,
    secrets: Vec<secrecy::SecretString>,
}

/// Resolves the agent's servers; a missing credential is 409.
pub(crate) async fn prepare_servers(state: &AppState, owner: Id, agent: &Agent) -> ApiResult<PreparedServers> {
    prepare(state, owner, &agent.servers).await
}

/// Resolves catalog servers (by name or slug) with the owner's credentials and connected
/// accounts; a missing credential is 409, and so is a connection that needs consent again (with
/// the link that gives it).
pub(crate) async fn prepare(state: &AppState, owner: Id, servers: &[String]) -> ApiResult<PreparedServers> {
    let credentials = state.builder.credentials();
    let mut prepared = PreparedServers { configs: Vec::new(), secrets: Vec::new() };
    for name in servers {
        let entry = credentials.entry(name).await.map_err(credential_error)?;
        match credentials.prepare(owner, &entry, state.config.mcp_call_timeout).await {
            Ok(ready) => {
                prepared.secrets.extend(ready.secrets);
                prepared.configs.push(ready.config);
            }
            Err(CredentialError::Connection(ConnectionError::NeedsConsent { .. })) => {
                return Err(connect_again(state, owner, &entry.slug, "connection_needs_consent").await);
            }
            Err(e) => return Err(credential_error(e)),
        }
    }
    Ok(prepared)
}

/// A 409 telling the person to connect the server's account (again), with the link.
pub(crate) async fn connect_again(state: &AppState, owner: Id, server: &str, code: &'static str) -> ApiError {
    let connections = state.builder.credentials().connections();
    let name = state.catalog.get(server).await.ok().flatten().map_or(server.to_owned(), |e| e.name.clone());
    let message = if code == "connection_required" {
        format!("{name} needs your authorization: connect it, then try again")
    } else {
        format!("{name} needs to be connected again: its access ended")
    };
    match connections.start(owner, server, None).await {
        Ok(started) => ApiError::new(StatusCode::CONFLICT, code, message).with_auth_url(started.auth_url),
        Err(e) => {
            tracing::warn!(server, error = %e, "could not start connecting the server");
            ApiError::new(StatusCode::CONFLICT, code, message)
        }
    }
}

/// Gets the servers from the pool (starting those not running) and runs the begun turn as the agent.
pub(crate) async fn run_prepared(
    state: &AppState,
    begun: &Begun,
    agent: &Agent,
    servers: PreparedServers,
    events: Option<&UnboundedSender<AgentEvent>>,
) -> ApiResult<ChatReply> {
    let PreparedServers { configs, secrets } = servers;
    let tools = match ServerTools::connect(&state.mcp_pool, &begun.owner.to_string(), configs).await {
        Ok(tools) => tools,
        Err(e @ ClientError::AuthorizationRequired { .. }) => {
            return Err(connect_again(state, begun.owner, e.server(), "connection_required").await);
        }
        Err(e) => {
            // The cause may quote an address built from a credential: it is scrubbed before the
            // log, and the client hears only which server failed.
            tracing::warn!(error = %scrub(&e.to_string(), &secrets), agent = %agent.id, "an agent's server could not be started");
            let server = e.server();
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "mcp_server_unavailable",
                format!("the MCP server {server} could not be started or reached (your input was kept)"),
            ));
        }
    };
    run_turn_with(state, begun, &agent.system_prompt, &tools, json!({}), events).await
}

pub(crate) async fn owned_agent(state: &AppState, owner: Id, id: Uuid) -> ApiResult<Agent> {
    state.store.get_agent(owner, id).await?.ok_or_else(|| ApiError::not_found("agent"))
}
