//! What a worker runs for a job: the same chat turn or agent run as the HTTP routes, with the
//! user's message stored at enqueue time, and progress recorded as the job's events.

use async_trait::async_trait;
use serde_json::json;
use switchboard_agent::AgentEvent;
use switchboard_domain::Job;
use switchboard_jobs::{Events, RunError, RunOutput, Runner};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::error::ApiError;
use crate::routes::agents::{owned_agent, prepare_servers, run_prepared};
use crate::routes::chat::{reopen, run_turn, ChatReply};
use crate::AppState;

/// Runs jobs against this process's state.
pub struct JobRunner {
    pub state: AppState,
}

/// Job kinds.
pub const CHAT: &str = "chat";
pub const AGENT: &str = "agent";

#[async_trait]
impl Runner for JobRunner {
    async fn run(&self, job: &Job, events: &Events) -> Result<RunOutput, RunError> {
        let state = &self.state;
        let id = |key: &str| job.input[key].as_str().and_then(|s| Uuid::parse_str(s).ok());
        let (Some(conversation), Some(message_id)) = (id("conversation_id"), id("user_message_id")) else {
            return Err(RunError::Permanent("the job's input is incomplete".into()));
        };
        let text = job.input["message"].as_str().unwrap_or_default().to_owned();
        let model = job.input["model"].as_str().map(str::to_owned);
        // A previous run stored its reply and died before recording the job as done: that reply
        // is the result (the model is not asked again, and no second reply is stored). The
        // first attempt has no previous run to look for.
        let stored = match job.attempts {
            ..=1 => Ok(None),
            _ => state.store.job_reply(job.user_id, conversation, job.id).await,
        };
        if let Some(reply) = stored.map_err(|e| RunError::Retryable(e.to_string()))? {
            let m = &reply.metadata;
            return Ok(RunOutput {
                result: json!({
                    "conversation_id": conversation,
                    "message": {"id": reply.id, "content": reply.content, "sender": "assistant", "timestamp": reply.created_at},
                    "tool_calls": m["tool_calls"], "context": m["context"], "usage": m["usage"],
                    "status": "success", "required_credentials": [], "agent_created": false, "agent_id": null,
                }),
                ..RunOutput::default()
            });
        }
        let begun =
            reopen(state, job.user_id, conversation, message_id, model, text, job.id).await.map_err(run_error)?;
        let (progress, mut updates) = mpsc::unbounded_channel::<AgentEvent>();
        let forward = async {
            while let Some(update) = updates.recv().await {
                let (kind, payload) = update.into_parts();
                events.emit(kind, payload).await;
            }
        };
        let work = async {
            let progress = progress;
            match job.kind.as_str() {
                CHAT => run_turn(state, &begun, Some(&progress)).await,
                AGENT => {
                    let agent_id = id("agent_id").ok_or_else(|| ApiError::not_found("agent"))?;
                    let agent = owned_agent(state, job.user_id, agent_id).await?;
                    let servers = prepare_servers(state, job.user_id, &agent).await?;
                    run_prepared(state, &begun, &agent, servers, Some(&progress)).await
                }
                other => Err(ApiError::bad_request("unknown_job_kind", format!("unknown job kind {other}"))),
            }
        };
        let (reply, ()) = tokio::join!(work, forward);
        let reply: ChatReply = reply.map_err(run_error)?;
        Ok(RunOutput {
            input_tokens: reply.usage.input_tokens as i64,
            output_tokens: reply.usage.output_tokens as i64,
            total_tokens: reply.usage.total_tokens as i64,
            result: json!(reply),
        })
    }
}

/// Unavailable parts are worth another attempt; refusals and bad input are not.
fn run_error(e: ApiError) -> RunError {
    let message = format!("{}: {}", e.code(), e.message());
    match e.code() {
        "llm_unavailable"
        | "llm_rate_limited"
        | "llm_bad_response"
        | "database_unavailable"
        | "mcp_server_unavailable" => RunError::Retryable(message),
        _ if e.status().is_server_error() && e.code() == "internal" => RunError::Retryable(message),
        _ => RunError::Permanent(message),
    }
}
