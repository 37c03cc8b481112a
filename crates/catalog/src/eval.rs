//! Measuring search quality on annotated requests (recall@k, MRR, complete@5).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One annotated request: the servers it needs, and equivalent servers for some of them.
#[derive(Debug, Clone, Deserialize)]
pub struct EvalQuery {
    #[serde(default)]
    pub id: String,
    pub query: String,
    pub servers: Vec<String>,
    #[serde(default)]
    pub alternatives: HashMap<String, Vec<String>>,
}

/// Averages over the requests of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Metrics {
    pub queries: usize,
    pub recall_at_1: f64,
    pub recall_at_3: f64,
    pub recall_at_5: f64,
    pub mrr: f64,
    /// The share of requests with all their servers in the top 5.
    pub complete_at_5: f64,
}

impl EvalQuery {
    /// Whether `name` satisfies the required server `required`.
    fn satisfies(&self, required: &str, name: &str) -> bool {
        required == name || self.alternatives.get(required).is_some_and(|alt| alt.iter().any(|a| a == name))
    }

    fn found_within(&self, ranked: &[String], k: usize) -> usize {
        let top = &ranked[..k.min(ranked.len())];
        self.servers.iter().filter(|required| top.iter().any(|name| self.satisfies(required, name))).count()
    }

    fn first_hit(&self, ranked: &[String]) -> Option<usize> {
        ranked.iter().position(|name| self.servers.iter().any(|required| self.satisfies(required, name)))
    }
}

impl EvalQuery {
    /// For each required server not in the top five: its name and rank (1-based) among `ranked`,
    /// `None` when it is not there at all.
    pub fn misses(&self, ranked: &[String]) -> Vec<(String, Option<usize>)> {
        self.servers
            .iter()
            .filter_map(|required| {
                let rank = ranked.iter().position(|name| self.satisfies(required, name));
                (rank.is_none_or(|r| r >= 5)).then(|| (required.clone(), rank.map(|r| r + 1)))
            })
            .collect()
    }
}

/// Scores ranked server names (best first) against each request's annotation.
pub fn score(runs: &[(EvalQuery, Vec<String>)]) -> Metrics {
    let mut m = Metrics { queries: runs.len(), ..Default::default() };
    if runs.is_empty() {
        return m;
    }
    for (query, ranked) in runs {
        let needed = query.servers.len().max(1) as f64;
        m.recall_at_1 += query.found_within(ranked, 1) as f64 / needed;
        m.recall_at_3 += query.found_within(ranked, 3) as f64 / needed;
        m.recall_at_5 += query.found_within(ranked, 5) as f64 / needed;
        m.complete_at_5 += f64::from(u8::from(query.found_within(ranked, 5) == query.servers.len()));
        m.mrr += query.first_hit(ranked).map_or(0.0, |rank| 1.0 / (rank as f64 + 1.0));
    }
    let n = runs.len() as f64;
    for value in [&mut m.recall_at_1, &mut m.recall_at_3, &mut m.recall_at_5, &mut m.mrr, &mut m.complete_at_5] {
        *value /= n;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(servers: &[&str]) -> EvalQuery {
        EvalQuery {
            id: String::new(),
            query: String::new(),
            servers: servers.iter().map(|s| s.to_string()).collect(),
            alternatives: HashMap::from([("A".to_string(), vec!["A2".to_string()])]),
        }
    }

    fn ranked(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metrics_count_required_servers_and_their_alternatives() {
        let runs =
            vec![(query(&["A", "B"]), ranked(&["x", "A2", "y", "z", "w", "B"])), (query(&["C"]), ranked(&["C"]))];
        let m = score(&runs);
        assert_eq!(m.recall_at_1, (0.0 + 1.0) / 2.0);
        assert_eq!(m.recall_at_3, (0.5 + 1.0) / 2.0);
        assert_eq!(m.recall_at_5, (0.5 + 1.0) / 2.0);
        assert_eq!(m.complete_at_5, 0.5);
        assert_eq!(m.mrr, (0.5 + 1.0) / 2.0);
    }
}

/// An evaluation run: the catalog file indexed in memory, every request searched with each method.
pub mod run {
    use std::sync::Arc;

    use switchboard_embed::Embedder;

    use super::{score, EvalQuery, Metrics};
    use crate::import::{self, ImportFile};
    use crate::search::{document_texts, Method, Query, SearchIndex, Vectors};
    use crate::CatalogError;

    /// Indexes the entries of a catalog file (any importable format), embedding them if a model is given.
    pub async fn index(file: ImportFile<'_>, embedder: Option<&dyn Embedder>) -> Result<SearchIndex, CatalogError> {
        let merged = import::merge(&[], import::parse(&[file])?)?;
        let entries: Vec<Arc<_>> = merged.changed.into_iter().map(Arc::new).collect();
        let vectors = match embedder {
            Some(embedder) => {
                let texts: Vec<Vec<String>> = entries.iter().map(|e| document_texts(e)).collect();
                let flat: Vec<String> = texts.iter().flatten().cloned().collect();
                let vectors = embedder.embed(&flat).await.map_err(|e| CatalogError::Index(e.to_string()))?;
                let mut per_entry = Vec::with_capacity(entries.len());
                let mut at = 0;
                for t in &texts {
                    per_entry.push(vectors[at..at + t.len()].to_vec());
                    at += t.len();
                }
                Some(Vectors::new(embedder.dimension(), &per_entry).map_err(CatalogError::Index)?)
            }
            None => None,
        };
        SearchIndex::build(entries, vectors).map_err(CatalogError::Index)
    }

    /// Prepares each request for search (its parts, cues and, with a model, their vectors) once,
    /// for every method to reuse.
    pub async fn prepare(queries: &[EvalQuery], embedder: Option<&dyn Embedder>) -> Result<Vec<Query>, CatalogError> {
        let mut out = Vec::with_capacity(queries.len());
        for q in queries {
            let mut query = Query::new(&q.query);
            if let Some(embedder) = embedder {
                query.vectors =
                    Some(embedder.embed(&query.texts()).await.map_err(|e| CatalogError::Index(e.to_string()))?);
            }
            out.push(query);
        }
        Ok(out)
    }

    /// Searches every prepared request with `method`: each request with the names of its top ten.
    pub fn rank(
        index: &SearchIndex,
        queries: &[EvalQuery],
        prepared: &[Query],
        method: Method,
    ) -> Vec<(EvalQuery, Vec<String>)> {
        queries
            .iter()
            .zip(prepared)
            .map(|(q, query)| {
                let ranked = index.search(query, method, 10).into_iter().map(|h| h.entry.name.clone()).collect();
                (q.clone(), ranked)
            })
            .collect()
    }

    /// Searches every prepared request with `method` and scores the top ten against the annotations.
    pub fn measure(index: &SearchIndex, queries: &[EvalQuery], prepared: &[Query], method: Method) -> Metrics {
        score(&rank(index, queries, prepared, method))
    }
}
