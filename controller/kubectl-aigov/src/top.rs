//! `kubectl aigov top`: who is spending right now. The spend rate of each workload (or, with
//! `--by KEY`, each value of a request-metadata key) over a recent window (default the last 5
//! minutes) of usage records, dearest first.

use std::collections::{BTreeMap, HashSet};

use aigov_api::Usd;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::range::TimeRange;
use crate::records::{ByKey, CallRecord, Scope};
use crate::table::{self, Style, TableBuilder};

/// What a rate is of.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum RateOf {
    /// A workload.
    Workload {
        /// The workload.
        workload: String,
    },
    /// A value of a request-metadata key (`(none)`: calls without the key).
    Value {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

impl RateOf {
    /// The workload or the value.
    pub fn name(&self) -> &str {
        match self {
            RateOf::Workload { workload } => workload,
            RateOf::Value { value, .. } => value,
        }
    }
}

/// One workload's (or value's) recent spend.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRate {
    /// The calls' namespace.
    pub namespace: String,
    /// The workload or the value.
    #[serde(flatten)]
    pub of: RateOf,
    /// Spend per hour at the window's rate.
    pub usd_per_hour: Usd,
    /// Spend in the window.
    pub spent: Usd,
    /// Calls in the window.
    pub requests: u64,
    /// Tokens in the window (all kinds).
    pub tokens: u64,
    /// The model it spent most on.
    pub top_model: String,
    /// The budgets its calls were charged to.
    pub budgets: Vec<String>,
}

/// Rates of the workloads in `scope` over `window`, dearest first (each call counted once).
pub fn rates(records: &[CallRecord], scope: &Scope, window: &TimeRange) -> Vec<WorkloadRate> {
    rates_of(records, scope, window, |r| RateOf::Workload {
        workload: r.workload.clone(),
    })
}

/// Rates per value of `by` in `scope` over `window`, dearest first (each call counted once).
pub fn rates_by(
    records: &[CallRecord],
    scope: &Scope,
    window: &TimeRange,
    by: &ByKey,
) -> Vec<WorkloadRate> {
    rates_of(records, scope, window, |r| RateOf::Value {
        key: by.key().to_owned(),
        value: by.value_of(r).to_owned(),
    })
}

/// Rates of what `of` names each record by.
fn rates_of(
    records: &[CallRecord],
    scope: &Scope,
    window: &TimeRange,
    of: impl Fn(&CallRecord) -> RateOf,
) -> Vec<WorkloadRate> {
    struct Acc {
        spent: Usd,
        requests: u64,
        tokens: u64,
        models: BTreeMap<String, Usd>,
        budgets: Vec<String>,
    }
    let mut by_workload: BTreeMap<(String, RateOf), Acc> = BTreeMap::new();
    let mut seen = HashSet::new();
    for r in records
        .iter()
        .filter(|r| window.contains(r.timestamp) && scope.admits(r))
    {
        let acc = by_workload
            // By the caller's namespace: a cap's records of a call are the same call.
            .entry((r.caller_namespace().to_owned(), of(r)))
            .or_insert_with(|| Acc {
                spent: Usd::ZERO,
                requests: 0,
                tokens: 0,
                models: BTreeMap::new(),
                budgets: Vec::new(),
            });
        if !acc.budgets.contains(&r.budget) {
            acc.budgets.push(r.budget.clone());
        }
        // A call charged to several budgets is one call.
        if r.request_id.is_empty() || seen.insert(r.request_id.as_str()) {
            acc.spent += r.cost_usd;
            acc.requests += 1;
            acc.tokens +=
                r.input_tokens + r.output_tokens + r.cache_read_tokens + r.cache_write_tokens;
            *acc.models.entry(r.model.clone()).or_insert(Usd::ZERO) += r.cost_usd;
        }
    }
    let hours = Decimal::try_from(window.hours()).unwrap_or(Decimal::ONE);
    let mut rates: Vec<WorkloadRate> = by_workload
        .into_iter()
        .map(|((namespace, of), mut acc)| {
            acc.budgets.sort();
            WorkloadRate {
                namespace,
                of,
                usd_per_hour: acc.spent.scaled(Decimal::ONE / hours),
                spent: acc.spent,
                requests: acc.requests,
                tokens: acc.tokens,
                top_model: acc
                    .models
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(m, _)| m.clone())
                    .unwrap_or_default(),
                budgets: acc.budgets,
            }
        })
        .collect();
    rates.sort_by(|a, b| {
        b.spent
            .cmp(&a.spent)
            .then((&a.namespace, &a.of).cmp(&(&b.namespace, &b.of)))
    });
    rates
}

/// The table a person reads.
pub fn render(rates: &[WorkloadRate], window: &TimeRange, style: Style) -> String {
    let mut out = format!("Spend rate over {window}\n");
    if rates.is_empty() {
        out.push_str("No Bedrock calls in this window.\n");
        return out;
    }
    let what = match &rates[0].of {
        RateOf::Workload { .. } => "WORKLOAD".to_owned(),
        RateOf::Value { key, .. } => key.to_uppercase(),
    };
    let mut t = TableBuilder::new(
        style,
        &[
            "NAMESPACE",
            &what,
            "RATE",
            "SPENT",
            "REQUESTS",
            "TOKENS",
            "TOP MODEL",
            "BUDGETS",
        ],
    )
    .numeric(&[2, 3, 4, 5]);
    for r in rates {
        t.row([
            r.namespace.clone(),
            r.of.name().to_owned(),
            table::rate(r.usd_per_hour.round_cents()),
            table::money(r.spent),
            table::count(r.requests),
            table::count(r.tokens),
            r.top_model.clone(),
            r.budgets.join(","),
        ]);
    }
    out.push_str(&t.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::tests::record;

    #[test]
    fn rates_are_per_hour_per_workload_counting_each_call_once() {
        let window = TimeRange::parse(
            "2026-11-24T10:00:00Z..2026-11-24T10:06:00Z",
            jiff::Timestamp::now(),
            "x",
        )
        .unwrap();
        let records = [
            record(
                "2026-11-24T10:01:00Z",
                "t",
                "daily",
                "chat",
                "sonnet",
                "0.30",
                "r1",
            ),
            record(
                "2026-11-24T10:01:00Z",
                "t",
                "monthly",
                "chat",
                "sonnet",
                "0.30",
                "r1",
            ),
            record(
                "2026-11-24T10:02:00Z",
                "t",
                "daily",
                "chat",
                "haiku",
                "0.10",
                "r2",
            ),
            record(
                "2026-11-24T10:03:00Z",
                "t",
                "daily",
                "batch",
                "haiku",
                "0.01",
                "r3",
            ),
            record(
                "2026-11-24T09:59:59Z",
                "t",
                "daily",
                "batch",
                "haiku",
                "9.00",
                "old",
            ),
        ];
        // The same call charged to a ClusterAIBudget: its record says `(cluster)`, its pod `t/`.
        let mut cap = records[1].clone();
        cap.namespace = "(cluster)".into();
        cap.budget = "org".into();
        let mut records = records.to_vec();
        records.push(cap);
        let rates = rates(&records, &Scope::default(), &window);
        assert_eq!(rates.len(), 2, "{rates:?}");
        assert_eq!(rates[0].of.name(), "chat");
        let json = serde_json::to_value(&rates[0]).unwrap();
        assert_eq!(
            (json["workload"].as_str(), json["namespace"].as_str()),
            (Some("chat"), Some("t"))
        );
        assert_eq!(rates[0].spent, Usd::parse("0.40").unwrap());
        // $0.40 in 6 minutes is $4.00 an hour.
        assert_eq!(rates[0].usd_per_hour, Usd::parse("4.00").unwrap());
        assert_eq!(rates[0].top_model, "sonnet");
        assert_eq!(rates[0].budgets, ["daily", "monthly", "org"]);
        assert_eq!(rates[1].requests, 1);
        let text = render(&rates, &window, Style::plain());
        assert!(
            text.lines()
                .any(|l| l.starts_with("t") && l.contains("chat") && l.contains("$4.00/h")),
            "{text}"
        );
    }
}

#[cfg(test)]
mod by_tests {
    use super::*;
    use crate::records::tests::{record, tagged};

    #[test]
    fn rates_by_a_key_group_by_its_values_with_calls_without_it_as_none() {
        let window = TimeRange::parse(
            "2026-11-24T10:00:00Z..2026-11-24T11:00:00Z",
            jiff::Timestamp::now(),
            "x",
        )
        .unwrap();
        let at = "2026-11-24T10:01:00Z";
        let records = [
            tagged(
                record(at, "t", "d", "chat", "m", "0.30", "r1"),
                &[("user", "ann")],
            ),
            tagged(
                record(at, "t", "m", "chat", "m", "0.30", "r1"),
                &[("user", "ann")],
            ),
            tagged(
                record(at, "t", "d", "batch", "m", "0.20", "r2"),
                &[("user", "ann")],
            ),
            tagged(
                record(at, "t", "d", "chat", "m", "0.45", "r3"),
                &[("user", "bob")],
            ),
            record(at, "t", "d", "chat", "m", "0.05", "r4"),
        ];
        let by = ByKey::parse("user").unwrap();
        let rates = rates_by(&records, &Scope::default(), &window, &by);
        let got: Vec<_> = rates
            .iter()
            .map(|r| (r.of.name(), r.spent.to_api_string(), r.requests))
            .collect();
        assert_eq!(
            got,
            [
                ("ann", "0.50".to_owned(), 2),
                ("bob", "0.45".to_owned(), 1),
                ("(none)", "0.05".to_owned(), 1)
            ]
        );
        let json = serde_json::to_value(&rates[0]).unwrap();
        assert_eq!(
            (json["key"].as_str(), json["value"].as_str()),
            (Some("user"), Some("ann"))
        );
        let text = render(&rates, &window, Style::plain());
        assert!(text.contains("USER"), "{text}");
    }
}
