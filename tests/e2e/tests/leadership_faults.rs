//! Leadership under API-server faults, with loopback TCP proxies between the controllers (and
//! gateway) and the real kube-apiserver:
//!
//! - the leader alone cut off (its proxy frozen): it stops leading (`/readyz`, which gateways'
//!   exchanges follow) at its renewal deadline, before the standby can take the Lease, so at
//!   no instant do two replicas lead; spend stays exact through it;
//! - the whole API server frozen for 30 s: no replica can prove it leads, so nothing is granted;
//!   a fail-closed budget's calls get 503 once the gateway's slices run out (the slice TTL), a
//!   fail-open budget's calls go on, and everything is counted once when the server is back.
//!
//! Each ends checking the four promises ([`Witness::assert_kept`]): spend exact, one usage
//! record per charged call, every threshold's alert delivered once, nothing left reserved.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aigov_e2e::aigov::{Aigov, Options, free_port};
use aigov_e2e::bedrock::{HAIKU, client_from, converse, pod, pod_ip};
use aigov_e2e::budgets::budget;
use aigov_e2e::promises::Witness;
use aigov_e2e::proxy::Proxy;
use aigov_e2e::{apiserver_addr, kubeconfig_via, kubectl_ok, namespace, unique};

/// What a stream of calls saw.
#[derive(Default)]
struct Seen {
    ids: std::sync::Mutex<HashSet<String>>,
    unavailable: AtomicU64,
    /// Calls answered after the first 503.
    answered_after_503: AtomicU64,
}

/// Calls one after another until `stop`, sorting the outcomes.
fn call_until(
    client: aws_sdk_bedrockruntime::Client,
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            match converse(&client, HAIKU, "work [sim:output_tokens=20]", 32).await {
                Ok(id) => {
                    seen.ids.lock().unwrap().insert(id);
                    if seen.unavailable.load(Ordering::Relaxed) > 0 {
                        seen.answered_after_503.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(aws_sdk_bedrockruntime::Error::ServiceUnavailableException(_)) => {
                    seen.unavailable.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
}

fn holder(ns: &str, lease: &str) -> String {
    kubectl_ok(
        &[
            "get",
            "lease",
            "-n",
            ns,
            lease,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    )
}

/// Two controller replicas on `lease`, each reaching the API server through its own proxy,
/// writing usage records where `witness` reads them.
fn replicas(
    ns: &str,
    lease: &str,
    proxies: &[Proxy],
    ports: &[u16],
    witness: &Witness,
) -> Vec<Aigov> {
    let mut flags = vec!["--lease-duration", "4s", "--settle", "1s"];
    let witness_flags = witness.controller_flags();
    flags.extend(witness_flags.iter().map(String::as_str));
    (0..proxies.len())
        .map(|i| {
            let mut o = Options::controller_replica(ns, lease, i, ports[i], &flags);
            o.kubeconfig = Some(kubeconfig_via(proxies[i].addr()));
            Aigov::start(o, false)
        })
        .collect()
}

fn gateway(
    ns: &str,
    ports: &[u16],
    extra: &[&str],
    kubeconfig: Option<std::path::PathBuf>,
) -> Aigov {
    let mut o = Options::all(ns);
    o.role = "gateway";
    o.controller_endpoints = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    o.extra = extra.iter().map(|f| (*f).to_owned()).collect();
    o.kubeconfig = kubeconfig;
    Aigov::start(o, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_cut_off_from_the_api_server_stops_leading_before_another_can_take_over() {
    let ns = namespace("cut-off");
    // The cut-off leader may have had an alert accepted and been unable to record it.
    let witness = Witness::new(&ns).await.allowing_resend_after_cut_off();
    // About $0.00003 a call: 1% after roughly 330 calls, before the cut-off.
    let spec = format!("  limit: '1.00'\n{}", Witness::alerting(&[1, 2, 3, 4]));
    budget(&ns, "team", &spec);
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let lease = unique("lease");
    let proxies = [
        Proxy::start(apiserver_addr()),
        Proxy::start(apiserver_addr()),
    ];
    let ports = [free_port(), free_port()];
    let controllers = replicas(&ns, &lease, &proxies, &ports, &witness);
    let gw = gateway(&ns, &ports, &[], None);
    let client = client_from(ip, &gw.gateway, true).await;
    let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Seen::default()));
    let caller = call_until(client, stop.clone(), seen.clone());

    let started = Instant::now();
    let leader = loop {
        let h = holder(&ns, &lease);
        if !h.is_empty() {
            break h;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "nobody leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let index = (0..2)
        .find(|i| leader.starts_with(&format!("controller-{i}-")))
        .expect("a replica leads");
    proxies[index].freeze();
    let frozen = Instant::now();
    let (mut stopped, mut taken) = (None, None);
    while taken.is_none() && frozen.elapsed() < Duration::from_secs(20) {
        let leading = controllers[index]
            .get("/readyz")
            .is_some_and(|(code, _)| code == 200);
        if stopped.is_none() && !leading {
            stopped = Some(frozen.elapsed());
        }
        let h = holder(&ns, &lease);
        if !h.is_empty() && h != leader {
            taken = Some(frozen.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let taken = taken.expect("the standby takes over within 20 s");
    let stopped = stopped.expect("the cut-off leader stopped before the standby led");
    eprintln!("cut-off leader stopped after {stopped:?}; standby led after {taken:?}");
    assert!(stopped < taken, "one leader at any instant");
    proxies[index].restore();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    caller.await.expect("caller");
    let ids = seen.ids.lock().unwrap().clone();
    assert!(ids.len() >= 5, "calls went on: {}", ids.len());
    let kept = witness.assert_kept(&[("team", &ids)]).await;
    eprintln!(
        "{} calls, {} usage records, {} alerts, each once",
        kept.calls, kept.records, kept.alerts
    );
    drop(controllers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_api_server_frozen_fail_closed_gives_503_after_the_slice_ttl_and_fail_open_serves_counted_once()
 {
    let ns = namespace("frozen");
    let witness = Witness::new(&ns).await;
    // About $0.00003 a call: fail-open crosses its thresholds while the server is frozen
    // (thousands of calls), and announces them once it is back.
    let alerting = Witness::alerting(&[1, 2, 5]);
    let closed = format!("  limit: '1.00'\n  selector: {{serviceAccounts: [closed]}}\n{alerting}");
    let open = format!(
        "  limit: '1.00'\n  selector: {{serviceAccounts: [open]}}\n  enforcement: {{failMode: Open}}\n{alerting}"
    );
    budget(&ns, "closed", &closed);
    budget(&ns, "open", &open);
    let (ip_closed, ip_open) = (pod_ip(), pod_ip());
    pod(&ns, "closed-0", "closed", &[], ip_closed);
    pod(&ns, "open-0", "open", &[], ip_open);
    let lease = unique("lease");
    // Everything reaches the API server through one proxy: freezing it freezes the server.
    let api = Proxy::start(apiserver_addr());
    let ports = [free_port(), free_port()];
    // Each replica through its own proxy in front of that one (kept alive for the test).
    let own = [Proxy::start(api.addr()), Proxy::start(api.addr())];
    let _controllers = replicas(&ns, &lease, &own, &ports, &witness);
    let ttl = Duration::from_secs(5);
    let kubeconfig = Some(kubeconfig_via(api.addr()));
    let gw = gateway(&ns, &ports, &["--slice-ttl", "5s"], kubeconfig);
    let stop = Arc::new(AtomicBool::new(false));
    let (seen_closed, seen_open) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let callers = [
        call_until(
            client_from(ip_closed, &gw.gateway, false).await,
            stop.clone(),
            seen_closed.clone(),
        ),
        call_until(
            client_from(ip_open, &gw.gateway, false).await,
            stop.clone(),
            seen_open.clone(),
        ),
    ];
    let both_served = |s: &Seen| !s.ids.lock().unwrap().is_empty();
    let started = Instant::now();
    while !(both_served(&seen_closed) && both_served(&seen_open)) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "calls before the freeze"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    api.freeze();
    let open_before = seen_open.ids.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let open_during = seen_open.ids.lock().unwrap().len() - open_before;
    let unavailable = seen_closed.unavailable.load(Ordering::Relaxed);
    let leaked = seen_closed.answered_after_503.load(Ordering::Relaxed);
    eprintln!(
        "frozen 30 s: fail-closed got {unavailable} 503s; fail-open served {open_during} calls"
    );
    assert!(
        unavailable > 0,
        "fail-closed answers 503 once the slices run out ({ttl:?})"
    );
    assert_eq!(leaked, 0, "and admits nothing after that while frozen");
    assert!(open_during > 10, "fail-open keeps serving: {open_during}");

    api.restore();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.expect("caller");
    }
    let closed_ids = seen_closed.ids.lock().unwrap().clone();
    let open_ids = seen_open.ids.lock().unwrap().clone();
    let kept = witness
        .assert_kept(&[("closed", &closed_ids), ("open", &open_ids)])
        .await;
    eprintln!(
        "{} calls, {} usage records, {} alerts, each once",
        kept.calls, kept.records, kept.alerts
    );
}
