//! Switchboard's own HS256 tokens: minted for the local user, by `switchboard token`, and in
//! exchange for a verified Google sign-in.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The issuer Switchboard writes into its own tokens, and assumes for HS256 tokens without `iss`.
pub const LOCAL_ISSUER: &str = "switchboard";

/// The claims Switchboard reads from (and writes into) bearer tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Honoured only on tokens signed with the server's own secret.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// Signs HS256 tokens with the server's secret.
#[derive(Clone)]
pub struct TokenSigner {
    key: EncodingKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner([redacted])")
    }
}

/// What to put in a new token.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub subject: String,
    pub issuer: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub admin: bool,
    pub ttl: std::time::Duration,
}

impl NewToken {
    pub fn for_subject(subject: impl Into<String>, ttl: std::time::Duration) -> NewToken {
        NewToken { subject: subject.into(), issuer: None, email: None, name: None, admin: false, ttl }
    }
}

impl TokenSigner {
    pub fn new(secret: &SecretString) -> TokenSigner {
        TokenSigner { key: EncodingKey::from_secret(secret.expose_secret().as_bytes()) }
    }

    /// Returns the signed token and when it expires.
    pub fn mint(&self, token: NewToken) -> (String, DateTime<Utc>) {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(token.ttl).unwrap_or(chrono::Duration::days(3650));
        let expires = now + ttl;
        let claims = Claims {
            sub: token.subject,
            exp: expires.timestamp(),
            iat: Some(now.timestamp()),
            iss: Some(token.issuer.unwrap_or_else(|| LOCAL_ISSUER.to_string())),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            email: token.email,
            name: token.name,
            admin: token.admin,
        };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .expect("HS256 signing of serializable claims cannot fail");
        (jwt, expires)
    }
}
