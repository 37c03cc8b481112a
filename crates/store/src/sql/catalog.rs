//! The MCP server catalog: entries as JSON documents, with their embeddings.

use chrono::{DateTime, Utc};

use super::{decode, first, single};
use crate::db::{Db, Tx};
use crate::{params, CatalogRecord, Result};

pub(super) async fn entries<D: Db>(db: &D) -> Result<Vec<CatalogRecord>> {
    let rows = db
        .fetch(
            "SELECT name, slug, data, content_hash, embedding_model, embedding, updated_at \
             FROM catalog_entries ORDER BY name",
            &[],
        )
        .await?;
    decode(rows, |mut r| {
        Ok(CatalogRecord {
            name: r.text()?,
            slug: r.text()?,
            data: r.text()?,
            content_hash: r.text()?,
            embedding_model: r.opt_text()?,
            embedding: r.opt_blob()?,
            updated_at: r.time()?,
        })
    })
}

pub(super) async fn entry_data<D: Db>(db: &D, name: &str) -> Result<Option<String>> {
    first(db.fetch("SELECT data FROM catalog_entries WHERE name = $1", &params![name]).await?)
        .map(|mut r| r.text())
        .transpose()
}

pub(super) async fn upsert<D: Db>(db: &D, records: &[CatalogRecord]) -> Result<()> {
    // A changed entry drops its embedding (it describes the old text); an unchanged one keeps it.
    const SQL: &str = "INSERT INTO catalog_entries (name, slug, data, content_hash, embedding_model, embedding, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (name) DO UPDATE SET slug = excluded.slug, data = excluded.data, \
           embedding_model = CASE WHEN catalog_entries.content_hash = excluded.content_hash \
             THEN COALESCE(excluded.embedding_model, catalog_entries.embedding_model) ELSE excluded.embedding_model END, \
           embedding = CASE WHEN catalog_entries.content_hash = excluded.content_hash \
             THEN COALESCE(excluded.embedding, catalog_entries.embedding) ELSE excluded.embedding END, \
           content_hash = excluded.content_hash, updated_at = excluded.updated_at";
    let mut tx = db.begin().await?;
    for r in records {
        tx.execute(
            SQL,
            &params![
                &r.name,
                &r.slug,
                &r.data,
                &r.content_hash,
                r.embedding_model.as_deref(),
                r.embedding.as_deref(),
                r.updated_at
            ],
        )
        .await?;
    }
    tx.commit().await
}

pub(super) async fn set_embeddings<D: Db>(db: &D, model: &str, items: &[(String, String, Vec<u8>)]) -> Result<()> {
    let mut tx = db.begin().await?;
    for (name, hash, bytes) in items {
        tx.execute(
            "UPDATE catalog_entries SET embedding_model = $1, embedding = $2 WHERE name = $3 AND content_hash = $4",
            &params![model, bytes, name, hash],
        )
        .await?;
    }
    tx.commit().await
}

pub(super) async fn delete<D: Db>(db: &D, slug: &str) -> Result<bool> {
    Ok(db.execute("DELETE FROM catalog_entries WHERE slug = $1", &params![slug]).await? > 0)
}

pub(super) async fn revision<D: Db>(db: &D) -> Result<(i64, Option<DateTime<Utc>>)> {
    let mut r = single(db.fetch("SELECT COUNT(*), MAX(updated_at) FROM catalog_entries", &[]).await?)?;
    Ok((r.int()?, r.opt_time()?))
}
