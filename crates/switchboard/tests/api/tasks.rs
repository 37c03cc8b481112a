//! `/api/v1/tasks`: per-user numbers, filters, changes, subtasks, isolation and bad input.

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, Backend, TestApp};

async fn add(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.post_json("/api/v1/tasks", token, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap_or_default());
    response.json().await.unwrap()
}

async fn patch(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.client.patch(app.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn tasks_get_per_user_numbers_that_are_never_reused(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (alice, bob) = (app.token_for("alice"), app.token_for("bob"));
    let first = add(&app, &alice, json!({"title": "buy milk"})).await;
    assert_eq!(
        (first["number"].as_i64(), first["status"].as_str(), first["priority"].as_str()),
        (Some(1), Some("pending"), Some("medium"))
    );
    assert_eq!(add(&app, &alice, json!({"title": "call mum"})).await["number"], 2);
    assert_eq!(add(&app, &bob, json!({"title": "bob's own"})).await["number"], 1, "numbers are per user");

    assert_eq!(app.delete("/api/v1/tasks/2", &alice).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(add(&app, &alice, json!({"title": "third"})).await["number"], 3, "2 is not reused");

    let by_number: Value = app.get("/api/v1/tasks/1", &alice).await.json().await.unwrap();
    let by_id: Value =
        app.get(&format!("/api/v1/tasks/{}", first["id"].as_str().unwrap()), &alice).await.json().await.unwrap();
    assert_eq!(by_number, by_id);
    assert_eq!(by_number["title"], "buy milk");
}

async fn concurrent_adds_get_distinct_consecutive_numbers(backend: Backend) {
    let app = Arc::new(spawn_app(&backend).await);
    let token = app.token_for("alice");
    app.get("/api/v1/me", &token).await;
    let adds = (0..20).map(|i| {
        let (app, token) = (app.clone(), token.clone());
        async move { add(&app, &token, json!({"title": format!("t{i}")})).await["number"].as_i64().unwrap() }
    });
    let numbers: HashSet<i64> = futures::future::join_all(adds).await.into_iter().collect();
    assert_eq!(numbers, (1..=20).collect());
}

async fn tasks_can_be_listed_filtered_and_paged(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    for title in ["Buy milk", "buy bread", "file taxes", "100% done_ish"] {
        add(&app, &token, json!({"title": title})).await;
    }
    app.client.post(app.url("/api/v1/tasks/3/complete")).bearer_auth(&token).send().await.unwrap();
    let titles = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap().to_owned()).collect()
    };

    let all: Value = app.get("/api/v1/tasks", &token).await.json().await.unwrap();
    assert_eq!(titles(&all), ["Buy milk", "buy bread", "file taxes", "100% done_ish"]);
    let buy: Value = app.get("/api/v1/tasks?q=BUY", &token).await.json().await.unwrap();
    assert_eq!(titles(&buy), ["Buy milk", "buy bread"], "search ignores case");
    let percent: Value = app.get("/api/v1/tasks?q=%25", &token).await.json().await.unwrap();
    assert_eq!(titles(&percent), ["100% done_ish"], "% is literal, not a wildcard");
    let underscore: Value = app.get("/api/v1/tasks?q=e_i", &token).await.json().await.unwrap();
    assert_eq!(titles(&underscore), ["100% done_ish"], "_ is literal too");
    let completed: Value = app.get("/api/v1/tasks?status=completed", &token).await.json().await.unwrap();
    assert_eq!(titles(&completed), ["file taxes"]);
    let pending: Value = app.get("/api/v1/tasks?status=pending", &token).await.json().await.unwrap();
    assert_eq!(pending["items"].as_array().unwrap().len(), 3);

    let first: Value = app.get("/api/v1/tasks?limit=3", &token).await.json().await.unwrap();
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = app.get(&format!("/api/v1/tasks?limit=3&cursor={cursor}"), &token).await.json().await.unwrap();
    assert_eq!(titles(&second), ["100% done_ish"]);
    assert_eq!(app.get("/api/v1/tasks?status=bogus", &token).await.status(), StatusCode::BAD_REQUEST);
}

async fn tasks_change_complete_and_reopen(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    add(&app, &token, json!({"title": "draft", "description": "notes", "due_date": "2026-12-24", "priority": "high"}))
        .await;
    let changed: Value = patch(&app, &token, "/api/v1/tasks/1", json!({"title": "final", "description": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((changed["title"].as_str(), changed["description"].is_null()), (Some("final"), true));
    assert_eq!(
        (changed["due_date"].as_str(), changed["priority"].as_str()),
        (Some("2026-12-24"), Some("high")),
        "untouched fields stay"
    );

    let done: Value = app
        .client
        .post(app.url("/api/v1/tasks/1/complete"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "completed");
    assert!(done["completed_at"].is_string());
    let reopened: Value = patch(&app, &token, "/api/v1/tasks/1", json!({"status": "pending", "due_date": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reopened["status"], "pending");
    assert!(reopened["completed_at"].is_null() && reopened["due_date"].is_null());
}

async fn subtasks_name_their_parent_by_number(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (alice, bob) = (app.token_for("alice"), app.token_for("bob"));
    let parent = add(&app, &alice, json!({"title": "move house"})).await;
    let child = add(&app, &alice, json!({"title": "pack books", "parent": "1"})).await;
    assert_eq!(child["parent_id"], parent["id"]);
    add(&app, &bob, json!({"title": "bob's"})).await;
    let (status, _) =
        error_code(app.post_json("/api/v1/tasks", &bob, &json!({"title": "sneaky", "parent": parent["id"]})).await)
            .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's task is not a parent");
    assert_eq!(app.delete("/api/v1/tasks/1", &alice).await.status(), StatusCode::NO_CONTENT);
    let orphan: Value = app.get("/api/v1/tasks/2", &alice).await.json().await.unwrap();
    assert!(orphan["parent_id"].is_null(), "subtasks stay when their parent goes");
}

async fn another_users_tasks_answer_404_and_stay_unchanged(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (alice, bob) = (app.token_for("alice"), app.token_for("bob"));
    let task = add(&app, &alice, json!({"title": "alice's secret"})).await;
    let id = task["id"].as_str().unwrap();
    for path in [format!("/api/v1/tasks/{id}"), "/api/v1/tasks/1".to_string()] {
        assert_eq!(app.get(&path, &bob).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(patch(&app, &bob, &path, json!({"title": "hijacked"})).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            app.client.post(app.url(&format!("{path}/complete"))).bearer_auth(&bob).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(app.delete(&path, &bob).await.status(), StatusCode::NOT_FOUND);
    }
    let list: Value = app.get("/api/v1/tasks", &bob).await.json().await.unwrap();
    assert!(list["items"].as_array().unwrap().is_empty());
    let unchanged: Value = app.get("/api/v1/tasks/1", &alice).await.json().await.unwrap();
    assert_eq!(unchanged, task);
}

async fn bad_task_input_gets_4xx_and_writes_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let cases = [
        (json!({"title": "  "}), StatusCode::BAD_REQUEST),
        (json!({"title": "x".repeat(201)}), StatusCode::BAD_REQUEST),
        (json!({"title": "a\u{0}b"}), StatusCode::BAD_REQUEST),
        (json!({"title": "t", "priority": "urgent"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"title": "t", "due_date": "tomorrow"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"title": "t", "user_id": "someone"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"title": "t", "parent": "42"}), StatusCode::NOT_FOUND),
        (json!({"title": "t", "parent": "nonsense"}), StatusCode::BAD_REQUEST),
    ];
    for (body, expected) in cases {
        assert_eq!(app.post_json("/api/v1/tasks", &token, &body).await.status(), expected, "{body}");
    }
    assert_eq!(app.count_rows("tasks").await, 0);
    add(&app, &token, json!({"title": "ok"})).await;
    for path in ["/api/v1/tasks/0", "/api/v1/tasks/abc", "/api/v1/tasks/-3"] {
        assert_eq!(app.get(path, &token).await.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    let (status, code) = error_code(patch(&app, &token, "/api/v1/tasks/1", json!({})).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_task"));
}

crate::on_both_backends!(
    tasks_get_per_user_numbers_that_are_never_reused,
    concurrent_adds_get_distinct_consecutive_numbers,
    tasks_can_be_listed_filtered_and_paged,
    tasks_change_complete_and_reopen,
    subtasks_name_their_parent_by_number,
    another_users_tasks_answer_404_and_stay_unchanged,
    bad_task_input_gets_4xx_and_writes_nothing,
);
