//! From a described workflow to a stored agent: catalog search → design (model or offline) →
//! credential check → the agent, or the list of credentials still missing. A workflow waiting for
//! credentials is kept as [`Pending`] in the conversation, and [`Builder::resume`] finishes it
//! once they are given — without describing it again.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_catalog::{Catalog, CatalogEntry};
use switchboard_domain::{Agent, Id, NewAgent};
use switchboard_llm::{Provider, ToolSpec, Usage};
use switchboard_store::Store;

use crate::credentials::{CredentialError, Credentials, MissingCredential};
use crate::tools::{ToolOutcome, Tools};
use crate::workflow::{design_offline, design_with_model, Analysis, AnalysisError, Design, DEFAULT_CANDIDATES};

/// The tool a model calls when the user describes a workflow to automate.
pub const WORKFLOW_TOOL: &str = "create_workflow_agent";

/// Where a workflow stands after a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The agent was created.
    Success,
    PendingCredentials,
    /// A question for the user before anything is chosen.
    Analyzing,
    NoMatch,
    /// The message was not a workflow.
    NotAWorkflow,
}

/// The outcome of analysing or resuming a workflow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    /// What to tell the user.
    pub message: String,
    pub required_credentials: Vec<MissingCredential>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub design: Option<Design>,
    #[serde(default)]
    pub usage: Usage,
}

/// A workflow waiting for credentials, as kept in the conversation's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub description: String,
    pub design: Design,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error(transparent)]
    Store(#[from] switchboard_store::StoreError),
    #[error(transparent)]
    Catalog(#[from] switchboard_catalog::CatalogError),
}

/// Turns workflows into agents.
#[derive(Clone)]
pub struct Builder {
    store: Arc<dyn Store>,
    catalog: Catalog,
    credentials: Credentials,
    /// Catalog candidates offered to the model.
    pub candidates: usize,
}

impl Builder {
    pub fn new(store: Arc<dyn Store>, catalog: Catalog, credentials: Credentials) -> Builder {
        Builder { store, catalog, credentials, candidates: DEFAULT_CANDIDATES }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Analyses a described workflow and, when its servers are chosen, continues as [`resume`](Self::resume).
    pub async fn analyze(
        &self,
        provider: &dyn Provider,
        model: Option<&str>,
        owner: Id,
        conversation: Option<Id>,
        description: &str,
    ) -> Result<Outcome, BuildError> {
        let hits = self.catalog.search(description, self.candidates, 0.0).await?;
        let offline = provider.name() == "offline";
        let (analysis, usage) = if offline {
            let mut part_tops = Vec::new();
            for part in switchboard_catalog::search::text::parts(description) {
                if let Some(top) = self.catalog.search(&part, 1, 0.0).await?.into_iter().next() {
                    part_tops.push(top.entry.name.clone());
                }
            }
            (design_offline(description, &hits, &part_tops), Usage::default())
        } else if hits.is_empty() {
            (Analysis::NoMatch("the catalog has no server for this".into()), Usage::default())
        } else {
            design_with_model(provider, model, description, &hits).await?
        };
        let plain = |status, message: String| Outcome {
            status,
            message,
            required_credentials: Vec::new(),
            agent_id: None,
            design: None,
            usage,
        };
        let mut outcome = match analysis {
            Analysis::Ready(design) => {
                let pending = Pending { description: description.trim().to_owned(), design };
                self.resume(owner, conversation, &pending).await?
            }
            Analysis::Clarify(question) => plain(Status::Analyzing, question),
            Analysis::NoMatch(reason) => {
                plain(Status::NoMatch, format!("I could not find MCP servers for this workflow: {reason}."))
            }
            Analysis::NotAWorkflow if offline => plain(Status::NotAWorkflow, switchboard_llm::offline::HELP.to_owned()),
            Analysis::NotAWorkflow => {
                plain(Status::NotAWorkflow, "This is not a workflow to automate; answer the user directly.".to_owned())
            }
        };
        outcome.usage = usage;
        Ok(outcome)
    }

    /// Checks the design's credentials: creates the agent when all are set, else lists what is missing.
    pub async fn resume(&self, owner: Id, conversation: Option<Id>, pending: &Pending) -> Result<Outcome, BuildError> {
        let mut entries: Vec<Arc<CatalogEntry>> = Vec::new();
        for name in &pending.design.servers {
            match self.catalog.get(name).await? {
                Some(entry) => entries.push(entry),
                None => {
                    return Ok(Outcome {
                        status: Status::NoMatch,
                        message: format!("{name} is no longer in the catalog; describe the workflow again."),
                        required_credentials: Vec::new(),
                        agent_id: None,
                        design: Some(pending.design.clone()),
                        usage: Usage::default(),
                    })
                }
            }
        }
        let missing = self.credentials.missing(owner, &entries).await?;
        let design = &pending.design;
        if !missing.is_empty() {
            let lines: Vec<String> = missing
                .iter()
                .map(|m| format!("- {} for {}: {}", m.credential_key, m.mcp_server, m.description))
                .collect();
            return Ok(Outcome {
                status: Status::PendingCredentials,
                message: format!(
                    "To build \"{}\" with {}, I need these credentials:\n{}\nSend them in the `credentials` field of your next message, or store them with PUT /api/v1/credentials/{{server}}.",
                    design.name,
                    design.servers.join(", "),
                    lines.join("\n")
                ),
                required_credentials: missing,
                agent_id: None,
                design: Some(design.clone()),
                usage: Usage::default(),
            });
        }
        let agent = self
            .store
            .create_agent(
                owner,
                NewAgent {
                    name: design.name.clone(),
                    description: pending.description.clone(),
                    servers: design.servers.clone(),
                    system_prompt: design.system_prompt.clone(),
                    steps: design.steps.clone(),
                    conversation_id: conversation,
                },
            )
            .await?;
        tracing::info!(agent = %agent.id, servers = agent.servers.len(), "agent created");
        Ok(Outcome {
            status: Status::Success,
            message: created_message(&agent),
            required_credentials: Vec::new(),
            agent_id: Some(agent.id),
            design: Some(design.clone()),
            usage: Usage::default(),
        })
    }
}

fn created_message(agent: &Agent) -> String {
    let steps: Vec<String> = agent.steps.iter().enumerate().map(|(i, s)| format!("{}. {s}", i + 1)).collect();
    format!(
        "Created the agent \"{}\" with {}. Steps:\n{}\nRun it with POST /api/v1/agents/{}/run, or export it with GET /api/v1/agents/{}/config.",
        agent.name,
        agent.servers.join(", "),
        steps.join("\n"),
        agent.id,
        agent.id
    )
}

/// The workflow tool, offered to the model in chat for one user.
pub struct WorkflowTool {
    pub builder: Builder,
    pub provider: Arc<dyn Provider>,
    pub model: Option<String>,
    pub owner: Id,
    pub conversation: Option<Id>,
}

#[async_trait]
impl Tools for WorkflowTool {
    fn specs(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: WORKFLOW_TOOL.into(),
            description: "Set up an agent for a workflow the user wants automated with external services \
                (for example \"monitor Gmail for invoices and save them to Notion\"): finds the MCP servers it \
                needs, asks for missing credentials, and creates the agent. Call it with the workflow as the \
                user described it; not for managing the user's own tasks."
                .into(),
            input_schema: ToolSpec::schema(json!({
                "type": "object",
                "properties": {"description": {"type": "string", "description": "The workflow, in the user's words"}},
                "required": ["description"]
            })),
        }]
    }

    async fn call(
        &self,
        name: &str,
        arguments: serde_json::Value,
        _: Option<switchboard_mcp::client::ProgressSink>,
    ) -> ToolOutcome {
        if name != WORKFLOW_TOOL {
            return ToolOutcome::error(format!("unknown tool {name}"));
        }
        let Some(description) = arguments["description"].as_str().filter(|d| !d.trim().is_empty()) else {
            return ToolOutcome::error("description is required");
        };
        match self
            .builder
            .analyze(self.provider.as_ref(), self.model.as_deref(), self.owner, self.conversation, description)
            .await
        {
            Ok(outcome) => ToolOutcome {
                content: outcome.message.clone(),
                structured: serde_json::to_value(&outcome).ok(),
                is_error: false,
            },
            Err(e) => {
                tracing::warn!(error = %e, "workflow analysis failed");
                ToolOutcome::error(format!("the workflow could not be analysed: {e}"))
            }
        }
    }
}
