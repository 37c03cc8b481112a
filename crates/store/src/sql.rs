//! The SQL that SQLite and PostgreSQL share, written once.
//!
//! Both backends accept `$n` placeholders, `ON CONFLICT … DO UPDATE`, `RETURNING` and row-value
//! comparisons, and sqlx encodes `Uuid`, `DateTime<Utc>` and JSON for both. So the queries are
//! identical and only the pool type differs; [`impl_sql_store!`](crate::impl_sql_store)
//! instantiates the [`Store`](crate::Store) implementation for a backend's pool. Anything that
//! is not portable (locking, notifications) belongs in the backend crate itself.
//!
//! Every write transaction starts with a write statement, so SQLite takes its write lock at once
//! (and waits on `busy_timeout`) instead of failing to upgrade a read lock under contention.

pub use sqlx;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use switchboard_domain::{Conversation, Id, Message, Role, User};

#[derive(sqlx::FromRow)]
pub struct UserRow {
    pub id: Id,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> User {
        User { id: r.id, issuer: r.issuer, subject: r.subject, email: r.email, name: r.name, created_at: r.created_at }
    }
}

#[derive(sqlx::FromRow)]
pub struct ConversationRow {
    pub id: Id,
    pub title: String,
    pub status: String,
    pub context: Json<serde_json::Value>,
    pub message_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ConversationRow> for Conversation {
    fn from(r: ConversationRow) -> Conversation {
        Conversation {
            id: r.id,
            title: r.title,
            status: r.status,
            context: r.context.0,
            message_count: r.message_count,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct MessageRow {
    pub id: Id,
    pub conversation_id: Id,
    pub role: String,
    pub content: String,
    pub metadata: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl MessageRow {
    pub fn into_message(self) -> Result<Message, sqlx::Error> {
        let role = Role::parse(&self.role)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown message role {:?}", self.role).into()))?;
        Ok(Message {
            id: self.id,
            conversation_id: self.conversation_id,
            role,
            content: self.content,
            metadata: self.metadata.0,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct TaskRow {
    pub id: Id,
    pub number: i64,
    pub title: String,
    pub description: Option<String>,
    pub status: String,
    pub priority: String,
    pub due_date: Option<chrono::NaiveDate>,
    pub parent_id: Option<Id>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl TaskRow {
    pub fn into_task(self) -> Result<switchboard_domain::Task, sqlx::Error> {
        let bad = |what: &str, v: &str| sqlx::Error::Decode(format!("unknown task {what} {v:?}").into());
        Ok(switchboard_domain::Task {
            id: self.id,
            number: self.number,
            status: switchboard_domain::TaskStatus::parse(&self.status).ok_or_else(|| bad("status", &self.status))?,
            priority: switchboard_domain::Priority::parse(&self.priority)
                .ok_or_else(|| bad("priority", &self.priority))?,
            title: self.title,
            description: self.description,
            due_date: self.due_date,
            parent_id: self.parent_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            completed_at: self.completed_at,
        })
    }
}

pub const TASK_COLUMNS: &str =
    "id, number, title, description, status, priority, due_date, parent_id, created_at, updated_at, completed_at";

/// `LIKE` pattern matching `text` anywhere, with `%`, `_` and `\` taken literally.
pub fn contains_pattern(text: &str) -> String {
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

#[derive(sqlx::FromRow)]
pub struct CredentialRow {
    pub user_id: Id,
    pub server: String,
    pub key: String,
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub key_version: i64,
    pub updated_at: DateTime<Utc>,
}

impl From<CredentialRow> for switchboard_domain::SealedCredential {
    fn from(r: CredentialRow) -> Self {
        switchboard_domain::SealedCredential {
            server: r.server,
            key: r.key,
            ciphertext: r.ciphertext,
            nonce: r.nonce,
            key_version: r.key_version,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct AgentRow {
    pub id: Id,
    pub name: String,
    pub description: String,
    pub servers: Json<Vec<String>>,
    pub system_prompt: String,
    pub steps: Json<Vec<String>>,
    pub conversation_id: Option<Id>,
    pub created_at: DateTime<Utc>,
}

impl From<AgentRow> for switchboard_domain::Agent {
    fn from(r: AgentRow) -> Self {
        switchboard_domain::Agent {
            id: r.id,
            name: r.name,
            description: r.description,
            servers: r.servers.0,
            system_prompt: r.system_prompt,
            steps: r.steps.0,
            conversation_id: r.conversation_id,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct JobRow {
    pub id: Id,
    pub user_id: Id,
    pub kind: String,
    pub input: Json<serde_json::Value>,
    pub status: String,
    pub result: Option<Json<serde_json::Value>>,
    pub error: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub attempts: i32,
    pub max_attempts: i32,
    pub cancel_requested: bool,
    pub worker: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl JobRow {
    pub fn into_job(self) -> Result<switchboard_domain::Job, sqlx::Error> {
        let status = switchboard_domain::JobStatus::parse(&self.status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown job status {:?}", self.status).into()))?;
        Ok(switchboard_domain::Job {
            id: self.id,
            user_id: self.user_id,
            kind: self.kind,
            input: self.input.0,
            status,
            result: self.result.map(|r| r.0),
            error: self.error,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            total_tokens: self.total_tokens,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            cancel_requested: self.cancel_requested,
            worker: self.worker,
            created_at: self.created_at,
            started_at: self.started_at,
            completed_at: self.completed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub struct JobEventRow {
    pub seq: i64,
    pub kind: String,
    pub payload: Json<serde_json::Value>,
    pub at: DateTime<Utc>,
}

pub const JOB_COLUMNS: &str = "id, user_id, kind, input, status, result, error, input_tokens, output_tokens, \
    total_tokens, attempts, max_attempts, cancel_requested, worker, created_at, started_at, completed_at";

pub const CREDENTIAL_COLUMNS: &str = "user_id, server, key, ciphertext, nonce, key_version, updated_at";
pub const AGENT_COLUMNS: &str = "id, name, description, servers, system_prompt, steps, conversation_id, created_at";
pub const USER_COLUMNS: &str = "id, issuer, subject, email, name, created_at";
pub const CONVERSATION_COLUMNS: &str = "id, title, status, context, message_count, created_at, updated_at";
pub const MESSAGE_COLUMNS: &str = "id, conversation_id, role, content, metadata, created_at";

/// The cursor's sort key and id as two nullable query parameters.
pub fn keyset(page: &switchboard_domain::PageRequest) -> (Option<DateTime<Utc>>, Option<Id>) {
    match page.cursor {
        Some(c) => (Some(c.at), Some(c.id)),
        None => (None, None),
    }
}

/// A newest-first keyset page of the owner's rows of `table`, sorted by `sort` then id. Binds:
/// `$1` owner, `$2`/`$3` the cursor's sort key and id, `$4` limit, `$5` offset (see
/// [`fetch_owner_page!`](crate::fetch_owner_page)).
pub fn owner_page_sql(table: &str, columns: &str, sort: &str) -> String {
    format!(
        "SELECT {columns} FROM {table} WHERE user_id = $1 AND ($2 IS NULL OR ({sort}, id) < ($2, $3)) \
         ORDER BY {sort} DESC, id DESC LIMIT $4 OFFSET $5"
    )
}

/// Runs an [`owner_page_sql`] query: rows of type `$row`, one more than the page asks for.
#[doc(hidden)]
#[macro_export]
macro_rules! fetch_owner_page {
    ($self:ident, $row:ty, $sql:expr, $owner:expr, $page:expr) => {{
        let (before, before_id) = $crate::sql::keyset(&$page);
        let rows: Vec<$row> = $crate::sql::sqlx::query_as(&$sql)
            .bind($owner)
            .bind(before)
            .bind(before_id)
            .bind(i64::from($page.limit) + 1)
            .bind($page.offset as i64)
            .fetch_all(&$self.pool)
            .await?;
        rows
    }};
}

/// Turns `limit + 1` fetched rows into a page, using the extra row only to know a next page exists.
pub fn paginate<T>(
    mut rows: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> switchboard_domain::Cursor,
) -> switchboard_domain::Page<T> {
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if has_more { rows.last().map(|r| key(r).encode()) } else { None };
    switchboard_domain::Page { items: rows, next_cursor }
}

/// Implements [`Store`](crate::Store) for `$store`, a struct with two `sqlx::Pool<$db>` fields:
/// `pool` for reads and `writer` for writes (the same pool on PostgreSQL; on SQLite a single
/// connection, so writers queue in-process instead of sleeping in SQLite's busy handler).
/// `$skip_locked` ends the job-claim subquery (`FOR UPDATE SKIP LOCKED` on PostgreSQL; empty on
/// SQLite, whose single writer already takes claims one at a time). The backend provides two
/// inherent methods: `jobs_enqueued()` (tell other processes) and `listen_for_jobs()`.
#[macro_export]
macro_rules! impl_sql_store {
    ($store:ty, $db:ty, $backend:literal, $skip_locked:literal) => {
        #[$crate::sql::async_trait_reexport::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> $crate::Result<()> {
                $crate::sql::sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
                self.writer.close().await;
            }

            async fn upsert_user(&self, who: $crate::Identity<'_>) -> $crate::Result<::switchboard_domain::User> {
                let now = ::switchboard_domain::now();
                let sql = format!(
                    "INSERT INTO users (id, issuer, subject, email, name, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) \
                     ON CONFLICT (issuer, subject) DO UPDATE SET \
                       email = COALESCE(excluded.email, users.email), \
                       name = COALESCE(excluded.name, users.name), \
                       updated_at = excluded.updated_at \
                     RETURNING {}",
                    $crate::sql::USER_COLUMNS
                );
                let row: $crate::sql::UserRow = $crate::sql::sqlx::query_as(&sql)
                    .bind(::switchboard_domain::new_id())
                    .bind(who.issuer)
                    .bind(who.subject)
                    .bind(who.email)
                    .bind(who.name)
                    .bind(now)
                    .fetch_one(&self.writer)
                    .await?;
                Ok(row.into())
            }

            async fn list_users(
                &self,
                page: ::switchboard_domain::PageRequest,
            ) -> $crate::Result<::switchboard_domain::Page<::switchboard_domain::User>> {
                let (after, after_id) = $crate::sql::keyset(&page);
                let sql = format!(
                    "SELECT {} FROM users \
                     WHERE ($1 IS NULL OR (created_at, id) > ($1, $2)) \
                     ORDER BY created_at, id LIMIT $3 OFFSET $4",
                    $crate::sql::USER_COLUMNS
                );
                let rows: Vec<$crate::sql::UserRow> = $crate::sql::sqlx::query_as(&sql)
                    .bind(after)
                    .bind(after_id)
                    .bind(i64::from(page.limit) + 1)
                    .bind(page.offset as i64)
                    .fetch_all(&self.pool)
                    .await?;
                let users = rows.into_iter().map(::switchboard_domain::User::from).collect();
                Ok($crate::sql::paginate(users, page.limit, |u: &::switchboard_domain::User| {
                    ::switchboard_domain::Cursor { at: u.created_at, id: u.id }
                }))
            }

            async fn list_conversations(
                &self,
                owner: ::switchboard_domain::Id,
                page: ::switchboard_domain::PageRequest,
            ) -> $crate::Result<::switchboard_domain::Page<::switchboard_domain::Conversation>> {
                let sql = $crate::sql::owner_page_sql("conversations", $crate::sql::CONVERSATION_COLUMNS, "updated_at");
                let rows = $crate::fetch_owner_page!(self, $crate::sql::ConversationRow, sql, owner, page);
                let items = rows.into_iter().map(::switchboard_domain::Conversation::from).collect();
                Ok($crate::sql::paginate(items, page.limit, |c: &::switchboard_domain::Conversation| {
                    ::switchboard_domain::Cursor { at: c.updated_at, id: c.id }
                }))
            }

            async fn get_conversation(
                &self,
                owner: ::switchboard_domain::Id,
                id: ::switchboard_domain::Id,
            ) -> $crate::Result<Option<::switchboard_domain::Conversation>> {
                let sql = format!(
                    "SELECT {} FROM conversations WHERE user_id = $1 AND id = $2",
                    $crate::sql::CONVERSATION_COLUMNS
                );
                let row: Option<$crate::sql::ConversationRow> =
                    $crate::sql::sqlx::query_as(&sql).bind(owner).bind(id).fetch_optional(&self.pool).await?;
                Ok(row.map(Into::into))
            }

            async fn set_conversation_context(
                &self,
                owner: ::switchboard_domain::Id,
                id: ::switchboard_domain::Id,
                context: &::serde_json::Value,
            ) -> $crate::Result<bool> {
                let changed = $crate::sql::sqlx::query("UPDATE conversations SET context = $1 WHERE user_id = $2 AND id = $3")
                    .bind($crate::sql::sqlx::types::Json(context))
                    .bind(owner)
                    .bind(id)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                Ok(changed > 0)
            }

            async fn count_conversations(&self, owner: ::switchboard_domain::Id) -> $crate::Result<i64> {
                let (count,): (i64,) = $crate::sql::sqlx::query_as("SELECT COUNT(*) FROM conversations WHERE user_id = $1")
                    .bind(owner)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(count)
            }

            async fn delete_conversation(
                &self,
                owner: ::switchboard_domain::Id,
                id: ::switchboard_domain::Id,
            ) -> $crate::Result<bool> {
                let mut tx = self.writer.begin().await?;
                let deleted = $crate::sql::sqlx::query("DELETE FROM conversations WHERE user_id = $1 AND id = $2")
                    .bind(owner)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                $crate::sql::sqlx::query("DELETE FROM messages WHERE user_id = $1 AND conversation_id = $2")
                    .bind(owner)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(deleted > 0)
            }

            async fn list_messages(
                &self,
                owner: ::switchboard_domain::Id,
                conversation: ::switchboard_domain::Id,
                page: ::switchboard_domain::PageRequest,
            ) -> $crate::Result<Option<::switchboard_domain::Page<::switchboard_domain::Message>>> {
                let exists: Option<(::switchboard_domain::Id,)> =
                    $crate::sql::sqlx::query_as("SELECT id FROM conversations WHERE user_id = $1 AND id = $2")
                        .bind(owner)
                        .bind(conversation)
                        .fetch_optional(&self.pool)
                        .await?;
                if exists.is_none() {
                    return Ok(None);
                }
                let (after, after_id) = $crate::sql::keyset(&page);
                let sql = format!(
                    "SELECT {} FROM messages \
                     WHERE user_id = $1 AND conversation_id = $2 AND ($3 IS NULL OR (created_at, id) > ($3, $4)) \
                     ORDER BY created_at, id LIMIT $5 OFFSET $6",
                    $crate::sql::MESSAGE_COLUMNS
                );
                let rows: Vec<$crate::sql::MessageRow> = $crate::sql::sqlx::query_as(&sql)
                    .bind(owner)
                    .bind(conversation)
                    .bind(after)
                    .bind(after_id)
                    .bind(i64::from(page.limit) + 1)
                    .bind(page.offset as i64)
                    .fetch_all(&self.pool)
                    .await?;
                let items = rows.into_iter().map(|r| r.into_message()).collect::<::std::result::Result<Vec<_>, _>>()?;
                Ok(Some($crate::sql::paginate(items, page.limit, |m: &::switchboard_domain::Message| {
                    ::switchboard_domain::Cursor { at: m.created_at, id: m.id }
                })))
            }

            async fn recent_messages(
                &self,
                owner: ::switchboard_domain::Id,
                conversation: ::switchboard_domain::Id,
                n: u32,
            ) -> $crate::Result<Vec<::switchboard_domain::Message>> {
                let sql = format!(
                    "SELECT {} FROM messages WHERE user_id = $1 AND conversation_id = $2 \
                     ORDER BY created_at DESC, id DESC LIMIT $3",
                    $crate::sql::MESSAGE_COLUMNS
                );
                let rows: Vec<$crate::sql::MessageRow> = $crate::sql::sqlx::query_as(&sql)
                    .bind(owner)
                    .bind(conversation)
                    .bind(i64::from(n))
                    .fetch_all(&self.pool)
                    .await?;
                let mut items = rows.into_iter().map(|r| r.into_message()).collect::<::std::result::Result<Vec<_>, _>>()?;
                items.reverse();
                Ok(items)
            }

            async fn start_turn(
                &self,
                owner: ::switchboard_domain::Id,
                turn: $crate::StartTurn,
            ) -> $crate::Result<Option<$crate::Started>> {
                let now = ::switchboard_domain::now();
                let mut tx = self.writer.begin().await?;
                let conversation_id = match turn.conversation_id {
                    Some(id) => id,
                    None => {
                        let id = ::switchboard_domain::new_id();
                        $crate::sql::sqlx::query(
                            "INSERT INTO conversations (id, user_id, title, status, context, message_count, created_at, updated_at) \
                             VALUES ($1, $2, $3, 'active', $4, 0, $5, $5)",
                        )
                        .bind(id)
                        .bind(owner)
                        .bind(&turn.title)
                        .bind($crate::sql::sqlx::types::Json(::serde_json::json!({})))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        id
                    }
                };
                let message = match $crate::sql::insert_message!(tx, owner, conversation_id, turn.message, now) {
                    Some(m) => m,
                    None => return Ok(None),
                };
                let sql = format!(
                    "SELECT {} FROM conversations WHERE user_id = $1 AND id = $2",
                    $crate::sql::CONVERSATION_COLUMNS
                );
                let conversation: $crate::sql::ConversationRow = $crate::sql::sqlx::query_as(&sql)
                    .bind(owner)
                    .bind(conversation_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let job = match turn.job {
                    None => None,
                    Some(job) => {
                        let mut input = job.input;
                        input["conversation_id"] = ::serde_json::json!(conversation_id);
                        input["user_message_id"] = ::serde_json::json!(message.id);
                        let id = ::switchboard_domain::new_id();
                        let sql = format!(
                            "INSERT INTO jobs (id, user_id, kind, input, status, max_attempts, run_after, created_at) \
                             VALUES ($1, $2, $3, $4, 'queued', $5, $6, $6) RETURNING {}",
                            $crate::sql::JOB_COLUMNS
                        );
                        let row: $crate::sql::JobRow = $crate::sql::sqlx::query_as(&sql)
                            .bind(id)
                            .bind(owner)
                            .bind(&job.kind)
                            .bind($crate::sql::sqlx::types::Json(&input))
                            .bind(job.max_attempts)
                            .bind(now)
                            .fetch_one(&mut *tx)
                            .await?;
                        $crate::sql::sqlx::query(
                            "INSERT INTO job_events (job_id, seq, kind, payload, at) VALUES ($1, 1, 'status', $2, $3)",
                        )
                        .bind(id)
                        .bind($crate::sql::sqlx::types::Json(::serde_json::json!({"status": "queued"})))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        Some(row.into_job()?)
                    }
                };
                tx.commit().await?;
                if job.is_some() {
                    self.jobs_enqueued().await;
                }
                Ok(Some($crate::Started { conversation: conversation.into(), message, job }))
            }

            async fn job_reply(
                &self,
                owner: ::switchboard_domain::Id,
                conversation: ::switchboard_domain::Id,
                job: ::switchboard_domain::Id,
            ) -> $crate::Result<Option<::switchboard_domain::Message>> {
                let sql = format!(
                    "SELECT {} FROM messages WHERE user_id = $1 AND conversation_id = $2 AND role = 'assistant' \
                     AND (metadata ->> 'job_id') = $3",
                    $crate::sql::MESSAGE_COLUMNS
                );
                let row: Option<$crate::sql::MessageRow> = $crate::sql::sqlx::query_as(&sql)
                    .bind(owner)
                    .bind(conversation)
                    .bind(job.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.into_message()).transpose()?)
            }

            async fn append_message(
                &self,
                owner: ::switchboard_domain::Id,
                conversation: ::switchboard_domain::Id,
                message: ::switchboard_domain::NewMessage,
            ) -> $crate::Result<Option<::switchboard_domain::Message>> {
                let now = ::switchboard_domain::now();
                let mut tx = self.writer.begin().await?;
                let message = $crate::sql::insert_message!(tx, owner, conversation, message, now);
                if message.is_some() {
                    tx.commit().await?;
                }
                Ok(message)
            }

            async fn create_task(
                &self,
                owner: ::switchboard_domain::Id,
                task: ::switchboard_domain::NewTask,
            ) -> $crate::Result<Option<::switchboard_domain::Task>> {
                let now = ::switchboard_domain::now();
                let mut tx = self.writer.begin().await?;
                let (number,): (i64,) = $crate::sql::sqlx::query_as(
                    "INSERT INTO task_counters (user_id, last_number) VALUES ($1, 1) \
                     ON CONFLICT (user_id) DO UPDATE SET last_number = task_counters.last_number + 1 \
                     RETURNING last_number",
                )
                .bind(owner)
                .fetch_one(&mut *tx)
                .await?;
                if let Some(parent) = task.parent_id {
                    let found: Option<(::switchboard_domain::Id,)> =
                        $crate::sql::sqlx::query_as("SELECT id FROM tasks WHERE user_id = $1 AND id = $2")
                            .bind(owner)
                            .bind(parent)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if found.is_none() {
                        return Ok(None);
                    }
                }
                let sql = format!(
                    "INSERT INTO tasks (id, user_id, number, title, description, status, priority, due_date, parent_id, \
                       created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $9) RETURNING {}",
                    $crate::sql::TASK_COLUMNS
                );
                let row: $crate::sql::TaskRow = $crate::sql::sqlx::query_as(&sql)
                    .bind(::switchboard_domain::new_id())
                    .bind(owner)
                    .bind(number)
                    .bind(&task.title)
                    .bind(&task.description)
                    .bind(task.priority.as_str())
                    .bind(task.due_date)
                    .bind(task.parent_id)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(row.into_task()?))
            }

            async fn get_task(
                &self,
                owner: ::switchboard_domain::Id,
                task: ::switchboard_domain::TaskRef,
            ) -> $crate::Result<Option<::switchboard_domain::Task>> {
                let (id, number) = task.columns();
                let sql = format!(
                    "SELECT {} FROM tasks WHERE user_id = $1 AND ($2 IS NULL OR id = $2) AND ($3 IS NULL OR number = $3)",
                    $crate::sql::TASK_COLUMNS
                );
                let row: Option<$crate::sql::TaskRow> =
                    $crate::sql::sqlx::query_as(&sql).bind(owner).bind(id).bind(number).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| r.into_task()).transpose()?)
            }

            async fn list_tasks(
                &self,
                owner: ::switchboard_domain::Id,
                filter: &::switchboard_domain::TaskFilter,
                page: ::switchboard_domain::PageRequest,
            ) -> $crate::Result<::switchboard_domain::Page<::switchboard_domain::Task>> {
                let (after, after_id) = $crate::sql::keyset(&page);
                let sql = format!(
                    "SELECT {} FROM tasks WHERE user_id = $1 \
                       AND ($2 IS NULL OR status = $2) \
                       AND ($3 IS NULL OR LOWER(title) LIKE $3 ESCAPE '\\' OR LOWER(COALESCE(description, '')) LIKE $3 ESCAPE '\\') \
                       AND ($4 IS NULL OR (created_at, id) > ($4, $5)) \
                     ORDER BY created_at, id LIMIT $6 OFFSET $7",
                    $crate::sql::TASK_COLUMNS
                );
                let rows: Vec<$crate::sql::TaskRow> = $crate::sql::sqlx::query_as(&sql)
                    .bind(owner)
                    .bind(filter.status.map(|s| s.as_str()))
                    .bind(filter.search.as_deref().map($crate::sql::contains_pattern))
                    .bind(after)
                    .bind(after_id)
                    .bind(i64::from(page.limit) + 1)
                    .bind(page.offset as i64)
                    .fetch_all(&self.pool)
                    .await?;
                let items = rows.into_iter().map(|r| r.into_task()).collect::<::std::result::Result<Vec<_>, _>>()?;
                Ok($crate::sql::paginate(items, page.limit, |t: &::switchboard_domain::Task| {
                    ::switchboard_domain::Cursor { at: t.created_at, id: t.id }
                }))
            }

            async fn update_task(
                &self,
                owner: ::switchboard_domain::Id,
                task: ::switchboard_domain::TaskRef,
                changes: ::switchboard_domain::TaskChanges,
            ) -> $crate::Result<Option<::switchboard_domain::Task>> {
                let (id, number) = task.columns();
                let now = ::switchboard_domain::now();
                let completed = changes.status.map(|s| s == ::switchboard_domain::TaskStatus::Completed);
                let sql = format!(
                    "UPDATE tasks SET \
                       title = COALESCE($4, title), \
                       description = CASE WHEN $5 THEN $6 ELSE description END, \
                       status = COALESCE($7, status), \
                       priority = COALESCE($8, priority), \
                       due_date = CASE WHEN $9 THEN $10 ELSE due_date END, \
                       completed_at = CASE WHEN $11 IS NULL THEN completed_at WHEN $11 THEN COALESCE(completed_at, $12) ELSE NULL END, \
                       updated_at = $12 \
                     WHERE user_id = $1 AND ($2 IS NULL OR id = $2) AND ($3 IS NULL OR number = $3) \
                     RETURNING {}",
                    $crate::sql::TASK_COLUMNS
                );
                let row: Option<$crate::sql::TaskRow> = $crate::sql::sqlx::query_as(&sql)
                    .bind(owner)
                    .bind(id)
                    .bind(number)
                    .bind(changes.title)
                    .bind(changes.description.is_some())
                    .bind(changes.description.flatten())
                    .bind(changes.status.map(|s| s.as_str()))
                    .bind(changes.priority.map(|p| p.as_str()))
                    .bind(changes.due_date.is_some())
                    .bind(changes.due_date.flatten())
                    .bind(completed)
                    .bind(now)
                    .fetch_optional(&self.writer)
                    .await?;
                Ok(row.map(|r| r.into_task()).transpose()?)
            }

            async fn delete_task(
                &self,
                owner: ::switchboard_domain::Id,
                task: ::switchboard_domain::TaskRef,
            ) -> $crate::Result<bool> {
                let (id, number) = task.columns();
                let deleted = $crate::sql::sqlx::query(
                    "DELETE FROM tasks WHERE user_id = $1 AND ($2 IS NULL OR id = $2) AND ($3 IS NULL OR number = $3)",
                )
                .bind(owner)
                .bind(id)
                .bind(number)
                .execute(&self.writer)
                .await?
                .rows_affected();
                Ok(deleted > 0)
            }

            async fn revoke_token(&self, jti: &str, expires_at: ::chrono::DateTime<::chrono::Utc>) -> $crate::Result<()> {
                let mut tx = self.writer.begin().await?;
                $crate::sql::sqlx::query(
                    "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                $crate::sql::sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
                    .bind(::switchboard_domain::now())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn revoked_tokens(&self) -> $crate::Result<Vec<String>> {
                let rows: Vec<(String,)> = $crate::sql::sqlx::query_as("SELECT jti FROM revoked_tokens WHERE expires_at >= $1")
                    .bind(::switchboard_domain::now())
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(|(jti,)| jti).collect())
            }

            async fn catalog_entries(&self) -> $crate::Result<Vec<$crate::CatalogRecord>> {
                let rows: Vec<$crate::CatalogRecord> = $crate::sql::sqlx::query_as(
                    "SELECT name, slug, data, content_hash, embedding_model, embedding, updated_at \
                     FROM catalog_entries ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows)
            }

            async fn catalog_entry_data(&self, name: &str) -> $crate::Result<Option<String>> {
                let row: Option<(String,)> = $crate::sql::sqlx::query_as("SELECT data FROM catalog_entries WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(data,)| data))
            }

            async fn upsert_catalog_entries(&self, records: &[$crate::CatalogRecord]) -> $crate::Result<()> {
                let mut tx = self.writer.begin().await?;
                for r in records {
                    // A changed entry drops its embedding (it describes the old text); an
                    // unchanged one keeps it.
                    $crate::sql::sqlx::query(
                        "INSERT INTO catalog_entries (name, slug, data, content_hash, embedding_model, embedding, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (name) DO UPDATE SET slug = excluded.slug, data = excluded.data, \
                           embedding_model = CASE WHEN catalog_entries.content_hash = excluded.content_hash \
                             THEN COALESCE(excluded.embedding_model, catalog_entries.embedding_model) ELSE excluded.embedding_model END, \
                           embedding = CASE WHEN catalog_entries.content_hash = excluded.content_hash \
                             THEN COALESCE(excluded.embedding, catalog_entries.embedding) ELSE excluded.embedding END, \
                           content_hash = excluded.content_hash, updated_at = excluded.updated_at",
                    )
                    .bind(&r.name)
                    .bind(&r.slug)
                    .bind(&r.data)
                    .bind(&r.content_hash)
                    .bind(&r.embedding_model)
                    .bind(&r.embedding)
                    .bind(r.updated_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn set_catalog_embeddings(&self, model: &str, items: &[(String, String, Vec<u8>)]) -> $crate::Result<()> {
                let mut tx = self.writer.begin().await?;
                for (name, hash, bytes) in items {
                    $crate::sql::sqlx::query(
                        "UPDATE catalog_entries SET embedding_model = $1, embedding = $2 WHERE name = $3 AND content_hash = $4",
                    )
                    .bind(model)
                    .bind(bytes)
                    .bind(name)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn delete_catalog_entry(&self, slug: &str) -> $crate::Result<bool> {
                let deleted = $crate::sql::sqlx::query("DELETE FROM catalog_entries WHERE slug = $1")
                    .bind(slug)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                Ok(deleted > 0)
            }

            async fn put_credentials(
                &self,
                owner: ::switchboard_domain::Id,
                items: &[::switchboard_domain::SealedCredential],
            ) -> $crate::Result<()> {
                let mut tx = self.writer.begin().await?;
                for c in items {
                    $crate::sql::sqlx::query(
                        "INSERT INTO credentials (user_id, server, key, ciphertext, nonce, key_version, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                         ON CONFLICT (user_id, server, key) DO UPDATE SET ciphertext = excluded.ciphertext, \
                           nonce = excluded.nonce, key_version = excluded.key_version, updated_at = excluded.updated_at",
                    )
                    .bind(owner)
                    .bind(&c.server)
                    .bind(&c.key)
                    .bind(&c.ciphertext)
                    .bind(&c.nonce)
                    .bind(c.key_version)
                    .bind(c.updated_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn credentials(
                &self,
                owner: ::switchboard_domain::Id,
                server: Option<&str>,
            ) -> $crate::Result<Vec<::switchboard_domain::SealedCredential>> {
                let sql = format!(
                    "SELECT {} FROM credentials WHERE user_id = $1 AND ($2 IS NULL OR server = $2) ORDER BY server, key",
                    $crate::sql::CREDENTIAL_COLUMNS
                );
                let rows: Vec<$crate::sql::CredentialRow> =
                    $crate::sql::sqlx::query_as(&sql).bind(owner).bind(server).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn delete_credentials(
                &self,
                owner: ::switchboard_domain::Id,
                server: &str,
                key: Option<&str>,
            ) -> $crate::Result<u64> {
                let deleted = $crate::sql::sqlx::query(
                    "DELETE FROM credentials WHERE user_id = $1 AND server = $2 AND ($3 IS NULL OR key = $3)",
                )
                .bind(owner)
                .bind(server)
                .bind(key)
                .execute(&self.writer)
                .await?
                .rows_affected();
                Ok(deleted)
            }

            async fn all_credentials(
                &self,
            ) -> $crate::Result<Vec<(::switchboard_domain::Id, ::switchboard_domain::SealedCredential)>> {
                let sql = format!("SELECT {} FROM credentials ORDER BY user_id, server, key", $crate::sql::CREDENTIAL_COLUMNS);
                let rows: Vec<$crate::sql::CredentialRow> = $crate::sql::sqlx::query_as(&sql).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(|r| (r.user_id, r.into())).collect())
            }

            async fn reseal_credential(
                &self,
                owner: ::switchboard_domain::Id,
                old_ciphertext: &[u8],
                new: &::switchboard_domain::SealedCredential,
            ) -> $crate::Result<bool> {
                let changed = $crate::sql::sqlx::query(
                    "UPDATE credentials SET ciphertext = $1, nonce = $2, key_version = $3 \
                     WHERE user_id = $4 AND server = $5 AND key = $6 AND ciphertext = $7",
                )
                .bind(&new.ciphertext)
                .bind(&new.nonce)
                .bind(new.key_version)
                .bind(owner)
                .bind(&new.server)
                .bind(&new.key)
                .bind(old_ciphertext)
                .execute(&self.writer)
                .await?
                .rows_affected();
                Ok(changed > 0)
            }

            async fn create_agent(
                &self,
                owner: ::switchboard_domain::Id,
                agent: ::switchboard_domain::NewAgent,
            ) -> $crate::Result<::switchboard_domain::Agent> {
                let id = ::switchboard_domain::new_id();
                let now = ::switchboard_domain::now();
                $crate::sql::sqlx::query(
                    "INSERT INTO agents (id, user_id, name, description, servers, system_prompt, steps, conversation_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(id)
                .bind(owner)
                .bind(&agent.name)
                .bind(&agent.description)
                .bind($crate::sql::sqlx::types::Json(&agent.servers))
                .bind(&agent.system_prompt)
                .bind($crate::sql::sqlx::types::Json(&agent.steps))
                .bind(agent.conversation_id)
                .bind(now)
                .execute(&self.writer)
                .await?;
                Ok(::switchboard_domain::Agent {
                    id,
                    name: agent.name,
                    description: agent.description,
                    servers: agent.servers,
                    system_prompt: agent.system_prompt,
                    steps: agent.steps,
                    conversation_id: agent.conversation_id,
                    created_at: now,
                })
            }

            async fn list_agents(
                &self,
                owner: ::switchboard_domain::Id,
                page: ::switchboard_domain::PageRequest,
            ) -> $crate::Result<::switchboard_domain::Page<::switchboard_domain::Agent>> {
                let sql = $crate::sql::owner_page_sql("agents", $crate::sql::AGENT_COLUMNS, "created_at");
                let rows = $crate::fetch_owner_page!(self, $crate::sql::AgentRow, sql, owner, page);
                let items = rows.into_iter().map(::switchboard_domain::Agent::from).collect();
                Ok($crate::sql::paginate(items, page.limit, |a: &::switchboard_domain::Agent| {
                    ::switchboard_domain::Cursor { at: a.created_at, id: a.id }
                }))
            }

            async fn get_agent(
                &self,
                owner: ::switchboard_domain::Id,
                id: ::switchboard_domain::Id,
            ) -> $crate::Result<Option<::switchboard_domain::Agent>> {
                let sql = format!("SELECT {} FROM agents WHERE user_id = $1 AND id = $2", $crate::sql::AGENT_COLUMNS);
                let row: Option<$crate::sql::AgentRow> =
                    $crate::sql::sqlx::query_as(&sql).bind(owner).bind(id).fetch_optional(&self.pool).await?;
                Ok(row.map(Into::into))
            }

            async fn delete_agent(&self, owner: ::switchboard_domain::Id, id: ::switchboard_domain::Id) -> $crate::Result<bool> {
                let deleted = $crate::sql::sqlx::query("DELETE FROM agents WHERE user_id = $1 AND id = $2")
                    .bind(owner)
                    .bind(id)
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                Ok(deleted > 0)
            }

            async fn job_wakeups(&self) -> $crate::Result<Option<::futures::stream::BoxStream<'static, ()>>> {
                self.listen_for_jobs().await
            }

            async fn get_job(
                &self,
                owner: ::switchboard_domain::Id,
                id: ::switchboard_domain::Id,
            ) -> $crate::Result<Option<::switchboard_domain::Job>> {
                let sql = format!("SELECT {} FROM jobs WHERE user_id = $1 AND id = $2", $crate::sql::JOB_COLUMNS);
                let row: Option<$crate::sql::JobRow> =
                    $crate::sql::sqlx::query_as(&sql).bind(owner).bind(id).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| r.into_job()).transpose()?)
            }

            async fn list_jobs(
                &self,
                owner: ::switchboard_domain::Id,
                status: Option<::switchboard_domain::JobStatus>,
                page: ::switchboard_domain::PageRequest,
            ) -> $crate::Result<::switchboard_domain::Page<::switchboard_domain::Job>> {
                let (before, before_id) = $crate::sql::keyset(&page);
                let sql = format!(
                    "SELECT {} FROM jobs WHERE user_id = $1 AND ($2 IS NULL OR status = $2) \
                     AND ($3 IS NULL OR (created_at, id) < ($3, $4)) \
                     ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6",
                    $crate::sql::JOB_COLUMNS
                );
                let rows: Vec<$crate::sql::JobRow> = $crate::sql::sqlx::query_as(&sql)
                    .bind(owner)
                    .bind(status.map(|s| s.as_str()))
                    .bind(before)
                    .bind(before_id)
                    .bind(i64::from(page.limit) + 1)
                    .bind(page.offset as i64)
                    .fetch_all(&self.pool)
                    .await?;
                let items = rows.into_iter().map(|r| r.into_job()).collect::<::std::result::Result<Vec<_>, $crate::sql::sqlx::Error>>()?;
                Ok($crate::sql::paginate(items, page.limit, |j: &::switchboard_domain::Job| {
                    ::switchboard_domain::Cursor { at: j.created_at, id: j.id }
                }))
            }

            async fn cancel_job(
                &self,
                owner: ::switchboard_domain::Id,
                id: ::switchboard_domain::Id,
            ) -> $crate::Result<Option<::switchboard_domain::Job>> {
                let now = ::switchboard_domain::now();
                let mut tx = self.writer.begin().await?;
                $crate::sql::sqlx::query(
                    "UPDATE jobs SET status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, \
                       completed_at = CASE WHEN status = 'queued' THEN $1 ELSE completed_at END, \
                       cancel_requested = CASE WHEN status IN ('queued', 'running') THEN TRUE ELSE cancel_requested END \
                     WHERE user_id = $2 AND id = $3",
                )
                .bind(now)
                .bind(owner)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let sql = format!("SELECT {} FROM jobs WHERE user_id = $1 AND id = $2", $crate::sql::JOB_COLUMNS);
                let row: Option<$crate::sql::JobRow> =
                    $crate::sql::sqlx::query_as(&sql).bind(owner).bind(id).fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                Ok(row.map(|r| r.into_job()).transpose()?)
            }

            async fn claim_job(
                &self,
                worker: &str,
                lease_until: ::chrono::DateTime<::chrono::Utc>,
            ) -> $crate::Result<Option<::switchboard_domain::Job>> {
                let now = ::switchboard_domain::now();
                let sql = format!(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker = $1, lease_until = $2, \
                       started_at = COALESCE(started_at, $3) \
                     WHERE id = (SELECT id FROM jobs \
                       WHERE (status = 'queued' AND run_after <= $3) OR (status = 'running' AND lease_until < $3) \
                       ORDER BY run_after, id LIMIT 1 {}) \
                     RETURNING {}",
                    $skip_locked,
                    $crate::sql::JOB_COLUMNS
                );
                let row: Option<$crate::sql::JobRow> = $crate::sql::sqlx::query_as(&sql)
                    .bind(worker)
                    .bind(lease_until)
                    .bind(now)
                    .fetch_optional(&self.writer)
                    .await?;
                Ok(row.map(|r| r.into_job()).transpose()?)
            }

            async fn renew_job_lease(
                &self,
                id: ::switchboard_domain::Id,
                worker: &str,
                lease_until: ::chrono::DateTime<::chrono::Utc>,
            ) -> $crate::Result<Option<bool>> {
                let row: Option<(bool,)> = $crate::sql::sqlx::query_as(
                    "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND worker = $3 AND status = 'running' \
                     RETURNING cancel_requested",
                )
                .bind(lease_until)
                .bind(id)
                .bind(worker)
                .fetch_optional(&self.writer)
                .await?;
                Ok(row.map(|(c,)| c))
            }

            async fn finish_job(
                &self,
                id: ::switchboard_domain::Id,
                worker: &str,
                outcome: &::switchboard_domain::JobOutcome,
            ) -> $crate::Result<bool> {
                let changed = $crate::sql::sqlx::query(
                    "UPDATE jobs SET status = $1, result = $2, error = $3, input_tokens = input_tokens + $4, \
                       output_tokens = output_tokens + $5, total_tokens = total_tokens + $6, completed_at = $7, \
                       lease_until = NULL \
                     WHERE id = $8 AND worker = $9 AND status = 'running'",
                )
                .bind(outcome.status.as_str())
                .bind(outcome.result.as_ref().map($crate::sql::sqlx::types::Json))
                .bind(&outcome.error)
                .bind(outcome.input_tokens)
                .bind(outcome.output_tokens)
                .bind(outcome.total_tokens)
                .bind(::switchboard_domain::now())
                .bind(id)
                .bind(worker)
                .execute(&self.writer)
                .await?
                .rows_affected();
                Ok(changed > 0)
            }

            async fn retry_job(
                &self,
                id: ::switchboard_domain::Id,
                worker: &str,
                run_after: ::chrono::DateTime<::chrono::Utc>,
                error: &str,
            ) -> $crate::Result<bool> {
                let changed = $crate::sql::sqlx::query(
                    "UPDATE jobs SET status = 'queued', run_after = $1, error = $2, lease_until = NULL \
                     WHERE id = $3 AND worker = $4 AND status = 'running'",
                )
                .bind(run_after)
                .bind(error)
                .bind(id)
                .bind(worker)
                .execute(&self.writer)
                .await?
                .rows_affected();
                Ok(changed > 0)
            }

            async fn append_job_event(
                &self,
                job: ::switchboard_domain::Id,
                kind: &str,
                payload: &::serde_json::Value,
            ) -> $crate::Result<i64> {
                let (seq,): (i64,) = $crate::sql::sqlx::query_as(
                    "INSERT INTO job_events (job_id, seq, kind, payload, at) \
                     SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM job_events WHERE job_id = $1 \
                     RETURNING seq",
                )
                .bind(job)
                .bind(kind)
                .bind($crate::sql::sqlx::types::Json(payload))
                .bind(::switchboard_domain::now())
                .fetch_one(&self.writer)
                .await?;
                Ok(seq)
            }

            async fn job_events(
                &self,
                owner: ::switchboard_domain::Id,
                job: ::switchboard_domain::Id,
                after_seq: i64,
            ) -> $crate::Result<Option<Vec<::switchboard_domain::JobEvent>>> {
                let owned: Option<(::switchboard_domain::Id,)> =
                    $crate::sql::sqlx::query_as("SELECT id FROM jobs WHERE user_id = $1 AND id = $2")
                        .bind(owner)
                        .bind(job)
                        .fetch_optional(&self.pool)
                        .await?;
                if owned.is_none() {
                    return Ok(None);
                }
                let rows: Vec<$crate::sql::JobEventRow> = $crate::sql::sqlx::query_as(
                    "SELECT seq, kind, payload, at FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq",
                )
                .bind(job)
                .bind(after_seq)
                .fetch_all(&self.pool)
                .await?;
                Ok(Some(
                    rows.into_iter()
                        .map(|r| ::switchboard_domain::JobEvent { seq: r.seq, kind: r.kind, payload: r.payload.0, at: r.at })
                        .collect(),
                ))
            }

            async fn worker_heartbeat(&self, worker: &str, running: i64) -> $crate::Result<()> {
                let now = ::switchboard_domain::now();
                $crate::sql::sqlx::query(
                    "INSERT INTO workers (id, running, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
                     ON CONFLICT (id) DO UPDATE SET running = excluded.running, heartbeat_at = excluded.heartbeat_at",
                )
                .bind(worker)
                .bind(running)
                .bind(now)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn remove_worker(&self, worker: &str) -> $crate::Result<()> {
                $crate::sql::sqlx::query("DELETE FROM workers WHERE id = $1").bind(worker).execute(&self.writer).await?;
                Ok(())
            }

            async fn queue_stats(
                &self,
                alive_since: ::chrono::DateTime<::chrono::Utc>,
            ) -> $crate::Result<::switchboard_domain::QueueStats> {
                let mut stats = ::switchboard_domain::QueueStats::default();
                let counts: Vec<(String, i64)> =
                    $crate::sql::sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status")
                        .fetch_all(&self.pool)
                        .await?;
                for (status, n) in counts {
                    match status.as_str() {
                        "queued" => stats.queued = n,
                        "running" => stats.running = n,
                        "completed" => stats.completed = n,
                        "failed" => stats.failed = n,
                        "cancelled" => stats.cancelled = n,
                        _ => {}
                    }
                }
                let hour_ago = ::switchboard_domain::now() - ::chrono::Duration::hours(1);
                let (failed,): (i64,) = $crate::sql::sqlx::query_as(
                    "SELECT COUNT(*) FROM jobs WHERE status = 'failed' AND completed_at >= $1",
                )
                .bind(hour_ago)
                .fetch_one(&self.pool)
                .await?;
                stats.failed_last_hour = failed;
                let workers: Vec<(String, i64, ::chrono::DateTime<::chrono::Utc>, ::chrono::DateTime<::chrono::Utc>)> =
                    $crate::sql::sqlx::query_as(
                        "SELECT id, running, started_at, heartbeat_at FROM workers WHERE heartbeat_at >= $1 ORDER BY id",
                    )
                    .bind(alive_since)
                    .fetch_all(&self.pool)
                    .await?;
                stats.workers = workers
                    .into_iter()
                    .map(|(id, running, started_at, heartbeat_at)| ::switchboard_domain::WorkerInfo {
                        id,
                        running,
                        started_at,
                        heartbeat_at,
                    })
                    .collect();
                Ok(stats)
            }

            async fn catalog_revision(&self) -> $crate::Result<(i64, Option<::chrono::DateTime<::chrono::Utc>>)> {
                let row: (i64, Option<::chrono::DateTime<::chrono::Utc>>) =
                    $crate::sql::sqlx::query_as("SELECT COUNT(*), MAX(updated_at) FROM catalog_entries")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(row)
            }
        }
    };
}

/// Inside a transaction `$tx`: bumps the conversation (proving it is the owner's) and inserts
/// the message. Evaluates to `Some(Message)`, or `None` when the conversation is not the owner's.
#[doc(hidden)]
#[macro_export]
macro_rules! __insert_message {
    ($tx:ident, $owner:expr, $conversation:expr, $message:expr, $now:expr) => {{
        let bumped = $crate::sql::sqlx::query(
            "UPDATE conversations SET updated_at = $1, message_count = message_count + 1 \
             WHERE user_id = $2 AND id = $3",
        )
        .bind($now)
        .bind($owner)
        .bind($conversation)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if bumped == 0 {
            None
        } else {
            let msg = $message;
            let id = ::switchboard_domain::new_id();
            $crate::sql::sqlx::query(
                "INSERT INTO messages (id, conversation_id, user_id, role, content, metadata, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind($conversation)
            .bind($owner)
            .bind(msg.role.as_str())
            .bind(&msg.content)
            .bind($crate::sql::sqlx::types::Json(&msg.metadata))
            .bind($now)
            .execute(&mut *$tx)
            .await?;
            Some(::switchboard_domain::Message {
                id,
                conversation_id: $conversation,
                role: msg.role,
                content: msg.content,
                metadata: msg.metadata,
                created_at: $now,
            })
        }
    }};
}

pub use crate::__insert_message as insert_message;

#[doc(hidden)]
pub mod async_trait_reexport {
    pub use async_trait::async_trait;
}
