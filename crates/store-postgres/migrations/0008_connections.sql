-- Accounts connected with OAuth (tokens sealed by the vault), authorizations in progress (only
-- a hash of each state; single use), and clients registered with authorization servers.
CREATE TABLE connections (
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('connected', 'needs_consent')),
    scopes       JSONB NOT NULL,
    ciphertext   BYTEA NOT NULL,
    nonce        BYTEA NOT NULL,
    key_version  BIGINT NOT NULL,
    expires_at   TIMESTAMPTZ,
    method       JSONB NOT NULL,
    version      BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, server)
);

CREATE TABLE oauth_flows (
    state_hash   TEXT PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server       TEXT NOT NULL,
    ciphertext   BYTEA NOT NULL,
    nonce        BYTEA NOT NULL,
    scopes       JSONB NOT NULL,
    method       JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_flows_by_expiry ON oauth_flows (expires_at);

CREATE TABLE oauth_clients (
    issuer         TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    ciphertext     BYTEA,
    nonce          BYTEA,
    auth_method    TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, redirect_uri)
);
