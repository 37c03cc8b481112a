use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use uuid::Uuid;

/// A person known to Switchboard, identified by the issuer and subject of their tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// The verified caller of a request: the user plus what the token grants.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    /// Administrators may call `/api/v1/admin/*`.
    pub is_admin: bool,
    /// The token's `jti`, when it has one (needed to revoke it).
    pub token_id: Option<String>,
    /// When the presented token expires.
    pub token_expires_at: DateTime<Utc>,
}

impl Principal {
    pub fn user_id(&self) -> Uuid {
        self.user.id
    }
}
