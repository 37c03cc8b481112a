-- The MCP server catalog, shared by all users. The entry itself is JSON owned by the catalog
-- crate; the columns beside it are what lookups and the embedding cache need.
CREATE TABLE catalog_entries (
    name             TEXT PRIMARY KEY,
    slug             TEXT NOT NULL UNIQUE,
    data             TEXT NOT NULL,
    content_hash     TEXT NOT NULL,
    embedding_model  TEXT,
    embedding        BYTEA,
    updated_at       TIMESTAMPTZ NOT NULL
);
