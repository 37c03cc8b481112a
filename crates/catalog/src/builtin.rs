//! The catalog every server starts with: widely used MCP servers, their packages, commands and
//! the credentials they need, as their own documentation gives them.

use crate::entry::CatalogEntry;

const BUILTIN: &str = include_str!("builtin.json");

/// The built-in entries.
pub fn entries() -> Vec<CatalogEntry> {
    let mut entries: Vec<CatalogEntry> = serde_json::from_str(BUILTIN).expect("the built-in catalog is valid JSON");
    for entry in &mut entries {
        entry.slug = crate::slugify(&entry.name);
        entry.source = "builtin".into();
    }
    entries
}
