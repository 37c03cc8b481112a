//! `POST /api/v1/chat` and `/api/v1/chat/stream`: store the user's message, run the agent, store
//! and return its reply (as one JSON body, or as Server-Sent Events while it happens).

use std::collections::BTreeMap;
use std::convert::Infallible;

use crate::json::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_agent::builder::{Outcome, Pending, Status, WorkflowTool, WORKFLOW_TOOL};
use switchboard_agent::credentials::MissingCredential;
use switchboard_agent::launch::ServerTools;
use switchboard_agent::{AgentEvent, BuiltinTasks, Combined, ToolRecord, Tools, Turn, TurnFailure, SYSTEM_PROMPT};
use switchboard_domain::{NewMessage, Role};
use switchboard_llm::{ChatMessage, ProviderError, Usage};
use switchboard_store::StartTurn;
use tokio::sync::mpsc::{self, UnboundedSender};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::credentials::credential_error;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(chat)).routes(routes!(chat_stream))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// What the user says. Not empty; at most the configured number of characters.
    pub message: String,
    /// Continue this conversation; a new one is created when absent.
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
    /// Answer with this model instead of the configured one; it must be on the server's allow-list.
    #[serde(default)]
    pub model: Option<String>,
    /// Credentials for the workflow being set up: `{"server": {"KEY": "value"}}`. Stored
    /// encrypted before the turn runs; a pending workflow then continues.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credentials: Option<BTreeMap<String, BTreeMap<String, SecretString>>>,
    /// Text files attached through the multipart form of `POST /api/chat`.
    #[serde(skip)]
    pub attachments: Vec<super::attachments::Attachment>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChatReply {
    pub conversation_id: Uuid,
    pub message: ReplyMessage,
    /// The tools called during this turn, in order.
    #[schema(value_type = Vec<Object>)]
    pub tool_calls: Vec<ToolRecord>,
    /// `tasks_modified` (task numbers), `action_taken`, provider, model, steps.
    #[schema(value_type = Object)]
    pub context: serde_json::Value,
    /// Tokens used by all model calls of the turn.
    #[schema(value_type = Object)]
    pub usage: Usage,
    /// `success`; or, for a described workflow, `pending_credentials`, `analyzing` (a question
    /// was asked) or `no_match`.
    #[schema(value_type = String)]
    pub status: Status,
    /// Credentials the workflow still needs.
    pub required_credentials: Vec<MissingCredential>,
    pub agent_created: bool,
    pub agent_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplyMessage {
    pub id: Uuid,
    pub content: String,
    /// Always `assistant`.
    pub sender: &'static str,
    pub timestamp: DateTime<Utc>,
}

/// Sends a message; the assistant may call tools (the user's tasks) before it replies.
#[utoipa::path(post, path = "/api/v1/chat", tag = "chat", security(("bearer" = [])), request_body = ChatRequest,
    responses(
        (status = 200, body = ChatReply),
        (status = 400, description = "Empty, over-long or malformed message; or a conversation too long for the model", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 502, description = "The model service refused the credentials or answered nonsense; the message was kept", body = ErrorBody),
        (status = 503, description = "The model is unavailable; the message was kept", body = ErrorBody),
    ))]
async fn chat(
    State(state): State<AppState>,
    Auth(p): Auth,
    JsonBody(req): JsonBody<ChatRequest>,
) -> ApiResult<Json<ChatReply>> {
    let begun = begin(&state, p.user_id(), req).await?;
    Ok(Json(run_turn(&state, &begun, None).await?))
}

/// Runs a begun chat turn to its end (not streamed) and stores the outcome: a pending workflow
/// that can continue does so; otherwise the assistant runs with the tasks and workflow tools.
pub(crate) async fn run_turn(
    state: &AppState,
    begun: &Begun,
    events: Option<&UnboundedSender<AgentEvent>>,
) -> ApiResult<ChatReply> {
    if let Some(reply) = workflow_step(state, begun).await? {
        return Ok(reply);
    }
    run_assistant(state, begun, events).await
}

/// The assistant's turn: the built-in tasks tools, the workflow tool, and the tools of the
/// user's connected servers — those whose credentials the user has all stored. A connected
/// server that cannot be started or reached is left out, and the model and the reply say so.
async fn run_assistant(
    state: &AppState,
    begun: &Begun,
    events: Option<&UnboundedSender<AgentEvent>>,
) -> ApiResult<ChatReply> {
    let tasks = BuiltinTasks::new(state.tasks_server.clone(), begun.owner);
    let workflow = workflow_tool(state, begun);
    let Connected { tools: connected, unavailable, reconnect } = connected_servers(state, begun.owner).await;
    let mut prompt = SYSTEM_PROMPT.to_owned();
    let mut extra = json!({});
    if !connected.servers().is_empty() {
        extra["connected_servers"] = json!(connected.servers());
    }
    if !unavailable.is_empty() {
        prompt.push_str(&format!(
            "\n\nThese connected MCP servers cannot be reached right now, so their tools are missing: {}. \
             Tell the user if the request needs them.",
            unavailable.join(", ")
        ));
        extra["servers_unavailable"] = json!(unavailable);
    }
    if !reconnect.is_empty() {
        let links: Vec<String> = reconnect.iter().map(|r| format!("{} ({})", r.server, r.auth_url)).collect();
        prompt.push_str(&format!(
            "\n\nThese accounts must be connected again before their tools work: {}. If the request needs one, \
             tell the user and give them its link.",
            links.join(", ")
        ));
        extra["reconnect"] = json!(reconnect);
    }
    let tools = Combined(vec![&tasks, &workflow, &connected]);
    run_turn_with(state, begun, &prompt, &tools, extra, events).await
}

/// An account the user must connect again, and the link that does it.
#[derive(Debug, Clone, Serialize)]
struct Reconnect {
    server: String,
    auth_url: String,
}

/// The user's connected servers for a turn.
struct Connected {
    tools: ServerTools,
    /// Servers that could not be started or reached.
    unavailable: Vec<String>,
    /// Connected accounts whose access ended (or remote servers asking for authorization).
    reconnect: Vec<Reconnect>,
}

/// The user's connected servers, from the pool: those whose credentials are all stored or whose
/// account is connected. None without a model (the offline assistant calls only the task tools).
async fn connected_servers(state: &AppState, owner: Uuid) -> Connected {
    let mut out = Connected { tools: ServerTools::empty(), unavailable: Vec::new(), reconnect: Vec::new() };
    if state.agent.provider_name() == "offline" {
        return out;
    }
    let credentials = state.builder.credentials();
    let complete: Vec<String> = match credentials.status(owner).await {
        Ok(servers) => servers.into_iter().filter(|s| s.complete).map(|s| s.slug).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "the user's connected servers could not be read");
            return out;
        }
    };
    let mut configs = Vec::new();
    for slug in complete {
        match super::agents::prepare(state, owner, std::slice::from_ref(&slug)).await {
            Ok(prepared) => configs.extend(prepared.configs),
            Err(e) => match e.auth_url() {
                Some(url) => out.reconnect.push(Reconnect { server: slug, auth_url: url.to_owned() }),
                None => {
                    tracing::warn!(server = %slug, error = %e.message(), "a connected server could not be prepared");
                    out.unavailable.push(slug);
                }
            },
        }
    }
    if configs.is_empty() {
        return out;
    }
    let (tools, failures) = ServerTools::connect_available(&state.mcp_pool, &owner.to_string(), configs).await;
    out.tools = tools;
    for e in failures {
        if matches!(e, switchboard_mcp::client::ClientError::AuthorizationRequired { .. }) {
            let again = super::agents::connect_again(state, owner, e.server(), "connection_required").await;
            if let Some(url) = again.auth_url() {
                out.reconnect.push(Reconnect { server: e.server().to_owned(), auth_url: url.to_owned() });
                continue;
            }
        }
        tracing::warn!(server = e.server(), "a connected MCP server could not be started or reached");
        out.unavailable.push(e.server().to_owned());
    }
    out
}

/// Runs a begun turn with these tools and system prompt (a configured agent's run); `extra`
/// joins the reply's context.
pub(crate) async fn run_turn_with(
    state: &AppState,
    begun: &Begun,
    system_prompt: &str,
    tools: &dyn Tools,
    extra: serde_json::Value,
    events: Option<&UnboundedSender<AgentEvent>>,
) -> ApiResult<ChatReply> {
    match state.agent.run_as(system_prompt, begun.messages.clone(), tools, begun.model.as_deref(), events).await {
        Ok(turn) => finish(state, begun, turn, extra).await,
        Err(failure) => {
            keep_partial(state, begun, &failure).await;
            Err(model_error(failure.error))
        }
    }
}

fn workflow_tool(state: &AppState, begun: &Begun) -> WorkflowTool {
    WorkflowTool {
        builder: state.builder.clone(),
        provider: state.agent.provider(),
        model: begun.model.clone(),
        owner: begun.owner,
        conversation: Some(begun.conversation_id),
    }
}

/// A reply that needs no model turn: a pending workflow continuing, or (offline) a workflow
/// recognised from the catalog.
async fn workflow_step(state: &AppState, begun: &Begun) -> ApiResult<Option<ChatReply>> {
    match resume_workflow(state, begun).await? {
        Some(reply) => Ok(Some(reply)),
        None => offline_workflow(state, begun).await,
    }
}

/// The workflow waiting for credentials in this conversation, if any.
fn pending_workflow(context: &serde_json::Value) -> Option<Pending> {
    let workflow = context.get("workflow")?;
    if workflow.get("status")?.as_str()? != "pending_credentials" {
        return None;
    }
    serde_json::from_value(workflow.get("pending")?.clone()).ok()
}

/// Continues the conversation's pending workflow when credentials came with this message or are
/// all stored by now; `None` when there is none to continue (the turn runs as usual).
async fn resume_workflow(state: &AppState, begun: &Begun) -> ApiResult<Option<ChatReply>> {
    let Some(pending) = pending_workflow(&begun.context) else { return Ok(None) };
    let outcome = state
        .builder
        .resume(begun.owner, Some(begun.conversation_id), &pending)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    if outcome.status == Status::PendingCredentials && !begun.credentials_given {
        return Ok(None);
    }
    workflow_reply(state, begun, &outcome, Some(pending)).await.map(Some)
}

/// Without a model: a message that is not a task command but clearly names catalog servers is a
/// workflow, designed from the search; `None` for anything else (the offline provider answers).
async fn offline_workflow(state: &AppState, begun: &Begun) -> ApiResult<Option<ChatReply>> {
    if state.agent.provider_name() != "offline" || switchboard_llm::offline::parse_command(&begun.text).is_some() {
        return Ok(None);
    }
    let provider = state.agent.provider();
    let outcome = state
        .builder
        .analyze(provider.as_ref(), None, begun.owner, Some(begun.conversation_id), &begun.text)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    if outcome.status == Status::NotAWorkflow {
        return Ok(None);
    }
    let pending = outcome.design.clone().map(|design| Pending { description: begun.text.clone(), design });
    workflow_reply(state, begun, &outcome, pending).await.map(Some)
}

/// Stores and answers a workflow step taken without a model turn, and keeps where the
/// workflow stands.
async fn workflow_reply(
    state: &AppState,
    begun: &Begun,
    outcome: &Outcome,
    pending: Option<Pending>,
) -> ApiResult<ChatReply> {
    let context = json!({
        "provider": state.agent.provider_name(),
        "user_message_id": begun.user_message_id,
        "action_taken": "workflow",
    });
    let stored =
        store_reply(state, begun, outcome.message.clone(), json!({ "context": context, "workflow": outcome })).await?;
    if let Some(pending) = pending {
        remember_workflow(state, begun, outcome, &pending).await?;
    }
    Ok(reply_with(begun, stored, Vec::new(), context, Usage::default(), Some(outcome)))
}

/// Keeps where the conversation's workflow stands in its context.
async fn remember_workflow(state: &AppState, begun: &Begun, outcome: &Outcome, pending: &Pending) -> ApiResult<()> {
    let workflow = match outcome.status {
        Status::PendingCredentials => json!({ "status": "pending_credentials", "pending": pending }),
        Status::Success => json!({ "status": "created", "agent_id": outcome.agent_id }),
        _ => return Ok(()),
    };
    let mut context = begun.context.clone();
    if !context.is_object() {
        context = json!({});
    }
    context["workflow"] = workflow;
    state.store.set_conversation_context(begun.owner, begun.conversation_id, &context).await?;
    Ok(())
}

/// Like `POST /api/v1/chat`, answered as Server-Sent Events while the turn runs: `message_start`,
/// `delta` (text), `tool_call`, `tool_progress`, `tool_result`, then `message_end` (the same
/// body as the JSON endpoint) or `error` (`code`, `message`, and the HTTP `status` the JSON
/// endpoint would have answered). The turn completes and is stored even if the client goes away.
#[utoipa::path(post, path = "/api/v1/chat/stream", tag = "chat", security(("bearer" = [])), request_body = ChatRequest,
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
async fn chat_stream(
    State(state): State<AppState>,
    Auth(p): Auth,
    JsonBody(req): JsonBody<ChatRequest>,
) -> ApiResult<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>> {
    let begun = begin(&state, p.user_id(), req).await?;
    let resumed = workflow_step(&state, &begun).await?;
    let (out, events) = mpsc::unbounded_channel::<Event>();
    let send = move |name: &str, data: serde_json::Value| {
        let _ = out.send(Event::default().event(name).data(data.to_string()));
    };
    tokio::spawn(async move {
        send(
            "message_start",
            json!({ "conversation_id": begun.conversation_id, "user_message_id": begun.user_message_id }),
        );
        if let Some(reply) = resumed {
            send("delta", json!({ "text": reply.message.content }));
            send("message_end", json!(reply));
            return;
        }
        let (progress, mut updates) = mpsc::unbounded_channel::<AgentEvent>();
        let run = async {
            let progress = progress;
            run_assistant(&state, &begun, Some(&progress)).await
        };
        let forward = async {
            while let Some(update) = updates.recv().await {
                let (name, payload) = update.into_parts();
                send(name, payload);
            }
        };
        let (outcome, ()) = tokio::join!(run, forward);
        match outcome {
            Ok(reply) => send("message_end", json!(reply)),
            Err(e) => send("error", json!({ "code": e.code(), "message": e.message(), "status": e.status().as_u16() })),
        }
    });
    let stream = futures::stream::unfold(events, |mut events| async move {
        events.recv().await.map(|event| (Ok::<_, Infallible>(event), events))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A turn whose user message is stored and whose history is loaded.
pub(crate) struct Begun {
    pub(crate) owner: Uuid,
    conversation_id: Uuid,
    user_message_id: Uuid,
    history_messages: usize,
    messages: Vec<ChatMessage>,
    model: Option<String>,
    /// The conversation's context when the turn began (the workflow in progress).
    context: serde_json::Value,
    /// Credentials came with this message.
    credentials_given: bool,
    /// The user's message, trimmed.
    text: String,
    /// The job this turn runs for: its reply is marked with it, and stored once.
    job: Option<Uuid>,
}

/// Validates the request and stores the user's message before the model is called, so that a
/// model failure loses nothing. Credentials sent along are checked and stored first: a bad one
/// refuses the whole request and stores nothing of it.
pub(crate) async fn begin(state: &AppState, owner: Uuid, req: ChatRequest) -> ApiResult<Begun> {
    let model = req.model.clone();
    let (started, text, credentials_given) = store_turn(state, owner, req, None).await?;
    load_turn(state, owner, started.conversation.id, started.message.id, model, credentials_given, text).await
}

/// [`begin`] for a background run: enqueues `job` in the same transaction as the message, and
/// leaves the history to the worker that runs it.
pub(crate) async fn enqueue_turn(
    state: &AppState,
    owner: Uuid,
    req: ChatRequest,
    job: switchboard_domain::NewJob,
) -> ApiResult<switchboard_domain::Job> {
    let (started, ..) = store_turn(state, owner, req, Some(job)).await?;
    Ok(started.job.expect("start_turn enqueues the job it is given"))
}

/// What [`begin`] and [`enqueue_turn`] share: the checks, the credentials, the stored message.
/// Returns the stored turn, the trimmed text, and whether credentials came with it.
async fn store_turn(
    state: &AppState,
    owner: Uuid,
    req: ChatRequest,
    job: Option<switchboard_domain::NewJob>,
) -> ApiResult<(switchboard_store::Started, String, bool)> {
    let text = validate_message(&req.message, state.config.max_message_chars)?;
    if let Some(model) = &req.model {
        if !state.config.models.iter().any(|m| m == model) {
            return Err(ApiError::bad_request(
                "model_not_allowed",
                format!("this server answers with {}", allowed(&state.config.models)),
            ));
        }
    }
    let credentials = req.credentials.unwrap_or_default();
    let credentials_given = !credentials.is_empty();
    for (server, values) in &credentials {
        if values.is_empty() {
            return Err(ApiError::bad_request("no_values", format!("no credentials given for {server}")));
        }
        state.builder.credentials().entry(server).await.map_err(credential_error)?;
    }
    for (server, values) in &credentials {
        state.builder.credentials().put(owner, server, values).await.map_err(credential_error)?;
    }
    let turn = StartTurn {
        conversation_id: req.conversation_id,
        title: title_from(text),
        message: NewMessage {
            role: Role::User,
            content: super::attachments::with_files(&req.message, &req.attachments),
            metadata: if req.attachments.is_empty() {
                json!({})
            } else {
                json!({ "attachments": req.attachments.iter().map(|a| json!({"name": a.name, "bytes": a.text.len()})).collect::<Vec<_>>() })
            },
        },
        job,
    };
    let started = state.store.start_turn(owner, turn).await?.ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok((started, text.to_owned(), credentials_given))
}

/// A turn whose user message was stored earlier (a queued job's), with the history as it is now.
pub(crate) async fn reopen(
    state: &AppState,
    owner: Uuid,
    conversation: Uuid,
    user_message_id: Uuid,
    model: Option<String>,
    text: String,
    job: Uuid,
) -> ApiResult<Begun> {
    let mut begun = load_turn(state, owner, conversation, user_message_id, model, false, text).await?;
    begun.job = Some(job);
    Ok(begun)
}

async fn load_turn(
    state: &AppState,
    owner: Uuid,
    conversation: Uuid,
    user_message_id: Uuid,
    model: Option<String>,
    credentials_given: bool,
    text: String,
) -> ApiResult<Begun> {
    let (conversation, stored) = state
        .store
        .conversation_with_recent(owner, conversation, state.config.history_limit)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    let (messages, history_messages) = switchboard_agent::context::history(
        &stored,
        state.config.history_max_tokens,
        state.agent.max_tool_result_chars,
    );
    Ok(Begun {
        owner,
        conversation_id: conversation.id,
        user_message_id,
        history_messages,
        messages,
        model,
        context: conversation.context,
        credentials_given,
        text,
        job: None,
    })
}

/// Stores the assistant's reply with what the turn did, and builds the response.
async fn finish(state: &AppState, begun: &Begun, turn: Turn, extra: serde_json::Value) -> ApiResult<ChatReply> {
    let tasks_modified: Vec<i64> = turn
        .tool_calls
        .iter()
        .filter(|c| !c.is_error && c.tool != "list_tasks")
        .filter_map(|c| c.result["task"]["number"].as_i64())
        .collect();
    let actions: Vec<&str> = turn.tool_calls.iter().filter(|c| !c.is_error).map(|c| c.tool.as_str()).collect();
    let mut context = json!({
        "provider": state.agent.provider_name(),
        "model": turn.model,
        "history_messages": begun.history_messages,
        "user_message_id": begun.user_message_id,
        "tasks_modified": tasks_modified,
        "action_taken": if actions.is_empty() { "none".to_string() } else { actions.join(", ") },
        "steps": turn.steps,
        "stop": turn.stop,
    });
    if let (Some(context), serde_json::Value::Object(extra)) = (context.as_object_mut(), extra) {
        context.extend(extra);
    }
    // The last workflow the model set up this turn decides the reply's status.
    let outcome: Option<Outcome> = turn
        .tool_calls
        .iter()
        .rev()
        .find(|c| c.tool == WORKFLOW_TOOL && !c.is_error)
        .and_then(|c| serde_json::from_value(c.result.clone()).ok());
    let mut usage = turn.usage;
    if let Some(outcome) = &outcome {
        usage.add(outcome.usage);
        if let (Some(design), Some(description)) = (&outcome.design, workflow_description(&turn.tool_calls)) {
            remember_workflow(state, begun, outcome, &Pending { description, design: design.clone() }).await?;
        }
    }
    let metadata = json!({ "context": context, "tool_calls": turn.tool_calls, "usage": usage, "workflow": outcome });
    let stored = store_reply(state, begun, turn.reply, metadata).await?;
    Ok(reply_with(begun, stored, turn.tool_calls, context, usage, outcome.as_ref()))
}

/// The description the model passed to the workflow tool last.
fn workflow_description(calls: &[ToolRecord]) -> Option<String> {
    let call = calls.iter().rev().find(|c| c.tool == WORKFLOW_TOOL && !c.is_error)?;
    call.args["description"].as_str().map(str::to_owned)
}

async fn store_reply(
    state: &AppState,
    begun: &Begun,
    content: String,
    mut metadata: serde_json::Value,
) -> ApiResult<switchboard_domain::Message> {
    let message = |metadata| NewMessage { role: Role::Assistant, content, metadata };
    let stored = match begun.job {
        // The worker records the job's outcome next, durably, and with it this reply.
        Some(job) => {
            metadata["job_id"] = json!(job);
            state.store.append_job_reply(begun.owner, begun.conversation_id, message(metadata)).await?
        }
        None => state.store.append_message(begun.owner, begun.conversation_id, message(metadata)).await?,
    };
    stored.ok_or_else(|| ApiError::not_found("conversation"))
}

fn reply_with(
    begun: &Begun,
    stored: switchboard_domain::Message,
    tool_calls: Vec<ToolRecord>,
    context: serde_json::Value,
    usage: Usage,
    outcome: Option<&Outcome>,
) -> ChatReply {
    let status = match outcome.map(|o| o.status) {
        None | Some(Status::NotAWorkflow) => Status::Success,
        Some(status) => status,
    };
    ChatReply {
        conversation_id: begun.conversation_id,
        message: ReplyMessage {
            id: stored.id,
            content: stored.content,
            sender: "assistant",
            timestamp: stored.created_at,
        },
        tool_calls,
        context,
        usage,
        status,
        required_credentials: outcome.map(|o| o.required_credentials.clone()).unwrap_or_default(),
        agent_created: outcome.is_some_and(|o| o.agent_id.is_some()),
        agent_id: outcome.and_then(|o| o.agent_id),
    }
}

/// Keeps what a failed turn produced (streamed text, tool calls), flagged as incomplete.
async fn keep_partial(state: &AppState, begun: &Begun, failure: &TurnFailure) {
    if failure.partial_reply.is_empty() && failure.tool_calls.is_empty() {
        return;
    }
    let metadata = json!({ "incomplete": true, "error": failure.error.label(), "tool_calls": failure.tool_calls });
    let message = NewMessage { role: Role::Assistant, content: failure.partial_reply.clone(), metadata };
    if let Err(e) = state.store.append_message(begun.owner, begun.conversation_id, message).await {
        tracing::error!(error = %e, "could not keep the partial reply");
    }
}

/// How a model failure reaches the client. The user's message is already stored.
fn model_error(e: ProviderError) -> ApiError {
    tracing::warn!(error = %e, kind = e.label(), "model call failed");
    let kept = "your message was kept";
    match e {
        ProviderError::ContextLengthExceeded => ApiError::bad_request(
            "context_length_exceeded",
            format!("the conversation is too long for the model; start a new one ({kept})"),
        ),
        ProviderError::Authentication => ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "llm_auth_failed",
            format!("the model service refused the configured credentials ({kept})"),
        ),
        ProviderError::Malformed(_) => ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "llm_bad_response",
            format!("the model service answered something unreadable; try again ({kept})"),
        ),
        ProviderError::RateLimited { retry_after } => {
            let error = ApiError::unavailable(
                "llm_rate_limited",
                format!("the model service is busy; try again shortly ({kept})"),
            );
            match retry_after {
                Some(wait) => error.with_header(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
                ),
                None => error,
            }
        }
        _ => ApiError::unavailable("llm_unavailable", format!("the model is unavailable; try again shortly ({kept})")),
    }
}

/// The allow-list in words.
fn allowed(models: &[String]) -> String {
    if models.is_empty() {
        "no model (offline mode), so no model can be chosen".into()
    } else {
        format!("one of: {}", models.join(", "))
    }
}

/// The message without surrounding blanks, if it is acceptable.
fn validate_message(message: &str, max_chars: usize) -> ApiResult<&str> {
    let text = message.trim();
    if text.is_empty() {
        return Err(ApiError::bad_request("empty_message", "the message is empty"));
    }
    let chars = message.chars().count();
    if chars > max_chars {
        return Err(ApiError::bad_request(
            "message_too_long",
            format!("the message has {chars} characters; at most {max_chars} are accepted"),
        ));
    }
    if message.contains('\0') {
        return Err(ApiError::bad_request("invalid_characters", "the message contains a NUL character"));
    }
    Ok(text)
}

/// A conversation title: the message's first line, cut to 80 characters.
fn title_from(text: &str) -> String {
    const MAX: usize = 80;
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() <= MAX {
        return line.to_string();
    }
    let mut title: String = line.chars().take(MAX - 1).collect();
    title.push('…');
    title
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_take_the_first_line_and_cut_long_ones_on_a_character_boundary() {
        assert_eq!(title_from("hello\nworld"), "hello");
        let long = "é".repeat(200);
        let title = title_from(&long);
        assert_eq!(title.chars().count(), 80);
        assert!(title.ends_with('…'));
    }

    #[test]
    fn blank_long_and_nul_messages_are_refused() {
        assert_eq!(validate_message(" \n\t", 10).unwrap_err().code(), "empty_message");
        assert_eq!(validate_message("abcdefghijk", 10).unwrap_err().code(), "message_too_long");
        assert_eq!(validate_message("a\0b", 10).unwrap_err().code(), "invalid_characters");
        assert_eq!(validate_message("  ok ", 10).unwrap(), "ok");
    }
}
