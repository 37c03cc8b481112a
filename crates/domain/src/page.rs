use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::Id;

/// The largest page any list returns; larger `limit`s are clamped to it.
pub const MAX_PAGE_SIZE: u32 = 100;
const DEFAULT_PAGE_SIZE: u32 = 20;

/// Where a keyset page starts: the sort key and id of the last item already seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Id,
}

impl Cursor {
    /// Opaque text form used in URLs: `<unix micros>_<uuid>`.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.at.timestamp_micros(), self.id.simple())
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let (micros, id) = s.split_once('_')?;
        let at = DateTime::<Utc>::from_timestamp_micros(micros.parse().ok()?)?;
        let id = uuid::Uuid::try_parse(id).ok()?;
        Some(Cursor { at, id })
    }
}

/// A request for one page: either a cursor (preferred) or an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<Cursor>,
    pub offset: u64,
}

impl PageRequest {
    /// Builds a request, clamping `limit` to 1..=[`MAX_PAGE_SIZE`].
    pub fn new(limit: Option<u32>, cursor: Option<Cursor>, offset: Option<u64>) -> PageRequest {
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        PageRequest { limit, cursor, offset: if cursor.is_some() { 0 } else { offset.unwrap_or(0) } }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest::new(None, None, None)
    }
}

/// One page of results and the cursor for the next one, if any.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_through_its_text_form() {
        let c = Cursor { at: crate::now(), id: crate::new_id() };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
    }

    #[test]
    fn malformed_cursors_are_refused() {
        for bad in ["", "_", "abc_def", "12_not-a-uuid", "999999999999999999999_0"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn limits_are_clamped_to_the_maximum_page_size() {
        assert_eq!(PageRequest::new(Some(10_000), None, None).limit, MAX_PAGE_SIZE);
        assert_eq!(PageRequest::new(Some(0), None, None).limit, 1);
        assert_eq!(PageRequest::new(None, None, None).limit, 20);
    }
}
