//! The MCP server catalog: browse, search, and (administrators) import, export and delete.

use crate::json::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use switchboard_catalog::{CatalogEntry, CatalogError, ImportFile, ImportReport, SearchHit};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Path, Query};
use crate::AppState;

/// The largest catalog file an administrator may upload.
const IMPORT_LIMIT: usize = 64 * 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(search)).routes(routes!(get))
}

pub fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import))
        .routes(routes!(export))
        .routes(routes!(delete))
        .layer(axum::extract::DefaultBodyLimit::max(IMPORT_LIMIT))
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> ApiError {
        match e {
            CatalogError::Import(e) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_catalog", e.to_string())
            }
            CatalogError::Store(e) => e.into(),
            other => ApiError::internal(&other),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Entries per page, 1–200. Default 50.
    limit: Option<usize>,
    /// Entries to skip.
    offset: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct ServerList {
    pub items: Vec<CatalogEntry>,
    /// How many entries the catalog holds.
    pub total: usize,
    /// The `offset` of the next page, when there is one.
    pub next_offset: Option<usize>,
}

/// The catalog's entries in name order.
#[utoipa::path(get, path = "/api/v1/servers", tag = "catalog", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = ServerList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list(State(state): State<AppState>, _user: Auth, Query(q): Query<ListQuery>) -> ApiResult<Json<ServerList>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", "limit must be between 1 and 200"));
    }
    let offset = q.offset.unwrap_or(0);
    let entries = state.catalog.entries().await?;
    let items: Vec<CatalogEntry> = entries.iter().skip(offset).take(limit).map(|e| (**e).clone()).collect();
    let next_offset = (offset + items.len() < entries.len()).then_some(offset + items.len());
    Ok(Json(ServerList { items, total: entries.len(), next_offset }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// What the servers should do, in plain words.
    q: Option<String>,
    /// How many results, 1–50. Default 10.
    limit: Option<usize>,
    /// Drop results scoring below this, 0–1. Default 0.
    threshold: Option<f32>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    pub query: String,
    /// `hybrid` when embeddings took part, `bm25` otherwise.
    pub mode: &'static str,
    pub results: Vec<SearchHit>,
}

/// The entries best matching a request, best first, with their scores and the signals that matched.
#[utoipa::path(get, path = "/api/v1/servers/search", tag = "catalog", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn search(
    State(state): State<AppState>,
    _user: Auth,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Json<SearchResults>> {
    let text = q.q.unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::bad_request("missing_query", "q is required: describe what the servers should do"));
    }
    if text.chars().count() > 2000 {
        return Err(ApiError::bad_request("query_too_long", "q is limited to 2000 characters"));
    }
    let limit = q.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", "limit must be between 1 and 50"));
    }
    let threshold = q.threshold.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ApiError::bad_request("invalid_threshold", "threshold must be between 0 and 1"));
    }
    let results = state.catalog.search(text, limit, threshold).await?;
    let mode = if results.iter().any(|h| h.cosine.is_some()) { "hybrid" } else { "bm25" };
    Ok(Json(SearchResults { query: text.to_string(), mode, results }))
}

/// One entry, by slug or exact name.
#[utoipa::path(get, path = "/api/v1/servers/{name}", tag = "catalog", security(("bearer" = [])),
    params(("name" = String, Path, description = "The entry's slug or exact name")),
    responses((status = 200, body = CatalogEntry), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn get(State(state): State<AppState>, _user: Auth, Path(name): Path<String>) -> ApiResult<Json<CatalogEntry>> {
    match state.catalog.get(&name).await? {
        Some(entry) => Ok(Json((*entry).clone())),
        None => Err(ApiError::not_found("catalog entry")),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The file's name, used in error messages. Default `upload.json`.
    file: Option<String>,
}

/// Imports one catalog file (any supported format) sent as the body. All or nothing: a bad file
/// is refused with the file, entry and field named. Importing the same file twice changes nothing.
#[utoipa::path(post, path = "/api/v1/admin/catalog/import", tag = "admin", security(("bearer" = [])), params(ImportQuery),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, body = ImportReport), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn import(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<ImportQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ImportReport>> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the catalog file is larger than 64 MiB")
        }
        _ => ApiError::bad_request("invalid_body", e.body_text()),
    })?;
    if body.is_empty() {
        return Err(ApiError::bad_request("empty_body", "send the catalog file as the request body"));
    }
    let name = q.file.unwrap_or_else(|| "upload.json".into());
    let report = state.catalog.import(&[ImportFile { name: &name, bytes: &body }]).await?;
    Ok(Json(report))
}

/// The whole catalog as a plain list of entries, the format `import` reads back.
#[utoipa::path(get, path = "/api/v1/admin/catalog/export", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<CatalogEntry>), (status = 403, body = ErrorBody)))]
async fn export(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<Vec<CatalogEntry>>> {
    Ok(Json(state.catalog.entries().await?.iter().map(|e| (**e).clone()).collect()))
}

/// Removes an entry.
#[utoipa::path(delete, path = "/api/v1/admin/catalog/{slug}", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, description = "The entry's slug")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete(State(state): State<AppState>, _admin: Admin, Path(slug): Path<String>) -> ApiResult<StatusCode> {
    if state.catalog.delete(&slug).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("catalog entry"))
    }
}
