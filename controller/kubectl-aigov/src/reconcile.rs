//! `kubectl aigov reconcile`: the ledger against Bedrock's own records. Every model invocation
//! log record in the range is put beside the usage records the controller wrote for it (joined
//! on the request ID) and counted as one of [`Finding`]; the calls that are not plainly matched
//! are listed, so drift, recoveries and calls no budget saw can be looked into one by one.

use std::collections::{BTreeMap, HashMap};

use aigov_api::Usd;
use aigov_api::pricing::PriceBook;
use aigov_ledger::invocation_log::{InvocationLog, Stamp};
use serde::Serialize;

use crate::records::CallRecord;
use crate::table::{Style, TableBuilder, count, money};

/// What one logged call is, against the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Finding {
    /// Made through a gateway and charged from its report, with the tokens Bedrock logged.
    Matched,
    /// Charged from the gateway's report, with other token counts than Bedrock logged.
    Drift,
    /// Charged by the controller from the log: the gateway never reported it.
    Recovered,
    /// Made through a gateway and not (yet) charged: within the controller's
    /// `--invocation-log-lag`, or the controller does not read the logs.
    Missing,
    /// Not made through a gateway (no `aigov.budgets` stamp): another principal's call.
    Unstamped,
}

/// Calls and money per finding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Calls.
    pub calls: u64,
    /// Their cost: as charged where the ledger has the call, else by the price book.
    pub cost: Usd,
}

/// One call that is not plainly matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// What it is.
    pub finding: Finding,
    /// Bedrock's request ID.
    pub request_id: String,
    /// When Bedrock logged it (Unix milliseconds).
    pub timestamp_ms: i64,
    /// The model called.
    pub model: String,
    /// Who signed it.
    pub principal: String,
    /// The calling namespace, from the gateway's stamp (empty when unstamped).
    pub namespace: String,
    /// Its cost.
    pub cost: Usd,
    /// Tokens Bedrock logged (input, output, cache read, cache write).
    pub logged_tokens: [u64; 4],
    /// Tokens the ledger's usage record counts, where it has one.
    pub charged_tokens: Option<[u64; 4]>,
}

/// The reconciliation of a range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    /// Per finding.
    pub totals: BTreeMap<Finding, Totals>,
    /// Every call but the matched ones, oldest first.
    pub calls: Vec<Call>,
}

/// Reconciles `logs` with the usage `records` of the same range. `namespace` keeps the calls
/// stamped for it (unstamped calls name no namespace and are kept only without one).
pub fn reconcile(
    logs: &[InvocationLog],
    records: &[CallRecord],
    namespace: Option<&str>,
    book: &PriceBook,
) -> Reconciliation {
    let mut charged: HashMap<&str, Vec<&CallRecord>> = HashMap::new();
    for r in records {
        charged.entry(r.request_id.as_str()).or_default().push(r);
    }
    let mut out = Reconciliation::default();
    for log in logs {
        let stamp = Stamp::read(&log.metadata);
        let stamped_ns = stamp.as_ref().map(|s| s.namespace.as_str());
        if namespace.is_some() && stamped_ns != namespace {
            continue;
        }
        let ledger = charged.get(log.request_id.as_str());
        let first = ledger.and_then(|r| r.first());
        let charged_tokens = first.map(|r| {
            [
                r.input_tokens,
                r.output_tokens,
                r.cache_read_tokens,
                r.cache_write_tokens,
            ]
        });
        let finding = match (stamp.is_some(), ledger) {
            (_, Some(rs)) if rs.iter().any(|r| r.recovered) => Finding::Recovered,
            (_, Some(_)) if charged_tokens != Some(log.tokens) => Finding::Drift,
            (_, Some(_)) => Finding::Matched,
            (true, None) => Finding::Missing,
            (false, None) => Finding::Unstamped,
        };
        // Every budget is charged the same call; the call costs what one was charged.
        let cost = first.map_or_else(|| log.cost(book), |r| r.cost_usd);
        let totals = out.totals.entry(finding).or_default();
        totals.calls += 1;
        totals.cost += cost;
        if finding != Finding::Matched {
            out.calls.push(Call {
                finding,
                request_id: log.request_id.clone(),
                timestamp_ms: log.timestamp_ms,
                model: log.model_id.clone(),
                principal: log.principal.clone(),
                namespace: stamped_ns.unwrap_or_default().to_owned(),
                cost,
                logged_tokens: log.tokens,
                charged_tokens,
            });
        }
    }
    out.calls.sort_by_key(|c| c.timestamp_ms);
    out
}

fn name(finding: Finding) -> &'static str {
    match finding {
        Finding::Matched => "matched",
        Finding::Drift => "drift",
        Finding::Recovered => "recovered",
        Finding::Missing => "missing",
        Finding::Unstamped => "unstamped",
    }
}

/// The reconciliation as tables: totals per finding, then the calls that are not matched.
pub fn render(r: &Reconciliation, style: Style) -> String {
    let mut totals = TableBuilder::new(style, &["FINDING", "CALLS", "COST"]).numeric(&[1, 2]);
    for finding in [
        Finding::Matched,
        Finding::Drift,
        Finding::Recovered,
        Finding::Missing,
        Finding::Unstamped,
    ] {
        let t = r.totals.get(&finding).cloned().unwrap_or_default();
        totals.row([name(finding).to_owned(), count(t.calls), money(t.cost)]);
    }
    let mut out = totals.render();
    if !r.calls.is_empty() {
        let headers = [
            "FINDING",
            "REQUEST ID",
            "MODEL",
            "NAMESPACE",
            "PRINCIPAL",
            "COST",
        ];
        let mut calls = TableBuilder::new(style, &headers).numeric(&[5]);
        for c in &r.calls {
            calls.row([
                name(c.finding).to_owned(),
                c.request_id.clone(),
                c.model.clone(),
                c.namespace.clone(),
                c.principal.clone(),
                money(c.cost),
            ]);
        }
        out.push('\n');
        out.push_str(&calls.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::from_emf;
    use aigov_ledger::record::{UsageEvent, document};

    fn log(id: &str, stamped_for: Option<&str>, output: u64) -> InvocationLog {
        let mut metadata = BTreeMap::new();
        if let Some(ns) = stamped_for {
            metadata.insert("aigov.namespace".to_owned(), ns.to_owned());
            metadata.insert("aigov.budgets".to_owned(), format!("{ns}/daily"));
        }
        InvocationLog {
            timestamp_ms: 1_764_000_000_000,
            request_id: id.into(),
            principal: "arn:aws:sts::1:assumed-role/r/s".into(),
            operation: "Converse".into(),
            model_id: "anthropic.claude-3-haiku-20240307-v1:0".into(),
            tokens: [100, output, 0, 0],
            metadata,
        }
    }

    fn charged(id: &str, output: u64, recovered: bool) -> CallRecord {
        let event = UsageEvent {
            timestamp_ms: 1_764_000_000_000,
            namespace: "team".into(),
            budget: "daily".into(),
            model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
            cost: Usd::parse("0.000150").unwrap(),
            tokens: [100, output, 0, 0],
            request_id: id.into(),
            recovered,
            ..Default::default()
        };
        from_emf(&document(&event).to_string()).unwrap()
    }

    #[test]
    fn each_logged_call_is_matched_drift_recovered_missing_or_unstamped() {
        let logs = [
            log("m", Some("team"), 100),
            log("d", Some("team"), 100),
            log("r", Some("team"), 100),
            log("x", Some("team"), 100),
            log("u", None, 400_000),
            log("o", Some("other"), 100),
        ];
        let records = [
            charged("m", 100, false),
            charged("d", 90, false),
            charged("r", 100, true),
        ];
        let all = reconcile(&logs, &records, None, &PriceBook::default());
        let calls = |f: Finding| all.totals.get(&f).map_or(0, |t| t.calls);
        assert_eq!(calls(Finding::Matched), 1);
        assert_eq!(calls(Finding::Drift), 1);
        assert_eq!(calls(Finding::Recovered), 1);
        assert_eq!(
            calls(Finding::Missing),
            2,
            "x, and o which no budget here charged"
        );
        assert_eq!(calls(Finding::Unstamped), 1);
        // Haiku's $1.25 per million output tokens, priced from the catalog: nothing charged it.
        let unstamped = &all.totals[&Finding::Unstamped];
        assert_eq!(unstamped.cost, Usd::parse("0.500025").unwrap());
        assert_eq!(all.calls.len(), 5, "all but the matched call are listed");
        let drift = all
            .calls
            .iter()
            .find(|c| c.finding == Finding::Drift)
            .unwrap();
        assert_eq!(drift.charged_tokens, Some([100, 90, 0, 0]));

        let team = reconcile(&logs, &records, Some("team"), &PriceBook::default());
        assert_eq!(team.totals.values().map(|t| t.calls).sum::<u64>(), 4);
        let text = render(&team, Style::plain());
        assert!(text.contains("recovered"), "{text}");
        assert!(text.contains("FINDING"), "{text}");
    }
}
