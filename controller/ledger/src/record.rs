//! The usage-record format: one settled call charged to one budget, as the controller writes it
//! to CloudWatch Logs in Embedded Metric Format and as `kubectl aigov` reads it back. One writer
//! ([`document`]) and one reader ([`UsageEvent::from_emf`]), so the two cannot drift apart.
//! CloudWatch extracts `CostUSD` and token metrics per `Namespace`, `Budget`, `Model`, rolled
//! up per `Namespace`, `Budget`, and per `Namespace`, `Budget`, `meta.KEY` for each key the
//! budget declares in `spec.attribution.keys` (see [`dimension_keys`]); never the request ID,
//! which stays a plain property, and never an undeclared key, whose values no one bounded.
//!
//! EMF's limits (the CloudWatch EMF specification and AWS's EMF client libraries): at most 30
//! dimensions in one dimension set, dimension names of at most 250 characters, values of 1 to
//! 1,024 ASCII characters with one that is not whitespace and no control character. A record
//! here has at most 2 + [`aigov_api::budget::MAX_ATTRIBUTION_KEYS`] (5) = 7 dimension sets of
//! at most 3 dimensions, names of at most 133 characters (`meta.` and a 128-character key).

use aigov_api::Usd;
use aigov_api::request_metadata::{RequestMetadata, STAMP_PREFIX, bounded, is_dimension_value};
use serde_json::json;

/// The CloudWatch metric namespace.
pub const METRIC_NAMESPACE: &str = "AIGov";

/// The prefix of the properties that carry the call's request metadata (`meta.feature`):
/// aigov's own properties have no `.`, so a caller's key can never overwrite one of them.
/// At most 16 pairs, keys and values at most 256 characters each
/// ([`aigov_api::request_metadata::bounded`]), so a record stays within about 8 KiB of
/// metadata whatever a workload sends.
pub const METADATA_PREFIX: &str = "meta.";

/// One settled call charged to one budget.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageEvent {
    /// Unix milliseconds.
    pub timestamp_ms: i64,
    /// The budget's namespace.
    pub namespace: String,
    /// The budget's name.
    pub budget: String,
    /// The model billed.
    pub model: String,
    /// Its cost.
    pub cost: Usd,
    /// Tokens: input, output, cache read, cache write.
    pub tokens: [u64; 4],
    /// Bedrock's request ID (a property, never a dimension).
    pub request_id: String,
    /// The calling pod, `namespace/name`.
    pub pod: String,
    /// The calling workload (see `aigov_api::budget::WorkloadSpend`).
    pub workload: String,
    /// The operation (Converse, InvokeModel, ChatCompletions, Responses, Messages,
    /// ApplyGuardrail, StartAsyncInvoke, ...).
    pub operation: String,
    /// The caller's request metadata (the gateway's `aigov.` pairs excluded).
    pub metadata: RequestMetadata,
    /// Charged from Bedrock's model invocation logs, no gateway having reported the call
    /// (property `Recovered`, present only when true).
    pub recovered: bool,
    /// The metadata keys this record is a metric of, each in a dimension set
    /// `[Namespace, Budget, meta.KEY]`: those of the budget's declared keys it carries
    /// ([`dimension_keys`]), in the order the budget declares them.
    pub dimension_keys: Vec<String>,
}

/// Which of a budget's declared attribution keys a record becomes a metric of: those it carries
/// with a value CloudWatch takes as a dimension value. The platform team declares the keys (at
/// most five), so the number of metrics they make is its choice; a key no budget declares stays
/// a plain property, however many values callers invent for it.
pub fn dimension_keys<'a>(
    declared: impl IntoIterator<Item = &'a str>,
    metadata: &RequestMetadata,
) -> Vec<String> {
    let kept = bounded(metadata);
    let mut keys: Vec<String> = Vec::new();
    for key in declared {
        let usable = kept.get(key).is_some_and(|v| is_dimension_value(v));
        if usable && !key.starts_with(STAMP_PREFIX) && !keys.iter().any(|k| k == key) {
            keys.push(key.to_owned());
        }
    }
    keys
}

/// The EMF document of one event.
pub fn document(event: &UsageEvent) -> serde_json::Value {
    let cost: f64 = event.cost.as_decimal().try_into().unwrap_or_default();
    let metadata = bounded(&event.metadata);
    let mut dimensions = vec![
        json!(["Namespace", "Budget", "Model"]),
        json!(["Namespace", "Budget"]),
    ];
    // A set naming a property the record lacks (or one CloudWatch refuses as a value) would
    // fail the record's metrics: only the keys it carries usably.
    dimensions.extend(
        event
            .dimension_keys
            .iter()
            .filter(|k| metadata.get(*k).is_some_and(|v| is_dimension_value(v)))
            .map(|k| json!(["Namespace", "Budget", format!("{METADATA_PREFIX}{k}")])),
    );
    let mut doc = json!({
        "_aws": {
            "Timestamp": event.timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": dimensions,
                "Metrics": [
                    {"Name": "CostUSD", "Unit": "None"},
                    {"Name": "InputTokens", "Unit": "Count"},
                    {"Name": "OutputTokens", "Unit": "Count"},
                    {"Name": "CacheReadTokens", "Unit": "Count"},
                    {"Name": "CacheWriteTokens", "Unit": "Count"},
                    {"Name": "Requests", "Unit": "Count"}
                ]
            }]
        },
        "Namespace": event.namespace,
        "Budget": event.budget,
        "Model": event.model,
        "CostUSD": cost,
        "CostUSDExact": event.cost.to_api_string(),
        "InputTokens": event.tokens[0],
        "OutputTokens": event.tokens[1],
        "CacheReadTokens": event.tokens[2],
        "CacheWriteTokens": event.tokens[3],
        "Requests": 1,
        "RequestId": event.request_id,
        "Pod": event.pod,
        "Workload": event.workload,
        "Operation": event.operation,
    });
    if let Some(object) = doc.as_object_mut() {
        if event.recovered {
            object.insert("Recovered".to_owned(), true.into());
        }
        for (key, value) in metadata {
            object.insert(format!("{METADATA_PREFIX}{key}"), value.into());
        }
    }
    doc
}

impl UsageEvent {
    /// Reads one EMF log event back; anything that is not an aigov usage record gives None.
    /// The exact cost is `CostUSDExact` (the float `CostUSD` is for CloudWatch's metrics).
    pub fn from_emf(message: &str) -> Option<UsageEvent> {
        let doc: serde_json::Value = serde_json::from_str(message).ok()?;
        let text = |key: &str| doc.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let count = |key: &str| doc.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
        let pod = text("Pod").unwrap_or_default();
        Some(UsageEvent {
            timestamp_ms: doc.pointer("/_aws/Timestamp")?.as_i64()?,
            namespace: text("Namespace")?,
            budget: text("Budget")?,
            workload: text("Workload")
                .or_else(|| pod.split_once('/').map(|(_, name)| name.to_owned()))
                .unwrap_or_default(),
            pod,
            model: text("Model")?,
            operation: text("Operation").unwrap_or_default(),
            tokens: [
                count("InputTokens"),
                count("OutputTokens"),
                count("CacheReadTokens"),
                count("CacheWriteTokens"),
            ],
            cost: Usd::parse(&text("CostUSDExact")?).ok()?,
            request_id: text("RequestId").unwrap_or_default(),
            recovered: doc
                .get("Recovered")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            metadata: doc
                .as_object()?
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.strip_prefix(METADATA_PREFIX)?.to_owned(),
                        v.as_str()?.to_owned(),
                    ))
                })
                .collect(),
            dimension_keys: doc
                .pointer("/_aws/CloudWatchMetrics/0/Dimensions")
                .and_then(|d| d.as_array())
                .into_iter()
                .flatten()
                .filter_map(|set| match set.as_array()?.as_slice() {
                    [ns, budget, key] if ns == "Namespace" && budget == "Budget" => {
                        Some(key.as_str()?.strip_prefix(METADATA_PREFIX)?.to_owned())
                    }
                    _ => None,
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_reads_back_as_the_event_it_was_written_from() {
        let event = UsageEvent {
            timestamp_ms: 1_764_000_000_123,
            namespace: "team".into(),
            budget: "daily".into(),
            model: "anthropic.claude-3-5-haiku-20241022-v1:0".into(),
            cost: Usd::parse("0.000375").unwrap(),
            tokens: [100, 200, 300, 400],
            request_id: "req-1".into(),
            pod: "team/chat-0".into(),
            workload: "chat".into(),
            operation: "Converse".into(),
            metadata: [("feature", "search"), ("Namespace", "forged")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            recovered: true,
            dimension_keys: vec!["feature".into()],
        };
        let doc = document(&event);
        assert_eq!(
            doc["Namespace"], "team",
            "a caller's key cannot clobber aigov's own"
        );
        assert_eq!(doc["meta.Namespace"], "forged");
        let back = UsageEvent::from_emf(&document(&event).to_string()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{event:?}"));
    }

    #[test]
    fn a_record_carries_at_most_sixteen_pairs_of_bounded_length() {
        let event = UsageEvent {
            metadata: (0..40)
                .map(|i| (format!("k{i:02}"), "v".repeat(1000)))
                .collect(),
            cost: Usd::parse("1").unwrap(),
            ..Default::default()
        };
        let doc = document(&event);
        let meta: Vec<_> = doc
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(METADATA_PREFIX))
            .collect();
        assert_eq!(meta.len(), 16);
        assert!(meta.iter().all(|(_, v)| v.as_str().unwrap().len() == 256));
    }

    #[test]
    fn a_log_line_that_is_not_a_usage_record_reads_as_none() {
        assert!(UsageEvent::from_emf("plain text").is_none());
        assert!(UsageEvent::from_emf(r#"{"_aws":{"Timestamp":1},"Namespace":"n"}"#).is_none());
    }

    #[test]
    fn the_request_id_is_a_property_never_a_dimension() {
        let doc = document(&UsageEvent {
            timestamp_ms: 1,
            namespace: "team".into(),
            budget: "chat".into(),
            model: "m".into(),
            cost: Usd::parse("0.012345").unwrap(),
            tokens: [1, 2, 3, 4],
            request_id: "req-1".into(),
            pod: "team/p".into(),
            workload: "chat".into(),
            operation: "Converse".into(),
            metadata: Default::default(),
            recovered: false,
            dimension_keys: vec![],
        });
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Namespace", "Budget", "Model"], ["Namespace", "Budget"]])
        );
        assert_eq!(doc["RequestId"], "req-1");
        assert_eq!(doc["CostUSDExact"], "0.012345");
        assert_eq!(doc["CacheReadTokens"], 3);
        assert_eq!(
            (doc["Workload"].as_str(), doc["Pod"].as_str()),
            (Some("chat"), Some("team/p"))
        );
    }

    fn pairs(list: &[(&str, &str)]) -> RequestMetadata {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_declared_key_the_record_carries_becomes_a_dimension_set_and_an_undeclared_one_stays_a_property()
     {
        let metadata = pairs(&[
            ("feature", "search"),
            ("user", "   "),
            ("tenant", ""),
            ("job", "nightly"),
        ]);
        let keys = dimension_keys(
            ["user", "feature", "region", "tenant", "feature"],
            &metadata,
        );
        assert_eq!(
            keys,
            ["feature"],
            "blank and empty values make no dimension"
        );
        let event = UsageEvent {
            namespace: "team".into(),
            budget: "chat".into(),
            cost: Usd::parse("0.5").unwrap(),
            metadata,
            dimension_keys: keys,
            ..Default::default()
        };
        let doc = document(&event);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([
                ["Namespace", "Budget", "Model"],
                ["Namespace", "Budget"],
                ["Namespace", "Budget", "meta.feature"]
            ])
        );
        assert_eq!(doc["meta.feature"], "search");
        assert_eq!(doc["meta.job"], "nightly", "undeclared: a property only");
        let back = UsageEvent::from_emf(&doc.to_string()).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn a_record_never_names_a_dimension_it_does_not_carry() {
        let doc = document(&UsageEvent {
            cost: Usd::parse("1").unwrap(),
            metadata: pairs(&[("feature", "a\tb")]),
            dimension_keys: vec!["feature".into(), "user".into()],
            ..Default::default()
        });
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Namespace", "Budget", "Model"], ["Namespace", "Budget"]])
        );
    }

    #[test]
    fn a_budget_declaring_the_most_keys_stays_within_emfs_limits() {
        let declared: Vec<String> = (0..aigov_api::budget::MAX_ATTRIBUTION_KEYS)
            .map(|i| format!("{i}{}", "k".repeat(127)))
            .collect();
        let metadata: RequestMetadata = declared
            .iter()
            .map(|k| (k.clone(), "v".repeat(256)))
            .collect();
        let event = UsageEvent {
            namespace: "team".into(),
            budget: "chat".into(),
            model: "m".into(),
            cost: Usd::parse("1").unwrap(),
            dimension_keys: dimension_keys(declared.iter().map(String::as_str), &metadata),
            metadata,
            ..Default::default()
        };
        let doc = document(&event);
        let sets = doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(sets.len(), 7);
        for set in &sets {
            let names = set.as_array().unwrap();
            assert!(names.len() <= 30, "EMF: at most 30 dimensions in a set");
            for name in names {
                let name = name.as_str().unwrap();
                assert!(name.len() <= 250, "EMF: dimension names of at most 250");
                let value = doc[name].as_str().unwrap();
                assert!((1..=1024).contains(&value.len()), "{name}");
            }
        }
    }
}
