//! Headroom that sits in one replica's slice while another needs it. Near a budget's limit
//! what is left is split across the replicas' slices, each part too small for a call's worst
//! case; without help every replica answers 429 while, together, they hold enough. When a
//! grant falls short of what a replica asked for, the controller recalls the budget from the
//! other replicas for [`RECALL_FOR`]: with their next exchange they give back every free part
//! (keeping what calls in flight reserve), and the replica that asked gets it on the one after;
//! the recall ends there, once that replica is granted all it asked for.
//!
//! The controller also learns what calls in flight reserve on every replica (the holdings
//! report it), so a gateway can tell a call that cannot fit in what is left even counting
//! every replica's holdings (403, the budget is spent) from one that waits for calls really
//! in flight (429).
//!
//! Pure: time is the caller's `now`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aigov_api::Usd;

/// How long a recall lasts: a few exchange intervals, enough for every replica to give back
/// and the one that asked to be granted it.
pub const RECALL_FOR: Duration = Duration::from_secs(3);

/// What one budget's figures tell one gateway about headroom elsewhere.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Advice {
    /// What calls in flight reserve on every replica, this one included.
    pub in_flight: Usd,
    /// Give every free part of the slice back with the next exchange: another replica needs it.
    pub give_back: bool,
    /// Headroom is being recalled for this replica: a short call should wait a little longer.
    pub recalling: bool,
}

#[derive(Debug, Default)]
struct BudgetHeadroom {
    reserved: HashMap<String, Usd>,
    recall: Option<(String, Instant)>,
}

/// Reservations in flight and recalls, per budget.
#[derive(Debug, Default)]
pub struct Headroom {
    budgets: HashMap<String, BudgetHeadroom>,
}

impl Headroom {
    /// Takes `gateway`'s report of what calls in flight reserve on `budget`; true when that
    /// changed.
    pub fn set_reserved(&mut self, budget: &str, gateway: &str, reserved: Usd) -> bool {
        if reserved.is_zero() && !self.budgets.contains_key(budget) {
            return false;
        }
        let entry = self.budgets.entry(budget.to_owned()).or_default();
        let before = if reserved.is_zero() {
            entry.reserved.remove(gateway)
        } else {
            entry.reserved.insert(gateway.to_owned(), reserved)
        };
        // An entry with nothing in flight and no recall is forgotten: per-value accounts come
        // and go by the thousand.
        if entry.reserved.is_empty() && entry.recall.is_none() {
            self.budgets.remove(budget);
        }
        before.unwrap_or(Usd::ZERO) != reserved
    }

    /// What calls in flight reserve on `budget`, by gateway.
    pub fn in_flight(&self, budget: &str) -> HashMap<String, Usd> {
        self.budgets
            .get(budget)
            .map(|entry| entry.reserved.clone())
            .unwrap_or_default()
    }

    /// `gateway` asked for more of `budget` than could be granted: recall it from the others,
    /// unless a recall for another replica is under way (the first to fall short is served
    /// first; the others ask again once it ends).
    pub fn short(&mut self, budget: &str, gateway: &str, now: Instant) {
        let entry = self.budgets.entry(budget.to_owned()).or_default();
        let for_another = entry
            .recall
            .as_ref()
            .is_some_and(|(by, until)| by != gateway && now < *until);
        if !for_another {
            entry.recall = Some((gateway.to_owned(), now + RECALL_FOR));
        }
    }

    /// `gateway` was granted all it asked for of `budget`: a recall made for it has done its
    /// work and ends, so the other replicas may be granted again at once.
    pub fn satisfied(&mut self, budget: &str, gateway: &str) {
        if let Some(entry) = self.budgets.get_mut(budget)
            && entry.recall.as_ref().is_some_and(|(by, _)| by == gateway)
        {
            entry.recall = None;
            if entry.reserved.is_empty() {
                self.budgets.remove(budget);
            }
        }
    }

    /// What `gateway` should know of `budget` now.
    pub fn advice(&self, budget: &str, gateway: &str, now: Instant) -> Advice {
        let Some(entry) = self.budgets.get(budget) else {
            return Advice::default();
        };
        let in_flight = entry.reserved.values().fold(Usd::ZERO, |a, b| a + *b);
        let recall = entry.recall.as_ref().filter(|(_, until)| now < *until);
        Advice {
            in_flight,
            give_back: recall.is_some_and(|(by, _)| by != gateway),
            recalling: recall.is_some_and(|(by, _)| by == gateway),
        }
    }

    /// Forgets a gateway not heard from.
    pub fn forget_gateway(&mut self, gateway: &str) {
        for entry in self.budgets.values_mut() {
            entry.reserved.remove(gateway);
            if entry.recall.as_ref().is_some_and(|(by, _)| by == gateway) {
                entry.recall = None;
            }
        }
        self.budgets
            .retain(|_, e| !e.reserved.is_empty() || e.recall.is_some());
    }

    /// Forgets a deleted budget.
    pub fn forget_budget(&mut self, budget: &str) {
        self.budgets.remove(budget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    #[test]
    fn a_short_grant_recalls_the_budget_from_the_other_replicas_for_a_few_seconds() {
        let mut headroom = Headroom::default();
        let now = Instant::now();
        assert_eq!(headroom.advice("ns/b", "g1", now), Advice::default());
        headroom.short("ns/b", "g1", now);
        let asker = headroom.advice("ns/b", "g1", now);
        assert!(asker.recalling && !asker.give_back);
        let other = headroom.advice("ns/b", "g2", now);
        assert!(other.give_back && !other.recalling);
        headroom.short("ns/b", "g2", now);
        assert!(
            headroom.advice("ns/b", "g1", now).recalling,
            "the first to fall short keeps the recall"
        );
        let later = now + RECALL_FOR;
        assert_eq!(headroom.advice("ns/b", "g2", later), Advice::default());
    }

    #[test]
    fn calls_in_flight_on_every_replica_add_up_and_a_silent_replica_stops_counting() {
        let mut headroom = Headroom::default();
        let now = Instant::now();
        headroom.set_reserved("ns/b", "g1", usd("0.06"));
        headroom.set_reserved("ns/b", "g2", usd("0.12"));
        assert_eq!(headroom.advice("ns/b", "g1", now).in_flight, usd("0.18"));
        headroom.set_reserved("ns/b", "g1", Usd::ZERO);
        headroom.forget_gateway("g2");
        assert_eq!(headroom.advice("ns/b", "g1", now).in_flight, Usd::ZERO);
        headroom.short("ns/b", "g1", now);
        headroom.forget_budget("ns/b");
        assert_eq!(headroom.advice("ns/b", "g2", now), Advice::default());
    }
}
