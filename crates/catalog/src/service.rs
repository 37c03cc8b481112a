//! The catalog as the server uses it: entries in the store, an index over them, and embeddings
//! computed once per entry change.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use switchboard_embed::Embedder;
use switchboard_store::{CatalogRecord, Store, StoreError};

use crate::entry::CatalogEntry;
use crate::import::{self, ImportError, ImportFile};
use crate::search::{document_texts, pack, unpack, Method, Query, SearchHit, SearchIndex, Vectors};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the search index could not be built: {0}")]
    Index(String),
    #[error("a stored catalog entry is unreadable: {0}")]
    Corrupt(String),
}

/// What an import did.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

type Revision = (i64, Option<DateTime<Utc>>);
/// Cue vectors by (model, cue).
type CueVectors = HashMap<(String, &'static str), Vec<f32>>;

struct Loaded {
    revision: Revision,
    index: Arc<SearchIndex>,
    by_slug: HashMap<String, usize>,
    /// Whether the index holds vectors for every entry (when a model is configured).
    complete: bool,
    /// The model whose vectors the index holds.
    model: Option<String>,
}

/// The shared catalog service; cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    store: Arc<dyn Store>,
    /// Set once a model has loaded (in the background at start, so start stays fast).
    embedder: Arc<RwLock<Option<Arc<dyn Embedder>>>>,
    loaded: Arc<RwLock<Option<Arc<Loaded>>>>,
    /// One rebuild at a time; callers that arrive meanwhile wait and use its result.
    rebuild: Arc<tokio::sync::Mutex<()>>,
    /// Vectors of the capability cues, per model.
    cues: Arc<RwLock<CueVectors>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("embedder", &self.embedder()).finish()
    }
}

impl Catalog {
    pub fn new(store: Arc<dyn Store>, embedder: Option<Arc<dyn Embedder>>) -> Self {
        Self {
            store,
            embedder: Arc::new(RwLock::new(embedder)),
            loaded: Arc::default(),
            rebuild: Arc::default(),
            cues: Arc::default(),
        }
    }

    /// The embedding model in use, if any.
    pub fn embedder(&self) -> Option<Arc<dyn Embedder>> {
        self.embedder.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts using an embedding model; the next `refresh` embeds the entries and adds vectors.
    pub fn set_embedder(&self, embedder: Arc<dyn Embedder>) {
        *self.embedder.write().unwrap_or_else(|e| e.into_inner()) = Some(embedder);
    }

    /// Adds the built-in entries that are missing and updates built-in entries that changed;
    /// entries imported under the same name keep what the import gave them.
    pub async fn seed_builtin(&self) -> Result<ImportReport, CatalogError> {
        // One lookup per built-in entry, so a start on a large catalog does not read all of it.
        let mut fresh = Vec::new();
        let mut unchanged = 0;
        for entry in crate::builtin::entries() {
            let stored = match self.store.catalog_entry_data(&entry.name).await? {
                Some(data) => Some(
                    serde_json::from_str::<CatalogEntry>(&data)
                        .map_err(|e| CatalogError::Corrupt(format!("{}: {e}", entry.name)))?,
                ),
                None => None,
            };
            match stored {
                Some(s) if s.source != "builtin" || s == entry => unchanged += 1,
                _ => fresh.push(entry),
            }
        }
        if fresh.is_empty() {
            return Ok(ImportReport { unchanged, ..Default::default() });
        }
        let bytes = serde_json::to_vec(&fresh).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
        self.import(&[ImportFile { name: "built-in catalog", bytes: &bytes }]).await
    }

    /// Imports files all or nothing, then rebuilds the index so the next search sees the change.
    pub async fn import(&self, files: &[ImportFile<'_>]) -> Result<ImportReport, CatalogError> {
        let parsed = import::parse(files)?;
        let _guard = self.rebuild.lock().await;
        let existing = self.stored_entries().await?;
        let merged = import::merge(&existing, parsed)?;
        let now = switchboard_domain::now();
        let records = merged.changed.iter().map(|entry| record(entry, now)).collect::<Result<Vec<_>, _>>()?;
        if !records.is_empty() {
            self.store.upsert_catalog_entries(&records).await?;
        }
        self.load(true).await?;
        Ok(ImportReport { created: merged.created, updated: merged.updated, unchanged: merged.unchanged })
    }

    /// Deletes the entry with this slug; `false` when there is none.
    pub async fn delete(&self, slug: &str) -> Result<bool, CatalogError> {
        let _guard = self.rebuild.lock().await;
        let deleted = self.store.delete_catalog_entry(slug).await?;
        if deleted {
            self.load(true).await?;
        }
        Ok(deleted)
    }

    /// Every entry, in name order.
    pub async fn entries(&self) -> Result<Vec<Arc<CatalogEntry>>, CatalogError> {
        Ok(self.current().await?.index.entries().to_vec())
    }

    /// The entry with this slug, or exactly this name.
    pub async fn get(&self, key: &str) -> Result<Option<Arc<CatalogEntry>>, CatalogError> {
        let loaded = self.current().await?;
        let entries = loaded.index.entries();
        Ok(loaded
            .by_slug
            .get(key)
            .map(|&i| entries[i].clone())
            .or_else(|| entries.iter().find(|e| e.name == key).cloned()))
    }

    /// Ranked entries for a request; `threshold` drops hits whose fused score is lower.
    pub async fn search(&self, text: &str, limit: usize, threshold: f32) -> Result<Vec<SearchHit>, CatalogError> {
        let loaded = self.current().await?;
        let mut query = Query::new(text);
        if let (Some(embedder), true) = (self.embedder(), loaded.index.has_vectors()) {
            match self.query_vectors(embedder.as_ref(), &query).await {
                Ok(vectors) => query.vectors = Some(vectors),
                // Search always answers: without the query's vectors, BM25 alone.
                Err(e) => tracing::warn!(error = %e, "embedding the query failed; searching with BM25 only"),
            }
        }
        // Off the async runtime: the first search builds the lexical index (about a second for
        // 10,000 entries), and scoring every vector of a large catalog takes milliseconds that
        // other requests on this thread would otherwise wait out.
        let index = loaded.index.clone();
        let mut hits = tokio::task::spawn_blocking(move || index.search(&query, Method::Hybrid, limit))
            .await
            .map_err(|e| CatalogError::Index(e.to_string()))?;
        hits.retain(|h| h.score >= threshold);
        Ok(hits)
    }

    /// The request's and its parts' vectors, then the cues' (fixed texts, embedded once per model).
    async fn query_vectors(
        &self,
        embedder: &dyn Embedder,
        query: &Query,
    ) -> Result<Vec<Vec<f32>>, switchboard_embed::EmbedError> {
        let mut vectors = embedder.embed(&query.request_texts()).await?;
        for cue in &query.cues {
            let key = (embedder.model_id().to_string(), cue.text);
            let cached = self.cues.read().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
            let vector = match cached {
                Some(v) => v,
                None => {
                    let v = embedder.embed(&[cue.text.to_string()]).await?.remove(0);
                    self.cues.write().unwrap_or_else(|e| e.into_inner()).insert(key, v.clone());
                    v
                }
            };
            vectors.push(vector);
        }
        Ok(vectors)
    }

    /// Reloads when another server changed the catalog (call it periodically) and finishes
    /// embedding entries that lack vectors. Cheap when nothing changed.
    pub async fn refresh(&self) -> Result<(), CatalogError> {
        let revision = self.store.catalog_revision().await?;
        let model = self.embedder().map(|e| e.model_id().to_string());
        let stale = match self.snapshot() {
            Some(loaded) => loaded.revision != revision || !loaded.complete || loaded.model != model,
            None => true,
        };
        if stale {
            let _guard = self.rebuild.lock().await;
            self.load(true).await?;
        }
        Ok(())
    }

    fn snapshot(&self) -> Option<Arc<Loaded>> {
        self.loaded.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn current(&self) -> Result<Arc<Loaded>, CatalogError> {
        if let Some(loaded) = self.snapshot() {
            return Ok(loaded);
        }
        let _guard = self.rebuild.lock().await;
        if let Some(loaded) = self.snapshot() {
            return Ok(loaded);
        }
        // The first load answers with BM25 at once; vectors follow from `refresh`.
        self.load(false).await
    }

    async fn stored_entries(&self) -> Result<Vec<CatalogEntry>, CatalogError> {
        self.store
            .catalog_entries()
            .await?
            .iter()
            .map(|r| serde_json::from_str(&r.data).map_err(|e| CatalogError::Corrupt(format!("{}: {e}", r.name))))
            .collect()
    }

    /// Reads the store and builds a new index; with `embed`, computes and stores missing vectors first.
    /// Callers hold `rebuild`.
    async fn load(&self, embed: bool) -> Result<Arc<Loaded>, CatalogError> {
        let revision = self.store.catalog_revision().await?;
        let mut records = self.store.catalog_entries().await?;
        let mut entries = Vec::with_capacity(records.len());
        for r in &records {
            let entry: CatalogEntry =
                serde_json::from_str(&r.data).map_err(|e| CatalogError::Corrupt(format!("{}: {e}", r.name)))?;
            entries.push(Arc::new(entry));
        }

        let mut vectors = None;
        let mut complete = true;
        let embedder = self.embedder();
        let model_id = embedder.as_ref().map(|e| e.model_id().to_string());
        if let Some(embedder) = &embedder {
            let model = embedder.model_id().to_string();
            let dimension = embedder.dimension();
            let stale: Vec<usize> = (0..records.len())
                .filter(|&i| {
                    let r = &records[i];
                    r.embedding_model.as_deref() != Some(model.as_str())
                        || r.embedding
                            .as_deref()
                            .and_then(|b| unpack(b, dimension, 1 + entries[i].tools.len()))
                            .is_none()
                })
                .collect();
            if embed && !stale.is_empty() {
                self.embed_entries(embedder.as_ref(), &stale, &entries, &mut records).await?;
            }
            let per_entry: Option<Vec<Vec<Vec<f32>>>> = records
                .iter()
                .zip(&entries)
                .map(|(r, e)| {
                    r.embedding_model.as_deref().filter(|m| *m == model)?;
                    unpack(r.embedding.as_deref()?, dimension, 1 + e.tools.len())
                })
                .collect();
            complete = per_entry.is_some();
            vectors = per_entry.map(|p| Vectors::new(dimension, &p)).transpose().map_err(CatalogError::Index)?;
        }

        let by_slug = entries.iter().enumerate().map(|(i, e)| (e.slug.clone(), i)).collect();
        let index = tokio::task::spawn_blocking(move || SearchIndex::build(entries, vectors))
            .await
            .map_err(|e| CatalogError::Index(e.to_string()))?
            .map_err(CatalogError::Index)?;
        let loaded = Arc::new(Loaded { revision, index: Arc::new(index), by_slug, complete, model: model_id });
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Some(loaded.clone());
        Ok(loaded)
    }

    /// Embeds the listed entries in batches, storing each batch as it completes so an interrupted
    /// start resumes where it stopped.
    async fn embed_entries(
        &self,
        embedder: &dyn Embedder,
        which: &[usize],
        entries: &[Arc<CatalogEntry>],
        records: &mut [CatalogRecord],
    ) -> Result<(), CatalogError> {
        let started = std::time::Instant::now();
        // Catalogs repeat texts (forks of one server share tool descriptions): embed each text once.
        let mut known: HashMap<String, Vec<f32>> = HashMap::new();
        for chunk in which.chunks(64) {
            let mut spans = Vec::new();
            let mut fresh: Vec<String> = Vec::new();
            for &i in chunk {
                let own = document_texts(&entries[i]);
                for text in &own {
                    if !known.contains_key(text) && !fresh.contains(text) {
                        fresh.push(text.clone());
                    }
                }
                spans.push((i, own));
            }
            match embedder.embed(&fresh).await {
                Ok(vectors) => known.extend(fresh.into_iter().zip(vectors)),
                Err(e) => {
                    tracing::warn!(error = %e, "embedding catalog entries failed; search uses BM25 until it succeeds");
                    return Ok(());
                }
            }
            let mut items = Vec::with_capacity(spans.len());
            for (i, texts) in spans {
                let vectors: Vec<Vec<f32>> = texts.iter().map(|t| known[t].clone()).collect();
                let bytes = pack(&vectors);
                records[i].embedding_model = Some(embedder.model_id().to_string());
                records[i].embedding = Some(bytes.clone());
                items.push((records[i].name.clone(), records[i].content_hash.clone(), bytes));
            }
            self.store.set_catalog_embeddings(embedder.model_id(), &items).await?;
        }
        tracing::info!(
            entries = which.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "catalog entries embedded"
        );
        Ok(())
    }
}

fn record(entry: &CatalogEntry, now: DateTime<Utc>) -> Result<CatalogRecord, CatalogError> {
    let data = serde_json::to_string(entry).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
    // The hash covers only what is embedded, so a changed launch command keeps the vectors.
    let embedded = document_texts(entry).join("\n");
    Ok(CatalogRecord {
        name: entry.name.clone(),
        slug: entry.slug.clone(),
        content_hash: crate::entry::content_hash(&embedded),
        data,
        embedding_model: None,
        embedding: None,
        updated_at: now,
    })
}
