//! The handful of operations the SQL store needs from a database driver.
//!
//! The SQL is written once, in the store's `sql` module, against [`Db`]; each backend crate
//! implements [`Db`] for its driver (rusqlite for SQLite, sqlx for PostgreSQL). Queries use
//! `$n` placeholders, which both databases accept; values cross the boundary as [`Param`]s and
//! come back as [`Record`]s of [`Value`]s, so no driver type reaches the store's logic.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::BoxStream;
use switchboard_domain::Id;

use crate::{Result, StoreError};

/// A value bound to a `$n` placeholder. A null keeps its type, which PostgreSQL needs to plan
/// statements such as `$2 IS NULL OR id = $2`.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Int(Option<i64>),
    Bool(Option<bool>),
    Text(Option<&'a str>),
    Blob(Option<&'a [u8]>),
    Id(Option<Id>),
    Time(Option<DateTime<Utc>>),
    Date(Option<NaiveDate>),
    Json(Option<&'a serde_json::Value>),
}

macro_rules! param_from {
    ($variant:ident: $($t:ty => $conv:expr),+ $(,)?) => {$(
        impl<'a> From<$t> for Param<'a> {
            fn from(v: $t) -> Self {
                #[allow(clippy::redundant_closure_call)]
                Param::$variant(Some(($conv)(v)))
            }
        }
        impl<'a> From<Option<$t>> for Param<'a> {
            fn from(v: Option<$t>) -> Self {
                #[allow(clippy::redundant_closure_call)]
                Param::$variant(v.map($conv))
            }
        }
    )+};
}

param_from!(Int: i64 => |v| v, i32 => i64::from, u32 => i64::from);
param_from!(Bool: bool => |v| v);
param_from!(Text: &'a str => |v| v, &'a String => String::as_str);
param_from!(Blob: &'a [u8] => |v| v, &'a Vec<u8> => Vec::as_slice);
param_from!(Id: Id => |v| v);
param_from!(Time: DateTime<Utc> => |v| v);
param_from!(Date: NaiveDate => |v| v);
param_from!(Json: &'a serde_json::Value => |v| v);

/// `[Param; N]` from a list of values convertible into parameters, in `$1, $2, …` order.
#[macro_export]
macro_rules! params {
    ($($p:expr),* $(,)?) => { [$($crate::db::Param::from($p)),*] };
}

/// A column's value as the driver read it. SQLite has no UUID, time or JSON types, so those
/// arrive there as blobs or text and are converted by the [`Record`] getters.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
    Blob(Vec<u8>),
    Id(Id),
    Time(DateTime<Utc>),
    Date(NaiveDate),
    Json(serde_json::Value),
}

/// One result row, read column by column in the order of the `SELECT` list.
#[derive(Debug)]
pub struct Record {
    values: std::vec::IntoIter<Value>,
    column: usize,
}

fn decode_error(column: usize, want: &str, got: &Value) -> StoreError {
    let kind = match got {
        Value::Null => "null",
        Value::Int(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Bool(_) => "a boolean",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
        Value::Id(_) => "a uuid",
        Value::Time(_) => "a timestamp",
        Value::Date(_) => "a date",
        Value::Json(_) => "json",
    };
    StoreError::Decode(format!("column {column}: expected {want}, found {kind}"))
}

/// Parses the text form of a timestamp: RFC 3339, as written by this store (and by earlier
/// versions of it), or SQLite's own `YYYY-MM-DD HH:MM:SS[.fff]` taken as UTC.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok().map(|t| t.and_utc()))
}

macro_rules! getter {
    ($(#[$doc:meta])* $name:ident, $opt:ident -> $t:ty, $want:literal, $($pat:pat => $conv:expr),+ $(,)?) => {
        $(#[$doc])*
        pub fn $opt(&mut self) -> Result<Option<$t>> {
            let (column, value) = self.next_value()?;
            #[allow(clippy::redundant_closure_call, unreachable_patterns)]
            match value {
                Value::Null => Ok(None),
                $($pat => ($conv)
                    .map(Some)
                    .ok_or_else(|| StoreError::Decode(format!("column {column}: not a valid {}", $want))),)+
                other => Err(decode_error(column, $want, &other)),
            }
        }

        $(#[$doc])*
        pub fn $name(&mut self) -> Result<$t> {
            let column = self.column;
            self.$opt()?.ok_or_else(|| decode_error(column, $want, &Value::Null))
        }
    };
}

impl Record {
    pub fn new(values: Vec<Value>) -> Record {
        Record { values: values.into_iter(), column: 0 }
    }

    /// The next `n` columns as a record of their own, so a row joining two tables' columns is
    /// decoded by each table's decoder in turn.
    pub fn split(&mut self, n: usize) -> Record {
        let values: Vec<Value> = self.values.by_ref().take(n).collect();
        let column = self.column;
        self.column += n;
        Record { values: values.into_iter(), column }
    }

    /// Whether the column `ahead` places after the next one is NULL (an outer join's missing
    /// side, a union's absent columns), without reading anything.
    pub fn null_at(&self, ahead: usize) -> bool {
        matches!(self.values.as_slice().get(ahead), Some(Value::Null))
    }

    fn next_value(&mut self) -> Result<(usize, Value)> {
        let column = self.column;
        self.column += 1;
        let value = self
            .values
            .next()
            .ok_or_else(|| StoreError::Decode(format!("column {column}: the row has fewer columns")))?;
        Ok((column, value))
    }
}

/// The getters: each reads the next column. `opt_*` accept NULL.
impl Record {
    getter!(id, opt_id -> Id, "a uuid",
        Value::Id(id) => Some(id),
        Value::Blob(b) => Id::from_slice(&b).ok(),
        Value::Text(s) => Id::parse_str(&s).ok());
    getter!(text, opt_text -> String, "text", Value::Text(s) => Some(s));
    getter!(int, opt_int -> i64, "an integer", Value::Int(n) => Some(n));
    getter!(bool, opt_bool -> bool, "a boolean", Value::Bool(b) => Some(b), Value::Int(n) => Some(n != 0));
    getter!(blob, opt_blob -> Vec<u8>, "a blob", Value::Blob(b) => Some(b));
    getter!(time, opt_time -> DateTime<Utc>, "a timestamp",
        Value::Time(t) => Some(t),
        Value::Text(s) => parse_time(&s));
    getter!(date, opt_date -> NaiveDate, "a date",
        Value::Date(d) => Some(d),
        Value::Text(s) => NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok());
    getter!(json, opt_json -> serde_json::Value, "json",
        Value::Json(v) => Some(v),
        Value::Text(s) => serde_json::from_str(&s).ok());

    /// An integer column that must fit in an `i32`.
    pub fn i32(&mut self) -> Result<i32> {
        let column = self.column;
        let n = self.int()?;
        i32::try_from(n).map_err(|_| StoreError::Decode(format!("column {column}: {n} does not fit in 32 bits")))
    }

    /// A JSON column decoded into `T`.
    pub fn json_as<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        let column = self.column;
        serde_json::from_value(self.json()?).map_err(|e| StoreError::Decode(format!("column {column}: {e}")))
    }
}

/// A database the SQL store runs on: statements on a reader, single statements on the writer,
/// and write transactions.
#[async_trait]
pub trait Db: Send + Sync + 'static {
    type Tx: Tx;

    /// Name of the backend, for logs and `/ready`.
    fn backend(&self) -> &'static str;

    /// What ends the job-claim subquery: `FOR UPDATE SKIP LOCKED` where concurrent claimers
    /// exist, nothing where a single writer serialises them already.
    fn skip_locked(&self) -> &'static str;

    /// Whether a statement's `WITH` clause may write (PostgreSQL's data-modifying common table
    /// expressions), so related writes can share one round trip.
    fn writes_in_with(&self) -> bool {
        false
    }

    /// Runs a read-only statement and returns its rows.
    async fn fetch(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Record>>;

    /// Runs one writing statement on its own (committed at once); returns the rows it changed.
    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64>;

    /// Runs one writing statement with `RETURNING` on its own (committed at once).
    async fn execute_returning(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Record>>;

    /// [`Db::execute_returning`] for a write a crash may lose harmlessly (a progress event; a job
    /// claim, which a crash returns to the queue): its commit need not wait for the database to
    /// flush it to disk. It is visible to everyone at once, and the next ordinary commit makes it
    /// durable too. Where commits do not wait for the disk in a way worth avoiding, the same as
    /// `execute_returning`.
    async fn execute_returning_relaxed(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Record>> {
        self.execute_returning(sql, params).await
    }

    /// Starts a write transaction. Dropping it without [`Tx::commit`] rolls it back.
    async fn begin(&self) -> Result<Self::Tx>;

    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> Result<()>;

    /// Closes every connection.
    async fn close(&self);

    /// Tells other processes' idle workers that a job was enqueued (nothing where one process
    /// owns the database).
    async fn jobs_enqueued(&self);

    /// Yields whenever another process enqueues a job; `None` where no process can tell.
    async fn job_wakeups(&self) -> Result<Option<BoxStream<'static, ()>>>;
}

/// A write transaction.
#[async_trait]
pub trait Tx: Send {
    /// Runs a statement (reading, or writing with `RETURNING`) and returns its rows.
    async fn fetch(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Record>>;

    /// Runs a writing statement; returns the rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64>;

    async fn commit(self) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getters_read_columns_in_order_and_convert_driver_forms() {
        let id = switchboard_domain::new_id();
        let mut r = Record::new(vec![
            Value::Blob(id.as_bytes().to_vec()),
            Value::Text("2026-12-01T22:41:20.539462+00:00".into()),
            Value::Text("2026-12-01 22:41:20".into()),
            Value::Text("{\"a\":1}".into()),
            Value::Int(1),
            Value::Null,
            Value::Text("2026-02-03".into()),
        ]);
        assert_eq!(r.id().unwrap(), id);
        assert_eq!(r.time().unwrap().to_rfc3339(), "2026-12-01T22:41:20.539462+00:00");
        assert_eq!(r.time().unwrap().to_rfc3339(), "2026-12-01T22:41:20+00:00");
        assert_eq!(r.json().unwrap(), serde_json::json!({"a": 1}));
        assert!(r.bool().unwrap());
        assert_eq!(r.opt_text().unwrap(), None);
        assert_eq!(r.date().unwrap().to_string(), "2026-02-03");
        assert!(matches!(r.text(), Err(StoreError::Decode(_))), "reading past the last column is an error");
    }

    #[test]
    fn wrong_types_and_nulls_in_required_columns_are_decode_errors() {
        let mut r = Record::new(vec![Value::Text("x".into()), Value::Null, Value::Int(1 << 40)]);
        let e = r.int().unwrap_err().to_string();
        assert!(e.contains("column 0") && e.contains("expected an integer") && e.contains("found text"), "{e}");
        let e = r.text().unwrap_err().to_string();
        assert!(e.contains("column 1") && e.contains("found null"), "{e}");
        assert!(r.i32().is_err(), "2^40 does not fit in an i32");
    }

    #[test]
    fn params_keep_the_type_of_their_nulls() {
        let none: Option<Id> = None;
        let p = params![none, Some(3i64), "x", None::<&str>];
        assert!(matches!(p[0], Param::Id(None)));
        assert!(matches!(p[1], Param::Int(Some(3))));
        assert!(matches!(p[2], Param::Text(Some("x"))));
        assert!(matches!(p[3], Param::Text(None)));
    }
}
