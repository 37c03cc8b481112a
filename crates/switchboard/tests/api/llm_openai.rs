//! Chat with an OpenAI-compatible model (a scripted local server speaking the real protocol):
//! tool calls, parallel tool calls, and every way the model service can fail (RELIABILITY B10
//! items 59–64, B6.41). The user's message is always kept.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::config::LlmProvider;

use crate::helpers::{error_code, Backend, TestApp};
use crate::model_server::{ModelServer, Reply};

const KEY: &str = "sk-canary-6c1e2a9f0b";

async fn app_with_model(
    backend: &Backend,
    base_url: &str,
    configure: impl FnOnce(&mut switchboard::Settings),
) -> TestApp {
    let configure = |s: &mut switchboard::Settings| {
        s.llm_model = Some("scripted-model".into());
        configure(s);
    };
    crate::model_server::app_with_model(backend, LlmProvider::Openai, base_url, Some(KEY), configure).await
}

/// The stored messages of the caller's only conversation.
async fn stored_messages(app: &TestApp, token: &str) -> Vec<Value> {
    let list: Value = app.get("/api/v1/conversations", token).await.json().await.unwrap();
    let id = list["items"][0]["id"].as_str().expect("a conversation was created").to_owned();
    let messages: Value = app.get(&format!("/api/v1/conversations/{id}/messages"), token).await.json().await.unwrap();
    messages["items"].as_array().unwrap().clone()
}

async fn the_model_calls_a_task_tool_and_then_answers(backend: Backend) {
    let model = ModelServer::start(vec![
        Reply::tools(&[("add_task", json!({"title": "from the model"}))]),
        Reply::text("Done: I added it."),
    ])
    .await;
    let app = app_with_model(&backend, &model.base_url, |_| {}).await;
    let token = app.token_for("alice");
    let reply = app.chat(&token, "please remember to water the plants", None).await;
    assert_eq!(reply["message"]["content"], "Done: I added it.");
    assert_eq!(reply["tool_calls"][0]["tool"], "add_task");
    assert_eq!(reply["usage"]["total_tokens"], 36, "both model calls counted");
    assert_eq!(reply["context"]["model"], "scripted-model");
    let tasks: Value = app.get("/api/v1/tasks", &token).await.json().await.unwrap();
    assert_eq!(tasks["items"][0]["title"], "from the model");

    let received = model.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    let tools: Vec<&str> =
        received[0].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(tools.contains(&"add_task") && tools.contains(&"list_tasks"));
    assert_eq!(received[0].body["messages"][0]["role"], "system");
    let last = received[1].body["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["role"].as_str(), last["tool_call_id"].as_str()), (Some("tool"), Some("call_0")));
    assert!(last["content"].as_str().unwrap().contains("Added task #1 from the model"));
}

async fn parallel_tool_calls_all_run(backend: Backend) {
    let calls = [
        ("add_task", json!({"title": "one"})),
        ("add_task", json!({"title": "two"})),
        ("add_task", json!({"title": "three"})),
    ];
    let model = ModelServer::start(vec![Reply::tools(&calls), Reply::text("Added three.")]).await;
    let app = app_with_model(&backend, &model.base_url, |_| {}).await;
    let token = app.token_for("alice");
    let reply = app.chat(&token, "add one, two and three", None).await;
    assert_eq!(reply["tool_calls"].as_array().unwrap().len(), 3);
    let mut numbers: Vec<i64> =
        reply["context"]["tasks_modified"].as_array().unwrap().iter().map(|n| n.as_i64().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(app.count_rows("tasks").await, 3);
}

/// B10.59: 500 on every attempt: 503 `llm_unavailable` after the retries, message kept.
async fn a_failing_model_means_503_after_retries_and_the_message_is_kept(backend: Backend) {
    let model = ModelServer::start(vec![Reply::status(500, "{\"error\": \"boom\"}")]).await;
    let app = app_with_model(&backend, &model.base_url, |_| {}).await;
    let token = app.token_for("alice");
    let response = app.post_json("/api/v1/chat", &token, &json!({"message": "keep me"})).await;
    let (status, code) = error_code(response).await;
    assert_eq!((status, code.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "llm_unavailable"));
    assert_eq!(model.received().len(), 3, "one attempt and two retries");
    let messages = stored_messages(&app, &token).await;
    assert_eq!(messages.len(), 1);
    assert_eq!((messages[0]["role"].as_str(), messages[0]["content"].as_str()), (Some("user"), Some("keep me")));
}

/// B10.60: 429 with Retry-After 7: no retry before 7 s; the client gets 503 with Retry-After ≥ 7.
async fn a_rate_limited_model_passes_its_retry_after_on(backend: Backend) {
    let model = ModelServer::start(vec![Reply::Raw(429, "{}".into(), vec![("retry-after", "7".into())])]).await;
    let app = app_with_model(&backend, &model.base_url, |_| {}).await;
    let token = app.token_for("alice");
    let started = Instant::now();
    let response = app.post_json("/api/v1/chat", &token, &json!({"message": "hi"})).await;
    assert!(started.elapsed() < Duration::from_secs(5), "did not sit out the 7 s");
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 7);
    let (status, code) = error_code(response).await;
    assert_eq!((status, code.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "llm_rate_limited"));
    assert_eq!(model.received().len(), 1, "no retry before Retry-After");
    assert_eq!(stored_messages(&app, &token).await.len(), 1);
}

async fn a_short_retry_after_is_waited_out_and_the_turn_succeeds(backend: Backend) {
    let model = ModelServer::start(vec![
        Reply::Raw(429, "{}".into(), vec![("retry-after", "0".into())]),
        Reply::text("fine now"),
    ])
    .await;
    let app = app_with_model(&backend, &model.base_url, |_| {}).await;
    let reply = app.chat(&app.token_for("alice"), "hi", None).await;
    assert_eq!(reply["message"]["content"], "fine now");
    assert_eq!(model.received().len(), 2);
}

/// B10.61: a hanging model, a refused connection: 503 in time, message kept.
async fn a_hanging_or_unreachable_model_means_503_in_time(backend: Backend) {
    let model =
        ModelServer::start(vec![Reply::After(Duration::from_secs(30), Box::new(Reply::text("too late")))]).await;
    let app = app_with_model(&backend, &model.base_url, |s| s.llm_timeout_secs = 1).await;
    let token = app.token_for("alice");
    let started = Instant::now();
    let (status, code) = error_code(app.post_json("/api/v1/chat", &token, &json!({"message": "hello?"})).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "llm_unavailable"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered within the timeout plus a margin: {:?}",
        started.elapsed()
    );
    assert_eq!(stored_messages(&app, &token).await.len(), 1);

    let app = app_with_model(&backend, "http://127.0.0.1:9/v1", |_| {}).await;
    let token = app.token_for("alice");
    let (status, code) = error_code(app.post_json("/api/v1/chat", &token, &json!({"message": "anyone?"})).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "llm_unavailable"));
    assert_eq!(stored_messages(&app, &token).await.len(), 1);
}

/// B10.62–64: nonsense, a refused key and an over-long context each get their own answer;
/// the key never appears in a response.
async fn malformed_unauthorised_and_too_long_answers_are_told_apart(backend: Backend) {
    for (reply, status, code, attempts) in [
        (Reply::status(200, "this is not json"), StatusCode::BAD_GATEWAY, "llm_bad_response", 1),
        (
            Reply::status(401, "{\"error\": {\"message\": \"Incorrect API key provided: sk-canary...\"}}"),
            StatusCode::BAD_GATEWAY,
            "llm_auth_failed",
            1,
        ),
        (
            Reply::status(
                400,
                "{\"error\": {\"code\": \"context_length_exceeded\", \"message\": \"maximum context length\"}}",
            ),
            StatusCode::BAD_REQUEST,
            "context_length_exceeded",
            1,
        ),
    ] {
        let model = ModelServer::start(vec![reply]).await;
        let app = app_with_model(&backend, &model.base_url, |_| {}).await;
        let token = app.token_for("alice");
        let response = app.post_json("/api/v1/chat", &token, &json!({"message": "hi"})).await;
        let body = response.text().await.unwrap();
        assert!(!body.contains(KEY) && !body.contains("sk-canary"), "no key in {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], code);
        assert_eq!(model.received().len(), attempts, "{code}: not retried");
        assert_eq!(stored_messages(&app, &token).await.len(), 1, "{code}: message kept");
        assert_eq!(status_of(&app, &token).await, status, "{code}");
    }
}

/// The status of one more chat request against the same scripted model.
async fn status_of(app: &TestApp, token: &str) -> StatusCode {
    app.post_json("/api/v1/chat", token, &json!({"message": "again"})).await.status()
}

/// B6.41: a model that always asks for a tool stops at the step cap, with 0 extra model calls.
async fn a_runaway_tool_loop_stops_at_the_step_cap(backend: Backend) {
    let model = ModelServer::start(vec![Reply::tools(&[("list_tasks", json!({}))])]).await;
    let app = app_with_model(&backend, &model.base_url, |s| s.max_agent_steps = 3).await;
    let reply = app.chat(&app.token_for("alice"), "loop forever", None).await;
    assert_eq!(reply["context"]["stop"], "max_steps");
    assert_eq!(model.received().len(), 3);
    assert_eq!(reply["tool_calls"].as_array().unwrap().len(), 3);
}

/// A request may pick a model, but only one on the server's allow-list.
async fn a_request_may_choose_an_allowed_model_only(backend: Backend) {
    let model = ModelServer::start(vec![Reply::text("ok")]).await;
    let app = app_with_model(&backend, &model.base_url, |s| s.llm_allowed_models = vec!["bigger-model".into()]).await;
    let token = app.token_for("alice");
    app.chat(&token, "hi", None).await;
    let response =
        app.post_json("/api/v1/chat", &token, &json!({"message": "think harder", "model": "bigger-model"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let received = model.received();
    assert_eq!(received[0].body["model"], "scripted-model", "the configured model by default");
    assert_eq!(received[1].body["model"], "bigger-model");

    let (status, code) =
        error_code(app.post_json("/api/v1/chat", &token, &json!({"message": "x", "model": "gpt-unlisted"})).await)
            .await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "model_not_allowed"));
    assert_eq!(model.received().len(), 2, "the refused request never reached the model");
    assert_eq!(app.count_rows("messages").await, 4, "and stored nothing");

    let offline = crate::helpers::spawn_app(&backend).await;
    let response =
        offline.post_json("/api/v1/chat", &offline.token_for("a"), &json!({"message": "x", "model": "any"})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

async fn the_next_turn_sees_earlier_tool_calls_and_results_within_the_budget(backend: Backend) {
    let model = ModelServer::start(vec![
        Reply::tools(&[("add_task", json!({"title": "buy milk"}))]),
        Reply::text("Added task 1."),
        Reply::text("It is task 1."),
        Reply::text("Still task 1."),
    ])
    .await;
    let app = app_with_model(&backend, &model.base_url, |s| s.history_max_tokens = 300).await;
    let token = app.token_for("alice");
    let first = app.chat(&token, "add a task called buy milk", None).await;
    let conversation = first["conversation_id"].as_str().unwrap().to_owned();
    let second = app.chat(&token, "which number was it?", Some(&conversation)).await;
    assert_eq!(second["message"]["content"], "It is task 1.");

    let asked = &model.received()[2].body["messages"];
    let roles: Vec<&str> = asked.as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "assistant", "user"], "{asked}");
    assert_eq!(asked[2]["tool_calls"][0]["function"]["name"], "add_task");
    assert_eq!(asked[3]["tool_call_id"], asked[2]["tool_calls"][0]["id"]);
    assert!(asked[3]["content"].as_str().unwrap().contains("buy milk"), "the earlier result: {}", asked[3]);
    assert_eq!(second["context"]["history_messages"], 3);

    // A long message pushes the earlier turns out of the 300-token budget; the new one stays.
    let long = "please tell me again ".repeat(100);
    let third = app.chat(&token, &long, Some(&conversation)).await;
    let asked = &model.received()[3].body["messages"];
    let roles: Vec<&str> = asked.as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user"], "{asked}");
    assert!(asked[1]["content"].as_str().unwrap().starts_with("please tell me again"));
    assert_eq!(third["context"]["history_messages"], 1);
}

crate::on_both_backends!(
    the_next_turn_sees_earlier_tool_calls_and_results_within_the_budget,
    a_request_may_choose_an_allowed_model_only,
    the_model_calls_a_task_tool_and_then_answers,
    parallel_tool_calls_all_run,
    a_failing_model_means_503_after_retries_and_the_message_is_kept,
    a_rate_limited_model_passes_its_retry_after_on,
    a_short_retry_after_is_waited_out_and_the_turn_succeeds,
    a_hanging_or_unreachable_model_means_503_in_time,
    malformed_unauthorised_and_too_long_answers_are_told_apart,
    a_runaway_tool_loop_stops_at_the_step_cap,
);
