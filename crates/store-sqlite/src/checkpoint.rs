//! Folds the write-ahead log back into the database file, on a thread of its own: a checkpoint
//! waits for the disk, and requests should not.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// How often the log is folded back. Between two checkpoints the log grows by what was written.
const EVERY: Duration = Duration::from_secs(1);

pub(crate) struct Checkpointer {
    stop: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl Checkpointer {
    pub(crate) fn start(conn: Connection) -> Checkpointer {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || loop {
                match stopped.recv_timeout(EVERY) {
                    Err(RecvTimeoutError::Timeout) => {
                        // PASSIVE: copies what no reader still needs, never blocks anyone.
                        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                            tracing::warn!(error = %e, "SQLite checkpoint failed; it is retried");
                        }
                    }
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .expect("the checkpoint thread starts");
        Checkpointer { stop: Mutex::new(Some((stop, thread))) }
    }

    /// Stops the thread (and closes its connection); later calls do nothing.
    pub(crate) fn stop(&self) {
        if let Some((stop, thread)) = self.stop.lock().expect("checkpointer lock").take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}
