//! The vault's keys: from `SWITCHBOARD_MASTER_KEY` (and the keys being rotated away from), or from
//! a key file in the data directory, created 0600 on first start. The file holds one base64 key
//! per line, the current one first; `switchboard vault rotate` puts a new one in front, re-seals
//! every credential, then drops the old ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use switchboard_agent::connections::Connections;
use switchboard_agent::credentials::Credentials;
use switchboard_catalog::Catalog;
use switchboard_mcp::outbound::OutboundPolicy;
use switchboard_store::Store;
use switchboard_vault::{Keyring, MasterKey};

use crate::config::Settings;

/// Where the generated key lives when none is configured.
pub fn key_file(settings: &Settings) -> PathBuf {
    settings.data_dir.join("vault_key")
}

/// The keyring the server seals and opens credentials with.
pub fn keyring(settings: &Settings) -> anyhow::Result<Keyring> {
    let previous = parse_keys(settings.previous_master_keys.as_ref())?;
    if let Some(material) = &settings.master_key {
        let current = MasterKey::from_material(material.expose_secret()).context("SWITCHBOARD_MASTER_KEY")?;
        // Keys of an earlier key file still open what they sealed, so moving to a configured
        // key loses nothing before `vault rotate` runs.
        let from_file = read_key_file(&key_file(settings)).unwrap_or_default();
        return Ok(Keyring::new(current).with_previous(previous).with_previous(from_file));
    }
    let path = key_file(settings);
    let mut keys = read_key_file(&path)?;
    if keys.is_empty() {
        let fresh = MasterKey::generate();
        crate::app::write_private(&path, format!("{}\n", fresh.expose_secret()).as_bytes())
            .with_context(|| format!("cannot write the vault key to {}", path.display()))?;
        keys = read_key_file(&path)?;
    }
    let current = keys.remove(0);
    Ok(Keyring::new(current).with_previous(keys).with_previous(previous))
}

/// The comma-separated keys being rotated away from.
fn parse_keys(materials: Option<&SecretString>) -> anyhow::Result<Vec<MasterKey>> {
    materials
        .iter()
        .flat_map(|m| m.expose_secret().split(','))
        .filter(|m| !m.trim().is_empty())
        .map(|m| MasterKey::from_material(m).context("SWITCHBOARD_PREVIOUS_MASTER_KEYS"))
        .collect()
}

/// The keys in a key file, current first; none when there is no file.
fn read_key_file(path: &Path) -> anyhow::Result<Vec<MasterKey>> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| MasterKey::from_material(l).with_context(|| format!("a key in {}", path.display())))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read the vault key {}", path.display())),
    }
}

/// Replaces the key file's content atomically, keeping it 0600.
fn rewrite_key_file(path: &Path, keys: &[SecretString]) -> anyhow::Result<()> {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let text: String = keys.iter().map(|k| format!("{}\n", k.expose_secret())).collect();
    crate::app::write_private(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// What a rotation did.
pub struct Rotation {
    pub key_id: u32,
    pub resealed: usize,
    pub current: usize,
}

/// Re-seals every credential under the current key (a new one, with the key file).
pub async fn rotate(settings: &Settings, store: Arc<dyn Store>) -> anyhow::Result<Rotation> {
    let path = key_file(settings);
    let mut new_file_key = None;
    if settings.master_key.is_none() {
        // Make sure a key file exists, then put a new key in front of the old ones.
        keyring(settings)?;
        let old: Vec<SecretString> = std::fs::read_to_string(&path)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| SecretString::from(l.to_owned()))
            .collect();
        let fresh = MasterKey::generate();
        let mut keys = vec![fresh.clone()];
        keys.extend(old);
        rewrite_key_file(&path, &keys)?;
        new_file_key = Some(fresh);
    }
    let keyring = Arc::new(keyring(settings)?);
    let catalog = Catalog::new(store.clone(), None);
    let outbound = Arc::new(OutboundPolicy::default());
    let connections = Connections::new(
        store.clone(),
        keyring.clone(),
        catalog.clone(),
        switchboard_oauth::Http::new(outbound.clone()),
        Vec::new(),
        String::new(),
    );
    let credentials = Credentials::new(store, keyring.clone(), catalog, outbound, connections.clone());
    let (mut resealed, mut current) = credentials.rotate().await.context("re-encrypting the credentials failed")?;
    let (tokens_resealed, tokens_current) =
        connections.rotate().await.context("re-encrypting the connected accounts' tokens failed")?;
    resealed += tokens_resealed;
    current += tokens_current;
    if let Some(fresh) = new_file_key {
        rewrite_key_file(&path, &[fresh])?;
    }
    Ok(Rotation { key_id: keyring.current_id(), resealed, current })
}
