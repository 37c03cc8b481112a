-- Credentials, sealed by the vault (the value never reaches the database in clear), and the
-- agents created from described workflows.
CREATE TABLE credentials (
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server       TEXT NOT NULL,
    key          TEXT NOT NULL,
    ciphertext   BLOB NOT NULL,
    nonce        BLOB NOT NULL,
    key_version  INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (user_id, server, key)
);

CREATE TABLE agents (
    id               BLOB PRIMARY KEY,
    user_id          BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL,
    servers          TEXT NOT NULL,
    system_prompt    TEXT NOT NULL,
    steps            TEXT NOT NULL,
    conversation_id  BLOB,
    created_at       TEXT NOT NULL
);
CREATE INDEX agents_by_owner ON agents (user_id, created_at DESC, id DESC);
