//! The `switchboard` binary's library half: settings, wiring and the CLI, so integration tests
//! start the server exactly the way `switchboard serve` does.

pub mod app;
mod catalog_cli;
pub mod cli;
pub mod client;
pub mod config;
pub mod telemetry;
pub mod vault;

pub use app::Application;
pub use config::Settings;
