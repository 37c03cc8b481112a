//! The agent loop: send the conversation and the available tools to the model, run the tool
//! calls it asks for (in parallel when it asks for several), feed the results back, and repeat
//! until it answers or the step limit is reached.

pub mod builder;
pub mod connections;
pub mod context;
pub mod credentials;
pub mod export;
pub mod launch;
mod tools;
pub mod workflow;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use switchboard_llm::{
    ChatMessage, ChatRequest, ChatResponse, ChatRole, FinishReason, Provider, ProviderError, StreamEvent, ToolCall,
    Usage,
};
use tokio::sync::mpsc::UnboundedSender;

pub use tools::{BuiltinTasks, Combined, ToolOutcome, Tools};

/// Default number of model calls one turn may make.
pub const DEFAULT_MAX_STEPS: usize = 8;
/// Tool results longer than this (in characters) are cut before the model sees them.
pub const DEFAULT_MAX_TOOL_RESULT_CHARS: usize = 16 * 1024;

/// What the assistant is told about itself.
pub const SYSTEM_PROMPT: &str = "You are Switchboard, an assistant that manages the user's tasks and runs \
workflows with MCP tools. Use the tools to act; say plainly what you did. Tasks have short numbers (1, 2, 3…) \
that the user uses to name them. Before deleting or changing something when the request is ambiguous, ask the \
user to confirm. Never invent tool results.";

/// One tool call made during a turn, as reported to the client and kept with the message.
#[derive(Debug, Clone, Serialize)]
pub struct ToolRecord {
    pub tool: String,
    pub args: serde_json::Value,
    pub result: serde_json::Value,
    pub is_error: bool,
    pub duration_ms: u64,
}

/// Why a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The model gave its answer.
    Answered,
    /// The model kept asking for tools until the step limit.
    MaxSteps,
}

/// The outcome of one chat turn.
#[derive(Debug, Clone)]
pub struct Turn {
    pub reply: String,
    pub tool_calls: Vec<ToolRecord>,
    pub usage: Usage,
    pub model: String,
    pub steps: usize,
    pub stop: Stop,
}

/// Progress of a streamed turn.
#[derive(Debug, Clone)]
pub enum AgentEvent {
    /// More of the reply's text.
    Delta(String),
    /// The model asked for a tool.
    ToolCall { tool: String, args: serde_json::Value },
    /// A running tool reported progress.
    ToolProgress { tool: String, progress: switchboard_mcp::client::Progress },
    /// A tool finished.
    ToolResult(ToolRecord),
}

impl AgentEvent {
    /// The event as streams and job events carry it: a name and a JSON payload.
    pub fn into_parts(self) -> (&'static str, serde_json::Value) {
        match self {
            AgentEvent::Delta(text) => ("delta", serde_json::json!({ "text": text })),
            AgentEvent::ToolCall { tool, args } => ("tool_call", serde_json::json!({ "tool": tool, "args": args })),
            AgentEvent::ToolProgress { tool, progress } => (
                "tool_progress",
                serde_json::json!({
                    "tool": tool, "progress": progress.progress, "total": progress.total, "message": progress.message,
                }),
            ),
            AgentEvent::ToolResult(record) => ("tool_result", serde_json::json!(record)),
        }
    }
}

/// A turn that failed, with what it had produced until then.
#[derive(Debug)]
pub struct TurnFailure {
    pub error: ProviderError,
    /// Text already streamed to the client.
    pub partial_reply: String,
    pub tool_calls: Vec<ToolRecord>,
}

/// Runs turns against one provider.
#[derive(Clone)]
pub struct Agent {
    provider: Arc<dyn Provider>,
    pub max_steps: usize,
    pub max_tool_result_chars: usize,
}

impl Agent {
    pub fn new(provider: Arc<dyn Provider>) -> Agent {
        Agent { provider, max_steps: DEFAULT_MAX_STEPS, max_tool_result_chars: DEFAULT_MAX_TOOL_RESULT_CHARS }
    }

    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    pub fn provider(&self) -> Arc<dyn Provider> {
        self.provider.clone()
    }

    /// Runs one turn over `history` (oldest first, ending with the user's message).
    pub async fn run(
        &self,
        history: Vec<ChatMessage>,
        tools: &dyn Tools,
        model: Option<&str>,
        events: Option<&UnboundedSender<AgentEvent>>,
    ) -> Result<Turn, TurnFailure> {
        self.run_as(SYSTEM_PROMPT, history, tools, model, events).await
    }

    /// Runs one turn with another system prompt (a configured agent's).
    pub async fn run_as(
        &self,
        system_prompt: &str,
        history: Vec<ChatMessage>,
        tools: &dyn Tools,
        model: Option<&str>,
        events: Option<&UnboundedSender<AgentEvent>>,
    ) -> Result<Turn, TurnFailure> {
        let mut messages = Vec::with_capacity(history.len() + 1);
        messages.push(ChatMessage::text(ChatRole::System, system_prompt));
        messages.extend(history);
        let mut turn = Turn {
            reply: String::new(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
            model: String::new(),
            steps: 0,
            stop: Stop::MaxSteps,
        };
        while turn.steps < self.max_steps {
            turn.steps += 1;
            tools.refresh().await;
            let request =
                ChatRequest { messages: messages.clone(), tools: tools.specs(), model: model.map(str::to_owned) };
            let response = match self.ask(request, events).await {
                Ok(response) => response,
                Err((error, partial_reply)) => {
                    return Err(TurnFailure { error, partial_reply, tool_calls: turn.tool_calls });
                }
            };
            turn.usage.add(response.usage);
            turn.model = response.model;
            if response.tool_calls.is_empty() {
                turn.reply = response.content;
                turn.stop = Stop::Answered;
                return Ok(turn);
            }
            messages.push(ChatMessage {
                role: ChatRole::Assistant,
                content: response.content,
                tool_calls: response.tool_calls.clone(),
                tool_call_id: None,
            });
            if let Some(events) = events {
                for call in &response.tool_calls {
                    let _ = events.send(AgentEvent::ToolCall { tool: call.name.clone(), args: call.arguments.clone() });
                }
            }
            let results =
                futures::future::join_all(response.tool_calls.iter().map(|call| self.execute(tools, call, events)))
                    .await;
            for (call, (record, for_model)) in response.tool_calls.iter().zip(results) {
                messages.push(ChatMessage::tool_result(call.id.clone(), for_model));
                if let Some(events) = events {
                    let _ = events.send(AgentEvent::ToolResult(record.clone()));
                }
                turn.tool_calls.push(record);
            }
        }
        tracing::warn!(steps = turn.steps, "turn stopped at the step limit");
        turn.reply = format!(
            "I stopped after {} steps without finishing; the request may need to be split into smaller ones.",
            turn.steps
        );
        Ok(turn)
    }

    /// One model call: plain, or streamed with its text forwarded as it arrives.
    async fn ask(
        &self,
        request: ChatRequest,
        events: Option<&UnboundedSender<AgentEvent>>,
    ) -> Result<ChatResponse, (ProviderError, String)> {
        let Some(events) = events else {
            return self.provider.complete(request).await.map_err(|e| (e, String::new()));
        };
        let mut stream = self.provider.stream(request).await.map_err(|e| (e, String::new()))?;
        let mut response = ChatResponse {
            content: String::new(),
            tool_calls: Vec::new(),
            model: String::new(),
            usage: Usage::default(),
            finish_reason: FinishReason::Stop,
        };
        while let Some(event) = stream.next().await {
            match event.map_err(|e| (e, response.content.clone()))? {
                StreamEvent::TextDelta(text) => {
                    let _ = events.send(AgentEvent::Delta(text.clone()));
                    response.content.push_str(&text);
                }
                StreamEvent::ToolCall(call) => response.tool_calls.push(call),
                StreamEvent::Usage(usage) => response.usage.add(usage),
                StreamEvent::Finish { model, reason } => {
                    response.model = model;
                    response.finish_reason = reason;
                    return Ok(response);
                }
            }
        }
        Err((ProviderError::Malformed("the answer stopped before it was complete".into()), response.content))
    }

    /// Runs one tool call (forwarding its progress as events) and records it: the log line has
    /// the tool, how long it took and whether it failed — never its arguments or result, which
    /// are kept with the reply.
    async fn execute(
        &self,
        tools: &dyn Tools,
        call: &ToolCall,
        events: Option<&UnboundedSender<AgentEvent>>,
    ) -> (ToolRecord, String) {
        let started = Instant::now();
        let outcome = match events {
            None => tools.call(&call.name, call.arguments.clone(), None).await,
            Some(events) => {
                let (sink, mut progress) = tokio::sync::mpsc::unbounded_channel();
                let forward = async {
                    while let Some(progress) = progress.recv().await {
                        let _ = events.send(AgentEvent::ToolProgress { tool: call.name.clone(), progress });
                    }
                };
                let (outcome, ()) = tokio::join!(tools.call(&call.name, call.arguments.clone(), Some(sink)), forward);
                outcome
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(tool = %call.name, duration_ms, is_error = outcome.is_error, "tool call");
        let for_model = truncate(&outcome.content, self.max_tool_result_chars);
        let result = outcome.structured.clone().unwrap_or_else(|| serde_json::Value::String(outcome.content.clone()));
        (
            ToolRecord {
                tool: call.name.clone(),
                args: call.arguments.clone(),
                result,
                is_error: outcome.is_error,
                duration_ms,
            },
            for_model,
        )
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max_chars).collect();
    format!("{kept}\n[truncated: the result was longer than {max_chars} characters]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use switchboard_llm::{ChatResponse, FinishReason, ToolSpec};

    /// A model that always asks for a tool (B6.41: runaway loops stop at the step cap).
    struct AlwaysCallsATool(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl Provider for AlwaysCallsATool {
        fn name(&self) -> &'static str {
            "test"
        }
        async fn complete(&self, _: ChatRequest) -> Result<ChatResponse, ProviderError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(ChatResponse {
                content: String::new(),
                tool_calls: vec![
                    ToolCall { id: "a".into(), name: "echo".into(), arguments: serde_json::json!({"n": 1}) },
                    ToolCall { id: "b".into(), name: "echo".into(), arguments: serde_json::json!({"n": 2}) },
                ],
                model: "m".into(),
                usage: Usage { input_tokens: 1, output_tokens: 1, total_tokens: 2 },
                finish_reason: FinishReason::ToolCalls,
            })
        }
    }

    struct Echo;

    #[async_trait]
    impl Tools for Echo {
        fn specs(&self) -> Vec<ToolSpec> {
            vec![ToolSpec {
                name: "echo".into(),
                description: "echo".into(),
                input_schema: ToolSpec::schema(serde_json::json!({})),
            }]
        }
        async fn call(
            &self,
            _: &str,
            args: serde_json::Value,
            _: Option<switchboard_mcp::client::ProgressSink>,
        ) -> ToolOutcome {
            ToolOutcome { content: "x".repeat(100) + &args.to_string(), structured: None, is_error: false }
        }
    }

    #[tokio::test]
    async fn a_model_that_always_calls_tools_stops_at_the_step_limit_with_no_extra_calls() {
        let provider = Arc::new(AlwaysCallsATool(Default::default()));
        let mut agent = Agent::new(provider.clone());
        agent.max_tool_result_chars = 10;
        let turn = agent.run(vec![ChatMessage::text(ChatRole::User, "go")], &Echo, None, None).await.unwrap();
        assert_eq!(turn.stop, Stop::MaxSteps);
        assert_eq!(turn.steps, DEFAULT_MAX_STEPS);
        assert_eq!(provider.0.load(std::sync::atomic::Ordering::SeqCst), DEFAULT_MAX_STEPS, "0 extra model calls");
        assert_eq!(turn.tool_calls.len(), 2 * DEFAULT_MAX_STEPS, "both parallel calls ran at every step");
        assert_eq!(turn.usage.total_tokens, 2 * DEFAULT_MAX_STEPS as u64);
    }

    #[test]
    fn long_tool_results_are_cut_with_a_note() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate(&"é".repeat(20), 10);
        assert!(cut.starts_with(&"é".repeat(10)) && cut.contains("[truncated"));
    }
}
