//! `POST /api/v1/chat/stream`: the turn as Server-Sent Events, with the offline provider and with
//! a model that streams (RELIABILITY B10.62 for a stream cut in the middle).

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::config::LlmProvider;

use crate::helpers::{spawn_app, Backend, TestApp};
use crate::model_server::{app_with_model, ModelServer, Reply};

/// Sends a streamed chat request and returns its events as (name, data).
async fn stream(app: &TestApp, token: &str, message: &str) -> Vec<(String, Value)> {
    stream_body(app, token, &json!({ "message": message })).await
}

/// Like [`stream`], with any request body.
pub async fn stream_body(app: &TestApp, token: &str, body: &Value) -> Vec<(String, Value)> {
    let response = app.post_json("/api/v1/chat/stream", token, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let name = block.lines().find_map(|l| l.strip_prefix("event: ")).map(str::to_owned);
        let data = block.lines().find_map(|l| l.strip_prefix("data: "));
        if let (Some(name), Some(data)) = (name, data) {
            events.push((name, serde_json::from_str(data).unwrap()));
        }
    }
    events
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

async fn an_offline_turn_streams_its_tool_call_and_reply(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let events = stream(&app, &token, "add a task called streamed milk").await;
    assert_eq!(names(&events), ["message_start", "tool_call", "tool_result", "delta", "message_end"]);
    assert_eq!(events[1].1["tool"], "add_task");
    assert_eq!(events[2].1["is_error"], false);
    let end = &events[4].1;
    assert!(end["message"]["content"].as_str().unwrap().contains("Added task #1 streamed milk"));
    assert_eq!(end["conversation_id"], events[0].1["conversation_id"]);
    let tasks: Value = app.get("/api/v1/tasks", &token).await.json().await.unwrap();
    assert_eq!(tasks["items"][0]["title"], "streamed milk");
    // The streamed turn is stored like any other.
    let id = end["conversation_id"].as_str().unwrap();
    let detail: Value = app.get(&format!("/api/v1/conversations/{id}"), &token).await.json().await.unwrap();
    assert_eq!(detail["messages"][1]["id"], end["message"]["id"]);
}

async fn model_text_arrives_as_deltas_in_order(backend: Backend) {
    let model = ModelServer::start(vec![Reply::Stream { pieces: vec!["Hel", "lo, ", "world"], complete: true }]).await;
    let app = app_with_model(&backend, LlmProvider::Openai, &model.base_url, Some("sk-test-0000"), |_| {}).await;
    let events = stream(&app, &app.token_for("alice"), "greet me").await;
    let deltas: Vec<&str> =
        events.iter().filter(|(n, _)| n == "delta").map(|(_, d)| d["text"].as_str().unwrap()).collect();
    assert_eq!(deltas, ["Hel", "lo, ", "world"]);
    let end = &events.last().unwrap().1;
    assert_eq!(end["message"]["content"], "Hello, world");
    assert_eq!(end["usage"]["total_tokens"], 5);
    assert_eq!(model.received()[0].body["stream"], true);
}

/// B10.62: the model's stream stops in the middle: an `error` event, the partial text kept and
/// flagged incomplete, the user's message kept, nothing panics.
async fn a_stream_cut_in_the_middle_keeps_the_partial_reply_flagged_incomplete(backend: Backend) {
    let model = ModelServer::start(vec![Reply::Stream { pieces: vec!["Half an ", "answ"], complete: false }]).await;
    let app = app_with_model(&backend, LlmProvider::Openai, &model.base_url, None, |_| {}).await;
    let token = app.token_for("alice");
    let events = stream(&app, &token, "tell me everything").await;
    assert_eq!(names(&events), ["message_start", "delta", "delta", "error"]);
    assert_eq!(events[3].1["code"], "llm_bad_response");
    let id = events[0].1["conversation_id"].as_str().unwrap();
    let detail: Value = app.get(&format!("/api/v1/conversations/{id}"), &token).await.json().await.unwrap();
    let messages = detail["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["content"], "tell me everything");
    assert_eq!(messages[1]["content"], "Half an answ");
    assert_eq!(messages[1]["metadata"]["incomplete"], true);
}

async fn bad_stream_requests_get_json_errors_before_any_event(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let response = app.post_json("/api/v1/chat/stream", &token, &json!({"message": "  "})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = app
        .post_json("/api/v1/chat/stream", &token, &json!({"message": "x", "conversation_id": uuid::Uuid::new_v4()}))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.client.post(app.url("/api/v1/chat/stream")).json(&json!({"message": "x"})).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

crate::on_both_backends!(
    an_offline_turn_streams_its_tool_call_and_reply,
    model_text_arrives_as_deltas_in_order,
    a_stream_cut_in_the_middle_keeps_the_partial_reply_flagged_incomplete,
    bad_stream_requests_get_json_errors_before_any_event,
);
