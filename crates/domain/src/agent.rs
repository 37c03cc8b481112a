//! Agents made from described workflows, and the credentials they run with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use uuid::Uuid;

/// A configured agent: the servers a workflow needs and how to use them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: Uuid,
    pub name: String,
    /// The workflow as the user described it.
    pub description: String,
    /// Catalog entry names of the servers it uses.
    pub servers: Vec<String>,
    pub system_prompt: String,
    /// The workflow's steps, in order.
    pub steps: Vec<String>,
    /// The conversation it was created in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<Uuid>,
    #[serde(serialize_with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// What creating an agent takes.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub description: String,
    pub servers: Vec<String>,
    pub system_prompt: String,
    pub steps: Vec<String>,
    pub conversation_id: Option<Uuid>,
}

/// One stored credential, sealed: the vault's envelope and nonce, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCredential {
    /// The catalog slug of the server it belongs to.
    pub server: String,
    /// The credential's key ("GITHUB_PERSONAL_ACCESS_TOKEN").
    pub key: String,
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    /// Id of the master key that sealed it.
    pub key_version: i64,
    pub updated_at: DateTime<Utc>,
}
