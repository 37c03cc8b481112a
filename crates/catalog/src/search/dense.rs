//! The semantic half of search: one vector per entry and one per tool, compared by cosine.

use super::text::words;
use crate::entry::CatalogEntry;

/// The texts embedded for an entry: first the entry itself, then each of its tools.
pub fn document_texts(entry: &CatalogEntry) -> Vec<String> {
    let mut texts = Vec::with_capacity(1 + entry.tools.len());
    let title = entry.title.as_deref().map(|t| format!(" ({t})")).unwrap_or_default();
    texts.push(format!("{}{title}: {}", entry.name, entry.description));
    for tool in &entry.tools {
        texts.push(format!("{}: {}", words(&tool.name), tool.description));
    }
    texts
}

/// Every entry's vectors, laid out flat for fast scans.
#[derive(Debug, Default)]
pub struct Vectors {
    dimension: usize,
    /// Entry `i`'s own vector at `i * dimension`.
    entries: Vec<f32>,
    /// Tool vectors, and the entry each belongs to.
    tools: Vec<f32>,
    tool_owner: Vec<u32>,
    tool_index: Vec<u32>,
}

/// How well one entry matches one query vector.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenseScore {
    /// Cosine with the entry's own text.
    pub entry: f32,
    /// The best cosine among its tools, and which tool.
    pub tool: f32,
    pub tool_index: Option<u32>,
}

impl DenseScore {
    /// The best tool counts three times the entry's own text: on the retrieval set's development
    /// split this beat either alone, their maximum and their mean (R@5 0.839 against 0.799 for the mean).
    pub fn combined(&self) -> f32 {
        0.25 * self.entry + 0.75 * self.tool
    }
}

impl Vectors {
    /// `per_entry[i]` holds entry `i`'s vectors as `document_texts` orders them.
    pub fn new(dimension: usize, per_entry: &[Vec<Vec<f32>>]) -> Self {
        let mut this = Self { dimension, ..Default::default() };
        for (i, vectors) in per_entry.iter().enumerate() {
            match vectors.split_first() {
                Some((own, tools)) => {
                    this.entries.extend_from_slice(own);
                    for (t, tool) in tools.iter().enumerate() {
                        this.tools.extend_from_slice(tool);
                        this.tool_owner.push(i as u32);
                        this.tool_index.push(t as u32);
                    }
                }
                None => this.entries.extend(std::iter::repeat_n(0.0, dimension)),
            }
        }
        this
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// One score per entry, in entry order.
    pub fn score(&self, query: &[f32]) -> Vec<DenseScore> {
        let d = self.dimension;
        let mut scores: Vec<DenseScore> = self
            .entries
            .chunks_exact(d)
            .map(|v| DenseScore { entry: switchboard_embed::dot(v, query), tool: f32::MIN, tool_index: None })
            .collect();
        for ((v, &owner), &index) in self.tools.chunks_exact(d).zip(&self.tool_owner).zip(&self.tool_index) {
            let cosine = switchboard_embed::dot(v, query);
            let slot = &mut scores[owner as usize];
            if cosine > slot.tool {
                slot.tool = cosine;
                slot.tool_index = Some(index);
            }
        }
        for score in &mut scores {
            if score.tool_index.is_none() {
                score.tool = score.entry;
            }
        }
        scores
    }
}

/// Packs an entry's vectors into bytes for storage (little-endian f32s, entry first).
pub fn pack(vectors: &[Vec<f32>]) -> Vec<u8> {
    vectors.iter().flatten().flat_map(|x| x.to_le_bytes()).collect()
}

/// Unpacks stored bytes; `None` when they do not hold `count` vectors of `dimension`.
pub fn unpack(bytes: &[u8], dimension: usize, count: usize) -> Option<Vec<Vec<f32>>> {
    if dimension == 0 || bytes.len() != dimension * count * 4 {
        return None;
    }
    let floats: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Some(floats.chunks_exact(dimension).map(<[f32]>::to_vec).collect())
}
