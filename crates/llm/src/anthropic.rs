//! Anthropic's Messages API: `system`, content blocks with `tool_use` and `tool_result`, and its
//! streaming events.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::{client, poster, read_answer, read_stream, send_with_retries, HttpConfig, KeyHeader};
use crate::{
    ChatMessage, ChatRequest, ChatResponse, ChatRole, FinishReason, Provider, ProviderError, StreamEvent, ToolCall,
    Usage,
};

/// The API version this client speaks.
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by the API; this is used when none is configured.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

pub struct AnthropicProvider {
    config: HttpConfig,
    http: reqwest::Client,
}

impl AnthropicProvider {
    pub fn new(config: HttpConfig) -> AnthropicProvider {
        AnthropicProvider { config, http: client() }
    }

    fn post(&self, body: bytes::Bytes) -> impl Fn() -> reqwest::RequestBuilder + '_ {
        poster(
            &self.http,
            &self.config,
            "messages",
            body,
            KeyHeader::Named("x-api-key"),
            &[("anthropic-version", API_VERSION)],
        )
    }
}

/// The request as sent: borrowed from the [`ChatRequest`], serialized once.
#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: &'a Value },
    ToolResult { tool_use_id: Option<&'a str>, content: &'a str },
}

#[derive(Serialize)]
struct OutTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a crate::JsonObject,
}

/// The content blocks of one message.
fn blocks(m: &ChatMessage) -> Vec<Block<'_>> {
    match m.role {
        ChatRole::Tool => vec![Block::ToolResult { tool_use_id: m.tool_call_id.as_deref(), content: &m.content }],
        _ => {
            let mut out = Vec::with_capacity(1 + m.tool_calls.len());
            if !m.content.is_empty() {
                out.push(Block::Text { text: &m.content });
            }
            out.extend(m.tool_calls.iter().map(|c| Block::ToolUse { id: &c.id, name: &c.name, input: &c.arguments }));
            out
        }
    }
}

/// The request body for `request`, as JSON bytes: system messages go to `system`, tool results
/// become user turns, and neighbouring turns of the same role are merged (the API wants them
/// alternating).
pub fn request_body(config: &HttpConfig, request: &ChatRequest, stream: bool) -> bytes::Bytes {
    let system: Vec<&str> =
        request.messages.iter().filter(|m| m.role == ChatRole::System).map(|m| m.content.as_str()).collect();
    let mut messages: Vec<Turn<'_>> = Vec::new();
    for m in request.messages.iter().filter(|m| m.role != ChatRole::System) {
        let role = if m.role == ChatRole::Assistant { "assistant" } else { "user" };
        let content = blocks(m);
        if content.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(content),
            _ => messages.push(Turn { role, content }),
        }
    }
    let body = WireRequest {
        model: request.model.as_deref().unwrap_or(&config.model),
        max_tokens: config.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        messages,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        tools: request
            .tools
            .iter()
            .map(|t| OutTool { name: &t.name, description: &t.description, input_schema: &t.input_schema })
            .collect(),
        temperature: config.temperature,
        stream,
    };
    serde_json::to_vec(&body).expect("a request of strings and JSON values serializes").into()
}

fn finish_reason(stop: Option<&str>) -> FinishReason {
    match stop {
        Some("end_turn") | Some("stop_sequence") | None => FinishReason::Stop,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("max_tokens") => FinishReason::Length,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

fn usage(u: &Value) -> Usage {
    let input = u["input_tokens"].as_u64().unwrap_or(0);
    let output = u["output_tokens"].as_u64().unwrap_or(0);
    Usage { input_tokens: input, output_tokens: output, total_tokens: input + output }
}

/// Reads a Messages API response body.
pub fn parse_response(body: &str) -> Result<ChatResponse, ProviderError> {
    let message: Value = serde_json::from_str(body).map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let blocks = message["content"].as_array().ok_or_else(|| ProviderError::Malformed("no content".into()))?;
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => content.push_str(block["text"].as_str().unwrap_or("")),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_owned(),
                name: block["name"]
                    .as_str()
                    .ok_or_else(|| ProviderError::Malformed("a tool_use without a name".into()))?
                    .to_owned(),
                arguments: block["input"].clone(),
            }),
            _ => {}
        }
    }
    Ok(ChatResponse {
        content,
        tool_calls,
        model: message["model"].as_str().unwrap_or_default().to_owned(),
        usage: usage(&message["usage"]),
        finish_reason: finish_reason(message["stop_reason"].as_str()),
    })
}

fn classify(status: StatusCode, body: &str) -> Option<ProviderError> {
    let lower = body.to_lowercase();
    (status == StatusCode::BAD_REQUEST && (lower.contains("prompt is too long") || lower.contains("context window")))
        .then_some(ProviderError::ContextLengthExceeded)
}

/// Turns the Messages API's event stream into [`StreamEvent`]s.
pub fn parse_stream(
    bytes: impl futures::Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send + 'static,
    fallback_model: String,
) -> crate::EventStream {
    use eventsource_stream::Eventsource;
    use futures::StreamExt;

    struct Block {
        id: String,
        name: String,
        json: String,
    }
    struct State {
        events: futures::stream::BoxStream<'static, Result<eventsource_stream::Event, String>>,
        blocks: std::collections::BTreeMap<u64, Block>,
        model: String,
        usage: Usage,
        reason: Option<String>,
        pending: std::collections::VecDeque<Result<StreamEvent, ProviderError>>,
        done: bool,
    }
    let events = bytes.eventsource().map(|e| e.map_err(|e| e.to_string())).boxed();
    let state = State {
        events,
        blocks: Default::default(),
        model: fallback_model,
        usage: Usage::default(),
        reason: None,
        pending: Default::default(),
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.pending.pop_front() {
                return Some((item, st));
            }
            if st.done {
                return None;
            }
            let fail = |message: String| Err(ProviderError::Malformed(message));
            let event = match st.events.next().await {
                None => {
                    st.done = true;
                    return Some((fail("the stream ended before the answer was complete".into()), st));
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((fail(format!("the stream broke: {e}")), st));
                }
                Some(Ok(event)) => event,
            };
            let data: Value = match serde_json::from_str(&event.data) {
                Ok(v) => v,
                Err(e) => {
                    st.done = true;
                    return Some((fail(format!("a stream event is not JSON: {e}")), st));
                }
            };
            match data["type"].as_str().unwrap_or(event.event.as_str()) {
                "message_start" => {
                    if let Some(model) = data["message"]["model"].as_str().filter(|m| !m.is_empty()) {
                        st.model = model.to_owned();
                    }
                    st.usage.input_tokens = data["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
                }
                "content_block_start" => {
                    let block = &data["content_block"];
                    if block["type"] == "tool_use" {
                        let index = data["index"].as_u64().unwrap_or(0);
                        st.blocks.insert(
                            index,
                            Block {
                                id: block["id"].as_str().unwrap_or_default().to_owned(),
                                name: block["name"].as_str().unwrap_or_default().to_owned(),
                                json: String::new(),
                            },
                        );
                    }
                }
                "content_block_delta" => {
                    let delta = &data["delta"];
                    match delta["type"].as_str() {
                        Some("text_delta") => {
                            let text = delta["text"].as_str().unwrap_or_default();
                            if !text.is_empty() {
                                st.pending.push_back(Ok(StreamEvent::TextDelta(text.to_owned())));
                            }
                        }
                        Some("input_json_delta") => {
                            let index = data["index"].as_u64().unwrap_or(0);
                            if let Some(block) = st.blocks.get_mut(&index) {
                                block.json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                            }
                        }
                        _ => {}
                    }
                }
                "message_delta" => {
                    st.reason = data["delta"]["stop_reason"].as_str().map(str::to_owned).or(st.reason.take());
                    if let Some(output) = data["usage"]["output_tokens"].as_u64() {
                        st.usage.output_tokens = output;
                    }
                }
                "message_stop" => {
                    for block in std::mem::take(&mut st.blocks).into_values() {
                        let arguments = if block.json.trim().is_empty() {
                            Ok(json!({}))
                        } else {
                            serde_json::from_str(&block.json).map_err(|_| {
                                ProviderError::Malformed(format!("tool call {} has input that is not JSON", block.name))
                            })
                        };
                        st.pending.push_back(arguments.map(|arguments| {
                            StreamEvent::ToolCall(ToolCall { id: block.id, name: block.name, arguments })
                        }));
                    }
                    st.usage.total_tokens = st.usage.input_tokens + st.usage.output_tokens;
                    st.pending.push_back(Ok(StreamEvent::Usage(st.usage)));
                    st.pending.push_back(Ok(StreamEvent::Finish {
                        model: st.model.clone(),
                        reason: finish_reason(st.reason.as_deref()),
                    }));
                    st.done = true;
                }
                "error" => {
                    st.done = true;
                    let message = data["error"]["message"].as_str().unwrap_or("unknown").to_owned();
                    return Some((
                        Err(ProviderError::Unavailable(format!("the stream reported an error: {message}"))),
                        st,
                    ));
                }
                _ => {}
            }
        }
    })
    .boxed()
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &'static str {
        "anthropic"
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
    fn requests_put_the_system_prompt_aside_and_merge_tool_results_into_one_user_turn() {
        let config = HttpConfig::new("http://x/v1", "claude-test");
        let calls = vec![
            ToolCall { id: "t1".into(), name: "add_task".into(), arguments: json!({"title": "a"}) },
            ToolCall { id: "t2".into(), name: "add_task".into(), arguments: json!({"title": "b"}) },
        ];
        let request = ChatRequest {
            messages: vec![
                ChatMessage::text(ChatRole::System, "be brief"),
                ChatMessage::text(ChatRole::User, "add a and b"),
                ChatMessage {
                    role: ChatRole::Assistant,
                    content: String::new(),
                    tool_calls: calls,
                    tool_call_id: None,
                },
                ChatMessage::tool_result("t1", "ok a"),
                ChatMessage::tool_result("t2", "ok b"),
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
        assert_eq!(streamed["stream"], json!(true));
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(
            messages[1]["content"][1],
            json!({"type": "tool_use", "id": "t2", "name": "add_task", "input": {"title": "b"}})
        );
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(messages[2]["content"].as_array().unwrap().len(), 2, "both results in one user turn");
        assert_eq!(messages[2]["content"][0], json!({"type": "tool_result", "tool_use_id": "t1", "content": "ok a"}));
        assert_eq!(messages[0], json!({"role": "user", "content": [{"type": "text", "text": "add a and b"}]}));
        assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));
    }

    #[test]
    fn responses_give_text_tool_uses_and_usage() {
        let body = r#"{"model":"claude-x","content":[{"type":"text","text":"Sure."},{"type":"tool_use","id":"tu1","name":"list_tasks","input":{}}],"stop_reason":"tool_use","usage":{"input_tokens":9,"output_tokens":4}}"#;
        let r = parse_response(body).unwrap();
        assert_eq!((r.content.as_str(), r.tool_calls[0].name.as_str()), ("Sure.", "list_tasks"));
        assert_eq!((r.finish_reason, r.usage.total_tokens), (FinishReason::ToolCalls, 13));
        assert!(matches!(parse_response("[]"), Err(ProviderError::Malformed(_))));
    }
}
