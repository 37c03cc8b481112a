//! Importers: the formats catalog entries arrive in, and how an import merges into the catalog.
//!
//! Formats, told apart by their shape:
//! - a plain JSON list of entries (what `catalog export` writes);
//! - the original specification's three files: `servers.json` (`servers: [{name, description, tools}]`),
//!   `config.json` (`mcpServers.{key}`: how to run each) and `credinfo.json`
//!   (`credential_instructions.{key}.{required_tokens, steps}`);
//! - the official MCP Registry's `server.json` (schema 2025-12-11), alone, wrapped in `{"server": …}`,
//!   or as the registry API's list `{"servers": [{"server": …}, …]}`.
//!
//! An import is all or nothing: every file is parsed and every patch matched before anything is
//! written, and an error names the file, the entry and the field.

mod registry;
mod spec;

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::entry::{short_hash, slugify, CatalogEntry, CredentialSpec, Launch};

/// One file to import: its name (for messages) and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct ImportFile<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// Why an import was refused; nothing of it was applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {location}: {message}")]
pub struct ImportError {
    pub file: String,
    /// The entry and field, as a JSON path with the entry's name where known.
    pub location: String,
    pub message: String,
}

/// What the files said, before it is merged into the catalog.
#[derive(Debug, Default)]
pub struct Parsed {
    entries: Vec<(CatalogEntry, Origin)>,
    launches: Vec<(String, Launch, Vec<CredentialSpec>, Origin)>,
    credentials: Vec<(String, Vec<CredentialSpec>, Origin)>,
}

/// Where a parsed item came from, for error messages.
#[derive(Debug, Clone)]
struct Origin {
    file: String,
    location: String,
}

impl Origin {
    fn error(&self, message: impl Into<String>) -> ImportError {
        ImportError { file: self.file.clone(), location: self.location.clone(), message: message.into() }
    }
}

/// The result of merging an import into the catalog.
#[derive(Debug, Default)]
pub struct Merged {
    /// Entries to write, new or changed, with their final slugs.
    pub changed: Vec<CatalogEntry>,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// Parses every file; the first problem found refuses the whole import.
pub fn parse(files: &[ImportFile<'_>]) -> Result<Parsed, ImportError> {
    let mut parsed = Parsed::default();
    for file in files {
        let at = |location: &str, message: String| ImportError {
            file: file.name.to_string(),
            location: location.to_string(),
            message,
        };
        let value: Value =
            serde_json::from_slice(file.bytes).map_err(|e| at("(file)", format!("not valid JSON: {e}")))?;
        let reader = Reader { file: file.name };
        match &value {
            Value::Array(items) => reader.list(items, &mut parsed)?,
            Value::Object(map) if map.contains_key("mcpServers") => spec::config(&reader, &value, &mut parsed)?,
            Value::Object(map) if map.contains_key("credential_instructions") => {
                spec::credinfo(&reader, &value, &mut parsed)?
            }
            Value::Object(map) if map.contains_key("servers") => {
                let servers = reader.array(&value, "servers", "")?;
                if servers.first().is_some_and(|s| s.get("server").is_some()) {
                    for (i, item) in servers.iter().enumerate() {
                        let location = format!("servers[{i}].server");
                        let server = item.get("server").ok_or_else(|| at(&location, "is missing".into()))?;
                        parsed.entries.push(registry::entry(&reader, server, &location)?);
                    }
                } else {
                    spec::servers(&reader, servers, &mut parsed)?;
                }
            }
            Value::Object(map) if map.contains_key("server") => {
                parsed.entries.push(registry::entry(&reader, &value["server"], "server")?);
            }
            Value::Object(map) if map.contains_key("packages") || map.contains_key("remotes") => {
                parsed.entries.push(registry::entry(&reader, &value, "(server.json)")?);
            }
            _ => {
                return Err(at(
                    "(file)",
                    "not a catalog file: expected a list of entries, servers.json, config.json, credinfo.json \
                     or a registry server.json"
                        .into(),
                ))
            }
        }
    }
    Ok(parsed)
}

/// Merges parsed files into `existing` (the whole current catalog). Imported fields replace the
/// stored ones; fields an import does not carry (a `servers.json` has no launch command, say) keep
/// their stored values. Importing the same files twice changes nothing the second time.
pub fn merge(existing: &[CatalogEntry], parsed: Parsed) -> Result<Merged, ImportError> {
    let mut work: Vec<CatalogEntry> = existing.to_vec();
    let mut by_name: HashMap<String, usize> = work.iter().enumerate().map(|(i, e)| (e.name.clone(), i)).collect();
    let mut seen_in_import: HashMap<String, Origin> = HashMap::new();
    let mut touched: HashSet<String> = HashSet::new();

    for (incoming, origin) in parsed.entries {
        if let Some(first) = seen_in_import.insert(incoming.name.clone(), origin.clone()) {
            return Err(origin.error(format!(
                "the name {:?} is also at {} in {}; names must be unique",
                incoming.name, first.location, first.file
            )));
        }
        touched.insert(incoming.name.clone());
        match by_name.get(&incoming.name) {
            Some(&i) => overlay(&mut work[i], incoming),
            None => {
                by_name.insert(incoming.name.clone(), work.len());
                work.push(incoming);
            }
        }
    }
    for (key, launch, declared, origin) in parsed.launches {
        let i = find(&work, &key).ok_or_else(|| missing(&origin, &key))?;
        touched.insert(work[i].name.clone());
        work[i].launch = Some(launch);
        for credential in declared {
            if work[i].credential(&credential.key).is_none() {
                work[i].credentials.push(credential);
            }
        }
    }
    for (key, credentials, origin) in parsed.credentials {
        let i = find(&work, &key).ok_or_else(|| missing(&origin, &key))?;
        touched.insert(work[i].name.clone());
        for credential in credentials {
            match work[i].credentials.iter_mut().find(|c| c.key == credential.key) {
                Some(stored) => {
                    if !credential.instructions.is_empty() {
                        stored.instructions = credential.instructions;
                    }
                    if !credential.description.is_empty() {
                        stored.description = credential.description;
                    }
                    if credential.link.is_some() {
                        stored.link = credential.link;
                    }
                }
                None => work[i].credentials.push(credential),
            }
        }
    }
    assign_slugs(existing, &mut work);

    let before: HashMap<&str, &CatalogEntry> = existing.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut merged = Merged::default();
    for entry in work.into_iter().filter(|e| touched.contains(&e.name)) {
        match before.get(entry.name.as_str()) {
            Some(old) if **old == entry => merged.unchanged += 1,
            Some(_) => {
                merged.updated += 1;
                merged.changed.push(entry);
            }
            None => {
                merged.created += 1;
                merged.changed.push(entry);
            }
        }
    }
    Ok(merged)
}

/// Imported values replace stored ones; empty imported fields leave stored ones alone.
fn overlay(stored: &mut CatalogEntry, incoming: CatalogEntry) {
    if incoming.title.is_some() {
        stored.title = incoming.title;
    }
    if !incoming.description.is_empty() {
        stored.description = incoming.description;
    }
    if !incoming.tools.is_empty() {
        stored.tools = incoming.tools;
    }
    if incoming.launch.is_some() {
        stored.launch = incoming.launch;
    }
    if !incoming.credentials.is_empty() {
        stored.credentials = incoming.credentials;
    }
    if incoming.homepage.is_some() {
        stored.homepage = incoming.homepage;
    }
    if !incoming.source.is_empty() {
        stored.source = incoming.source;
    }
}

/// A key in `config.json` or `credinfo.json` names an entry by its name, its slug, or its name in
/// another case.
fn find(entries: &[CatalogEntry], key: &str) -> Option<usize> {
    entries
        .iter()
        .position(|e| e.name == key)
        .or_else(|| entries.iter().position(|e| e.slug == key || e.slug == slugify(key)))
        .or_else(|| entries.iter().position(|e| e.name.eq_ignore_ascii_case(key)))
}

fn missing(origin: &Origin, key: &str) -> ImportError {
    origin.error(format!("no catalog entry is named {key:?}; import its servers.json entry with it"))
}

/// Stored entries keep their slugs; a new entry whose slug is taken gets the name's hash appended.
fn assign_slugs(existing: &[CatalogEntry], work: &mut [CatalogEntry]) {
    let kept: HashMap<&str, &str> = existing.iter().map(|e| (e.name.as_str(), e.slug.as_str())).collect();
    let mut taken: HashMap<String, String> = HashMap::new();
    for entry in work.iter_mut() {
        if let Some(slug) = kept.get(entry.name.as_str()) {
            entry.slug = slug.to_string();
            taken.insert(entry.slug.clone(), entry.name.clone());
        }
    }
    for entry in work.iter_mut().filter(|e| !kept.contains_key(e.name.as_str())) {
        let mut slug = slugify(&entry.name);
        if taken.contains_key(&slug) {
            slug = format!("{slug}-{}", short_hash(&entry.name));
        }
        taken.insert(slug.clone(), entry.name.clone());
        entry.slug = slug;
    }
}

/// Reads fields out of JSON values, naming the file and path in every error.
pub(crate) struct Reader<'a> {
    pub file: &'a str,
}

impl Reader<'_> {
    pub fn error(&self, location: &str, message: impl Into<String>) -> ImportError {
        ImportError { file: self.file.to_string(), location: location.to_string(), message: message.into() }
    }

    fn origin(&self, location: &str) -> Origin {
        Origin { file: self.file.to_string(), location: location.to_string() }
    }

    fn field<'v>(&self, value: &'v Value, field: &str) -> Option<&'v Value> {
        value.get(field).filter(|v| !v.is_null())
    }

    pub fn string(&self, value: &Value, field: &str, at: &str) -> Result<String, ImportError> {
        match self.field(value, field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err(self.error(&join(at, field), "must not be empty")),
            Some(_) => Err(self.error(&join(at, field), "must be a string")),
            None => Err(self.error(&join(at, field), "is missing")),
        }
    }

    pub fn opt_string(&self, value: &Value, field: &str, at: &str) -> Result<Option<String>, ImportError> {
        match self.field(value, field) {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.error(&join(at, field), "must be a string")),
            None => Ok(None),
        }
    }

    pub fn opt_bool(&self, value: &Value, field: &str, at: &str) -> Result<Option<bool>, ImportError> {
        match self.field(value, field) {
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.error(&join(at, field), "must be true or false")),
            None => Ok(None),
        }
    }

    pub fn array<'v>(&self, value: &'v Value, field: &str, at: &str) -> Result<&'v [Value], ImportError> {
        match self.field(value, field) {
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(self.error(&join(at, field), "must be a list")),
            None => Err(self.error(&join(at, field), "is missing")),
        }
    }

    pub fn opt_array<'v>(&self, value: &'v Value, field: &str, at: &str) -> Result<&'v [Value], ImportError> {
        match self.field(value, field) {
            Some(_) => self.array(value, field, at),
            None => Ok(&[]),
        }
    }

    pub fn strings(&self, value: &Value, field: &str, at: &str) -> Result<Vec<String>, ImportError> {
        self.opt_array(value, field, at)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(self.error(&format!("{}[{i}]", join(at, field)), "must be a string")),
            })
            .collect()
    }

    /// A plain list of entries, as `catalog export` writes them.
    fn list(&self, items: &[Value], parsed: &mut Parsed) -> Result<(), ImportError> {
        for (i, item) in items.iter().enumerate() {
            let at = entry_location(i, item);
            self.string(item, "name", &at)?;
            let mut entry: CatalogEntry =
                serde_json::from_value(item.clone()).map_err(|e| self.error(&at, e.to_string()))?;
            for (t, tool) in entry.tools.iter().enumerate() {
                if tool.name.trim().is_empty() {
                    return Err(self.error(&format!("{at}.tools[{t}].name"), "must not be empty"));
                }
            }
            for (c, credential) in entry.credentials.iter().enumerate() {
                if credential.key.trim().is_empty() {
                    return Err(self.error(&format!("{at}.credentials[{c}].key"), "must not be empty"));
                }
            }
            if entry.source.is_empty() {
                entry.source = "list".into();
            }
            parsed.entries.push((entry, self.origin(&at)));
        }
        Ok(())
    }
}

/// `[3] ("Name")` — the index, and the name when the entry has one.
pub(crate) fn entry_location(index: usize, item: &Value) -> String {
    match item.get("name").and_then(Value::as_str) {
        Some(name) => format!("[{index}] ({name:?})"),
        None => format!("[{index}]"),
    }
}

pub(crate) fn join(at: &str, field: &str) -> String {
    if at.is_empty() {
        field.to_string()
    } else {
        format!("{at}.{field}")
    }
}

/// Environment variables whose names say they hold a secret.
pub(crate) fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    ["TOKEN", "KEY", "SECRET", "PASSWORD", "PASS", "CREDENTIAL", "AUTH", "COOKIE", "PAT"]
        .iter()
        .any(|word| key.split(|c: char| !c.is_ascii_alphanumeric()).any(|part| part == *word) || key.contains(word))
}
