//! AIBudgets in the real kube-apiserver: apply one, read its status, wait for a status.

use std::time::{Duration, Instant};

use crate::kubectl_ok;

/// Applies an AIBudget `name` in `ns` with `spec` (YAML lines indented by two spaces).
pub fn budget(ns: &str, name: &str, spec: &str) {
    kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: aigov.dev/v1alpha1\nkind: AIBudget\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}"
        )),
    );
}

/// The budget's status as JSON.
pub fn status(ns: &str, name: &str) -> serde_json::Value {
    status_of(&["aib", "-n", ns, name])
}

/// The ClusterAIBudget's status as JSON.
pub fn cluster_status(name: &str) -> serde_json::Value {
    status_of(&["caib", name])
}

/// The status of the object `kubectl get OBJECT...` names.
fn status_of(object: &[&str]) -> serde_json::Value {
    let mut args = vec!["get"];
    args.extend_from_slice(object);
    args.extend_from_slice(&["-o", "json"]);
    let out = kubectl_ok(&args, None);
    serde_json::from_str::<serde_json::Value>(&out).expect("json")["status"].clone()
}

/// Polls the budget's status until `done` holds, or panics with the last status.
pub fn wait_status(
    ns: &str,
    name: &str,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for(&format!("{ns}/{name}"), || status(ns, name), within, done)
}

/// Polls the ClusterAIBudget's status until `done` holds, or panics with the last status.
pub fn wait_cluster_status(
    name: &str,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for(name, || cluster_status(name), within, done)
}

fn wait_for(
    what: &str,
    read: impl Fn() -> serde_json::Value,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let s = read();
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "status of {what} never got there: {s:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The condition `type_` of a status.
pub fn condition(status: &serde_json::Value, type_: &str) -> serde_json::Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or_default()
}

/// The reasons and notes of the Events regarding `kind/name` in `ns`.
pub fn events(ns: &str, name: &str) -> Vec<(String, String)> {
    let out = kubectl_ok(
        &["get", "events.events.k8s.io", "-n", ns, "-o", "json"],
        None,
    );
    let list: serde_json::Value = serde_json::from_str(&out).expect("json");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == name)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["note"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// An amount rounded down to the micro-dollar, as `spec.limit` takes it (spend is exact and
/// may have more places).
pub fn micro_floor(amount: aigov_api::Usd) -> aigov_api::Usd {
    aigov_api::Usd::from_decimal(
        amount
            .as_decimal()
            .round_dp_with_strategy(6, rust_decimal::RoundingStrategy::ToZero),
    )
}

/// Sets a budget's limit to `limit` rounded down to the micro-dollar.
pub fn set_limit(ns: &str, name: &str, limit: aigov_api::Usd) {
    let patch = format!(
        r#"{{"spec":{{"limit":"{}"}}}}"#,
        micro_floor(limit).to_api_string()
    );
    kubectl_ok(
        &["patch", "aib", "-n", ns, name, "--type=merge", "-p", &patch],
        None,
    );
}

/// Waits until an Event with `reason` whose note contains `text` regards `name` in `ns`.
pub fn wait_event(ns: &str, name: &str, reason: &str, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = events(ns, name)
            .into_iter()
            .find(|(r, n)| r == reason && n.contains(text));
        if let Some((_, note)) = found {
            return note;
        }
        assert!(
            Instant::now() < deadline,
            "no {reason} Event containing {text:?} on {ns}/{name}: {:?}",
            events(ns, name)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
