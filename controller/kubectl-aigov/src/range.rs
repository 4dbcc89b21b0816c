//! Time ranges on the command line: `START..END`, where each end is RFC 3339
//! (`2026-11-01T00:00:00Z`), a UTC date (`2026-11-01`), `now`, or a time before now (`-2h`,
//! `-30m`, `-7d`, `-1mo`).

use jiff::{Span, Timestamp, tz::TimeZone};
use serde::Serialize;

use crate::error::{Error, Result};

/// A half-open interval `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TimeRange {
    /// First instant included.
    pub from: Timestamp,
    /// First instant excluded.
    pub to: Timestamp,
}

impl TimeRange {
    /// Parses `START..END` relative to `now`; `flag` names the option in errors.
    pub fn parse(text: &str, now: Timestamp, flag: &str) -> Result<TimeRange> {
        let (from, to) = text.split_once("..").ok_or_else(|| {
            Error::Flag(format!(
                "{flag} {text:?} is not a range: write START..END, e.g. -1h..now or 2026-11-01..2026-12-01"
            ))
        })?;
        TimeRange::between(instant(from, now, flag)?, instant(to, now, flag)?, flag)
    }

    /// `[from, to)`, refused when empty or reversed.
    pub fn between(from: Timestamp, to: Timestamp, flag: &str) -> Result<TimeRange> {
        if from >= to {
            return Err(Error::Flag(format!(
                "{flag}: the range starts at {from} and ends at {to}; the start must come first"
            )));
        }
        Ok(TimeRange { from, to })
    }

    /// Whether `at` falls in the range.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.from <= at && at < self.to
    }

    /// The range's length in hours (for rates).
    pub fn hours(&self) -> f64 {
        self.to.duration_since(self.from).as_secs_f64() / 3600.0
    }
}

impl std::fmt::Display for TimeRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = |t: Timestamp| t.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string();
        write!(f, "{} .. {} UTC", short(self.from), short(self.to))
    }
}

/// One end of a range.
pub fn instant(text: &str, now: Timestamp, flag: &str) -> Result<Timestamp> {
    let text = text.trim();
    let bad = |why: String| {
        Error::Flag(format!(
            "{flag}: {text:?} is not a time ({why}); use RFC 3339 (2026-11-01T09:00:00Z), a date (2026-11-01), now, or -2h / -7d"
        ))
    };
    if text == "now" {
        return Ok(now);
    }
    if let Some(ago) = text.strip_prefix('-') {
        let span: Span = ago.parse().map_err(|e| bad(format!("{e}")))?;
        return now
            .to_zoned_datetime(TimeZone::UTC)
            .checked_sub(span)
            .map(|z| z.timestamp())
            .map_err(|e| bad(format!("{e}")));
    }
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let date: jiff::civil::Date = text.parse().map_err(|e| bad(format!("{e}")))?;
    date.to_zoned_datetime(TimeZone::UTC)
        .map(|z| z.timestamp())
        .map_err(|e| bad(format!("{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn relative_dates_and_rfc3339_ends_are_understood() {
        let r = TimeRange::parse("-2h..now", now(), "--range").unwrap();
        assert_eq!(r.from.to_string(), "2026-11-24T10:00:00Z");
        assert_eq!(r.to, now());
        let r = TimeRange::parse("2026-11-01..-7d", now(), "--range").unwrap();
        assert_eq!(r.from.to_string(), "2026-11-01T00:00:00Z");
        assert_eq!(r.to.to_string(), "2026-11-17T12:00:00Z");
        let r = TimeRange::parse(
            "2026-11-24T09:30:00Z..2026-11-24T11:00:00+01:00",
            now(),
            "x",
        )
        .unwrap();
        assert_eq!(r.to.to_string(), "2026-11-24T10:00:00Z");
        assert!((r.hours() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_bad_range_names_the_flag_and_the_fix() {
        let e = TimeRange::parse("yesterday", now(), "--b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--b") && e.contains("START..END"), "{e}");
        let e = TimeRange::parse("now..-1h", now(), "--a")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--a") && e.contains("start must come first"),
            "{e}"
        );
        let e = TimeRange::parse("-2x..now", now(), "--from")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--from") && e.contains("-2h"), "{e}");
    }
}
