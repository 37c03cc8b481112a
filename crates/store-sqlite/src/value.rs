//! Running a statement: parameters in, records out, and SQLite's errors as store errors.
//!
//! SQLite has no UUID, time or JSON types; they are stored as SQLite stored them before this
//! driver existed (and as the store's readers expect): UUIDs as 16-byte blobs, times as RFC 3339
//! text in UTC (`2026-12-01T22:41:20.539462+00:00`, which sorts in time order), dates as
//! `YYYY-MM-DD`, JSON as text, booleans as 0/1.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, Statement, ToSql};
use switchboard_store::db::{Param, Record, Value};
use switchboard_store::{Result, StoreError};

/// A parameter in SQLite's terms.
struct Bind<'a>(Param<'a>);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as V;
        Ok(match self.0 {
            Param::Int(Some(n)) => ToSqlOutput::Owned(V::Integer(n)),
            Param::Bool(Some(b)) => ToSqlOutput::Owned(V::Integer(b.into())),
            Param::Text(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Blob(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Param::Id(Some(id)) => ToSqlOutput::Owned(V::Blob(id.as_bytes().to_vec())),
            Param::Time(Some(t)) => {
                ToSqlOutput::Owned(V::Text(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)))
            }
            Param::Date(Some(d)) => ToSqlOutput::Owned(V::Text(d.format("%Y-%m-%d").to_string())),
            Param::Json(Some(v)) => ToSqlOutput::Owned(V::Text(v.to_string())),
            Param::Int(None)
            | Param::Bool(None)
            | Param::Text(None)
            | Param::Blob(None)
            | Param::Id(None)
            | Param::Time(None)
            | Param::Date(None)
            | Param::Json(None) => ToSqlOutput::Owned(V::Null),
        })
    }
}

/// Binds `params` to the statement's `$n` placeholders by number (SQLite numbers named
/// parameters by first appearance, which need not be `$1, $2, …`).
fn bind(stmt: &mut Statement<'_>, params: &[Param<'_>]) -> Result<()> {
    for index in 1..=stmt.parameter_count() {
        let number = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| StoreError::Database(format!("placeholder {index} is not of the form $n").into()))?;
        let param = params.get(number - 1).ok_or_else(|| {
            StoreError::Database(format!("${number} has no value ({} were given)", params.len()).into())
        })?;
        stmt.raw_bind_parameter(index, Bind(*param)).map_err(store_error)?;
    }
    Ok(())
}

fn value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Real(x) => Value::Real(x),
        ValueRef::Text(t) => Value::Text(match std::str::from_utf8(t) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(t).into_owned(),
        }),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// Runs a statement and returns every row it produces.
pub(crate) fn fetch(conn: &Connection, sql: &str, params: &[Param<'_>]) -> Result<Vec<Record>> {
    let mut stmt = conn.prepare_cached(sql).map_err(store_error)?;
    bind(&mut stmt, params)?;
    let columns = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(store_error)? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(value(row.get_ref(i).map_err(store_error)?));
        }
        out.push(Record::new(values));
    }
    Ok(out)
}

/// Runs a statement that returns no rows; how many rows it changed.
pub(crate) fn execute(conn: &Connection, sql: &str, params: &[Param<'_>]) -> Result<u64> {
    let mut stmt = conn.prepare_cached(sql).map_err(store_error)?;
    bind(&mut stmt, params)?;
    Ok(stmt.raw_execute().map_err(store_error)? as u64)
}

/// SQLite's error as a store error: a database locked by another process past the busy timeout,
/// or a file that cannot be opened or read, is "unavailable" (503); the rest are errors.
pub fn store_error(e: rusqlite::Error) -> StoreError {
    let unavailable = matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen | ErrorCode::SystemIoFailure)
    );
    if unavailable {
        StoreError::Unavailable(e.into())
    } else {
        StoreError::Database(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id BLOB, at TEXT, n INTEGER, doc TEXT, flag BOOLEAN, day TEXT)").unwrap();
        conn
    }

    #[test]
    fn values_round_trip_in_the_stored_forms() {
        let conn = db();
        let id = switchboard_domain::new_id();
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T22:41:20.539462Z").unwrap().to_utc();
        let doc = serde_json::json!({"a": [1, 2]});
        let day = chrono::NaiveDate::from_ymd_opt(2026, 2, 3).unwrap();
        let n = execute(
            &conn,
            "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6)",
            &switchboard_store::params![id, at, 7i64, &doc, true, day],
        )
        .unwrap();
        assert_eq!(n, 1);
        let stored: (String, String) =
            conn.query_row("SELECT at, day FROM t", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!(stored, ("2026-12-01T22:41:20.539462+00:00".to_owned(), "2026-02-03".to_owned()));
        let mut r =
            fetch(&conn, "SELECT id, at, n, doc, flag, day FROM t WHERE id = $1", &switchboard_store::params![id])
                .unwrap()
                .pop()
                .unwrap();
        assert_eq!((r.id().unwrap(), r.time().unwrap(), r.int().unwrap()), (id, at, 7));
        assert_eq!((r.json().unwrap(), r.bool().unwrap(), r.date().unwrap()), (doc, true, day));
    }

    #[test]
    fn placeholders_bind_by_number_whatever_their_order() {
        let conn = db();
        let rows = fetch(&conn, "SELECT $2, $1, $2", &switchboard_store::params![1i64, "two"]).unwrap();
        let mut r = rows.into_iter().next().unwrap();
        assert_eq!((r.text().unwrap(), r.int().unwrap(), r.text().unwrap()), ("two".into(), 1, "two".into()));
        let missing = fetch(&conn, "SELECT $3", &switchboard_store::params![1i64]).unwrap_err();
        assert!(missing.to_string().contains("database error"), "{missing}");
    }

    #[test]
    fn typed_nulls_are_sql_nulls() {
        let conn = db();
        let none: Option<switchboard_domain::Id> = None;
        let rows =
            fetch(&conn, "SELECT $1 IS NULL, $2 IS NULL", &switchboard_store::params![none, None::<&str>]).unwrap();
        let mut r = rows.into_iter().next().unwrap();
        assert!(r.bool().unwrap() && r.bool().unwrap());
    }
}
