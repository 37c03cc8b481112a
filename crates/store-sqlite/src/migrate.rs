//! Schema migrations, kept in `migrations/` and recorded in `_sqlx_migrations` — the table (and
//! checksums) of the sqlx migrator the PostgreSQL backend uses, so databases created by earlier
//! versions carry on where they were.

use std::time::Instant;

use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha384};
use switchboard_store::{Result, StoreError};

/// Every migration in order: version, description (the file name's words), SQL.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "tasks", include_str!("../migrations/0002_tasks.sql")),
    (3, "catalog", include_str!("../migrations/0003_catalog.sql")),
    (4, "vault agents", include_str!("../migrations/0004_vault_agents.sql")),
    (5, "jobs", include_str!("../migrations/0005_jobs.sql")),
    (6, "job replies", include_str!("../migrations/0006_job_replies.sql")),
    (7, "mcp sessions", include_str!("../migrations/0007_mcp_sessions.sql")),
    (8, "connections", include_str!("../migrations/0008_connections.sql")),
    (9, "jobs ready order", include_str!("../migrations/0009_jobs_ready_order.sql")),
    (10, "jobs partial indexes", include_str!("../migrations/0010_jobs_partial_indexes.sql")),
    (11, "job totals", include_str!("../migrations/0011_job_totals.sql")),
];

fn failed(e: impl Into<switchboard_store::DriverError>) -> StoreError {
    StoreError::Migration(e.into())
}

/// Applies the migrations not applied yet, each in its own transaction (another process opening
/// the same file at the same time finds it applied and moves on). A recorded migration whose SQL
/// changed since, or that failed half-way, stops the start.
pub(crate) fn run(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        )",
    )
    .map_err(failed)?;
    for &(version, description, sql) in MIGRATIONS {
        let checksum = Sha384::digest(sql.as_bytes()).to_vec();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(failed)?;
        let applied: Option<(bool, Vec<u8>)> = tx
            .query_row("SELECT success, checksum FROM _sqlx_migrations WHERE version = ?1", [version], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(failed)?;
        match applied {
            Some((false, _)) => return Err(failed(format!("migration {version} ({description}) failed earlier"))),
            Some((true, stored)) if stored != checksum => {
                return Err(failed(format!("migration {version} ({description}) was changed after it was applied")))
            }
            Some(_) => continue,
            None => {}
        }
        let started = Instant::now();
        tx.execute_batch(sql).map_err(|e| failed(format!("migration {version} ({description}): {e}")))?;
        tx.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?1, ?2, TRUE, ?3, ?4)",
            rusqlite::params![version, description, checksum, started.elapsed().as_nanos() as i64],
        )
        .map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::info!(version, description, "applied a migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        files.sort();
        let listed: Vec<String> =
            MIGRATIONS.iter().map(|(v, d, _)| format!("{v:04}_{}.sql", d.replace(' ', "_"))).collect();
        assert_eq!(files, listed);
    }

    #[test]
    fn migrations_apply_once_and_a_changed_one_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        run(&mut conn).unwrap();
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM _sqlx_migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
        conn.execute("UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 2", []).unwrap();
        let e = run(&mut conn).unwrap_err();
        assert!(matches!(e, StoreError::Migration(_)), "{e:?}");
        assert!(std::error::Error::source(&e).unwrap().to_string().contains("changed after it was applied"));
    }
}
