//! Model providers behind one trait, with provider-neutral messages, tools and tool calls.
//! [`offline`] needs no network: it understands plain task commands and answers honestly about
//! everything else.

pub mod anthropic;
pub mod http;
pub mod offline;
pub mod openai;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use anthropic::AnthropicProvider;
pub use http::HttpConfig;
pub use offline::OfflineProvider;
pub use openai::OpenAiProvider;

/// Who wrote a message in a model conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
    Tool,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (an object); shared, since it is offered on every model call.
    pub input_schema: std::sync::Arc<JsonObject>,
}

/// A JSON object.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

impl ToolSpec {
    /// A schema from a JSON value; anything but an object becomes the empty schema.
    pub fn schema(value: serde_json::Value) -> std::sync::Arc<JsonObject> {
        std::sync::Arc::new(match value {
            serde_json::Value::Object(map) => map,
            _ => JsonObject::new(),
        })
    }
}

/// A call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: serde_json::Value,
}

/// One message of the context sent to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
    /// Calls an assistant message asked for.
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the call it answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn text(role: ChatRole, content: impl Into<String>) -> ChatMessage {
        ChatMessage { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None }
    }

    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: ChatRole::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.into()),
        }
    }
}

/// What a provider is asked.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    /// Another model than the configured one, for this request.
    pub model: Option<String>,
}

/// Tokens a call consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.total_tokens += other.total_tokens;
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    ToolCalls,
    Length,
    Other(String),
}

/// What a provider answered.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub model: String,
    pub usage: Usage,
    pub finish_reason: FinishReason,
}

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    #[error("the model service is unavailable: {0}")]
    Unavailable(String),
    #[error("the model service is rate limiting requests")]
    RateLimited { retry_after: Option<std::time::Duration> },
    #[error("the model service refused the credentials")]
    Authentication,
    #[error("the conversation is longer than the model's context window")]
    ContextLengthExceeded,
    #[error("the model service answered something unreadable: {0}")]
    Malformed(String),
    #[error("the model service rejected the request: {0}")]
    Rejected(String),
}

impl ProviderError {
    /// Stable label for metrics and error codes.
    pub fn label(&self) -> &'static str {
        match self {
            ProviderError::Unavailable(_) => "unavailable",
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::Authentication => "authentication",
            ProviderError::ContextLengthExceeded => "context_length_exceeded",
            ProviderError::Malformed(_) => "malformed",
            ProviderError::Rejected(_) => "rejected",
        }
    }
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// More of the answer's text.
    TextDelta(String),
    /// A tool call, once all its pieces have arrived.
    ToolCall(ToolCall),
    Usage(Usage),
    /// The answer is complete; the model name and why it stopped.
    Finish {
        model: String,
        reason: FinishReason,
    },
}

/// A streamed answer.
pub type EventStream = futures::stream::BoxStream<'static, Result<StreamEvent, ProviderError>>;

/// A language model service.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Short name reported in chat context and metrics (`offline`, `openai`, …).
    fn name(&self) -> &'static str;

    /// One non-streaming completion.
    async fn complete(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError>;

    /// One streamed completion. A stream that ends without [`StreamEvent::Finish`] was cut off.
    /// By default the whole answer is fetched and replayed as events.
    async fn stream(&self, request: ChatRequest) -> Result<EventStream, ProviderError> {
        let response = self.complete(request).await?;
        Ok(Box::pin(futures::stream::iter(replay(response).into_iter().map(Ok))))
    }
}

/// A complete answer as the events a stream would have carried.
pub fn replay(response: ChatResponse) -> Vec<StreamEvent> {
    let mut events = Vec::new();
    if !response.content.is_empty() {
        events.push(StreamEvent::TextDelta(response.content));
    }
    events.extend(response.tool_calls.into_iter().map(StreamEvent::ToolCall));
    events.push(StreamEvent::Usage(response.usage));
    events.push(StreamEvent::Finish { model: response.model, reason: response.finish_reason });
    events
}
