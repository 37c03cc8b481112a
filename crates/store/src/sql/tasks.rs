//! Tasks with per-user numbers that are never reused.

use switchboard_domain::{
    Cursor, Id, NewTask, Page, PageRequest, Priority, Task, TaskChanges, TaskFilter, TaskRef, TaskStatus,
};

use super::{contains_pattern, decode, first, keyset, paginate, single, window};
use crate::db::{Db, Record, Tx};
use crate::{params, Result, StoreError};

macro_rules! columns {
    () => {
        "id, number, title, description, status, priority, due_date, parent_id, created_at, updated_at, completed_at"
    };
}

fn task(mut r: Record) -> Result<Task> {
    let bad = |what: &str, v: &str| StoreError::Decode(format!("unknown task {what} {v:?}"));
    let id = r.id()?;
    let number = r.int()?;
    let title = r.text()?;
    let description = r.opt_text()?;
    let status = r.text()?;
    let priority = r.text()?;
    Ok(Task {
        id,
        number,
        title,
        description,
        status: TaskStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
        priority: Priority::parse(&priority).ok_or_else(|| bad("priority", &priority))?,
        due_date: r.opt_date()?,
        parent_id: r.opt_id()?,
        created_at: r.time()?,
        updated_at: r.time()?,
        completed_at: r.opt_time()?,
    })
}

pub(super) async fn create<D: Db>(db: &D, owner: Id, new: NewTask) -> Result<Option<Task>> {
    const INSERT: &str = concat!(
        "INSERT INTO tasks (id, user_id, number, title, description, status, priority, due_date, parent_id, \
           created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $9) RETURNING ",
        columns!()
    );
    let now = switchboard_domain::now();
    let mut tx = db.begin().await?;
    let number = single(
        tx.fetch(
            "INSERT INTO task_counters (user_id, last_number) VALUES ($1, 1) \
             ON CONFLICT (user_id) DO UPDATE SET last_number = task_counters.last_number + 1 \
             RETURNING last_number",
            &params![owner],
        )
        .await?,
    )?
    .int()?;
    if let Some(parent) = new.parent_id {
        let found = tx.fetch("SELECT id FROM tasks WHERE user_id = $1 AND id = $2", &params![owner, parent]).await?;
        if found.is_empty() {
            return Ok(None);
        }
    }
    let row = tx
        .fetch(
            INSERT,
            &params![
                switchboard_domain::new_id(),
                owner,
                number,
                &new.title,
                new.description.as_deref(),
                new.priority.as_str(),
                new.due_date,
                new.parent_id,
                now
            ],
        )
        .await?;
    let created = task(single(row)?)?;
    tx.commit().await?;
    Ok(Some(created))
}

pub(super) async fn get<D: Db>(db: &D, owner: Id, which: TaskRef) -> Result<Option<Task>> {
    const SQL: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM tasks WHERE user_id = $1 AND ($2 IS NULL OR id = $2) AND ($3 IS NULL OR number = $3)"
    );
    let (id, number) = which.columns();
    first(db.fetch(SQL, &params![owner, id, number]).await?).map(task).transpose()
}

pub(super) async fn list<D: Db>(db: &D, owner: Id, filter: &TaskFilter, page: PageRequest) -> Result<Page<Task>> {
    const SQL: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM tasks WHERE user_id = $1 \
           AND ($2 IS NULL OR status = $2) \
           AND ($3 IS NULL OR LOWER(title) LIKE $3 ESCAPE '\\' OR LOWER(COALESCE(description, '')) LIKE $3 ESCAPE '\\') \
           AND ($4 IS NULL OR (created_at, id) > ($4, $5)) \
         ORDER BY created_at, id LIMIT $6 OFFSET $7"
    );
    let (after, after_id) = keyset(&page);
    let (limit, offset) = window(&page);
    let pattern = filter.search.as_deref().map(contains_pattern);
    let rows = db
        .fetch(
            SQL,
            &params![owner, filter.status.map(|s| s.as_str()), pattern.as_deref(), after, after_id, limit, offset],
        )
        .await?;
    let items = decode(rows, task)?;
    Ok(paginate(items, page.limit, |t: &Task| Cursor { at: t.created_at, id: t.id }))
}

pub(super) async fn update<D: Db>(db: &D, owner: Id, which: TaskRef, changes: TaskChanges) -> Result<Option<Task>> {
    const SQL: &str = concat!(
        "UPDATE tasks SET \
           title = COALESCE($4, title), \
           description = CASE WHEN $5 THEN $6 ELSE description END, \
           status = COALESCE($7, status), \
           priority = COALESCE($8, priority), \
           due_date = CASE WHEN $9 THEN $10 ELSE due_date END, \
           completed_at = CASE WHEN $11 IS NULL THEN completed_at WHEN $11 THEN COALESCE(completed_at, $12) ELSE NULL END, \
           updated_at = $12 \
         WHERE user_id = $1 AND ($2 IS NULL OR id = $2) AND ($3 IS NULL OR number = $3) \
         RETURNING ",
        columns!()
    );
    let (id, number) = which.columns();
    let completed = changes.status.map(|s| s == TaskStatus::Completed);
    let rows = db
        .execute_returning(
            SQL,
            &params![
                owner,
                id,
                number,
                changes.title.as_deref(),
                changes.description.is_some(),
                changes.description.as_ref().and_then(|d| d.as_deref()),
                changes.status.map(|s| s.as_str()),
                changes.priority.map(|p| p.as_str()),
                changes.due_date.is_some(),
                changes.due_date.flatten(),
                completed,
                switchboard_domain::now()
            ],
        )
        .await?;
    first(rows).map(task).transpose()
}

pub(super) async fn delete<D: Db>(db: &D, owner: Id, which: TaskRef) -> Result<bool> {
    let (id, number) = which.columns();
    let deleted = db
        .execute(
            "DELETE FROM tasks WHERE user_id = $1 AND ($2 IS NULL OR id = $2) AND ($3 IS NULL OR number = $3)",
            &params![owner, id, number],
        )
        .await?;
    Ok(deleted > 0)
}
