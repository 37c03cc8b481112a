//! The requests the OAuth client makes, each to an address the outbound rules allow, pinned to
//! the addresses checked, with no redirect followed and a bounded answer.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest013::StatusCode;
use secrecy::ExposeSecret;
use switchboard_mcp::outbound::OutboundPolicy;

use crate::{Client, ClientAuth, OAuthError};

/// Largest answer read from an authorization server.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Sends the OAuth client's requests under the outbound rules.
#[derive(Clone)]
pub struct Http {
    policy: Arc<OutboundPolicy>,
}

impl Http {
    pub fn new(policy: Arc<OutboundPolicy>) -> Http {
        Http { policy }
    }

    async fn client(&self, url: &str) -> Result<reqwest013::Client, OAuthError> {
        let pinned = self.policy.check(url).await.map_err(|e| OAuthError::Refused(redact(url), e.to_string()))?;
        self.policy.client(&pinned).map_err(OAuthError::Unavailable)
    }

    /// GETs a JSON document; `None` when it is not there (404 and other client errors).
    pub(crate) async fn get_json(&self, url: &str) -> Result<Option<serde_json::Value>, OAuthError> {
        let response = send(self.client(url).await?.get(url)).await?;
        let status = response.status();
        if status.is_server_error() {
            return Err(OAuthError::Unavailable(format!("status {status}")));
        }
        if !status.is_success() {
            return Ok(None);
        }
        read_json(response).await.map(Some)
    }

    /// POSTs a form, authenticating as `client`; the status and the JSON answer (`{}` if none).
    pub(crate) async fn post_form(
        &self,
        url: &str,
        client: &Client,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<(StatusCode, serde_json::Value), OAuthError> {
        let mut request = self.client(url).await?.post(url);
        match (client.auth, &client.client_secret) {
            (ClientAuth::ClientSecretBasic, Some(secret)) => {
                let pair = format!("{}:{}", form_encode(&client.client_id), form_encode(secret.expose_secret()));
                request = request.header("authorization", format!("Basic {}", STANDARD.encode(pair)));
            }
            (ClientAuth::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", client.client_id.clone()));
                form.push(("client_secret", secret.expose_secret().to_owned()));
            }
            _ => form.push(("client_id", client.client_id.clone())),
        }
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form.iter()).finish();
        answer(request.header("content-type", "application/x-www-form-urlencoded").body(body)).await
    }

    /// POSTs JSON; the status and the JSON answer (`{}` if none).
    pub(crate) async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<(StatusCode, serde_json::Value), OAuthError> {
        answer(self.client(url).await?.post(url).json(body)).await
    }

    /// POSTs an MCP `initialize` with no credentials, to read the server's challenge: the
    /// `WWW-Authenticate` header of a 401 or 403; `None` when it answers without one.
    pub async fn probe(&self, url: &str) -> Result<Option<String>, OAuthError> {
        let initialize = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "switchboard", "version": env!("CARGO_PKG_VERSION")}}});
        let response = self
            .client(url)
            .await?
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| OAuthError::Unavailable(connection_error(&e)))?;
        if !matches!(response.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Ok(None);
        }
        Ok(response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned))
    }
}

/// Sends a request that asks for JSON, within the timeout.
async fn send(request: reqwest013::RequestBuilder) -> Result<reqwest013::Response, OAuthError> {
    request
        .header("accept", "application/json")
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| OAuthError::Unavailable(connection_error(&e)))
}

/// Sends a request whose answer is JSON: the status and the answer (`{}` if none).
async fn answer(request: reqwest013::RequestBuilder) -> Result<(StatusCode, serde_json::Value), OAuthError> {
    let response = send(request).await?;
    let status = response.status();
    Ok((status, read_json(response).await.unwrap_or_else(|_| serde_json::json!({}))))
}

async fn read_json(mut response: reqwest013::Response) -> Result<serde_json::Value, OAuthError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| OAuthError::Unavailable(connection_error(&e)))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(OAuthError::Malformed("the answer is too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| OAuthError::Malformed("the answer is not JSON".into()))
}

/// `application/x-www-form-urlencoded` encoding, which HTTP Basic credentials use (RFC 6749 2.3.1).
fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn connection_error(e: &reqwest013::Error) -> String {
    if e.is_timeout() {
        "no answer in time".into()
    } else if e.is_connect() {
        "the connection was refused".into()
    } else {
        "the connection failed".into()
    }
}

/// The URL without its query (which may carry a state or a code).
fn redact(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_owned()
}
