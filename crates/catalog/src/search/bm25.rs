//! The lexical half of search: BM25 over an in-memory tantivy index.

use std::sync::Arc;

use tantivy::collector::TopDocs;
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{doc, Index, IndexReader, Searcher, Term};

use super::text::words;
use crate::entry::CatalogEntry;

const ANALYZER: &str = "catalog";
/// How much a match in each field counts, relative to the description.
const NAME_BOOST: f32 = 2.0;
const TOOLS_BOOST: f32 = 1.0;
const DESCRIPTION_BOOST: f32 = 1.0;

pub struct Bm25 {
    index: Index,
    reader: IndexReader,
    name: Field,
    description: Field,
    tools: Field,
    /// Per segment, the column mapping a document to its entry's position.
    positions: Vec<Column<u64>>,
}

fn analyzer() -> TextAnalyzer {
    let mut builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .dynamic();
    if let Some(stop_words) = StopWordFilter::new(Language::English) {
        builder = builder.filter_dynamic(stop_words);
    }
    builder.filter_dynamic(Stemmer::new(Language::English)).build()
}

impl Bm25 {
    pub fn build(entries: &[Arc<CatalogEntry>]) -> tantivy::Result<Self> {
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default().set_tokenizer(ANALYZER).set_index_option(IndexRecordOption::WithFreqs),
        );
        let mut schema = Schema::builder();
        let name = schema.add_text_field("name", text.clone());
        let description = schema.add_text_field("description", text.clone());
        let tools = schema.add_text_field("tools", text);
        let position = schema.add_u64_field("position", FAST);
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(ANALYZER, analyzer());

        // One thread, the smallest arena tantivy allows; a catalog of 10,000 entries still fits in
        // one segment, built in one pass.
        let mut writer = index.writer_with_num_threads(1, 15_000_000)?;
        for (i, entry) in entries.iter().enumerate() {
            let tool_text: String =
                entry.tools.iter().map(|t| format!("{} {}. ", words(&t.name), t.description)).collect();
            let title = entry.title.as_deref().unwrap_or_default();
            writer.add_document(doc!(
                name => format!("{} {}", words(&entry.name), title),
                description => entry.description.clone(),
                tools => tool_text,
                position => i as u64,
            ))?;
        }
        writer.commit()?;
        let reader = index.reader()?;
        let searcher = reader.searcher();
        let positions = searcher
            .segment_readers()
            .iter()
            .map(|segment| segment.fast_fields().u64("position"))
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(Self { index, reader, name, description, tools, positions })
    }

    /// Entries matching any word of `text`, best first, as (position, score).
    pub fn search(&self, text: &str, limit: usize) -> Vec<(usize, f32)> {
        let Some(query) = self.query(text) else { return Vec::new() };
        let searcher: Searcher = self.reader.searcher();
        let Ok(top) = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score()) else {
            return Vec::new();
        };
        top.into_iter()
            .filter_map(|(score, address)| {
                let column = self.positions.get(address.segment_ord as usize)?;
                column.first(address.doc_id).map(|p| (p as usize, score))
            })
            .collect()
    }

    fn query(&self, text: &str) -> Option<BooleanQuery> {
        let mut analyzer = self.index.tokenizers().get(ANALYZER)?;
        let mut terms: Vec<String> = Vec::new();
        let prepared = words(text);
        let mut stream = analyzer.token_stream(&prepared);
        while stream.advance() {
            let token = stream.token().text.clone();
            if !terms.contains(&token) {
                terms.push(token);
            }
        }
        if terms.is_empty() {
            return None;
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for term in &terms {
            for (field, boost) in
                [(self.name, NAME_BOOST), (self.description, DESCRIPTION_BOOST), (self.tools, TOOLS_BOOST)]
            {
                let query = TermQuery::new(Term::from_field_text(field, term), IndexRecordOption::WithFreqs);
                clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(query), boost))));
            }
        }
        Some(BooleanQuery::new(clauses))
    }
}
