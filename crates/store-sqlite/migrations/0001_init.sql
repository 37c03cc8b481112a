-- Users, conversations, messages and revoked tokens.
-- Ids are 16-byte UUID blobs; times are RFC 3339 text in UTC (sortable as text).
CREATE TABLE users (
    id          BLOB PRIMARY KEY,
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    email       TEXT,
    name        TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (issuer, subject)
);

CREATE TABLE conversations (
    id             BLOB PRIMARY KEY,
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title          TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'active',
    context        TEXT NOT NULL DEFAULT '{}',
    message_count  INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX conversations_by_owner ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE messages (
    id               BLOB PRIMARY KEY,
    conversation_id  BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id          BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role             TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    content          TEXT NOT NULL,
    metadata         TEXT NOT NULL DEFAULT '{}',
    created_at       TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, created_at, id);

CREATE TABLE revoked_tokens (
    jti         TEXT PRIMARY KEY,
    expires_at  TEXT NOT NULL
);
