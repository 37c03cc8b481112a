//! An agent's servers as the configuration file of another MCP client: Claude Desktop, Claude
//! Code / Cursor (`.mcp.json`), fast-agent (`fast-agent.yaml`) and VS Code (`mcp.json`). Secrets
//! appear as `${KEY}` placeholders (`${input:KEY}` prompts in VS Code) unless the owner asked for
//! them to be included.

use std::collections::BTreeMap;
use std::str::FromStr;

use secrecy::SecretString;
use serde_json::{json, Map, Value};
use switchboard_catalog::{CatalogEntry, Launch};

use crate::credentials::{defaults, substitute};

/// A client configuration format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Claude Desktop's `claude_desktop_config.json` (`mcpServers`, stdio only: remote servers go
    /// through `mcp-remote`).
    Claude,
    /// Claude Code's and Cursor's `.mcp.json` (`mcpServers`, remote as `type`/`url`/`headers`).
    McpJson,
    /// fast-agent's `fast-agent.yaml` (`mcp.servers.<name>`).
    FastAgent,
    /// VS Code's `.vscode/mcp.json` (`servers`, secrets as `inputs`).
    Vscode,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "claude" | "claude-desktop" => Ok(Format::Claude),
            "mcp-json" | "claude-code" | "cursor" => Ok(Format::McpJson),
            "fast-agent" => Ok(Format::FastAgent),
            "vscode" => Ok(Format::Vscode),
            other => Err(format!("unknown format {other:?}; use claude, mcp-json, fast-agent or vscode")),
        }
    }
}

impl Format {
    /// The file name the client reads and the media type of the content.
    pub fn file(self) -> (&'static str, &'static str) {
        match self {
            Format::Claude => ("claude_desktop_config.json", "application/json"),
            Format::McpJson => (".mcp.json", "application/json"),
            Format::FastAgent => ("fast-agent.yaml", "application/yaml"),
            Format::Vscode => ("mcp.json", "application/json"),
        }
    }
}

/// One server to export, with the values to include (empty unless secrets were asked for).
pub struct ExportServer<'a> {
    pub entry: &'a CatalogEntry,
    pub values: BTreeMap<String, SecretString>,
}

/// The configuration text.
pub fn export(format: Format, servers: &[ExportServer<'_>]) -> String {
    let mut map = Map::new();
    let mut inputs = Vec::new();
    for server in servers {
        let entry = server.entry;
        let Some(launch) = &entry.launch else { continue };
        // Values given are filled in, then declared defaults; the rest stay placeholders in the
        // client's own syntax.
        let defaults = defaults(entry);
        let asked = |c: &&switchboard_catalog::CredentialSpec| {
            !server.values.contains_key(&c.key) && !defaults.contains_key(&c.key)
        };
        let placeholder_values: BTreeMap<String, SecretString> = entry
            .credentials
            .iter()
            .filter(asked)
            .map(|c| {
                let reference = match format {
                    Format::Vscode => format!("${{input:{}}}", c.key),
                    _ => format!("${{{}}}", c.key),
                };
                (c.key.clone(), SecretString::from(reference))
            })
            .collect();
        let mut values = placeholder_values;
        values.extend(server.values.iter().map(|(k, v)| (k.clone(), v.clone())));
        let fill = |s: &str| substitute(s, &values, &defaults);
        let fill_map = |m: &BTreeMap<String, String>| -> Value {
            m.iter().map(|(k, v)| (k.clone(), json!(fill(v)))).collect::<Map<_, _>>().into()
        };
        if format == Format::Vscode {
            for c in entry.credentials.iter().filter(asked) {
                inputs.push(
                    json!({"type": "promptString", "id": c.key, "description": c.description, "password": c.secret}),
                );
            }
        }
        let config = match (format, launch) {
            (Format::FastAgent, Launch::Stdio { command, args, env }) => {
                json!({"transport": "stdio", "command": command, "args": args.iter().map(|a| fill(a)).collect::<Vec<_>>(), "env": fill_map(env)})
            }
            (Format::FastAgent, Launch::Remote { url, headers }) => {
                json!({"transport": "http", "url": fill(url), "headers": fill_map(headers)})
            }
            (Format::Vscode, Launch::Stdio { command, args, env }) => {
                json!({"type": "stdio", "command": command, "args": args.iter().map(|a| fill(a)).collect::<Vec<_>>(), "env": fill_map(env)})
            }
            (Format::Vscode | Format::McpJson, Launch::Remote { url, headers }) => {
                json!({"type": "http", "url": fill(url), "headers": fill_map(headers)})
            }
            (Format::Claude | Format::McpJson, Launch::Stdio { command, args, env }) => {
                json!({"command": command, "args": args.iter().map(|a| fill(a)).collect::<Vec<_>>(), "env": fill_map(env)})
            }
            (Format::Claude, Launch::Remote { url, headers }) => {
                let mut args = vec![json!("-y"), json!("mcp-remote"), json!(fill(url))];
                for (name, value) in headers {
                    args.push(json!("--header"));
                    args.push(json!(format!("{name}:{}", fill(value))));
                }
                json!({"command": "npx", "args": args})
            }
        };
        map.insert(entry.slug.clone(), config);
    }
    match format {
        Format::Claude | Format::McpJson => pretty(&json!({"mcpServers": map})),
        Format::Vscode => pretty(&json!({"inputs": inputs, "servers": map})),
        Format::FastAgent => serde_norway::to_string(&json!({"mcp": {"servers": map}})).unwrap_or_default(),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_catalog::CredentialSpec;

    fn spec(key: &str) -> CredentialSpec {
        serde_json::from_value(json!({"key": key, "description": "a token"})).unwrap()
    }

    fn entries() -> Vec<CatalogEntry> {
        let mut github = CatalogEntry::named("GitHub", "test");
        github.launch = Some(Launch::Stdio {
            command: "docker".into(),
            args: vec!["run".into(), "-e".into(), "GITHUB_PERSONAL_ACCESS_TOKEN".into()],
            env: BTreeMap::from([("GITHUB_PERSONAL_ACCESS_TOKEN".into(), "${GITHUB_PERSONAL_ACCESS_TOKEN}".into())]),
        });
        github.credentials = vec![spec("GITHUB_PERSONAL_ACCESS_TOKEN")];
        let mut linear = CatalogEntry::named("Linear", "test");
        linear.launch = Some(Launch::Remote {
            url: "https://mcp.linear.app/mcp".into(),
            headers: BTreeMap::from([("Authorization".into(), "Bearer ${LINEAR_API_KEY}".into())]),
        });
        linear.credentials = vec![spec("LINEAR_API_KEY")];
        vec![github, linear]
    }

    #[test]
    fn every_format_parses_back_with_placeholders_for_secrets() {
        let entries = entries();
        let servers: Vec<ExportServer> =
            entries.iter().map(|e| ExportServer { entry: e, values: BTreeMap::new() }).collect();
        let claude: Value = serde_json::from_str(&export(Format::Claude, &servers)).unwrap();
        assert_eq!(
            claude["mcpServers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"],
            "${GITHUB_PERSONAL_ACCESS_TOKEN}"
        );
        assert_eq!(claude["mcpServers"]["linear"]["args"][3], "--header");
        let code: Value = serde_json::from_str(&export(Format::McpJson, &servers)).unwrap();
        assert_eq!(
            code["mcpServers"]["linear"],
            json!({"type": "http", "url": "https://mcp.linear.app/mcp", "headers": {"Authorization": "Bearer ${LINEAR_API_KEY}"}})
        );
        let vscode: Value = serde_json::from_str(&export(Format::Vscode, &servers)).unwrap();
        assert_eq!(vscode["servers"]["linear"]["headers"]["Authorization"], "Bearer ${input:LINEAR_API_KEY}");
        assert_eq!(vscode["inputs"].as_array().unwrap().len(), 2);
        let yaml: Value = serde_norway::from_str(&export(Format::FastAgent, &servers)).unwrap();
        assert_eq!(yaml["mcp"]["servers"]["github"]["transport"], "stdio");
        assert_eq!(yaml["mcp"]["servers"]["linear"]["transport"], "http");
    }

    #[test]
    fn included_secrets_replace_the_placeholders() {
        let entries = entries();
        let servers = vec![ExportServer {
            entry: &entries[1],
            values: BTreeMap::from([("LINEAR_API_KEY".into(), SecretString::from("lin_api_x"))]),
        }];
        let code: Value = serde_json::from_str(&export(Format::McpJson, &servers)).unwrap();
        assert_eq!(code["mcpServers"]["linear"]["headers"]["Authorization"], "Bearer lin_api_x");
    }
}
