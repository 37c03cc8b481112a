//! A local stand-in for an OpenAI-compatible model service: it speaks the real Chat Completions
//! wire format over HTTP, answers from a script, and records what it was sent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use switchboard::config::LlmProvider;

use crate::helpers::{spawn_app_with, Backend, TestApp};

/// One scripted answer.
#[derive(Clone)]
pub enum Reply {
    /// A status, a body and extra headers.
    Raw(u16, String, Vec<(&'static str, String)>),
    /// Wait, then answer.
    After(Duration, Box<Reply>),
    /// A streamed answer: these text pieces as SSE chunks, then (if `complete`) the finish chunk
    /// with usage and `[DONE]`. An incomplete one just stops, like a cut connection.
    Stream { pieces: Vec<&'static str>, complete: bool },
}

impl Reply {
    pub fn text(content: &str) -> Reply {
        Reply::Raw(200, completion(json!({"role": "assistant", "content": content}), "stop").to_string(), vec![])
    }

    /// A reply asking for tool calls: `(name, arguments)` each.
    pub fn tools(calls: &[(&str, Value)]) -> Reply {
        let calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| json!({"id": format!("call_{i}"), "type": "function", "function": {"name": name, "arguments": args.to_string()}}))
            .collect();
        Reply::Raw(
            200,
            completion(json!({"role": "assistant", "content": null, "tool_calls": calls}), "tool_calls").to_string(),
            vec![],
        )
    }

    /// Anthropic Messages API: a text answer.
    pub fn anthropic_text(text: &str) -> Reply {
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "scripted-claude",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 5}});
        Reply::Raw(200, body.to_string(), vec![])
    }

    /// Anthropic Messages API: tool uses.
    pub fn anthropic_tools(calls: &[(&str, Value)]) -> Reply {
        let content: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (name, input))| json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": input}))
            .collect();
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "scripted-claude",
            "content": content, "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 5}});
        Reply::Raw(200, body.to_string(), vec![])
    }

    /// Anthropic Messages API: a streamed text answer, as its real event sequence.
    pub fn anthropic_stream(pieces: &[&str]) -> Reply {
        let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
        let mut body = event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
            "role": "assistant", "model": "scripted-claude", "content": [], "usage": {"input_tokens": 8, "output_tokens": 1}}}),
        );
        body += &event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        );
        body += &event("ping", json!({"type": "ping"}));
        for piece in pieces {
            body += &event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
            );
        }
        body += &event("content_block_stop", json!({"type": "content_block_stop", "index": 0}));
        body += &event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}}),
        );
        body += &event("message_stop", json!({"type": "message_stop"}));
        Reply::Raw(200, body, vec![("content-type", "text/event-stream".into())])
    }

    pub fn status(code: u16, body: &str) -> Reply {
        Reply::Raw(code, body.to_string(), vec![])
    }
}

fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "model": "scripted-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    })
}

/// What the server received.
#[derive(Clone, Debug)]
pub struct Received {
    pub body: Value,
    pub authorization: Option<String>,
    pub api_key: Option<String>,
    pub anthropic_version: Option<String>,
}

#[derive(Clone)]
struct Script {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

pub struct ModelServer {
    pub base_url: String,
    script: Script,
}

impl ModelServer {
    /// Starts a server answering with `replies` in order; the last one repeats.
    pub async fn start(replies: Vec<Reply>) -> ModelServer {
        let script = Script { replies: Arc::new(Mutex::new(replies.into())), received: Arc::default() };
        let app = Router::new()
            .route("/v1/chat/completions", post(answer))
            .route("/v1/messages", post(answer))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        ModelServer { base_url, script }
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.received.lock().unwrap().clone()
    }
}

async fn answer(State(script): State<Script>, headers: HeaderMap, body: String) -> Response {
    script.received.lock().unwrap().push(Received {
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned),
        api_key: headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned),
        anthropic_version: headers.get("anthropic-version").and_then(|v| v.to_str().ok()).map(str::to_owned),
    });
    let reply = {
        let mut replies = script.replies.lock().unwrap();
        if replies.len() > 1 {
            replies.pop_front()
        } else {
            replies.front().cloned()
        }
    };
    respond(reply.expect("a scripted reply")).await
}

async fn respond(reply: Reply) -> Response {
    let mut reply = reply;
    loop {
        match reply {
            Reply::After(wait, next) => {
                tokio::time::sleep(wait).await;
                reply = *next;
            }
            Reply::Stream { pieces, complete } => {
                let chunk = |delta: Value, finish: Value| {
                    json!({"id": "c", "object": "chat.completion.chunk", "model": "scripted-model",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                };
                let mut body = String::new();
                for piece in pieces {
                    body.push_str(&format!("data: {}\n\n", chunk(json!({"content": piece}), Value::Null)));
                }
                if complete {
                    body.push_str(&format!("data: {}\n\n", chunk(json!({}), json!("stop"))));
                    let usage = json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}});
                    body.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
                }
                return (StatusCode::OK, [("content-type", "text/event-stream")], body).into_response();
            }
            Reply::Raw(code, body, headers) => {
                let mut response =
                    (StatusCode::from_u16(code).unwrap(), [("content-type", "application/json")], body).into_response();
                for (name, value) in headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                return response;
            }
        }
    }
}

/// A test server answering chat with `provider` at `base_url` (this module's scripted server),
/// with `key` as its API key; `configure` adjusts the rest.
pub async fn app_with_model(
    backend: &Backend,
    provider: LlmProvider,
    base_url: &str,
    key: Option<&str>,
    configure: impl FnOnce(&mut switchboard::Settings),
) -> TestApp {
    let (base_url, key) = (base_url.to_owned(), key.map(|k| secrecy::SecretString::from(k.to_owned())));
    spawn_app_with(
        backend,
        move |s| {
            s.llm_provider = provider;
            s.llm_base_url = Some(base_url);
            s.llm_api_key = key;
            configure(s);
        },
        Default::default(),
    )
    .await
}
