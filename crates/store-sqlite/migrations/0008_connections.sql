-- Accounts connected with OAuth (tokens sealed by the vault), authorizations in progress (only
-- a hash of each state; single use), and clients registered with authorization servers.
CREATE TABLE connections (
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('connected', 'needs_consent')),
    scopes       TEXT NOT NULL,
    ciphertext   BLOB NOT NULL,
    nonce        BLOB NOT NULL,
    key_version  INTEGER NOT NULL,
    expires_at   TEXT,
    method       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (user_id, server)
);

CREATE TABLE oauth_flows (
    state_hash   TEXT PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server       TEXT NOT NULL,
    ciphertext   BLOB NOT NULL,
    nonce        BLOB NOT NULL,
    scopes       TEXT NOT NULL,
    method       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX oauth_flows_by_expiry ON oauth_flows (expires_at);

CREATE TABLE oauth_clients (
    issuer         TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    ciphertext     BLOB,
    nonce          BLOB,
    auth_method    TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (issuer, redirect_uri)
);
