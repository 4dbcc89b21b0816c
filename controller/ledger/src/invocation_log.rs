//! One record of Bedrock's model invocation logs (the second source of truth the controller
//! reconciles its ledger with, and `kubectl aigov reconcile` shows) (`schemaType: ModelInvocationLog`), read from
//! the CloudWatch Logs event that carries it. Only what reconciliation needs: the request ID
//! the ledger knows the call by, who signed it, what it used and the gateway's stamp.

use std::collections::BTreeMap;

use aigov_api::Usd;
use aigov_api::model::resolve;
use aigov_api::pricing::{InvocationMode, PriceBook, ServiceTier, Usage};
use aigov_api::request_metadata::STAMP_PREFIX;
use jiff::Timestamp;

use crate::key::BudgetKey;
use serde_json::Value;

/// The fields of a record reconciliation reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvocationLog {
    /// The CloudWatch Logs event's time (Unix milliseconds): the order records are read in.
    pub timestamp_ms: i64,
    /// Bedrock's request ID (the client saw it as `x-amzn-RequestId`).
    pub request_id: String,
    /// The signing principal (`identity.arn`).
    pub principal: String,
    /// `Converse`, `ConverseStream`, `InvokeModel`, `InvokeModelWithResponseStream`.
    pub operation: String,
    /// The model or inference profile called.
    pub model_id: String,
    /// Tokens: input, output, cache read, cache write.
    pub tokens: [u64; 4],
    /// `requestMetadata`, the gateway's `aigov.` stamp included.
    pub metadata: BTreeMap<String, String>,
}

impl InvocationLog {
    /// What the call costs by `book` at the record's time: on demand, at the Standard tier
    /// (the log names no tier).
    pub fn cost(&self, book: &PriceBook) -> Usd {
        let [
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
        ] = self.tokens;
        let usage = Usage {
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            cache_write_1h_tokens: 0,
        };
        let at = Timestamp::from_millisecond(self.timestamp_ms).unwrap_or(Timestamp::UNIX_EPOCH);
        let mode = InvocationMode::OnDemand;
        let model = resolve(&self.model_id);
        book.cost_in(&model, &usage, mode, ServiceTier::Standard, at)
            .amount
    }

    /// Reads the record in one log event; anything else (another schema, broken JSON, no
    /// request ID) gives None.
    pub fn from_event(timestamp_ms: i64, message: &str) -> Option<InvocationLog> {
        let doc: Value = serde_json::from_str(message).ok()?;
        if doc["schemaType"] != "ModelInvocationLog" {
            return None;
        }
        let request_id = doc["requestId"].as_str().filter(|id| !id.is_empty())?;
        let count = |part: &str, field: &str| doc[part][field].as_u64().unwrap_or(0);
        let metadata = doc["requestMetadata"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Some(InvocationLog {
            timestamp_ms,
            request_id: request_id.to_owned(),
            principal: doc["identity"]["arn"].as_str().unwrap_or("").to_owned(),
            operation: doc["operation"].as_str().unwrap_or("").to_owned(),
            model_id: doc["modelId"].as_str().unwrap_or("").to_owned(),
            tokens: [
                count("input", "inputTokenCount"),
                count("output", "outputTokenCount"),
                count("input", "cacheReadInputTokenCount"),
                count("input", "cacheWriteInputTokenCount"),
            ],
            metadata,
        })
    }
}

/// The gateway's stamp on a call (`aigov.namespace`, `aigov.workload`, `aigov.budgets`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The calling pod's namespace.
    pub namespace: String,
    /// The calling workload.
    pub workload: String,
    /// The budgets the call was charged to, as far as the stamp's length allowed.
    pub budgets: Vec<BudgetKey>,
    /// Budgets the stamp had no room to name (its `,+N`).
    pub unnamed: usize,
}

impl Stamp {
    /// The stamp in `metadata`, if the gateway put one there.
    pub fn read(metadata: &BTreeMap<String, String>) -> Option<Stamp> {
        let pair = |name: &str| metadata.get(&format!("{STAMP_PREFIX}{name}"));
        let listed = pair("budgets")?;
        let mut stamp = Stamp {
            namespace: pair("namespace").cloned().unwrap_or_default(),
            workload: pair("workload").cloned().unwrap_or_default(),
            budgets: Vec::new(),
            unnamed: 0,
        };
        for item in listed.split(',').filter(|i| !i.is_empty()) {
            match item.strip_prefix('+').and_then(|n| n.parse::<usize>().ok()) {
                Some(more) => stamp.unnamed += more,
                None => stamp.budgets.push(item.to_owned()),
            }
        }
        Some(stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bedrock_record_is_read_with_its_tokens_principal_and_stamp() {
        let message = json!({
            "schemaType": "ModelInvocationLog", "schemaVersion": "1.0",
            "timestamp": "2026-12-02T10:00:00Z", "accountId": "123456789012",
            "identity": {"arn": "arn:aws:sts::123456789012:assumed-role/gw/s"},
            "requestId": "r-1", "operation": "Converse",
            "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
            "input": {"inputTokenCount": 35, "cacheReadInputTokenCount": 4, "cacheWriteInputTokenCount": 2},
            "output": {"outputTokenCount": 446},
            "requestMetadata": {"aigov.budgets": "team/chat", "feature": "search"}
        })
        .to_string();
        let log = InvocationLog::from_event(1_700, &message).expect("a record");
        assert_eq!(log.request_id, "r-1");
        assert_eq!(log.timestamp_ms, 1_700);
        assert_eq!(log.tokens, [35, 446, 4, 2]);
        assert_eq!(log.principal, "arn:aws:sts::123456789012:assumed-role/gw/s");
        assert_eq!(log.metadata["aigov.budgets"], "team/chat");
        assert_eq!(log.metadata["feature"], "search");
    }

    #[test]
    fn anything_but_an_invocation_record_with_a_request_id_is_not_one() {
        assert!(InvocationLog::from_event(0, "not json").is_none());
        assert!(
            InvocationLog::from_event(0, r#"{"schemaType": "Other", "requestId": "r"}"#).is_none()
        );
        let no_id = r#"{"schemaType": "ModelInvocationLog", "requestId": ""}"#;
        assert!(InvocationLog::from_event(0, no_id).is_none());
    }

    #[test]
    fn a_truncated_stamp_names_what_it_could_and_counts_the_rest() {
        let metadata = BTreeMap::from([("aigov.budgets".to_owned(), "a/x,a/y,+3".to_owned())]);
        let stamp = Stamp::read(&metadata).unwrap();
        assert_eq!(stamp.budgets, ["a/x", "a/y"]);
        assert_eq!(stamp.unnamed, 3);
    }
}
