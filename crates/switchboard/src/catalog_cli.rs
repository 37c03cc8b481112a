//! `switchboard catalog …`: import, export, search and evaluate the catalog from the command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use switchboard_catalog::eval::{self, EvalQuery, Metrics};
use switchboard_catalog::{Catalog, ImportFile, Method, SearchHit};

use crate::app;
use crate::cli::StoreArgs;
use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Import catalog files (a plain list, servers.json/config.json/credinfo.json, or registry server.json).
    /// All or nothing; importing the same files again changes nothing.
    Import(ImportArgs),
    /// Print the whole catalog as a plain JSON list of entries (the format `import` reads back).
    Export(CommonArgs),
    /// Find the servers a request needs.
    Search(SearchArgs),
    /// Measure search quality on annotated requests: recall@1/3/5, MRR and complete@5.
    Eval(EvalArgs),
}

/// Where the catalog lives; each overrides the setting of the same name.
#[derive(Debug, Default, Args, Serialize)]
pub struct CommonArgs {
    #[command(flatten)]
    #[serde(flatten)]
    store: StoreArgs,
    /// Directory of the all-MiniLM-L6-v2 model, for semantic search [env: SWITCHBOARD_EMBED_MODEL_DIR]
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    embed_model_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The files to import
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Print `{"results": [{"name", "score", …}]}` and nothing else
    #[arg(long)]
    json: bool,
    /// How many results
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=50))]
    limit: u16,
    /// Drop results scoring below this (0–1)
    #[arg(long, default_value_t = 0.0)]
    threshold: f32,
    /// The request, in plain words
    #[arg(required = true, value_name = "QUERY")]
    query: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The catalog to search (any importable format)
    #[arg(long, value_name = "FILE")]
    catalog: PathBuf,
    /// Annotated requests: [{"query", "servers": [...], "alternatives": {...}}]
    #[arg(long, value_name = "FILE")]
    queries: PathBuf,
    /// Directory of the all-MiniLM-L6-v2 model; without it only BM25 is measured [env: SWITCHBOARD_EMBED_MODEL_DIR]
    #[arg(long, value_name = "DIR")]
    embed_model_dir: Option<PathBuf>,
    /// Print the figures as JSON
    #[arg(long)]
    json: bool,
    /// Also list the requests whose servers are not all in the hybrid (or BM25) top five
    #[arg(long)]
    misses: bool,
}

pub async fn run(command: CatalogCommand) -> anyhow::Result<()> {
    match command {
        CatalogCommand::Import(args) => {
            let catalog = open(&args.common, true).await?;
            let contents = args
                .files
                .iter()
                .map(|path| std::fs::read(path).with_context(|| format!("cannot read {}", path.display())))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let names: Vec<String> = args.files.iter().map(|p| p.display().to_string()).collect();
            let files: Vec<ImportFile<'_>> =
                names.iter().zip(&contents).map(|(name, bytes)| ImportFile { name, bytes }).collect();
            let report = catalog.import(&files).await?;
            println!(
                "imported {} file(s): {} created, {} updated, {} unchanged",
                files.len(),
                report.created,
                report.updated,
                report.unchanged
            );
        }
        CatalogCommand::Export(args) => {
            let catalog = open(&args, false).await?;
            let entries: Vec<_> = catalog.entries().await?.iter().map(|e| (**e).clone()).collect();
            println!("{}", serde_json::to_string_pretty(&entries)?);
        }
        CatalogCommand::Search(args) => {
            let catalog = open(&args.common, true).await?;
            let query = args.query.join(" ");
            let hits = catalog.search(&query, args.limit.into(), args.threshold).await?;
            print_hits(&hits, args.json)?;
        }
        CatalogCommand::Eval(args) => evaluate(args).await?,
    }
    Ok(())
}

/// Opens the catalog in the configured database, with the built-in entries; with `embed`, loads
/// the embedding model and brings the stored vectors up to date first.
async fn open(args: &CommonArgs, embed: bool) -> anyhow::Result<Catalog> {
    let file = crate::cli::config_file(args.store.config.clone());
    let mut settings = Settings::load(file.as_deref(), args)?;
    if settings.log_level == "info" {
        settings.log_level = "warn".into();
    }
    crate::telemetry::init(&settings);
    settings.validate()?;
    app::create_private_dir(&settings.data_dir)
        .with_context(|| format!("cannot create the data directory {}", settings.data_dir.display()))?;
    let store = app::open_store(&settings).await?;
    let catalog = Catalog::new(store, None);
    catalog.seed_builtin().await?;
    if embed {
        if let Some(embedder) = app::embedder(&settings).await? {
            catalog.set_embedder(embedder);
            catalog.refresh().await?;
        }
    }
    Ok(catalog)
}

#[derive(Serialize)]
struct Hit<'a> {
    name: &'a str,
    slug: &'a str,
    score: f32,
    matched: &'a [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    bm25: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cosine: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<&'a str>,
    description: &'a str,
}

fn print_hits(hits: &[SearchHit], json: bool) -> anyhow::Result<()> {
    let rows: Vec<Hit<'_>> = hits
        .iter()
        .map(|h| Hit {
            name: &h.entry.name,
            slug: &h.entry.slug,
            score: h.score,
            matched: &h.matched,
            bm25: h.bm25,
            cosine: h.cosine,
            tool: h.tool.as_deref(),
            description: &h.entry.description,
        })
        .collect();
    if json {
        println!("{}", serde_json::json!({ "results": rows }));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no server matches");
    }
    for (rank, row) in rows.iter().enumerate() {
        let tool = row.tool.map(|t| format!(", tool {t}")).unwrap_or_default();
        println!("{:>2}. {:.3}  {}  ({}{tool})", rank + 1, row.score, row.name, row.matched.join("+"));
    }
    Ok(())
}

async fn evaluate(args: EvalArgs) -> anyhow::Result<()> {
    let catalog = std::fs::read(&args.catalog).with_context(|| format!("cannot read {}", args.catalog.display()))?;
    let queries: Vec<EvalQuery> = serde_json::from_slice(
        &std::fs::read(&args.queries).with_context(|| format!("cannot read {}", args.queries.display()))?,
    )
    .with_context(|| format!("{} is not a list of annotated requests", args.queries.display()))?;
    let embedder = match args.embed_model_dir {
        Some(dir) => Some(tokio::task::spawn_blocking(move || switchboard_embed::MiniLm::load(&dir)).await??),
        None => None,
    };
    let embedder_ref = embedder.as_ref().map(|e| e as &dyn switchboard_embed::Embedder);
    let name = args.catalog.display().to_string();
    let index = eval::run::index(ImportFile { name: &name, bytes: &catalog }, embedder_ref).await?;
    let mut methods = vec![("bm25", Method::Bm25)];
    if embedder.is_some() {
        methods.push(("dense", Method::Dense));
        methods.push(("hybrid", Method::Hybrid));
    }
    let prepared = eval::run::prepare(&queries, embedder_ref).await?;
    let results: Vec<(&str, Metrics)> = methods
        .iter()
        .copied()
        .map(|(label, method)| (label, eval::run::measure(&index, &queries, &prepared, method)))
        .collect();
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> =
            results.iter().map(|(l, m)| (l.to_string(), serde_json::to_value(m).unwrap_or_default())).collect();
        println!("{}", serde_json::Value::Object(map));
        return Ok(());
    }
    if args.misses {
        let (label, method) = methods.last().copied().expect("BM25 is always measured");
        println!("requests not complete in the {label} top five:");
        for (query, ranked) in eval::run::rank(&index, &queries, &prepared, method) {
            let missing = query.misses(&ranked);
            if missing.is_empty() {
                continue;
            }
            let text: String = query.query.chars().take(110).collect();
            println!("- {text}");
            for (server, rank) in missing {
                println!("    missing {server} (rank {})", rank.map_or("> 10".to_string(), |r| r.to_string()));
            }
            println!("    top five: {}", ranked.iter().take(5).cloned().collect::<Vec<_>>().join(" | "));
        }
    }
    println!("{} requests, {} servers", queries.len(), index.len());
    println!("{:<8} {:>6} {:>6} {:>6} {:>6} {:>11}", "method", "R@1", "R@3", "R@5", "MRR", "complete@5");
    for (label, m) in &results {
        println!(
            "{label:<8} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>11.3}",
            m.recall_at_1, m.recall_at_3, m.recall_at_5, m.mrr, m.complete_at_5
        );
    }
    Ok(())
}
