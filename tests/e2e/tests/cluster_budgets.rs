//! The overshoot bound and exactly-once spend at two levels: a $1.00 ClusterAIBudget over three
//! namespaces, each with its own $0.50 AIBudget, two gateway replicas and 64 clients mixing the
//! four bedrock-runtime operations. A call is admitted only if it fits in both budgets, so
//! neither may pass its limit, every call Bedrock served is charged once to its namespace's
//! budget and once to the cap, the cap's `topNamespaces` agrees with the namespaces' budgets,
//! and a call the cap refuses says it was the ClusterAIBudget.
//!
//! Cluster budgets need a cluster-wide install, so the processes here watch every namespace;
//! this is the only test in its binary so that no other cluster-wide controller runs beside it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_e2e::aigov::Aigov;
use aigov_e2e::bedrock::{client_from, runtime_call, served, served_cost, worker_pods};
use aigov_e2e::budgets::{budget, events, status, wait_cluster_status, wait_event, wait_status};
use aigov_e2e::{kubectl_ok, namespace, unique};

/// A profile ID no other test calls, so the simulator's record of this test is exact.
const MODEL: &str = "apac.anthropic.claude-3-5-sonnet-20240620-v1:0";
const CLIENTS: usize = 64;
const NAMESPACES: usize = 3;
const PODS_PER_NAMESPACE: usize = 3;

/// Applies the ClusterAIBudget `name` over the namespaces labelled `org=<org>`.
fn cluster_budget(name: &str, org: &str, limit: &str) {
    let manifest = format!(
        "apiVersion: aigov.dev/v1alpha1\nkind: ClusterAIBudget\nmetadata: {{name: {name}}}\nspec:\n  limit: '{limit}'\n  namespaceSelector: {{matchLabels: {{org: {org}}}}}\n"
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
}

/// Runs 64 clients from `pods` (namespace, address) through the two gateways until every one
/// is refused for good or 90 s pass: the request IDs Bedrock answered, by namespace.
async fn spend_it_all(pods: &[(String, IpAddr)], gateways: &[Aigov]) -> HashMap<String, String> {
    let ids: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (ns, ip) = pods[c % pods.len()].clone();
        let client = client_from(ip, &gateways[c % 2].gateway, true).await;
        let (ids, errors) = (ids.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let (mut n, mut throttles) = (c, 0);
            while Instant::now() < deadline {
                let output = 200 + ((n * 7919) % 800) as u32;
                match runtime_call(&client, MODEL, n, output).await {
                    Ok(Some(id)) => {
                        ids.lock().unwrap().insert(id, ns.clone());
                    }
                    Ok(None) => return,
                    Err(e) if e == "throttled" && throttles < 50 => {
                        throttles += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) if e == "throttled" => return,
                    Err(e) => errors.lock().unwrap().push(e),
                }
                n += CLIENTS;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "unexpected errors: {errors:?}");
    Arc::try_unwrap(ids).unwrap().into_inner().unwrap()
}

fn usd(value: &serde_json::Value) -> Usd {
    Usd::parse(value.as_str().unwrap_or("0")).expect("an amount")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_budget_over_three_namespaces_is_never_overshot_and_charged_exactly_once() {
    let org = unique("org");
    let cap = unique("cap");
    let namespaces: Vec<String> = (0..NAMESPACES).map(|_| namespace("org")).collect();
    let mut pods = Vec::new();
    for ns in &namespaces {
        kubectl_ok(&["label", "namespace", ns, &format!("org={org}")], None);
        budget(ns, "team", "  limit: '0.50'\n");
        pods.extend(
            worker_pods(ns, PODS_PER_NAMESPACE)
                .into_iter()
                .map(|ip| (ns.clone(), ip)),
        );
    }
    cluster_budget(&cap, &org, "1.00");
    let (_controller, gateways) = Aigov::cluster_wide(&namespaces[0], 2);
    wait_cluster_status(&cap, Duration::from_secs(30), |s| s["phase"] == "Active");
    let served_before: HashSet<String> = served().into_iter().map(|s| s.request_id).collect();

    let ids = spend_it_all(&pods, &gateways).await;

    let ours: HashSet<String> = served()
        .into_iter()
        .filter(|s| s.model_id == MODEL && !served_before.contains(&s.request_id))
        .map(|s| s.request_id)
        .collect();
    let seen: HashSet<String> = ids.keys().cloned().collect();
    assert_eq!(
        ours, seen,
        "the simulator served exactly the calls the clients saw answered"
    );
    let (expected, _) = served_cost(&ours);
    let cap_status = wait_cluster_status(&cap, Duration::from_secs(30), |s| {
        s["spent"].as_str().and_then(|v| Usd::parse(v).ok()) == Some(expected)
    });
    let cap_spent = usd(&cap_status["spent"]);
    assert!(
        cap_spent <= Usd::parse("1.00").unwrap(),
        "the cap overshot: {cap_spent}"
    );
    assert!(
        cap_spent > Usd::parse("0.90").unwrap(),
        "the cap was really used: {cap_spent}"
    );

    // Each namespace's budget: exactly its calls, within its own limit, and the cap agrees.
    let mut total = Usd::ZERO;
    for ns in &namespaces {
        let mine: HashSet<String> = ids
            .iter()
            .filter(|(_, n)| *n == ns)
            .map(|(id, _)| id.clone())
            .collect();
        let (cost, _) = served_cost(&mine);
        let s = wait_status(ns, "team", Duration::from_secs(30), |s| {
            s["spent"].as_str().and_then(|v| Usd::parse(v).ok()) == Some(cost)
        });
        assert!(
            usd(&s["spent"]) <= Usd::parse("0.50").unwrap(),
            "{ns} overshot: {s:#}"
        );
        let row = cap_status["topNamespaces"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["namespace"] == ns.as_str()))
            .unwrap_or_else(|| panic!("{ns} in topNamespaces: {cap_status:#}"));
        assert_eq!(usd(&row["spent"]), cost, "{ns}: {row}");
        total += cost;
    }
    assert_eq!(total, cap_spent, "every call charged once at each level");
    assert_refusals_name_the_cap(&cap, &pods, &gateways).await;
    // Other cluster-wide tests in this environment must not find it.
    kubectl_ok(&["delete", "caib", &cap], None);
    eprintln!(
        "cluster budgets: {} calls served, cap spent {cap_spent} of 1.00; {}",
        ids.len(),
        namespaces
            .iter()
            .map(|ns| format!("{ns} {}", status(ns, "team")["spent"]))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// A further call from the namespace that spent least (its own budget has at least
/// $0.50 - $1.00/3 left, more than any one call costs) is refused by the exhausted cap, in
/// words naming the ClusterAIBudget, as does the Warning Event on the pod; the cap is `Throttled` and says so in an Event.
async fn assert_refusals_name_the_cap(cap: &str, pods: &[(String, IpAddr)], gateways: &[Aigov]) {
    let (ns, ip) = pods
        .iter()
        .min_by_key(|(ns, _)| usd(&status(ns, "team")["spent"]))
        .expect("pods");
    let client = client_from(*ip, &gateways[0].gateway, false).await;
    let refused = client
        .converse()
        .model_id(MODEL)
        .messages(aigov_e2e::bedrock::user("one more [sim:output_tokens=500]"))
        .send()
        .await
        .expect_err("the cap is spent");
    let message = format!("{:?}", aws_sdk_bedrockruntime::Error::from(refused));
    assert!(
        message.contains(&format!("ClusterAIBudget {cap}")),
        "a call from {ns} refused by the cap names it: {message}"
    );
    let pod = kubectl_ok(
        &[
            "get",
            "pods",
            "-n",
            ns,
            "-o",
            &format!("jsonpath={{.items[?(@.status.podIP==\"{ip}\")].metadata.name}}"),
        ],
        None,
    );
    // The refused pod's Warning names the cap too (`kubectl describe pod` shows why).
    wait_event(
        ns,
        &pod,
        "BudgetExhausted",
        &format!("ClusterAIBudget {cap}"),
    );
    let s = wait_cluster_status(cap, Duration::from_secs(30), |s| s["phase"] == "Throttled");
    assert!(s["throttledRequests"].as_u64().unwrap_or(0) > 0, "{s:#}");
    let told = events("default", cap);
    assert!(
        told.iter().any(|(reason, _)| reason == "BudgetExhausted"),
        "the cap's Events (in namespace default, as for any cluster-scoped object): {told:?}"
    );
}
