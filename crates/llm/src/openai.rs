//! The Chat Completions API, as spoken by OpenAI, Ollama, vLLM, llama.cpp's server, LM Studio,
//! Groq and others: messages, `tools`/`tool_calls`, usage.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::{client, poster, read_answer, read_stream, send_with_retries, HttpConfig, KeyHeader};
use crate::{
    ChatMessage, ChatRequest, ChatResponse, ChatRole, FinishReason, Provider, ProviderError, StreamEvent, ToolCall,
    Usage,
};

pub struct OpenAiProvider {
    config: HttpConfig,
    http: reqwest::Client,
}

impl OpenAiProvider {
    pub fn new(config: HttpConfig) -> OpenAiProvider {
        OpenAiProvider { config, http: client() }
    }

    fn post(&self, body: bytes::Bytes) -> impl Fn() -> reqwest::RequestBuilder + '_ {
        poster(&self.http, &self.config, "chat/completions", body, KeyHeader::Bearer, &[])
    }
}

/// The request as sent: borrowed from the [`ChatRequest`], serialized once.
#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<OutMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: ChatRole,
    /// Null for an assistant turn that only calls tools.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
struct OutToolCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: OutFunction<'a>,
}

#[derive(Serialize)]
struct OutFunction<'a> {
    name: &'a str,
    /// The API wants the arguments as a JSON string.
    arguments: String,
}

#[derive(Serialize)]
struct OutTool<'a> {
    r#type: &'static str,
    function: OutToolFunction<'a>,
}

#[derive(Serialize)]
struct OutToolFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a crate::JsonObject,
}

fn out_message(m: &ChatMessage) -> OutMessage<'_> {
    let calls_only = m.role == ChatRole::Assistant && !m.tool_calls.is_empty() && m.content.is_empty();
    OutMessage {
        role: m.role,
        content: (!calls_only).then_some(m.content.as_str()),
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| OutToolCall {
                id: &c.id,
                r#type: "function",
                function: OutFunction { name: &c.name, arguments: c.arguments.to_string() },
            })
            .collect(),
        tool_call_id: (m.role == ChatRole::Tool).then_some(m.tool_call_id.as_deref().unwrap_or_default()),
    }
}

/// The request body for `request`, as JSON bytes.
pub fn request_body(config: &HttpConfig, request: &ChatRequest, stream: bool) -> bytes::Bytes {
    let body = WireRequest {
        model: request.model.as_deref().unwrap_or(&config.model),
        messages: request.messages.iter().map(out_message).collect(),
        tools: request
            .tools
            .iter()
            .map(|t| OutTool {
                r#type: "function",
                function: OutToolFunction { name: &t.name, description: &t.description, parameters: &t.input_schema },
            })
            .collect(),
        temperature: config.temperature,
        max_tokens: config.max_tokens,
        stream,
        stream_options: stream.then_some(StreamOptions { include_usage: true }),
    };
    serde_json::to_vec(&body).expect("a request of strings and JSON values serializes").into()
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: String,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireToolCall {
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}

/// Reads a Chat Completions response body.
pub fn parse_response(body: &str) -> Result<ChatResponse, ProviderError> {
    let completion: Completion = serde_json::from_str(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let choice = completion.choices.into_iter().next().ok_or_else(|| ProviderError::Malformed("no choices".into()))?;
    let tool_calls = choice
        .message
        .tool_calls
        .into_iter()
        .map(|c| {
            let arguments = if c.function.arguments.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(&c.function.arguments).map_err(|_| {
                    ProviderError::Malformed(format!("tool call {} has arguments that are not JSON", c.function.name))
                })?
            };
            Ok(ToolCall { id: c.id, name: c.function.name, arguments })
        })
        .collect::<Result<Vec<_>, ProviderError>>()?;
    let finish_reason = match choice.finish_reason.as_deref() {
        Some("stop") | None => FinishReason::Stop,
        Some("tool_calls") | Some("function_call") => FinishReason::ToolCalls,
        Some("length") => FinishReason::Length,
        Some(other) => FinishReason::Other(other.to_owned()),
    };
    let usage = completion
        .usage
        .map(|u| Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            total_tokens: if u.total_tokens > 0 { u.total_tokens } else { u.prompt_tokens + u.completion_tokens },
        })
        .unwrap_or_default();
    Ok(ChatResponse {
        content: choice.message.content.unwrap_or_default(),
        tool_calls,
        model: completion.model,
        usage,
        finish_reason,
    })
}

fn classify(status: StatusCode, body: &str) -> Option<ProviderError> {
    let lower = body.to_lowercase();
    (status == StatusCode::BAD_REQUEST
        && (lower.contains("context_length_exceeded")
            || lower.contains("maximum context length")
            || lower.contains("too many tokens")))
    .then_some(ProviderError::ContextLengthExceeded)
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &'static str {
        "openai"
    }

    async fn complete(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = request_body(&self.config, &request, false);
        let response = send_with_retries(&self.config, self.post(body), classify).await?;
        read_answer(&self.config, response, parse_response).await
    }

    async fn stream(&self, request: ChatRequest) -> Result<crate::EventStream, ProviderError> {
        let body = request_body(&self.config, &request, true);
        let response = send_with_retries(&self.config, self.post(body), classify).await?;
        read_stream(&self.config, response, parse_response, |bytes, model| parse_stream(bytes, model)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ToolSpec;

    #[test]
    fn requests_carry_tools_and_the_tool_round_trip() {
        let config = HttpConfig::new("http://x/v1", "gpt-test");
        let call = ToolCall { id: "c1".into(), name: "add_task".into(), arguments: json!({"title": "t"}) };
        let request = ChatRequest {
            messages: vec![
                ChatMessage::text(ChatRole::User, "hi"),
                ChatMessage {
                    role: ChatRole::Assistant,
                    content: String::new(),
                    tool_calls: vec![call],
                    tool_call_id: None,
                },
                ChatMessage::tool_result("c1", "done"),
            ],
            tools: vec![ToolSpec {
                name: "add_task".into(),
                description: "d".into(),
                input_schema: ToolSpec::schema(json!({"type": "object"})),
            }],
            model: None,
        };
        let body: Value = serde_json::from_slice(&request_body(&config, &request, false)).unwrap();
        assert!(body.get("stream").is_none());
        let streamed: Value = serde_json::from_slice(&request_body(&config, &request, true)).unwrap();
        assert_eq!((&streamed["stream"], &streamed["stream_options"]["include_usage"]), (&json!(true), &json!(true)));
        assert_eq!(body["model"], "gpt-test");
        assert_eq!(body["tools"][0]["function"]["name"], "add_task");
        assert_eq!(body["messages"][1]["content"], Value::Null);
        assert_eq!(body["messages"][1]["tool_calls"][0]["function"]["arguments"], "{\"title\":\"t\"}");
        assert_eq!(body["messages"][2], json!({"role": "tool", "tool_call_id": "c1", "content": "done"}));
        assert_eq!(body["messages"][0], json!({"role": "user", "content": "hi"}));
    }

    #[test]
    fn responses_give_text_tool_calls_and_usage() {
        let body = r#"{"model":"m","choices":[{"message":{"content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"list_tasks","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        let r = parse_response(body).unwrap();
        assert_eq!(
            (r.tool_calls[0].name.as_str(), r.finish_reason.clone(), r.usage.total_tokens),
            ("list_tasks", FinishReason::ToolCalls, 7)
        );
        assert!(matches!(parse_response("{"), Err(ProviderError::Malformed(_))));
        assert!(matches!(parse_response(r#"{"choices":[]}"#), Err(ProviderError::Malformed(_))));
        let bad_args =
            r#"{"choices":[{"message":{"tool_calls":[{"id":"a","function":{"name":"x","arguments":"{oops"}}]}}]}"#;
        assert!(matches!(parse_response(bad_args), Err(ProviderError::Malformed(_))));
    }
}

/// Tool call pieces gathered from stream chunks, by index.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Turns the Chat Completions SSE stream into [`StreamEvent`]s.
pub fn parse_stream(
    bytes: impl futures::Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send + 'static,
    fallback_model: String,
) -> crate::EventStream {
    use eventsource_stream::Eventsource;
    use futures::StreamExt;

    struct State {
        events: futures::stream::BoxStream<'static, Result<eventsource_stream::Event, String>>,
        calls: Vec<PartialCall>,
        model: String,
        reason: Option<FinishReason>,
        pending: std::collections::VecDeque<StreamEvent>,
        done: bool,
    }
    let events = bytes.eventsource().map(|e| e.map_err(|e| e.to_string())).boxed();
    let state = State {
        events,
        calls: Vec::new(),
        model: fallback_model,
        reason: None,
        pending: Default::default(),
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            if st.done {
                return None;
            }
            match st.events.next().await {
                None => {
                    st.done = true;
                    return Some((
                        Err(ProviderError::Malformed("the stream ended before the answer was complete".into())),
                        st,
                    ));
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(ProviderError::Malformed(format!("the stream broke: {e}"))), st));
                }
                Some(Ok(event)) if event.data.trim() == "[DONE]" => {
                    for call in std::mem::take(&mut st.calls) {
                        let arguments = if call.arguments.trim().is_empty() {
                            json!({})
                        } else {
                            match serde_json::from_str(&call.arguments) {
                                Ok(v) => v,
                                Err(_) => {
                                    st.done = true;
                                    return Some((
                                        Err(ProviderError::Malformed(format!(
                                            "tool call {} has arguments that are not JSON",
                                            call.name
                                        ))),
                                        st,
                                    ));
                                }
                            }
                        };
                        st.pending.push_back(StreamEvent::ToolCall(ToolCall {
                            id: call.id,
                            name: call.name,
                            arguments,
                        }));
                    }
                    let reason = st.reason.take().unwrap_or(FinishReason::Stop);
                    st.pending.push_back(StreamEvent::Finish { model: st.model.clone(), reason });
                    st.done = true;
                }
                Some(Ok(event)) => {
                    let chunk: Value = match serde_json::from_str(&event.data) {
                        Ok(v) => v,
                        Err(e) => {
                            st.done = true;
                            return Some((
                                Err(ProviderError::Malformed(format!("a stream chunk is not JSON: {e}"))),
                                st,
                            ));
                        }
                    };
                    if let Some(model) = chunk["model"].as_str().filter(|m| !m.is_empty()) {
                        st.model = model.to_owned();
                    }
                    if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
                        let input = u["prompt_tokens"].as_u64().unwrap_or(0);
                        let output = u["completion_tokens"].as_u64().unwrap_or(0);
                        let total = u["total_tokens"].as_u64().unwrap_or(input + output);
                        st.pending.push_back(StreamEvent::Usage(Usage {
                            input_tokens: input,
                            output_tokens: output,
                            total_tokens: total,
                        }));
                    }
                    let choice = &chunk["choices"][0];
                    if let Some(text) = choice["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
                        st.pending.push_back(StreamEvent::TextDelta(text.to_owned()));
                    }
                    for piece in choice["delta"]["tool_calls"].as_array().into_iter().flatten() {
                        let index = piece["index"].as_u64().unwrap_or(0) as usize;
                        while st.calls.len() <= index {
                            st.calls.push(PartialCall::default());
                        }
                        let call = &mut st.calls[index];
                        if let Some(id) = piece["id"].as_str() {
                            call.id = id.to_owned();
                        }
                        if let Some(name) = piece["function"]["name"].as_str() {
                            call.name.push_str(name);
                        }
                        if let Some(args) = piece["function"]["arguments"].as_str() {
                            call.arguments.push_str(args);
                        }
                    }
                    st.reason = match choice["finish_reason"].as_str() {
                        Some("tool_calls") => Some(FinishReason::ToolCalls),
                        Some("length") => Some(FinishReason::Length),
                        Some("stop") => Some(FinishReason::Stop),
                        Some(other) => Some(FinishReason::Other(other.to_owned())),
                        None => st.reason.take(),
                    };
                }
            }
        }
    })
    .boxed()
}
