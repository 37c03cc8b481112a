//! Sign-in: every `/api/*` request carries `Authorization: Bearer <JWT>`, verified either with
//! the server's own HS256 secret or with the keys of a configured OpenID Connect issuer.
//!
//! The token's header `alg` picks the verifier: `HS256` goes only to the server's secret,
//! asymmetric algorithms only to the issuers' published keys, so one kind of key is never used
//! to check the other kind of signature. Claims are never read before the signature is checked.

mod oidc;
mod revocation;
mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use switchboard_domain::{Principal, User};
use switchboard_store::{Identity, Store};

pub use oidc::OidcIssuerConfig;
pub use tokens::{Claims, NewToken, TokenSigner, LOCAL_ISSUER};

use crate::error::ApiError;
use crate::AppState;

/// Longest `Authorization` header accepted; longer ones get 431.
pub const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;

/// How sign-in is configured.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The server's own HS256 secret.
    pub secret: SecretString,
    /// When set, HS256 tokens must carry this `aud`.
    pub audience: Option<String>,
    /// OpenID Connect issuers whose tokens are accepted.
    pub oidc: Vec<OidcIssuerConfig>,
    /// Google client ids accepted by `POST /api/auth/google` (empty: the route is off).
    pub google_client_ids: Vec<String>,
    /// Where Google's keys are (a local server in tests).
    pub google_jwks_url: String,
    /// Users whose verified email is listed here are administrators.
    pub admin_emails: Vec<String>,
    /// Lifetime of tokens minted for a Google sign-in.
    pub session_ttl: Duration,
    /// Minimum time between two fetches of one issuer's keys.
    pub jwks_refresh_interval: Duration,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    HeaderTooLarge,
    Invalid,
    Expired,
    Revoked,
    /// The database needed to check the token could not be reached.
    Unavailable,
}

impl AuthFailure {
    pub fn into_api_error(self) -> ApiError {
        match self {
            AuthFailure::HeaderTooLarge => ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
                "the Authorization header is too large",
            ),
            AuthFailure::Missing => ApiError::unauthorized("missing_token", "send Authorization: Bearer <token>"),
            AuthFailure::Malformed => {
                ApiError::unauthorized("invalid_token", "the Authorization header is not a bearer token")
            }
            AuthFailure::Invalid => ApiError::unauthorized("invalid_token", "the token is invalid"),
            AuthFailure::Expired => ApiError::unauthorized("token_expired", "the token has expired"),
            AuthFailure::Revoked => ApiError::unauthorized("token_revoked", "the token has been revoked"),
            AuthFailure::Unavailable => {
                ApiError::unavailable("database_unavailable", "the database is unavailable; try again shortly")
            }
        }
    }
}

/// A token whose signature and claims checked out.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub issuer: String,
    pub claims: Claims,
    /// True when signed with the server's own secret.
    pub local: bool,
}

/// Verifies bearer tokens and maps them to users.
pub struct Authenticator {
    config: AuthConfig,
    secret_key: DecodingKey,
    signer: TokenSigner,
    issuers: Vec<oidc::Issuer>,
    google: Option<oidc::Issuer>,
    store: Arc<dyn Store>,
    users: Mutex<HashMap<(String, String), User>>,
    revocations: revocation::Revocations,
}

const USER_CACHE_MAX: usize = 100_000;

impl Authenticator {
    pub fn new(config: AuthConfig, store: Arc<dyn Store>) -> Authenticator {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("building an HTTP client with static settings cannot fail");
        let issuers = config
            .oidc
            .iter()
            .cloned()
            .map(|c| oidc::Issuer::new(c, http.clone(), config.jwks_refresh_interval))
            .collect();
        let google = (!config.google_client_ids.is_empty()).then(|| {
            oidc::Issuer::new(
                OidcIssuerConfig {
                    issuer: "https://accounts.google.com".into(),
                    audiences: config.google_client_ids.clone(),
                    jwks_url: Some(config.google_jwks_url.clone()),
                    client_id: None,
                    client_secret: None,
                    name: Some("Google".into()),
                },
                http.clone(),
                config.jwks_refresh_interval,
            )
        });
        Authenticator {
            secret_key: DecodingKey::from_secret(config.secret.expose_secret().as_bytes()),
            signer: TokenSigner::new(&config.secret),
            issuers,
            google,
            store,
            users: Mutex::new(HashMap::new()),
            revocations: revocation::Revocations::default(),
            config,
        }
    }

    /// Revokes a token: refused by this process at once, by every process sharing the database
    /// within [`revocation::REFRESH`].
    pub async fn revoke(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<(), switchboard_store::StoreError> {
        self.store.revoke_token(jti, expires_at).await?;
        self.revocations.insert(jti);
        Ok(())
    }

    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    pub fn session_ttl(&self) -> Duration {
        self.config.session_ttl
    }

    /// The configured OpenID Connect issuers.
    pub fn issuers(&self) -> Vec<String> {
        self.issuers.iter().map(|i| i.config.issuer.clone()).collect()
    }

    pub fn google_enabled(&self) -> bool {
        self.google.is_some()
    }

    /// Authenticates a request from its headers.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        let value = headers.get(header::AUTHORIZATION).ok_or(AuthFailure::Missing)?;
        if value.len() > MAX_AUTHORIZATION_BYTES {
            return Err(AuthFailure::HeaderTooLarge);
        }
        let value = value.to_str().map_err(|_| AuthFailure::Malformed)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthFailure::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthFailure::Malformed);
        }
        let verified = self.verify(token.trim()).await?;
        self.principal(verified).await
    }

    /// The issuers the web page can send people to (those with a `client_id`), by position.
    pub fn web_issuers(&self) -> impl Iterator<Item = (usize, &oidc::Issuer)> {
        self.issuers.iter().enumerate().filter(|(_, i)| i.config.client_id.is_some())
    }

    /// Finishes a web sign-in at issuer `index`: exchanges the code and verifies the ID token.
    pub async fn finish_web_sign_in(
        &self,
        index: usize,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<VerifiedToken, ApiError> {
        let issuer = self
            .issuers
            .get(index)
            .filter(|i| i.config.client_id.is_some())
            .ok_or_else(|| ApiError::not_found("sign-in provider"))?;
        let id_token = issuer.exchange_code(code, verifier, redirect_uri).await.map_err(|e| {
            tracing::warn!(issuer = %issuer.config.issuer, error = %e, "the sign-in code exchange failed");
            ApiError::unauthorized("code_exchange_failed", "the sign-in provider did not accept the sign-in; try again")
        })?;
        let header = jsonwebtoken::decode_header(&id_token).map_err(|_| AuthFailure::Invalid.into_api_error())?;
        match self.verify_with_issuer(issuer, &id_token, &header).await {
            Ok(Some(verified)) => Ok(verified),
            Ok(None) => Err(AuthFailure::Invalid.into_api_error()),
            Err(failure) => Err(failure.into_api_error()),
        }
    }

    /// Checks a token's signature and claims.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, AuthFailure> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::Invalid)?;
        if header.alg == Algorithm::HS256 {
            let mut validation = self.validation(Algorithm::HS256);
            match &self.config.audience {
                Some(aud) => {
                    validation.set_audience(&[aud]);
                    validation.set_required_spec_claims(&["exp", "sub", "aud"]);
                }
                None => validation.validate_aud = false,
            }
            let data = jsonwebtoken::decode::<Claims>(token, &self.secret_key, &validation).map_err(classify)?;
            let issuer = data.claims.iss.clone().unwrap_or_else(|| LOCAL_ISSUER.to_string());
            return Ok(VerifiedToken { issuer, claims: data.claims, local: true });
        }
        if !is_asymmetric(header.alg) {
            return Err(AuthFailure::Invalid);
        }
        for issuer in &self.issuers {
            if let Some(v) = self.verify_with_issuer(issuer, token, &header).await? {
                return Ok(v);
            }
        }
        Err(AuthFailure::Invalid)
    }

    /// Verifies a Google ID token (for `POST /api/auth/google`).
    pub async fn verify_google(&self, token: &str) -> Result<VerifiedToken, AuthFailure> {
        let google = self.google.as_ref().ok_or(AuthFailure::Invalid)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::Invalid)?;
        if !is_asymmetric(header.alg) {
            return Err(AuthFailure::Invalid);
        }
        self.verify_with_issuer(google, token, &header).await?.ok_or(AuthFailure::Invalid)
    }

    async fn verify_with_issuer(
        &self,
        issuer: &oidc::Issuer,
        token: &str,
        header: &jsonwebtoken::Header,
    ) -> Result<Option<VerifiedToken>, AuthFailure> {
        let mut validation = self.validation(header.alg);
        validation.set_audience(&issuer.config.audiences);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        validation.set_issuer(&issuer.accepted_issuers());
        let mut outcome = None;
        for key in issuer.candidate_keys(header.kid.as_deref(), header.alg).await {
            match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
                Ok(data) => {
                    return Ok(Some(VerifiedToken {
                        issuer: issuer.config.issuer.clone(),
                        claims: data.claims,
                        local: false,
                    }))
                }
                // Signed by this issuer but otherwise unacceptable (expired, wrong audience…).
                Err(e) if !matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                    outcome = Some(classify(e))
                }
                Err(_) => {}
            }
        }
        match outcome {
            Some(failure) => Err(failure),
            None => Ok(None),
        }
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation
    }

    /// Maps a verified token to its user (created on first sight) and what it may do.
    pub async fn principal(&self, token: VerifiedToken) -> Result<Principal, AuthFailure> {
        let claims = &token.claims;
        if claims.sub.trim().is_empty() {
            return Err(AuthFailure::Invalid);
        }
        if let Some(jti) = &claims.jti {
            if self.revocations.contains(self.store.as_ref(), jti).await? {
                return Err(AuthFailure::Revoked);
            }
        }
        let user = self.user(&token).await?;
        let email_is_admin =
            user.email.as_ref().is_some_and(|e| self.config.admin_emails.iter().any(|a| a.eq_ignore_ascii_case(e)));
        Ok(Principal {
            is_admin: (token.local && claims.admin) || email_is_admin,
            token_id: claims.jti.clone(),
            token_expires_at: DateTime::<Utc>::from_timestamp(claims.exp, 0).unwrap_or_else(Utc::now),
            user,
        })
    }

    async fn user(&self, token: &VerifiedToken) -> Result<User, AuthFailure> {
        let key = (token.issuer.clone(), token.claims.sub.clone());
        let claims = &token.claims;
        if let Some(user) = self.users.lock().expect("user cache lock").get(&key) {
            let unchanged = (claims.email.is_none() || claims.email == user.email)
                && (claims.name.is_none() || claims.name == user.name);
            if unchanged {
                return Ok(user.clone());
            }
        }
        let identity = Identity {
            issuer: &token.issuer,
            subject: &claims.sub,
            email: claims.email.as_deref(),
            name: claims.name.as_deref(),
        };
        let user = self.store.upsert_user(identity).await.map_err(|e| {
            tracing::error!(error = %e, "could not record user");
            AuthFailure::Unavailable
        })?;
        let mut cache = self.users.lock().expect("user cache lock");
        if cache.len() >= USER_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, user.clone());
        Ok(user)
    }
}

fn is_asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn classify(e: jsonwebtoken::errors::Error) -> AuthFailure {
    match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthFailure::Expired,
        _ => AuthFailure::Invalid,
    }
}

/// Middleware: authenticates the request and stores its [`Principal`] for the handlers.
pub async fn require_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match state.auth.authenticate(req.headers()).await {
        Ok(principal) => {
            // Every line logged for this request (tool calls among them) names its user.
            tracing::Span::current().record("user", tracing::field::display(principal.user_id()));
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(failure) => {
            tracing::debug!(?failure, "request refused");
            failure.into_api_error().into_response()
        }
    }
}

/// [`require_auth`] for `/mcp`: a refusal also says where the protected resource metadata is,
/// as the MCP authorization specification asks.
pub async fn require_auth_mcp(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let metadata = format!("{}/.well-known/oauth-protected-resource/mcp", state.config.public_url);
    let mut response = require_auth(State(state), req, next).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        let challenge = format!("Bearer realm=\"switchboard\", resource_metadata=\"{metadata}\"");
        if let Ok(value) = header::HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// The signed-in caller, in a handler.
pub struct Auth(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Principal>().cloned().map(Auth).ok_or_else(|| AuthFailure::Missing.into_api_error())
    }
}

/// The signed-in caller, who must be an administrator.
pub struct Admin(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Auth(principal) = Auth::from_request_parts(parts, state).await?;
        if !principal.is_admin {
            return Err(ApiError::forbidden("this route is for administrators"));
        }
        Ok(Admin(principal))
    }
}
