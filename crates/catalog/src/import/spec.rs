//! The original specification's three catalog files.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{entry_location, join, looks_secret, ImportError, Parsed, Reader};
use crate::entry::{CatalogEntry, CredentialSpec, Launch, ToolInfo};

/// `servers.json`: `{"servers": [{"name", "description", "tools": [{"name", "description"}]}]}`.
pub(super) fn servers(reader: &Reader<'_>, servers: &[Value], parsed: &mut Parsed) -> Result<(), ImportError> {
    for (i, item) in servers.iter().enumerate() {
        let at = format!("servers{}", entry_location(i, item));
        let mut entry = CatalogEntry::named(reader.string(item, "name", &at)?, "spec");
        entry.description = reader.opt_string(item, "description", &at)?.unwrap_or_default();
        entry.title = reader.opt_string(item, "title", &at)?;
        for (t, tool) in reader.opt_array(item, "tools", &at)?.iter().enumerate() {
            let tool_at = format!("{at}.tools[{t}]");
            entry.tools.push(match tool {
                // Some sources list tool names only.
                Value::String(name) if !name.trim().is_empty() => {
                    ToolInfo { name: name.clone(), description: String::new() }
                }
                Value::Object(_) => ToolInfo {
                    name: reader.string(tool, "name", &tool_at)?,
                    description: reader.opt_string(tool, "description", &tool_at)?.unwrap_or_default(),
                },
                _ => return Err(reader.error(&tool_at, "must be an object with a name")),
            });
        }
        parsed.entries.push((entry, reader.origin(&at)));
    }
    Ok(())
}

/// `config.json`: `{"mcpServers": {"key": {"command", "args", "env"} | {"url", "headers"}}}`, the
/// shape MCP clients use. Each environment variable and header becomes a `${KEY}` placeholder and
/// a declared credential; a value that is not a placeholder becomes that credential's default.
pub(super) fn config(reader: &Reader<'_>, value: &Value, parsed: &mut Parsed) -> Result<(), ImportError> {
    let Some(servers) = value["mcpServers"].as_object() else {
        return Err(reader.error("mcpServers", "must be an object keyed by server"));
    };
    for (key, server) in servers {
        let at = format!("mcpServers.{key:?}");
        if !server.is_object() {
            return Err(reader.error(&at, "must be an object"));
        }
        let mut declared = Vec::new();
        let mut template = |map_field: &str| -> Result<BTreeMap<String, String>, ImportError> {
            let mut out = BTreeMap::new();
            let Some(map) = server.get(map_field).filter(|v| !v.is_null()) else { return Ok(out) };
            let Some(map) = map.as_object() else {
                return Err(reader.error(&join(&at, map_field), "must be an object of strings"));
            };
            for (name, v) in map {
                let Some(v) = v.as_str() else {
                    return Err(reader.error(&format!("{at}.{map_field}.{name}"), "must be a string"));
                };
                if v.contains("${") {
                    out.insert(name.clone(), v.to_string());
                    continue;
                }
                out.insert(name.clone(), format!("${{{name}}}"));
                let mut credential = credential(name);
                if !is_placeholder(v) {
                    credential.default = Some(v.to_string());
                    credential.required = false;
                }
                declared.push(credential);
            }
            Ok(out)
        };
        let launch = match (server.get("command"), server.get("url")) {
            (Some(_), _) => Launch::Stdio {
                command: reader.string(server, "command", &at)?,
                args: reader.strings(server, "args", &at)?,
                env: template("env")?,
            },
            (None, Some(_)) => {
                Launch::Remote { url: reader.string(server, "url", &at)?, headers: template("headers")? }
            }
            (None, None) => return Err(reader.error(&at, "needs a command (stdio) or a url (remote)")),
        };
        parsed.launches.push((key.clone(), launch, declared, reader.origin(&at)));
    }
    Ok(())
}

/// `credinfo.json`: `{"credential_instructions": {"key": {"required_tokens": [...], "steps": [...]}}}`.
/// A token is a variable name, or an object with `name`/`key`, `description`, `required`, `secret`.
pub(super) fn credinfo(reader: &Reader<'_>, value: &Value, parsed: &mut Parsed) -> Result<(), ImportError> {
    let Some(servers) = value["credential_instructions"].as_object() else {
        return Err(reader.error("credential_instructions", "must be an object keyed by server"));
    };
    for (key, info) in servers {
        let at = format!("credential_instructions.{key:?}");
        if !info.is_object() {
            return Err(reader.error(&at, "must be an object"));
        }
        let steps = reader.strings(info, "steps", &at)?;
        let link = reader.opt_string(info, "link", &at)?.or_else(|| first_link(&steps));
        let mut credentials = Vec::new();
        for (t, token) in reader.array(info, "required_tokens", &at)?.iter().enumerate() {
            let token_at = format!("{at}.required_tokens[{t}]");
            let mut credential = match token {
                Value::String(name) if !name.trim().is_empty() => credential(name),
                Value::Object(map) => {
                    let name = if map.contains_key("key") {
                        reader.string(token, "key", &token_at)?
                    } else {
                        reader.string(token, "name", &token_at)?
                    };
                    let mut c = credential(&name);
                    c.description = reader.opt_string(token, "description", &token_at)?.unwrap_or_default();
                    c.required = reader.opt_bool(token, "required", &token_at)?.unwrap_or(true);
                    c.secret = reader.opt_bool(token, "secret", &token_at)?.unwrap_or(c.secret);
                    c.format = reader.opt_string(token, "format", &token_at)?;
                    c
                }
                _ => return Err(reader.error(&token_at, "must be a variable name or an object with a name")),
            };
            credential.instructions = steps.clone();
            credential.link = link.clone();
            credentials.push(credential);
        }
        parsed.credentials.push((key.clone(), credentials, reader.origin(&at)));
    }
    Ok(())
}

fn credential(key: &str) -> CredentialSpec {
    CredentialSpec {
        key: key.to_string(),
        description: String::new(),
        required: true,
        secret: looks_secret(key),
        format: None,
        instructions: Vec::new(),
        link: None,
        default: None,
        choices: Vec::new(),
    }
}

/// Sample configurations put "your-token-here", "<API_KEY>" or nothing where a credential goes.
fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    value.trim().is_empty()
        || ["your", "<", "xxx", "...", "…", "replace", "here", "changeme", "token", "key"]
            .iter()
            .any(|marker| lower.contains(marker))
}

fn first_link(steps: &[String]) -> Option<String> {
    steps.iter().flat_map(|s| s.split_whitespace()).find_map(|word| {
        let word = word.trim_matches(|c: char| !c.is_ascii_graphic() || ",.;)(\"'".contains(c));
        (word.starts_with("https://") || word.starts_with("http://")).then(|| word.to_string())
    })
}
