//! Bad input never crashes or corrupts: each gets a 4xx JSON error and nothing is written
//! (RELIABILITY B6.39 for body sizes).

use futures::stream;
use reqwest::{Body, StatusCode};

use crate::helpers::{error_code, spawn_app, spawn_app_with, Backend};

async fn malformed_json_wrong_types_and_unknown_fields_get_json_4xx(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/chat"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases = [
        ("{\"message\": ", "application/json", StatusCode::BAD_REQUEST, "invalid_json"),
        ("not json at all", "application/json", StatusCode::BAD_REQUEST, "invalid_json"),
        ("{\"message\": \"\\ud800\"}", "application/json", StatusCode::BAD_REQUEST, "invalid_json"),
        ("{\"message\": 42}", "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("{\"message\": [\"a\"]}", "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("{}", "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (
            "{\"message\": \"hi\", \"conversation_id\": \"nope\"}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "{\"message\": \"hi\", \"surprise\": true}",
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        ("{\"message\": \"hi\"}", "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
    ];
    for (body, content_type, status, code) in cases {
        let response = raw(body, content_type).await.unwrap();
        assert_eq!(error_code(response).await, (status, code.to_string()), "{body}");
    }
    assert_eq!(app.count_rows("conversations").await, 0);
    assert_eq!(app.count_rows("messages").await, 0);
}

async fn unknown_routes_and_methods_answer_json_errors(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("alice");
    let (status, code) = error_code(app.get("/api/v1/nothing-here", &token).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    let response = app.client.put(app.url("/api/v1/chat")).bearer_auth(&token).send().await.unwrap();
    let (status, code) = error_code(response).await;
    assert_eq!((status, code.as_str()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
}

fn body_of_size(size: usize) -> String {
    // {"message":"xxx…"} padded to exactly `size` bytes.
    let overhead = "{\"message\":\"\"}".len();
    format!("{{\"message\":\"{}\"}}", "x".repeat(size - overhead))
}

/// B6.39: a body of exactly the limit is accepted; one byte more is 413, with Content-Length
/// and with chunked transfer encoding; never a 500.
async fn bodies_at_the_limit_pass_and_one_byte_more_gets_413(backend: Backend) {
    let limit = 1024 * 1024;
    let app = spawn_app_with(&backend, |s| s.max_message_chars = 2 * limit, Default::default()).await;
    let token = app.token_for("alice");
    let send = |body: String, chunked: bool| {
        let request =
            app.client.post(app.url("/api/v1/chat")).bearer_auth(&token).header("content-type", "application/json");
        let request = if chunked {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                body.into_bytes().chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
            request.body(Body::wrap_stream(stream::iter(chunks)))
        } else {
            request.body(body)
        };
        request.send()
    };
    for chunked in [false, true] {
        let at_limit = send(body_of_size(limit), chunked).await.unwrap();
        assert_eq!(at_limit.status(), StatusCode::OK, "exactly the limit (chunked: {chunked})");
        let over = send(body_of_size(limit + 1), chunked).await.unwrap();
        let (status, code) = error_code(over).await;
        assert_eq!((status, code.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"), "chunked: {chunked}");
    }
    assert_eq!(app.count_rows("conversations").await, 2, "only the two accepted requests wrote");
}

crate::on_both_backends!(
    malformed_json_wrong_types_and_unknown_fields_get_json_4xx,
    unknown_routes_and_methods_answer_json_errors,
    bodies_at_the_limit_pass_and_one_byte_more_gets_413,
);
