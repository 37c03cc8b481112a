//! Every import format round-trips: import, export as a plain list, import that list into an
//! empty catalog, and get the same entries back; importing the same files again changes nothing.

use serde_json::json;
use switchboard_catalog::import::{merge, parse};
use switchboard_catalog::{CatalogEntry, ImportFile};

fn import(existing: &[CatalogEntry], files: &[(&str, serde_json::Value)]) -> (Vec<CatalogEntry>, usize, usize, usize) {
    let bytes: Vec<(String, Vec<u8>)> =
        files.iter().map(|(n, v)| (n.to_string(), serde_json::to_vec(v).unwrap())).collect();
    let files: Vec<ImportFile<'_>> = bytes.iter().map(|(name, bytes)| ImportFile { name, bytes }).collect();
    let merged = merge(existing, parse(&files).unwrap()).unwrap();
    (merged.changed, merged.created, merged.updated, merged.unchanged)
}

fn round_trips(files: &[(&str, serde_json::Value)]) -> Vec<CatalogEntry> {
    let (entries, created, updated, _) = import(&[], files);
    assert!(created > 0 && updated == 0);
    // Export as a plain list and import it into an empty catalog: the same entries.
    let exported = serde_json::to_value(&entries).unwrap();
    let (again, ..) = import(&[], &[("export.json", exported.clone())]);
    let strip = |list: &[CatalogEntry]| -> Vec<CatalogEntry> {
        list.iter()
            .cloned()
            .map(|mut e| {
                e.source.clear();
                e
            })
            .collect()
    };
    assert_eq!(strip(&again), strip(&entries));
    // The same files again, over what they produced: nothing changes.
    let (changed, created, updated, unchanged) = import(&entries, files);
    assert!(changed.is_empty() && created == 0 && updated == 0, "{changed:?}");
    assert_eq!(unchanged, entries.len());
    entries
}

#[test]
fn the_specification_files_round_trip() {
    let entries = round_trips(&[
        (
            "servers.json",
            json!({"servers": [{"name": "Met Museum MCP Server", "description": "Art",
            "tools": [{"name": "search-museum-objects", "description": "Search the collection"}]}]}),
        ),
        (
            "config.json",
            json!({"mcpServers": {"Met Museum MCP Server": {"command": "npx", "args": ["-y", "metmuseum-mcp"]}}}),
        ),
        (
            "credinfo.json",
            json!({"credential_instructions": {"met-museum-mcp-server": {
            "required_tokens": [{"name": "MET_KEY", "description": "key", "secret": true}], "steps": ["Ask the museum"]}}}),
        ),
    ]);
    assert_eq!(entries[0].name, "Met Museum MCP Server");
    assert_eq!(entries[0].slug, "met-museum-mcp-server");
    assert_eq!(entries[0].credentials[0].instructions, vec!["Ask the museum"]);
}

#[test]
fn a_registry_server_json_round_trips() {
    let entries = round_trips(&[(
        "server.json",
        json!({"name": "io.github.x/pg", "description": "Postgres", "version": "2.0.0",
            "packages": [{"registryType": "pypi", "identifier": "pg-mcp", "version": "2.0.0",
                "packageArguments": [{"type": "named", "name": "--dsn", "value": "${PG_DSN}"}],
                "environmentVariables": [{"name": "PG_DSN", "isRequired": true, "isSecret": true}]}]}),
    )]);
    let launch = serde_json::to_value(entries[0].launch.as_ref().unwrap()).unwrap();
    assert_eq!(launch["command"], "uvx");
    assert_eq!(launch["args"], json!(["pg-mcp==2.0.0", "--dsn", "${PG_DSN}"]));
}

#[test]
fn a_registry_list_and_a_plain_list_round_trip() {
    round_trips(&[(
        "registry-page.json",
        json!({"servers": [{"server": {"name": "io.a/one", "description": "One",
            "packages": [{"registryType": "oci", "identifier": "ghcr.io/a/one", "version": "1",
                "environmentVariables": [{"name": "TOKEN", "isSecret": true}]}]}}]}),
    )]);
    round_trips(&[("list.json", json!([{"name": "Plain", "description": "d", "tools": [{"name": "t"}]}]))]);
}

#[test]
fn colliding_slugs_get_the_name_hash_and_stay_unique() {
    let (entries, ..) = import(&[], &[("list.json", json!([{"name": "Foo Bar"}, {"name": "foo-bar"}]))]);
    assert_eq!(entries[0].slug, "foo-bar");
    assert!(entries[1].slug.starts_with("foo-bar-") && entries[1].slug.len() == "foo-bar-".len() + 8);
}
