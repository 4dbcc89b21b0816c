//! Budget periods: calendar days, weeks (Monday first unless `weekStart` says otherwise),
//! months, fiscal quarters and years, with boundaries at local midnight in an IANA time zone;
//! and the prepaid credit, whose one window never ends. Boundaries are computed on the civil
//! calendar and then placed in the zone, so a day across a DST change is 23 or 25 hours long,
//! as a person expects. [`Rollover`] is the arithmetic of carrying unused budget forward.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, ZonedDateTime};
use kube::KubeSchema;
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Usd};

/// How long a budget's spend accumulates before it starts again at zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Period {
    /// From local midnight to the next.
    Daily,
    /// From 00:00 local on the week's first day (`weekStart`, Monday unless set) to the next.
    Weekly,
    /// From the 1st 00:00 local to the 1st of the next month.
    #[default]
    Monthly,
    /// Three months from the 1st 00:00 local of the fiscal year's first month
    /// (`fiscalYearStartMonth`, January unless set), or 3, 6 or 9 months after it.
    Quarterly,
    /// Twelve months from the 1st 00:00 local of the fiscal year's first month.
    Yearly,
    /// A prepaid credit: one window that never ends, so spend never resets; raising the limit
    /// is a top-up.
    Credit,
}

/// The first instant of a credit's window: any instant before every call will do, and a fixed
/// one keeps the window the same across restarts and replicas.
pub const CREDIT_START: &str = "1970-01-01T00:00:00Z";
/// The end of a credit's window: never, written as the first instant of the year 9999 (jiff's
/// range ends in 9999, and a status field needs an instant).
pub const CREDIT_END: &str = "9999-01-01T00:00:00Z";

/// The day a week starts on (`spec.weekStart`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum WeekStart {
    /// ISO 8601's week.
    #[default]
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday (a week much of the Middle East uses).
    Saturday,
    /// Sunday (the US calendar's week).
    Sunday,
}

impl WeekStart {
    fn monday_zero_offset(self) -> i8 {
        self as i8
    }
}

/// A period with its calendar: which day starts a week and which month a fiscal year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calendar {
    /// The period.
    pub period: Period,
    /// The first day of a week (only `Weekly` uses it).
    pub week_start: WeekStart,
    /// The first month of the fiscal year, 1..=12 (only `Quarterly` and `Yearly` use it).
    pub fiscal_year_start_month: i8,
}

impl From<Period> for Calendar {
    fn from(period: Period) -> Calendar {
        Calendar {
            period,
            week_start: WeekStart::Monday,
            fiscal_year_start_month: 1,
        }
    }
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

    /// The window of a credit: it never ends.
    pub fn credit() -> Window {
        Window {
            start: CREDIT_START.parse().expect("a valid instant"),
            end: CREDIT_END.parse().expect("a valid instant"),
        }
    }

    /// True for a credit's window, which never ends (nothing resets, nothing is forecast for
    /// its end).
    pub fn never_ends(&self) -> bool {
        *self == Window::credit()
    }
}

/// Looks up an IANA time zone name in the bundled database.
pub fn time_zone(name: &str) -> Result<TimeZone, Error> {
    TimeZone::get(name).map_err(|_| Error::UnknownTimeZone(name.to_owned()))
}

impl Period {
    /// The window of this period that contains `at`, in `tz`, with Monday weeks and
    /// January fiscal years.
    pub fn window_at(self, at: Timestamp, tz: &TimeZone) -> Result<Window, Error> {
        Calendar::from(self).window_at(at, tz)
    }

    /// The window that follows `window`.
    pub fn next_window(self, window: &Window, tz: &TimeZone) -> Result<Window, Error> {
        Calendar::from(self).next_window(window, tz)
    }
}

impl Calendar {
    /// The window of this period that contains `at`, in `tz`.
    pub fn window_at(&self, at: Timestamp, tz: &TimeZone) -> Result<Window, Error> {
        if self.period == Period::Credit {
            return Ok(Window::credit());
        }
        let local = at.to_zoned_datetime(tz.clone());
        let first_day = self.first_day(local.date())?;
        let next_first_day = self.next_first_day(first_day)?;
        Ok(Window {
            start: start_of(first_day, tz)?,
            end: start_of(next_first_day, tz)?,
        })
    }

    /// The window that follows `window` (a credit's is itself: it has no next).
    pub fn next_window(&self, window: &Window, tz: &TimeZone) -> Result<Window, Error> {
        if self.period == Period::Credit {
            return Ok(Window::credit());
        }
        self.window_at(window.end, tz)
    }

    /// The civil date the period containing `date` starts on.
    fn first_day(&self, date: Date) -> Result<Date, Error> {
        let back_months = |cycle: i8| {
            let months = (date.month() - self.fiscal_year_start_month).rem_euclid(cycle);
            date.first_of_month()
                .checked_sub(i64::from(months).months())
                .map_err(|e| Error::TimeOutOfRange(e.to_string()))
        };
        match self.period {
            Period::Daily | Period::Credit => Ok(date),
            Period::Weekly => {
                let offset =
                    date.weekday().to_monday_zero_offset() - self.week_start.monday_zero_offset();
                let back = i64::from(offset.rem_euclid(7));
                date.checked_sub(back.days())
                    .map_err(|e| Error::TimeOutOfRange(e.to_string()))
            }
            Period::Monthly => Ok(date.first_of_month()),
            Period::Quarterly => back_months(3),
            Period::Yearly => back_months(12),
        }
    }

    fn next_first_day(&self, first: Date) -> Result<Date, Error> {
        let span = match self.period {
            Period::Daily | Period::Credit => 1.day(),
            Period::Weekly => 1.week(),
            Period::Monthly => 1.month(),
            Period::Quarterly => 3.months(),
            Period::Yearly => 12.months(),
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

/// `spec.rollover`: unused budget carried into the next period, at most `maxPercent` of the
/// limit, so that a team that saves in a quiet month may spend it later without the budget
/// growing without bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollover {
    /// The most that is carried, in percent of the next period's `spec.limit` (0..=100).
    #[x_kube(validation = kube::core::Rule::new("self <= 100").message("rollover.maxPercent is a percent of the limit from 0 to 100, e.g. 50 to carry at most half a period's limit"))]
    pub max_percent: u32,
}

impl Rollover {
    /// What a period that ended with `spent` of its effective `limit` (spec limit, plus what
    /// was carried into it, plus any extension) carries into the next period, whose spec
    /// limit is `next_limit`: everything unused, capped at `maxPercent` of `next_limit`.
    /// Exact: the cap is the limit times a whole percent, which needs no rounding.
    pub fn carried(self, limit: Usd, spent: Usd, next_limit: Usd) -> Usd {
        let unused = limit.saturating_sub(spent);
        let cap =
            next_limit.scaled(Decimal::from(self.max_percent.min(100)) / Decimal::ONE_HUNDRED);
        unused.min(cap)
    }
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

    fn calendar(period: Period, week_start: WeekStart, fiscal: i8) -> Calendar {
        Calendar {
            period,
            week_start,
            fiscal_year_start_month: fiscal,
        }
    }
    fn window_in(c: Calendar, at: &str, tz: &str) -> (String, String) {
        let w = c.window_at(ts(at), &time_zone(tz).unwrap()).unwrap();
        (w.start.to_string(), w.end.to_string())
    }

    #[test]
    fn a_sunday_week_starts_on_sunday_and_the_saturday_before_belongs_to_the_week_before() {
        let sunday = calendar(Period::Weekly, WeekStart::Sunday, 1);
        // 2026-11-29 is a Sunday.
        assert_eq!(
            window_in(sunday, "2026-11-29T12:00:00Z", "UTC"),
            ("2026-11-29T00:00:00Z".into(), "2026-12-06T00:00:00Z".into())
        );
        assert_eq!(
            window_in(sunday, "2026-11-28T23:59:59Z", "UTC"),
            ("2026-11-22T00:00:00Z".into(), "2026-11-29T00:00:00Z".into())
        );
    }

    #[test]
    fn a_sunday_week_across_the_us_fall_back_is_169_hours_long() {
        // America/New_York falls back on Sunday 2026-11-01: that week starts 00:00 EDT.
        let sunday = calendar(Period::Weekly, WeekStart::Sunday, 1);
        let tz = time_zone("America/New_York").unwrap();
        let w = sunday.window_at(ts("2026-11-04T12:00:00Z"), &tz).unwrap();
        assert_eq!(w.start, ts("2026-11-01T04:00:00Z"));
        assert_eq!(w.end, ts("2026-11-08T05:00:00Z"));
        assert_eq!(w.length_seconds(), 169 * 3600);
    }

    #[test]
    fn a_saturday_week_starts_on_the_saturday_on_or_before_the_day() {
        let saturday = calendar(Period::Weekly, WeekStart::Saturday, 1);
        // Friday 2026-12-04 is in the week of Saturday 2026-11-28; Saturday starts its own.
        assert_eq!(
            window_in(saturday, "2026-12-04T10:00:00Z", "UTC").0,
            "2026-11-28T00:00:00Z"
        );
        assert_eq!(
            window_in(saturday, "2026-12-05T00:00:00Z", "UTC").0,
            "2026-12-05T00:00:00Z"
        );
    }

    #[test]
    fn calendar_quarters_in_berlin_start_at_local_midnight_and_the_first_loses_the_dst_hour() {
        let q = Calendar::from(Period::Quarterly);
        let tz = time_zone("Europe/Berlin").unwrap();
        let w = q.window_at(ts("2026-02-14T12:00:00Z"), &tz).unwrap();
        assert_eq!(w.start, ts("2025-12-31T23:00:00Z")); // 2026-01-01 00:00 CET
        assert_eq!(w.end, ts("2026-03-31T22:00:00Z")); // 2026-04-01 00:00 CEST
        assert_eq!(w.length_seconds(), 90 * 86_400 - 3600);
        // The fourth quarter gains the hour back.
        let q4 = q.window_at(ts("2026-11-15T00:00:00Z"), &tz).unwrap();
        assert_eq!(q4.start, ts("2026-09-30T22:00:00Z"));
        assert_eq!(q4.end, ts("2026-12-31T23:00:00Z"));
        assert_eq!(q4.length_seconds(), 92 * 86_400 + 3600);
        assert_eq!(q.next_window(&w, &tz).unwrap().start, w.end);
    }

    #[test]
    fn a_fiscal_year_starting_in_april_has_quarters_from_april_july_october_and_january() {
        let q = calendar(Period::Quarterly, WeekStart::Monday, 4);
        let starts: Vec<String> = ["2026-04-01", "2026-08-31", "2026-12-31", "2027-03-31"]
            .iter()
            .map(|d| window_in(q, &format!("{d}T12:00:00Z"), "UTC").0)
            .collect();
        assert_eq!(
            starts,
            [
                "2026-04-01T00:00:00Z",
                "2026-07-01T00:00:00Z",
                "2026-10-01T00:00:00Z",
                "2027-01-01T00:00:00Z"
            ]
        );
        // In London the April quarter starts at 00:00 BST, an hour before midnight UTC.
        assert_eq!(
            window_in(q, "2026-03-31T23:30:00Z", "Europe/London"),
            ("2026-03-31T23:00:00Z".into(), "2026-06-30T23:00:00Z".into())
        );
    }

    #[test]
    fn a_fiscal_year_starting_in_april_runs_april_to_march_in_the_budget_zone() {
        let y = calendar(Period::Yearly, WeekStart::Monday, 4);
        // 2027-03-31 20:00 UTC is already 01:30 on 1 April in Kolkata: the new fiscal year.
        assert_eq!(
            window_in(y, "2027-03-31T20:00:00Z", "Asia/Kolkata"),
            ("2027-03-31T18:30:00Z".into(), "2028-03-31T18:30:00Z".into())
        );
        assert_eq!(
            window_in(y, "2027-03-31T20:00:00Z", "UTC"),
            ("2026-04-01T00:00:00Z".into(), "2027-04-01T00:00:00Z".into())
        );
    }

    #[test]
    fn a_fiscal_year_starting_in_october_has_its_first_quarter_in_october() {
        let q = calendar(Period::Quarterly, WeekStart::Monday, 10);
        let tz = time_zone("America/New_York").unwrap();
        let w = q.window_at(ts("2026-11-24T12:00:00Z"), &tz).unwrap();
        assert_eq!(w.start, ts("2026-10-01T04:00:00Z")); // 00:00 EDT
        assert_eq!(w.end, ts("2027-01-01T05:00:00Z")); // 00:00 EST
        assert_eq!(w.length_seconds(), 92 * 86_400 + 3600);
        assert_eq!(
            window_in(q, "2026-09-30T12:00:00Z", "UTC"),
            ("2026-07-01T00:00:00Z".into(), "2026-10-01T00:00:00Z".into())
        );
        let y = calendar(Period::Yearly, WeekStart::Monday, 10);
        assert_eq!(
            window_in(y, "2026-08-01T00:00:00Z", "UTC"),
            ("2025-10-01T00:00:00Z".into(), "2026-10-01T00:00:00Z".into())
        );
    }

    #[test]
    fn a_calendar_year_is_366_days_in_a_leap_year() {
        let y = Calendar::from(Period::Yearly);
        let w = y
            .window_at(ts("2028-07-01T00:00:00Z"), &TimeZone::UTC)
            .unwrap();
        assert_eq!(w.start, ts("2028-01-01T00:00:00Z"));
        assert_eq!(w.length_seconds(), 366 * 86_400);
        // A fiscal year from December takes the December before.
        assert_eq!(
            window_in(
                calendar(Period::Yearly, WeekStart::Monday, 12),
                "2028-07-01T00:00:00Z",
                "UTC"
            )
            .0,
            "2027-12-01T00:00:00Z"
        );
    }

    #[test]
    fn a_credit_has_one_window_that_never_ends_whatever_the_instant_or_zone() {
        let tz = time_zone("Pacific/Chatham").unwrap();
        let a = Period::Credit
            .window_at(ts("2026-01-01T00:00:00Z"), &tz)
            .unwrap();
        let b = Period::Credit
            .window_at(ts("2031-06-15T07:00:00Z"), &TimeZone::UTC)
            .unwrap();
        assert_eq!(a, b);
        assert!(a.never_ends() && a.contains(ts("2500-01-01T00:00:00Z")));
        assert_eq!(Period::Credit.next_window(&a, &tz).unwrap(), a);
        assert!(
            !Period::Yearly
                .window_at(ts("2026-01-01T00:00:00Z"), &tz)
                .unwrap()
                .never_ends()
        );
    }

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    #[test]
    fn rollover_carries_all_that_is_unused_up_to_the_cap() {
        let half = Rollover { max_percent: 50 };
        assert_eq!(
            half.carried(usd("10"), usd("8.765433"), usd("10")),
            usd("1.234567")
        );
        assert_eq!(
            half.carried(usd("10"), usd("3.333333"), usd("10")),
            usd("5")
        );
        assert_eq!(half.carried(usd("10"), usd("0"), usd("10")), usd("5"));
    }

    #[test]
    fn rollover_carries_nothing_from_a_spent_or_overspent_period_or_at_zero_percent() {
        let half = Rollover { max_percent: 50 };
        assert_eq!(half.carried(usd("10"), usd("10"), usd("10")), Usd::ZERO);
        assert_eq!(
            half.carried(usd("10"), usd("10.000001"), usd("10")),
            Usd::ZERO
        );
        let none = Rollover { max_percent: 0 };
        assert_eq!(none.carried(usd("10"), usd("1"), usd("10")), Usd::ZERO);
    }

    #[test]
    fn rollover_is_capped_by_the_next_periods_limit_and_never_compounds_past_it() {
        let all = Rollover { max_percent: 100 };
        // A period with $15 in force (10 + 5 carried) that spent $1 carries at most $10.
        assert_eq!(all.carried(usd("15"), usd("1"), usd("10")), usd("10"));
        // A lowered limit lowers the cap: 33% of $3.33 is exact.
        let third = Rollover { max_percent: 33 };
        assert_eq!(
            third.carried(usd("10"), usd("0"), usd("3.33")),
            usd("1.0989")
        );
    }

    #[test]
    fn unknown_zones_are_refused() {
        assert_eq!(
            time_zone("Mars/Olympus_Mons").unwrap_err(),
            Error::UnknownTimeZone("Mars/Olympus_Mons".into())
        );
    }
}
