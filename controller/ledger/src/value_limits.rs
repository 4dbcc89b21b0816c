//! Limits per value of a request-metadata key (`spec.limitPerValue`): every user, tenant or
//! job a budget's callers name gets its own limit inside the budget, enforced like the budget's
//! own. Each value is an account of its own in the slice protocol: gateways reserve a call's
//! worst case on it as on the budget, report what they hold of it, and are granted slices of it
//! only from `limit − spent − Σ held` ([`ValueLimits::grantable`]), so the $0 overshoot bound
//! holds per value for the same reasons it holds per budget. A value account's key is the
//! budget's with the metadata key and value after [`SEPARATOR`] ([`value_key`]).
//!
//! Spend per value is counted from the budget's own records (the record carries the call's
//! metadata), so it is exactly once whenever the budget's spend is. It is persisted in
//! `status.valueLedger` with the budget's watermarks; a leader restores it from there.
//!
//! Memory is bounded: at most [`MAX_VALUES`] values per budget. At the cap a value that spent
//! nothing and holds nothing (the least recently used first) is forgotten to make room; when
//! every tracked value has spent, a new value is granted nothing (its calls get a 429) until
//! the period ends. The status holds at most [`PERSISTED_BYTES`] of values; a ledger that did
//! not fit is restored **closed**: a value it does not list might have spent, so it is granted
//! nothing this period rather than taken for unspent.
//!
//! Metadata comes from the workload. A value only subdivides the spend of a budget that the
//! calling pod already selects: a forged value moves spend between the caller's own values.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use imbl::HashMap as SharedMap;

use aigov_api::Usd;
use aigov_api::budget::{ValueLedger, ValueLimitStatus, ValueSpent};

use crate::ledger::BudgetKey;

/// What separates a budget's key, a metadata key and a value in a value account's key: a
/// character neither Kubernetes names nor Bedrock's metadata may contain.
pub const SEPARATOR: char = '\u{1f}';
/// Values tracked per budget and period, at most.
pub const MAX_VALUES: usize = 100_000;
/// The most of `status.valueLedger` one budget writes (keys, values and amounts).
pub const PERSISTED_BYTES: usize = 256 * 1024;
/// Values a status lists per key in `status.valueLimits[].top`.
pub const SHOWN_VALUES: usize = 10;

/// The account key of `value` of `key` in `budget`.
pub fn value_key(budget: &str, key: &str, value: &str) -> BudgetKey {
    format!("{budget}{SEPARATOR}{key}{SEPARATOR}{value}")
}

/// A value account's key taken apart: the budget, the metadata key, the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueRef<'a> {
    /// The budget's key (`namespace/name`).
    pub budget: &'a str,
    /// The metadata key.
    pub key: &'a str,
    /// The value.
    pub value: &'a str,
}

/// `account` taken apart when it names a value account, `None` for a budget's own.
pub fn split(account: &str) -> Option<ValueRef<'_>> {
    let (budget, rest) = account.split_once(SEPARATOR)?;
    let (key, value) = rest.split_once(SEPARATOR)?;
    Some(ValueRef { budget, key, value })
}

/// The budget an account key belongs to (itself for a budget's own).
pub fn budget_of(account: &str) -> &str {
    split(account).map_or(account, |v| v.budget)
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Tracked {
    spent: Usd,
    /// Per gateway, what it holds of this value (granted, not yet spent).
    held: HashMap<String, Usd>,
    /// When it was last used, on the book's own counter (least recently used goes first).
    used: u64,
}

impl Tracked {
    fn held_total(&self) -> Usd {
        self.held.values().copied().fold(Usd::ZERO, |a, b| a + b)
    }

    fn idle(&self) -> bool {
        self.spent.is_zero() && self.held.values().all(|h| h.is_zero())
    }
}

/// One budget's per-value limits this period.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueLimits {
    /// Metadata key → each value's limit.
    limits: BTreeMap<String, Usd>,
    /// (key, value) → its account. A persistent map: the reconciler copies the budget's account
    /// under the ledger's lock on every pass, and copying this one is O(1) however many values
    /// it holds (changes after the copy share all but the paths they touch).
    values: SharedMap<(String, String), Tracked>,
    /// Keys restored from a ledger that did not fit in the status.
    closed: BTreeSet<String>,
    /// A use counter (no clock needed: only the order matters).
    uses: u64,
}

impl ValueLimits {
    /// Takes the spec's limits; returns whether they changed. A key no longer limited is
    /// forgotten with its values (holdings of it are gateways' own to give back).
    pub fn declare(&mut self, limits: &[(String, Usd)]) -> bool {
        let declared: BTreeMap<String, Usd> = limits.iter().cloned().collect();
        if declared == self.limits {
            return false;
        }
        self.values.retain(|(key, _), _| declared.contains_key(key));
        self.closed.retain(|key| declared.contains_key(key));
        self.limits = declared;
        true
    }

    /// The limit of every value of `key`, if `key` is limited.
    pub fn limit(&self, key: &str) -> Option<Usd> {
        self.limits.get(key).copied()
    }

    /// Counts a call's cost into the value of each limited key its metadata carries (beyond
    /// the cap if need be: spend that happened is never dropped).
    pub fn count(&mut self, metadata: &BTreeMap<String, String>, cost: Usd) {
        self.uses += 1;
        for key in self.limits.keys() {
            if let Some(value) = metadata.get(key) {
                let tracked = self.values.entry((key.clone(), value.clone())).or_default();
                tracked.spent += cost;
                tracked.used = self.uses;
            }
        }
    }

    /// What a value has spent this period (its limit when it is unknown to a closed key: it
    /// might have spent it).
    pub fn spent(&self, key: &str, value: &str) -> Usd {
        match self.values.get(&(key.to_owned(), value.to_owned())) {
            Some(tracked) => tracked.spent,
            None if self.closed.contains(key) => self.limit(key).unwrap_or(Usd::ZERO),
            None => Usd::ZERO,
        }
    }

    /// What may still be granted of a value: its limit less its spend and holdings; nothing
    /// for a key not limited, for a value a closed key does not know, or for a new value when
    /// the book is full of values that spent.
    pub fn grantable(&mut self, key: &str, value: &str) -> Usd {
        let Some(limit) = self.limit(key) else {
            return Usd::ZERO;
        };
        let id = (key.to_owned(), value.to_owned());
        if let Some(tracked) = self.values.get(&id) {
            return limit.saturating_sub(tracked.spent + tracked.held_total());
        }
        if self.closed.contains(key) || !self.make_room() {
            return Usd::ZERO;
        }
        limit
    }

    /// Adds `amount` to what `gateway` holds of a value (a grant).
    pub fn hold(&mut self, key: &str, value: &str, gateway: &str, amount: Usd) {
        self.uses += 1;
        let tracked = self
            .values
            .entry((key.to_owned(), value.to_owned()))
            .or_default();
        *tracked.held.entry(gateway.to_owned()).or_insert(Usd::ZERO) += amount;
        tracked.used = self.uses;
    }

    /// Takes a gateway's report of what it holds of a value; true when it changed. A holding
    /// of a value not tracked is taken all the same (a gateway's slice from before a failover).
    pub fn set_held(&mut self, key: &str, value: &str, gateway: &str, held: Usd) -> bool {
        let id = (key.to_owned(), value.to_owned());
        let Some(tracked) = self.values.get_mut(&id) else {
            if held.is_zero() || !self.limits.contains_key(key) {
                return false;
            }
            self.hold(key, value, gateway, held);
            return true;
        };
        let before = if held.is_zero() {
            tracked.held.remove(gateway)
        } else {
            tracked.held.insert(gateway.to_owned(), held)
        };
        before.unwrap_or(Usd::ZERO) != held
    }

    /// Whether gateways other than `gateway` hold part of a value.
    pub fn others_hold(&self, key: &str, value: &str, gateway: &str) -> bool {
        self.values
            .get(&(key.to_owned(), value.to_owned()))
            .is_some_and(|t| t.held.iter().any(|(g, h)| g != gateway && !h.is_zero()))
    }

    /// The (key, value) pairs `gateway` holds part of.
    pub fn held_by(&self, gateway: &str) -> Vec<(String, String)> {
        self.values
            .iter()
            .filter(|(_, t)| t.held.get(gateway).is_some_and(|h| !h.is_zero()))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Forgets what a silent gateway held; returns the values it held and how much.
    pub fn expire_gateway(&mut self, gateway: &str) -> Vec<((String, String), Usd)> {
        let mut returned = Vec::new();
        for (id, tracked) in self.values.iter_mut() {
            if let Some(held) = tracked.held.remove(gateway).filter(|h| !h.is_zero()) {
                returned.push((id.clone(), held));
            }
        }
        returned
    }

    /// Starts the next period: spend is forgotten, holdings carry over.
    pub fn roll_over(&mut self) {
        for (_, tracked) in self.values.iter_mut() {
            tracked.spent = Usd::ZERO;
        }
        self.values.retain(|_, t| !t.idle());
        self.closed.clear();
    }

    /// Room for one more value: below the cap, or after forgetting the least recently used
    /// value that spent and holds nothing. False when every tracked value has spent.
    fn make_room(&mut self) -> bool {
        if self.values.len() < MAX_VALUES {
            return true;
        }
        let oldest_idle = self
            .values
            .iter()
            .filter(|(_, t)| t.idle())
            .min_by_key(|(_, t)| t.used)
            .map(|(id, _)| id.clone());
        oldest_idle.is_some_and(|id| self.values.remove(&id).is_some())
    }

    /// Values tracked (for the memory bound's tests and metrics).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when no value is tracked.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `status.valueLimits`: per limited key, the values tracked, those at their limit and
    /// the top spenders.
    pub fn status(&self) -> Vec<ValueLimitStatus> {
        self.limits
            .iter()
            .map(|(key, limit)| {
                let mut values: Vec<(&str, Usd)> = self
                    .values
                    .iter()
                    .filter(|((k, _), _)| k == key)
                    .map(|((_, v), t)| (v.as_str(), t.spent))
                    .collect();
                let tracked = values.len() as u64;
                let at_limit = values
                    .iter()
                    .filter(|(_, spent)| aigov_api::evaluation::reached(*spent, *limit, 100))
                    .count();
                let dearest_first =
                    |a: &(&str, Usd), b: &(&str, Usd)| b.1.cmp(&a.1).then(a.0.cmp(b.0));
                // The top ones only: O(n) to find them, however many values there are.
                if values.len() > SHOWN_VALUES {
                    values.select_nth_unstable_by(SHOWN_VALUES, dearest_first);
                    values.truncate(SHOWN_VALUES);
                }
                values.sort_by(dearest_first);
                ValueLimitStatus {
                    key: key.clone(),
                    limit: limit.to_api_string(),
                    values: tracked,
                    at_limit: at_limit as u64,
                    top: values
                        .iter()
                        .take(SHOWN_VALUES)
                        .filter(|(_, spent)| !spent.is_zero())
                        .map(|(value, spent)| ValueSpent {
                            value: (*value).to_owned(),
                            spent: spent.to_api_string(),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// `status.valueLedger`: every value that spent, dearest first, within
    /// [`PERSISTED_BYTES`]; a key whose values did not all fit is marked incomplete.
    pub fn ledger(&self) -> Vec<ValueLedger> {
        let mut spenders: Vec<(&String, &String, Usd)> = self
            .values
            .iter()
            .filter(|(_, t)| !t.spent.is_zero())
            .map(|((k, v), t)| (k, v, t.spent))
            .collect();
        spenders.sort_by(|a, b| b.2.cmp(&a.2).then(a.1.cmp(b.1)));
        let mut ledgers: BTreeMap<&String, ValueLedger> = self
            .limits
            .keys()
            .map(|key| {
                let complete = !self.closed.contains(key);
                let ledger = ValueLedger {
                    key: key.clone(),
                    spent: BTreeMap::new(),
                    complete,
                };
                (key, ledger)
            })
            .collect();
        let mut bytes = 0;
        for (key, value, spent) in spenders {
            let Some(ledger) = ledgers.get_mut(key) else {
                continue;
            };
            let amount = spent.to_api_string();
            bytes += key.len() + value.len() + amount.len() + 8;
            if bytes > PERSISTED_BYTES {
                ledger.complete = false;
                continue;
            }
            ledger.spent.insert(value.clone(), amount);
        }
        ledgers.into_values().collect()
    }

    /// A book restored from `status.valueLedger` (of the same period), before the spec's
    /// limits are declared; an incomplete key comes back closed.
    pub fn restore(ledgers: &[ValueLedger]) -> ValueLimits {
        let mut book = ValueLimits::default();
        for ledger in ledgers {
            if !ledger.complete {
                book.closed.insert(ledger.key.clone());
            }
            for (value, spent) in &ledger.spent {
                if let Ok(spent) = Usd::parse(spent) {
                    let tracked = Tracked {
                        spent,
                        ..Tracked::default()
                    };
                    book.values
                        .insert((ledger.key.clone(), value.clone()), tracked);
                }
            }
        }
        book
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    fn limited(limit: &str) -> ValueLimits {
        let mut book = ValueLimits::default();
        book.declare(&[("user".to_owned(), usd(limit))]);
        book
    }

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_value_account_key_comes_apart_into_budget_key_and_value() {
        let account = value_key("team/chat", "user", "u-1 with spaces=and:more");
        let parts = split(&account).unwrap();
        assert_eq!(parts.budget, "team/chat");
        assert_eq!(parts.key, "user");
        assert_eq!(parts.value, "u-1 with spaces=and:more");
        assert_eq!(budget_of(&account), "team/chat");
        assert_eq!(split("team/chat"), None);
        assert_eq!(budget_of("team/chat"), "team/chat");
    }

    #[test]
    fn grants_of_a_value_never_pass_its_limit_less_spend_and_holdings() {
        let mut book = limited("0.01");
        assert_eq!(book.grantable("user", "u-1"), usd("0.01"));
        book.hold("user", "u-1", "gw-a", usd("0.004"));
        book.hold("user", "u-1", "gw-b", usd("0.003"));
        assert_eq!(book.grantable("user", "u-1"), usd("0.003"));
        // gw-a spent 0.002 of what it held and reports the rest.
        book.count(&meta(&[("user", "u-1")]), usd("0.002"));
        book.set_held("user", "u-1", "gw-a", usd("0.002"));
        assert_eq!(book.grantable("user", "u-1"), usd("0.003"));
        assert!(book.others_hold("user", "u-1", "gw-a"));
        assert_eq!(book.spent("user", "u-1"), usd("0.002"));
        // Other values and keys are untouched.
        assert_eq!(book.grantable("user", "u-2"), usd("0.01"));
        assert_eq!(book.grantable("tenant", "t-1"), Usd::ZERO);
    }

    #[test]
    fn a_silent_gateways_holdings_of_values_return() {
        let mut book = limited("1.00");
        book.hold("user", "u-1", "gw-a", usd("0.25"));
        assert_eq!(book.held_by("gw-a"), vec![("user".into(), "u-1".into())]);
        let returned = book.expire_gateway("gw-a");
        assert_eq!(returned, vec![(("user".into(), "u-1".into()), usd("0.25"))]);
        assert_eq!(book.grantable("user", "u-1"), usd("1.00"));
    }

    #[test]
    fn at_the_cap_an_idle_value_makes_room_and_values_that_spent_never_do() {
        let mut book = limited("1.00");
        for i in 0..MAX_VALUES {
            book.count(&meta(&[("user", &format!("u-{i}"))]), usd("0.01"));
        }
        assert_eq!(book.grantable("user", "new"), Usd::ZERO, "full of spenders");
        // One value's spend is forgotten only with the period; make one idle by hand.
        book.values
            .get_mut(&("user".into(), "u-7".into()))
            .unwrap()
            .spent = Usd::ZERO;
        assert_eq!(book.grantable("user", "new"), usd("1.00"));
        book.hold("user", "new", "gw-a", usd("0.5"));
        assert_eq!(book.len(), MAX_VALUES);
        assert_eq!(book.spent("user", "u-8"), usd("0.01"), "spenders are kept");
    }

    #[test]
    fn the_ledger_round_trips_and_a_ledger_that_did_not_fit_comes_back_closed() {
        let mut book = limited("1.00");
        book.count(&meta(&[("user", "u-1")]), usd("0.30"));
        book.count(&meta(&[("user", "u-2"), ("feature", "x")]), usd("0.10"));
        let ledger = book.ledger();
        assert!(ledger[0].complete);
        let mut restored = ValueLimits::restore(&ledger);
        restored.declare(&[("user".to_owned(), usd("1.00"))]);
        assert_eq!(restored.spent("user", "u-1"), usd("0.30"));
        assert_eq!(restored.grantable("user", "u-2"), usd("0.90"));
        assert_eq!(restored.grantable("user", "u-3"), usd("1.00"));

        let mut big = limited("1.00");
        let long = "v".repeat(250);
        for i in 0..2_000 {
            big.count(&meta(&[("user", &format!("{long}{i}"))]), usd("0.01"));
        }
        let ledger = big.ledger();
        assert!(!ledger[0].complete);
        let bytes: usize = ledger[0].spent.keys().map(|k| k.len() + 16).sum();
        assert!(bytes <= PERSISTED_BYTES + 16 * ledger[0].spent.len());
        let mut restored = ValueLimits::restore(&ledger);
        restored.declare(&[("user".to_owned(), usd("1.00"))]);
        assert_eq!(restored.grantable("user", "someone-new"), Usd::ZERO);
        assert_eq!(restored.spent("user", "someone-new"), usd("1.00"));
        let listed = ledger[0].spent.keys().next().unwrap();
        assert_eq!(restored.grantable("user", listed), usd("0.99"));
        assert!(
            !restored.ledger()[0].complete,
            "stays closed until the period ends"
        );
        restored.roll_over();
        assert_eq!(restored.grantable("user", "someone-new"), usd("1.00"));
    }

    #[test]
    fn status_counts_values_at_their_limit_and_lists_the_top_spenders() {
        let mut book = limited("0.01");
        book.count(&meta(&[("user", "a")]), usd("0.01"));
        book.count(&meta(&[("user", "b")]), usd("0.004"));
        book.count(&meta(&[("feature", "f")]), usd("0.5"));
        let status = book.status();
        assert_eq!(status.len(), 1);
        assert_eq!((status[0].values, status[0].at_limit), (2, 1));
        assert_eq!(status[0].top[0].value, "a");
        assert_eq!(status[0].top[1].spent, "0.004");

        for i in 0..25 {
            book.count(
                &meta(&[("user", &format!("v-{i:02}"))]),
                usd(&format!("0.{:04}", i + 1)),
            );
        }
        let status = book.status();
        assert_eq!(
            status[0].values, 27,
            "every value tracked, not only those shown"
        );
        assert_eq!(status[0].top.len(), SHOWN_VALUES);
        assert_eq!(status[0].top[2].value, "v-24");
    }

    #[test]
    fn undeclaring_a_key_forgets_its_values() {
        let mut book = limited("0.01");
        book.count(&meta(&[("user", "a")]), usd("0.01"));
        assert!(book.declare(&[]));
        assert!(book.is_empty());
        assert!(!book.declare(&[]));
    }
}
