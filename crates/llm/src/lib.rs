//! Model providers behind one trait. Only the offline provider exists so far: it needs no
//! network and says plainly that no model is configured.

use async_trait::async_trait;
use serde::Serialize;

/// Who wrote a message in a model conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
    Tool,
}

/// One message of the context sent to a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

/// What a provider is asked.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
}

/// Tokens a call consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// What a provider answered.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    pub content: String,
    pub model: String,
    pub usage: Usage,
}

/// Why a provider call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    #[error("the model service is unavailable: {0}")]
    Unavailable(String),
}

/// A language model service.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Short name reported in chat context and metrics (`offline`, `openai`, …).
    fn name(&self) -> &'static str;

    /// One non-streaming completion.
    async fn complete(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError>;
}

/// The provider used when no model is configured. Deterministic and network-free.
#[derive(Debug, Default, Clone)]
pub struct OfflineProvider;

#[async_trait]
impl Provider for OfflineProvider {
    fn name(&self) -> &'static str {
        "offline"
    }

    async fn complete(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let last = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == ChatRole::User)
            .map(|m| m.content.as_str())
            .unwrap_or("");
        let content = format!(
            "Switchboard is running in offline mode: no language model is configured, so I can \
             keep this conversation but not answer it. Your message was stored: \"{}\"",
            last.trim()
        );
        Ok(ChatResponse {
            content,
            model: "offline".into(),
            usage: Usage::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offline_provider_says_no_model_is_configured_and_quotes_the_last_user_message() {
        let reply = OfflineProvider
            .complete(ChatRequest {
                messages: vec![
                    ChatMessage {
                        role: ChatRole::User,
                        content: "first".into(),
                    },
                    ChatMessage {
                        role: ChatRole::Assistant,
                        content: "reply".into(),
                    },
                    ChatMessage {
                        role: ChatRole::User,
                        content: " second ".into(),
                    },
                ],
            })
            .await
            .unwrap();
        assert!(reply.content.contains("no language model is configured"));
        assert!(reply.content.contains("\"second\""));
        assert!(!reply.content.contains("first"));
    }
}
