-- Sessions of /mcp's session-based protocol era, so that a client's next request may land on any
-- server sharing the database: the session's owner and the client's initialize parameters.
CREATE TABLE mcp_sessions (
    id          TEXT PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state       JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX mcp_sessions_by_age ON mcp_sessions (created_at);
