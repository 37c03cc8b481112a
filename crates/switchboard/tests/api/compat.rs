//! The original task-chat specification's routes: `POST /api/chat`, `GET /api/chat/history`,
//! `GET /api/sessions/{id}/messages`, and `POST /api/v1/chat/` with its trailing slash.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend};

async fn the_original_chat_routes_answer_in_their_own_shapes(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let first: Value = app
        .post_json("/api/chat", &token, &json!({"message": "add a task called compat milk"}))
        .await
        .json()
        .await
        .unwrap();
    assert!(first["reply"].as_str().unwrap().contains("Added task #1 compat milk"));
    assert_eq!((first["status"].as_str(), first["agent_created"].as_bool()), (Some("success"), Some(false)));
    assert_eq!(first["required_credentials"], json!([]));
    assert!(first["agent_id"].is_null());
    let session = first["session_id"].as_str().unwrap().to_owned();
    let second: Value = app
        .post_json("/api/chat", &token, &json!({"message": "list my tasks", "session_id": session}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["session_id"], session.as_str());

    let history: Value = app.get("/api/chat/history?limit=10&offset=0", &token).await.json().await.unwrap();
    assert_eq!(history["total_count"], 1);
    assert_eq!(history["sessions"][0]["session_id"], session.as_str());
    let roles: Vec<&str> =
        history["sessions"][0]["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    let one: Value = app.get(&format!("/api/chat/history?session_id={session}"), &token).await.json().await.unwrap();
    assert_eq!(one["sessions"].as_array().unwrap().len(), 1);

    let detail: Value = app.get(&format!("/api/sessions/{session}/messages"), &token).await.json().await.unwrap();
    assert_eq!(detail["session"]["title"], "add a task called compat milk");
    assert_eq!(detail["messages"].as_array().unwrap().len(), 4);

    let trailing = app.post_json("/api/v1/chat/", &token, &json!({"message": "list my tasks"})).await;
    assert_eq!(trailing.status(), StatusCode::OK, "the trailing-slash path of the original specification");
}

async fn the_original_routes_keep_sessions_private(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (alice, bob) = (app.token_for("alice"), app.token_for("bob"));
    let first: Value =
        app.post_json("/api/chat", &alice, &json!({"message": "private words"})).await.json().await.unwrap();
    let session = first["session_id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/api/sessions/{session}/messages"), &bob).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/api/chat/history?session_id={session}"), &bob).await.status(), StatusCode::NOT_FOUND);
    let response = app.post_json("/api/chat", &bob, &json!({"message": "mine?", "session_id": session})).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let history: Value = app.get("/api/chat/history", &bob).await.json().await.unwrap();
    assert_eq!(history["total_count"], 0);
    assert!(!history.to_string().contains("private words"));
}

crate::on_both_backends!(
    the_original_chat_routes_answer_in_their_own_shapes,
    the_original_routes_keep_sessions_private
);
