//! Tokens from OpenID Connect issuers (Auth0, Keycloak, Supabase, Google…), verified against keys
//! published by a local identity provider that speaks the real discovery + JWKS protocol, and
//! the Google sign-in exchange.

use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard_api::auth::OidcIssuerConfig;

use crate::helpers::{error_code, fixture, spawn_app_with, Backend};

/// A local identity provider: discovery document and a JWKS that the test can change.
struct IdentityProvider {
    issuer: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<Mutex<u32>>,
}

fn jwk(name: &str) -> Value {
    let all: Value = serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
    all[name].clone()
}

impl IdentityProvider {
    async fn start(keys: &[&str]) -> IdentityProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let jwks = Arc::new(Mutex::new(json!({ "keys": keys.iter().map(|k| jwk(k)).collect::<Vec<_>>() })));
        let fetches = Arc::new(Mutex::new(0));
        let discovery = json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/keys") });
        let (served, counted) = (jwks.clone(), fetches.clone());
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(move || async move { Json(discovery) }))
            .route(
                "/keys",
                get(move || async move {
                    *counted.lock().unwrap() += 1;
                    Json(served.lock().unwrap().clone())
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        IdentityProvider { issuer, jwks, fetches }
    }

    fn publish(&self, keys: &[&str]) {
        *self.jwks.lock().unwrap() = json!({ "keys": keys.iter().map(|k| jwk(k)).collect::<Vec<_>>() });
    }

    fn config(&self, audience: &str) -> OidcIssuerConfig {
        OidcIssuerConfig {
            issuer: self.issuer.clone(),
            audiences: vec![audience.into()],
            jwks_url: None,
            client_id: None,
            client_secret: None,
            name: None,
        }
    }
}

/// Signs `claims` with a fixture key: "rsa", "rsa2" (RS256) or "ec" (ES256).
fn sign(key: &str, claims: &Value) -> String {
    let (alg, encoding, kid) = match key {
        "rsa" => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa_private.pem")).unwrap()).unwrap(),
            "rsa-1",
        ),
        "rsa2" => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa2_private.pem")).unwrap()).unwrap(),
            "rsa-2",
        ),
        "ec" => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&std::fs::read(fixture("ec_private.pem")).unwrap()).unwrap(),
            "ec-1",
        ),
        other => panic!("no fixture key {other}"),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn issuer_tokens_signed_with_rs256_or_es256_are_accepted_and_keep_email_and_name(backend: Backend) {
    let idp = IdentityProvider::start(&["rsa", "ec"]).await;
    let app = spawn_app_with(&backend, |s| s.oidc = vec![idp.config("switchboard")], Default::default()).await;
    for key in ["rsa", "ec"] {
        let token = sign(
            key,
            &json!({"iss": idp.issuer, "aud": "switchboard", "sub": "kc-42", "exp": now() + 300,
                    "email": "dana@example.com", "name": "Dana"}),
        );
        let response = app.get("/api/v1/me", &token).await;
        assert_eq!(response.status(), StatusCode::OK, "{key}");
        let me: Value = response.json().await.unwrap();
        assert_eq!(me["issuer"], idp.issuer.as_str());
        assert_eq!(me["subject"], "kc-42");
        assert_eq!(me["email"], "dana@example.com");
        assert_eq!(me["name"], "Dana");
    }
    assert_eq!(*idp.fetches.lock().unwrap(), 1, "keys are cached, not fetched per request");
}

async fn issuer_tokens_with_a_wrong_audience_issuer_or_expiry_are_refused(backend: Backend) {
    let idp = IdentityProvider::start(&["rsa"]).await;
    let app = spawn_app_with(&backend, |s| s.oidc = vec![idp.config("switchboard")], Default::default()).await;
    let base = json!({"iss": idp.issuer, "aud": "switchboard", "sub": "u1", "exp": now() + 300});
    let cases = [
        ("wrong audience", json!({"aud": "another-api"})),
        ("wrong issuer", json!({"iss": "https://evil.example"})),
        ("expired", json!({"exp": now() - 31})),
        ("not yet valid", json!({"nbf": now() + 120})),
        ("missing sub", json!({"sub": null})),
    ];
    for (case, change) in cases {
        let mut claims = base.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        let response = app.get("/api/v1/me", &sign("rsa", &claims)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert!(response.headers().contains_key("www-authenticate"), "{case}");
    }
    // Signed by a key the issuer never published.
    assert_eq!(app.get("/api/v1/me", &sign("rsa2", &base)).await.status(), StatusCode::UNAUTHORIZED);
    // The unmodified claims pass, so each refusal above was for its own reason.
    assert_eq!(app.get("/api/v1/me", &sign("rsa", &base)).await.status(), StatusCode::OK);
}

async fn a_rotated_key_is_picked_up_when_an_unknown_kid_arrives(backend: Backend) {
    let idp = IdentityProvider::start(&["rsa"]).await;
    let app = spawn_app_with(&backend, |s| s.oidc = vec![idp.config("switchboard")], Default::default()).await;
    let claims = json!({"iss": idp.issuer, "aud": "switchboard", "sub": "rot", "exp": now() + 300});
    assert_eq!(app.get("/api/v1/me", &sign("rsa", &claims)).await.status(), StatusCode::OK);
    idp.publish(&["rsa", "rsa2"]);
    assert_eq!(app.get("/api/v1/me", &sign("rsa2", &claims)).await.status(), StatusCode::OK);
}

async fn an_unreachable_identity_provider_means_401_not_500(backend: Backend) {
    let app = spawn_app_with(
        &backend,
        |s| {
            s.oidc = vec![OidcIssuerConfig {
                issuer: "http://127.0.0.1:9".into(),
                audiences: vec!["switchboard".into()],
                jwks_url: None,
                client_id: None,
                client_secret: None,
                name: None,
            }]
        },
        Default::default(),
    )
    .await;
    let token =
        sign("rsa", &json!({"iss": "http://127.0.0.1:9", "aud": "switchboard", "sub": "x", "exp": now() + 300}));
    assert_eq!(app.get("/api/v1/me", &token).await.status(), StatusCode::UNAUTHORIZED);
}

async fn a_google_id_token_is_exchanged_for_a_session_token(backend: Backend) {
    let google = IdentityProvider::start(&["rsa"]).await;
    let jwks_url = format!("{}/keys", google.issuer);
    let app = spawn_app_with(
        &backend,
        |s| {
            s.google_client_ids = vec!["client-123.apps.googleusercontent.com".into()];
            s.google_jwks_url = jwks_url;
        },
        Default::default(),
    )
    .await;
    let id_token = sign(
        "rsa",
        &json!({"iss": "accounts.google.com", "aud": "client-123.apps.googleusercontent.com", "sub": "1099",
                "email": "gina@example.com", "name": "Gina", "exp": now() + 300}),
    );
    let response = app.client.post(app.url("/api/auth/google")).json(&json!({"token": id_token})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let session: Value = response.json().await.unwrap();
    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["user"]["email"], "gina@example.com");
    let me: Value = app.get("/api/v1/me", session["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["id"], session["user"]["id"], "the session token signs in the same user");
    assert_eq!(me["issuer"], "https://accounts.google.com");

    // Google's field name from Identity Services is accepted too.
    let response =
        app.client.post(app.url("/api/auth/google")).json(&json!({"credential": id_token})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let wrong_client = sign(
        "rsa",
        &json!({"iss": "https://accounts.google.com", "aud": "someone-else", "sub": "1099", "exp": now() + 300}),
    );
    let response =
        app.client.post(app.url("/api/auth/google")).json(&json!({"token": wrong_client})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A Google token is not a bearer token for the API unless Google is configured as an issuer.
    assert_eq!(app.get("/api/v1/me", &id_token).await.status(), StatusCode::UNAUTHORIZED);
}

async fn google_sign_in_answers_404_when_not_configured(backend: Backend) {
    let app = spawn_app_with(&backend, |_| {}, Default::default()).await;
    let response = app.client.post(app.url("/api/auth/google")).json(&json!({"token": "x"})).send().await.unwrap();
    let (status, code) = error_code(response).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_configured"));
}

/// B3.23: a token issued for another resource server (another `aud`) does not open `/mcp`.
async fn a_token_for_another_resource_server_is_refused_at_mcp(backend: Backend) {
    let idp = IdentityProvider::start(&["rsa"]).await;
    let app = spawn_app_with(&backend, |s| s.oidc = vec![idp.config("switchboard")], Default::default()).await;
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let post = |token: String| {
        app.client
            .post(app.url("/mcp"))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
    };
    let foreign =
        sign("rsa", &json!({"iss": idp.issuer, "aud": "https://other-api.example", "sub": "u", "exp": now() + 300}));
    let response = post(foreign).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    let ours = sign("rsa", &json!({"iss": idp.issuer, "aud": "switchboard", "sub": "u", "exp": now() + 300}));
    assert_eq!(post(ours).await.unwrap().status(), StatusCode::OK);
}

crate::on_both_backends!(
    a_token_for_another_resource_server_is_refused_at_mcp,
    issuer_tokens_signed_with_rs256_or_es256_are_accepted_and_keep_email_and_name,
    issuer_tokens_with_a_wrong_audience_issuer_or_expiry_are_refused,
    a_rotated_key_is_picked_up_when_an_unknown_kid_arrives,
    an_unreachable_identity_provider_means_401_not_500,
    a_google_id_token_is_exchanged_for_a_session_token,
    google_sign_in_answers_404_when_not_configured,
);
