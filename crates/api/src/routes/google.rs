//! `POST /api/auth/google`: exchanges a Google ID token for a Switchboard session token.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::NewToken;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;
use crate::routes::me::Me;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(google_sign_in))
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
    Ok(Json(Session { access_token, token_type: "bearer", expires_at, user: Me::from(principal) }))
}
