//! The Grafana dashboard under `examples/grafana/` charts what the controller really exports:
//! every metric its queries name is in the exposition of aigov's own metrics (the controller's
//! and the gateway's, registered as a `--role all` process registers them), and every label
//! they group or filter by is a label of those metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aigov_api::Usd;
use aigov_api::period::{Period, time_zone};
use aigov_controller::metrics::Metrics;
use aigov_gateway::metrics::GatewayMetrics;
use aigov_ledger::ledger::Account;
use prometheus_client::registry::Registry;
use regex::Regex;

/// Series name to its label names, from a populated registry's text exposition.
fn exported() -> BTreeMap<String, BTreeSet<String>> {
    let mut registry = Registry::with_prefix("aigov");
    let metrics = Metrics::register(&mut registry);
    let gateway = GatewayMetrics::register(&mut registry);
    let window = Period::Daily
        .window_at(jiff::Timestamp::now(), &time_zone("UTC").unwrap())
        .unwrap();
    let account = Account::restore(window, Usd::parse("5").unwrap(), None);
    metrics.budget("team", "daily", &account, Some(Usd::parse("4").unwrap()));
    let sonnet = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    metrics.spent("team/daily", sonnet, Usd::parse("0.12").unwrap());
    metrics.refused("team/daily", "exhausted");
    gateway.request("forwarded");
    gateway.overhead(Duration::from_micros(80));
    let sample = Regex::new(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? ").unwrap();
    let label = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)=""#).unwrap();
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut exposition = String::new();
    prometheus_client::encoding::text::encode(&mut exposition, &registry).unwrap();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        if let Some(c) = sample.captures(line) {
            let labels = series.entry(c[1].to_owned()).or_default();
            if let Some(l) = c.get(2) {
                labels.extend(label.captures_iter(l.as_str()).map(|m| m[1].to_owned()));
            }
        }
    }
    series
}

/// Every PromQL expression of the dashboard (panel targets and template variables).
fn queries() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/grafana/aigov-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = variable["definition"].as_str() {
            exprs.push(q.to_owned());
        }
    }
    exprs
}

#[test]
fn every_dashboard_query_names_metrics_and_labels_the_controller_exports() {
    let exported = exported();
    let metric = Regex::new(r"\baigov_[a-z0-9_]+").unwrap();
    let grouping = Regex::new(r"\bby \(([^)]*)\)").unwrap();
    let matcher = Regex::new(r"([a-z_]+)\s*=~?").unwrap();
    let variable_label = Regex::new(r", ([a-z_]+)\)$").unwrap();
    let queries = queries();
    assert!(queries.len() >= 10, "too few queries: {queries:?}");
    let mut charted = BTreeSet::new();
    for expr in &queries {
        let names: Vec<&str> = metric.find_iter(expr).map(|m| m.as_str()).collect();
        assert!(!names.is_empty(), "{expr} names no aigov metric");
        let mut labels = BTreeSet::from(["le".to_owned()]);
        for name in &names {
            let Some(l) = exported.get(*name) else {
                panic!(
                    "{expr} names {name}, which the controller does not export; it exports {:?}",
                    exported.keys()
                );
            };
            labels.extend(l.iter().cloned());
            charted.insert(name.to_string());
        }
        let used = grouping
            .captures_iter(expr)
            .flat_map(|c| {
                c[1].split(',')
                    .map(|l| l.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .chain(matcher.captures_iter(expr).map(|c| c[1].to_owned()))
            .chain(variable_label.captures_iter(expr).map(|c| c[1].to_owned()));
        for label in used {
            assert!(
                labels.contains(&label),
                "{expr} uses label {label}, which {names:?} do not carry"
            );
        }
    }
    for needed in [
        "aigov_budget_spent_usd",
        "aigov_budget_limit_usd",
        "aigov_budget_forecast_usd",
        "aigov_spent_usd_total",
        "aigov_refused_requests_total",
    ] {
        assert!(
            charted.contains(needed),
            "the dashboard does not chart {needed}"
        );
    }
}
