//! Domain types shared by every part of Switchboard. No IO, no async.

mod agent;
mod connection;
mod conversation;
mod job;
mod page;
mod task;
pub mod time;
mod user;

pub use agent::{Agent, NewAgent, SealedCredential};
pub use connection::{Connection, ConnectionStatus, OAuthFlow, RegisteredClient, Sealed};
pub use conversation::{Conversation, Message, NewMessage, Role};
pub use job::{Job, JobEvent, JobOutcome, JobStatus, NewJob, QueueStats, WorkerInfo};
pub use page::{Cursor, Page, PageRequest, MAX_PAGE_SIZE};
pub use task::{NewTask, Priority, Task, TaskChanges, TaskFilter, TaskRef, TaskStatus};
pub use user::{Principal, User};

/// Identifier of a user, conversation or message. UUIDv7, so ids sort by creation time.
pub type Id = uuid::Uuid;

/// Current UTC time truncated to microseconds, the precision both SQLite and PostgreSQL keep.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::{SubsecRound, Utc};
    Utc::now().trunc_subsecs(6)
}

/// A new time-ordered id.
pub fn new_id() -> Id {
    uuid::Uuid::now_v7()
}
