//! Times embedding whole retrieval requests as a search does — the request and its parts (the
//! cues' vectors are cached by the server) — for the full texts, which `bench/catalog.sh` cuts to
//! 300 characters to keep its URLs short. Figures, not a test.
//!
//!   cargo run --release -p switchboard-catalog --example query_cost -- MODEL_DIR QUERIES_JSON [CHARS]
//!
//! With CHARS, each request is cut to that many characters first, as the benchmark cuts them.
use std::time::Instant;

use switchboard_catalog::Query;
use switchboard_embed::MiniLm;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(model_dir), Some(queries)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: query_cost MODEL_DIR QUERIES_JSON [CHARS]");
        std::process::exit(2);
    };
    let model = MiniLm::load(std::path::Path::new(model_dir)).expect("the model loads");
    let queries: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(queries).expect("the queries file")).expect("JSON");
    let cut: Option<usize> = args.get(3).map(|c| c.parse().expect("CHARS is a number"));
    let mut times = Vec::new();
    for q in &queries {
        let full = q["query"].as_str().unwrap_or_default();
        let text: String = full.chars().take(cut.unwrap_or(usize::MAX)).collect();
        let query = Query::new(&text);
        let texts = query.request_texts();
        let _ = model.embed_blocking(&texts).expect("embeds");
        let started = Instant::now();
        for _ in 0..3 {
            let _ = model.embed_blocking(&texts).expect("embeds");
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0 / 3.0;
        let lengths: Vec<usize> = texts.iter().map(|t| t.chars().count()).collect();
        println!("{:5} characters, {:2} parts: {ms:6.1} ms  {lengths:?}", text.len(), query.parts.len());
        times.push(ms);
    }
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!("{} requests: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms", times.len(), at(0.5), at(0.9), at(1.0));
}
