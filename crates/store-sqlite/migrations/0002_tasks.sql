-- Tasks, with a per-user number that is never reused.
CREATE TABLE task_counters (
    user_id      BLOB PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    last_number  INTEGER NOT NULL
);

CREATE TABLE tasks (
    id            BLOB PRIMARY KEY,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    number        INTEGER NOT NULL,
    title         TEXT NOT NULL,
    description   TEXT,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'in_progress', 'completed')),
    priority      TEXT NOT NULL CHECK (priority IN ('low', 'medium', 'high')),
    due_date      TEXT,
    parent_id     BLOB REFERENCES tasks (id) ON DELETE SET NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    completed_at  TEXT,
    UNIQUE (user_id, number)
);
CREATE INDEX tasks_by_owner ON tasks (user_id, created_at, id);
