//! Pure decisions of reconciliation: what each invocation-log record is against the ledger,
//! and the usage record that charges a recovered call. No I/O; [`super::run`] reads the logs
//! and the ledger's own records, and charges what this decides.

#[cfg(test)]
use std::collections::BTreeMap;
use std::collections::HashMap;

use aigov_api::request_metadata::STAMP_PREFIX;
use aigov_ledger::key::{self, BudgetKey};
use aigov_ledger::proto::UsageRecord;

use aigov_ledger::invocation_log::{InvocationLog, Stamp};

/// Room for this many records in one millisecond when numbering them ([`sequenced`]).
const PER_MILLISECOND: u64 = 1_000_000;

/// What one invocation-log record is, against the ledger.
#[derive(Clone, Debug, PartialEq)]
pub enum Finding {
    /// Charged to every budget the gateway stamped; `drift` when the ledger's usage record
    /// counts other tokens than Bedrock's log.
    Matched {
        /// The token counts differ.
        drift: bool,
    },
    /// Made through a gateway and missing from these budgets: charged to them now.
    Recovered(Box<UsageRecord>),
    /// No gateway stamp: another principal's call, or a gateway's call whose caller's
    /// metadata left no room for the stamp.
    Unstamped,
    /// Stamped for budgets this controller does not keep (`--watch-namespace`).
    OutOfScope,
}

/// What the ledger already holds, to match records against.
#[derive(Debug, Default)]
pub struct Ledgered {
    /// `(request ID, budget)` → tokens of the usage record written to the EMF log group: the
    /// ledger's durable journal, written once the charge is in AIBudget status.
    pub written: HashMap<(String, BudgetKey), [u64; 4]>,
}

/// Numbers `logs` for the ledger, in the order of their time then request ID: the sequence is
/// the millisecond times [`PER_MILLISECOND`] plus the rank within it. The same records read
/// again (a restart, a new leader) get the same numbers, so the ledger's watermark for
/// [`aigov_ledger::ledger::RECOVERY_GATEWAY`] counts each once.
pub fn sequenced(mut logs: Vec<InvocationLog>) -> Vec<(u64, InvocationLog)> {
    logs.sort_by(|a, b| (a.timestamp_ms, &a.request_id).cmp(&(b.timestamp_ms, &b.request_id)));
    logs.dedup_by(|a, b| a.request_id == b.request_id);
    let mut rank = 0;
    let mut previous = None;
    logs.into_iter()
        .map(|log| {
            rank = if previous == Some(log.timestamp_ms) {
                rank + 1
            } else {
                0
            };
            previous = Some(log.timestamp_ms);
            let millis = u64::try_from(log.timestamp_ms).unwrap_or(0);
            (
                millis * PER_MILLISECOND + rank.min(PER_MILLISECOND - 1),
                log,
            )
        })
        .collect()
}

/// What `log` (numbered `sequence`) is: `counted(budget, request ID)` says whether this
/// leader's ledger counted the call in memory; `scope` is the one namespace this controller
/// keeps, if it keeps one.
pub fn classify(
    sequence: u64,
    log: &InvocationLog,
    ledgered: &Ledgered,
    counted: impl Fn(&str, &str) -> bool,
    scope: Option<&str>,
) -> Finding {
    let Some(stamp) = Stamp::read(&log.metadata) else {
        return Finding::Unstamped;
    };
    let kept: Vec<&BudgetKey> = stamp
        .budgets
        .iter()
        .filter(|b| scope.is_none_or(|ns| key::parts(b).0 == Some(ns)))
        .collect();
    if kept.is_empty() {
        return Finding::OutOfScope;
    }
    let id = log.request_id.as_str();
    let written = |b: &BudgetKey| ledgered.written.get(&(id.to_owned(), b.clone()));
    let missing: Vec<BudgetKey> = kept
        .iter()
        .filter(|b| written(b).is_none() && !counted(b, id))
        .map(|b| (*b).clone())
        .collect();
    if missing.is_empty() {
        let drift = kept
            .iter()
            .filter_map(|b| written(b))
            .any(|tokens| *tokens != log.tokens);
        return Finding::Matched { drift };
    }
    Finding::Recovered(Box::new(recovered(sequence, log, &stamp, missing)))
}

/// The usage record that charges the recovered call `log` to `budgets`, as a gateway would
/// have reported it. Bedrock's log names no pod and no service tier: the pod is left empty
/// and the call priced at the Standard tier.
fn recovered(
    sequence: u64,
    log: &InvocationLog,
    stamp: &Stamp,
    budgets: Vec<BudgetKey>,
) -> UsageRecord {
    UsageRecord {
        pod_namespace: stamp.namespace.clone(),
        workload: stamp.workload.clone(),
        request_metadata: log
            .metadata
            .iter()
            .filter(|(k, _)| !k.starts_with(STAMP_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..usage_of(sequence, log, budgets)
    }
}

/// What every record charged from the log carries: the call's ID, time, model, operation
/// and tokens, charged to `budgets` as `sequence`.
pub fn usage_of(sequence: u64, log: &InvocationLog, budgets: Vec<BudgetKey>) -> UsageRecord {
    let [input, output, cache_read, cache_write] = log.tokens;
    UsageRecord {
        sequence,
        request_id: log.request_id.clone(),
        budgets,
        model: log.model_id.clone(),
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        occurred_at_ms: log.timestamp_ms,
        operation: log.operation.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(id: &str, at: i64, budgets: Option<&str>) -> InvocationLog {
        let mut metadata = BTreeMap::from([("feature".to_owned(), "search".to_owned())]);
        if let Some(b) = budgets {
            metadata.insert("aigov.budgets".into(), b.into());
            metadata.insert("aigov.namespace".into(), "team".into());
            metadata.insert("aigov.workload".into(), "chat".into());
        }
        InvocationLog {
            timestamp_ms: at,
            request_id: id.into(),
            principal: "arn:aws:sts::1:assumed-role/gw/s".into(),
            operation: "Converse".into(),
            model_id: "anthropic.claude-3-haiku-20240307-v1:0".into(),
            tokens: [10, 20, 0, 0],
            metadata,
        }
    }

    fn never(_: &str, _: &str) -> bool {
        false
    }

    #[test]
    fn records_are_numbered_alike_however_they_arrive() {
        let a = vec![log("b", 5, None), log("a", 5, None), log("c", 4, None)];
        let b = vec![
            log("a", 5, None),
            log("c", 4, None),
            log("b", 5, None),
            log("a", 5, None),
        ];
        let numbers = |logs| -> Vec<(u64, String)> {
            sequenced(logs)
                .into_iter()
                .map(|(s, l)| (s, l.request_id))
                .collect()
        };
        let expected = vec![
            (4_000_000, "c".to_owned()),
            (5_000_000, "a".to_owned()),
            (5_000_001, "b".to_owned()),
        ];
        assert_eq!(numbers(a), expected);
        assert_eq!(numbers(b), expected, "a record read twice is numbered once");
    }

    #[test]
    fn a_stamped_call_no_budget_counted_is_recovered_to_the_budgets_missing_it() {
        let call = log("r-1", 7, Some("team/chat,/org"));
        let mut ledgered = Ledgered::default();
        ledgered
            .written
            .insert(("r-1".into(), "/org".into()), [10, 20, 0, 0]);
        let Finding::Recovered(record) = classify(9, &call, &ledgered, never, None) else {
            panic!("recovered");
        };
        assert_eq!(record.budgets, ["team/chat"], "the cap has it already");
        assert_eq!((record.sequence, record.occurred_at_ms), (9, 7));
        assert_eq!((record.input_tokens, record.output_tokens), (10, 20));
        assert_eq!(
            (record.pod_namespace.as_str(), record.workload.as_str()),
            ("team", "chat")
        );
        assert_eq!(
            record.request_metadata.len(),
            1,
            "{:?}",
            record.request_metadata
        );
        assert_eq!(record.request_metadata["feature"], "search");
    }

    #[test]
    fn a_call_the_ledger_has_is_matched_and_different_tokens_are_drift() {
        let call = log("r-1", 7, Some("team/chat"));
        let mut ledgered = Ledgered::default();
        let counted_in_memory = |b: &str, id: &str| b == "team/chat" && id == "r-1";
        let found = classify(1, &call, &ledgered, counted_in_memory, None);
        assert_eq!(found, Finding::Matched { drift: false });
        ledgered
            .written
            .insert(("r-1".into(), "team/chat".into()), [10, 21, 0, 0]);
        assert_eq!(
            classify(1, &call, &ledgered, never, None),
            Finding::Matched { drift: true }
        );
    }

    #[test]
    fn unstamped_and_out_of_scope_calls_are_not_recovered() {
        let ledgered = Ledgered::default();
        let direct = log("r-1", 7, None);
        assert_eq!(
            classify(1, &direct, &ledgered, never, None),
            Finding::Unstamped
        );
        let other = log("r-2", 7, Some("other/chat,/org"));
        let found = classify(1, &other, &ledgered, never, Some("team"));
        assert_eq!(found, Finding::OutOfScope);
    }
}
