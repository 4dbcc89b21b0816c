//! aigov's metrics through a real Prometheus (Debian's package): the recommended alerting rules
//! (`examples/prometheus/aigov-rules.yaml`) pass `promtool check rules` and their unit tests;
//! Prometheus scrapes a running controller and gateway while real SDK calls spend a budget to
//! its limit, every query of the Grafana dashboard (`examples/grafana/aigov-dashboard.json`)
//! returns series with the labels its panel uses, and the rules load and put the budget's
//! at-limit alert in motion.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aigov_e2e::aigov::Aigov;
use aigov_e2e::bedrock::{HAIKU, client_from, converse, pod, pod_ip};
use aigov_e2e::budgets::budget;
use aigov_e2e::namespace;
use aigov_e2e::prometheus::{Prometheus, promtool};

fn examples(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(dir)
}

#[test]
fn the_recommended_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = examples("prometheus");
    for args in [
        &["check", "rules", "aigov-rules.yaml"][..],
        &["test", "rules", "aigov-rules.test.yaml"][..],
    ] {
        let out = promtool(&dir, args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {args:?}:\n{text}");
        assert!(text.contains("SUCCESS"), "promtool {args:?}:\n{text}");
    }
}

/// Every query of the dashboard, with Grafana's variables filled in for `ns`.
fn dashboard_queries(ns: &str) -> Vec<(String, String)> {
    let path = examples("grafana").join("aigov-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the dashboard")).expect("JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("an expr");
            let expr = expr
                .replace("$namespace", ns)
                .replace("$budget", ".*")
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h");
            queries.push((panel["title"].as_str().unwrap_or("").to_owned(), expr));
        }
    }
    queries
}

/// The labels each panel's series must carry (what its legend and grouping use).
fn labels_of(title: &str) -> &'static [&'static str] {
    match title {
        "Refused calls" => &["namespace", "budget", "reason"],
        "Top models" => &["model"],
        "Gateway overhead (p50, p99)" => &[],
        _ => &["namespace", "budget"],
    }
}

/// Calls through the gateway until the budget refuses one as exhausted; the calls answered.
async fn spend_to_the_limit(ns: &str, gateway: &str) -> usize {
    let ip = pod_ip();
    pod(ns, "app", "default", &[], ip);
    let client = client_from(ip, gateway, false).await;
    for n in 0..200 {
        let text = format!("call {n} [sim:output_tokens=400]");
        match converse(&client, HAIKU, &text, 400).await {
            Ok(_) => {}
            Err(aws_sdk_bedrockruntime::Error::AccessDeniedException(_)) => return n,
            Err(aws_sdk_bedrockruntime::Error::ThrottlingException(_)) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("call {n}: {e:?}"),
        }
    }
    panic!("the budget never refused a call as exhausted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dashboard_query_returns_series_with_its_labels_and_the_rules_evaluate() {
    let ns = namespace("prometheus");
    // About $0.0005 a call: the limit is reached after a few calls.
    budget(&ns, "team", "  limit: '0.004'\n");
    let (controller, gateways) = Aigov::controller_and_gateways(&ns, 1, &[]);
    let jobs = [
        (
            "aigov-controller",
            format!("127.0.0.1:{}", controller.metrics_port),
        ),
        (
            "aigov-gateway",
            format!("127.0.0.1:{}", gateways[0].metrics_port),
        ),
    ];
    let prometheus = Prometheus::start(&jobs, &[examples("prometheus").join("aigov-rules.yaml")]);
    prometheus.wait_targets_up(Duration::from_secs(30));
    let answered = spend_to_the_limit(&ns, &gateways[0].gateway).await;
    assert!(
        answered >= 2,
        "calls were answered before the limit: {answered}"
    );

    for (title, expr) in dashboard_queries(&ns) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let series = loop {
            let series = prometheus.query(&expr);
            let values_are_numbers = series
                .iter()
                .all(|s| s["value"][1].as_str().is_some_and(|v| v != "NaN"));
            if !series.is_empty() && values_are_numbers {
                break series;
            }
            assert!(
                Instant::now() < deadline,
                "{title}: `{expr}` returned {series:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        for s in &series {
            for label in labels_of(&title) {
                assert!(s["metric"][label].is_string(), "{title}: no {label} in {s}");
            }
            if s["metric"].get("namespace").is_some() {
                assert_eq!(s["metric"]["namespace"], ns.as_str(), "{title}: {s}");
            }
        }
        if title == "Refused calls" {
            assert!(
                series.iter().any(|s| s["metric"]["reason"] == "exhausted"),
                "{series:?}"
            );
        }
    }

    let rules = prometheus.api("/api/v1/rules", &[]).expect("rules");
    let loaded: Vec<&serde_json::Value> = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(loaded.len(), 11, "{rules}");
    for rule in &loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = prometheus.api("/api/v1/alerts", &[]).expect("alerts");
        let at_limit = alerts["alerts"].as_array().into_iter().flatten().any(|a| {
            a["labels"]["alertname"] == "AIGovBudgetAtLimit"
                && a["labels"]["namespace"] == ns.as_str()
                && a["labels"]["budget"] == "team"
        });
        if at_limit {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "AIGovBudgetAtLimit never pending: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
