//! What the catalog knows about one MCP server.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One MCP server the catalog can offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CatalogEntry {
    /// Unique, kept exactly as the source spells it ("Met Museum MCP Server").
    pub name: String,
    /// Derived from the name for URLs and configuration keys ("met-museum-mcp-server").
    #[serde(default)]
    pub slug: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tools: Vec<ToolInfo>,
    /// How to start or reach it; absent when the source does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<Launch>,
    /// What a person must provide before it can run.
    #[serde(default)]
    pub credentials: Vec<CredentialSpec>,
    /// How a person connects their account instead of pasting keys, when the server supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// Where the entry came from: `builtin`, `registry`, `spec` or `list`.
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// How a server is started or reached. Values may hold `${KEY}` placeholders naming a credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum Launch {
    /// A child process speaking MCP over stdin/stdout.
    Stdio {
        command: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
    },
    /// A server reached over Streamable HTTP.
    Remote {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
}

/// One credential a server needs, and how a person obtains it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CredentialSpec {
    /// The name it is stored and passed under, usually the environment variable ("GITHUB_PERSONAL_ACCESS_TOKEN").
    pub key: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub required: bool,
    /// Secret values go to the vault and are never shown again.
    #[serde(default = "yes")]
    pub secret: bool,
    /// A hint at the shape of the value ("ghp_…", "a URL", "a path").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Step-by-step instructions for obtaining it.
    #[serde(default)]
    pub instructions: Vec<String>,
    /// Where those steps happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// A value used when the person gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The allowed values, when the source lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

/// How an account is connected with OAuth, and how its tokens reach the server.
///
/// Two kinds: a provider the operator has an OAuth client for (`client` names it in the
/// `oauth_clients` setting; endpoints come from `issuer`'s metadata or are given), whose tokens
/// fill the credential keys named here; or a remote server speaking the MCP authorization
/// specification (no `client`), whose authorization server is discovered from the server itself
/// and whose access token is sent as its `Authorization: Bearer` header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OAuthMethod {
    /// The operator's OAuth client for this provider, by name ("github", "google").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The authorization server; its endpoints are discovered unless given below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// The scopes a person can grant.
    #[serde(default)]
    pub scopes: Vec<OAuthScope>,
    /// The credential key the access token fills (an environment variable or a `${KEY}` of a header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_key: Option<String>,
    /// The credential key the refresh token fills, for servers that refresh by themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_key: Option<String>,
    /// Credential keys the operator's client id and secret fill, for servers that refresh by themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_key: Option<String>,
    /// Extra parameters of the authorization request (`access_type=offline`…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_params: BTreeMap<String, String>,
}

/// A scope of an OAuth method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OAuthScope {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Asked for whatever the person picks: the server needs it.
    #[serde(default)]
    pub required: bool,
}

impl OAuthMethod {
    /// The credential keys this method's connection provides.
    pub fn provided_keys(&self) -> impl Iterator<Item = &str> {
        [&self.access_token_key, &self.refresh_token_key, &self.client_id_key, &self.client_secret_key]
            .into_iter()
            .filter_map(|k| k.as_deref())
    }

    /// Whether the tokens come from a remote server's own authorization (the MCP specification).
    pub fn is_mcp_authorization(&self) -> bool {
        self.client.is_none()
    }
}

fn yes() -> bool {
    true
}

impl CatalogEntry {
    /// A minimal entry, as importers start one.
    pub fn named(name: impl Into<String>, source: &str) -> Self {
        let name = name.into();
        Self {
            slug: slugify(&name),
            name,
            title: None,
            description: String::new(),
            tools: Vec::new(),
            launch: None,
            credentials: Vec::new(),
            oauth: None,
            homepage: None,
            source: source.into(),
        }
    }

    /// The credential named `key`, if the entry declares one.
    pub fn credential(&self, key: &str) -> Option<&CredentialSpec> {
        self.credentials.iter().find(|c| c.key == key)
    }
}

/// Lower-case ASCII letters and digits joined by single dashes. A name with no ASCII letters or
/// digits (a Chinese name, say) gets `server-` and a short hash of the name, so it is still unique.
pub fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        format!("server-{}", short_hash(name))
    } else {
        slug
    }
}

/// The SHA-256 of `text`, in hex.
pub(crate) fn content_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Eight hex digits of the SHA-256 of `text`.
pub(crate) fn short_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lower_case_words_joined_by_dashes() {
        assert_eq!(slugify("Met Museum MCP Server"), "met-museum-mcp-server");
        assert_eq!(slugify("  BioMCP: Biomedical Model Context Protocol "), "biomcp-biomedical-model-context-protocol");
        assert_eq!(slugify("mcp_server_time"), "mcp-server-time");
        assert_eq!(slugify("鸣潮 MCP Server"), "mcp-server");
        let chinese = slugify("鸣潮");
        assert!(chinese.starts_with("server-") && chinese.len() == 15, "{chinese}");
        assert_ne!(chinese, slugify("必应"));
    }
}
