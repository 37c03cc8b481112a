//! Keys of OpenID Connect issuers, fetched from their JWKS and cached. An unknown `kid` triggers a
//! refresh (at most once per `refresh_interval`, so bad tokens cannot make us hammer the issuer).

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

/// An issuer whose tokens are accepted.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct OidcIssuerConfig {
    /// The `iss` its tokens carry, e.g. `https://example.eu.auth0.com/`.
    pub issuer: String,
    /// Accepted `aud` values (at least one).
    pub audiences: Vec<String>,
    /// Where its keys are; discovered from `<issuer>/.well-known/openid-configuration` if absent.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The web page's OAuth client at this issuer: with it, the page offers "Sign in with …"
    /// (authorization code with PKCE). Accepted as an audience too.
    #[serde(default)]
    pub client_id: Option<String>,
    /// That client's secret, when the issuer requires one for the code exchange (Google does).
    /// Used by the server only; never sent to the page.
    #[serde(default, skip_serializing)]
    pub client_secret: Option<secrecy::SecretString>,
    /// What the sign-in button says, e.g. `Google` (default: the issuer's host).
    #[serde(default)]
    pub name: Option<String>,
}

/// Where an issuer's users sign in and where codes are exchanged.
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoints {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("fetching {url} failed")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the discovery document has no jwks_uri")]
    NoJwksUri,
    #[error("the token endpoint answered without an id_token")]
    NoIdToken,
}

struct CachedKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// One issuer with its cached keys.
pub struct Issuer {
    pub config: OidcIssuerConfig,
    http: reqwest::Client,
    refresh_interval: Duration,
    keys: RwLock<Vec<CachedKey>>,
    last_refresh: Mutex<Option<Instant>>,
    endpoints: Mutex<Option<Endpoints>>,
}

impl Issuer {
    pub fn new(mut config: OidcIssuerConfig, http: reqwest::Client, refresh_interval: Duration) -> Issuer {
        if let Some(client) = &config.client_id {
            if !config.audiences.contains(client) {
                config.audiences.push(client.clone());
            }
        }
        Issuer {
            config,
            http,
            refresh_interval,
            keys: RwLock::new(Vec::new()),
            last_refresh: Mutex::new(None),
            endpoints: Mutex::new(None),
        }
    }

    /// The sign-in button's label.
    pub fn display_name(&self) -> String {
        self.config.name.clone().unwrap_or_else(|| {
            let host = self.config.issuer.split("://").nth(1).unwrap_or(&self.config.issuer);
            host.split('/').next().unwrap_or(host).to_string()
        })
    }

    /// The authorization and token endpoints, from the issuer's discovery document (cached).
    pub async fn endpoints(&self) -> Result<Endpoints, JwksError> {
        let mut cached = self.endpoints.lock().await;
        if let Some(endpoints) = cached.as_ref() {
            return Ok(endpoints.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let endpoints: Endpoints = self.get_json(&url).await?;
        *cached = Some(endpoints.clone());
        Ok(endpoints)
    }

    /// Exchanges an authorization code (with its PKCE verifier) for the issuer's ID token.
    pub async fn exchange_code(&self, code: &str, verifier: &str, redirect_uri: &str) -> Result<String, JwksError> {
        use secrecy::ExposeSecret;
        let endpoints = self.endpoints().await?;
        let client_id = self.config.client_id.clone().unwrap_or_default();
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("code_verifier", verifier.to_string()),
            ("redirect_uri", redirect_uri.to_string()),
            ("client_id", client_id),
        ];
        if let Some(secret) = &self.config.client_secret {
            form.push(("client_secret", secret.expose_secret().to_string()));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            id_token: Option<String>,
        }
        let url = endpoints.token_endpoint;
        let fetch = |source| JwksError::Fetch { url: url.clone(), source };
        let answer: TokenResponse = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(fetch)?
            .json()
            .await
            .map_err(fetch)?;
        answer.id_token.ok_or(JwksError::NoIdToken)
    }

    /// The `iss` values that name this issuer (Google writes its issuer without the scheme too).
    pub fn accepted_issuers(&self) -> Vec<String> {
        let mut out = vec![self.config.issuer.clone()];
        if let Some(bare) = self.config.issuer.strip_prefix("https://") {
            if bare == "accounts.google.com" {
                out.push(bare.to_string());
            }
        }
        out
    }

    /// Keys that may have signed a token with this `kid` and `alg`, refreshing once if none is cached.
    pub async fn candidate_keys(&self, kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
        let found = self.cached(kid, alg).await;
        if !found.is_empty() {
            return found;
        }
        if let Err(e) = self.refresh().await {
            tracing::warn!(issuer = %self.config.issuer, error = %e, "could not refresh signing keys");
        }
        self.cached(kid, alg).await
    }

    async fn cached(&self, kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
        self.keys
            .read()
            .await
            .iter()
            .filter(|k| k.algorithms.contains(&alg) && (kid.is_none() || k.kid.as_deref() == kid))
            .map(|k| k.key.clone())
            .collect()
    }

    async fn refresh(&self) -> Result<(), JwksError> {
        let mut last = self.last_refresh.lock().await;
        if let Some(at) = *last {
            if at.elapsed() < self.refresh_interval {
                return Ok(());
            }
        }
        *last = Some(Instant::now());
        let url = match &self.config.jwks_url {
            Some(u) => u.clone(),
            None => self.discover_jwks_url().await?,
        };
        let set: JwkSet = self.get_json(&url).await?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let algorithms = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => {
                    vec![
                        Algorithm::RS256,
                        Algorithm::RS384,
                        Algorithm::RS512,
                        Algorithm::PS256,
                        Algorithm::PS384,
                        Algorithm::PS512,
                    ]
                }
                AlgorithmParameters::EllipticCurve(_) => vec![Algorithm::ES256, Algorithm::ES384],
                AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                // Symmetric keys in a public JWKS would let anyone who reads it sign tokens.
                AlgorithmParameters::OctetKey(_) => continue,
                _ => continue,
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => keys.push(CachedKey { kid: jwk.common.key_id.clone(), algorithms, key }),
                Err(e) => {
                    tracing::warn!(issuer = %self.config.issuer, error = %e, "skipping unusable key")
                }
            }
        }
        tracing::debug!(issuer = %self.config.issuer, keys = keys.len(), "signing keys refreshed");
        *self.keys.write().await = keys;
        Ok(())
    }

    async fn discover_jwks_url(&self) -> Result<String, JwksError> {
        #[derive(Deserialize)]
        struct Discovery {
            jwks_uri: Option<String>,
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let doc: Discovery = self.get_json(&url).await?;
        doc.jwks_uri.ok_or(JwksError::NoJwksUri)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, JwksError> {
        let fetch = |source| JwksError::Fetch { url: url.to_string(), source };
        self.http.get(url).send().await.and_then(|r| r.error_for_status()).map_err(fetch)?.json().await.map_err(fetch)
    }
}
