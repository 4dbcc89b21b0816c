//! Ready means ready. A gateway answers no call from what it does not know yet: until its pod
//! and AIBudget caches hold a first full list, `/readyz` says not ready and a call gets a
//! retryable 503 `ServiceUnavailableException` with `Retry-After`, never the non-retryable 403
//! "no running pod has IP" a legitimate pod would get from an empty cache.
//!
//! - A gateway process started while SDK clients (retries on, as every SDK has by default) call
//!   it from the moment its port accepts: every call is answered, none refused, and the budget's
//!   spend is exactly what the simulator served; the four promises hold
//!   ([`Witness::assert_kept`]).
//! - A gateway whose API server is frozen at start (a loopback proxy in front of it): its port
//!   accepts, `/readyz` is 503, a call without retries gets the typed 503 with `Retry-After: 1`;
//!   a call with retries gets through once the API server answers again, charged exactly.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{client_from, converse, pod, pod_ip, served, served_cost, worker_pods};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::promises::Witness;
use aigov_e2e::proxy::Proxy;
use aigov_e2e::{apiserver_addr, kubeconfig_via, namespace};

/// Profile IDs no other test calls, so the simulator's record of each test is exact.
const MODEL: &str = "eu.anthropic.claude-3-haiku-20240307-v1:0";
const FROZEN_MODEL: &str = "apac.anthropic.claude-3-haiku-20240307-v1:0";
const CLIENTS: usize = 8;

/// The gateway's address from its URL.
fn address(gateway: &str) -> SocketAddr {
    gateway
        .trim_start_matches("http://")
        .parse()
        .expect("127.0.0.1:PORT")
}

/// Waits until something accepts connections at `addr`.
fn wait_accepting(addr: SocketAddr, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(Instant::now() < deadline, "nothing ever listened at {addr}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A gateway process (not waited for) for the budgets of `ns`, using `controller`'s ledger.
fn gateway(ns: &str, controller: &Aigov, kubeconfig: Option<std::path::PathBuf>) -> Aigov {
    let mut options = Options::all(ns);
    options.role = "gateway";
    options.controller_endpoints = vec![controller.ledger.clone()];
    options.kubeconfig = kubeconfig;
    Aigov::start(options, false)
}

/// The value of a metric line (`name{labels} value`) on the process's `/metrics`, or 0.
fn metric(aigov: &Aigov, name: &str) -> f64 {
    let (_, text) = aigov.get("/metrics").expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The calls a budget's status counts as answered: its requests less the throttled ones (a
/// throttle, retried by the SDK, counts as a request too).
fn answered(status: &serde_json::Value) -> Option<u64> {
    let throttled = status["throttledRequests"].as_u64().unwrap_or(0);
    status["requests"].as_u64()?.checked_sub(throttled)
}

/// A controller leading for `ns` (its own process), ready and past its settling (a new leader
/// grants nothing for `--settle`), so what the tests see is the gateway's start alone; with
/// `extra` flags.
fn controller(ns: &str, extra: &[String]) -> Aigov {
    let mut options = Options::all(ns);
    options.role = "controller";
    options.extra = vec!["--settle".into(), "500ms".into()];
    options.extra.extend_from_slice(extra);
    let controller = Aigov::start(options, true);
    std::thread::sleep(Duration::from_millis(600));
    controller
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_started_while_calls_arrive_answers_every_call_and_refuses_none() {
    let ns = namespace("starting");
    let witness = Witness::new(&ns).await;
    // About $0.000007 a call: 1% after roughly 140 calls.
    let spec = format!("  limit: '0.10'\n{}", Witness::alerting(&[1, 2]));
    budget(&ns, "team", &spec);
    let ips = worker_pods(&ns, CLIENTS);
    let controller = controller(&ns, &witness.controller_flags());
    let served_before: HashSet<String> = served().into_iter().map(|s| s.request_id).collect();

    let gateway = gateway(&ns, &controller, None);
    let addr = address(&gateway.gateway);
    let ids: Arc<Mutex<HashSet<String>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for ip in ips {
        let client = client_from(ip, &gateway.gateway, true).await;
        let (ids, errors) = (ids.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            tokio::task::spawn_blocking(move || wait_accepting(addr, Duration::from_secs(30)))
                .await
                .expect("waited");
            // Calls for 3 s from the moment the port accepts, one after the other.
            let until = Instant::now() + Duration::from_secs(3);
            let mut n = 0;
            while Instant::now() < until {
                let text = format!("call {n} from {ip} [sim:output_tokens=5]");
                match converse(&client, MODEL, &text, 20).await {
                    Ok(id) => {
                        ids.lock().unwrap().insert(id);
                    }
                    Err(e) => errors.lock().unwrap().push(format!("{e:?}")),
                }
                n += 1;
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    let errors = errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "every call is answered, none refused: {errors:?}\n{}",
        gateway.log_text()
    );
    let ids = ids.lock().unwrap().clone();
    assert!(ids.len() >= CLIENTS, "calls were made: {}", ids.len());

    let ours: HashSet<String> = served()
        .into_iter()
        .filter(|s| s.model_id == MODEL && !served_before.contains(&s.request_id))
        .map(|s| s.request_id)
        .collect();
    assert_eq!(ours, ids, "the simulator served exactly the calls answered");
    let (expected, count) = served_cost(&ours);
    assert_eq!(count, ids.len());
    let status = wait_status(&ns, "team", Duration::from_secs(20), |st| {
        st["spent"].as_str().and_then(|v| Usd::parse(v).ok()) == Some(expected)
    });
    let outcomes: Vec<String> = gateway
        .get("/metrics")
        .map(|(_, text)| text)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("aigov_gateway_requests_total"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        answered(&status),
        Some(count as u64),
        "requests {} throttled {}; gateway outcomes {outcomes:?}",
        status["requests"],
        status["throttledRequests"]
    );
    eprintln!(
        "starting gateway: {} calls answered, {} tries answered not ready, {} throttled while \
         the first slice was granted; spent {expected}",
        ids.len(),
        metric(
            &gateway,
            "aigov_gateway_requests_total{outcome=\"not_ready\"}"
        ),
        status["throttledRequests"]
    );
    witness.assert_kept(&[("team", &ids)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_that_cannot_list_the_cluster_yet_answers_a_retryable_503_and_is_not_ready() {
    let ns = namespace("unsynced");
    budget(&ns, "team", "  limit: '10.00'\n");
    let ip: IpAddr = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let controller = controller(&ns, &[]);

    // The gateway reaches the API server only through a proxy, frozen before it starts.
    let proxy = Proxy::start(apiserver_addr());
    proxy.freeze();
    let gateway = gateway(&ns, &controller, Some(kubeconfig_via(proxy.addr())));
    wait_accepting(address(&gateway.gateway), Duration::from_secs(30));
    // The metrics listener (which serves /readyz) may bind a moment after the gateway's on a
    // loaded machine: wait for it to answer at all before reading what it says.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut readyz = gateway.get("/readyz");
    while readyz.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        readyz = gateway.get("/readyz");
    }
    assert!(
        readyz.as_ref().is_some_and(|(status, _)| *status == 503),
        "not ready before its caches synced: {readyz:?}"
    );

    let once = client_from(ip, &gateway.gateway, false).await;
    let error = converse(&once, FROZEN_MODEL, "early [sim:output_tokens=5]", 20)
        .await
        .expect_err("no call is served before the caches synced");
    let aws_sdk_bedrockruntime::Error::ServiceUnavailableException(e) = &error else {
        panic!("a retryable ServiceUnavailableException, not {error:?}");
    };
    assert!(
        e.message().unwrap_or_default().contains("is starting"),
        "{e:?}"
    );
    let raw = once
        .converse()
        .model_id(FROZEN_MODEL)
        .messages(aigov_e2e::bedrock::user("early [sim:output_tokens=5]"))
        .send()
        .await
        .expect_err("still starting");
    let retry_after = raw
        .raw_response()
        .and_then(|r| r.headers().get("retry-after"))
        .map(str::to_owned);
    assert_eq!(retry_after.as_deref(), Some("1"), "{raw:?}");

    // A client with retries keeps calling; the API server answers again after 1.5 s.
    let patient = client_from(ip, &gateway.gateway, true).await;
    let call = tokio::spawn(async move {
        converse(&patient, FROZEN_MODEL, "patient [sim:output_tokens=5]", 20).await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!call.is_finished(), "nothing answered while frozen");
    proxy.restore();
    let id = call
        .await
        .expect("joined")
        .expect("answered once the caches synced");
    gateway.wait_ready(Duration::from_secs(10));
    assert!(
        metric(
            &gateway,
            "aigov_gateway_requests_total{outcome=\"not_ready\"}"
        ) >= 3.0,
        "the early calls and the first tries were answered not ready"
    );
    assert_eq!(
        metric(
            &gateway,
            "aigov_gateway_requests_total{outcome=\"unknown_caller\"}"
        ),
        0.0,
        "no call was refused as an unknown caller"
    );
    let (expected, count) = served_cost(&HashSet::from([id]));
    assert_eq!(count, 1);
    wait_status(&ns, "team", Duration::from_secs(20), |st| {
        st["spent"].as_str().and_then(|v| Usd::parse(v).ok()) == Some(expected)
            && answered(st) == Some(1)
    });
}
