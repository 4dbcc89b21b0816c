//! Calls a gateway made and never reported, recovered from Bedrock's model invocation logs.
//!
//! Gateway A exchanges with the controller only once a minute (its slice covers its calls, so
//! nothing wakes it sooner): it serves five calls, Bedrock logs them, and A is SIGKILLed before
//! it reports one. Gateway B serves calls of its own, reported as usual. The controller reads
//! the invocation log group `--invocation-log-lag` behind the present and charges A's calls as
//! recovered, exactly once: the budget's spend is the simulator's served cost of every call to
//! the micro-dollar, `status.recovered` counts A's five, and the usage records say which were
//! recovered. Then the leader is SIGKILLed with its stored position removed, as if it had died
//! after charging a window and before storing it: the standby reads every record again and
//! charges nothing twice. The four promises hold at the end ([`Witness::assert_kept`]).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aigov_e2e::aigov::{Aigov, Options, free_port};
use aigov_e2e::bedrock::{client_from, converse, log_invocations_to, served, worker_pods};
use aigov_e2e::budgets::{budget, status, wait_status};
use aigov_e2e::promises::Witness;
use aigov_e2e::{aws_config, kubectl, kubectl_aigov, log_group, namespace, unique};

/// A model no other test calls.
const MODEL: &str = "us.anthropic.claude-3-5-haiku-20241022-v1:0";
const A_CALLS: usize = 5;
const B_CALLS: usize = 3;
/// How far behind the present the controller reads the logs.
const LAG: Duration = Duration::from_secs(10);

/// A gateway exchanging every `exchange_interval` (and whenever a call runs short). One that
/// exchanges rarely is ready only after its first routine exchange, so it is not waited for:
/// its first call wakes an exchange for its slice (the SDK retries while its caches sync).
fn gateway(ns: &str, endpoints: &[String], exchange_interval: &str, wait_ready: bool) -> Aigov {
    let mut o = Options::all(ns);
    o.role = "gateway";
    o.controller_endpoints = endpoints.to_vec();
    o.extra = vec!["--exchange-interval".into(), exchange_interval.into()];
    Aigov::start(o, wait_ready)
}

/// The request IDs of the usage records in `group` that say they were recovered.
async fn recovered_records(group: &str) -> HashSet<String> {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws_config().await);
    let out = logs.filter_log_events().log_group_name(group).send().await;
    let events = out.expect("FilterLogEvents");
    events
        .events()
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e.message()?).ok())
        .filter(|r| r["Recovered"] == true)
        .map(|r| r["RequestId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `kubectl aigov reconcile -n NS -o json` over the last hour.
fn reconcile_view(emf_group: &str, ns: &str, invocations: &str) -> serde_json::Value {
    let args = [
        "reconcile",
        "-n",
        ns,
        "--invocation-log-group",
        invocations,
        "--from",
        "-1h",
        "-o",
        "json",
    ];
    let out = kubectl_aigov(emf_group, &args)
        .output()
        .expect("kubectl-aigov runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn recovered_calls(ns: &str) -> u64 {
    status(ns, "team")["recovered"]["calls"]
        .as_u64()
        .unwrap_or(0)
}

fn holder(ns: &str, lease: &str) -> String {
    let out = kubectl(
        &[
            "get",
            "lease",
            lease,
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_a_killed_gateway_never_reported_are_charged_once_from_the_invocation_logs_across_failover()
 {
    let ns = namespace("recover");
    let witness = Witness::new(&ns).await;
    budget(
        &ns,
        "team",
        &format!("  limit: '0.05'\n{}", Witness::alerting(&[1, 2])),
    );
    let invocations = log_group("/aigov/e2e/invocations").await;
    log_invocations_to(Some(&invocations), false).await;
    let ips = worker_pods(&ns, 2);

    let lease = unique("lease");
    let ports = [free_port(), free_port()];
    let endpoints: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let mut flags: Vec<String> = [
        "--lease-duration",
        "4s",
        "--settle",
        "500ms",
        "--gateway-expiry",
        "3s",
        "--invocation-log-group",
        &invocations,
        "--invocation-log-lag",
        "10s",
        "--invocation-log-interval",
        "1s",
        "--invocation-log-lookback",
        "5m",
    ]
    .map(str::to_owned)
    .to_vec();
    flags.extend(witness.controller_flags());
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let options = [0, 1].map(|i| Options::controller_replica(&ns, &lease, i, ports[i], &flag_refs));
    let identities = [options[0].identity.clone(), options[1].identity.clone()];
    let mut controllers = options.map(|o| Some(Aigov::start(o, false)));

    let served_before: HashSet<String> = served().into_iter().map(|s| s.request_id).collect();
    let b = gateway(&ns, &endpoints, "250ms", true);
    let mut a = gateway(&ns, &endpoints, "60s", false);
    let a_client = client_from(ips[0], &a.gateway, true).await;
    let mut a_ids = HashSet::new();
    for n in 0..A_CALLS {
        let text = format!("unreported {n} [sim:output_tokens=40]");
        a_ids.insert(
            converse(&a_client, MODEL, &text, 200)
                .await
                .expect("A answers"),
        );
    }
    a.kill();
    let killed = Instant::now();
    let b_client = client_from(ips[1], &b.gateway, true).await;
    let mut b_ids = HashSet::new();
    for n in 0..B_CALLS {
        let text = format!("reported {n} [sim:output_tokens=30]");
        b_ids.insert(
            converse(&b_client, MODEL, &text, 200)
                .await
                .expect("B answers"),
        );
    }
    let answered: HashSet<String> = served()
        .into_iter()
        .map(|s| s.request_id)
        .filter(|id| !served_before.contains(id))
        .collect();
    let all: HashSet<String> = a_ids.union(&b_ids).cloned().collect();
    assert_eq!(answered, all, "the simulator served exactly these calls");

    // Before the lag has passed, only B's calls are in the budget.
    let before = wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["requests"].as_u64() == Some(B_CALLS as u64)
    });
    assert!(
        killed.elapsed() < LAG,
        "the test reached the budget before the lag ran out ({:?}): too slow to tell",
        killed.elapsed()
    );
    assert!(
        before["recovered"].is_null(),
        "nothing recovered yet: {before}"
    );
    // Past the gateway expiry A's holdings are still held: its unreported calls were reserved
    // from them, and are not charged yet.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(killed.elapsed())).await;
    let held = status(&ns, "team");
    assert!(killed.elapsed() < LAG, "the check came too late to tell");
    let silent = held["holdings"].as_array().into_iter().flatten();
    assert_eq!(
        silent.filter(|h| !h["silentSince"].is_null()).count(),
        1,
        "A's holdings wait for the recovery: {held}"
    );

    // After it, every call is charged; A's five as recovered.
    let after = wait_status(&ns, "team", Duration::from_secs(40), |s| {
        s["requests"].as_u64() == Some((A_CALLS + B_CALLS) as u64)
    });
    assert_eq!(
        after["recovered"]["calls"].as_u64(),
        Some(A_CALLS as u64),
        "{after}"
    );
    let kept = witness.assert_kept(&[("team", &all)]).await;
    assert_eq!(kept.calls, A_CALLS + B_CALLS);
    assert_eq!(
        recovered_records(&witness.group).await,
        a_ids,
        "the records say which"
    );
    let shown = reconcile_view(&witness.group, &ns, &invocations);
    let calls = |finding: &str| shown["totals"][finding]["calls"].as_u64().unwrap_or(0);
    assert_eq!(calls("recovered"), A_CALLS as u64, "{shown}");
    assert_eq!(calls("matched"), B_CALLS as u64, "{shown}");
    assert_eq!(
        calls("missing") + calls("drift") + calls("unstamped"),
        0,
        "{shown}"
    );
    let listed: HashSet<String> = shown["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["requestId"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(listed, a_ids, "the recovered calls are listed one by one");

    // The leader dies after charging, its position lost: the standby reads it all again.
    let leader = identities
        .iter()
        .position(|i| *i == holder(&ns, &lease))
        .expect("a replica leads");
    let cursor = format!("{lease}-invocation-logs");
    let deleted = kubectl(&["delete", "lease", &cursor, "-n", &ns], None);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    controllers[leader].take().expect("the leader runs").kill();
    let standby = identities[1 - leader].clone();
    let taken = Instant::now();
    while holder(&ns, &lease) != standby {
        assert!(
            taken.elapsed() < Duration::from_secs(20),
            "the standby never led"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It has read past every call once the position is stored again.
    let reread = Instant::now();
    loop {
        let out = kubectl(&["get", "lease", &cursor, "-n", &ns], None);
        if out.status.success() {
            break;
        }
        assert!(
            reread.elapsed() < Duration::from_secs(40),
            "the standby never stored a position"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        recovered_calls(&ns),
        A_CALLS as u64,
        "nothing recovered twice"
    );
    witness.assert_kept(&[("team", &all)]).await;
    log_invocations_to(None, false).await;
    drop(b);
}
