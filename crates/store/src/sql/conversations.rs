//! Conversations and their messages, and the start of a chat turn.

use switchboard_domain::{Conversation, Cursor, Id, Message, NewMessage, Page, PageRequest, Role};

use super::jobs::{job, job_columns};
use super::{decode, first, keyset, owner_page, owner_page_sql, paginate, single, window, Commit};
use crate::db::{Db, Record, Tx};
use crate::{params, Result, StartTurn, Started, StoreError};

macro_rules! columns {
    () => {
        "id, title, status, context, message_count, created_at, updated_at"
    };
}

macro_rules! message_columns {
    () => {
        "id, conversation_id, role, content, metadata, created_at"
    };
}

const COLUMNS: usize = super::column_count(columns!());

const GET: &str = concat!("SELECT ", columns!(), " FROM conversations WHERE user_id = $1 AND id = $2");

fn conversation(mut r: Record) -> Result<Conversation> {
    Ok(Conversation {
        id: r.id()?,
        title: r.text()?,
        status: r.text()?,
        context: r.json()?,
        message_count: r.int()?,
        created_at: r.time()?,
        updated_at: r.time()?,
    })
}

fn message(mut r: Record) -> Result<Message> {
    let id = r.id()?;
    let conversation_id = r.id()?;
    let role = r.text()?;
    let role = Role::parse(&role).ok_or_else(|| StoreError::Decode(format!("unknown message role {role:?}")))?;
    Ok(Message { id, conversation_id, role, content: r.text()?, metadata: r.json()?, created_at: r.time()? })
}

pub(super) async fn list<D: Db>(db: &D, owner: Id, page: PageRequest) -> Result<Page<Conversation>> {
    const SQL: &str = owner_page_sql!("conversations", columns!(), "updated_at");
    let items = decode(owner_page(db, SQL, owner, &page).await?, conversation)?;
    Ok(paginate(items, page.limit, |c: &Conversation| Cursor { at: c.updated_at, id: c.id }))
}

pub(super) async fn get<D: Db>(db: &D, owner: Id, id: Id) -> Result<Option<Conversation>> {
    first(db.fetch(GET, &params![owner, id]).await?).map(conversation).transpose()
}

pub(super) async fn set_context<D: Db>(db: &D, owner: Id, id: Id, context: &serde_json::Value) -> Result<bool> {
    let changed = db
        .execute("UPDATE conversations SET context = $1 WHERE user_id = $2 AND id = $3", &params![context, owner, id])
        .await?;
    Ok(changed > 0)
}

pub(super) async fn rename<D: Db>(db: &D, owner: Id, id: Id, title: &str) -> Result<Option<Conversation>> {
    let changed = db
        .execute("UPDATE conversations SET title = $1 WHERE user_id = $2 AND id = $3", &params![title, owner, id])
        .await?;
    if changed == 0 {
        return Ok(None);
    }
    get(db, owner, id).await
}

pub(super) async fn count<D: Db>(db: &D, owner: Id) -> Result<i64> {
    single(db.fetch("SELECT COUNT(*) FROM conversations WHERE user_id = $1", &params![owner]).await?)?.int()
}

pub(super) async fn delete<D: Db>(db: &D, owner: Id, id: Id) -> Result<bool> {
    let mut tx = db.begin().await?;
    let deleted = tx.execute("DELETE FROM conversations WHERE user_id = $1 AND id = $2", &params![owner, id]).await?;
    tx.execute("DELETE FROM messages WHERE user_id = $1 AND conversation_id = $2", &params![owner, id]).await?;
    tx.commit().await?;
    Ok(deleted > 0)
}

pub(super) async fn messages<D: Db>(
    db: &D,
    owner: Id,
    conversation: Id,
    page: PageRequest,
) -> Result<Option<Page<Message>>> {
    const SQL: &str = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages \
         WHERE user_id = $1 AND conversation_id = $2 AND ($3 IS NULL OR (created_at, id) > ($3, $4)) \
         ORDER BY created_at, id LIMIT $5 OFFSET $6"
    );
    let exists =
        db.fetch("SELECT id FROM conversations WHERE user_id = $1 AND id = $2", &params![owner, conversation]).await?;
    if exists.is_empty() {
        return Ok(None);
    }
    let (after, after_id) = keyset(&page);
    let (limit, offset) = window(&page);
    let rows = db.fetch(SQL, &params![owner, conversation, after, after_id, limit, offset]).await?;
    let items = decode(rows, message)?;
    Ok(Some(paginate(items, page.limit, |m: &Message| Cursor { at: m.created_at, id: m.id })))
}

pub(super) async fn with_recent<D: Db>(
    db: &D,
    owner: Id,
    conversation: Id,
    n: u32,
) -> Result<Option<(Conversation, Vec<Message>)>> {
    // One round trip: the conversation joined with its last `n` messages (or with one row of
    // nulls when it has none), oldest first.
    const SQL: &str = concat!(
        "SELECT c.*, m.* FROM (SELECT ",
        columns!(),
        " FROM conversations WHERE user_id = $1 AND id = $2) AS c \
         LEFT JOIN (SELECT ",
        message_columns!(),
        " FROM messages WHERE user_id = $1 AND conversation_id = $2 \
           ORDER BY created_at DESC, id DESC LIMIT $3) AS m ON TRUE \
         ORDER BY m.created_at, m.id"
    );
    let (mut found, mut messages) = (None, Vec::new());
    for mut row in db.fetch(SQL, &params![owner, conversation, n]).await? {
        let columns = row.split(COLUMNS);
        if found.is_none() {
            found = Some(self::conversation(columns)?);
        }
        if !row.null_at(0) {
            messages.push(message(row)?);
        }
    }
    Ok(found.map(|found| (found, messages)))
}

pub(super) async fn start_turn<D: Db>(db: &D, owner: Id, turn: StartTurn) -> Result<Option<Started>> {
    const INSERT_JOB: &str = concat!(
        "INSERT INTO jobs (id, user_id, kind, input, status, max_attempts, run_after, created_at) \
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $6) RETURNING ",
        job_columns!()
    );
    if db.writes_in_with() {
        return start_turn_in_one(db, owner, turn).await;
    }
    let now = switchboard_domain::now();
    let mut tx = db.begin().await?;
    let (conversation, message) = match turn.conversation_id {
        Some(id) => match insert_message(&mut tx, owner, id, turn.message, now).await? {
            Some(stored) => stored,
            None => return Ok(None),
        },
        None => {
            // A new conversation is created holding its first message (no bump to make).
            let conversation = Conversation {
                id: switchboard_domain::new_id(),
                title: turn.title,
                status: "active".into(),
                context: serde_json::json!({}),
                message_count: 1,
                created_at: now,
                updated_at: now,
            };
            tx.execute(
                "INSERT INTO conversations (id, user_id, title, status, context, message_count, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                &params![
                    conversation.id,
                    owner,
                    &conversation.title,
                    &conversation.status,
                    &conversation.context,
                    conversation.message_count,
                    now
                ],
            )
            .await?;
            let message = insert_message_row(&mut tx, owner, conversation.id, turn.message, now).await?;
            (conversation, message)
        }
    };
    let conversation_id = conversation.id;
    let job = match turn.job {
        None => None,
        Some(new) => {
            let input = job_input(new.input, conversation_id, message.id);
            let id = switchboard_domain::new_id();
            let row = tx.fetch(INSERT_JOB, &params![id, owner, &new.kind, &input, new.max_attempts, now]).await?;
            tx.execute(
                "INSERT INTO job_events (job_id, seq, kind, payload, at) VALUES ($1, 1, 'status', $2, $3)",
                &params![id, &serde_json::json!({"status": "queued"}), now],
            )
            .await?;
            Some(job(single(row)?)?)
        }
    };
    tx.commit().await?;
    if job.is_some() {
        db.jobs_enqueued().await;
    }
    Ok(Some(Started { conversation, message, job }))
}

/// [`start_turn`] as one statement (a data-modifying `WITH`, where the database has them): the
/// conversation created or bumped, the message, the job and its first event in one round trip
/// and one commit. Nothing is written when the conversation is not the owner's.
async fn start_turn_in_one<D: Db>(db: &D, owner: Id, turn: StartTurn) -> Result<Option<Started>> {
    let now = switchboard_domain::now();
    let message_id = switchboard_domain::new_id();
    let conversation_id = turn.conversation_id.unwrap_or_else(switchboard_domain::new_id);
    let new = turn.message;
    let queued = serde_json::json!({"status": "queued"});
    let job_id = switchboard_domain::new_id();
    let input = turn.job.as_ref().map(|job| job_input(job.input.clone(), conversation_id, message_id));
    // $1 owner, $2 now, $3 conversation, $4 message, $5 role, $6 content, $7 metadata.
    let mut values =
        params![owner, now, conversation_id, message_id, new.role.as_str(), &new.content, &new.metadata].to_vec();
    let conversation_sql = match turn.conversation_id {
        Some(_) => concat!(
            "UPDATE conversations SET updated_at = $2, message_count = message_count + 1 \
             WHERE user_id = $1 AND id = $3 RETURNING ",
            columns!()
        ),
        None => {
            values.extend(params![&turn.title]);
            concat!(
                "INSERT INTO conversations (id, user_id, title, status, context, message_count, created_at, updated_at) \
                 VALUES ($3, $1, $8, 'active', '{}', 1, $2, $2) RETURNING ",
                columns!()
            )
        }
    };
    let mut sql = format!(
        "WITH c AS ({conversation_sql}), \
         m AS (INSERT INTO messages (id, conversation_id, user_id, role, content, metadata, created_at) \
           SELECT $4, id, $1, $5, $6, $7, $2 FROM c)"
    );
    match (&turn.job, &input) {
        (Some(job), Some(input)) => {
            let n = values.len();
            values.extend(params![job_id, &job.kind, input, job.max_attempts, &queued]);
            sql.push_str(&format!(
                ", j AS (INSERT INTO jobs (id, user_id, kind, input, status, max_attempts, run_after, created_at) \
                   SELECT ${a}, $1, ${b}, ${c}, 'queued', ${d}, $2, $2 FROM c RETURNING {columns}), \
                 e AS (INSERT INTO job_events (job_id, seq, kind, payload, at) SELECT id, 1, 'status', ${e}, $2 FROM j) \
                 SELECT c.*, j.* FROM c, j",
                a = n + 1,
                b = n + 2,
                c = n + 3,
                d = n + 4,
                e = n + 5,
                columns = job_columns!()
            ));
        }
        _ => sql.push_str(" SELECT * FROM c"),
    }
    let Some(mut row) = first(db.execute_returning(&sql, &values).await?) else {
        return Ok(None);
    };
    let conversation = self::conversation(row.split(COLUMNS))?;
    let job = match turn.job {
        Some(_) => Some(job(row)?),
        None => None,
    };
    if job.is_some() {
        db.jobs_enqueued().await;
    }
    Ok(Some(Started { conversation, message: stored(new, message_id, conversation_id, now), job }))
}

pub(super) async fn job_reply<D: Db>(db: &D, owner: Id, conversation: Id, job: Id) -> Result<Option<Message>> {
    const SQL: &str = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE user_id = $1 AND conversation_id = $2 AND role = 'assistant' \
         AND (metadata ->> 'job_id') = $3"
    );
    let job = job.to_string();
    first(db.fetch(SQL, &params![owner, conversation, &job]).await?).map(message).transpose()
}

pub(super) async fn append_message<D: Db>(
    db: &D,
    owner: Id,
    conversation: Id,
    message: NewMessage,
    commit: Commit,
) -> Result<Option<Message>> {
    let now = switchboard_domain::now();
    if db.writes_in_with() {
        // One statement: the bump (proving the conversation is the owner's) and the insert.
        const SQL: &str = "WITH c AS (UPDATE conversations SET updated_at = $1, message_count = message_count + 1 \
               WHERE user_id = $2 AND id = $3 RETURNING id), \
             m AS (INSERT INTO messages (id, conversation_id, user_id, role, content, metadata, created_at) \
               SELECT $4, id, $2, $5, $6, $7, $1 FROM c) \
             SELECT id FROM c";
        let id = switchboard_domain::new_id();
        let values = params![now, owner, conversation, id, message.role.as_str(), &message.content, &message.metadata];
        let bumped = match commit {
            Commit::Durable => db.execute_returning(SQL, &values).await?,
            Commit::Relaxed => db.execute_returning_relaxed(SQL, &values).await?,
        };
        if bumped.is_empty() {
            return Ok(None);
        }
        return Ok(Some(stored(message, id, conversation, now)));
    }
    let mut tx = db.begin().await?;
    let message = insert_message(&mut tx, owner, conversation, message, now).await?.map(|(_, message)| message);
    if message.is_some() {
        tx.commit().await?;
    }
    Ok(message)
}

/// Bumps the conversation (proving it is the owner's) and inserts the message; returns both, or
/// `None` when the conversation is not the owner's.
async fn insert_message<T: Tx>(
    tx: &mut T,
    owner: Id,
    conversation: Id,
    message: NewMessage,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<(Conversation, Message)>> {
    const BUMP: &str = concat!(
        "UPDATE conversations SET updated_at = $1, message_count = message_count + 1 \
         WHERE user_id = $2 AND id = $3 RETURNING ",
        columns!()
    );
    let Some(bumped) = first(tx.fetch(BUMP, &params![now, owner, conversation]).await?) else {
        return Ok(None);
    };
    let message = insert_message_row(tx, owner, conversation, message, now).await?;
    Ok(Some((self::conversation(bumped)?, message)))
}

/// Inserts a message row into a conversation already proven to be the owner's.
async fn insert_message_row<T: Tx>(
    tx: &mut T,
    owner: Id,
    conversation: Id,
    message: NewMessage,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Message> {
    let id = switchboard_domain::new_id();
    tx.execute(
        "INSERT INTO messages (id, conversation_id, user_id, role, content, metadata, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &params![id, conversation, owner, message.role.as_str(), &message.content, &message.metadata, now],
    )
    .await?;
    Ok(stored(message, id, conversation, now))
}

/// A job's input with the conversation and the user's message it runs for.
fn job_input(mut input: serde_json::Value, conversation: Id, message: Id) -> serde_json::Value {
    input["conversation_id"] = serde_json::json!(conversation);
    input["user_message_id"] = serde_json::json!(message);
    input
}

/// The message as stored under `id`.
fn stored(message: NewMessage, id: Id, conversation: Id, now: chrono::DateTime<chrono::Utc>) -> Message {
    let NewMessage { role, content, metadata } = message;
    Message { id, conversation_id: conversation, role, content, metadata, created_at: now }
}
