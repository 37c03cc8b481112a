//! Signing in without a Switchboard token: `POST /api/auth/google` exchanges a Google ID token
//! for a Switchboard session token, and the web page's "Sign in with …" buttons finish an
//! authorization code flow with PKCE at a configured OpenID Connect issuer
//! (`GET /api/v1/auth/providers`, `POST /api/v1/auth/providers/{provider}/token`).

use crate::json::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::NewToken;
use crate::auth::VerifiedToken;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path};
use crate::routes::me::Me;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(google_sign_in)).routes(routes!(providers)).routes(routes!(provider_token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoogleSignIn {
    /// The Google ID token (`credential` from Google Identity Services).
    #[serde(alias = "id_token", alias = "credential")]
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
    pub user: Me,
}

/// Verifies a Google ID token against Google's keys and returns a Switchboard token for that user.
#[utoipa::path(post, path = "/api/auth/google", tag = "auth", request_body = GoogleSignIn,
    responses(
        (status = 200, body = Session),
        (status = 401, description = "The Google token is not valid for this server", body = ErrorBody),
        (status = 404, description = "Google sign-in is not configured", body = ErrorBody),
    ))]
async fn google_sign_in(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<GoogleSignIn>,
) -> ApiResult<Json<Session>> {
    if !state.auth.google_enabled() {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_configured",
            "Google sign-in is not configured on this server",
        ));
    }
    let verified = state.auth.verify_google(&req.token).await.map_err(|f| f.into_api_error())?;
    session(&state, verified).await.map(Json)
}

/// A Switchboard session token for a verified outside token's user.
async fn session(state: &AppState, verified: VerifiedToken) -> ApiResult<Session> {
    let claims = verified.claims.clone();
    let principal = state.auth.principal(verified.clone()).await.map_err(|f| f.into_api_error())?;
    let (access_token, expires_at) = state.auth.signer().mint(NewToken {
        subject: claims.sub,
        issuer: Some(verified.issuer),
        email: claims.email,
        name: claims.name,
        admin: false,
        ttl: state.auth.session_ttl(),
    });
    Ok(Session { access_token, token_type: "bearer", expires_at, user: Me::from(principal) })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Providers {
    pub providers: Vec<Provider>,
}

/// Where the web page sends a person to sign in.
#[derive(Debug, Serialize, ToSchema)]
pub struct Provider {
    /// Pass to `/api/v1/auth/providers/{provider}/token`.
    pub id: String,
    /// The button's label.
    pub name: String,
    pub issuer: String,
    pub authorization_endpoint: String,
    pub client_id: String,
    /// The scopes to ask for.
    pub scope: &'static str,
}

/// The OpenID Connect issuers configured for signing in from the web page (with a `client_id`).
/// One whose discovery document cannot be read is left out.
#[utoipa::path(get, path = "/api/v1/auth/providers", tag = "auth", responses((status = 200, body = Providers)))]
async fn providers(State(state): State<AppState>) -> Json<Providers> {
    let mut providers = Vec::new();
    for (index, issuer) in state.auth.web_issuers() {
        match issuer.endpoints().await {
            Ok(endpoints) => providers.push(Provider {
                id: index.to_string(),
                name: issuer.display_name(),
                issuer: issuer.config.issuer.clone(),
                authorization_endpoint: endpoints.authorization_endpoint,
                client_id: issuer.config.client_id.clone().unwrap_or_default(),
                scope: "openid email profile",
            }),
            Err(e) => {
                tracing::warn!(issuer = %issuer.config.issuer, error = %e, "a sign-in provider's discovery failed")
            }
        }
    }
    Json(Providers { providers })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeExchange {
    /// The `code` the provider sent back.
    pub code: String,
    /// The PKCE verifier whose S256 challenge went with the authorization request.
    pub code_verifier: String,
    /// The `redirect_uri` of the authorization request.
    pub redirect_uri: String,
}

/// Finishes a web sign-in: the server exchanges the code at the provider's token endpoint (with
/// the client secret when one is configured), verifies the ID token, and answers a session token.
#[utoipa::path(post, path = "/api/v1/auth/providers/{provider}/token", tag = "auth", request_body = CodeExchange,
    params(("provider" = String, Path, description = "The provider's id from /api/v1/auth/providers")),
    responses(
        (status = 200, body = Session),
        (status = 400, body = ErrorBody),
        (status = 401, description = "The provider refused the code, or its ID token is not valid here", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
    ))]
async fn provider_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CodeExchange>,
) -> ApiResult<Json<Session>> {
    let index: usize = id.parse().map_err(|_| ApiError::not_found("sign-in provider"))?;
    for (field, value) in
        [("code", &req.code), ("code_verifier", &req.code_verifier), ("redirect_uri", &req.redirect_uri)]
    {
        if value.is_empty() || value.len() > 2048 {
            return Err(ApiError::bad_request("invalid_field", format!("{field} must be 1 to 2048 characters")));
        }
    }
    let verified = state.auth.finish_web_sign_in(index, &req.code, &req.code_verifier, &req.redirect_uri).await?;
    session(&state, verified).await.map(Json)
}
