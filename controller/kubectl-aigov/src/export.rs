//! `kubectl aigov export`: the usage records of a time range as CSV (one row per call and
//! budget, exact dollars) or JSON, for finance and for anything a table cannot answer.

use serde::Serialize;

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

/// A CSV row: the record with its timestamp in RFC 3339 (milliseconds, UTC).
#[derive(Serialize)]
struct CsvRow<'a> {
    timestamp: String,
    namespace: &'a str,
    budget: &'a str,
    workload: &'a str,
    pod: &'a str,
    model: &'a str,
    operation: &'a str,
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    cost_usd: String,
    request_id: &'a str,
}

/// CSV with a header row.
pub fn csv(records: &[CallRecord]) -> Result<String> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    for r in records {
        writer
            .serialize(CsvRow {
                timestamp: r.timestamp.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                namespace: &r.namespace,
                budget: &r.budget,
                workload: &r.workload,
                pod: &r.pod,
                model: &r.model,
                operation: &r.operation,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                cache_read_tokens: r.cache_read_tokens,
                cache_write_tokens: r.cache_write_tokens,
                cost_usd: r.cost_usd.to_api_string(),
                request_id: &r.request_id,
            })
            .map_err(|e| Error::Csv(e.to_string()))?;
    }
    if records.is_empty() {
        // A header even with no rows, so a spreadsheet or a script sees the columns.
        return Ok("timestamp,namespace,budget,workload,pod,model,operation,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,cost_usd,request_id\n".to_owned());
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
}
