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
pub use job::{Job, JobEvent, JobOutcome, JobStatus, JobTotals, NewJob, QueueStats, WorkerInfo};
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

/// The smallest id made at `at` or later: every id below it was made before `at`.
pub fn first_id_at(at: chrono::DateTime<chrono::Utc>) -> Id {
    uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis().max(0) as u64, &[0; 10]).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_before_a_time_sort_below_its_first_id_and_later_ones_above() {
        let pause = || std::thread::sleep(std::time::Duration::from_millis(3));
        let before = new_id();
        pause();
        let at = now();
        pause();
        let after = new_id();
        let first = first_id_at(at);
        assert!(before < first, "{before} {first}");
        assert!(first < after, "{first} {after}");
        assert_eq!(first.get_version_num(), 7);
    }
}
