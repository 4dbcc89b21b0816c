//! A budget deleted and created again under the same name is a new budget (a new object, a new
//! UID): it starts at $0 and is charged only for calls made to it, however soon it comes back
//! (within the ledger's 30-second sweep of deleted budgets, the old spend used to reappear).

use std::collections::HashSet;
use std::time::Duration;

use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{HAIKU, client_from, converse, pod, pod_ip, served_cost};
use aigov_e2e::budgets::{budget, status, wait_status};
use aigov_e2e::{kubectl_ok, namespace};

/// The UID of the AIBudget `name` in `ns`.
fn uid(ns: &str, name: &str) -> String {
    kubectl_ok(
        &[
            "get",
            "aib",
            "-n",
            ns,
            name,
            "-o",
            "jsonpath={.metadata.uid}",
        ],
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_created_again_under_the_same_name_starts_at_zero_and_is_charged_only_its_own_calls()
 {
    let ns = namespace("recreate");
    let spec = "  limit: '10.00'\n";
    budget(&ns, "chat", spec);
    let ip = pod_ip();
    pod(&ns, "chat-0", "default", &[("app", "chat")], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;

    let first = converse(&client, HAIKU, "old budget [sim:output_tokens=400]", 500)
        .await
        .expect("a call charged to the first budget");
    let (old_cost, _) = served_cost(&HashSet::from([first]));
    wait_status(&ns, "chat", Duration::from_secs(20), |s| {
        s["spent"].as_str() == Some(old_cost.to_api_string().as_str()) && s["requests"] == 1
    });
    let old_uid = uid(&ns, "chat");

    kubectl_ok(&["delete", "aib", "-n", &ns, "chat"], None);
    budget(&ns, "chat", spec);
    let new_uid = uid(&ns, "chat");
    assert_ne!(old_uid, new_uid, "a new object");

    wait_status(&ns, "chat", Duration::from_secs(20), |s| {
        s["spent"].as_str().is_some()
    });
    // Long enough for any reconcile of the old account and the gateways' next exchanges.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = status(&ns, "chat");
    assert_eq!(
        (s["spent"].as_str(), &s["requests"]),
        (Some("0.00"), &serde_json::json!(0)),
        "the deleted budget's spend does not come back: {s:#}"
    );

    let second = converse(&client, HAIKU, "new budget [sim:output_tokens=300]", 500)
        .await
        .expect("a call charged to the new budget");
    let (new_cost, _) = served_cost(&HashSet::from([second]));
    assert_ne!(new_cost, old_cost, "the two calls are told apart by cost");
    let s = wait_status(&ns, "chat", Duration::from_secs(20), |s| {
        s["requests"] == 1 && s["spent"].as_str().is_some_and(|x| x != "0.00")
    });
    assert_eq!(
        s["spent"].as_str(),
        Some(new_cost.to_api_string().as_str()),
        "charged for its own call alone: {s:#}"
    );
    assert_eq!(uid(&ns, "chat"), new_uid);
}
