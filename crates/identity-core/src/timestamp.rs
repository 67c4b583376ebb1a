//! RFC 3339 timestamps as the reference's clients write them.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an RFC 3339 timestamp leniently: `Z` or a numeric offset, any number of fractional
/// digits, and `T`, `t` or a space between date and time (RFC 3339 §5.6 allows the space).
///
/// Python's `datetime.isoformat()` writes `2026-11-22T23:02:55.563939+00:00`; JavaScript writes
/// `2026-11-22T23:02:55.563Z`; both parse. A date without a time, or a time without an offset, is
/// refused: a time with no offset means nothing certain.
///
/// ```
/// use identity_core::parse_rfc3339;
///
/// let py = parse_rfc3339("2026-11-22T23:02:55.563939+00:00").unwrap();
/// let js = parse_rfc3339("2026-11-22T23:02:55.563939Z").unwrap();
/// assert_eq!(py, js);
/// assert!(parse_rfc3339("2026-11-22").is_err());
/// assert!(parse_rfc3339("2026-11-22T23:02:55").is_err());
/// ```
pub fn parse_rfc3339(input: &str) -> Result<OffsetDateTime, InvalidTimestamp> {
    // The `time` parser wants an upper-case `T`; RFC 3339 also allows `t` and a space.
    let normalized;
    let text = match input.as_bytes().get(10) {
        Some(b't' | b' ') if input.is_char_boundary(10) && input.is_char_boundary(11) => {
            normalized = format!("{}T{}", &input[..10], &input[11..]);
            normalized.as_str()
        }
        _ => input,
    };
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| InvalidTimestamp)
}

/// Formats a time as RFC 3339 in UTC (`2026-11-22T23:02:55.563939Z`).
///
/// ```
/// use identity_core::{format_rfc3339, parse_rfc3339};
///
/// let t = parse_rfc3339("2026-11-22T23:02:55+01:00").unwrap();
/// assert_eq!(format_rfc3339(t), "2026-11-22T22:02:55Z");
/// ```
pub fn format_rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        // Formatting a UTC time with a four-digit year cannot fail; years beyond 9999 are the
        // only case, and they are written in full rather than lost.
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// The text given is not an RFC 3339 timestamp with an offset.
///
/// ```
/// assert!(identity_core::parse_rfc3339("yesterday").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp with an offset (e.g. 2026-11-22T23:02:55Z)")]
pub struct InvalidTimestamp;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_forms_real_clients_send() {
        let base = parse_rfc3339("2026-11-22T23:02:55Z").unwrap();
        for text in [
            "2026-11-22T23:02:55+00:00",
            "2026-11-22t23:02:55z",
            "2026-11-22 23:02:55Z",
            "2026-11-23T00:02:55+01:00",
            "2026-11-22T18:02:55-05:00",
        ] {
            assert_eq!(parse_rfc3339(text).unwrap(), base, "{text}");
        }
        let micros = parse_rfc3339("2026-11-22T23:02:55.563939+00:00").unwrap();
        assert_eq!(micros.microsecond(), 563_939);
        let one = parse_rfc3339("2026-11-22T23:02:55.5Z").unwrap();
        assert_eq!(one.millisecond(), 500);
        let nanos = parse_rfc3339("2026-11-22T23:02:55.123456789Z").unwrap();
        assert_eq!(nanos.nanosecond(), 123_456_789);
    }

    #[test]
    fn refuses_what_is_not_a_full_timestamp() {
        for text in [
            "",
            "2026-11-22",
            "2026-11-22T23:02:55",
            "2026-13-22T23:02:55Z",
            "2026-11-22T25:02:55Z",
            "1700000000",
            "2026-11-22T23:02:55.Z",
            "2026-11-22é23:02:55Z",
        ] {
            assert!(parse_rfc3339(text).is_err(), "{text:?} should be refused");
        }
    }
}
