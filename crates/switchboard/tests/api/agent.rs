//! Chat turns that act through tools: with no model configured, plain task commands become real
//! calls of the built-in tasks tools, and the reply, the tool calls and the tasks agree.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, Backend};

async fn chat_commands_manage_tasks_through_the_task_tools(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");

    let added = app.chat(&token, "add a task called buy milk", None).await;
    let conversation = added["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(added["tool_calls"][0]["tool"], "add_task");
    assert_eq!(added["tool_calls"][0]["args"]["title"], "buy milk");
    assert_eq!(added["tool_calls"][0]["is_error"], false);
    assert!(added["tool_calls"][0]["duration_ms"].is_u64());
    assert_eq!(added["context"]["tasks_modified"], serde_json::json!([1]));
    assert_eq!(added["context"]["action_taken"], "add_task");
    assert!(added["message"]["content"].as_str().unwrap().contains("Added task #1 buy milk"));
    let tasks: Value = app.get("/api/v1/tasks", &token).await.json().await.unwrap();
    assert_eq!(tasks["items"][0]["title"], "buy milk");

    let listed = app.chat(&token, "list my tasks", Some(&conversation)).await;
    assert!(listed["message"]["content"].as_str().unwrap().contains("#1 buy milk [pending]"));
    assert_eq!(listed["context"]["tasks_modified"], serde_json::json!([]));

    app.chat(&token, "rename task 1 to buy oat milk", Some(&conversation)).await;
    app.chat(&token, "complete task 1", Some(&conversation)).await;
    let task: Value = app.get("/api/v1/tasks/1", &token).await.json().await.unwrap();
    assert_eq!((task["title"].as_str(), task["status"].as_str()), (Some("buy oat milk"), Some("completed")));

    let deleted = app.chat(&token, "delete task 1", Some(&conversation)).await;
    assert_eq!(deleted["tool_calls"][0]["tool"], "delete_task");
    assert_eq!(app.get("/api/v1/tasks/1", &token).await.status(), StatusCode::NOT_FOUND);
}

async fn a_failing_tool_call_is_reported_not_hidden(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let reply = app.chat(&token, "complete task 99", None).await;
    assert_eq!(reply["tool_calls"][0]["is_error"], true);
    assert!(reply["message"]["content"].as_str().unwrap().contains("task 99 not found"));
    assert_eq!(reply["context"]["action_taken"], "none");
}

async fn anything_else_gets_the_offline_help_without_tool_calls(backend: Backend) {
    let app = spawn_app(&backend).await;
    let reply = app.chat(&app.token_for("alice"), "write me a poem about rain", None).await;
    assert_eq!(reply["tool_calls"], serde_json::json!([]));
    let content = reply["message"]["content"].as_str().unwrap();
    assert!(content.contains("add a task called") && content.contains("SWITCHBOARD_LLM_PROVIDER"));
}

async fn chat_acts_only_on_the_callers_tasks(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (alice, bob) = (app.token_for("alice"), app.token_for("bob"));
    app.chat(&alice, "add a task called alice's secret", None).await;
    let reply = app.chat(&bob, "complete task 1", None).await;
    assert_eq!(reply["tool_calls"][0]["is_error"], true);
    assert!(!reply.to_string().contains("secret"));
    let listed = app.chat(&bob, "list my tasks", None).await;
    assert!(listed["message"]["content"].as_str().unwrap().contains("No tasks"));
    let task: Value = app.get("/api/v1/tasks/1", &alice).await.json().await.unwrap();
    assert_eq!(task["status"], "pending");
}

async fn tool_calls_are_kept_with_the_conversation_across_a_restart(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let id = app.chat(&token, "add a task called survive restarts", None).await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let app = app.restart().await;
    let detail: Value = app.get(&format!("/api/v1/conversations/{id}"), &token).await.json().await.unwrap();
    let assistant = &detail["messages"][1];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["metadata"]["tool_calls"][0]["tool"], "add_task");
    let listed = app.chat(&token, "list my tasks", Some(&id)).await;
    assert!(listed["message"]["content"].as_str().unwrap().contains("survive restarts"));
}

crate::on_both_backends!(
    chat_commands_manage_tasks_through_the_task_tools,
    a_failing_tool_call_is_reported_not_hidden,
    anything_else_gets_the_offline_help_without_tool_calls,
    chat_acts_only_on_the_callers_tasks,
    tool_calls_are_kept_with_the_conversation_across_a_restart,
);
