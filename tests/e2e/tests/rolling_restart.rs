//! A rolling restart loses nothing. A gateway gets SIGTERM (as a kubelet sends it on every
//! rolling update) while 16 clients are in the middle of a ConverseStream: it stops accepting,
//! lets every stream finish, hands its usage records to the controller and gives its slice
//! back. Then the leading controller gets SIGTERM while calls go on through the other gateway:
//! it stops leading, releases its Lease, and the standby leads within 2 s. At the end every
//! call the Bedrock simulator served is in the AIBudget's spend exactly once and no
//! reservation is left held.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options, free_port};
use aigov_e2e::bedrock::{client_from, served, served_cost, user, worker_pods};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::{namespace, unique};
use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::types::InferenceConfiguration;

/// A profile ID no other test calls, so the simulator's record of this test is exact.
const MODEL: &str = "au.anthropic.claude-3-haiku-20240307-v1:0";
const CLIENTS: usize = 16;

/// One ConverseStream read to its end: Bedrock's request ID, or what went wrong.
async fn stream(client: &aws_sdk_bedrockruntime::Client, text: &str) -> Result<String, String> {
    let mut out = client
        .converse_stream()
        .model_id(MODEL)
        .messages(user(text))
        .inference_config(InferenceConfiguration::builder().max_tokens(200).build())
        .send()
        .await
        .map_err(|e| format!("{:?}", aws_sdk_bedrockruntime::Error::from(e)))?;
    let id = out.request_id().unwrap_or_default().to_owned();
    let mut metadata = false;
    while let Some(event) = out.stream.recv().await.map_err(|e| format!("{e:?}"))? {
        metadata |= event.is_metadata();
    }
    if metadata {
        Ok(id)
    } else {
        Err(format!("stream {id} ended without its metadata event"))
    }
}

/// One client per pod IP, calling through `gateway`.
async fn clients(ips: &[std::net::IpAddr], gateway: &str) -> Vec<aws_sdk_bedrockruntime::Client> {
    let mut clients = Vec::new();
    for ip in ips {
        clients.push(client_from(*ip, gateway, false).await);
    }
    clients
}

/// A stream from every client at once, each `chunks` output tokens `delay_ms` apart; the
/// request IDs of those that completed, and every error.
async fn streams(
    clients: Vec<aws_sdk_bedrockruntime::Client>,
    chunks: u32,
    delay_ms: u32,
) -> (HashSet<String>, Vec<String>) {
    let mut tasks = Vec::new();
    for (c, client) in clients.into_iter().enumerate() {
        let text =
            format!("stream {c} [sim:output_tokens={chunks}][sim:chunk_delay_ms={delay_ms}]");
        tasks.push(tokio::spawn(async move { stream(&client, &text).await }));
    }
    let (mut ids, mut errors) = (HashSet::new(), Vec::new());
    for task in tasks {
        match task.await.expect("client task") {
            Ok(id) => {
                ids.insert(id);
            }
            Err(e) => errors.push(e),
        }
    }
    (ids, errors)
}

fn wait_for_holder(
    ns: &str,
    lease: &str,
    within: Duration,
    holds: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let holder = kubectl_text(&[
            "get",
            "lease",
            "-n",
            ns,
            lease,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ]);
        if holds(&holder) {
            return holder;
        }
        assert!(
            Instant::now() < deadline,
            "lease {ns}/{lease} held by {holder:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// kubectl's output, or empty when it fails (the Lease may not exist yet).
fn kubectl_text(args: &[&str]) -> String {
    let out = aigov_e2e::kubectl(args, None);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_a_gateway_and_the_leader_charges_every_served_call_exactly_once() {
    let ns = namespace("rolling");
    budget(&ns, "rolling", "  limit: '100.00'\n");
    let ips = worker_pods(&ns, CLIENTS);
    let lease = unique("lease");
    let ports = [free_port(), free_port()];
    let endpoints: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let flags = ["--lease-duration", "4s", "--settle", "500ms"];
    let controller = |i: usize| Options::controller_replica(&ns, &lease, i, ports[i], &flags);
    let options = [controller(0), controller(1)];
    let identities = [options[0].identity.clone(), options[1].identity.clone()];
    let mut controllers = options.map(|o| Some(Aigov::start(o, false)));
    let first = wait_for_holder(&ns, &lease, Duration::from_secs(20), |h| !h.is_empty());
    let leader = identities
        .iter()
        .position(|i| *i == first)
        .expect("a replica leads");
    let gateway = || {
        let mut o = Options::all(&ns);
        o.role = "gateway";
        o.controller_endpoints = endpoints.clone();
        Aigov::start(o, true)
    };
    let (mut leaving, staying) = (gateway(), gateway());
    let served_before: HashSet<String> = served().into_iter().map(|s| s.request_id).collect();

    // 1. SIGTERM to a gateway while all 16 clients are mid-stream (40 events, 50 ms apart).
    let in_flight = tokio::spawn(streams(clients(&ips, &leaving.gateway).await, 40, 50));
    tokio::time::sleep(Duration::from_millis(800)).await;
    leaving.terminate();
    let (mut ids, errors) = in_flight.await.expect("clients");
    assert!(
        errors.is_empty(),
        "streams in flight at SIGTERM failed: {errors:?}"
    );
    assert_eq!(ids.len(), CLIENTS, "every stream in flight finished");
    let status = leaving
        .wait_exit(Duration::from_secs(30))
        .expect("the gateway exits");
    assert!(
        status.success(),
        "the gateway exits cleanly: {status}\n{}",
        leaving.log_text()
    );
    assert!(
        leaving
            .log_text()
            .contains("every usage record acknowledged"),
        "the gateway handed its records over before exiting:\n{}",
        leaving.log_text()
    );

    // 2. SIGTERM to the leader while streams go on through the other gateway.
    let more = tokio::spawn(streams(clients(&ips, &staying.gateway).await, 20, 50));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old = controllers[leader].take().expect("the leader runs");
    old.terminate();
    let terminated = Instant::now();
    let standby = &identities[1 - leader];
    wait_for_holder(&ns, &lease, Duration::from_secs(10), |h| {
        h == standby.as_str()
    });
    let handover = terminated.elapsed();
    let mut old = old;
    let status = old
        .wait_exit(Duration::from_secs(20))
        .expect("the old leader exits");
    assert!(
        status.success(),
        "the old leader exits cleanly: {status}\n{}",
        old.log_text()
    );
    assert!(
        handover <= Duration::from_secs(2),
        "the standby leads {handover:?} after the leader's SIGTERM (at most 2 s)"
    );
    let (later, errors) = more.await.expect("clients");
    assert!(
        errors.is_empty(),
        "streams during the leader's restart failed: {errors:?}"
    );
    ids.extend(later);

    // 3. The last gateway stops too: nothing may stay held.
    let mut staying = staying;
    staying.terminate();
    assert!(
        staying
            .wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );

    let ours: HashSet<String> = served()
        .into_iter()
        .filter(|s| s.model_id == MODEL && !served_before.contains(&s.request_id))
        .map(|s| s.request_id)
        .collect();
    assert_eq!(
        ours, ids,
        "the simulator served exactly the calls the clients saw answered"
    );
    let (expected, count) = served_cost(&ours);
    assert_eq!(count, 2 * CLIENTS);
    let s = wait_status(&ns, "rolling", Duration::from_secs(30), |s| {
        let amount = |k: &str| s[k].as_str().and_then(|v| Usd::parse(v).ok());
        amount("spent") == Some(expected) && amount("reserved").is_none_or(|r| r.is_zero())
    });
    assert_eq!(s["requests"].as_u64(), Some(2 * CLIENTS as u64), "{s:#}");
    eprintln!(
        "rolling restart: {} calls, spent {expected} exactly once; standby led {handover:?} after SIGTERM",
        ids.len()
    );
    drop(controllers);
}
