//! Bearer tokens signed with the server's own secret, and every way a token must be refused
//! (RELIABILITY B1 items 1–8).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, fixture, spawn_app, spawn_app_with, Backend, TestApp, TEST_SECRET};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// Asserts the request is refused with 401, a JSON error and `WWW-Authenticate: Bearer`.
async fn assert_refused(app: &TestApp, token: &str, case: &str) {
    let response = app.get("/api/v1/me", token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    assert!(challenge.as_deref().unwrap_or("").starts_with("Bearer"), "{case}: WWW-Authenticate missing");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{case}: JSON error body");
}

async fn own_tokens_are_accepted_and_users_are_created_on_first_sight(backend: Backend) {
    let app = spawn_app(&backend).await;
    let before = app.count_rows("users").await;
    let token =
        hs256(TEST_SECRET, &json!({"sub": "alice", "exp": now() + 600, "email": "alice@example.com", "name": "Alice"}));
    let me: Value = app.get("/api/v1/me", &token).await.json().await.unwrap();
    assert_eq!(me["subject"], "alice");
    assert_eq!(me["issuer"], "switchboard");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["name"], "Alice");
    assert_eq!(me["is_admin"], false);
    let again: Value = app.get("/api/v1/me", &token).await.json().await.unwrap();
    assert_eq!(again["id"], me["id"], "the same (iss, sub) is the same user");
    assert_eq!(app.count_rows("users").await, before + 1);

    let local: Value = app.get("/api/v1/me", &app.local_token).await.json().await.unwrap();
    assert_eq!(local["subject"], "local");
    assert_eq!(local["is_admin"], true);
}

async fn every_malformed_or_forged_token_is_refused_with_401(backend: Backend) {
    let app = spawn_app(&backend).await;
    let exp = now() + 600;
    let good = hs256(TEST_SECRET, &json!({"sub": "bob", "exp": exp}));
    let payload = b64(&json!({"sub": "bob", "exp": exp}));
    let (head, rest) = good.split_once('.').unwrap();
    let signature = rest.rsplit_once('.').unwrap().1;

    // B1.1: alg none, with the signature empty and with it dropped.
    let none = b64(&json!({"alg": "none", "typ": "JWT"}));
    assert_refused(&app, &format!("{none}.{payload}."), "alg none, empty signature").await;
    assert_refused(&app, &format!("{none}.{payload}"), "alg none, signature dropped").await;
    assert_refused(&app, &format!("{none}.{payload}.{signature}"), "alg none with a stolen signature").await;

    // B1.2: HS256 signed with the RSA public key (algorithm confusion).
    let public_pem = std::fs::read_to_string(fixture("rsa_public.pem")).unwrap();
    assert_refused(&app, &hs256(&public_pem, &json!({"sub": "bob", "exp": exp})), "HS256 signed with the public key")
        .await;

    // B1.3: expired beyond the 30 s leeway; not yet valid.
    assert_refused(&app, &hs256(TEST_SECRET, &json!({"sub": "bob", "exp": now() - 31})), "expired").await;
    assert_refused(
        &app,
        &hs256(TEST_SECRET, &json!({"sub": "bob", "exp": exp, "nbf": now() + 120})),
        "nbf in the future",
    )
    .await;

    // B1.4: missing exp, missing sub, empty sub, another environment's secret.
    assert_refused(&app, &hs256(TEST_SECRET, &json!({"sub": "bob"})), "missing exp").await;
    assert_refused(&app, &hs256(TEST_SECRET, &json!({"exp": exp})), "missing sub").await;
    assert_refused(&app, &hs256(TEST_SECRET, &json!({"sub": " ", "exp": exp})), "blank sub").await;
    let other_env = "another-environment-secret-9c8b7a6f5e4d3c2b1a0";
    assert_refused(&app, &hs256(other_env, &json!({"sub": "bob", "exp": exp})), "another environment's secret").await;

    // B1.5: a flipped signature byte, a truncated token, a non-base64 segment, garbage.
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 3;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    assert_refused(&app, &String::from_utf8(flipped).unwrap(), "flipped signature byte").await;
    assert_refused(&app, &good[..good.len() - 10], "truncated").await;
    assert_refused(&app, &format!("{head}.%%%%.{signature}"), "non-base64 payload").await;
    assert_refused(&app, "not-a-jwt", "garbage").await;
    assert_refused(&app, "", "empty bearer").await;

    // Missing header, wrong scheme.
    let response = app.client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    let response =
        app.client.get(app.url("/api/v1/me")).header("authorization", format!("Basic {good}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // The valid one still works, so the refusals above were about the tokens.
    assert_eq!(app.get("/api/v1/me", &good).await.status(), StatusCode::OK);
}

async fn an_authorization_header_over_8_kib_gets_431_not_500(backend: Backend) {
    let app = spawn_app(&backend).await;
    let huge = "a".repeat(9 * 1024);
    let response = app.get("/api/v1/me", &huge).await;
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

async fn tokens_within_the_leeway_are_accepted(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = hs256(TEST_SECRET, &json!({"sub": "carol", "exp": now() - 10, "nbf": now() + 10}));
    assert_eq!(app.get("/api/v1/me", &token).await.status(), StatusCode::OK);
}

async fn an_audience_is_required_when_configured(backend: Backend) {
    let app = spawn_app_with(&backend, |s| s.jwt_audience = Some("switchboard-prod".into()), Default::default()).await;
    let exp = now() + 600;
    assert_refused(&app, &hs256(TEST_SECRET, &json!({"sub": "d", "exp": exp})), "no aud").await;
    assert_refused(
        &app,
        &hs256(TEST_SECRET, &json!({"sub": "d", "exp": exp, "aud": "switchboard-staging"})),
        "wrong aud",
    )
    .await;
    let ok = hs256(TEST_SECRET, &json!({"sub": "d", "exp": exp, "aud": "switchboard-prod"}));
    assert_eq!(app.get("/api/v1/me", &ok).await.status(), StatusCode::OK);
}

async fn a_revoked_token_is_refused_at_once(backend: Backend) {
    let app = spawn_app(&backend).await;
    let token = app.token_for("erin");
    let other = app.token_for("erin");
    assert_eq!(app.get("/api/v1/me", &token).await.status(), StatusCode::OK);
    let response = app.client.post(app.url("/api/v1/auth/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // B1.6: refused on the very next request (well inside the 1 s figure).
    let (status, code) = error_code(app.get("/api/v1/me", &token).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::UNAUTHORIZED, "token_revoked"));
    // Only that token: the same user's other token still works.
    assert_eq!(app.get("/api/v1/me", &other).await.status(), StatusCode::OK);
    // A token without jti cannot be revoked, and says so.
    let no_jti = hs256(TEST_SECRET, &json!({"sub": "erin", "exp": now() + 600}));
    let (status, code) =
        error_code(app.client.post(app.url("/api/v1/auth/logout")).bearer_auth(&no_jti).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "token_not_revocable"));
}

crate::on_both_backends!(
    own_tokens_are_accepted_and_users_are_created_on_first_sight,
    every_malformed_or_forged_token_is_refused_with_401,
    an_authorization_header_over_8_kib_gets_431_not_500,
    tokens_within_the_leeway_are_accepted,
    an_audience_is_required_when_configured,
    a_revoked_token_is_refused_at_once,
);

/// B1.8: no unverified JWT decoding anywhere in the shipped code.
#[test]
fn no_code_decodes_tokens_without_verifying_them() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut hits = Vec::new();
    let mut stack = vec![root.join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("tests") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for needle in ["insecure_decode", "dangerous::", "insecure_disable_signature_validation"] {
                    if text.contains(needle) {
                        hits.push(format!("{}: {needle}", path.display()));
                    }
                }
            }
        }
    }
    assert!(hits.is_empty(), "unverified decoding found: {hits:?}");
}

/// Two servers share one PostgreSQL database: a token revoked through one is refused by the
/// other within a second (B1.6 across processes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_every_server_sharing_the_database_within_a_second() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let first = spawn_app(&backend).await;
    let url = first.settings.database_url.clone();
    let second = spawn_app_with(&Backend::Sqlite, |s| s.database_url = url, Default::default()).await;
    let token = first.token_for("frank");
    assert_eq!(second.get("/api/v1/me", &token).await.status(), StatusCode::OK);
    let response = first.client.post(first.url("/api/v1/auth/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let revoked_at = std::time::Instant::now();
    loop {
        if second.get("/api/v1/me", &token).await.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(revoked_at.elapsed() <= std::time::Duration::from_secs(1), "still accepted a second after revocation");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
