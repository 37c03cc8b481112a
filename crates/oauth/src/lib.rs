//! OAuth 2.1 as a client, for connecting accounts and remote MCP servers on a user's behalf:
//!
//! - discovery of an authorization server's endpoints (RFC 8414, or OpenID Connect discovery)
//!   and of a protected resource's authorization servers (RFC 9728), starting from a
//!   `WWW-Authenticate` challenge as the MCP authorization specification describes;
//! - dynamic client registration (RFC 7591) where the server offers it;
//! - the authorization code flow with PKCE (S256) and resource indicators (RFC 8707);
//! - refresh and revocation (RFC 7009).
//!
//! Every request goes through the outbound rules ([`OutboundPolicy`]): endpoints named by a
//! remote server are untrusted addresses, checked and pinned like any other, and redirects are
//! not followed. Tokens are [`SecretString`]s and never appear in errors or logs.

mod challenge;
mod http;
mod metadata;

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use challenge::{parse_challenge, Challenge};
pub use http::Http;
pub use metadata::{discover, discover_from_challenge, AuthServer, ProtectedResource};

/// What went wrong talking to an authorization server. Never carries a token.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// The address is not allowed by the outbound rules.
    #[error("the address {0} is not allowed: {1}")]
    Refused(String, String),
    /// The server could not be reached or answered with a server error.
    #[error("the authorization server could not be reached: {0}")]
    Unavailable(String),
    /// The server refused the grant (code used, expired or forged; refresh token revoked).
    #[error("the authorization server refused the grant: {0}")]
    InvalidGrant(String),
    /// Any other refusal, with the server's `error` code.
    #[error("the authorization server answered {error}{}", .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refusal { error: String, description: Option<String> },
    /// The answer or the metadata is not what the specifications say.
    #[error("unexpected answer from the authorization server: {0}")]
    Malformed(String),
}

impl OAuthError {
    /// Whether trying again later may work (the server was down), as opposed to a refusal.
    pub fn is_transient(&self) -> bool {
        matches!(self, OAuthError::Unavailable(_))
    }
}

/// How the client proves itself at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    ClientSecretPost,
    /// HTTP Basic with the client id and secret.
    ClientSecretBasic,
    /// A public client: only `client_id`.
    None,
}

/// An OAuth client: configured by the operator, or registered dynamically.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub auth: ClientAuth,
}

/// Tokens as a token endpoint answered them.
#[derive(Clone)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Seconds from now.
    pub expires_in: Option<u64>,
    /// The scopes granted, when the server says (space-separated in the wire format).
    pub scope: Option<Vec<String>>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("refresh_token", &self.refresh_token.is_some())
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: SecretString,
    pub challenge: String,
}

impl Pkce {
    /// A fresh verifier: 32 random bytes, base64url (43 characters).
    pub fn new() -> Pkce {
        let verifier = random_token();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce { verifier: SecretString::from(verifier), challenge }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Pkce::new()
    }
}

/// 32 random bytes as base64url: states and verifiers.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// What goes into an authorization request.
pub struct AuthorizationRequest<'a> {
    pub authorization_endpoint: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub state: &'a str,
    pub code_challenge: &'a str,
    /// The protected resource the token is for (RFC 8707), for MCP servers.
    pub resource: Option<&'a str>,
    /// Provider-specific parameters (`access_type=offline`, `prompt=consent`…).
    pub extra: &'a BTreeMap<String, String>,
}

impl AuthorizationRequest<'_> {
    /// The URL to send the person to.
    pub fn url(&self) -> Result<String, OAuthError> {
        let mut url = url::Url::parse(self.authorization_endpoint)
            .map_err(|_| OAuthError::Malformed("the authorization endpoint is not a URL".into()))?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", self.client_id)
                .append_pair("redirect_uri", self.redirect_uri)
                .append_pair("state", self.state)
                .append_pair("code_challenge", self.code_challenge)
                .append_pair("code_challenge_method", "S256");
            if !self.scopes.is_empty() {
                query.append_pair("scope", &self.scopes.join(" "));
            }
            if let Some(resource) = self.resource {
                query.append_pair("resource", resource);
            }
            for (name, value) in self.extra {
                query.append_pair(name, value);
            }
        }
        Ok(url.into())
    }
}

impl Http {
    /// Exchanges an authorization code for tokens.
    pub async fn exchange_code(
        &self,
        token_endpoint: &str,
        client: &Client,
        code: &str,
        verifier: &SecretString,
        redirect_uri: &str,
        resource: Option<&str>,
    ) -> Result<TokenSet, OAuthError> {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", redirect_uri.to_owned()),
            ("code_verifier", verifier.expose_secret().to_owned()),
        ];
        if let Some(resource) = resource {
            form.push(("resource", resource.to_owned()));
        }
        self.token_request(token_endpoint, client, form).await
    }

    /// Trades a refresh token for fresh tokens.
    pub async fn refresh(
        &self,
        token_endpoint: &str,
        client: &Client,
        refresh_token: &SecretString,
        resource: Option<&str>,
    ) -> Result<TokenSet, OAuthError> {
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.expose_secret().to_owned()),
        ];
        if let Some(resource) = resource {
            form.push(("resource", resource.to_owned()));
        }
        self.token_request(token_endpoint, client, form).await
    }

    /// Asks the server to forget a token (RFC 7009); `hint` is `access_token` or `refresh_token`.
    pub async fn revoke(
        &self,
        revocation_endpoint: &str,
        client: &Client,
        token: &SecretString,
        hint: &str,
    ) -> Result<(), OAuthError> {
        let form = vec![("token", token.expose_secret().to_owned()), ("token_type_hint", hint.to_owned())];
        let (status, body) = self.post_form(revocation_endpoint, client, form).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(refusal(status, &body))
        }
    }

    /// Registers a client (RFC 7591): a public client using the authorization code flow with
    /// PKCE, redirecting to `redirect_uri`.
    pub async fn register(
        &self,
        registration_endpoint: &str,
        redirect_uri: &str,
        client_name: &str,
    ) -> Result<Client, OAuthError> {
        let request = serde_json::json!({
            "client_name": client_name,
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        let (status, body) = self.post_json(registration_endpoint, &request).await?;
        if !status.is_success() {
            return Err(refusal(status, &body));
        }
        #[derive(Deserialize)]
        struct Registered {
            client_id: String,
            client_secret: Option<String>,
            token_endpoint_auth_method: Option<String>,
        }
        let registered: Registered =
            serde_json::from_value(body).map_err(|e| OAuthError::Malformed(format!("the registration answer: {e}")))?;
        let auth = match (registered.token_endpoint_auth_method.as_deref(), &registered.client_secret) {
            (Some("client_secret_basic"), Some(_)) => ClientAuth::ClientSecretBasic,
            (_, Some(_)) => ClientAuth::ClientSecretPost,
            (_, None) => ClientAuth::None,
        };
        Ok(Client {
            client_id: registered.client_id,
            client_secret: registered.client_secret.map(SecretString::from),
            auth,
        })
    }

    async fn token_request(
        &self,
        token_endpoint: &str,
        client: &Client,
        form: Vec<(&'static str, String)>,
    ) -> Result<TokenSet, OAuthError> {
        let (status, body) = self.post_form(token_endpoint, client, form).await?;
        if !status.is_success() {
            return Err(refusal(status, &body));
        }
        // Some providers (Slack) answer 200 with {"ok": false, "error": …}.
        if body.get("ok") == Some(&serde_json::Value::Bool(false)) || body.get("error").is_some() {
            return Err(refusal(reqwest013::StatusCode::BAD_REQUEST, &body));
        }
        #[derive(Deserialize)]
        struct Answer {
            access_token: String,
            refresh_token: Option<String>,
            expires_in: Option<serde_json::Value>,
            scope: Option<String>,
        }
        let answer: Answer = serde_json::from_value(body)
            .map_err(|_| OAuthError::Malformed("the token answer has no access_token".into()))?;
        let expires_in = match answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok(TokenSet {
            access_token: SecretString::from(answer.access_token),
            refresh_token: answer.refresh_token.map(SecretString::from),
            expires_in,
            scope: answer.scope.map(|s| s.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned).collect()),
        })
    }
}

/// The error an OAuth server's JSON error answer stands for.
fn refusal(status: reqwest013::StatusCode, body: &serde_json::Value) -> OAuthError {
    if status.is_server_error() {
        return OAuthError::Unavailable(format!("status {status}"));
    }
    let error = body.get("error").and_then(|e| e.as_str()).unwrap_or("").to_owned();
    let description = body.get("error_description").and_then(|e| e.as_str()).map(|d| d.chars().take(300).collect());
    match error.as_str() {
        "invalid_grant" => OAuthError::InvalidGrant(description.unwrap_or_else(|| "invalid_grant".into())),
        "" => OAuthError::Refusal { error: format!("status {status}"), description },
        _ => OAuthError::Refusal { error, description },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenges_are_the_s256_of_their_verifier() {
        let pkce = Pkce::new();
        assert_eq!(pkce.verifier.expose_secret().len(), 43);
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(pkce.verifier.expose_secret().as_bytes()));
        assert_eq!(pkce.challenge, expected);
        assert_ne!(Pkce::new().challenge, pkce.challenge);
    }

    #[test]
    fn authorization_urls_carry_pkce_state_scopes_resource_and_extras() {
        let extra = BTreeMap::from([("access_type".to_string(), "offline".to_string())]);
        let scopes = vec!["read".to_string(), "write files".to_string()];
        let url = AuthorizationRequest {
            authorization_endpoint: "https://as.example/authorize?tenant=1",
            client_id: "c1",
            redirect_uri: "https://sb.example/api/v1/oauth/callback",
            scopes: &scopes,
            state: "s1",
            code_challenge: "ch",
            resource: Some("https://mcp.example/mcp"),
            extra: &extra,
        }
        .url()
        .unwrap();
        let parsed = url::Url::parse(&url).unwrap();
        let query: BTreeMap<String, String> = parsed.query_pairs().into_owned().collect();
        assert_eq!(query["tenant"], "1", "the endpoint's own parameters stay");
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["scope"], "read write files");
        assert_eq!(query["resource"], "https://mcp.example/mcp");
        assert_eq!(query["access_type"], "offline");
        assert_eq!(query["redirect_uri"], "https://sb.example/api/v1/oauth/callback");
    }

    #[test]
    fn error_answers_map_to_kinds() {
        let bad = reqwest013::StatusCode::BAD_REQUEST;
        let grant = serde_json::json!({"error": "invalid_grant", "error_description": "code reused"});
        assert!(matches!(refusal(bad, &grant), OAuthError::InvalidGrant(d) if d == "code reused"));
        assert!(refusal(reqwest013::StatusCode::BAD_GATEWAY, &serde_json::json!({})).is_transient());
        let other = refusal(bad, &serde_json::json!({"error": "invalid_client"}));
        assert_eq!(other.to_string(), "the authorization server answered invalid_client");
    }
}
