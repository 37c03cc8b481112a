//! The user's credentials for catalog servers: validated against what the entry declares, sealed
//! by the vault before they reach the store, opened only to launch a server (or for an export the
//! owner explicitly asked to include secrets in).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use switchboard_catalog::{Catalog, CatalogEntry, CatalogError, Launch};
use switchboard_domain::{Id, SealedCredential};
use switchboard_mcp::client::ServerConfig;
use switchboard_mcp::outbound::{OutboundPolicy, Refused};
use switchboard_store::{Store, StoreError};
use switchboard_vault::{Binding, Keyring, Sealed, VaultError};

use crate::connections::{ConnectionError, Connections};
use crate::launch::{resolve, LaunchError};
use utoipa::ToSchema;

/// Longest credential value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

/// What went wrong with credentials. Never carries a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    #[error("no server {0:?} in the catalog")]
    UnknownServer(String),
    #[error("{server} does not take a credential named {key:?}; it takes: {accepted}")]
    UnknownKey { server: String, key: String, accepted: String },
    #[error("the value of {0} is empty")]
    Empty(String),
    #[error("the value of {key} is too long ({bytes} bytes; at most {MAX_VALUE_BYTES})")]
    TooLong { key: String, bytes: usize },
    #[error("the value of {0} contains a control character")]
    ControlCharacter(String),
    #[error("the address {server} would be reached at is not allowed: {reason}")]
    Address { server: String, reason: Refused },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Launch(LaunchError),
}

/// One declared credential of a server and whether the user has set it. Never its value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyStatus {
    pub key: String,
    pub description: String,
    pub required: bool,
    pub secret: bool,
    pub set: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A server's credentials as the user sees them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerCredentials {
    /// The catalog entry's name.
    pub server: String,
    pub slug: String,
    pub keys: Vec<KeyStatus>,
    /// Every required key is set (or has a default).
    pub complete: bool,
}

/// A credential a workflow still needs, as the chat reply lists it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct MissingCredential {
    pub mcp_server: String,
    pub credential_key: String,
    pub description: String,
    pub instructions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The value is a secret: forms mask it.
    #[serde(default = "secret_by_default")]
    pub secret: bool,
    /// What the value looks like (`url`, `path`, a prefix…), when the catalog says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// When the account is connected rather than a key pasted: the link that connects it (valid
    /// for ten minutes; `POST /api/v1/connections/{server}` gives a fresh one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
}

/// Replies stored before `secret` existed are masked, to be safe.
fn secret_by_default() -> bool {
    true
}

/// Credentials over the store, the vault and the catalog, with the accounts connected with
/// OAuth standing in for the keys their tokens fill.
#[derive(Clone)]
pub struct Credentials {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    catalog: Catalog,
    outbound: Arc<OutboundPolicy>,
    connections: Connections,
}

/// A server ready to start: its client configuration, and the secrets in it (to scrub them from
/// any message that might quote them).
pub struct Prepared {
    pub config: ServerConfig,
    pub secrets: Vec<SecretString>,
}

impl Credentials {
    pub fn new(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        catalog: Catalog,
        outbound: Arc<OutboundPolicy>,
        connections: Connections,
    ) -> Self {
        Credentials { store, keyring, catalog, outbound, connections }
    }

    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// The entry's launch with the owner's credentials and connection filled in.
    pub async fn prepare(
        &self,
        owner: Id,
        entry: &CatalogEntry,
        call_timeout: std::time::Duration,
    ) -> Result<Prepared, CredentialError> {
        let provided = self.connections.provide(owner, entry).await?;
        let mut values = self.values(owner, entry).await?;
        values.extend(provided.values);
        let mut secrets: Vec<SecretString> = values.values().cloned().collect();
        let mut config =
            resolve(entry, &values, call_timeout, Some(self.outbound.clone())).map_err(CredentialError::Launch)?;
        if let (Some(bearer), switchboard_mcp::client::Launch::Http { headers, .. }) =
            (provided.bearer, &mut config.launch)
        {
            if !headers.keys().any(|h| h.eq_ignore_ascii_case("authorization")) {
                headers.insert("Authorization".into(), format!("Bearer {}", bearer.expose_secret()));
            }
            secrets.push(bearer);
        }
        Ok(Prepared { config, secrets })
    }

    /// The keys a connected account fills for this entry (none when it is not connected). A
    /// connection that needs consent again counts when `stale_counts`: the server is still the
    /// user's, and starting it says how to reconnect.
    async fn connected_keys(
        &self,
        owner: Id,
        entry: &CatalogEntry,
        stale_counts: bool,
    ) -> Result<BTreeSet<String>, CredentialError> {
        use switchboard_domain::ConnectionStatus;
        let Some(method) = &entry.oauth else { return Ok(BTreeSet::new()) };
        match self.connections.status(owner, &entry.slug).await? {
            Some(ConnectionStatus::Connected) => Ok(method.provided_keys().map(str::to_owned).collect()),
            Some(ConnectionStatus::NeedsConsent) if stale_counts => {
                Ok(method.provided_keys().map(str::to_owned).collect())
            }
            _ => Ok(BTreeSet::new()),
        }
    }

    pub fn outbound(&self) -> Arc<OutboundPolicy> {
        self.outbound.clone()
    }

    /// The catalog entry named by slug or name.
    pub async fn entry(&self, server: &str) -> Result<Arc<CatalogEntry>, CredentialError> {
        self.catalog.get(server).await?.ok_or_else(|| CredentialError::UnknownServer(server.to_owned()))
    }

    /// Checks and stores values for one server, all or none.
    pub async fn put(
        &self,
        owner: Id,
        server: &str,
        values: &BTreeMap<String, SecretString>,
    ) -> Result<ServerCredentials, CredentialError> {
        let entry = self.entry(server).await?;
        let now = switchboard_domain::now();
        let mut sealed = Vec::with_capacity(values.len());
        for (key, value) in values {
            let spec = entry.credentials.iter().find(|c| &c.key == key).ok_or_else(|| CredentialError::UnknownKey {
                server: entry.name.clone(),
                key: key.clone(),
                accepted: accepted(&entry),
            })?;
            let text = value.expose_secret();
            if text.trim().is_empty() {
                return Err(CredentialError::Empty(spec.key.clone()));
            }
            if text.len() > MAX_VALUE_BYTES {
                return Err(CredentialError::TooLong { key: spec.key.clone(), bytes: text.len() });
            }
            if text.chars().any(|c| c.is_control()) {
                return Err(CredentialError::ControlCharacter(spec.key.clone()));
            }
            let s = self.keyring.seal(Binding { owner, server: &entry.slug, key }, text);
            sealed.push(SealedCredential {
                server: entry.slug.clone(),
                key: key.clone(),
                key_version: i64::from(s.key_id().expect("freshly sealed")),
                ciphertext: s.ciphertext,
                nonce: s.nonce,
                updated_at: now,
            });
        }
        // A value that becomes part of a remote server's address must lead somewhere allowed.
        if let Some(Launch::Remote { url, .. }) = &entry.launch {
            if values.keys().any(|k| url.contains(&format!("${{{k}}}"))) {
                let mut merged = self.values(owner, &entry).await?;
                merged.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
                let address = substitute(url, &merged, &defaults(&entry));
                self.outbound
                    .check(&address)
                    .await
                    .map_err(|reason| CredentialError::Address { server: entry.name.clone(), reason })?;
            }
        }
        self.store.put_credentials(owner, &sealed).await?;
        tracing::info!(server = %entry.slug, keys = sealed.len(), "credentials stored");
        self.status_of(owner, &entry).await
    }

    /// Deletes the server's credentials (one key, when given); how many went.
    pub async fn delete(&self, owner: Id, server: &str, key: Option<&str>) -> Result<u64, CredentialError> {
        let entry = self.entry(server).await?;
        Ok(self.store.delete_credentials(owner, &entry.slug, key).await?)
    }

    /// Which keys of one server the user has set (or has connected an account for).
    pub async fn status_of(&self, owner: Id, entry: &CatalogEntry) -> Result<ServerCredentials, CredentialError> {
        let stored = self.store.credentials(owner, Some(&entry.slug)).await?;
        Ok(status(entry, &stored, &self.connected_keys(owner, entry, true).await?))
    }

    /// Every server the user has credentials or a connected account for.
    pub async fn status(&self, owner: Id) -> Result<Vec<ServerCredentials>, CredentialError> {
        let (stored, connected) = self.store.credentials_and_connected(owner).await?;
        let mut by_server: BTreeMap<String, Vec<SealedCredential>> = BTreeMap::new();
        for c in stored {
            by_server.entry(c.server.clone()).or_default().push(c);
        }
        for server in connected {
            by_server.entry(server).or_default();
        }
        let mut out = Vec::new();
        for (slug, rows) in by_server {
            match self.catalog.get(&slug).await? {
                Some(entry) => out.push(status(&entry, &rows, &self.connected_keys(owner, &entry, true).await?)),
                // The entry left the catalog: still show what is stored, so it can be deleted.
                None => out.push(ServerCredentials {
                    server: slug.clone(),
                    slug: slug.clone(),
                    keys: rows
                        .iter()
                        .map(|r| KeyStatus {
                            key: r.key.clone(),
                            description: String::new(),
                            required: false,
                            secret: true,
                            set: true,
                            updated_at: Some(r.updated_at),
                        })
                        .collect(),
                    complete: false,
                }),
            }
        }
        Ok(out)
    }

    /// The required credentials the user has not set, for each of these servers. A server
    /// whose account can be connected here asks for that (one item, with the link) instead of
    /// the keys the connection fills.
    pub async fn missing(
        &self,
        owner: Id,
        entries: &[Arc<CatalogEntry>],
    ) -> Result<Vec<MissingCredential>, CredentialError> {
        let mut out = Vec::new();
        for entry in entries {
            let mut set: BTreeSet<String> =
                self.store.credentials(owner, Some(&entry.slug)).await?.into_iter().map(|c| c.key).collect();
            set.extend(self.connected_keys(owner, entry, false).await?);
            let unset = |key: &str| !set.contains(key);
            let needed: Vec<_> =
                entry.credentials.iter().filter(|s| s.required && s.default.is_none() && unset(&s.key)).collect();
            let connectable = entry.oauth.as_ref().filter(|_| self.connections.can_connect(entry));
            let connect = match connectable {
                // A key pasted instead (an API key the server also takes) is enough.
                Some(method) if method.is_mcp_authorization() => {
                    entry.credentials.iter().all(|c| !set.contains(&c.key))
                        && self.connections.status(owner, &entry.slug).await?
                            != Some(switchboard_domain::ConnectionStatus::Connected)
                }
                Some(method) => needed.iter().any(|s| method.provided_keys().any(|k| k == s.key)),
                None => false,
            };
            if connect {
                let method = connectable.expect("checked");
                let started = self.connections.start(owner, &entry.slug, None).await?;
                let scopes: Vec<String> = method
                    .scopes
                    .iter()
                    .map(|s| {
                        if s.description.is_empty() {
                            s.name.clone()
                        } else {
                            format!("{} ({})", s.description, s.name)
                        }
                    })
                    .collect();
                let mut instructions =
                    vec![format!("Open the link and allow Switchboard to use your {} account", entry.name)];
                if !scopes.is_empty() {
                    instructions.push(format!("It asks for: {}", scopes.join("; ")));
                }
                instructions.push("Come back here once the page says it is connected".into());
                out.push(MissingCredential {
                    mcp_server: entry.name.clone(),
                    credential_key: method.access_token_key.clone().unwrap_or_else(|| "oauth".into()),
                    description: format!("Connect your {} account", entry.name),
                    instructions,
                    link: Some(started.auth_url.clone()),
                    secret: true,
                    format: None,
                    auth_url: Some(started.auth_url),
                });
            }
            for spec in needed {
                if connect && connectable.is_some_and(|m| m.provided_keys().any(|k| k == spec.key)) {
                    continue;
                }
                out.push(MissingCredential {
                    mcp_server: entry.name.clone(),
                    credential_key: spec.key.clone(),
                    description: spec.description.clone(),
                    instructions: spec.instructions.clone(),
                    link: spec.link.clone(),
                    secret: spec.secret,
                    format: spec.format.clone(),
                    auth_url: None,
                });
            }
        }
        Ok(out)
    }

    /// The user's values for one server, opened. Only for launching it or an explicit export.
    pub async fn values(
        &self,
        owner: Id,
        entry: &CatalogEntry,
    ) -> Result<BTreeMap<String, SecretString>, CredentialError> {
        let mut out = BTreeMap::new();
        for c in self.store.credentials(owner, Some(&entry.slug)).await? {
            let sealed = Sealed { ciphertext: c.ciphertext, nonce: c.nonce };
            let value = self.keyring.open(Binding { owner, server: &c.server, key: &c.key }, &sealed)?;
            out.insert(c.key, value);
        }
        Ok(out)
    }

    /// Re-seals every credential not sealed under the current key. Returns (resealed, already current).
    pub async fn rotate(&self) -> Result<(usize, usize), CredentialError> {
        let mut resealed = 0;
        let mut current = 0;
        for (owner, c) in self.store.all_credentials().await? {
            let sealed = Sealed { ciphertext: c.ciphertext.clone(), nonce: c.nonce.clone() };
            if !self.keyring.needs_reseal(&sealed) {
                current += 1;
                continue;
            }
            let fresh = self.keyring.reseal(Binding { owner, server: &c.server, key: &c.key }, &sealed)?;
            let row = SealedCredential {
                key_version: i64::from(fresh.key_id()?),
                ciphertext: fresh.ciphertext,
                nonce: fresh.nonce,
                ..c.clone()
            };
            if self.store.reseal_credential(owner, &c.ciphertext, &row).await? {
                resealed += 1;
            }
        }
        Ok((resealed, current))
    }
}

fn accepted(entry: &CatalogEntry) -> String {
    if entry.credentials.is_empty() {
        "none".into()
    } else {
        entry.credentials.iter().map(|c| c.key.as_str()).collect::<Vec<_>>().join(", ")
    }
}

fn status(entry: &CatalogEntry, stored: &[SealedCredential], connected: &BTreeSet<String>) -> ServerCredentials {
    let keys: Vec<KeyStatus> = entry
        .credentials
        .iter()
        .map(|spec| {
            let row = stored.iter().find(|c| c.key == spec.key);
            KeyStatus {
                key: spec.key.clone(),
                description: spec.description.clone(),
                required: spec.required,
                secret: spec.secret,
                set: row.is_some() || connected.contains(&spec.key),
                updated_at: row.map(|r| r.updated_at),
            }
        })
        .collect();
    let complete =
        entry.credentials.iter().zip(&keys).all(|(spec, k)| k.set || !spec.required || spec.default.is_some());
    ServerCredentials { server: entry.name.clone(), slug: entry.slug.clone(), keys, complete }
}

/// The declared defaults of an entry's credentials.
pub fn defaults(entry: &CatalogEntry) -> BTreeMap<String, String> {
    entry.credentials.iter().filter_map(|c| c.default.clone().map(|d| (c.key.clone(), d))).collect()
}

/// `template` with each `${KEY}` replaced by the value (or the default); unknown ones are kept.
pub fn substitute(
    template: &str,
    values: &BTreeMap<String, SecretString>,
    defaults: &BTreeMap<String, String>,
) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let key = &after[..end];
                match values.get(key).map(|v| v.expose_secret().to_owned()).or_else(|| defaults.get(key).cloned()) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(&rest[start..start + 3 + end]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `text` with every one of `secrets` replaced by `[redacted]`, for messages that may quote them.
pub fn scrub(text: &str, secrets: &[SecretString]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        let value = secret.expose_secret();
        if value.len() >= 4 {
            out = out.replace(value, "[redacted]");
        }
    }
    out
}

/// The `${KEY}` placeholders a template uses.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_from_values_then_defaults_and_unknown_ones_kept() {
        let values = BTreeMap::from([("TOKEN".to_string(), SecretString::from("t0k"))]);
        let defaults = BTreeMap::from([("REGION".to_string(), "eu".to_string())]);
        assert_eq!(substitute("Bearer ${TOKEN}", &values, &defaults), "Bearer t0k");
        assert_eq!(substitute("https://${REGION}.x/${OTHER}/${", &values, &defaults), "https://eu.x/${OTHER}/${");
        assert_eq!(placeholders("a ${A} b ${B}"), ["A", "B"]);
    }
}
