//! The caller's credentials for catalog servers: which keys are set, never their values.

use std::collections::BTreeMap;

use crate::json::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use switchboard_agent::credentials::{CredentialError, ServerCredentials};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Path, Query};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_credentials)).routes(routes!(put_credentials, delete_credentials))
}

#[derive(Serialize, ToSchema)]
pub struct CredentialList {
    /// Servers the caller has stored credentials for, with each declared key set or missing.
    pub items: Vec<ServerCredentials>,
}

/// Values for some of a server's declared keys. Values are write-only.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutCredentials {
    /// `{"KEY": "value"}`, keys as the catalog entry declares them.
    #[schema(value_type = Object)]
    pub values: BTreeMap<String, SecretString>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Delete only this key (all of the server's otherwise).
    pub key: Option<String>,
}

/// Which keys of which servers the caller has set. Values are never returned.
#[utoipa::path(get, path = "/api/v1/credentials", tag = "credentials", security(("bearer" = [])),
    responses((status = 200, body = CredentialList), (status = 401, body = ErrorBody)))]
async fn list_credentials(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<Json<CredentialList>> {
    let items = state.builder.credentials().status(p.user_id()).await.map_err(credential_error)?;
    Ok(Json(CredentialList { items }))
}

/// Stores values for a server's declared credentials (encrypted at rest), replacing earlier ones.
#[utoipa::path(put, path = "/api/v1/credentials/{server}", tag = "credentials", security(("bearer" = [])),
    params(("server" = String, Path, description = "Catalog slug or name")), request_body = PutCredentials,
    responses((status = 200, body = ServerCredentials), (status = 400, description = "A key the server does not declare, an empty or over-long value, or an address that is not allowed", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, description = "No such server in the catalog", body = ErrorBody)))]
async fn put_credentials(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(server): Path<String>,
    JsonBody(body): JsonBody<PutCredentials>,
) -> ApiResult<Json<ServerCredentials>> {
    if body.values.is_empty() {
        return Err(ApiError::bad_request("no_values", "give at least one value in `values`"));
    }
    let status = state.builder.credentials().put(p.user_id(), &server, &body.values).await.map_err(credential_error)?;
    Ok(Json(status))
}

/// Deletes the caller's credentials for a server (or one key of it).
#[utoipa::path(delete, path = "/api/v1/credentials/{server}", tag = "credentials", security(("bearer" = [])),
    params(("server" = String, Path, description = "Catalog slug or name"), DeleteQuery),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, description = "Nothing stored for it", body = ErrorBody)))]
async fn delete_credentials(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(server): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let deleted =
        state.builder.credentials().delete(p.user_id(), &server, q.key.as_deref()).await.map_err(credential_error)?;
    if deleted == 0 {
        return Err(ApiError::not_found("credential"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// How a credential problem reaches the client; the messages never hold a value.
pub(crate) fn credential_error(e: CredentialError) -> ApiError {
    match e {
        CredentialError::UnknownServer(_) => ApiError::not_found("server"),
        CredentialError::UnknownKey { .. } => ApiError::bad_request("unknown_credential", e.to_string()),
        CredentialError::Empty(_) | CredentialError::TooLong { .. } | CredentialError::ControlCharacter(_) => {
            ApiError::bad_request("invalid_credential", e.to_string())
        }
        CredentialError::Address { .. } => ApiError::bad_request("address_not_allowed", e.to_string()),
        CredentialError::Launch(_) => ApiError::new(StatusCode::CONFLICT, "missing_credentials", e.to_string()),
        CredentialError::Connection(e) => super::connections::connection_error(e),
        CredentialError::Store(e) => e.into(),
        other => ApiError::internal(&other),
    }
}
