//! Sessions of the built-in MCP endpoint, shared by every server on the database.

use chrono::{DateTime, Utc};
use switchboard_domain::Id;

use super::first;
use crate::db::{Db, Tx};
use crate::{params, Result};

pub(super) async fn put<D: Db>(
    db: &D,
    id: &str,
    owner: Id,
    state: &serde_json::Value,
    expired_before: DateTime<Utc>,
) -> Result<()> {
    let mut tx = db.begin().await?;
    tx.execute(
        "INSERT INTO mcp_sessions (id, user_id, state, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET state = excluded.state WHERE mcp_sessions.user_id = excluded.user_id",
        &params![id, owner, state, switchboard_domain::now()],
    )
    .await?;
    tx.execute("DELETE FROM mcp_sessions WHERE created_at < $1", &params![expired_before]).await?;
    tx.commit().await
}

pub(super) async fn get<D: Db>(db: &D, id: &str) -> Result<Option<(Id, serde_json::Value)>> {
    let rows = db.fetch("SELECT user_id, state FROM mcp_sessions WHERE id = $1", &params![id]).await?;
    first(rows).map(|mut r| Ok((r.id()?, r.json()?))).transpose()
}

pub(super) async fn delete<D: Db>(db: &D, id: &str, owner: Id) -> Result<bool> {
    let deleted = db.execute("DELETE FROM mcp_sessions WHERE id = $1 AND user_id = $2", &params![id, owner]).await?;
    Ok(deleted > 0)
}
