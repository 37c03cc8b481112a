//! The conversation as the model sees it: the stored messages with the tool calls and results of
//! earlier turns put back in place, kept within a token budget.

use switchboard_domain::{Message, Role};
use switchboard_llm::{ChatMessage, ChatRole, ToolCall};

/// A rough count of the tokens a text costs: about four characters each, plus a little per
/// message. Close enough to keep a conversation well inside a model's window.
fn tokens(message: &ChatMessage) -> usize {
    let calls: usize = message.tool_calls.iter().map(|c| c.name.len() + c.arguments.to_string().len()).sum();
    (message.content.len() + calls) / 4 + 4
}

/// One stored message as the model messages it stands for. An assistant reply that called tools
/// becomes the call, the results, then the reply, as they happened; tool results are cut to
/// `max_tool_result_chars` like fresh ones.
fn expand(message: &Message, max_tool_result_chars: usize) -> Vec<ChatMessage> {
    match message.role {
        Role::User => vec![ChatMessage::text(ChatRole::User, message.content.clone())],
        Role::Tool => Vec::new(),
        Role::Assistant => {
            let records = message.metadata["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default();
            let mut out = Vec::new();
            let calls: Vec<(ToolCall, String)> = records
                .iter()
                .enumerate()
                .filter_map(|(i, record)| {
                    let name = record["tool"].as_str()?.to_owned();
                    let id = format!("hist_{}_{i}", message.id.simple());
                    let result = match &record["result"] {
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    let arguments = record["args"].clone();
                    Some((ToolCall { id, name, arguments }, crate::truncate(&result, max_tool_result_chars)))
                })
                .collect();
            if !calls.is_empty() {
                out.push(ChatMessage {
                    role: ChatRole::Assistant,
                    content: String::new(),
                    tool_calls: calls.iter().map(|(call, _)| call.clone()).collect(),
                    tool_call_id: None,
                });
                out.extend(calls.into_iter().map(|(call, result)| ChatMessage::tool_result(call.id, result)));
            }
            if !message.content.is_empty() {
                out.push(ChatMessage::text(ChatRole::Assistant, message.content.clone()));
            }
            out
        }
    }
}

/// The model's view of `stored` (oldest first, ending with the user's new message): the newest
/// messages that fit in `max_tokens`, never splitting a tool call from its results, and starting
/// with a user message as every provider expects. The last message is always kept. Returns the
/// messages and how many stored ones they came from.
pub fn history(stored: &[Message], max_tokens: usize, max_tool_result_chars: usize) -> (Vec<ChatMessage>, usize) {
    let mut groups: Vec<(Role, Vec<ChatMessage>)> = Vec::new();
    let mut used = 0;
    for message in stored.iter().rev() {
        let group = expand(message, max_tool_result_chars);
        if group.is_empty() {
            continue;
        }
        let cost: usize = group.iter().map(tokens).sum();
        if !groups.is_empty() && used + cost > max_tokens {
            break;
        }
        used += cost;
        groups.push((message.role, group));
    }
    while groups.len() > 1 && groups.last().is_some_and(|(role, _)| *role != Role::User) {
        groups.pop();
    }
    let kept = groups.len();
    (groups.into_iter().rev().flat_map(|(_, group)| group).collect(), kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(role: Role, content: &str, metadata: serde_json::Value) -> Message {
        Message {
            id: switchboard_domain::new_id(),
            conversation_id: switchboard_domain::new_id(),
            role,
            content: content.into(),
            metadata,
            created_at: switchboard_domain::now(),
        }
    }

    fn roles(messages: &[ChatMessage]) -> Vec<ChatRole> {
        messages.iter().map(|m| m.role).collect()
    }

    #[test]
    fn earlier_tool_calls_and_results_are_put_back_in_order() {
        let stored = vec![
            message(Role::User, "add a task called milk", json!({})),
            message(
                Role::Assistant,
                "Added task 1.",
                json!({"tool_calls": [{"tool": "add_task", "args": {"title": "milk"}, "result": {"task": {"number": 1}},
                                       "is_error": false, "duration_ms": 3}]}),
            ),
            message(Role::User, "and bread", json!({})),
        ];
        let (messages, kept) = history(&stored, 10_000, 100);
        assert_eq!(kept, 3);
        use ChatRole::*;
        assert_eq!(roles(&messages), [User, Assistant, Tool, Assistant, User]);
        let call = &messages[1].tool_calls[0];
        assert_eq!((call.name.as_str(), &call.arguments), ("add_task", &json!({"title": "milk"})));
        assert_eq!(messages[2].tool_call_id.as_deref(), Some(call.id.as_str()));
        assert!(call.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "ids every provider accepts");
        assert_eq!(messages[2].content, r#"{"task":{"number":1}}"#);
        assert_eq!(messages[3].content, "Added task 1.");
    }

    #[test]
    fn the_budget_keeps_the_newest_whole_turns_starting_with_the_user() {
        let long = "x".repeat(400); // about 100 tokens
        let stored = vec![
            message(Role::User, &long, json!({})),
            message(Role::Assistant, &long, json!({})),
            message(Role::User, &long, json!({})),
            message(Role::Assistant, &long, json!({})),
            message(Role::User, "now", json!({})),
        ];
        // The newest three fit in 250 (~212 tokens) and start with the user.
        let (messages, kept) = history(&stored, 250, 100);
        assert_eq!(kept, 3);
        assert_eq!(roles(&messages), [ChatRole::User, ChatRole::Assistant, ChatRole::User]);
        assert_eq!(messages.last().unwrap().content, "now");
        // In 150 the newest two fit, but an assistant reply cannot lead: one remains.
        let (messages, kept) = history(&stored, 150, 100);
        assert_eq!((roles(&messages), kept), (vec![ChatRole::User], 1));
        let (all, kept) = history(&stored, 10_000, 100);
        assert_eq!((all.len(), kept), (5, 5));
        let (only, _) = history(&stored[4..], 0, 100);
        assert_eq!(only.len(), 1, "the new message is kept whatever the budget");
    }

    #[test]
    fn long_results_from_earlier_turns_are_cut_like_fresh_ones() {
        let stored = vec![
            message(Role::User, "list", json!({})),
            message(
                Role::Assistant,
                "",
                json!({"tool_calls": [{"tool": "list_tasks", "args": {}, "result": "y".repeat(500)}]}),
            ),
            message(Role::User, "again", json!({})),
        ];
        let (messages, _) = history(&stored, 10_000, 50);
        assert_eq!(roles(&messages), [ChatRole::User, ChatRole::Assistant, ChatRole::Tool, ChatRole::User]);
        assert!(messages[2].content.starts_with(&"y".repeat(50)) && messages[2].content.contains("[truncated"));
    }
}
