//! Budget periods: calendar days, ISO weeks (Monday first) and months, with boundaries at local
//! midnight in an IANA time zone. Boundaries are computed on the civil calendar and then placed
//! in the zone, so a day across a DST change is 23 or 25 hours long, as a person expects.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, ZonedDateTime};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Error;

/// How long a budget's spend accumulates before it starts again at zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Period {
    /// From local midnight to the next.
    Daily,
    /// From Monday 00:00 local to the next Monday.
    Weekly,
    /// From the 1st 00:00 local to the 1st of the next month.
    #[default]
    Monthly,
}

/// One concrete period: `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The first instant of the period.
    pub start: Timestamp,
    /// The first instant of the next period.
    pub end: Timestamp,
}

impl Window {
    /// True when `at` falls inside the window.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }

    /// The window's length in seconds (23h/25h days across DST are honest here).
    pub fn length_seconds(&self) -> i64 {
        self.end.as_second() - self.start.as_second()
    }
}

/// Looks up an IANA time zone name in the bundled database.
pub fn time_zone(name: &str) -> Result<TimeZone, Error> {
    TimeZone::get(name).map_err(|_| Error::UnknownTimeZone(name.to_owned()))
}

impl Period {
    /// The window of this period that contains `at`, in `tz`.
    pub fn window_at(self, at: Timestamp, tz: &TimeZone) -> Result<Window, Error> {
        let local = at.to_zoned_datetime(tz.clone());
        let first_day = self.first_day(local.date());
        let next_first_day = self.next_first_day(first_day)?;
        Ok(Window {
            start: start_of(first_day, tz)?,
            end: start_of(next_first_day, tz)?,
        })
    }

    /// The window that follows `window`.
    pub fn next_window(self, window: &Window, tz: &TimeZone) -> Result<Window, Error> {
        self.window_at(window.end, tz)
    }

    fn first_day(self, date: Date) -> Date {
        match self {
            Period::Daily => date,
            Period::Weekly => {
                let back = i64::from(date.weekday().to_monday_zero_offset());
                date.checked_sub(back.days()).unwrap_or(date)
            }
            Period::Monthly => date.first_of_month(),
        }
    }

    fn next_first_day(self, first: Date) -> Result<Date, Error> {
        let span = match self {
            Period::Daily => 1.day(),
            Period::Weekly => 1.week(),
            Period::Monthly => 1.month(),
        };
        first
            .checked_add(span)
            .map_err(|e| Error::TimeOutOfRange(e.to_string()))
    }
}

/// The first instant of `date` in `tz`: midnight, or the first instant after a gap where a
/// zone skips midnight (as some do for DST).
fn start_of(date: Date, tz: &TimeZone) -> Result<Timestamp, Error> {
    let zoned: ZonedDateTime = date
        .to_zoned_datetime(tz.clone())
        .map_err(|e| Error::TimeOutOfRange(e.to_string()))?;
    Ok(zoned.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }
    fn window(p: Period, at: &str, tz: &str) -> (String, String) {
        let w = p.window_at(ts(at), &time_zone(tz).unwrap()).unwrap();
        (w.start.to_string(), w.end.to_string())
    }

    #[test]
    fn a_utc_day_is_midnight_to_midnight() {
        assert_eq!(
            window(Period::Daily, "2026-11-24T13:45:00Z", "UTC"),
            ("2026-11-24T00:00:00Z".into(), "2026-11-25T00:00:00Z".into())
        );
    }

    #[test]
    fn the_day_of_a_spring_dst_change_is_23_hours_long() {
        // Europe/Berlin springs forward on 2026-03-29 at 02:00 local (01:00 UTC).
        let tz = time_zone("Europe/Berlin").unwrap();
        let w = Period::Daily
            .window_at(ts("2026-03-29T12:00:00Z"), &tz)
            .unwrap();
        assert_eq!(w.start, ts("2026-03-28T23:00:00Z")); // 00:00 CET
        assert_eq!(w.end, ts("2026-03-29T22:00:00Z")); // 00:00 CEST
        assert_eq!(w.length_seconds(), 23 * 3600);
    }

    #[test]
    fn the_day_of_an_autumn_dst_change_is_25_hours_long() {
        // America/New_York falls back on 2026-11-01 at 02:00 EDT.
        let tz = time_zone("America/New_York").unwrap();
        let w = Period::Daily
            .window_at(ts("2026-11-01T15:00:00Z"), &tz)
            .unwrap();
        assert_eq!(w.start, ts("2026-11-01T04:00:00Z")); // 00:00 EDT
        assert_eq!(w.end, ts("2026-11-02T05:00:00Z")); // 00:00 EST
        assert_eq!(w.length_seconds(), 25 * 3600);
    }

    #[test]
    fn a_zone_that_skips_midnight_starts_the_day_at_the_first_instant_that_exists() {
        // America/Havana springs forward at midnight: 2026-03-08 00:00 does not exist, 01:00 CDT does.
        let tz = time_zone("America/Havana").unwrap();
        let w = Period::Daily
            .window_at(ts("2026-03-08T12:00:00Z"), &tz)
            .unwrap();
        assert_eq!(w.start, ts("2026-03-08T05:00:00Z"));
        assert_eq!(w.length_seconds(), 23 * 3600);
    }

    #[test]
    fn weeks_start_on_monday_in_the_budget_zone() {
        // Sunday 2026-11-29 23:30 UTC is already Monday 08:30 in Tokyo: that week starts
        // Monday 2026-11-30 00:00 JST.
        assert_eq!(
            window(Period::Weekly, "2026-11-29T23:30:00Z", "Asia/Tokyo"),
            ("2026-11-29T15:00:00Z".into(), "2026-12-06T15:00:00Z".into())
        );
        // The same instant in UTC is still in the week that began Monday 2026-11-23.
        assert_eq!(
            window(Period::Weekly, "2026-11-29T23:30:00Z", "UTC"),
            ("2026-11-23T00:00:00Z".into(), "2026-11-30T00:00:00Z".into())
        );
    }

    #[test]
    fn a_week_across_a_dst_change_is_167_hours_long() {
        let tz = time_zone("Europe/Berlin").unwrap();
        let w = Period::Weekly
            .window_at(ts("2026-03-27T10:00:00Z"), &tz)
            .unwrap();
        assert_eq!(w.start, ts("2026-03-22T23:00:00Z"));
        assert_eq!(w.length_seconds(), 167 * 3600);
    }

    #[test]
    fn months_end_on_the_right_day_including_leap_februaries() {
        assert_eq!(
            window(Period::Monthly, "2028-02-15T00:00:00Z", "UTC"),
            ("2028-02-01T00:00:00Z".into(), "2028-03-01T00:00:00Z".into())
        );
        let feb = Period::Monthly
            .window_at(ts("2028-02-15T00:00:00Z"), &TimeZone::UTC)
            .unwrap();
        assert_eq!(feb.length_seconds(), 29 * 86_400);
        assert_eq!(
            window(Period::Monthly, "2026-12-31T23:59:59Z", "UTC"),
            ("2026-12-01T00:00:00Z".into(), "2027-01-01T00:00:00Z".into())
        );
    }

    #[test]
    fn the_last_instant_of_a_month_belongs_to_it_and_the_next_instant_does_not() {
        let tz = time_zone("America/Los_Angeles").unwrap();
        // 2026-12-01 00:00 PST is 08:00 UTC.
        let nov = Period::Monthly
            .window_at(ts("2026-12-01T07:59:59Z"), &tz)
            .unwrap();
        let dec = Period::Monthly
            .window_at(ts("2026-12-01T08:00:00Z"), &tz)
            .unwrap();
        assert_eq!(nov.end, ts("2026-12-01T08:00:00Z"));
        assert_eq!(dec.start, nov.end);
        assert!(nov.contains(ts("2026-12-01T07:59:59Z")) && !nov.contains(dec.start));
        // November in Los Angeles includes the fall-back hour: 30 days + 1 hour.
        assert_eq!(nov.length_seconds(), 30 * 86_400 + 3600);
        assert_eq!(Period::Monthly.next_window(&nov, &tz).unwrap(), dec);
    }

    #[test]
    fn unknown_zones_are_refused() {
        assert_eq!(
            time_zone("Mars/Olympus_Mons").unwrap_err(),
            Error::UnknownTimeZone("Mars/Olympus_Mons".into())
        );
    }
}
