//! Usage records (EMF, [`crate::record`]) written exactly once, from what the ledger has
//! persisted.
//!
//! A charge's record is staged when the ledger counts it, handed to the writer only once the
//! AIBudget status that counts it is written (so a leader that dies first leaves nothing
//! written that its successor will count and write again), and the gateway's record is
//! acknowledged only once its usage records are written (so a leader that dies first leaves
//! the gateway to re-send it). A re-sent record the new leader finds already counted by the
//! previous one (within the watermark its account was restored with) is **in doubt**: the
//! previous leader may have written its usage record between the write and the
//! acknowledgement; the writer looks for it in the log group before writing it.
//!
//! Pure: the writer (I/O) reports what it wrote with [`UsageOutbox::written`].

use std::collections::{BTreeMap, HashMap};

use crate::ledger::BudgetKey;
use crate::record::UsageEvent;

/// One usage record to write, and the gateway record it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    /// The gateway that sent the record.
    pub gateway: String,
    /// The record's sequence at that gateway.
    pub sequence: u64,
    /// The budget charged.
    pub budget: BudgetKey,
    /// The usage record.
    pub event: UsageEvent,
    /// A previous leader counted the call and may have written this already.
    pub in_doubt: bool,
}

/// Staged and unwritten usage records.
#[derive(Debug, Default)]
pub struct UsageOutbox {
    staged: Vec<Outgoing>,
    /// Per gateway: sequences with usage records not yet written, and how many.
    unwritten: HashMap<String, BTreeMap<u64, u32>>,
}

impl UsageOutbox {
    /// Stages a usage record; it goes out once [`UsageOutbox::take_ready`] finds it persisted.
    pub fn stage(&mut self, outgoing: Outgoing) {
        let pending = self.unwritten.entry(outgoing.gateway.clone()).or_default();
        *pending.entry(outgoing.sequence).or_default() += 1;
        self.staged.push(outgoing);
    }

    /// The staged records whose status is written (`persisted(budget, gateway)` is the highest
    /// sequence of that gateway the budget's status holds; None for a budget no longer known,
    /// whose records go out as they are), removed from the stage, oldest first. Records in
    /// doubt were persisted by the previous leader.
    pub fn take_ready(&mut self, persisted: impl Fn(&str, &str) -> Option<u64>) -> Vec<Outgoing> {
        let (ready, waiting) =
            std::mem::take(&mut self.staged)
                .into_iter()
                .partition(|o: &Outgoing| {
                    o.in_doubt
                        || persisted(&o.budget, &o.gateway)
                            .is_none_or(|through| through >= o.sequence)
                });
        self.staged = waiting;
        ready
    }

    /// The writer wrote (or, past its bounds, gave up on) the usage record of `sequence` from
    /// `gateway`.
    pub fn written(&mut self, gateway: &str, sequence: u64) {
        if let Some(pending) = self.unwritten.get_mut(gateway) {
            if let Some(count) = pending.get_mut(&sequence) {
                *count -= 1;
                if *count == 0 {
                    pending.remove(&sequence);
                }
            }
            if pending.is_empty() {
                self.unwritten.remove(gateway);
            }
        }
    }

    /// The highest sequence of `gateway` that may be acknowledged as far as usage records go:
    /// just below its oldest unwritten one (None: nothing holds it back).
    pub fn acknowledgeable(&self, gateway: &str) -> Option<u64> {
        let oldest = self.unwritten.get(gateway)?.keys().next()?;
        Some(oldest.saturating_sub(1))
    }

    /// Forgets a gateway that has not been heard from (its records will never be re-sent).
    pub fn forget_gateway(&mut self, gateway: &str) {
        self.unwritten.remove(gateway);
    }

    /// Usage records staged or being written.
    pub fn len(&self) -> usize {
        self.unwritten
            .values()
            .flat_map(BTreeMap::values)
            .sum::<u32>() as usize
    }

    /// True when nothing is staged or being written.
    pub fn is_empty(&self) -> bool {
        self.unwritten.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(gateway: &str, sequence: u64, budget: &str, in_doubt: bool) -> Outgoing {
        Outgoing {
            gateway: gateway.into(),
            sequence,
            budget: budget.into(),
            event: UsageEvent::default(),
            in_doubt,
        }
    }

    #[test]
    fn a_usage_record_goes_out_only_once_its_status_is_written_and_holds_the_ack_until_written() {
        let mut outbox = UsageOutbox::default();
        outbox.stage(outgoing("g1", 1, "ns/a", false));
        outbox.stage(outgoing("g1", 1, "ns/b", false));
        outbox.stage(outgoing("g1", 2, "ns/a", false));
        assert_eq!(outbox.acknowledgeable("g1"), Some(0));
        let persisted = |budget: &str, _: &str| Some(if budget == "ns/a" { 2 } else { 0 });
        let ready = outbox.take_ready(persisted);
        assert_eq!(ready.len(), 2, "ns/b's status is not written yet");
        assert!(ready.iter().all(|o| o.budget == "ns/a"));
        outbox.written("g1", 1);
        outbox.written("g1", 2);
        assert_eq!(
            outbox.acknowledgeable("g1"),
            Some(0),
            "ns/b's record of 1 is not"
        );
        let ready = outbox.take_ready(|_, _| Some(2));
        assert_eq!(ready, vec![outgoing("g1", 1, "ns/b", false)]);
        outbox.written("g1", 1);
        assert_eq!(outbox.acknowledgeable("g1"), None);
        assert!(outbox.is_empty());
    }

    #[test]
    fn records_in_doubt_and_of_deleted_budgets_go_out_at_once() {
        let mut outbox = UsageOutbox::default();
        outbox.stage(outgoing("g1", 5, "ns/a", true));
        outbox.stage(outgoing("g2", 1, "ns/gone", false));
        let ready = outbox.take_ready(|budget, _| (budget == "ns/a").then_some(0));
        assert_eq!(ready.len(), 2);
        assert_eq!(outbox.len(), 2, "written only when the writer says so");
        outbox.forget_gateway("g2");
        assert_eq!(outbox.acknowledgeable("g1"), Some(4));
    }
}
