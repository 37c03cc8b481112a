//! Workflow analysis: from a described workflow to a design — the servers it needs, its steps and
//! the agent's instructions. A model designs from catalog candidates in a structured reply checked
//! against [`design_schema`] (one retry with the problems named); without a model the design is
//! read off the catalog search, one server per part of the request.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchboard_catalog::{CatalogEntry, SearchHit};
use switchboard_llm::{ChatMessage, ChatRequest, ChatRole, Provider, ProviderError, Usage};

/// How many catalog candidates the model chooses from, unless configured.
pub const DEFAULT_CANDIDATES: usize = 10;
/// Without a model, a request is taken for a workflow only when its best BM25 score reaches this
/// (a server's name or several of its distinctive words; measured on the built-in catalog, where
/// workflow requests score 14–35 and chat such as "plan my week" under 10).
pub const OFFLINE_MIN_BM25: f32 = 12.0;
/// Without a model, a candidate is chosen when its BM25 score for the whole request reaches this
/// share of the best one's…
const OFFLINE_RELATIVE_BM25: f32 = 0.5;
/// …or when it ranks first for a part of the request and reaches this share.
const OFFLINE_PART_BM25: f32 = 0.25;
/// Without a model, at most this many servers are chosen.
const OFFLINE_MAX_SERVERS: usize = 4;

/// A workflow ready to become an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Design {
    pub name: String,
    /// Catalog entry names, in the order the workflow uses them.
    pub servers: Vec<String>,
    pub steps: Vec<String>,
    pub system_prompt: String,
}

/// What the analysis concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum Analysis {
    Ready(Design),
    /// The model needs to know more; the question is for the user.
    Clarify(String),
    /// Nothing in the catalog fits.
    NoMatch(String),
    /// The message does not describe a workflow after all.
    NotAWorkflow,
}

/// The analysis failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    #[error(transparent)]
    Model(#[from] ProviderError),
    /// The model's reply did not match the schema twice.
    #[error("the model's workflow design was invalid twice: {0}")]
    InvalidDesign(String),
}

/// The JSON Schema the model's design must match.
pub fn design_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["status"],
        "properties": {
            "status": {"enum": ["ready", "clarify", "no_match", "not_a_workflow"],
                       "description": "ready: the servers and steps are chosen; clarify: a question for the user; no_match: no candidate fits; not_a_workflow: the message is not a workflow to automate"},
            "name": {"type": "string", "minLength": 1, "maxLength": 80, "pattern": "\\S", "description": "A short name for the agent (ready)"},
            "servers": {"type": "array", "minItems": 1, "maxItems": 10, "items": {"type": "string", "minLength": 1},
                        "description": "Names of the chosen candidates, exactly as given (ready)"},
            "steps": {"type": "array", "minItems": 1, "maxItems": 20, "items": {"type": "string", "minLength": 1, "pattern": "\\S"},
                      "description": "The workflow's steps in order (ready)"},
            "system_prompt": {"type": "string", "maxLength": 4000, "description": "Instructions for the agent that runs the workflow (ready)"},
            "question": {"type": "string", "minLength": 1, "pattern": "\\S", "description": "What to ask the user (clarify)"},
            "reason": {"type": "string", "description": "Why nothing fits (no_match)"}
        },
        "allOf": [
            {"if": {"properties": {"status": {"const": "ready"}}}, "then": {"required": ["name", "servers", "steps"]}},
            {"if": {"properties": {"status": {"const": "clarify"}}}, "then": {"required": ["question"]}}
        ]
    })
}

/// The schema, compiled once.
fn design_validator() -> &'static jsonschema::Validator {
    static VALIDATOR: std::sync::LazyLock<jsonschema::Validator> =
        std::sync::LazyLock::new(|| jsonschema::validator_for(&design_schema()).expect("the design schema is valid"));
    &VALIDATOR
}

#[derive(Deserialize)]
struct RawDesign {
    status: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    servers: Vec<String>,
    #[serde(default)]
    steps: Vec<String>,
    #[serde(default)]
    system_prompt: Option<String>,
    #[serde(default)]
    question: String,
    #[serde(default)]
    reason: Option<String>,
}

/// Asks the model to design the workflow from `candidates`. Returns the analysis and the tokens used.
pub async fn design_with_model(
    provider: &dyn Provider,
    model: Option<&str>,
    request: &str,
    candidates: &[SearchHit],
) -> Result<(Analysis, Usage), AnalysisError> {
    let listed: Vec<Value> = candidates
        .iter()
        .map(|hit| {
            let e = &hit.entry;
            json!({
                "name": e.name,
                "description": e.description,
                "tools": e.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
                "credentials": e.credentials.iter().filter(|c| c.required).map(|c| c.key.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let system = format!(
        "You design agents that automate workflows with MCP servers. Choose, from the candidate servers \
         below, the ones the user's workflow needs (only those), write the workflow's steps, a short name, \
         and the instructions the agent will follow. If the request is ambiguous, ask one question; if no \
         candidate fits, say so; if the message is not a workflow to automate, say that.\n\
         Answer with one JSON object and nothing else. It must match this JSON Schema:\n{}\n\nCandidates:\n{}",
        design_schema(),
        serde_json::to_string_pretty(&listed).unwrap_or_default()
    );
    let mut messages = vec![ChatMessage::text(ChatRole::System, system), ChatMessage::text(ChatRole::User, request)];
    let mut usage = Usage::default();
    let mut last_problem = String::new();
    for attempt in 0..2 {
        let request = ChatRequest { messages: messages.clone(), tools: Vec::new(), model: model.map(str::to_owned) };
        let response = provider.complete(request).await?;
        usage.add(response.usage);
        match validate(&response.content, candidates) {
            Ok(analysis) => return Ok((analysis, usage)),
            Err(problem) => {
                tracing::warn!(attempt, problem = %problem, "the model's workflow design was invalid");
                messages.push(ChatMessage::text(ChatRole::Assistant, response.content));
                messages.push(ChatMessage::text(
                    ChatRole::User,
                    format!("That answer is invalid: {problem}. Answer again with only the JSON object."),
                ));
                last_problem = problem;
            }
        }
    }
    Err(AnalysisError::InvalidDesign(last_problem))
}

/// Checks a model's reply against the schema, then its servers against the candidates.
fn validate(reply: &str, candidates: &[SearchHit]) -> Result<Analysis, String> {
    let value: Value =
        serde_json::from_str(strip_fences(reply)).map_err(|e| format!("not the JSON object asked for ({e})"))?;
    let problems: Vec<String> = design_validator()
        .iter_errors(&value)
        .take(3)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if !problems.is_empty() {
        return Err(format!("it does not match the schema: {}", problems.join("; ")));
    }
    let raw: RawDesign = serde_json::from_value(value).map_err(|e| e.to_string())?;
    match raw.status.as_str() {
        "ready" => {
            let mut servers = Vec::new();
            for wanted in &raw.servers {
                let found = candidates
                    .iter()
                    .find(|h| h.entry.name.eq_ignore_ascii_case(wanted.trim()) || h.entry.slug == wanted.trim())
                    .ok_or_else(|| format!("{wanted:?} is not one of the candidates"))?;
                if !servers.contains(&found.entry.name) {
                    servers.push(found.entry.name.clone());
                }
            }
            let name = raw.name.trim().to_owned();
            let steps: Vec<String> = raw.steps.iter().map(|s| s.trim().to_owned()).collect();
            let system_prompt = raw
                .system_prompt
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| default_prompt(&name, &steps));
            Ok(Analysis::Ready(Design { name, servers, steps, system_prompt }))
        }
        "clarify" => Ok(Analysis::Clarify(raw.question.trim().to_owned())),
        "no_match" => Ok(Analysis::NoMatch(
            raw.reason
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "no server in the catalog does what this workflow needs".into()),
        )),
        _ => Ok(Analysis::NotAWorkflow),
    }
}

/// The JSON inside a Markdown code fence, or the text itself.
fn strip_fences(reply: &str) -> &str {
    let text = reply.trim();
    let Some(rest) = text.strip_prefix("```") else { return text };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

/// Without a model: the servers that match the request's words clearly — those close to the best
/// match, and those that best match one part of the request ("…gmail… and …notion"), named in
/// `part_tops`. `NotAWorkflow` when nothing matches clearly (the message is probably something else).
pub fn design_offline(request: &str, hits: &[SearchHit], part_tops: &[String]) -> Analysis {
    let best = hits.iter().filter_map(|h| h.bm25).fold(0.0_f32, f32::max);
    if best < OFFLINE_MIN_BM25 {
        return Analysis::NotAWorkflow;
    }
    let mut chosen: Vec<&Arc<CatalogEntry>> = Vec::new();
    for hit in hits {
        let share = hit.bm25.unwrap_or(0.0) / best;
        let tops_a_part = part_tops.contains(&hit.entry.name);
        if (share >= OFFLINE_RELATIVE_BM25 || (tops_a_part && share >= OFFLINE_PART_BM25))
            && chosen.len() < OFFLINE_MAX_SERVERS
        {
            chosen.push(&hit.entry);
        }
    }
    let titles: Vec<String> = chosen.iter().map(|e| e.name.clone()).collect();
    let name = format!("{} agent", titles.join(" + "));
    let mut steps: Vec<String> = chosen
        .iter()
        .map(|e| {
            let tools: Vec<&str> = e.tools.iter().take(4).map(|t| t.name.as_str()).collect();
            if tools.is_empty() {
                format!("Use {} for its part of the request", e.name)
            } else {
                format!("Use {} ({}) for its part of the request", e.name, tools.join(", "))
            }
        })
        .collect();
    steps.push("Report what was done".into());
    let system_prompt = format!(
        "You run this workflow for the user: {}\nUse the tools of {} to carry it out. Report what you did; never invent results.",
        request.trim(),
        titles.join(", ")
    );
    Analysis::Ready(Design { name, servers: chosen.iter().map(|e| e.name.clone()).collect(), steps, system_prompt })
}

fn default_prompt(name: &str, steps: &[String]) -> String {
    let numbered: Vec<String> = steps.iter().enumerate().map(|(i, s)| format!("{}. {s}", i + 1)).collect();
    format!("You are the agent \"{name}\". Carry out these steps with your tools:\n{}\nReport what you did; never invent results.", numbered.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_catalog::ToolInfo;

    fn hit(name: &str, score: f32) -> SearchHit {
        SearchHit {
            entry: Arc::new(CatalogEntry {
                name: name.into(),
                slug: switchboard_catalog::slugify(name),
                title: None,
                description: format!("{name} server"),
                tools: vec![ToolInfo { name: "do".into(), description: String::new() }],
                launch: None,
                credentials: vec![],
                oauth: None,
                homepage: None,
                source: "test".into(),
            }),
            score,
            matched: vec!["bm25"],
            bm25: Some(1.0),
            cosine: None,
            tool: None,
        }
    }

    #[test]
    fn a_valid_design_names_candidates_and_fills_a_missing_prompt() {
        let c = [hit("Gmail", 1.0), hit("Notion", 0.9)];
        let reply = r#"```json
{"status":"ready","name":"Invoices","servers":["gmail","Notion"],"steps":["find invoices","save them"]}
```"#;
        let Analysis::Ready(d) = validate(reply, &c).unwrap() else { panic!() };
        assert_eq!(d.servers, ["Gmail", "Notion"]);
        assert!(d.system_prompt.contains("1. find invoices"));
    }

    #[test]
    fn invalid_designs_are_refused_with_the_reason() {
        let c = [hit("Gmail", 1.0)];
        for (reply, problem) in [
            ("sure! here it is", "not the JSON object"),
            (r#"{"status":"ready","name":"x","servers":["Slack"],"steps":["a"]}"#, "not one of the candidates"),
            (r#"{"status":"ready","name":"x","servers":["Gmail"],"steps":[]}"#, "/steps"),
            (r#"{"status":"ready","name":"  ","servers":["Gmail"],"steps":["a"]}"#, "/name"),
            (r#"{"status":"ready","servers":["Gmail"],"steps":["a"]}"#, "\"name\" is a required property"),
            (r#"{"status":"clarify"}"#, "\"question\" is a required property"),
            (r#"{"status":"maybe"}"#, "/status"),
            (r#"{"status":"ready","name":"x","servers":["Gmail"],"steps":["a"],"owner_id":"1"}"#, "owner_id"),
            (r#"["status","ready"]"#, "not of type"),
        ] {
            let err = validate(reply, &c).unwrap_err();
            assert!(err.contains(problem), "{reply}: {err}");
        }
    }

    #[test]
    fn offline_designs_take_clear_matches_and_the_best_match_of_each_part() {
        let with_bm25 = |name, bm25| SearchHit { bm25: Some(bm25), ..hit(name, 1.0) };
        let hits =
            [with_bm25("Gmail", 18.0), with_bm25("Notion", 15.0), with_bm25("Stripe", 7.7), with_bm25("AWS", 3.0)];
        let Analysis::Ready(d) = design_offline("save gmail invoices to notion", &hits, &[]) else { panic!() };
        assert_eq!(d.servers, ["Gmail", "Notion"]);
        let Analysis::Ready(d) = design_offline("…", &hits, &["Stripe".into(), "AWS".into()]) else { panic!() };
        assert_eq!(
            d.servers,
            ["Gmail", "Notion", "Stripe"],
            "a part's best match still needs a quarter of the best score"
        );
        let no_words = SearchHit { bm25: None, ..hit("Slack", 0.2) };
        assert_eq!(design_offline("hello", &[no_words], &[]), Analysis::NotAWorkflow);
        let weak = with_bm25("Google Maps", 6.8);
        assert_eq!(design_offline("plan my week", &[weak], &[]), Analysis::NotAWorkflow);
    }
}
