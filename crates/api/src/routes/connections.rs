//! Accounts connected with OAuth: what a server's connection can grant, starting the
//! authorization, the provider's way back (`/api/v1/oauth/callback`, a page for people), the
//! caller's connections (never their tokens), and disconnecting.

use crate::json::Json;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use switchboard_agent::connections::{Authorization, ConnectionError, ConnectionView, ScopesView};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::AppState;

/// The signed-in routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_connections)).routes(routes!(scopes)).routes(routes!(connect, disconnect))
}

/// The provider's way back, reached by the person's browser without a bearer token: the
/// single-use state is what ties it to the person who started.
pub fn callback_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(callback))
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    pub items: Vec<ConnectionView>,
}

/// Scopes to ask for; the server's required ones are always asked for too.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// Scope names the catalog entry offers, on top of its required ones (absent: the required
    /// ones; everything it offers when it marks none required).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// The caller's connected accounts: granted scopes and expiry, never tokens.
#[utoipa::path(get, path = "/api/v1/connections", tag = "connections", security(("bearer" = [])),
    responses((status = 200, body = ConnectionList), (status = 401, body = ErrorBody)))]
async fn list_connections(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<ConnectionList>> {
    let items = state.builder.credentials().connections().list(p.user_id()).await.map_err(connection_error)?;
    Ok(Json(ConnectionList { items }))
}

/// What connecting a server can grant, and what the caller's connection has.
#[utoipa::path(get, path = "/api/v1/connections/{server}/scopes", tag = "connections", security(("bearer" = [])),
    params(("server" = String, Path, description = "Catalog slug or name")),
    responses((status = 200, body = ScopesView), (status = 401, body = ErrorBody),
        (status = 404, description = "No such server", body = ErrorBody),
        (status = 409, description = "The server cannot be connected with OAuth", body = ErrorBody)))]
async fn scopes(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(server): Path<String>,
) -> ApiResult<Json<ScopesView>> {
    let view =
        state.builder.credentials().connections().scopes(p.user_id(), &server).await.map_err(connection_error)?;
    Ok(Json(view))
}

/// Starts connecting: the provider's URL to send the person to (authorization code with PKCE,
/// a state bound to the caller, valid ten minutes, usable once).
#[utoipa::path(post, path = "/api/v1/connections/{server}", tag = "connections", security(("bearer" = [])),
    params(("server" = String, Path, description = "Catalog slug or name")), request_body = ConnectRequest,
    responses((status = 200, body = Authorization), (status = 400, description = "A scope the server does not offer", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "No such server", body = ErrorBody),
        (status = 409, description = "Not connectable here (no OAuth method, or its client is not configured)", body = ErrorBody),
        (status = 502, description = "The server's authorization server refused", body = ErrorBody),
        (status = 503, description = "The authorization server could not be reached", body = ErrorBody)))]
async fn connect(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(server): Path<String>,
    body: Option<JsonBody<ConnectRequest>>,
) -> ApiResult<Json<Authorization>> {
    let request = body.map(|JsonBody(b)| b).unwrap_or_default();
    let started = state
        .builder
        .credentials()
        .connections()
        .start(p.user_id(), &server, request.scopes.as_deref())
        .await
        .map_err(connection_error)?;
    Ok(Json(started))
}

/// Disconnects: the tokens are forgotten, and revoked where the provider supports it.
#[utoipa::path(delete, path = "/api/v1/connections/{server}", tag = "connections", security(("bearer" = [])),
    params(("server" = String, Path, description = "Catalog slug or name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, description = "Not connected", body = ErrorBody)))]
async fn disconnect(State(state): State<AppState>, Auth(p): Auth, Path(server): Path<String>) -> ApiResult<StatusCode> {
    let deleted =
        state.builder.credentials().connections().delete(p.user_id(), &server).await.map_err(connection_error)?;
    if !deleted {
        return Err(ApiError::not_found("connection"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// What the provider sends the person back with.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// `access_denied` when the person declined.
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The provider's way back: exchanges the code and stores the tokens, then shows a page that
/// says it worked, or why not.
#[utoipa::path(get, path = "/api/v1/oauth/callback", tag = "connections", params(CallbackQuery),
    responses((status = 200, description = "Connected", content_type = "text/html", body = String),
        (status = 400, description = "Declined, or an unknown, used or expired state", content_type = "text/html", body = String),
        (status = 502, description = "The provider refused the code", content_type = "text/html", body = String)))]
async fn callback(state: State<AppState>, query: Query<CallbackQuery>) -> Response {
    finish_callback(state, query).await
}

/// Finishes an authorization the provider sent the person back from, as a page.
pub(crate) async fn finish_callback(State(state): State<AppState>, Query(q): Query<CallbackQuery>) -> Response {
    let connections = state.builder.credentials().connections();
    let Some(flow_state) = q.state.filter(|s| !s.is_empty() && s.len() <= 512) else {
        return page(StatusCode::BAD_REQUEST, "Not connected", "The provider's answer carries no state, so it cannot be matched to a request. Start connecting again from Switchboard.");
    };
    if let Some(error) = q.error {
        let server = connections.abandon(&flow_state).await.ok().flatten();
        let what = server.map(|s| format!("{s} was not connected")).unwrap_or_else(|| "Nothing was connected".into());
        let why = if error == "access_denied" {
            "access was declined at the provider".to_string()
        } else {
            format!("the provider answered {}", clip(&error))
        };
        return page(
            StatusCode::BAD_REQUEST,
            "Not connected",
            &format!("{what}: {why}. You can start again from Switchboard."),
        );
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Not connected",
            "The provider's answer carries no code. Start connecting again from Switchboard.",
        );
    };
    match connections.finish(&flow_state, &code).await {
        Ok((_, server)) => page(
            StatusCode::OK,
            "Connected",
            &format!("{server} is connected. You can close this page and go back to Switchboard."),
        ),
        Err(e @ (ConnectionError::UnknownFlow | ConnectionError::ExpiredFlow)) => {
            page(StatusCode::BAD_REQUEST, "Not connected", &e.to_string())
        }
        Err(e @ (ConnectionError::Refused { .. } | ConnectionError::Unavailable { .. })) => {
            tracing::warn!(error = %e, "an OAuth code exchange failed");
            page(StatusCode::BAD_GATEWAY, "Not connected", &format!("{e}. Start connecting again from Switchboard."))
        }
        Err(e) => {
            let error = connection_error(e);
            page(error.status(), "Not connected", "Switchboard could not store the connection; try again shortly.")
        }
    }
}

fn clip(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(60).collect()
}

/// A small page for the person's browser: no scripts, no framing.
fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title} — Switchboard</title><link rel=\"stylesheet\" href=\"/web/style.css\"></head>\
         <body class=\"callback\"><main><h1>{title}</h1><p id=\"outcome\">{}</p><p><a href=\"/\">Back to Switchboard</a></p></main></body></html>",
        escape(text)
    );
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// How a connection problem reaches the client; the messages never hold a token.
pub(crate) fn connection_error(e: ConnectionError) -> ApiError {
    match e {
        ConnectionError::UnknownServer(_) => ApiError::not_found("server"),
        ConnectionError::NotConnected(_) => ApiError::not_found("connection"),
        ConnectionError::NotConnectable { .. } => ApiError::new(StatusCode::CONFLICT, "not_connectable", e.to_string()),
        ConnectionError::NoClient { .. } => ApiError::new(StatusCode::CONFLICT, "oauth_not_configured", e.to_string()),
        ConnectionError::UnknownScope { .. } => ApiError::bad_request("unknown_scope", e.to_string()),
        ConnectionError::UnknownFlow => ApiError::bad_request("unknown_state", e.to_string()),
        ConnectionError::ExpiredFlow => ApiError::bad_request("expired_state", e.to_string()),
        ConnectionError::Refused { .. } => ApiError::new(StatusCode::BAD_GATEWAY, "oauth_refused", e.to_string()),
        ConnectionError::Unavailable { .. } => ApiError::unavailable("oauth_unavailable", e.to_string()),
        ConnectionError::NeedsConsent { .. } => {
            ApiError::new(StatusCode::CONFLICT, "connection_needs_consent", e.to_string())
        }
        ConnectionError::Store(e) => e.into(),
        other => ApiError::internal(&other),
    }
}
