//! The signed-in user, and signing out.

use crate::json::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_domain::Principal;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me)).routes(routes!(logout))
}

/// The signed-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(Auth(p): Auth) -> Json<Me> {
    Json(Me::from(p))
}

impl From<Principal> for Me {
    fn from(p: Principal) -> Me {
        Me {
            id: p.user.id,
            issuer: p.user.issuer,
            subject: p.user.subject,
            email: p.user.email,
            name: p.user.name,
            is_admin: p.is_admin,
            created_at: p.user.created_at,
        }
    }
}

/// Revokes the token this request was made with; it is refused from then on.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "me", security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, Auth(p): Auth) -> ApiResult<StatusCode> {
    let jti = p.token_id.ok_or_else(|| {
        ApiError::bad_request(
            "token_not_revocable",
            "this token has no id (jti), so it cannot be revoked; it ends when it expires",
        )
    })?;
    state.auth.revoke(&jti, p.token_expires_at).await?;
    Ok(StatusCode::NO_CONTENT)
}
