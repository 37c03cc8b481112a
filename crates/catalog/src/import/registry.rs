//! The official MCP Registry's `server.json` (schema 2025-12-11).
//!
//! A package becomes a stdio launch (`npx`/`uvx`/`docker`/`dnx` by registry type, or the package's
//! `runtimeHint`); a remote becomes a Streamable HTTP launch. Declared environment variables and
//! headers become the credential form: `isRequired`, `isSecret`, `default`, `choices` and `format`
//! carry over, and the launch refers to each by a `${NAME}` placeholder.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{join, ImportError, Origin, Reader};
use crate::entry::{CatalogEntry, CredentialSpec, Launch};

pub(super) fn entry(reader: &Reader<'_>, server: &Value, at: &str) -> Result<(CatalogEntry, Origin), ImportError> {
    if !server.is_object() {
        return Err(reader.error(at, "must be an object"));
    }
    let name = reader.string(server, "name", at)?;
    let at = format!("{at} ({name:?})");
    let mut entry = CatalogEntry::named(name, "registry");
    entry.title = reader.opt_string(server, "title", &at)?;
    entry.description = reader.opt_string(server, "description", &at)?.unwrap_or_default();
    entry.homepage = match reader.opt_string(server, "websiteUrl", &at)? {
        Some(url) => Some(url),
        None => server.get("repository").and_then(|r| r.get("url")).and_then(Value::as_str).map(str::to_string),
    };

    let packages = reader.opt_array(server, "packages", &at)?;
    let remotes = reader.opt_array(server, "remotes", &at)?;
    // The first stdio package is how we start it; otherwise the first remote.
    let stdio = packages.iter().enumerate().find(|(_, p)| {
        p.get("transport").and_then(|t| t.get("type")).and_then(Value::as_str).is_none_or(|t| t == "stdio")
    });
    if let Some((i, package)) = stdio {
        let (launch, credentials) = from_package(reader, package, &format!("{at}.packages[{i}]"))?;
        entry.launch = Some(launch);
        entry.credentials = credentials;
    } else if let Some(remote) = remotes.first() {
        let (launch, credentials) = from_remote(reader, remote, &format!("{at}.remotes[0]"))?;
        entry.launch = Some(launch);
        entry.credentials = credentials;
    } else if let Some(package) = packages.first() {
        // Only HTTP-transport packages: the package's own URL is the remote.
        let at = format!("{at}.packages[0]");
        let transport = package.get("transport").cloned().unwrap_or(Value::Null);
        let (launch, credentials) = from_remote(reader, &transport, &join(&at, "transport"))?;
        entry.launch = Some(launch);
        entry.credentials = credentials;
    }
    Ok((entry, reader.origin(&at)))
}

fn from_package(reader: &Reader<'_>, package: &Value, at: &str) -> Result<(Launch, Vec<CredentialSpec>), ImportError> {
    let registry_type = reader.string(package, "registryType", at)?;
    let identifier = reader.string(package, "identifier", at)?;
    let version = reader.opt_string(package, "version", at)?;
    let hint = reader.opt_string(package, "runtimeHint", at)?;
    let (default_command, mut args, reference) = match registry_type.as_str() {
        "npm" => ("npx", vec!["-y".to_string()], versioned(&identifier, version.as_deref(), "@")),
        "pypi" => ("uvx", vec![], versioned(&identifier, version.as_deref(), "==")),
        "oci" => ("docker", vec!["run".into(), "-i".into(), "--rm".into()], image(&identifier, version.as_deref())),
        "nuget" => ("dnx", vec![], versioned(&identifier, version.as_deref(), "@")),
        "mcpb" => ("mcpb", vec![], identifier.clone()),
        other => {
            return Err(reader.error(&join(at, "registryType"), format!("unknown registry type {other:?}")));
        }
    };
    let command = hint.unwrap_or_else(|| default_command.to_string());
    if command != default_command {
        args.clear();
    }
    let mut credentials = Vec::new();
    let mut env = BTreeMap::new();
    for (i, variable) in reader.opt_array(package, "environmentVariables", at)?.iter().enumerate() {
        let var_at = format!("{at}.environmentVariables[{i}]");
        let credential = input(reader, variable, &var_at)?;
        env.insert(credential.key.clone(), format!("${{{}}}", credential.key));
        if registry_type == "oci" {
            args.push("-e".into());
            args.push(credential.key.clone());
        }
        credentials.push(credential);
    }
    args.extend(arguments(reader, package, "runtimeArguments", at)?);
    args.push(reference);
    args.extend(arguments(reader, package, "packageArguments", at)?);
    Ok((Launch::Stdio { command, args, env }, credentials))
}

fn from_remote(reader: &Reader<'_>, remote: &Value, at: &str) -> Result<(Launch, Vec<CredentialSpec>), ImportError> {
    let url = reader.string(remote, "url", at)?;
    let mut credentials = Vec::new();
    let mut headers = BTreeMap::new();
    for (i, header) in reader.opt_array(remote, "headers", at)?.iter().enumerate() {
        let header_at = format!("{at}.headers[{i}]");
        let credential = input(reader, header, &header_at)?;
        // A header such as "Authorization: Bearer {api_key}" asks for the variable, not the header.
        let template = match reader.opt_string(header, "value", &header_at)? {
            Some(value) if value.contains('{') => value.replace('{', "${"),
            _ => format!("${{{}}}", credential.key),
        };
        headers.insert(credential.key.clone(), template);
        credentials.push(credential);
    }
    Ok((Launch::Remote { url, headers }, credentials))
}

/// An environment variable or header declaration (a registry "input").
fn input(reader: &Reader<'_>, value: &Value, at: &str) -> Result<CredentialSpec, ImportError> {
    Ok(CredentialSpec {
        key: reader.string(value, "name", at)?,
        description: reader.opt_string(value, "description", at)?.unwrap_or_default(),
        required: reader.opt_bool(value, "isRequired", at)?.unwrap_or(false),
        secret: reader.opt_bool(value, "isSecret", at)?.unwrap_or(false),
        format: reader.opt_string(value, "format", at)?,
        instructions: Vec::new(),
        link: None,
        default: reader.opt_string(value, "default", at)?,
        choices: reader.strings(value, "choices", at)?,
    })
}

/// Positional arguments give their value; named ones give `--name value` (or the flag alone).
fn arguments(reader: &Reader<'_>, package: &Value, field: &str, at: &str) -> Result<Vec<String>, ImportError> {
    let mut out = Vec::new();
    for (i, argument) in reader.opt_array(package, field, at)?.iter().enumerate() {
        let arg_at = format!("{at}.{field}[{i}]");
        let value = match reader.opt_string(argument, "value", &arg_at)? {
            Some(v) => Some(v),
            None => reader.opt_string(argument, "default", &arg_at)?,
        };
        match reader.opt_string(argument, "type", &arg_at)?.as_deref() {
            Some("named") => {
                out.push(reader.string(argument, "name", &arg_at)?);
                out.extend(value);
            }
            Some("positional") | None => match value.or(reader.opt_string(argument, "valueHint", &arg_at)?) {
                Some(v) => out.push(v),
                None => return Err(reader.error(&arg_at, "a positional argument needs a value")),
            },
            Some(other) => return Err(reader.error(&join(&arg_at, "type"), format!("unknown argument type {other:?}"))),
        }
    }
    Ok(out)
}

fn versioned(identifier: &str, version: Option<&str>, separator: &str) -> String {
    match version {
        Some(v) if !v.is_empty() && v != "latest" => format!("{identifier}{separator}{v}"),
        _ => identifier.to_string(),
    }
}

fn image(identifier: &str, version: Option<&str>) -> String {
    match version {
        Some(v) if !identifier.contains(':') && !v.is_empty() => format!("{identifier}:{v}"),
        _ => identifier.to_string(),
    }
}
