//! `kubectl aigov export`: the usage records of a time range as CSV (one row per call and
//! budget, exact dollars) or JSON, for finance and for anything a table cannot answer.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::range::TimeRange;
use crate::records::{CallRecord, Scope};

/// The records of `scope` in `range`, oldest first.
pub fn select(records: &[CallRecord], scope: &Scope, range: &TimeRange) -> Vec<CallRecord> {
    let mut rows: Vec<CallRecord> = records
        .iter()
        .filter(|r| range.contains(r.timestamp) && scope.admits(r))
        .cloned()
        .collect();
    rows.sort_by(|a, b| {
        (a.timestamp, &a.request_id, &a.budget).cmp(&(b.timestamp, &b.request_id, &b.budget))
    });
    rows
}

/// The columns every export has, before the metadata's.
const COLUMNS: [&str; 13] = [
    "timestamp",
    "namespace",
    "budget",
    "workload",
    "pod",
    "model",
    "operation",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "request_id",
];

/// The prefix of the metadata columns (`meta.feature`), as in the usage records.
const METADATA_COLUMN_PREFIX: &str = aigov_ledger::record::METADATA_PREFIX;

/// CSV with a header row: the fixed columns, then one `meta.KEY` column per request-metadata
/// key any of the rows carries (sorted; empty where a call did not carry it). The timestamp is
/// RFC 3339 in UTC with milliseconds, dollars exact.
pub fn csv(records: &[CallRecord]) -> Result<String> {
    let keys: BTreeSet<&str> = records
        .iter()
        .flat_map(|r| r.metadata.keys().map(String::as_str))
        .collect();
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    let header = COLUMNS
        .iter()
        .map(|c| (*c).to_owned())
        .chain(keys.iter().map(|k| format!("{METADATA_COLUMN_PREFIX}{k}")));
    let fail = |e: ::csv::Error| Error::Csv(e.to_string());
    writer.write_record(header).map_err(fail)?;
    for r in records {
        let fixed = [
            r.timestamp.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            r.namespace.clone(),
            r.budget.clone(),
            r.workload.clone(),
            r.pod.clone(),
            r.model.clone(),
            r.operation.clone(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cache_read_tokens.to_string(),
            r.cache_write_tokens.to_string(),
            r.cost_usd.to_api_string(),
            r.request_id.clone(),
        ];
        let metadata = keys
            .iter()
            .map(|k| r.metadata.get(*k).cloned().unwrap_or_default());
        writer
            .write_record(fixed.into_iter().chain(metadata))
            .map_err(fail)?;
    }
    let bytes = writer.into_inner().map_err(|e| Error::Csv(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| Error::Csv(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::tests::record;

    #[test]
    fn csv_has_a_header_and_exact_dollars_and_keeps_commas_quoted() {
        let range =
            TimeRange::parse("2026-11-24..2026-11-25", jiff::Timestamp::now(), "x").unwrap();
        let records = [
            record(
                "2026-11-24T10:00:00.5Z",
                "t",
                "d",
                "chat,v2",
                "m",
                "0.000375",
                "r1",
            ),
            record("2026-11-23T10:00:00Z", "t", "d", "chat", "m", "1.00", "old"),
        ];
        let rows = select(&records, &Scope::default(), &range);
        assert_eq!(rows.len(), 1);
        let text = csv(&rows).unwrap();
        let mut lines = text.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("timestamp,namespace,budget,workload,pod,model")
        );
        assert_eq!(
            lines.next().unwrap(),
            "2026-11-24T10:00:00.500Z,t,d,\"chat,v2\",\"t/chat,v2-0\",m,Converse,100,200,300,400,0.000375,r1"
        );
        assert!(csv(&[]).unwrap().starts_with("timestamp,"));
    }

    #[test]
    fn metadata_keys_become_columns_empty_where_a_call_lacks_them() {
        use crate::records::tests::tagged;
        let at = "2026-11-24T10:00:00Z";
        let rows = [
            tagged(
                record(at, "t", "d", "chat", "m", "1.00", "r1"),
                &[("feature", "search"), ("user", "a,b")],
            ),
            tagged(
                record(at, "t", "d", "chat", "m", "2.00", "r2"),
                &[("tenant", "acme")],
            ),
        ];
        let text = csv(&rows).unwrap();
        let mut lines = text.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .ends_with(",request_id,meta.feature,meta.tenant,meta.user")
        );
        assert!(lines.next().unwrap().ends_with(",r1,search,,\"a,b\""));
        assert!(lines.next().unwrap().ends_with(",r2,,acme,"));
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["metadata"]["feature"], "search");
    }
}
