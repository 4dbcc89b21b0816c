//! Exact money. Every amount in aigov is a [`Usd`]: a decimal, never a float, so that a
//! budget's spend is the exact sum of the costs of its requests.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Sub};
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// The largest amount accepted from users: a trillion dollars is not a budget, it is a typo.
const MAX_AMOUNT: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0); // 1e12
/// Decimal places kept when an amount is parsed from a user (prices per 1M tokens need 5+).
pub const MAX_INPUT_SCALE: u32 = 9;
/// Decimal places [`Usd::display`] shows at most; an amount that needs more is shown exactly.
pub const DISPLAY_PLACES: u32 = 6;

/// An exact, non-negative-by-construction-from-input amount of US dollars.
///
/// Arithmetic is exact (`rust_decimal`, 28 significant digits); rounding happens only when
/// an amount is shown to a person, never when it is stored or summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(Decimal);

impl Usd {
    /// Zero dollars.
    pub const ZERO: Usd = Usd(Decimal::ZERO);

    /// Wraps an exact decimal amount.
    pub const fn from_decimal(amount: Decimal) -> Self {
        Usd(amount)
    }

    /// The exact amount.
    pub const fn as_decimal(self) -> Decimal {
        self.0
    }

    /// Whole cents, e.g. `Usd::from_cents(25000)` is $250.00.
    pub fn from_cents(cents: i64) -> Self {
        Usd(Decimal::new(cents, 2))
    }

    /// Parses a user-supplied amount: a plain non-negative decimal such as `"250"`,
    /// `"250.00"` or `"0.00875"`; no sign, exponent, separators or currency symbol.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidAmount {
            input: input.to_owned(),
            reason,
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        if trimmed.starts_with('-') {
            return Err(invalid("it is negative"));
        }
        let (whole, fraction) = trimmed.split_once('.').unwrap_or((trimmed, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || (trimmed.contains('.') && fraction.is_empty())
        {
            return Err(invalid("it is not a plain decimal number"));
        }
        if fraction.len() > MAX_INPUT_SCALE as usize {
            return Err(invalid("it has more than 9 decimal places"));
        }
        let amount = Decimal::from_str_exact(trimmed)
            .map_err(|_| invalid("it is not a plain decimal number"))?;
        if amount > MAX_AMOUNT {
            return Err(invalid("it is larger than 1,000,000,000,000"));
        }
        Ok(Usd(amount.normalize()))
    }

    /// The amount as the API writes it: exact, at least two decimal places (`"250.00"`,
    /// `"0.000375"`), so that `"2000"` and `"2000.0"` compare and print the same.
    pub fn to_api_string(self) -> String {
        let n = self.0.normalize();
        if n.scale() < 2 {
            let mut two = n;
            two.rescale(2);
            two.to_string()
        } else {
            n.to_string()
        }
    }

    /// Rounded to whole cents, half away from zero, for people to read.
    pub fn round_cents(self) -> Usd {
        Usd(self
            .0
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero))
    }

    /// `$1,234.57`-style text for messages and Events: cents, half away from zero.
    pub fn display_cents(self) -> String {
        let cents = self.round_cents().0;
        let text = format!("{cents:.2}");
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, "00"));
        format!("${}.{fraction}", group_thousands(whole))
    }

    /// The amount for people, never more than it is: a cent or more in cents rounded *down*
    /// (`$4.92` for 4.921599, `$999,999,999,999.99` for 999999999999.999999, never a figure
    /// past a limit); less than a cent with the places it needs, up to six, rounded down
    /// (`$0.001`, `$0.0052`), exactly when that would show nothing (`$0.000000875`); grouped.
    pub fn display(self) -> String {
        self.shown(self.places())
    }

    /// Two amounts shown against each other (a spend and its limit, what is left and what a
    /// call could cost), each as [`Usd::display`] shows it, with more places for both where
    /// that is what it takes for the texts to compare as the amounts do: never "$1.23 left"
    /// against "could cost up to $1.23" when one is less, never "$5.00 of $5.00" when the
    /// spend is past the limit.
    pub fn display_pair(a: Usd, b: Usd) -> (String, String) {
        let mut places = (a.places(), b.places());
        loop {
            let agree = a.truncated(places.0).cmp(&b.truncated(places.1)) == a.0.cmp(&b.0);
            if agree || places.0.min(places.1) > DISPLAY_PLACES {
                return (a.shown(places.0), b.shown(places.1));
            }
            let next = places.0.max(places.1) + 1;
            places = (next, next);
        }
    }

    /// The places [`Usd::display`] shows this amount with (past [`DISPLAY_PLACES`]: exact).
    fn places(self) -> u32 {
        let n = self.0.normalize();
        if n.is_zero() || n.abs() >= Decimal::new(1, 2) {
            return 2;
        }
        let places = n.scale().clamp(2, DISPLAY_PLACES);
        if self.truncated(places).is_zero() {
            DISPLAY_PLACES + 1
        } else {
            places
        }
    }

    /// Rounded down to `places` (exact past [`DISPLAY_PLACES`]).
    fn truncated(self, places: u32) -> Decimal {
        if places > DISPLAY_PLACES {
            self.0
        } else {
            self.0
                .round_dp_with_strategy(places, RoundingStrategy::ToZero)
        }
    }

    /// `$` and the amount rounded down to `places` (at least two; exact past the maximum).
    fn shown(self, places: u32) -> String {
        let mut value = self.truncated(places).normalize();
        if value.scale() < places.min(DISPLAY_PLACES) {
            value.rescale(places.min(DISPLAY_PLACES));
        }
        if value.scale() < 2 {
            value.rescale(2);
        }
        let text = value.to_string();
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, "00"));
        format!("${}.{fraction}", group_thousands(whole))
    }

    /// `self - other`, or zero when `other` is larger (what is left of a budget).
    pub fn saturating_sub(self, other: Usd) -> Usd {
        if other >= self {
            Usd::ZERO
        } else {
            Usd(self.0 - other.0)
        }
    }

    /// The cost of `tokens` at `per_million` dollars per million tokens, exact.
    pub fn per_million_tokens(per_million: Usd, tokens: u64) -> Usd {
        Usd(per_million.0 * Decimal::from(tokens) / Decimal::ONE_THOUSAND / Decimal::ONE_THOUSAND)
    }

    /// This amount scaled by an exact factor (batch discounts, regional premiums).
    pub fn scaled(self, factor: Decimal) -> Usd {
        Usd(self.0 * factor)
    }

    /// How much of `limit` this amount is, in percent, rounded *down* to one decimal place,
    /// so that a budget reads 100.0% only when it really is at its limit.
    pub fn percent_of(self, limit: Usd) -> Decimal {
        if limit.0.is_zero() {
            return if self.0.is_zero() {
                Decimal::ZERO
            } else {
                Decimal::ONE_HUNDRED
            };
        }
        (self.0 * Decimal::ONE_HUNDRED / limit.0)
            .round_dp_with_strategy(1, RoundingStrategy::ToZero)
    }

    /// True when the amount is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

/// Digits with a comma every three from the right, for people to read: `1,234,567`.
pub fn group_thousands(digits: &str) -> String {
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_api_string())
    }
}

impl FromStr for Usd {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Usd::parse(s)
    }
}

impl Add for Usd {
    type Output = Usd;
    fn add(self, rhs: Usd) -> Usd {
        Usd(self.0 + rhs.0)
    }
}

impl AddAssign for Usd {
    fn add_assign(&mut self, rhs: Usd) {
        self.0 += rhs.0;
    }
}

impl Sub for Usd {
    type Output = Usd;
    fn sub(self, rhs: Usd) -> Usd {
        Usd(self.0 - rhs.0)
    }
}

impl Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, Add::add)
    }
}

impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_api_string())
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Usd::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    #[test]
    fn plain_decimals_parse_exactly() {
        assert_eq!(usd("250").as_decimal(), Decimal::new(250, 0));
        assert_eq!(usd("250.00"), usd("250"));
        assert_eq!(usd("0.00875").as_decimal(), Decimal::new(875, 5));
        assert_eq!(usd(" 1.5 "), usd("1.50"));
    }

    #[test]
    fn malformed_amounts_are_refused_with_the_reason() {
        for (input, reason) in [
            ("", "it is empty"),
            ("-1", "it is negative"),
            ("1e3", "it is not a plain decimal number"),
            ("1,000", "it is not a plain decimal number"),
            ("$5", "it is not a plain decimal number"),
            ("5.", "it is not a plain decimal number"),
            (".5", "it is not a plain decimal number"),
            ("NaN", "it is not a plain decimal number"),
            ("0.0000000001", "it has more than 9 decimal places"),
            ("1000000000001", "it is larger than 1,000,000,000,000"),
        ] {
            assert_eq!(
                Usd::parse(input),
                Err(Error::InvalidAmount {
                    input: input.into(),
                    reason
                }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn api_strings_have_at_least_two_decimals_and_no_trailing_noise() {
        assert_eq!(usd("2000").to_api_string(), "2000.00");
        assert_eq!(usd("2000.0").to_api_string(), "2000.00");
        assert_eq!(usd("0.000375").to_api_string(), "0.000375");
        assert_eq!(usd("1.10").to_api_string(), "1.10");
        assert_eq!(Usd::ZERO.to_api_string(), "0.00");
    }

    #[test]
    fn display_rounds_half_away_from_zero_to_cents_with_grouping() {
        assert_eq!(usd("0.005").display_cents(), "$0.01");
        assert_eq!(usd("0.004999").display_cents(), "$0.00");
        assert_eq!(usd("1234567.125").display_cents(), "$1,234,567.13");
        assert_eq!(usd("999.995").display_cents(), "$1,000.00");
        assert_eq!(usd("12").display_cents(), "$12.00");
    }

    #[test]
    fn display_is_never_more_than_the_amount_and_shows_sub_cent_amounts() {
        assert_eq!(
            usd("4.921599").display(),
            "$4.92",
            "rounded down, as the demo prints"
        );
        assert_eq!(usd("5").display(), "$5.00");
        assert_eq!(usd("12.5").display(), "$12.50");
        assert_eq!(Usd::ZERO.display(), "$0.00");
        assert_eq!(usd("0.001").display(), "$0.001");
        assert_eq!(usd("0.005").display(), "$0.005");
        assert_eq!(usd("0.0052").display(), "$0.0052");
        assert_eq!(usd("0.005234567").display(), "$0.005234");
        assert_eq!(usd("0.00000875").display(), "$0.000008");
        assert_eq!(
            usd("0.000000875").display(),
            "$0.000000875",
            "exact when six places show nothing"
        );
        assert_eq!(
            usd("999999999999.999999").display(),
            "$999,999,999,999.99",
            "never more than the limit"
        );
        assert_eq!(usd("1234567.129").display(), "$1,234,567.12");
    }

    #[test]
    fn amounts_shown_against_each_other_compare_as_they_are() {
        let pair = |a: &str, b: &str| Usd::display_pair(usd(a), usd(b));
        assert_eq!(pair("4.921599", "5.00"), ("$4.92".into(), "$5.00".into()));
        assert_eq!(pair("0", "0.001"), ("$0.00".into(), "$0.001".into()));
        assert_eq!(pair("0.0009", "0.001"), ("$0.0009".into(), "$0.001".into()));
        assert_eq!(pair("0.004", "0.0052"), ("$0.004".into(), "$0.0052".into()));
        assert_eq!(
            pair("1.239", "1.2391"),
            ("$1.2390".into(), "$1.2391".into())
        );
        assert_eq!(pair("5.004", "5"), ("$5.004".into(), "$5.000".into()));
        assert_eq!(pair("1", "1.00"), ("$1.00".into(), "$1.00".into()));
        assert_eq!(
            pair("1.0000001", "1.0000002"),
            ("$1.0000001".into(), "$1.0000002".into()),
            "exact past six places"
        );
        // Whatever the amounts, the texts compare as the amounts do.
        for (a, b) in [
            ("0.01", "0.0100001"),
            ("3.333333", "3.3333334"),
            ("0.0049", "0.005"),
        ] {
            let (x, y) = pair(a, b);
            let parse = |t: &str| Usd::parse(&t[1..].replace(',', "")).unwrap();
            assert_eq!(
                parse(&x).cmp(&parse(&y)),
                usd(a).cmp(&usd(b)),
                "{a} {b}: {x} {y}"
            );
        }
    }

    #[test]
    fn token_costs_are_exact_to_the_fraction_of_a_micro_dollar() {
        // Nova Micro cache reads: $0.00875 per 1M tokens; one token costs 8.75 nano-dollars.
        let one = Usd::per_million_tokens(usd("0.00875"), 1);
        assert_eq!(one.as_decimal(), Decimal::new(875, 11));
        // A million such tokens sum back to exactly the list price.
        let many: Usd = std::iter::repeat_n(one, 1_000_000).sum();
        assert_eq!(many, usd("0.00875"));
    }

    #[test]
    fn percent_used_rounds_down_so_100_means_at_the_limit() {
        assert_eq!(usd("99.999").percent_of(usd("100")), Decimal::new(999, 1));
        assert_eq!(usd("100").percent_of(usd("100")), Decimal::new(1000, 1));
        assert_eq!(usd("1").percent_of(usd("3")), Decimal::new(333, 1));
        assert_eq!(usd("2").percent_of(usd("3")), Decimal::new(666, 1));
        assert_eq!(usd("5").percent_of(Usd::ZERO), Decimal::ONE_HUNDRED);
    }

    #[test]
    fn saturating_sub_never_goes_negative() {
        assert_eq!(usd("1").saturating_sub(usd("2")), Usd::ZERO);
        assert_eq!(usd("2").saturating_sub(usd("0.5")), usd("1.5"));
    }

    #[test]
    fn serde_round_trips_as_a_string() {
        let json = serde_json::to_string(&usd("12.5")).unwrap();
        assert_eq!(json, "\"12.50\"");
        assert_eq!(serde_json::from_str::<Usd>(&json).unwrap(), usd("12.5"));
        assert!(serde_json::from_str::<Usd>("\"-3\"").is_err());
    }
}
