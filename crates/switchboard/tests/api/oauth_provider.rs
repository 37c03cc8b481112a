//! A local OAuth 2.0 / OpenID Connect provider for the connection tests, speaking the real wire
//! protocol: metadata (RFC 8414 and OpenID discovery), JWKS, an authorization endpoint that
//! consents at once (or declines), a token endpoint (authorization code with PKCE S256 and
//! resource indicators, single-use codes, refresh with rotation), revocation (RFC 7009) and
//! dynamic client registration (RFC 7591). Access tokens are RS256 JWTs (the fixture key), so a
//! Switchboard configured with this issuer accepts them on its `/mcp`.
//!
//! It can be told to decline consent, to answer with a wrong state, to hand out tokens that
//! expire at once, to refuse refreshes, or to fail its token endpoint; and it records what it
//! issued, refreshed and revoked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The operator's confidential client, as the tests configure it in `oauth_clients`.
pub const CLIENT_ID: &str = "switchboard-test-client";
pub const CLIENT_SECRET: &str = "provider-client-secret-0123456789";
/// The subject every token is issued for.
const SUBJECT: &str = "provider-user-1";

/// What the tests can ask of the provider.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    pub decline: bool,
    pub wrong_state: bool,
    /// Seconds the access tokens live (default 3600).
    pub access_ttl: Option<u64>,
    pub refuse_refresh: bool,
    pub fail_token_endpoint: bool,
}

/// What the provider saw and did.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Every access and refresh token handed out.
    pub issued: Vec<String>,
    pub refreshes: usize,
    pub revoked: Vec<String>,
    pub registered: Vec<String>,
    /// The query of each authorization request.
    pub authorizations: Vec<HashMap<String, String>>,
    /// The `resource` of each token request that carried one.
    pub resources: Vec<String>,
}

#[derive(Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    resource: Option<String>,
    used: bool,
}

#[derive(Default)]
struct Inner {
    knobs: Knobs,
    record: Record,
    /// Public clients registered dynamically, with their redirect URIs.
    clients: HashMap<String, Vec<String>>,
    codes: HashMap<String, Grant>,
    /// Live refresh tokens and the grant they continue.
    refresh: HashMap<String, Grant>,
}

#[derive(Clone)]
pub struct OAuthProvider {
    pub issuer: String,
    inner: Arc<Mutex<Inner>>,
}

impl OAuthProvider {
    pub async fn start() -> OAuthProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let provider = OAuthProvider { issuer, inner: Arc::default() };
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/.well-known/openid-configuration", get(metadata))
            .route("/jwks", get(|| async { Json(jwks()) }))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .route("/register", post(register))
            .with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        provider
    }

    pub fn set(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.inner.lock().unwrap().knobs);
    }

    pub fn record(&self) -> Record {
        self.inner.lock().unwrap().record.clone()
    }
}

fn jwks() -> Value {
    let all: Value = serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
    json!({ "keys": [all["rsa"]] })
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

async fn metadata(State(p): State<OAuthProvider>) -> Json<Value> {
    let i = &p.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "revocation_endpoint": format!("{i}/revoke"),
        "registration_endpoint": format!("{i}/register"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "none"],
        "scopes_supported": ["files.read", "files.write", "tasks"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

fn redirect_with(uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut url = url::Url::parse(uri).unwrap();
    url.query_pairs_mut().extend_pairs(pairs.iter());
    Redirect::to(url.as_str()).into_response()
}

async fn authorize(State(p): State<OAuthProvider>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut inner = p.inner.lock().unwrap();
    inner.record.authorizations.push(q.clone());
    let field = |name: &str| q.get(name).cloned().unwrap_or_default();
    let (client_id, redirect_uri, state) = (field("client_id"), field("redirect_uri"), field("state"));
    let known =
        client_id == CLIENT_ID || inner.clients.get(&client_id).is_some_and(|uris| uris.contains(&redirect_uri));
    if !known || field("response_type") != "code" || field("code_challenge_method") != "S256" {
        return (StatusCode::BAD_REQUEST, "unknown client, redirect URI or challenge method").into_response();
    }
    if inner.knobs.decline {
        return redirect_with(&redirect_uri, &[("error", "access_denied"), ("state", &state)]);
    }
    let code = switchboard_oauth::random_token();
    let grant = Grant {
        client_id,
        redirect_uri: redirect_uri.clone(),
        challenge: field("code_challenge"),
        scope: field("scope"),
        resource: q.get("resource").cloned(),
        used: false,
    };
    inner.codes.insert(code.clone(), grant);
    let state = if inner.knobs.wrong_state { "forged-state".to_string() } else { state };
    redirect_with(&redirect_uri, &[("code", &code), ("state", &state)])
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error, "error_description": format!("test provider: {error}") }))).into_response()
}

/// The client the request authenticated as: the confidential one (secret in the body or HTTP
/// Basic) or a registered public one (id only).
fn client_of(inner: &Inner, headers: &HeaderMap, form: &HashMap<String, String>) -> Option<String> {
    if let Some(basic) =
        headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        return (id == CLIENT_ID && secret == CLIENT_SECRET).then(|| id.to_owned());
    }
    let id = form.get("client_id")?;
    match form.get("client_secret") {
        Some(secret) => (id == CLIENT_ID && secret == CLIENT_SECRET).then(|| id.clone()),
        None => inner.clients.contains_key(id).then(|| id.clone()),
    }
}

fn access_token(issuer: &str, grant: &Grant, ttl: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({
        "iss": issuer, "sub": SUBJECT, "aud": grant.resource.clone().unwrap_or_else(|| grant.client_id.clone()),
        "scope": grant.scope, "iat": now, "exp": now + ttl, "jti": switchboard_oauth::random_token(),
        "email": "provider.user@example.com",
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa_private.pem")).unwrap()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn issue(p: &OAuthProvider, inner: &mut Inner, grant: Grant) -> Response {
    let ttl = inner.knobs.access_ttl.unwrap_or(3600);
    let access = access_token(&p.issuer, &grant, ttl);
    let refresh = switchboard_oauth::random_token();
    inner.record.issued.push(access.clone());
    inner.record.issued.push(refresh.clone());
    let scope = grant.scope.clone();
    inner.refresh.insert(refresh.clone(), grant);
    Json(json!({"access_token": access, "token_type": "Bearer", "expires_in": ttl, "refresh_token": refresh, "scope": scope}))
        .into_response()
}

async fn token(
    State(p): State<OAuthProvider>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut inner = p.inner.lock().unwrap();
    if inner.knobs.fail_token_endpoint {
        return oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    }
    let Some(client) = client_of(&inner, &headers, &form) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    if let Some(resource) = form.get("resource") {
        inner.record.resources.push(resource.clone());
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(grant) = inner.codes.get_mut(&code) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            if grant.used {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            grant.used = true;
            let grant = grant.clone();
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if grant.client_id != client
                || form.get("redirect_uri") != Some(&grant.redirect_uri)
                || challenge != grant.challenge
                || form.get("resource") != grant.resource.as_ref()
            {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            issue(&p, &mut inner, grant)
        }
        Some("refresh_token") => {
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            if inner.knobs.refuse_refresh {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let Some(grant) = inner.refresh.remove(&presented) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            if grant.client_id != client {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            inner.record.refreshes += 1;
            issue(&p, &mut inner, grant)
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

async fn revoke(
    State(p): State<OAuthProvider>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut inner = p.inner.lock().unwrap();
    if client_of(&inner, &headers, &form).is_none() {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if let Some(token) = form.get("token") {
        inner.refresh.remove(token);
        inner.record.revoked.push(token.clone());
    }
    StatusCode::OK.into_response()
}

async fn register(State(p): State<OAuthProvider>, Json(body): Json<Value>) -> Response {
    let uris: Vec<String> =
        body["redirect_uris"].as_array().into_iter().flatten().filter_map(|u| u.as_str().map(str::to_owned)).collect();
    if uris.is_empty() || body["token_endpoint_auth_method"] != "none" {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata");
    }
    let id = format!("dyn-{}", &switchboard_oauth::random_token()[..12]);
    let mut inner = p.inner.lock().unwrap();
    inner.clients.insert(id.clone(), uris.clone());
    inner.record.registered.push(id.clone());
    (StatusCode::CREATED, Json(json!({"client_id": id, "redirect_uris": uris, "token_endpoint_auth_method": "none"})))
        .into_response()
}
