//! Timestamps as JSON: the same RFC 3339 text chrono writes (`2026-12-02T14:55:54.944117Z`),
//! formatted into a stack buffer and written as one string.
//!
//! chrono writes a timestamp through `Display`, digit by digit, and serde_json escapes every piece
//! it is handed: a list of conversations spent more time there than in the database. Use with
//! `#[serde(serialize_with = "crate::time::rfc3339")]` (or `rfc3339_opt` for an `Option`).

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// Serializes a UTC timestamp exactly as chrono's own `Serialize` does.
pub fn rfc3339<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match format(at, &mut buf) {
        Some(text) => serializer.serialize_str(text),
        // Years outside 0..=9999 and leap seconds: chrono knows their spelling.
        None => serde::Serialize::serialize(at, serializer),
    }
}

/// [`rfc3339`] for an optional timestamp (`null` when absent).
pub fn rfc3339_opt<S: Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z`, the fraction as short as it can be in steps
/// of three digits (chrono's `SecondsFormat::AutoSi`); `None` where that form does not apply.
fn format<'a>(at: &DateTime<Utc>, buf: &'a mut [u8; 30]) -> Option<&'a str> {
    let year = at.year();
    let nanos = at.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    *buf = *b"0000-00-00T00:00:00.000000000Z";
    digits(&mut buf[0..4], year as u32);
    digits(&mut buf[5..7], at.month());
    digits(&mut buf[8..10], at.day());
    digits(&mut buf[11..13], at.hour());
    digits(&mut buf[14..16], at.minute());
    digits(&mut buf[17..19], at.second());
    let end = match nanos {
        0 => 19,
        n if n % 1_000_000 == 0 => fraction(buf, n / 1_000_000, 3),
        n if n % 1_000 == 0 => fraction(buf, n / 1_000, 6),
        n => fraction(buf, n, 9),
    };
    buf[end] = b'Z';
    std::str::from_utf8(&buf[..=end]).ok()
}

/// Writes `value` into `slot` in decimal, zero-padded to the slot's width.
fn digits(slot: &mut [u8], mut value: u32) {
    for d in slot.iter_mut().rev() {
        *d = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Writes `.` and the fraction's `width` digits after the seconds; returns where they end.
fn fraction(buf: &mut [u8; 30], value: u32, width: usize) -> usize {
    digits(&mut buf[20..20 + width], value);
    20 + width
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ours(at: &DateTime<Utc>) -> String {
        let mut json = Vec::new();
        rfc3339(at, &mut serde_json::Serializer::new(&mut json)).unwrap();
        String::from_utf8(json).unwrap()
    }

    #[test]
    fn writes_what_chrono_writes() {
        let base = Utc.with_ymd_and_hms(2026, 12, 2, 14, 55, 54).unwrap();
        let mut cases = vec![
            base,
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
        ];
        for nanos in [1, 7, 999, 1_000, 944_117_000, 944_000_000, 100_000_000, 999_999_999, 123_456_789, 10_000] {
            cases.push(base + chrono::Duration::nanoseconds(nanos));
        }
        // A spread of ordinary instants over four centuries, at microsecond precision.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let micros = (seed % 12_600_000_000_000_000) as i64 - 3_000_000_000_000_000;
            cases.push(DateTime::<Utc>::from_timestamp_micros(micros).unwrap());
        }
        for at in cases {
            assert_eq!(ours(&at), serde_json::to_string(&at).unwrap(), "{at:?}");
        }
    }

    #[test]
    fn what_it_cannot_write_chrono_does() {
        let far = Utc.with_ymd_and_hms(12345, 1, 1, 0, 0, 0).unwrap();
        let before = Utc.with_ymd_and_hms(-5, 1, 1, 0, 0, 0).unwrap();
        let leap = Utc.with_ymd_and_hms(2016, 12, 31, 23, 59, 59).unwrap() + chrono::Duration::nanoseconds(999_999_999);
        let leap = leap.with_nanosecond(1_500_000_000).unwrap();
        for at in [far, before, leap] {
            assert_eq!(ours(&at), serde_json::to_string(&at).unwrap());
        }
        let none: Option<DateTime<Utc>> = None;
        let mut json = Vec::new();
        rfc3339_opt(&none, &mut serde_json::Serializer::new(&mut json)).unwrap();
        assert_eq!(json, b"null");
    }
}
