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

/// Words that carry no need of their own. Requests are conversational ("Hey, I'd love to figure
/// out which one could…"), and every word left in the query adds noise to BM25's sum. This is the
/// Glasgow information-retrieval stop list less the words that name what a tool does (find, get,
/// show, call, describe, system, …). Against tantivy's 33-word English list, BM25 alone goes
/// from R@5 0.435 to 0.53 on the retrieval set's development split.
#[rustfmt::skip]
const STOP_WORDS: [&str; 280] = [
    "a", "about", "above", "across", "after", "afterwards", "again", "against", "all", "almost", "alone", "along",
    "already", "also", "although", "always", "am", "among", "amongst", "amoungst", "an", "and", "another", "any",
    "anyhow", "anyone", "anything", "anyway", "anywhere", "are", "around", "as", "at", "be", "became", "because",
    "become", "becomes", "becoming", "been", "before", "beforehand", "behind", "being", "below", "beside", "besides",
    "between", "beyond", "both", "but", "by", "can", "cannot", "cant", "co", "could", "couldnt", "do", "done",
    "down", "due", "during", "each", "eg", "eight", "either", "eleven", "else", "elsewhere", "enough", "etc", "even",
    "ever", "every", "everyone", "everything", "everywhere", "except", "few", "fifteen", "fifty", "five", "for",
    "former", "formerly", "forty", "four", "from", "further", "go", "had", "has", "hasnt", "have", "he", "hence",
    "her", "here", "hereafter", "hereby", "herein", "hereupon", "hers", "herself", "him", "himself", "his", "how",
    "however", "hundred", "i", "ie", "if", "in", "inc", "indeed", "into", "is", "it", "its", "itself", "latter",
    "latterly", "least", "less", "ltd", "many", "may", "me", "meanwhile", "might", "mine", "more", "moreover",
    "most", "mostly", "much", "must", "my", "myself", "namely", "neither", "never", "nevertheless", "nine", "no",
    "nobody", "none", "noone", "nor", "not", "nothing", "now", "nowhere", "of", "off", "often", "on", "once", "one",
    "only", "onto", "or", "other", "others", "otherwise", "our", "ours", "ourselves", "out", "over", "own", "per",
    "perhaps", "please", "rather", "re", "same", "seem", "seemed", "seeming", "seems", "serious", "several", "she",
    "should", "since", "sincere", "six", "sixty", "so", "some", "somehow", "someone", "something", "sometime",
    "sometimes", "somewhere", "still", "such", "ten", "than", "that", "the", "their", "them", "themselves", "then",
    "thence", "there", "thereafter", "thereby", "therefore", "therein", "thereupon", "these", "they", "third",
    "this", "those", "though", "three", "through", "throughout", "thru", "thus", "to", "together", "too", "toward",
    "towards", "twelve", "twenty", "two", "un", "under", "until", "up", "upon", "us", "very", "via", "was", "we",
    "well", "were", "what", "whatever", "when", "whence", "whenever", "where", "whereafter", "whereas", "whereby",
    "wherein", "whereupon", "wherever", "whether", "which", "while", "whither", "who", "whoever", "whole", "whom",
    "whose", "why", "will", "with", "within", "without", "would", "yet", "you", "your", "yours", "yourself",
    "yourselves",
];

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(STOP_WORDS.iter().map(|w| w.to_string())))
        .filter(Stemmer::new(Language::English))
        .build()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, description: &str, tool: &str) -> Arc<CatalogEntry> {
        let value =
            serde_json::json!({"name": name, "description": description, "tools": [{"name": tool, "description": ""}]});
        Arc::new(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn filler_words_match_nothing_and_words_naming_an_action_still_count() {
        let entries = [
            entry("Weather", "Forecasts for any city you could want", "get_forecast"),
            entry("Notes", "Keep notes; please be brief", "show_note"),
        ];
        let index = Bm25::build(&entries).unwrap();
        assert!(index.search("could you please help me with this, I would love it", 5).is_empty());
        let hits = index.search("Hey, could you please show me what I noted", 5);
        assert_eq!(hits.first().map(|h| h.0), Some(1), "{hits:?}");
        let hits = index.search("I'd love to get the forecast", 5);
        assert_eq!(hits.first().map(|h| h.0), Some(0), "{hits:?}");
    }
}
