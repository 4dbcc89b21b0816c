//! Usage records: one settled call charged to one budget, as the controller writes it to
//! CloudWatch Logs (the format is [`aigov_ledger::record`]), read back into exact figures. A call charged to two
//! budgets is two records with the same request ID; totals across budgets count it once.

use std::collections::{BTreeMap, HashSet};

use aigov_api::Usd;
use aigov_api::budget::NONE_VALUE;
use aigov_ledger::record::UsageEvent;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One call's usage against one budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// When Bedrock answered (RFC 3339, milliseconds).
    pub timestamp: Timestamp,
    /// The budget's namespace (`(cluster)` for a ClusterAIBudget's; see
    /// [`CallRecord::caller_namespace`]).
    pub namespace: String,
    /// The budget charged.
    pub budget: String,
    /// The calling workload.
    pub workload: String,
    /// The calling pod, `namespace/name`.
    pub pod: String,
    /// The model billed.
    pub model: String,
    /// The Bedrock operation.
    pub operation: String,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-read tokens.
    pub cache_read_tokens: u64,
    /// Cache-write tokens.
    pub cache_write_tokens: u64,
    /// USD, exact.
    pub cost_usd: Usd,
    /// Bedrock's request ID.
    pub request_id: String,
    /// The caller's request metadata (Converse `requestMetadata`, the InvokeModel header).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Charged by the controller from Bedrock's invocation logs: no gateway reported it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

impl CallRecord {
    /// The calling pod's namespace: the budget's for an AIBudget's record, the pod's own for a
    /// ClusterAIBudget's (whose records carry `Namespace=(cluster)`).
    pub fn caller_namespace(&self) -> &str {
        match self.pod.split_once('/') {
            Some((namespace, _)) if !namespace.is_empty() => namespace,
            _ => &self.namespace,
        }
    }
}

/// A request-metadata key reports group calls by (`--by`): any key, declared by a budget or
/// not, since the usage records carry every pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByKey(String);

impl ByKey {
    /// The key of `--by KEY`, refused unless Bedrock would accept it as a key.
    pub fn parse(key: &str) -> crate::error::Result<ByKey> {
        let chars = key.chars().count();
        if chars == 0
            || chars > aigov_api::request_metadata::MAX_KEY_CHARS
            || !key.chars().all(aigov_api::request_metadata::allowed_char)
        {
            return Err(crate::error::Error::Flag(format!(
                "--by {key:?} is not a request-metadata key: use 1 to 256 letters, digits, spaces or : _ @ $ # = / + , - . (e.g. --by feature)"
            )));
        }
        Ok(ByKey(key.to_owned()))
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.0
    }

    /// The record's value of the key, `(none)` when the call did not carry it.
    pub fn value_of<'a>(&self, record: &'a CallRecord) -> &'a str {
        record
            .metadata
            .get(&self.0)
            .map_or(NONE_VALUE, String::as_str)
    }
}

/// Which records a command looks at.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Only this namespace (None: all).
    pub namespace: Option<String>,
    /// Only this budget (within the namespace).
    pub budget: Option<String>,
}

impl Scope {
    /// Whether `record` is in scope.
    pub fn admits(&self, record: &CallRecord) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| ns == record.namespace)
            && self.budget.as_deref().is_none_or(|b| b == record.budget)
    }
}

/// Reads one EMF log event; anything that is not an aigov usage record gives None.
pub fn from_emf(message: &str) -> Option<CallRecord> {
    let event = UsageEvent::from_emf(message)?;
    let [
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
    ] = event.tokens;
    Some(CallRecord {
        timestamp: Timestamp::from_millisecond(event.timestamp_ms).ok()?,
        namespace: event.namespace,
        budget: event.budget,
        workload: event.workload,
        pod: event.pod,
        model: event.model,
        operation: event.operation,
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        cost_usd: event.cost,
        request_id: event.request_id,
        metadata: event.metadata,
        recovered: event.recovered,
    })
}

/// The records in `scope`, each call once (the first record of a request ID), oldest first.
pub fn distinct_calls<'a>(
    records: &'a [CallRecord],
    scope: &'a Scope,
) -> impl Iterator<Item = &'a CallRecord> {
    let mut seen = HashSet::new();
    records
        .iter()
        .filter(move |r| scope.admits(r))
        .filter(move |r| r.request_id.is_empty() || seen.insert(r.request_id.as_str()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aigov_ledger::record::document;

    /// A record as the controller writes it, read back.
    pub fn record(
        at: &str,
        ns: &str,
        budget: &str,
        workload: &str,
        model: &str,
        cost: &str,
        id: &str,
    ) -> CallRecord {
        let event = UsageEvent {
            timestamp_ms: at.parse::<Timestamp>().unwrap().as_millisecond(),
            namespace: ns.into(),
            budget: budget.into(),
            model: model.into(),
            cost: Usd::parse(cost).unwrap(),
            tokens: [100, 200, 300, 400],
            request_id: id.into(),
            pod: format!("{ns}/{workload}-0"),
            workload: workload.into(),
            operation: "Converse".into(),
            metadata: Default::default(),
            recovered: false,
            dimension_keys: vec![],
        };
        from_emf(&document(&event).to_string()).unwrap()
    }

    /// [`record`] with request metadata.
    pub fn tagged(mut record: CallRecord, pairs: &[(&str, &str)]) -> CallRecord {
        record.metadata = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        record
    }

    #[test]
    fn a_by_key_reads_the_value_or_none_and_refuses_what_is_no_key() {
        let by = ByKey::parse("feature").unwrap();
        let r = record("2026-11-24T10:00:00Z", "t", "d", "chat", "m", "1", "r1");
        assert_eq!(
            by.value_of(&tagged(r.clone(), &[("feature", "search")])),
            "search"
        );
        assert_eq!(by.value_of(&r), "(none)");
        let e = ByKey::parse("fea*ture").unwrap_err().to_string();
        assert!(
            e.contains("--by \"fea*ture\" is not a request-metadata key"),
            "{e}"
        );
        assert!(ByKey::parse("").is_err());
    }

    #[test]
    fn an_emf_document_reads_back_exactly() {
        let r = record(
            "2026-11-24T10:00:00.123Z",
            "team",
            "daily",
            "chat",
            "m",
            "0.000375",
            "req-1",
        );
        assert_eq!(r.cost_usd, Usd::parse("0.000375").unwrap());
        assert_eq!(r.timestamp.as_millisecond() % 1000, 123);
        assert_eq!(
            (r.workload.as_str(), r.pod.as_str()),
            ("chat", "team/chat-0")
        );
        assert_eq!((r.input_tokens, r.cache_write_tokens), (100, 400));
        assert!(from_emf("not json").is_none());
        assert!(from_emf(r#"{"_aws": {"Timestamp": 1}, "Namespace": "x"}"#).is_none());
    }

    #[test]
    fn a_call_charged_to_two_budgets_counts_once_across_budgets() {
        let records = [
            record(
                "2026-11-24T10:00:00Z",
                "team",
                "daily",
                "chat",
                "m",
                "1.00",
                "r1",
            ),
            record(
                "2026-11-24T10:00:00Z",
                "team",
                "monthly",
                "chat",
                "m",
                "1.00",
                "r1",
            ),
            record(
                "2026-11-24T10:00:01Z",
                "other",
                "daily",
                "chat",
                "m",
                "2.00",
                "r2",
            ),
        ];
        let all = Scope::default();
        assert_eq!(distinct_calls(&records, &all).count(), 2);
        let monthly = Scope {
            namespace: Some("team".into()),
            budget: Some("monthly".into()),
        };
        let only: Vec<_> = distinct_calls(&records, &monthly).collect();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].budget, "monthly");
    }
}
