//! `switchboard chat`: an interactive terminal conversation. Replies stream as they are
//! written, tool calls show as one line each, and a workflow's missing credentials are asked
//! for one by one (secrets without echo when the input is a terminal).

use std::io::{IsTerminal, Write};

use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

use super::{Client, ClientArgs};

const HELP: &str = "\
Type a message and press Enter. Commands:
  /list          your conversations, newest first
  /switch N      continue conversation N of /list (or an id)
  /new           start a new conversation
  /tasks         your tasks
  /help          this text
  /quit          leave (Ctrl-D too)";

pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let client = Client::from_args(&args)?;
    let me = client.json(Method::GET, "/api/v1/me", None).await?;
    let who = me["name"].as_str().or(me["email"].as_str()).or(me["subject"].as_str()).unwrap_or("you");
    println!("Switchboard at {} — signed in as {who}. /help lists the commands.", client.base());
    let mut session = Session { client, conversation: None, listed: Vec::new() };
    loop {
        let Some(line) = read_line("> ").await? else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let outcome = match line.split_once(' ').map_or((line, ""), |(c, rest)| (c, rest.trim())) {
            ("/quit" | "/exit", _) => break,
            ("/help", _) => {
                println!("{HELP}");
                Ok(())
            }
            ("/new", _) => {
                session.conversation = None;
                println!("(new conversation)");
                Ok(())
            }
            ("/list", _) => session.list().await,
            ("/switch", which) => session.switch(which).await,
            ("/tasks", _) => session.tasks().await,
            (command, _) if command.starts_with('/') => {
                println!("unknown command {command}; /help lists them");
                Ok(())
            }
            _ => session.say(line, None).await,
        };
        if let Err(e) = outcome {
            println!("error: {e:#}");
        }
    }
    Ok(())
}

struct Session {
    client: Client,
    conversation: Option<String>,
    /// Conversation ids in the order `/list` showed them.
    listed: Vec<String>,
}

impl Session {
    async fn list(&mut self) -> anyhow::Result<()> {
        let page = self.client.json(Method::GET, "/api/v1/conversations?limit=20", None).await?;
        self.listed.clear();
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            println!("no conversations yet");
        }
        for (i, c) in items.iter().enumerate() {
            let id = c["id"].as_str().unwrap_or_default().to_string();
            let current = if self.conversation.as_deref() == Some(id.as_str()) { "*" } else { " " };
            println!(
                "{current}{:>2}. {} ({} messages)",
                i + 1,
                c["title"].as_str().unwrap_or("Untitled"),
                c["message_count"]
            );
            self.listed.push(id);
        }
        Ok(())
    }

    async fn switch(&mut self, which: &str) -> anyhow::Result<()> {
        let id = match which.parse::<usize>() {
            Ok(n) if n >= 1 && n <= self.listed.len() => self.listed[n - 1].clone(),
            Ok(_) => anyhow::bail!("no conversation {which} in the last /list"),
            Err(_) if !which.is_empty() => which.to_string(),
            Err(_) => anyhow::bail!("/switch needs a number from /list or an id"),
        };
        let detail = self.client.json(Method::GET, &format!("/api/v1/conversations/{id}"), None).await?;
        println!("(conversation: {})", detail["title"].as_str().unwrap_or("Untitled"));
        for message in detail["messages"].as_array().into_iter().flatten() {
            let role = message["role"].as_str().unwrap_or("");
            if role == "tool" {
                continue;
            }
            for call in message["metadata"]["tool_calls"].as_array().into_iter().flatten() {
                println!("{}", tool_line(call));
            }
            let who = if role == "user" { "you" } else { "switchboard" };
            println!("{who}: {}", message["content"].as_str().unwrap_or(""));
        }
        self.conversation = Some(id);
        Ok(())
    }

    async fn tasks(&self) -> anyhow::Result<()> {
        let page = self.client.json(Method::GET, "/api/v1/tasks?limit=100", None).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            println!("no tasks");
        }
        for task in &items {
            println!("{}", super::tasks::line(task));
        }
        Ok(())
    }

    /// Sends a message and streams the reply; asks for credentials when the workflow needs them.
    async fn say(&mut self, message: &str, credentials: Option<Value>) -> anyhow::Result<()> {
        let mut body = json!({ "message": message });
        if let Some(id) = &self.conversation {
            body["conversation_id"] = json!(id);
        }
        if let Some(credentials) = credentials {
            body["credentials"] = credentials;
        }
        let response = self.client.send(Method::POST, "/api/v1/chat/stream", Some(&body)).await?;
        let mut events = eventsource_stream::EventStream::new(response.bytes_stream());
        let mut out = std::io::stdout();
        let mut ended: Option<Value> = None;
        let mut at_line_start = true;
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| anyhow::anyhow!("the reply stream broke: {e}"))?;
            let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            match event.event.as_str() {
                "message_start" => {
                    self.conversation = data["conversation_id"].as_str().map(str::to_owned);
                }
                "delta" => {
                    if at_line_start {
                        print!("switchboard: ");
                        at_line_start = false;
                    }
                    print!("{}", data["text"].as_str().unwrap_or(""));
                    out.flush()?;
                }
                "tool_call" => {
                    if !at_line_start {
                        println!();
                        at_line_start = true;
                    }
                    println!("  → {} {}", data["tool"].as_str().unwrap_or("?"), compact(&data["args"], 100));
                }
                "tool_result" => println!("{}", tool_line(&data)),
                "message_end" => ended = Some(data),
                "error" => {
                    if !at_line_start {
                        println!();
                    }
                    anyhow::bail!("{}", data["message"].as_str().unwrap_or("the turn failed"));
                }
                _ => {}
            }
        }
        if !at_line_start {
            println!();
        }
        let Some(reply) = ended else { anyhow::bail!("the reply ended early") };
        if at_line_start && reply["message"]["content"].as_str().is_some_and(|c| !c.is_empty()) {
            // Nothing streamed (a workflow step answers at once): print the stored reply.
            println!("switchboard: {}", reply["message"]["content"].as_str().unwrap_or(""));
        }
        if reply["agent_created"] == true {
            println!("(agent created: {})", reply["agent_id"].as_str().unwrap_or(""));
        }
        let missing = reply["required_credentials"].as_array().cloned().unwrap_or_default();
        if !missing.is_empty() {
            let Some(credentials) = ask_credentials(&missing).await? else {
                println!("(credentials not given; send them later to continue)");
                return Ok(());
            };
            let servers: Vec<&str> =
                credentials.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
            let message = format!("Credentials for {}", servers.join(", "));
            return Box::pin(self.say(&message, Some(credentials))).await;
        }
        Ok(())
    }
}

/// Asks for each missing credential; `None` when the input ends or a value is left empty.
async fn ask_credentials(missing: &[Value]) -> anyhow::Result<Option<Value>> {
    let mut credentials = json!({});
    println!("The workflow needs {} credential(s):", missing.len());
    for item in missing {
        let server = item["mcp_server"].as_str().unwrap_or_default();
        let key = item["credential_key"].as_str().unwrap_or_default();
        println!("\n{server} — {key}: {}", item["description"].as_str().unwrap_or(""));
        for (i, step) in item["instructions"].as_array().into_iter().flatten().enumerate() {
            println!("  {}. {}", i + 1, step.as_str().unwrap_or(""));
        }
        if let Some(link) = item["link"].as_str() {
            println!("  {link}");
        }
        let secret = item["secret"].as_bool().unwrap_or(true);
        let prompt = format!("{key}{}: ", if secret { " (hidden)" } else { "" });
        let value = if secret { read_secret(&prompt).await? } else { read_line(&prompt).await? };
        let Some(value) = value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) else { return Ok(None) };
        credentials[server][key] = json!(value);
    }
    Ok(Some(credentials))
}

/// `  ← add_task ok (3 ms)`, or the error in a few words.
fn tool_line(call: &Value) -> String {
    let tool = call["tool"].as_str().unwrap_or("?");
    let ms = call["duration_ms"].as_u64().unwrap_or(0);
    if call["is_error"] == true {
        format!("  ← {tool} failed ({ms} ms): {}", compact(&call["result"], 120))
    } else {
        format!("  ← {tool} ok ({ms} ms)")
    }
}

/// A value on one line, cut to `max` characters.
fn compact(value: &Value, max: usize) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = text.replace('\n', " ");
    if text.chars().count() <= max {
        text
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

/// One line from standard input, after a prompt; `None` at the end of input.
async fn read_line(prompt: &str) -> anyhow::Result<Option<String>> {
    print!("{prompt}");
    std::io::stdout().flush()?;
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|n| (n > 0).then_some(line))
    })
    .await??;
    if line.is_none() && std::io::stdin().is_terminal() {
        println!();
    }
    Ok(line.map(|l| l.trim_end_matches(['\n', '\r']).to_string()))
}

/// Like [`read_line`], without echo when standard input is a terminal.
async fn read_secret(prompt: &str) -> anyhow::Result<Option<String>> {
    if !std::io::stdin().is_terminal() {
        return read_line(prompt).await;
    }
    print!("{prompt}");
    std::io::stdout().flush()?;
    Ok(Some(tokio::task::spawn_blocking(rpassword::read_password).await??))
}
