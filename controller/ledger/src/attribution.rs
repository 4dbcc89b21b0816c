//! A budget's spend broken down by the request-metadata keys it declares
//! (`spec.attribution.keys`), in bounded space: per key at most [`TRACKED_VALUES`] values are
//! counted one by one, each from its first call of the period, so every figure listed is
//! exact; any further value is folded into `(other)`, calls without the key into `(none)`.
//! The status lists the top [`SHOWN_VALUES`] and folds the rest into `(other)` too; finished
//! periods keep [`HISTORY_VALUES`].
//!
//! A leader restores a book from the status it finds. The values listed there come back
//! exactly; those folded into `(other)` cannot be told apart again, so a book restored with a
//! non-empty `(other)` is **closed**: a value it does not list goes to `(other)` for the rest
//! of the period (it might have been among the folded ones, and listing it afresh would show
//! it less than it spent). With an empty `(other)` nothing was folded and the book stays open.
//!
//! Metadata never chooses which budgets a call is charged to: the records arrive charged to
//! the budgets that select the calling pod, and this only subdivides that spend. A per-value
//! limit would make its key's book track every value it limits (its bound then the number of
//! values limited) and hold slices per value as accounts do per budget.

use std::collections::BTreeMap;

use aigov_api::Usd;
use aigov_api::budget::{
    KeyAttribution, MAX_ATTRIBUTION_KEYS, NONE_VALUE, OTHER_VALUE, ValueSpend,
};
use aigov_api::request_metadata::RequestMetadata;

use crate::ledger::WorkloadTally;

/// Values of one key counted one by one, at most.
pub const TRACKED_VALUES: usize = 100;
/// Values of one key a status lists this period (before `(other)` and `(none)`).
pub const SHOWN_VALUES: usize = 10;
/// Values of one key a finished period keeps in `status.history`.
pub const HISTORY_VALUES: usize = 5;

/// What one call adds to the tallies it is counted in.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Call {
    /// What it cost (zero for a refusal).
    pub cost: Usd,
    /// Refused with a throttle or an exhausted budget.
    pub throttled: bool,
}

fn add(tally: &mut WorkloadTally, call: Call) {
    tally.spent += call.cost;
    tally.requests += 1;
    tally.throttled += u64::from(call.throttled);
}

fn merge(into: &mut WorkloadTally, from: &WorkloadTally) {
    into.spent += from.spent;
    into.requests += from.requests;
    into.throttled += from.throttled;
}

/// One key's values this period.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueBook {
    values: BTreeMap<String, WorkloadTally>,
    /// Calls of values not counted one by one.
    other: WorkloadTally,
    /// Calls without the key.
    none: WorkloadTally,
    /// No new value is counted one by one (see the module's doc).
    closed: bool,
}

impl ValueBook {
    /// Counts a call whose value of this key is `value` (None: the call has no such key).
    pub fn count(&mut self, value: Option<&str>, call: Call) {
        let tally = match value {
            None => &mut self.none,
            Some(v) if self.values.contains_key(v) => self.values.get_mut(v).expect("present"),
            Some(v) if !self.closed && self.values.len() < TRACKED_VALUES => {
                self.values.entry(v.to_owned()).or_default()
            }
            Some(_) => &mut self.other,
        };
        add(tally, call);
    }

    /// The tally of one value counted one by one.
    pub fn value(&self, value: &str) -> Option<&WorkloadTally> {
        self.values.get(value)
    }

    /// The `n` values with most spend (then most refusals, then by name), then `(other)` (the
    /// rest) and `(none)` when they have calls.
    pub fn top(&self, n: usize) -> Vec<ValueSpend> {
        let mut ranked: Vec<_> = self.values.iter().collect();
        ranked.sort_by(|a, b| {
            (b.1.spent, b.1.throttled)
                .cmp(&(a.1.spent, a.1.throttled))
                .then(a.0.cmp(b.0))
        });
        let mut other = self.other;
        for (_, folded) in ranked.iter().skip(n) {
            merge(&mut other, folded);
        }
        let listed = ranked.into_iter().take(n).map(|(v, t)| (v.as_str(), *t));
        let rest = [(OTHER_VALUE, other), (NONE_VALUE, self.none)]
            .into_iter()
            .filter(|(_, t)| t.requests > 0);
        listed
            .chain(rest)
            .map(|(value, t)| ValueSpend {
                value: value.to_owned(),
                spent: t.spent.to_api_string(),
                requests: t.requests,
                throttled_requests: t.throttled,
            })
            .collect()
    }

    /// A book as a status listed it (see the module's doc on closing).
    pub fn restore(listed: &[ValueSpend]) -> ValueBook {
        let mut book = ValueBook::default();
        for v in listed {
            let Ok(spent) = Usd::parse(&v.spent) else {
                continue;
            };
            let tally = WorkloadTally {
                spent,
                requests: v.requests,
                throttled: v.throttled_requests,
            };
            match v.value.as_str() {
                OTHER_VALUE => merge(&mut book.other, &tally),
                NONE_VALUE => merge(&mut book.none, &tally),
                value if book.values.len() < TRACKED_VALUES => {
                    book.values.insert(value.to_owned(), tally);
                }
                _ => merge(&mut book.other, &tally),
            }
        }
        book.closed = book.other.requests > 0;
        book
    }
}

/// Every declared key's book, in the order the spec lists the keys.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attribution {
    books: Vec<(String, ValueBook)>,
}

impl Attribution {
    /// Books for `keys` (at most [`MAX_ATTRIBUTION_KEYS`], each once), restored from the
    /// status `listed` of this period.
    pub fn restore(keys: &[String], listed: &[KeyAttribution]) -> Attribution {
        let mut attribution = Attribution::default();
        attribution.declare(keys);
        for (key, book) in &mut attribution.books {
            if let Some(found) = listed.iter().find(|k| k.key == *key) {
                *book = ValueBook::restore(&found.values);
            }
        }
        attribution
    }

    /// Declares the keys counted from now on: a key still declared keeps its book, a new one
    /// starts empty (its calls so far are not in it), one no longer declared is forgotten.
    /// Returns whether anything changed.
    pub fn declare(&mut self, keys: &[String]) -> bool {
        let mut wanted: Vec<&String> = Vec::new();
        for key in keys {
            if !wanted.contains(&key) && wanted.len() < MAX_ATTRIBUTION_KEYS {
                wanted.push(key);
            }
        }
        if wanted.len() == self.books.len()
            && wanted.iter().zip(&self.books).all(|(w, b)| **w == b.0)
        {
            return false;
        }
        let mut old = std::mem::take(&mut self.books);
        self.books = wanted
            .into_iter()
            .map(|key| {
                let book = old
                    .iter()
                    .position(|(k, _)| k == key)
                    .map(|i| old.swap_remove(i).1)
                    .unwrap_or_default();
                (key.clone(), book)
            })
            .collect();
        true
    }

    /// The declared keys.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.books.iter().map(|(k, _)| k.as_str())
    }

    /// One key's book.
    pub fn book(&self, key: &str) -> Option<&ValueBook> {
        self.books.iter().find(|(k, _)| k == key).map(|(_, b)| b)
    }

    /// Counts a call with `metadata` in every declared key's book.
    pub fn count(&mut self, metadata: &RequestMetadata, call: Call) {
        for (key, book) in &mut self.books {
            book.count(metadata.get(key).map(String::as_str), call);
        }
    }

    /// Per key, its top `n` values then `(other)` and `(none)` (keys without calls left out).
    pub fn top(&self, n: usize) -> Vec<KeyAttribution> {
        self.books
            .iter()
            .map(|(key, book)| KeyAttribution {
                key: key.clone(),
                values: book.top(n),
            })
            .filter(|k| !k.values.is_empty())
            .collect()
    }

    /// A new period: the same keys, every book empty and open.
    pub fn clear(&mut self) {
        for (_, book) in &mut self.books {
            *book = ValueBook::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    fn call(cost: &str) -> Call {
        Call {
            cost: usd(cost),
            throttled: false,
        }
    }

    fn meta(pairs: &[(&str, &str)]) -> RequestMetadata {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn values_are_ranked_by_spend_with_the_rest_in_other_and_calls_without_the_key_in_none() {
        let mut a = Attribution::default();
        a.declare(&keys(&["feature"]));
        for i in 0..12 {
            a.count(
                &meta(&[("feature", &format!("f{i:02}"))]),
                call(&format!("{}.00", i + 1)),
            );
        }
        a.count(&meta(&[("user", "u")]), call("0.50"));
        a.count(
            &meta(&[("feature", "f11")]),
            Call {
                cost: Usd::ZERO,
                throttled: true,
            },
        );
        let top = a.top(SHOWN_VALUES);
        let values = &top[0].values;
        assert_eq!(values.len(), 12, "10 shown, (other), (none)");
        assert_eq!(
            (
                values[0].value.as_str(),
                values[0].spent.as_str(),
                values[0].requests,
                values[0].throttled_requests
            ),
            ("f11", "12.00", 2, 1)
        );
        assert_eq!(
            (values[10].value.as_str(), values[10].spent.as_str()),
            ("(other)", "3.00")
        );
        assert_eq!(
            (values[11].value.as_str(), values[11].spent.as_str()),
            ("(none)", "0.50")
        );
    }

    #[test]
    fn past_the_tracked_bound_new_values_fold_into_other() {
        let mut book = ValueBook::default();
        for i in 0..TRACKED_VALUES + 5 {
            book.count(Some(&format!("v{i}")), call("1"));
        }
        assert!(book.value("v99").is_some());
        assert!(book.value("v100").is_none());
        assert_eq!(book.other.requests, 5);
        book.count(Some("v3"), call("1"));
        assert_eq!(
            book.value("v3").unwrap().requests,
            2,
            "a tracked value keeps counting"
        );
    }

    #[test]
    fn a_book_restored_with_other_in_use_is_closed_and_one_without_stays_open() {
        let mut book = ValueBook::default();
        for i in 0..12 {
            book.count(Some(&format!("v{i:02}")), call(&format!("{}", i + 1)));
        }
        let mut restored = ValueBook::restore(&book.top(SHOWN_VALUES));
        assert_eq!(restored.top(SHOWN_VALUES), book.top(SHOWN_VALUES));
        restored.count(Some("v00"), call("1"));
        assert!(
            restored.value("v00").is_none(),
            "v00 was folded: it stays in (other)"
        );
        restored.count(Some("new"), call("1"));
        assert!(restored.value("new").is_none());
        let mut small = ValueBook::default();
        small.count(Some("a"), call("1"));
        let mut reopened = ValueBook::restore(&small.top(SHOWN_VALUES));
        reopened.count(Some("b"), call("2"));
        assert_eq!(reopened.value("b").unwrap().spent, usd("2"));
    }

    #[test]
    fn declaring_keys_keeps_the_books_of_keys_still_declared() {
        let mut a = Attribution::default();
        assert!(a.declare(&keys(&["feature", "user"])));
        a.count(&meta(&[("feature", "x"), ("user", "u")]), call("1"));
        assert!(!a.declare(&keys(&["feature", "user"])));
        assert!(a.declare(&keys(&["user", "tenant", "user"])));
        assert_eq!(a.keys().collect::<Vec<_>>(), ["user", "tenant"]);
        assert_eq!(a.book("user").unwrap().value("u").unwrap().requests, 1);
        assert!(a.book("feature").is_none());
        let many = keys(&["a", "b", "c", "d", "e", "f"]);
        a.declare(&many);
        assert_eq!(a.keys().count(), MAX_ATTRIBUTION_KEYS);
    }

    fn total(values: &[ValueSpend]) -> (Usd, u64, u64) {
        values.iter().fold((Usd::ZERO, 0, 0), |(s, r, t), v| {
            (s + usd(&v.spent), r + v.requests, t + v.throttled_requests)
        })
    }

    proptest! {
        #[test]
        fn every_listing_adds_up_to_the_calls_counted_and_stays_bounded(
            calls in proptest::collection::vec((proptest::option::of(0u32..300), 0u32..5000, any::<bool>()), 0..400),
            shown in 0usize..15,
            restart_at in proptest::option::of(0usize..400),
        ) {
            let mut book = ValueBook::default();
            let (mut spent, mut requests, mut throttled) = (Usd::ZERO, 0u64, 0u64);
            for (i, (value, cents, refused)) in calls.iter().enumerate() {
                if restart_at == Some(i) {
                    book = ValueBook::restore(&book.top(SHOWN_VALUES));
                }
                let c = Call {
                    cost: if *refused { Usd::ZERO } else { Usd::from_cents(i64::from(*cents)) },
                    throttled: *refused,
                };
                spent += c.cost;
                requests += 1;
                throttled += u64::from(c.throttled);
                book.count(value.map(|v| format!("v{v}")).as_deref(), c);
            }
            let listed = book.top(shown);
            prop_assert!(listed.len() <= shown + 2);
            prop_assert!(book.values.len() <= TRACKED_VALUES);
            prop_assert_eq!(total(&listed), (spent, requests, throttled));
        }
    }
}
