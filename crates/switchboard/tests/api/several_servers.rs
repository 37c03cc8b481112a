//! Two `serve` processes on one PostgreSQL database behave as one service: a conversation begun
//! on one continues on the other, a job enqueued on one is run by the other's workers, and its
//! events reach a subscriber connected to either.

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::config::DatabaseUrl;

use crate::helpers::{fresh_postgres_database, spawn_app_with, Backend};
use crate::jobs::{enqueue, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_share_conversations_jobs_and_job_events() {
    let Some(Backend::Postgres(server)) = Backend::postgres() else { return };
    let db = fresh_postgres_database(&server).await;
    let shared = |workers: usize| {
        let db = db.clone();
        move |s: &mut switchboard::Settings| {
            s.database_url = Some(DatabaseUrl::new(db));
            s.workers = workers;
        }
    };
    // `a` runs no jobs itself: every job it takes must be run by `b`'s workers.
    let a = spawn_app_with(&Backend::Sqlite, shared(0), Default::default()).await;
    let b = spawn_app_with(&Backend::Sqlite, shared(2), Default::default()).await;
    let token = a.token_for("alice");

    let first = a.chat(&token, "add a task called shared milk", None).await;
    let conversation = first["conversation_id"].as_str().unwrap();
    let second = b.chat(&token, "list my tasks", Some(conversation)).await;
    assert!(second["message"]["content"].as_str().unwrap().contains("shared milk"));
    let detail: Value = a.get(&format!("/api/v1/conversations/{conversation}"), &token).await.json().await.unwrap();
    assert_eq!(detail["message_count"], 4, "both servers wrote to one conversation");

    let job = enqueue(&a, &token, json!({"message": "add a task called from server a"})).await;
    let done = wait_for(&a, &token, &job, |j| j["status"] == "completed").await;
    assert!(done["worker"].as_str().unwrap().starts_with("sb-"), "{done}");
    for app in [&a, &b] {
        let response = app.get(&format!("/api/v1/jobs/{job}/events"), &token).await;
        assert_eq!(response.status(), StatusCode::OK);
        let text = response.text().await.unwrap();
        assert!(text.contains("event: result") && text.contains("\"completed\""), "{text}");
    }
    let queue: Value = a.get("/api/v1/admin/queue", &a.local_token).await.json().await.unwrap();
    assert_eq!(queue["workers"].as_array().unwrap().len(), 1, "only b runs workers: {queue}");
}
