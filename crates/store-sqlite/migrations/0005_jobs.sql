-- Background jobs, their progress events, and the workers that run them.
CREATE TABLE jobs (
    id                BLOB PRIMARY KEY,
    user_id           BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind              TEXT NOT NULL,
    input             TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    result            TEXT,
    error             TEXT,
    input_tokens      INTEGER NOT NULL DEFAULT 0,
    output_tokens     INTEGER NOT NULL DEFAULT 0,
    total_tokens      INTEGER NOT NULL DEFAULT 0,
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    worker            TEXT,
    lease_until       TEXT,
    run_after         TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    started_at        TEXT,
    completed_at      TEXT
);
CREATE INDEX jobs_by_owner ON jobs (user_id, created_at DESC, id DESC);
CREATE INDEX jobs_ready ON jobs (status, run_after);

CREATE TABLE job_events (
    job_id   BLOB NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    payload  TEXT NOT NULL,
    at       TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE workers (
    id            TEXT PRIMARY KEY,
    running       INTEGER NOT NULL DEFAULT 0,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL
);
