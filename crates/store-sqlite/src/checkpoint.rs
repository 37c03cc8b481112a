//! Folds the write-ahead log back into the database file, on a thread of its own: a checkpoint
//! waits for the disk, and requests should not.
//!
//! A passive checkpoint never blocks anyone, but under steady load it never lets the log start
//! over either: SQLite rewinds the log only when every frame has been copied back and no reader
//! still uses it, and with writes arriving every millisecond that moment never comes — the log
//! grew by gigabytes in a minute of benchmark load. So when the log passes [`RESTART_FRAMES`] the
//! checkpointer takes the writer for a moment (writers then queue in-process, asynchronously),
//! copies the few frames written since its last pass, and makes the next write start the log
//! over (a few milliseconds under load).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// How often the log is folded back when little is being written.
const EVERY: Duration = Duration::from_secs(1);
/// How often while the log is long: the less there is left to copy, the shorter the moment
/// writers wait for the truncating checkpoint.
const EVERY_BUSY: Duration = Duration::from_millis(100);
/// Log length (in 4 KiB frames, about 16 MiB) past which the log is truncated.
pub(crate) const RESTART_FRAMES: i64 = 4096;

/// The writer connection, shared with the store.
pub(crate) type Writer = Arc<tokio::sync::Mutex<Option<Connection>>>;

pub(crate) struct Checkpointer {
    stop: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl Checkpointer {
    pub(crate) fn start(conn: Connection, writer: Writer) -> Checkpointer {
        // SQLite's own busy handler backs off to tens of milliseconds, far longer than the
        // readers it waits for take; writers are queued meanwhile, so ask again soon.
        if let Err(e) = conn.busy_handler(Some(retry_soon)) {
            tracing::warn!(error = %e, "could not set the checkpointer's busy handler");
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut wait = EVERY;
                loop {
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => match pass(&conn, &writer) {
                            Ok(log_frames) => wait = if log_frames > RESTART_FRAMES / 4 { EVERY_BUSY } else { EVERY },
                            Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed; it is retried"),
                        },
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
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

/// One pass: a passive checkpoint, then a restarting one under the writer when the log is long.
/// Returns the log's length in frames as the passive checkpoint found it.
pub(crate) fn pass(conn: &Connection, writer: &Writer) -> rusqlite::Result<i64> {
    // PASSIVE copies what no reader still needs and never blocks anyone.
    let log_frames = checkpoint(conn, "PASSIVE")?;
    if log_frames <= RESTART_FRAMES {
        return Ok(log_frames);
    }
    let guard = writer.blocking_lock();
    if guard.is_none() {
        return Ok(log_frames); // closed meanwhile
    }
    // With no writer, RESTART copies the frames written since the passive pass and waits only
    // for readers (statements of microseconds) to move on; the next write starts the log over.
    // (TRUNCATE would also shrink the file, which took tens of milliseconds under load; the
    // writer's journal_size_limit trims it instead.)
    let held = std::time::Instant::now();
    checkpoint(conn, "RESTART")?;
    drop(guard);
    tracing::debug!(log_frames, held_ms = held.elapsed().as_secs_f64() * 1000.0, "write-ahead log restarted");
    Ok(log_frames)
}

/// Waits 50 µs and asks again, for up to about five seconds.
fn retry_soon(attempt: i32) -> bool {
    std::thread::sleep(Duration::from_micros(50));
    attempt < 100_000
}

/// Runs a checkpoint; the frames in the log.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| row.get::<_, i64>(1))
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn frames(conn: &Connection) -> i64 {
        checkpoint(conn, "PASSIVE").expect("checkpoint")
    }

    /// Enough small transactions to pass the restart threshold: each touches a table page and
    /// two index pages.
    fn write_many(writer: &Writer, n: i64) {
        let guard = writer.blocking_lock();
        let conn = guard.as_ref().expect("open");
        for i in 0..n {
            conn.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", (i * 7919 % 100_003, "x".repeat(200)))
                .expect("insert");
        }
    }

    #[test]
    fn a_long_log_starts_over_even_while_a_reader_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let writer_conn = crate::connect(&path, true).expect("writer");
        writer_conn.pragma_update(None, "wal_autocheckpoint", 0).expect("pragma");
        writer_conn
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, v TEXT); CREATE INDEX t_k ON t (k);")
            .expect("schema");
        let writer: Writer = Arc::new(tokio::sync::Mutex::new(Some(writer_conn)));
        let conn = crate::connect(&path, false).expect("checkpointer");
        conn.busy_handler(Some(retry_soon)).expect("busy handler");

        // A reader pins the log while it is written to: a passive checkpoint cannot get past it.
        let reader = crate::connect(&path, false).expect("reader");
        reader.execute_batch("BEGIN; SELECT count(*) FROM t;").expect("read");
        write_many(&writer, 6000);
        let pinned = frames(&conn);
        assert!(pinned > RESTART_FRAMES, "the log should be long and pinned, it has {pinned} frames");
        assert_eq!(frames(&conn), pinned, "a passive checkpoint alone does not shorten a pinned log");

        // The reader finishes a moment after the pass starts; the pass waits for it, then the
        // next write starts the log over.
        let (done_tx, done_rx) = mpsc::channel();
        let reading = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            reader.execute_batch("COMMIT").expect("end read");
            done_tx.send(()).expect("send");
        });
        let seen = pass(&conn, &writer).expect("pass");
        assert!(seen > RESTART_FRAMES);
        done_rx.recv().expect("reader finished");
        reading.join().expect("reader thread");
        write_many(&writer, 1);
        let after = frames(&conn);
        assert!(after < 10, "the log should have started over, it has {after} frames");
    }
}
