//! Routes for administrators only (403 for everyone else).

use crate::json::Json;
use axum::extract::State;
use serde::Serialize;
use switchboard_domain::User;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::PageQuery;
use crate::auth::Admin;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::Query;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_users))
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<User>,
    pub next_cursor: Option<String>,
}

/// Every user known to this server, oldest first.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<UserList>> {
    let page = state.store.list_users(q.to_request()?).await?;
    Ok(Json(UserList { items: page.items, next_cursor: page.next_cursor }))
}
