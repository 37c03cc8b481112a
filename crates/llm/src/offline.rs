//! The provider used when no model is configured: deterministic, network-free, and honest. It
//! recognises plain task commands and answers them with the same tool calls a model would make;
//! after the tools ran it reports their results; anything else gets a list of what it understands.

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::{ChatMessage, ChatRequest, ChatResponse, ChatRole, FinishReason, Provider, ProviderError, ToolCall, Usage};

/// What the offline provider says when it does not understand.
pub const HELP: &str = "I'm running without a language model, so I understand only plain task commands:\n\
- \"add a task called buy milk\"\n\
- \"list my tasks\" (or \"list my completed tasks\")\n\
- \"complete task 3\"\n\
- \"rename task 2 to call the bank\"\n\
- \"delete task 4\"\n\
To talk about anything else, configure a model: set SWITCHBOARD_LLM_PROVIDER (openai or anthropic), \
SWITCHBOARD_LLM_MODEL and SWITCHBOARD_LLM_API_KEY.";

#[derive(Debug, Default, Clone)]
pub struct OfflineProvider;

#[async_trait]
impl Provider for OfflineProvider {
    fn name(&self) -> &'static str {
        "offline"
    }

    async fn complete(&self, request: ChatRequest) -> Result<ChatResponse, ProviderError> {
        let answer = |content: String, tool_calls: Vec<ToolCall>| {
            let finish_reason = if tool_calls.is_empty() { FinishReason::Stop } else { FinishReason::ToolCalls };
            Ok(ChatResponse { content, tool_calls, model: "offline".into(), usage: Usage::default(), finish_reason })
        };
        // After tools ran: report what they said.
        let results: Vec<&ChatMessage> =
            request.messages.iter().rev().take_while(|m| m.role == ChatRole::Tool).collect();
        if !results.is_empty() {
            let text = results.iter().rev().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
            return answer(text, Vec::new());
        }
        let last =
            request.messages.iter().rev().find(|m| m.role == ChatRole::User).map(|m| m.content.as_str()).unwrap_or("");
        let available = |name: &str| request.tools.iter().any(|t| t.name == name);
        match parse_command(last) {
            Some((tool, arguments)) if available(tool) => {
                answer(String::new(), vec![ToolCall { id: "call_offline_1".into(), name: tool.into(), arguments }])
            }
            _ => answer(HELP.into(), Vec::new()),
        }
    }
}

/// Reads a plain task command: the tool to call and its arguments.
pub fn parse_command(text: &str) -> Option<(&'static str, Value)> {
    let text = text.trim().trim_end_matches(['.', '!', '?']).trim();
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let rest_after = |prefixes: &[&str]| -> Option<String> {
        prefixes.iter().find_map(|p| lower.starts_with(p).then(|| text[p.len()..].trim().to_string()))
    };

    // add a task called X / add task: X / create a task named X / new task X / remind me to X
    if let Some(title) = rest_after(&[
        "add a task called ",
        "add a task named ",
        "add a task titled ",
        "add task called ",
        "add task named ",
        "add a task: ",
        "add task: ",
        "add a task ",
        "add task ",
        "create a task called ",
        "create a task named ",
        "create a task: ",
        "create a task ",
        "create task ",
        "new task: ",
        "new task ",
        "remind me to ",
    ]) {
        let title = strip_quotes(&title);
        let dangling = matches!(title.to_lowercase().as_str(), "" | "called" | "named" | "titled");
        return (!dangling).then(|| ("add_task", json!({ "title": title })));
    }
    // add X to my tasks / add X to my list
    for suffix in [" to my tasks", " to my task list", " to my list", " to my todo list", " to my to-do list"] {
        if lower.starts_with("add ") && lower.ends_with(suffix) {
            let title = strip_quotes(text[4..text.len() - suffix.len()].trim());
            return (!title.is_empty()).then(|| ("add_task", json!({ "title": title })));
        }
    }
    // list / show my (completed|pending) tasks, what are my tasks, what's on my list
    let listing = matches!(words.first(), Some(&"list") | Some(&"show"))
        || lower.starts_with("what are my tasks")
        || lower.starts_with("what's on my list")
        || lower == "tasks";
    if listing
        && (lower.contains("task") || lower.contains("todo") || lower.contains("to-do") || lower.contains("list"))
    {
        let status = if lower.contains("completed") || lower.contains(" done") || lower.contains("finished") {
            Some("completed")
        } else if lower.contains("pending") || lower.contains("open") || lower.contains("remaining") {
            Some("pending")
        } else {
            None
        };
        return Some(("list_tasks", status.map_or(json!({}), |s| json!({ "status": s }))));
    }
    // rename task 2 to Y / change task 2 to Y
    if let Some(rest) = rest_after(&["rename task ", "rename ", "change task ", "retitle task "]) {
        let (number, title) = rest.split_once(" to ")?;
        let number = task_number(number)?;
        let title = strip_quotes(title.trim());
        return (!title.is_empty()).then(|| ("update_task", json!({ "task": number, "title": title })));
    }
    // complete task 3 / mark task 3 as done / finish task 3 / task 3 is done
    if let Some(rest) = rest_after(&[
        "complete task ",
        "finish task ",
        "mark task ",
        "close task ",
        "check off task ",
        "done with task ",
    ]) {
        let number = task_number(rest.split_whitespace().next()?)?;
        return Some(("complete_task", json!({ "task": number })));
    }
    // delete task 4 / remove task 4
    if let Some(rest) = rest_after(&["delete task ", "remove task ", "cancel task ", "drop task "]) {
        let number = task_number(rest.split_whitespace().next()?)?;
        return Some(("delete_task", json!({ "task": number })));
    }
    None
}

fn task_number(text: &str) -> Option<i64> {
    text.trim().trim_start_matches('#').trim_end_matches([',', ':']).parse().ok().filter(|n| *n > 0)
}

fn strip_quotes(text: &str) -> String {
    text.trim().trim_matches(|c| matches!(c, '"' | '\'' | '“' | '”' | '‘' | '’')).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ToolSpec;

    #[test]
    fn plain_task_commands_become_tool_calls() {
        let cases = [
            ("add a task called buy milk", "add_task", json!({"title": "buy milk"})),
            ("Add task: Call the bank.", "add_task", json!({"title": "Call the bank"})),
            ("please add 'water plants' to my list", "", json!(null)),
            ("add water plants to my tasks", "add_task", json!({"title": "water plants"})),
            ("remind me to renew my passport", "add_task", json!({"title": "renew my passport"})),
            ("list my tasks", "list_tasks", json!({})),
            ("show my completed tasks", "list_tasks", json!({"status": "completed"})),
            ("What are my tasks?", "list_tasks", json!({})),
            ("complete task 3", "complete_task", json!({"task": 3})),
            ("mark task #3 as done", "complete_task", json!({"task": 3})),
            ("rename task 2 to call the bank", "update_task", json!({"task": 2, "title": "call the bank"})),
            ("delete task 4", "delete_task", json!({"task": 4})),
            ("remove task 4 please", "delete_task", json!({"task": 4})),
        ];
        for (text, tool, args) in cases {
            match parse_command(text) {
                Some((t, a)) => assert_eq!((t, a), (tool, args), "{text}"),
                None => assert_eq!(tool, "", "{text} was not understood"),
            }
        }
        for other in ["what's the weather", "complete task x", "delete task 0", "add a task called ", "rename task 2"] {
            assert_eq!(parse_command(other), None, "{other}");
        }
    }

    fn tools() -> Vec<ToolSpec> {
        ["add_task", "list_tasks", "complete_task", "update_task", "delete_task"]
            .iter()
            .map(|n| ToolSpec {
                name: (*n).into(),
                description: String::new(),
                input_schema: ToolSpec::schema(json!({})),
            })
            .collect()
    }

    #[tokio::test]
    async fn it_calls_a_tool_then_reports_the_result() {
        let mut messages = vec![ChatMessage::text(ChatRole::User, "add a task called buy milk")];
        let first = OfflineProvider
            .complete(ChatRequest { messages: messages.clone(), tools: tools(), model: None })
            .await
            .unwrap();
        assert_eq!(first.finish_reason, FinishReason::ToolCalls);
        assert_eq!(first.tool_calls[0].name, "add_task");
        messages.push(ChatMessage {
            role: ChatRole::Assistant,
            content: String::new(),
            tool_calls: first.tool_calls.clone(),
            tool_call_id: None,
        });
        messages.push(ChatMessage::tool_result("call_offline_1", "Added task #1 buy milk [pending]"));
        let second = OfflineProvider.complete(ChatRequest { messages, tools: tools(), model: None }).await.unwrap();
        assert_eq!(second.finish_reason, FinishReason::Stop);
        assert_eq!(second.content, "Added task #1 buy milk [pending]");
    }

    #[tokio::test]
    async fn anything_else_gets_an_honest_help_text() {
        let request = ChatRequest {
            messages: vec![ChatMessage::text(ChatRole::User, "write me a poem")],
            tools: tools(),
            model: None,
        };
        let reply = OfflineProvider.complete(request).await.unwrap();
        assert!(reply.tool_calls.is_empty());
        assert!(reply.content.contains("without a language model"));
        assert!(reply.content.contains("SWITCHBOARD_LLM_PROVIDER"));
    }
}
