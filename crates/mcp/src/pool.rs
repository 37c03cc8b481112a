//! Connected external servers kept between runs, one per owner and configuration, and shut down
//! when nobody used them for a while. A server that crashed or closed is started again on the
//! next request for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::client::{ClientError, ExternalServer, Launch, ServerConfig};

/// The pool. Clones share it.
#[derive(Clone)]
pub struct ClientPool {
    inner: Arc<Inner>,
}

struct Inner {
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    idle_after: Duration,
}

/// Who a server runs for, and a digest of exactly how it is launched (credentials included, so
/// a changed credential starts a new server; the digest never leaves this process).
type Key = (String, [u8; 32]);

#[derive(Default)]
struct Slot {
    server: tokio::sync::Mutex<Option<Arc<ExternalServer>>>,
    last_used: Mutex<Option<Instant>>,
}

fn fingerprint(config: &ServerConfig) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut put = |s: &str| {
        hash.update((s.len() as u64).to_le_bytes());
        hash.update(s.as_bytes());
    };
    put(&config.name);
    match &config.launch {
        Launch::Stdio { command, args, env } => {
            put("stdio");
            put(command);
            args.iter().for_each(|a| put(a));
            env.iter().for_each(|(k, v)| {
                put(k);
                put(v);
            });
        }
        Launch::Http { url, headers } => {
            put("http");
            put(url);
            headers.iter().for_each(|(k, v)| {
                put(k);
                put(v);
            });
        }
    }
    hash.finalize().into()
}

impl ClientPool {
    /// A pool that shuts servers down after `idle_after` without use. Must be created inside a
    /// tokio runtime (it sweeps idle servers in the background until the pool is dropped).
    pub fn new(idle_after: Duration) -> ClientPool {
        let pool = ClientPool { inner: Arc::new(Inner { slots: Default::default(), idle_after }) };
        let weak = Arc::downgrade(&pool.inner);
        let every = (idle_after / 2).clamp(Duration::from_millis(100), Duration::from_secs(30));
        tokio::spawn(sweep(weak, every));
        pool
    }

    /// The running server for `owner` with this configuration, started if there is none (or the
    /// one there was has died).
    pub async fn get(&self, owner: &str, config: ServerConfig) -> Result<Arc<ExternalServer>, ClientError> {
        let key = (owner.to_owned(), fingerprint(&config));
        let slot = self.inner.slots.lock().expect("pool lock").entry(key).or_default().clone();
        *slot.last_used.lock().expect("slot lock") = Some(Instant::now());
        let mut server = slot.server.lock().await;
        if let Some(running) = server.as_ref() {
            if running.is_alive() {
                return Ok(running.clone());
            }
            tracing::info!(server = %running.name(), "an MCP server had stopped; starting it again");
        }
        let started = Arc::new(ExternalServer::connect(config).await?);
        *server = Some(started.clone());
        Ok(started)
    }

    /// How many servers are running.
    pub async fn running(&self) -> usize {
        let slots: Vec<Arc<Slot>> = self.inner.slots.lock().expect("pool lock").values().cloned().collect();
        let mut n = 0;
        for slot in slots {
            n += usize::from(slot.server.lock().await.is_some());
        }
        n
    }

    /// Shuts every server down (at server shutdown).
    pub async fn shutdown(&self) {
        let slots: Vec<Arc<Slot>> = self.inner.slots.lock().expect("pool lock").drain().map(|(_, s)| s).collect();
        for slot in slots {
            if let Some(server) = slot.server.lock().await.take() {
                stop(server).await;
            }
        }
    }
}

/// Ends a server once nobody else holds it (a run that still uses it keeps it alive until then).
async fn stop(server: Arc<ExternalServer>) {
    match Arc::try_unwrap(server) {
        Ok(server) => server.shutdown().await,
        Err(shared) => tracing::debug!(server = %shared.name(), "an MCP server in use stops when its run ends"),
    }
}

async fn sweep(pool: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = pool.upgrade() else { return };
        let slots: Vec<(Key, Arc<Slot>)> =
            inner.slots.lock().expect("pool lock").iter().map(|(k, s)| (k.clone(), s.clone())).collect();
        for (key, slot) in slots {
            let idle = slot.last_used.lock().expect("slot lock").is_none_or(|t| t.elapsed() >= inner.idle_after);
            if !idle {
                continue;
            }
            let mut server = slot.server.lock().await;
            // A run still holding the server keeps it.
            if server.as_ref().is_some_and(|s| Arc::strong_count(s) > 1) {
                continue;
            }
            let stopped = server.take();
            drop(server);
            {
                let mut slots = inner.slots.lock().expect("pool lock");
                if slots.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    slots.remove(&key);
                }
            }
            if let Some(server) = stopped {
                tracing::info!(server = %server.name(), "shutting down an idle MCP server");
                stop(server).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config(env: &str) -> ServerConfig {
        ServerConfig {
            name: "s".into(),
            launch: Launch::Stdio {
                command: "x".into(),
                args: vec![],
                env: BTreeMap::from([("TOKEN".into(), env.into())]),
            },
            call_timeout: Duration::from_secs(1),
            outbound: None,
        }
    }

    #[test]
    fn a_changed_credential_is_a_different_server() {
        assert_eq!(fingerprint(&config("a")), fingerprint(&config("a")));
        assert_ne!(fingerprint(&config("a")), fingerprint(&config("b")));
    }
}
