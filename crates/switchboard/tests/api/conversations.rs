//! Listing, reading, paging, renaming and deleting conversations.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, Backend};

async fn conversations_are_listed_newest_first_with_counts(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let a = app.chat(&token, "first", None).await["conversation_id"].clone();
    let b = app.chat(&token, "second", None).await["conversation_id"].clone();
    app.chat(&token, "again", a.as_str()).await;
    let list: Value = app.get("/api/v1/conversations", &token).await.json().await.unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], a, "the one written to last comes first");
    assert_eq!(items[1]["id"], b);
    assert_eq!(items[0]["message_count"], 4);
    assert_eq!(items[0]["title"], "first");
    for field in ["created_at", "updated_at"] {
        assert!(items[0][field].is_string(), "{field}");
    }
    assert!(list["next_cursor"].is_null());
}

async fn pages_by_cursor_and_by_offset_cover_every_conversation_once(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    for i in 0..7 {
        app.chat(&token, &format!("conversation {i}"), None).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/conversations?limit=3&cursor={c}"),
            None => "/api/v1/conversations?limit=3".to_string(),
        };
        let page: Value = app.get(&path, &token).await.json().await.unwrap();
        seen.extend(page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);

    let by_offset: Value = app.get("/api/v1/conversations?limit=3&offset=3", &token).await.json().await.unwrap();
    let ids: Vec<&str> = by_offset["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, seen[3..6].iter().map(String::as_str).collect::<Vec<_>>());

    let (status, code) = error_code(app.get("/api/v1/conversations?cursor=garbage", &token).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_cursor"));
    let (status, _) = error_code(app.get("/api/v1/conversations?limit=-1", &token).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// RELIABILITY B6.42: `limit=10000` is clamped to 100.
async fn a_huge_page_size_is_clamped_to_100(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    for i in 0..101 {
        app.chat(&token, &format!("c{i}"), None).await;
    }
    let page: Value = app.get("/api/v1/conversations?limit=10000", &token).await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 100);
    assert!(page["next_cursor"].is_string());
}

async fn messages_page_in_order(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let id = app.chat(&token, "m0", None).await["conversation_id"].as_str().unwrap().to_owned();
    for i in 1..4 {
        app.chat(&token, &format!("m{i}"), Some(&id)).await;
    }
    let first: Value =
        app.get(&format!("/api/v1/conversations/{id}/messages?limit=5"), &token).await.json().await.unwrap();
    let cursor = first["next_cursor"].as_str().expect("8 messages make two pages of 5");
    let second: Value = app
        .get(&format!("/api/v1/conversations/{id}/messages?limit=5&cursor={cursor}"), &token)
        .await
        .json()
        .await
        .unwrap();
    let all: Vec<Value> =
        first["items"].as_array().unwrap().iter().chain(second["items"].as_array().unwrap()).cloned().collect();
    assert_eq!(all.len(), 8);
    let users: Vec<&str> = all.iter().filter(|m| m["role"] == "user").map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(users, ["m0", "m1", "m2", "m3"]);
    // Compared as times: the text's fraction is as short as it can be ("….120Z" vs "….120500Z").
    let times: Vec<_> =
        all.iter().map(|m| chrono::DateTime::parse_from_rfc3339(m["created_at"].as_str().unwrap()).unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first: {times:?}");
}

async fn deleting_a_conversation_removes_its_messages(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let keep = app.chat(&token, "keep me", None).await["conversation_id"].as_str().unwrap().to_owned();
    let gone = app.chat(&token, "delete me", None).await["conversation_id"].as_str().unwrap().to_owned();
    app.chat(&token, "more", Some(&gone)).await;
    assert_eq!(app.count_rows("messages").await, 6);

    assert_eq!(app.delete(&format!("/api/v1/conversations/{gone}"), &token).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/api/v1/conversations/{gone}"), &token).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/api/v1/conversations/{gone}/messages"), &token).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.delete(&format!("/api/v1/conversations/{gone}"), &token).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.count_rows("messages").await, 2, "only the kept conversation's messages remain");
    assert_eq!(app.get(&format!("/api/v1/conversations/{keep}"), &token).await.status(), StatusCode::OK);
}

async fn a_conversation_is_renamed_by_its_owner_only(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let id = app.chat(&token, "first", None).await["conversation_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/conversations/{id}");
    let patch = |token: &str, body: Value| {
        let request = reqwest::Client::new().patch(app.url(&path)).bearer_auth(token).json(&body);
        async move { request.send().await.unwrap() }
    };
    let renamed: Value = patch(&token, json!({"title": "  Weekly plan  "})).await.json().await.unwrap();
    assert_eq!(renamed["title"], "Weekly plan", "trimmed");
    assert_eq!(renamed["message_count"], 2);
    let listed: Value = app.get("/api/v1/conversations", &token).await.json().await.unwrap();
    assert_eq!(listed["items"][0]["title"], "Weekly plan");

    for (body, expected) in [
        (json!({"title": "   "}), (StatusCode::BAD_REQUEST, "invalid_title")),
        (json!({"title": "x".repeat(201)}), (StatusCode::BAD_REQUEST, "invalid_title")),
        (json!({"name": "x"}), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")),
    ] {
        let (status, got) = error_code(patch(&token, body.clone()).await).await;
        assert_eq!((status, got.as_str()), expected, "{body}");
    }
    let bob = app.token_for("bob");
    let (status, _) = error_code(patch(&bob, json!({"title": "mine now"})).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's conversation is not found");
    let kept: Value = app.get(&path, &token).await.json().await.unwrap();
    assert_eq!(kept["title"], "Weekly plan", "nothing changed by the refused requests");
}

async fn an_invalid_id_in_the_path_gets_400(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    for path in ["/api/v1/conversations/not-a-uuid", "/api/v1/conversations/1%27%20OR%201=1/messages"] {
        let (status, code) = error_code(app.get(path, &token).await).await;
        assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_id"), "{path}");
    }
}

crate::on_both_backends!(
    conversations_are_listed_newest_first_with_counts,
    pages_by_cursor_and_by_offset_cover_every_conversation_once,
    a_huge_page_size_is_clamped_to_100,
    messages_page_in_order,
    deleting_a_conversation_removes_its_messages,
    a_conversation_is_renamed_by_its_owner_only,
    an_invalid_id_in_the_path_gets_400,
);
