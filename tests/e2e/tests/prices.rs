//! Prices a person can see before they cost anything: `kubectl aigov prices` against the real
//! kube-apiserver shows where a model's price comes from; a model nothing prices (an
//! application inference profile no AIModelPrice names) is charged the fallback and announced
//! on the budget with an `UnknownModelPriced` Warning; an AIModelPrice naming it takes over.

use std::time::Duration;

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{client_from, converse, pod, pod_ip, served_cost};
use aigov_e2e::budgets::{budget, wait_event, wait_status};
use aigov_e2e::{kubectl_aigov, kubectl_ok, namespace, unique};
use serde_json::Value;

fn prices(args: &[&str]) -> std::process::Output {
    let mut all = vec!["prices"];
    all.extend_from_slice(args);
    kubectl_aigov("/aigov/unused", &all)
        .output()
        .expect("kubectl-aigov runs")
}

fn price_json(model: &str) -> Value {
    let out = prices(&[model, "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_nothing_prices_is_shown_before_it_costs_and_announced_when_a_budget_pays_it() {
    let profile = format!(
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/{}",
        unique("p")
    );
    let before = price_json(&profile);
    assert_eq!(before["source"], "fallback", "{before:#}");
    assert_eq!(before["routing"], "application profile", "{before:#}");
    assert_eq!(
        before["flags"],
        serde_json::json!(["unknown-model"]),
        "{before:#}"
    );
    assert_eq!(
        before["rates"]["output"], "75.00",
        "Claude Opus 4's rates: {before:#}"
    );

    let ns = namespace("prices");
    budget(&ns, "team", "  limit: '50.00'\n");
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;
    let id = converse(&client, &profile, "unpriced [sim:output_tokens=200]", 300)
        .await
        .expect("served");
    let note = wait_event(&ns, "team", "UnknownModelPriced", &profile);
    assert!(note.contains("kubectl aigov prices"), "{note}");
    let (cost, _) = served_cost(&[id].into_iter().collect());
    let s = wait_status(&ns, "team", Duration::from_secs(20), |s| s["requests"] == 1);
    assert_eq!(
        s["spent"].as_str().map(|v| Usd::parse(v).unwrap()),
        Some(cost)
    );

    let name = unique("aimp");
    kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: aigov.dev/v1alpha1\nkind: AIModelPrice\nmetadata: {{name: {name}}}\n\
             spec: {{model: '{profile}', input: '1.00', output: '2.00'}}\n"
        )),
    );
    let after = price_json(&profile);
    assert_eq!(
        (after["source"].as_str(), after["sourceDetail"].as_str()),
        (Some("AIModelPrice"), Some(name.as_str())),
        "{after:#}"
    );
    let text = String::from_utf8_lossy(&prices(&[&profile]).stdout).into_owned();
    assert!(
        text.contains(&format!("Priced by:    AIModelPrice {name}")),
        "{text}"
    );
    kubectl_ok(&["delete", "aimp", &name], None);

    let bad = prices(&[&profile, "--service-tier", "turbo"]);
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("--service-tier") && said.contains("priority"),
        "{said}"
    );
}
