//! The store's SQL, written once for every backend over [`Db`](crate::db::Db).
//!
//! SQLite and PostgreSQL both accept `$n` placeholders, `ON CONFLICT … DO UPDATE`, `RETURNING`
//! and row-value comparisons, so the statements are the same; what is not portable (locking,
//! notifications) is a method of the driver. One module per area; [`SqlStore`] routes each
//! [`Store`](crate::Store) method to it.
//!
//! Every write transaction starts with a write statement, so SQLite takes its write lock at once
//! instead of failing to upgrade a read lock under contention.

mod agents;
mod catalog;
mod connections;
mod conversations;
mod jobs;
mod mcp_sessions;
mod tasks;
mod users;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use switchboard_domain::{
    Agent, Connection, Conversation, Cursor, Id, Job, JobEvent, JobOutcome, JobStatus, JobTotals, Message, NewAgent,
    NewMessage, NewTask, OAuthFlow, Page, PageRequest, QueueStats, RegisteredClient, SealedCredential, Task,
    TaskChanges, TaskFilter, TaskRef, User,
};

use crate::db::{Db, Record};
use crate::{CatalogRecord, Identity, Result, StartTurn, Started, Store};

/// Whether a write's commit waits for the disk (see [`Store::append_job_reply`]). SQLite's
/// commits do not wait anyway (`synchronous = NORMAL` with its write-ahead log): both alike there.
#[derive(Debug, Clone, Copy)]
enum Commit {
    Durable,
    Relaxed,
}

/// The [`Store`] on any database with a [`Db`] driver.
pub struct SqlStore<D> {
    db: D,
}

impl<D: Db> SqlStore<D> {
    pub fn new(db: D) -> SqlStore<D> {
        SqlStore { db }
    }

    /// The driver, for backend-specific operations.
    pub fn db(&self) -> &D {
        &self.db
    }
}

/// How many columns a comma-separated column list names.
const fn column_count(list: &str) -> usize {
    let bytes = list.as_bytes();
    let (mut n, mut i) = (1, 0);
    while i < bytes.len() {
        if bytes[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The first record, if any.
fn first(records: Vec<Record>) -> Option<Record> {
    records.into_iter().next()
}

/// The single record a statement that always returns one row returned.
fn single(records: Vec<Record>) -> Result<Record> {
    first(records).ok_or_else(|| crate::StoreError::Decode("a statement returned no row".into()))
}

/// Decodes every record with `f`.
fn decode<T>(records: Vec<Record>, f: impl Fn(Record) -> Result<T>) -> Result<Vec<T>> {
    records.into_iter().map(f).collect()
}

/// The cursor's sort key and id as two nullable query parameters.
fn keyset(page: &PageRequest) -> (Option<DateTime<Utc>>, Option<Id>) {
    match page.cursor {
        Some(c) => (Some(c.at), Some(c.id)),
        None => (None, None),
    }
}

/// `limit + 1` (to learn whether a next page exists) and the offset, as query parameters.
fn window(page: &PageRequest) -> (i64, i64) {
    (i64::from(page.limit) + 1, page.offset as i64)
}

/// Turns `limit + 1` fetched rows into a page, using the extra row only to know a next page exists.
fn paginate<T>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Page<T> {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if has_more { rows.last().map(|r| key(r).encode()) } else { None };
    Page { items: rows, next_cursor }
}

/// A newest-first keyset page of the owner's rows of `$table`, sorted by `$sort` then id. Binds:
/// `$1` owner, `$2`/`$3` the cursor's sort key and id, `$4` limit, `$5` offset.
macro_rules! owner_page_sql {
    ($table:literal, $columns:expr, $sort:literal) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM ",
            $table,
            " WHERE user_id = $1 AND ($2 IS NULL OR (",
            $sort,
            ", id) < ($2, $3)) ORDER BY ",
            $sort,
            " DESC, id DESC LIMIT $4 OFFSET $5"
        )
    };
}
use owner_page_sql;

/// Runs an [`owner_page_sql`] statement for `page`.
async fn owner_page<D: Db>(db: &D, sql: &str, owner: Id, page: &PageRequest) -> Result<Vec<Record>> {
    let (before, before_id) = keyset(page);
    let (limit, offset) = window(page);
    db.fetch(sql, &crate::params![owner, before, before_id, limit, offset]).await
}

/// `LIKE` pattern matching `text` anywhere, with `%`, `_` and `\` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[async_trait]
impl<D: Db> Store for SqlStore<D> {
    fn backend(&self) -> &'static str {
        self.db.backend()
    }

    async fn ping(&self) -> Result<()> {
        self.db.ping().await
    }

    async fn close(&self) {
        self.db.close().await
    }

    async fn upsert_user(&self, who: Identity<'_>) -> Result<User> {
        users::upsert(&self.db, who).await
    }

    async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        users::list(&self.db, page).await
    }

    async fn list_conversations(&self, owner: Id, page: PageRequest) -> Result<Page<Conversation>> {
        conversations::list(&self.db, owner, page).await
    }

    async fn get_conversation(&self, owner: Id, id: Id) -> Result<Option<Conversation>> {
        conversations::get(&self.db, owner, id).await
    }

    async fn set_conversation_context(&self, owner: Id, id: Id, context: &serde_json::Value) -> Result<bool> {
        conversations::set_context(&self.db, owner, id, context).await
    }

    async fn rename_conversation(&self, owner: Id, id: Id, title: &str) -> Result<Option<Conversation>> {
        conversations::rename(&self.db, owner, id, title).await
    }

    async fn count_conversations(&self, owner: Id) -> Result<i64> {
        conversations::count(&self.db, owner).await
    }

    async fn delete_conversation(&self, owner: Id, id: Id) -> Result<bool> {
        conversations::delete(&self.db, owner, id).await
    }

    async fn list_messages(&self, owner: Id, conversation: Id, page: PageRequest) -> Result<Option<Page<Message>>> {
        conversations::messages(&self.db, owner, conversation, page).await
    }

    async fn conversation_with_recent(
        &self,
        owner: Id,
        conversation: Id,
        n: u32,
    ) -> Result<Option<(Conversation, Vec<Message>)>> {
        conversations::with_recent(&self.db, owner, conversation, n).await
    }

    async fn start_turn(&self, owner: Id, turn: StartTurn) -> Result<Option<Started>> {
        conversations::start_turn(&self.db, owner, turn).await
    }

    async fn job_reply(&self, owner: Id, conversation: Id, job: Id) -> Result<Option<Message>> {
        conversations::job_reply(&self.db, owner, conversation, job).await
    }

    async fn append_message(&self, owner: Id, conversation: Id, message: NewMessage) -> Result<Option<Message>> {
        conversations::append_message(&self.db, owner, conversation, message, Commit::Durable).await
    }

    async fn append_job_reply(&self, owner: Id, conversation: Id, message: NewMessage) -> Result<Option<Message>> {
        conversations::append_message(&self.db, owner, conversation, message, Commit::Relaxed).await
    }

    async fn create_task(&self, owner: Id, task: NewTask) -> Result<Option<Task>> {
        tasks::create(&self.db, owner, task).await
    }

    async fn get_task(&self, owner: Id, task: TaskRef) -> Result<Option<Task>> {
        tasks::get(&self.db, owner, task).await
    }

    async fn list_tasks(&self, owner: Id, filter: &TaskFilter, page: PageRequest) -> Result<Page<Task>> {
        tasks::list(&self.db, owner, filter, page).await
    }

    async fn update_task(&self, owner: Id, task: TaskRef, changes: TaskChanges) -> Result<Option<Task>> {
        tasks::update(&self.db, owner, task, changes).await
    }

    async fn delete_task(&self, owner: Id, task: TaskRef) -> Result<bool> {
        tasks::delete(&self.db, owner, task).await
    }

    async fn revoke_token(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<()> {
        users::revoke_token(&self.db, jti, expires_at).await
    }

    async fn revoked_tokens(&self) -> Result<Vec<String>> {
        users::revoked_tokens(&self.db).await
    }

    async fn catalog_entries(&self) -> Result<Vec<CatalogRecord>> {
        catalog::entries(&self.db).await
    }

    async fn catalog_entry_data(&self, name: &str) -> Result<Option<String>> {
        catalog::entry_data(&self.db, name).await
    }

    async fn upsert_catalog_entries(&self, records: &[CatalogRecord]) -> Result<()> {
        catalog::upsert(&self.db, records).await
    }

    async fn set_catalog_embeddings(&self, model: &str, items: &[(String, String, Vec<u8>)]) -> Result<()> {
        catalog::set_embeddings(&self.db, model, items).await
    }

    async fn delete_catalog_entry(&self, slug: &str) -> Result<bool> {
        catalog::delete(&self.db, slug).await
    }

    async fn put_connection(&self, owner: Id, connection: &Connection) -> Result<Connection> {
        connections::put(&self.db, owner, connection).await
    }

    async fn connection(&self, owner: Id, server: &str) -> Result<Option<Connection>> {
        connections::get(&self.db, owner, server).await
    }

    async fn connections(&self, owner: Id) -> Result<Vec<Connection>> {
        connections::list(&self.db, owner).await
    }

    async fn all_connections(&self) -> Result<Vec<(Id, Connection)>> {
        connections::all(&self.db).await
    }

    async fn update_connection(&self, owner: Id, expected_version: i64, connection: &Connection) -> Result<bool> {
        connections::update(&self.db, owner, expected_version, connection).await
    }

    async fn delete_connection(&self, owner: Id, server: &str) -> Result<Option<Connection>> {
        connections::delete(&self.db, owner, server).await
    }

    async fn put_oauth_flow(&self, flow: &OAuthFlow) -> Result<()> {
        connections::put_flow(&self.db, flow).await
    }

    async fn take_oauth_flow(&self, state_hash: &str) -> Result<Option<OAuthFlow>> {
        connections::take_flow(&self.db, state_hash).await
    }

    async fn put_registered_client(&self, client: &RegisteredClient) -> Result<()> {
        connections::put_client(&self.db, client).await
    }

    async fn registered_client(&self, issuer: &str, redirect_uri: &str) -> Result<Option<RegisteredClient>> {
        connections::client(&self.db, issuer, redirect_uri).await
    }

    async fn put_mcp_session(
        &self,
        id: &str,
        owner: Id,
        state: &serde_json::Value,
        expired_before: DateTime<Utc>,
    ) -> Result<()> {
        mcp_sessions::put(&self.db, id, owner, state, expired_before).await
    }

    async fn mcp_session(&self, id: &str) -> Result<Option<(Id, serde_json::Value)>> {
        mcp_sessions::get(&self.db, id).await
    }

    async fn delete_mcp_session(&self, id: &str, owner: Id) -> Result<bool> {
        mcp_sessions::delete(&self.db, id, owner).await
    }

    async fn catalog_revision(&self) -> Result<(i64, Option<DateTime<Utc>>)> {
        catalog::revision(&self.db).await
    }

    async fn put_credentials(&self, owner: Id, items: &[SealedCredential]) -> Result<()> {
        agents::put_credentials(&self.db, owner, items).await
    }

    async fn credentials(&self, owner: Id, server: Option<&str>) -> Result<Vec<SealedCredential>> {
        agents::credentials(&self.db, owner, server).await
    }

    async fn credentials_and_connected(&self, owner: Id) -> Result<(Vec<SealedCredential>, Vec<String>)> {
        agents::credentials_and_connected(&self.db, owner).await
    }

    async fn delete_credentials(&self, owner: Id, server: &str, key: Option<&str>) -> Result<u64> {
        agents::delete_credentials(&self.db, owner, server, key).await
    }

    async fn all_credentials(&self) -> Result<Vec<(Id, SealedCredential)>> {
        agents::all_credentials(&self.db).await
    }

    async fn reseal_credential(&self, owner: Id, old_ciphertext: &[u8], new: &SealedCredential) -> Result<bool> {
        agents::reseal_credential(&self.db, owner, old_ciphertext, new).await
    }

    async fn create_agent(&self, owner: Id, agent: NewAgent) -> Result<Agent> {
        agents::create(&self.db, owner, agent).await
    }

    async fn list_agents(&self, owner: Id, page: PageRequest) -> Result<Page<Agent>> {
        agents::list(&self.db, owner, page).await
    }

    async fn get_agent(&self, owner: Id, id: Id) -> Result<Option<Agent>> {
        agents::get(&self.db, owner, id).await
    }

    async fn delete_agent(&self, owner: Id, id: Id) -> Result<bool> {
        agents::delete(&self.db, owner, id).await
    }

    async fn get_job(&self, owner: Id, id: Id) -> Result<Option<Job>> {
        jobs::get(&self.db, owner, id).await
    }

    async fn list_jobs(&self, owner: Id, status: Option<JobStatus>, page: PageRequest) -> Result<Page<Job>> {
        jobs::list(&self.db, owner, status, page).await
    }

    async fn cancel_job(&self, owner: Id, id: Id) -> Result<Option<Job>> {
        jobs::cancel(&self.db, owner, id).await
    }

    async fn claim_job(&self, worker: &str, lease_until: DateTime<Utc>) -> Result<Option<Job>> {
        jobs::claim(&self.db, worker, lease_until).await
    }

    async fn claim_job_by_id(&self, id: Id, worker: &str, lease_until: DateTime<Utc>) -> Result<crate::ClaimById> {
        jobs::claim_by_id(&self.db, id, worker, lease_until).await
    }

    async fn waiting_jobs(&self, limit: i64) -> Result<Vec<(Id, DateTime<Utc>)>> {
        jobs::waiting(&self.db, limit).await
    }

    async fn renew_job_lease(&self, id: Id, worker: &str, lease_until: DateTime<Utc>) -> Result<Option<bool>> {
        jobs::renew_lease(&self.db, id, worker, lease_until).await
    }

    async fn finish_job(
        &self,
        id: Id,
        worker: &str,
        outcome: &JobOutcome,
        events: &[(&str, serde_json::Value)],
    ) -> Result<bool> {
        jobs::finish(&self.db, id, worker, outcome, events).await
    }

    async fn retry_job(&self, id: Id, worker: &str, run_after: DateTime<Utc>, error: &str) -> Result<bool> {
        jobs::retry(&self.db, id, worker, run_after, error).await
    }

    async fn job_wakeups(&self) -> Result<Option<futures::stream::BoxStream<'static, ()>>> {
        self.db.job_wakeups().await
    }

    async fn append_job_event(&self, job: Id, kind: &str, payload: &serde_json::Value, durable: bool) -> Result<i64> {
        jobs::append_event(&self.db, job, kind, payload, durable).await
    }

    async fn job_events(&self, owner: Id, job: Id, after_seq: i64) -> Result<Option<Vec<JobEvent>>> {
        jobs::events(&self.db, owner, job, after_seq).await
    }

    async fn worker_heartbeat(&self, worker: &str, running: i64) -> Result<()> {
        jobs::heartbeat(&self.db, worker, running).await
    }

    async fn remove_worker(&self, worker: &str) -> Result<()> {
        jobs::remove_worker(&self.db, worker).await
    }

    async fn queue_stats(&self, alive_since: DateTime<Utc>) -> Result<QueueStats> {
        jobs::stats(&self.db, alive_since).await
    }

    async fn add_job_totals(&self, finished: &JobTotals) -> Result<()> {
        jobs::add_totals(&self.db, finished).await
    }

    async fn delete_finished_jobs(&self, created_before: DateTime<Utc>, limit: i64) -> Result<u64> {
        jobs::delete_finished(&self.db, created_before, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(contains_pattern("MiXeD"), "%mixed%");
    }

    #[test]
    fn a_page_knows_there_is_more_only_from_the_extra_row() {
        let at = switchboard_domain::now();
        let ids: Vec<Id> = (0..3).map(|_| switchboard_domain::new_id()).collect();
        let key = |id: &Id| Cursor { at, id: *id };
        let page = paginate(ids.clone(), 2, key);
        assert_eq!(page.items, ids[..2]);
        assert_eq!(page.next_cursor, Some(Cursor { at, id: ids[1] }.encode()));
        assert_eq!(paginate(ids[..2].to_vec(), 2, key).next_cursor, None);
    }
}
