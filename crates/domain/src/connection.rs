//! Accounts connected with OAuth: the tokens (sealed), the flows in progress, and the clients
//! registered with authorization servers.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A value sealed by the vault: its envelope and nonce, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
}

/// Whether a connection's tokens can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Connected,
    /// Refreshing failed for good (revoked, expired): the person must consent again.
    NeedsConsent,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::NeedsConsent => "needs_consent",
        }
    }

    pub fn parse(text: &str) -> Option<ConnectionStatus> {
        match text {
            "connected" => Some(ConnectionStatus::Connected),
            "needs_consent" => Some(ConnectionStatus::NeedsConsent),
            _ => None,
        }
    }
}

/// One user's connection to one catalog server.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// The catalog slug.
    pub server: String,
    pub status: ConnectionStatus,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// The access and refresh tokens, as one sealed JSON document.
    pub tokens: Sealed,
    pub key_version: i64,
    /// When the access token expires, if the server said.
    pub expires_at: Option<DateTime<Utc>>,
    /// How to refresh and revoke: the endpoints, the client, the resource (JSON).
    pub method: serde_json::Value,
    /// Bumped on every change, so concurrent refreshes never overwrite each other.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An authorization in progress: created when the person is sent to the provider, taken (once)
/// when they come back.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthFlow {
    /// SHA-256 of the `state` sent to the provider (the state itself is never stored).
    pub state_hash: String,
    pub user_id: Uuid,
    pub server: String,
    /// The PKCE verifier, sealed.
    pub verifier: Sealed,
    pub scopes: Vec<String>,
    /// What the callback needs to finish: endpoints, client, resource, redirect URI (JSON).
    pub method: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A client Switchboard registered with an authorization server (RFC 7591).
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredClient {
    pub issuer: String,
    pub redirect_uri: String,
    pub client_id: String,
    /// Sealed, when the server issued one.
    pub client_secret: Option<Sealed>,
    /// `client_secret_post`, `client_secret_basic` or `none`.
    pub auth_method: String,
    pub created_at: DateTime<Utc>,
}
