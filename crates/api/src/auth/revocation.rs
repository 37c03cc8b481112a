//! Revoked token ids, kept in memory and reloaded from the store at most every [`REFRESH`], so a
//! request costs no database round trip while a revocation made by another process still takes
//! effect within that time.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use switchboard_store::Store;

use super::AuthFailure;

/// How stale the revocation list may get.
pub const REFRESH: Duration = Duration::from_millis(500);

/// Past this age a list that cannot be reloaded is no longer trusted (fail closed).
const GIVE_UP: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(super) struct Revocations {
    state: RwLock<State>,
    reloading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    ids: HashSet<String>,
    loaded_at: Option<Instant>,
}

impl Revocations {
    pub(super) async fn contains(&self, store: &dyn Store, jti: &str) -> Result<bool, AuthFailure> {
        let age = self.age();
        if age > REFRESH {
            // One request reloads; the others carry on with the list they have, unless it is
            // missing or too old to trust, in which case they wait for the reload.
            let guard = if age > GIVE_UP { Some(self.reloading.lock().await) } else { self.reloading.try_lock().ok() };
            if let Some(_guard) = guard {
                if self.age() > REFRESH {
                    match store.revoked_tokens().await {
                        Ok(ids) => {
                            let mut state = self.state.write().expect("revocation lock");
                            state.ids = ids.into_iter().collect();
                            state.loaded_at = Some(Instant::now());
                        }
                        Err(e) => tracing::error!(error = %e, "could not reload revoked tokens"),
                    }
                }
            }
        }
        if self.age() > GIVE_UP {
            return Err(AuthFailure::Unavailable);
        }
        Ok(self.state.read().expect("revocation lock").ids.contains(jti))
    }

    pub(super) fn insert(&self, jti: &str) {
        self.state.write().expect("revocation lock").ids.insert(jti.to_owned());
    }

    fn age(&self) -> Duration {
        self.state.read().expect("revocation lock").loaded_at.map_or(Duration::MAX, |at| at.elapsed())
    }
}
