//! Two `serve` processes on one PostgreSQL database behave as one service: a conversation begun
//! on one continues on the other, a job enqueued on one is run by the other's workers, and its
//! events reach a subscriber connected to either.

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::config::DatabaseUrl;

use crate::helpers::{fresh_postgres_database, redis_url, spawn_app_with, Backend};
use crate::jobs::{enqueue, wait_for};
use crate::mcp_http::{initialize_body, raw_post};

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

/// With Redis configured, the per-user rate limit is one budget across servers: 5 requests a
/// minute spread over two servers, then 429 on either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_with_redis_share_one_rate_limit() {
    let Some(redis) = redis_url() else { return };
    let Some(Backend::Postgres(server)) = Backend::postgres() else { return };
    let db = fresh_postgres_database(&server).await;
    let shared = || {
        let (db, redis) = (db.clone(), redis.clone());
        move |s: &mut switchboard::Settings| {
            s.database_url = Some(DatabaseUrl::new(db));
            s.redis_url = Some(DatabaseUrl::new(redis));
            s.rate_limit_per_minute = 5;
        }
    };
    let a = spawn_app_with(&Backend::Sqlite, shared(), Default::default()).await;
    let b = spawn_app_with(&Backend::Sqlite, shared(), Default::default()).await;
    let token = a.token_for("alice");
    for (i, app) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let response = app.get("/api/v1/conversations", &token).await;
        assert_eq!(response.status(), StatusCode::OK, "request {}", i + 1);
        assert_eq!(response.headers()["ratelimit-remaining"].to_str().unwrap(), (4 - i).to_string());
    }
    for app in [&b, &a] {
        let refused = app.get("/api/v1/conversations", &token).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=12).contains(&retry), "the next request is 12 s away at most: {retry}");
    }
    // Another user has a budget of their own.
    assert_eq!(b.get("/api/v1/conversations", &b.token_for("bob")).await.status(), StatusCode::OK);
}

/// A session of `/mcp`'s session-based era opened on one server goes on on the other: its next
/// requests (here every other one) land on a server that never saw it, which takes it over; the
/// session stays its owner's, and once deleted it is gone on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_session_opened_on_one_server_continues_on_another() {
    let Some(Backend::Postgres(server)) = Backend::postgres() else { return };
    let db = fresh_postgres_database(&server).await;
    let shared = || {
        let db = db.clone();
        move |s: &mut switchboard::Settings| s.database_url = Some(DatabaseUrl::new(db))
    };
    let a = spawn_app_with(&Backend::Sqlite, shared(), Default::default()).await;
    let b = spawn_app_with(&Backend::Sqlite, shared(), Default::default()).await;
    let (alice, bob) = (a.token_for("alice"), a.token_for("bob"));

    let opened = raw_post(&a, Some(&alice), None, &initialize_body(), &[]).await;
    assert_eq!(opened.status(), StatusCode::OK);
    let session = opened.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert!(raw_post(&b, Some(&alice), Some(&session), &initialized, &[]).await.status().is_success());

    for (i, app) in [&b, &a, &b, &a].into_iter().enumerate() {
        let add = json!({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
            "params": {"name": "add_task", "arguments": {"title": format!("from session call {i}")}}});
        let response = raw_post(app, Some(&alice), Some(&session), &add, &[]).await;
        assert_eq!(response.status(), StatusCode::OK, "call {i}");
        let body = response.text().await.unwrap();
        assert!(body.contains(&format!("from session call {i}")) && !body.contains("\"isError\":true"), "{body}");
    }
    let tasks: Value = b.get("/api/v1/tasks", &alice).await.json().await.unwrap();
    assert_eq!(tasks["items"].as_array().unwrap().len(), 4, "{tasks}");

    // Another user naming the session is refused on either server, and nothing runs for them.
    let list = json!({"jsonrpc": "2.0", "id": 20, "method": "tools/list"});
    for app in [&a, &b] {
        assert_eq!(raw_post(app, Some(&bob), Some(&session), &list, &[]).await.status(), StatusCode::NOT_FOUND);
    }
    let c = spawn_app_with(&Backend::Sqlite, shared(), Default::default()).await;
    assert_eq!(raw_post(&c, Some(&bob), Some(&session), &list, &[]).await.status(), StatusCode::NOT_FOUND);

    let deleted =
        b.client.delete(b.url("/mcp")).bearer_auth(&alice).header("mcp-session-id", &session).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let fresh = spawn_app_with(&Backend::Sqlite, shared(), Default::default()).await;
    for app in [&b, &fresh] {
        assert_eq!(raw_post(app, Some(&alice), Some(&session), &list, &[]).await.status(), StatusCode::NOT_FOUND);
    }
}
