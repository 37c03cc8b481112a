//! `POST /api/v1/chat`: conversations are created on the first message, messages stored, the
//! offline provider answers honestly, and bad requests leave nothing behind.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, spawn_app_with, Backend};

async fn the_first_message_creates_a_conversation_titled_after_it(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let reply = app.chat(&token, "Plan my week\nwith details", None).await;
    let conversation = reply["conversation_id"].as_str().unwrap();
    assert_eq!(reply["message"]["sender"], "assistant");
    assert!(reply["message"]["content"].as_str().unwrap().contains("without a language model"));
    assert!(reply["message"]["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(reply["context"]["provider"], "offline");

    let detail: Value = app.get(&format!("/api/v1/conversations/{conversation}"), &token).await.json().await.unwrap();
    assert_eq!(detail["title"], "Plan my week");
    assert_eq!(detail["message_count"], 2);
    let roles: Vec<&str> = detail["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant"]);
    assert_eq!(detail["messages"][0]["content"], "Plan my week\nwith details");
    assert_eq!(detail["messages"][1]["id"], reply["message"]["id"]);
}

async fn later_messages_continue_the_same_conversation_with_its_history(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let first = app.chat(&token, "one", None).await;
    let id = first["conversation_id"].as_str().unwrap();
    let second = app.chat(&token, "two", Some(id)).await;
    assert_eq!(second["conversation_id"], id);
    assert_eq!(second["context"]["history_messages"], 3, "user, assistant, user");
    let messages: Value = app.get(&format!("/api/v1/conversations/{id}/messages"), &token).await.json().await.unwrap();
    let contents: Vec<&str> =
        messages["items"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents.len(), 4);
    assert_eq!((contents[0], contents[2]), ("one", "two"));
}

async fn empty_or_over_long_messages_get_400_and_store_nothing(backend: Backend) {
    let app = spawn_app_with(&backend, |s| s.max_message_chars = 100, Default::default()).await;
    let token = app.token_for("alice");
    for (message, expected) in
        [("", "empty_message"), ("   \n\t ", "empty_message"), (&"x".repeat(101) as &str, "message_too_long")]
    {
        let (status, code) =
            error_code(app.post_json("/api/v1/chat", &token, &json!({"message": message})).await).await;
        assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, expected));
    }
    // 100 characters of four bytes each are still 100 characters.
    app.chat(&token, &"😀".repeat(100), None).await;
    assert_eq!(app.count_rows("conversations").await, 1);
    assert_eq!(app.count_rows("messages").await, 2);
}

async fn an_unknown_conversation_gets_404_and_stores_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let body = json!({"message": "hi", "conversation_id": uuid::Uuid::new_v4()});
    let (status, code) = error_code(app.post_json("/api/v1/chat", &token, &body).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    assert_eq!(app.count_rows("conversations").await, 0);
    assert_eq!(app.count_rows("messages").await, 0);
}

async fn unicode_and_sql_metacharacters_round_trip_exactly(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let samples = [
        "'; DROP TABLE messages; --",
        "\" OR 1=1 -- \\ % _ $1 ?",
        "emoji 👩‍👩‍👧‍👦 flags 🇫🇷 astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "RTL שלום عربى, combining e\u{301}, zero width a\u{200b}b, BOM \u{feff}",
        "control \u{1} \u{1f} tab\tnewline\r\n",
        "中文 日本語 한국어 Ελληνικά",
    ];
    let mut conversation: Option<String> = None;
    for sample in samples {
        let reply = app.chat(&token, sample, conversation.as_deref()).await;
        conversation = Some(reply["conversation_id"].as_str().unwrap().to_owned());
    }
    let id = conversation.unwrap();
    let messages: Value =
        app.get(&format!("/api/v1/conversations/{id}/messages?limit=100"), &token).await.json().await.unwrap();
    let stored: Vec<&str> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(stored, samples);
    assert!(app.count_rows("messages").await >= 12, "the tables survived");
}

async fn a_nul_character_is_refused_with_400(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let (status, code) = error_code(app.post_json("/api/v1/chat", &token, &json!({"message": "a\u{0}b"})).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_characters"));
    assert_eq!(app.count_rows("messages").await, 0);
}

crate::on_both_backends!(
    the_first_message_creates_a_conversation_titled_after_it,
    later_messages_continue_the_same_conversation_with_its_history,
    empty_or_over_long_messages_get_400_and_store_nothing,
    an_unknown_conversation_gets_404_and_stores_nothing,
    unicode_and_sql_metacharacters_round_trip_exactly,
    a_nul_character_is_refused_with_400,
);
