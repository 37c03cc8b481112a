-- Background jobs, their progress events, and the workers that run them.
CREATE TABLE jobs (
    id                UUID PRIMARY KEY,
    user_id           UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind              TEXT NOT NULL,
    input             JSONB NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    result            JSONB,
    error             TEXT,
    input_tokens      BIGINT NOT NULL DEFAULT 0,
    output_tokens     BIGINT NOT NULL DEFAULT 0,
    total_tokens      BIGINT NOT NULL DEFAULT 0,
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    worker            TEXT,
    lease_until       TIMESTAMPTZ,
    run_after         TIMESTAMPTZ NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    started_at        TIMESTAMPTZ,
    completed_at      TIMESTAMPTZ
);
CREATE INDEX jobs_by_owner ON jobs (user_id, created_at DESC, id DESC);
CREATE INDEX jobs_ready ON jobs (status, run_after);

CREATE TABLE job_events (
    job_id   UUID NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq      BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    payload  JSONB NOT NULL,
    at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE workers (
    id            TEXT PRIMARY KEY,
    running       BIGINT NOT NULL DEFAULT 0,
    started_at    TIMESTAMPTZ NOT NULL,
    heartbeat_at  TIMESTAMPTZ NOT NULL
);
