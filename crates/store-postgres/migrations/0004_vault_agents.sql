-- Credentials, sealed by the vault (the value never reaches the database in clear), and the
-- agents created from described workflows.
CREATE TABLE credentials (
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server       TEXT NOT NULL,
    key          TEXT NOT NULL,
    ciphertext   BYTEA NOT NULL,
    nonce        BYTEA NOT NULL,
    key_version  BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, server, key)
);

CREATE TABLE agents (
    id               UUID PRIMARY KEY,
    user_id          UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL,
    servers          JSONB NOT NULL,
    system_prompt    TEXT NOT NULL,
    steps            JSONB NOT NULL,
    conversation_id  UUID,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX agents_by_owner ON agents (user_id, created_at DESC, id DESC);
