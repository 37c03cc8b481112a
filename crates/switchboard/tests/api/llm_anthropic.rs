//! Chat with Claude through Anthropic's Messages API (a scripted local server speaking the real
//! protocol): tool use, streaming events, and an overloaded service.

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::config::LlmProvider;

use crate::helpers::{error_code, Backend, TestApp};
use crate::model_server::{app_with_model, ModelServer, Reply};

async fn app_with_claude(backend: &Backend, model: &ModelServer) -> TestApp {
    app_with_model(backend, LlmProvider::Anthropic, &model.base_url, Some("sk-ant-test-1234"), |_| {}).await
}

async fn claude_uses_a_task_tool_and_answers(backend: Backend) {
    let model = ModelServer::start(vec![
        Reply::anthropic_tools(&[("add_task", json!({"title": "from claude"}))]),
        Reply::anthropic_text("Added it."),
    ])
    .await;
    let app = app_with_claude(&backend, &model).await;
    let token = app.token_for("alice");
    let reply = app.chat(&token, "note that I must call the plumber", None).await;
    assert_eq!(reply["message"]["content"], "Added it.");
    assert_eq!(reply["context"]["provider"], "anthropic");
    assert_eq!(reply["usage"]["total_tokens"], 30);
    let tasks: Value = app.get("/api/v1/tasks", &token).await.json().await.unwrap();
    assert_eq!(tasks["items"][0]["title"], "from claude");

    let received = model.received();
    assert_eq!(received[0].api_key.as_deref(), Some("sk-ant-test-1234"));
    assert_eq!(received[0].anthropic_version.as_deref(), Some("2023-06-01"));
    assert!(received[0].body["system"].as_str().unwrap().contains("Switchboard"));
    assert!(received[0].body["tools"].as_array().unwrap().iter().any(|t| t["name"] == "add_task"));
    let last = received[1].body["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["tool_use_id"], "toolu_0");
}

async fn claude_streams_its_text(backend: Backend) {
    let model = ModelServer::start(vec![Reply::anthropic_stream(&["Good ", "morning"])]).await;
    let app = app_with_claude(&backend, &model).await;
    let response = app.post_json("/api/v1/chat/stream", &app.token_for("alice"), &json!({"message": "hi"})).await;
    let text = response.text().await.unwrap();
    let deltas: Vec<Value> = text
        .split("\n\n")
        .filter(|b| b.contains("event: delta"))
        .filter_map(|b| b.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(deltas.iter().map(|d| d["text"].as_str().unwrap()).collect::<Vec<_>>(), ["Good ", "morning"]);
    assert!(text.contains("event: message_end"));
    assert!(text.contains("\"total_tokens\":14"));
    assert_eq!(model.received()[0].body["stream"], true);
}

async fn an_overloaded_claude_means_503_after_retries(backend: Backend) {
    let model =
        ModelServer::start(vec![Reply::status(529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}")])
            .await;
    let app = app_with_claude(&backend, &model).await;
    let (status, code) =
        error_code(app.post_json("/api/v1/chat", &app.token_for("alice"), &json!({"message": "hi"})).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "llm_unavailable"));
    assert_eq!(model.received().len(), 3);
}

crate::on_both_backends!(
    claude_uses_a_task_tool_and_answers,
    claude_streams_its_text,
    an_overloaded_claude_means_503_after_retries
);
