//! The original specification's v2 authentication routes, mapped onto connections for Google:
//! the Google account is the connection of the catalog server `google_connection_server`
//! (Gmail by default), and the session is the caller's Switchboard token.
//!
//! `GET /auth/scopes` and `POST /auth/scopes` are the connection's scopes and authorization;
//! `POST /auth/login` starts it with the default scopes; `GET /auth/callback` is the provider's
//! way back; `GET /auth/status` says whether Google is connected; `DELETE /auth/logout`
//! disconnects it (revoking its tokens) and ends the session; `GET /me` is the signed-in user.

use crate::json::Json;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_agent::connections::{Authorization, ScopesView};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::connections::{connection_error, CallbackQuery, ConnectRequest};
use super::me::Me;
use crate::auth::Auth;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{JsonBody, Query};
use crate::AppState;

/// The signed-in routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(scopes, grant_scopes))
        .routes(routes!(login))
        .routes(routes!(status))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// The provider's way back, without a bearer token.
pub fn callback_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(callback))
}

/// The scopes the Google connection can grant, and the granted ones.
#[utoipa::path(get, path = "/auth/scopes", tag = "compat", security(("bearer" = [])),
    responses((status = 200, body = ScopesView), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn scopes(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<ScopesView>> {
    let connections = state.builder.credentials().connections();
    let view =
        connections.scopes(p.user_id(), &state.config.google_connection_server).await.map_err(connection_error)?;
    Ok(Json(view))
}

/// Asks Google for these scopes (on top of the required ones): where to send the person.
#[utoipa::path(post, path = "/auth/scopes", tag = "compat", security(("bearer" = [])), request_body = ConnectRequest,
    responses((status = 200, body = Authorization), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn grant_scopes(
    State(state): State<AppState>,
    Auth(p): Auth,
    JsonBody(body): JsonBody<ConnectRequest>,
) -> ApiResult<Json<Authorization>> {
    start(&state, &p, body.scopes.as_deref()).await
}

/// Starts connecting Google with its default scopes: where to send the person.
#[utoipa::path(post, path = "/auth/login", tag = "compat", security(("bearer" = [])),
    responses((status = 200, body = Authorization), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn login(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Authorization>> {
    start(&state, &p, None).await
}

async fn start(
    state: &AppState,
    p: &switchboard_domain::Principal,
    scopes: Option<&[String]>,
) -> ApiResult<Json<Authorization>> {
    let connections = state.builder.credentials().connections();
    let started = connections
        .start(p.user_id(), &state.config.google_connection_server, scopes)
        .await
        .map_err(connection_error)?;
    Ok(Json(started))
}

/// The provider's way back (the same as `/api/v1/oauth/callback`).
#[utoipa::path(get, path = "/auth/callback", tag = "compat", params(CallbackQuery),
    responses((status = 200, content_type = "text/html", body = String), (status = 400, content_type = "text/html", body = String)))]
async fn callback(state: State<AppState>, query: Query<CallbackQuery>) -> Response {
    super::connections::finish_callback(state, query).await
}

/// Whether Google is connected.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthStatus {
    pub authenticated: bool,
    /// `connected`, `needs_consent` or `not_connected`.
    pub status: String,
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub user: Me,
}

#[utoipa::path(get, path = "/auth/status", tag = "compat", security(("bearer" = [])),
    responses((status = 200, body = AuthStatus), (status = 401, body = ErrorBody)))]
async fn status(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<AuthStatus>> {
    let connections = state.builder.credentials().connections();
    let server = &state.config.google_connection_server;
    let slug = state.catalog.get(server).await.ok().flatten().map_or(server.clone(), |e| e.slug.clone());
    let current = connections.list(p.user_id()).await.map_err(connection_error)?.into_iter().find(|c| c.slug == slug);
    Ok(Json(AuthStatus {
        authenticated: current.as_ref().is_some_and(|c| c.status == "connected"),
        status: current.as_ref().map_or("not_connected", |c| c.status).to_owned(),
        scopes: current.as_ref().map(|c| c.scopes.clone()).unwrap_or_default(),
        expires_at: current.and_then(|c| c.expires_at),
        user: Me::from(p),
    }))
}

/// What logging out did.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedOut {
    /// Google's tokens were forgotten (and revoked at Google).
    pub google_disconnected: bool,
    /// The session token used for this request is refused from now on.
    pub session_revoked: bool,
}

#[utoipa::path(delete, path = "/auth/logout", tag = "compat", security(("bearer" = [])),
    responses((status = 200, body = LoggedOut), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<LoggedOut>> {
    let connections = state.builder.credentials().connections();
    let google_disconnected =
        connections.delete(p.user_id(), &state.config.google_connection_server).await.map_err(connection_error)?;
    let session_revoked = match &p.token_id {
        Some(jti) => {
            state.auth.revoke(jti, p.token_expires_at).await?;
            true
        }
        None => false,
    };
    Ok(Json(LoggedOut { google_disconnected, session_revoked }))
}

/// The signed-in user (as `/api/v1/me`).
#[utoipa::path(get, path = "/me", tag = "compat", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(Auth(p): Auth) -> Json<Me> {
    Json(Me::from(p))
}
