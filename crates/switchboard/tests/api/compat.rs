//! The original task-chat specification's routes: `POST /api/chat`, `GET /api/chat/history`,
//! `GET /api/sessions/{id}/messages`, and `POST /api/v1/chat/` with its trailing slash.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, spawn_app_with, Backend, TestApp};
use crate::model_server::{app_with_model, ModelServer, Reply};
use reqwest::multipart::{Form, Part};
use switchboard::config::LlmProvider;

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

fn file(name: &str, content_type: &str, bytes: Vec<u8>) -> Part {
    Part::bytes(bytes).file_name(name.to_owned()).mime_str(content_type).unwrap()
}

async fn send_form(app: &TestApp, token: &str, form: Form) -> reqwest::Response {
    app.client.post(app.url("/api/chat")).bearer_auth(token).multipart(form).send().await.unwrap()
}

async fn text_files_attached_to_a_chat_message_reach_the_model(backend: Backend) {
    let model = ModelServer::start(vec![Reply::text("The CSV has two invoices."), Reply::text("Still two.")]).await;
    let app = app_with_model(&backend, LlmProvider::Openai, &model.base_url, Some("sk-test"), |_| {}).await;
    let token = app.token_for("alice");
    let form = Form::new()
        .text("message", "How many invoices are in the file?")
        .part("files[]", file("invoices.csv", "text/csv", b"number,amount\nINV-1,10\nINV-2,20\n".to_vec()))
        .part("files[]", file("notes.md", "application/octet-stream", "# Notes\nPaid in €".as_bytes().to_vec()));
    let response = send_form(&app, &token, form).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["reply"], "The CSV has two invoices.");
    let sent = model.received()[0].body["messages"].as_array().unwrap().last().unwrap()["content"].to_string();
    assert!(
        sent.contains("How many invoices")
            && sent.contains("INV-2,20")
            && sent.contains("[Attached file: invoices.csv")
    );
    assert!(sent.contains("Paid in €"), "a text file with a generic type is read by its extension");

    // The same session continues, and the file stays in the history the model sees.
    let session = reply["session_id"].as_str().unwrap();
    let form = Form::new().text("message", "and now?").text("session_id", session.to_owned());
    assert_eq!(send_form(&app, &token, form).await.status(), StatusCode::OK);
    assert!(model.received()[1].body["messages"].to_string().contains("INV-2,20"));
}

async fn unacceptable_attachments_are_refused_clearly_and_store_nothing(backend: Backend) {
    let app = spawn_app_with(
        &backend,
        |s| {
            s.max_file_bytes = 1000;
            s.max_files = 2;
        },
        Default::default(),
    )
    .await;
    let token = app.token_for("alice");
    let message = || Form::new().text("message", "read this");
    let cases: Vec<(Form, StatusCode, &str)> = vec![
        (
            message().part("files[]", file("big.txt", "text/plain", vec![b'a'; 1001])),
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
        ),
        (
            message().part("files[]", file("scan.pdf", "application/pdf", b"%PDF-1.7".to_vec())),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_file_type",
        ),
        (
            message().part("files[]", file("photo.png", "image/png", vec![0x89, b'P', b'N', b'G'])),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_file_type",
        ),
        (
            message().part("files[]", file("fake.txt", "text/plain", vec![0xff, 0xfe, 0x00])),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_file_type",
        ),
        (
            message()
                .part("files[]", file("a.txt", "text/plain", b"a".to_vec()))
                .part("files[]", file("b.txt", "text/plain", b"b".to_vec()))
                .part("files[]", file("c.txt", "text/plain", b"c".to_vec())),
            StatusCode::BAD_REQUEST,
            "too_many_files",
        ),
        (
            Form::new().part("files[]", file("a.txt", "text/plain", b"a".to_vec())),
            StatusCode::BAD_REQUEST,
            "invalid_form",
        ),
        (message().text("session_id", "not-a-uuid"), StatusCode::BAD_REQUEST, "invalid_form"),
        (message().text("owner_id", "x"), StatusCode::BAD_REQUEST, "invalid_form"),
    ];
    for (form, status, code) in cases {
        let (got, got_code) = error_code(send_form(&app, &token, form).await).await;
        assert_eq!((got, got_code.as_str()), (status, code));
    }
    assert_eq!(app.count_rows("messages").await, 0, "a refused request stores nothing");
    let ok = send_form(&app, &token, message().part("files[]", file("ok.txt", "text/plain", vec![b'a'; 1000]))).await;
    assert_eq!(ok.status(), StatusCode::OK, "exactly at the limit is fine");
}

crate::on_both_backends!(
    the_original_chat_routes_answer_in_their_own_shapes,
    the_original_routes_keep_sessions_private,
    text_files_attached_to_a_chat_message_reach_the_model,
    unacceptable_attachments_are_refused_clearly_and_store_nothing,
);
