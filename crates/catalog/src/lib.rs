//! The MCP server catalog: what servers exist, how to run them, what they need, and finding the
//! ones a request needs.

pub mod builtin;
mod entry;
pub mod eval;
pub mod import;
pub mod search;
mod service;

pub use entry::{slugify, CatalogEntry, CredentialSpec, Launch, OAuthMethod, OAuthScope, ToolInfo};
pub use import::{ImportError, ImportFile};
pub use search::{Method, Query, SearchHit, SearchIndex};
pub use service::{Catalog, CatalogError, ImportReport};
