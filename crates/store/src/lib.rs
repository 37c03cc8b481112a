//! Persistence behind traits. Every method on an owner-scoped table takes the owner's id and
//! enforces it in the query itself: "not yours" and "does not exist" are the same `None`.
//!
//! The SQL is written once, in [`SqlStore`], over the small driver interface of [`db`]; the
//! backends (`switchboard-store-sqlite`, `switchboard-store-postgres`) implement that interface
//! and keep their own migrations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use switchboard_domain::{
    Agent, Connection, Conversation, Id, Job, JobEvent, JobOutcome, JobStatus, JobTotals, Message, NewAgent, NewJob,
    NewMessage, NewTask, OAuthFlow, Page, PageRequest, QueueStats, RegisteredClient, SealedCredential, Task,
    TaskChanges, TaskFilter, TaskRef, User,
};

pub mod db;
mod sql;

pub use sql::SqlStore;

/// The error of a database driver, kept as the cause of a [`StoreError`].
pub type DriverError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached (down, restarting, locked, pool exhausted).
    #[error("database unavailable")]
    Unavailable(#[source] DriverError),
    /// Migrations could not be applied.
    #[error("database migration failed")]
    Migration(#[source] DriverError),
    /// Any other database error.
    #[error("database error")]
    Database(#[source] DriverError),
    /// A stored value is not what the schema says it is.
    #[error("unexpected value in the database: {0}")]
    Decode(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Identity of a user as the token states it.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// The first turn of a chat exchange: where the user's message goes.
#[derive(Debug, Clone)]
pub struct StartTurn {
    /// An existing conversation, or `None` to create one titled `title`.
    pub conversation_id: Option<Id>,
    pub title: String,
    pub message: NewMessage,
    /// A job to enqueue in the same transaction (a background run of this message); its input
    /// gains `conversation_id` and `user_message_id`, and its first event (`queued`) is written too.
    pub job: Option<NewJob>,
}

/// What [`Store::start_turn`] stored.
#[derive(Debug, Clone)]
pub struct Started {
    pub conversation: Conversation,
    pub message: Message,
    pub job: Option<Job>,
}

/// Everything Switchboard keeps in its database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Name of the backend, for logs and `/ready`.
    fn backend(&self) -> &'static str;

    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> Result<()>;

    /// Closes every connection; called on shutdown.
    async fn close(&self);

    /// Creates the user on first sight of (`issuer`, `subject`); refreshes email and name after.
    async fn upsert_user(&self, identity: Identity<'_>) -> Result<User>;

    /// All users, oldest first (administrators only).
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>>;

    /// The owner's conversations, most recently updated first.
    async fn list_conversations(&self, owner: Id, page: PageRequest) -> Result<Page<Conversation>>;

    async fn get_conversation(&self, owner: Id, id: Id) -> Result<Option<Conversation>>;

    /// Replaces the conversation's context (the workflow in progress); `false` when the
    /// conversation is not the owner's.
    async fn set_conversation_context(&self, owner: Id, id: Id, context: &serde_json::Value) -> Result<bool>;

    /// Gives the conversation a new title; `None` when it is not the owner's.
    async fn rename_conversation(&self, owner: Id, id: Id, title: &str) -> Result<Option<Conversation>>;

    /// How many conversations the owner has.
    async fn count_conversations(&self, owner: Id) -> Result<i64>;

    /// Deletes the conversation and its messages; `false` when there was none to delete.
    async fn delete_conversation(&self, owner: Id, id: Id) -> Result<bool>;

    /// Messages of one conversation in the order they were written; `None` when the
    /// conversation is not the owner's.
    async fn list_messages(&self, owner: Id, conversation: Id, page: PageRequest) -> Result<Option<Page<Message>>>;

    /// The conversation with its last `n` messages, oldest first (the model's context window), in
    /// one read; `None` when the conversation is not the owner's.
    async fn conversation_with_recent(
        &self,
        owner: Id,
        conversation: Id,
        n: u32,
    ) -> Result<Option<(Conversation, Vec<Message>)>>;

    /// In one transaction: creates the conversation if asked, stores the message, and enqueues
    /// the job if there is one. `None` when `conversation_id` names a conversation that is not
    /// the owner's.
    async fn start_turn(&self, owner: Id, turn: StartTurn) -> Result<Option<Started>>;

    /// The assistant's reply a job stored in the conversation, if it stored one.
    async fn job_reply(&self, owner: Id, conversation: Id, job: Id) -> Result<Option<Message>>;

    /// Appends a message and bumps the conversation's `updated_at`, in one transaction.
    async fn append_message(&self, owner: Id, conversation: Id, message: NewMessage) -> Result<Option<Message>>;

    /// [`Store::append_message`] for a job's reply, whose outcome the worker records next: the
    /// commit does not wait for the disk, because the outcome's own commit, later in the same
    /// write-ahead log, makes both durable at once. A crash in between loses at most the reply of
    /// a job that is not finished yet, and the job runs again.
    async fn append_job_reply(&self, owner: Id, conversation: Id, message: NewMessage) -> Result<Option<Message>>;

    /// Creates a task with the owner's next number. `None` when `parent_id` is not the owner's.
    async fn create_task(&self, owner: Id, task: NewTask) -> Result<Option<Task>>;

    async fn get_task(&self, owner: Id, task: TaskRef) -> Result<Option<Task>>;

    /// The owner's tasks in creation order.
    async fn list_tasks(&self, owner: Id, filter: &TaskFilter, page: PageRequest) -> Result<Page<Task>>;

    /// Applies the changes; completing sets `completed_at`, reopening clears it.
    async fn update_task(&self, owner: Id, task: TaskRef, changes: TaskChanges) -> Result<Option<Task>>;

    /// Deletes the task (its subtasks stay, without a parent); `false` when there was none.
    async fn delete_task(&self, owner: Id, task: TaskRef) -> Result<bool>;

    /// Remembers that the token `jti` must no longer be accepted (until it expires anyway).
    async fn revoke_token(&self, jti: &str, expires_at: DateTime<Utc>) -> Result<()>;

    /// Ids of revoked tokens that have not expired yet.
    async fn revoked_tokens(&self) -> Result<Vec<String>>;

    /// Every catalog entry, in name order.
    async fn catalog_entries(&self) -> Result<Vec<CatalogRecord>>;

    /// The stored JSON of the entry with this exact name.
    async fn catalog_entry_data(&self, name: &str) -> Result<Option<String>>;

    /// Inserts or replaces entries by name, all in one transaction. A record whose content hash is
    /// unchanged keeps its stored embedding.
    async fn upsert_catalog_entries(&self, records: &[CatalogRecord]) -> Result<()>;

    /// Stores embeddings for entries whose content hash still matches (name, hash, vectors).
    async fn set_catalog_embeddings(&self, model: &str, items: &[(String, String, Vec<u8>)]) -> Result<()>;

    /// Removes the entry with this slug; `false` when there was none.
    async fn delete_catalog_entry(&self, slug: &str) -> Result<bool>;

    /// Stores sealed credentials, replacing those with the same server and key, in one transaction.
    async fn put_credentials(&self, owner: Id, items: &[SealedCredential]) -> Result<()>;

    /// The owner's sealed credentials (of one server, or all), by server and key.
    async fn credentials(&self, owner: Id, server: Option<&str>) -> Result<Vec<SealedCredential>>;

    /// In one read: the owner's sealed credentials (by server and key) and the servers the owner
    /// has connected an account for.
    async fn credentials_and_connected(&self, owner: Id) -> Result<(Vec<SealedCredential>, Vec<String>)>;

    /// Deletes the owner's credentials of `server` (only `key`, when given); how many went.
    async fn delete_credentials(&self, owner: Id, server: &str, key: Option<&str>) -> Result<u64>;

    /// Every owner's sealed credentials, for key rotation.
    async fn all_credentials(&self) -> Result<Vec<(Id, SealedCredential)>>;

    /// Replaces one credential's seal if it is still `old_ciphertext` (a rotation racing a user's
    /// update keeps the update); `false` when it changed or went.
    async fn reseal_credential(&self, owner: Id, old_ciphertext: &[u8], new: &SealedCredential) -> Result<bool>;

    async fn create_agent(&self, owner: Id, agent: NewAgent) -> Result<Agent>;

    /// The owner's agents, newest first.
    async fn list_agents(&self, owner: Id, page: PageRequest) -> Result<Page<Agent>>;

    async fn get_agent(&self, owner: Id, id: Id) -> Result<Option<Agent>>;

    /// `false` when there was none to delete.
    async fn delete_agent(&self, owner: Id, id: Id) -> Result<bool>;

    async fn get_job(&self, owner: Id, id: Id) -> Result<Option<Job>>;

    /// The owner's jobs, newest first, optionally of one status.
    async fn list_jobs(&self, owner: Id, status: Option<JobStatus>, page: PageRequest) -> Result<Page<Job>>;

    /// Cancels a queued job at once, or flags a running one for its worker to stop; a finished
    /// job is left as it is. `None` when the job is not the owner's.
    async fn cancel_job(&self, owner: Id, id: Id) -> Result<Option<Job>>;

    /// Takes the next job that is due — queued, or running under a lease that expired (its
    /// worker died) — for `worker`, until `lease_until`. Concurrent workers never take the same job.
    async fn claim_job(&self, worker: &str, lease_until: DateTime<Utc>) -> Result<Option<Job>>;

    /// Takes this job for `worker` until `lease_until`, if it is due: queued and due, or running
    /// under a lease that expired. For queues that hand out job ids (Redis Streams).
    async fn claim_job_by_id(&self, id: Id, worker: &str, lease_until: DateTime<Utc>) -> Result<ClaimById>;

    /// Jobs waiting for a worker — queued (due or not), or running under an expired lease — with
    /// when they are due, soonest first, at most `limit`.
    async fn waiting_jobs(&self, limit: i64) -> Result<Vec<(Id, DateTime<Utc>)>>;

    /// Extends the worker's lease on a running job. `None` when the worker no longer holds it;
    /// otherwise whether the owner asked for it to stop.
    async fn renew_job_lease(&self, id: Id, worker: &str, lease_until: DateTime<Utc>) -> Result<Option<bool>>;

    /// Records how the run ended, with the events (kind, payload) that tell its subscribers, in
    /// one transaction, if `worker` still holds the job; `false` otherwise (another worker took it
    /// over, and its result is the one kept).
    async fn finish_job(
        &self,
        id: Id,
        worker: &str,
        outcome: &JobOutcome,
        events: &[(&str, serde_json::Value)],
    ) -> Result<bool>;

    /// Puts a failed attempt back in the queue until `run_after`, if `worker` still holds the job.
    async fn retry_job(&self, id: Id, worker: &str, run_after: DateTime<Utc>, error: &str) -> Result<bool>;

    /// A stream that yields whenever another process enqueues a job (PostgreSQL LISTEN/NOTIFY);
    /// `None` on a backend that cannot tell (workers then poll).
    async fn job_wakeups(&self) -> Result<Option<futures::stream::BoxStream<'static, ()>>>;

    /// Appends an event; returns its number. A `durable` event is on disk when this returns; any
    /// other (progress while a job runs) may be lost in a database crash, which spares the run a
    /// wait for the disk where commits wait for it.
    async fn append_job_event(&self, job: Id, kind: &str, payload: &serde_json::Value, durable: bool) -> Result<i64>;

    /// The job's events after `after_seq`, in order; `None` when the job is not the owner's.
    async fn job_events(&self, owner: Id, job: Id, after_seq: i64) -> Result<Option<Vec<JobEvent>>>;

    /// Records that a worker is alive and how many jobs it runs.
    async fn worker_heartbeat(&self, worker: &str, running: i64) -> Result<()>;

    /// Forgets a worker that stopped.
    async fn remove_worker(&self, worker: &str) -> Result<()>;

    /// Queue depth by status, recent failures and live workers (seen within `alive_since`).
    async fn queue_stats(&self, alive_since: DateTime<Utc>) -> Result<QueueStats>;

    /// Adds jobs a worker process finished to the totals [`Store::queue_stats`] reports.
    async fn add_job_totals(&self, finished: &JobTotals) -> Result<()>;

    /// Deletes up to `limit` finished jobs created before `created_before`, with their events,
    /// oldest first; returns how many. Concurrent calls skip each other's jobs where the database
    /// allows it.
    async fn delete_finished_jobs(&self, created_before: DateTime<Utc>, limit: i64) -> Result<u64>;

    /// Stores the owner's connection to a server, replacing an earlier one (its version moves on).
    async fn put_connection(&self, owner: Id, connection: &Connection) -> Result<Connection>;

    async fn connection(&self, owner: Id, server: &str) -> Result<Option<Connection>>;

    /// The owner's connections, by server.
    async fn connections(&self, owner: Id) -> Result<Vec<Connection>>;

    /// Every owner's connections, for key rotation.
    async fn all_connections(&self) -> Result<Vec<(Id, Connection)>>;

    /// Replaces a connection's tokens, status and scopes if it is still at `expected_version` (a
    /// refresh racing another refresh, or a rotation, keeps the other's result); `false` otherwise.
    async fn update_connection(&self, owner: Id, expected_version: i64, connection: &Connection) -> Result<bool>;

    /// Forgets the owner's connection to a server, returning it (to revoke its tokens).
    async fn delete_connection(&self, owner: Id, server: &str) -> Result<Option<Connection>>;

    /// Records an authorization in progress (and forgets the expired ones).
    async fn put_oauth_flow(&self, flow: &OAuthFlow) -> Result<()>;

    /// Takes the authorization of this state hash: at most once, whoever asks.
    async fn take_oauth_flow(&self, state_hash: &str) -> Result<Option<OAuthFlow>>;

    /// Remembers a client registered with an authorization server for a redirect URI.
    async fn put_registered_client(&self, client: &RegisteredClient) -> Result<()>;

    async fn registered_client(&self, issuer: &str, redirect_uri: &str) -> Result<Option<RegisteredClient>>;

    /// Records an MCP session of `owner` with the client's `state` (its initialize parameters),
    /// so another server can take the session over; also forgets sessions created before
    /// `expired_before`. A session id already recorded for another owner is left alone.
    async fn put_mcp_session(
        &self,
        id: &str,
        owner: Id,
        state: &serde_json::Value,
        expired_before: DateTime<Utc>,
    ) -> Result<()>;

    /// The owner and state of an MCP session.
    async fn mcp_session(&self, id: &str) -> Result<Option<(Id, serde_json::Value)>>;

    /// Forgets an MCP session of `owner`; `false` when there was none.
    async fn delete_mcp_session(&self, id: &str, owner: Id) -> Result<bool>;

    /// Changes whenever the catalog does: the number of entries and the latest change.
    async fn catalog_revision(&self) -> Result<(i64, Option<DateTime<Utc>>)>;
}

/// What [`Store::claim_job_by_id`] found.
#[derive(Debug, Clone)]
pub enum ClaimById {
    /// The job is the worker's now.
    Claimed(Box<Job>),
    /// Another worker runs it under a live lease.
    Held,
    /// Queued, but not due yet (a retry waiting out its backoff).
    NotDue,
    /// Finished, cancelled or unknown: nothing to run.
    Gone,
}

/// A catalog entry as stored: the entry's JSON and what lookups and the embedding cache need.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRecord {
    pub name: String,
    pub slug: String,
    pub data: String,
    pub content_hash: String,
    pub embedding_model: Option<String>,
    pub embedding: Option<Vec<u8>>,
    pub updated_at: DateTime<Utc>,
}
