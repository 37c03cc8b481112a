-- Tasks, with a per-user number that is never reused.
CREATE TABLE task_counters (
    user_id      UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    last_number  BIGINT NOT NULL
);

CREATE TABLE tasks (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    number        BIGINT NOT NULL,
    title         TEXT NOT NULL,
    description   TEXT,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'in_progress', 'completed')),
    priority      TEXT NOT NULL CHECK (priority IN ('low', 'medium', 'high')),
    due_date      DATE,
    parent_id     UUID REFERENCES tasks (id) ON DELETE SET NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    completed_at  TIMESTAMPTZ,
    UNIQUE (user_id, number)
);
CREATE INDEX tasks_by_owner ON tasks (user_id, created_at, id);
