//! `softLimitRequestsPerMinute` caps the budget as a whole, across gateway replicas: two
//! gateways, real SDK clients on both, a budget past its soft limit at 120 requests a minute.
//! With one token bucket per replica (before), the budget got twice its rate; now each replica
//! fills its bucket at its share, set by the controller from the calls each replica sees, so
//! the two together admit the rate; and when all traffic moves to one replica, that replica
//! gets nearly the whole rate within seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aigov_api::Usd;
use aigov_e2e::aigov::Aigov;
use aigov_e2e::bedrock::{HAIKU, client_from, converse, worker_pods};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::namespace;

/// Two a second, for the budget as a whole.
const PER_MINUTE: u64 = 120;
const CLIENTS_PER_GATEWAY: usize = 3;

/// Clients that call through `gateway` as fast as the budget lets them while `running`,
/// pausing briefly after a 429, counting the calls admitted.
async fn hammer(
    ips: &[std::net::IpAddr],
    gateway: &str,
    running: &Arc<AtomicBool>,
    admitted: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    let mut tasks = Vec::new();
    for ip in ips {
        let client = client_from(*ip, gateway, false).await;
        let (running, admitted) = (running.clone(), admitted.clone());
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            while running.load(Ordering::Relaxed) {
                match converse(&client, HAIKU, "rate [sim:output_tokens=1]", 5).await {
                    Ok(_) => {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(aws_sdk_bedrockruntime::Error::ThrottlingException(_)) => {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    Err(e) => errors.push(format!("{e:?}")),
                }
            }
            errors
        }));
    }
    tasks
}

/// Calls admitted in `window` after `warm_up`, read from the shared counter.
async fn admitted_within(admitted: &AtomicU64, warm_up: Duration, window: Duration) -> u64 {
    tokio::time::sleep(warm_up).await;
    let before = admitted.load(Ordering::Relaxed);
    tokio::time::sleep(window).await;
    admitted.load(Ordering::Relaxed) - before
}

async fn stop(running: &AtomicBool, tasks: Vec<tokio::task::JoinHandle<Vec<String>>>) {
    running.store(false, Ordering::Relaxed);
    for task in tasks {
        let errors = task.await.expect("client task");
        assert!(errors.is_empty(), "only admissions and 429s: {errors:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_together_admit_the_budgets_soft_limit_rate_not_twice_it() {
    let ns = namespace("softrate");
    budget(
        &ns,
        "rated",
        &format!(
            "  limit: '1.00'\n  enforcement:\n    softLimitPercent: 1\n    softLimitRequestsPerMinute: {PER_MINUTE}\n"
        ),
    );
    let ips = worker_pods(&ns, 2 * CLIENTS_PER_GATEWAY);
    let (_controller, gateways) = Aigov::controller_and_gateways(&ns, 2, &[]);

    // Past the soft limit ($0.01 of $1.00): one Sonnet call with 700 output tokens ($0.0105).
    let first = client_from(ips[0], &gateways[0].gateway, true).await;
    let sonnet = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    converse(&first, sonnet, "cross [sim:output_tokens=700]", 800)
        .await
        .expect("the first call is admitted");
    let soft = Usd::parse("0.01").unwrap();
    wait_status(&ns, "rated", Duration::from_secs(20), |s| {
        s["spent"].as_str().and_then(|v| Usd::parse(v).ok()) >= Some(soft)
    });

    // Both replicas busy: together they admit the budget's rate (2 a second), not 4.
    let running = Arc::new(AtomicBool::new(true));
    let admitted = Arc::new(AtomicU64::new(0));
    let (left, right) = ips.split_at(CLIENTS_PER_GATEWAY);
    let mut tasks = hammer(left, &gateways[0].gateway, &running, &admitted).await;
    tasks.extend(hammer(right, &gateways[1].gateway, &running, &admitted).await);
    let window = Duration::from_secs(15);
    let both = admitted_within(&admitted, Duration::from_secs(6), window).await;
    stop(&running, tasks).await;
    let rate = PER_MINUTE * window.as_secs() / 60;
    eprintln!("two busy replicas admitted {both} calls in {window:?} (budget rate: {rate})");
    assert!(
        both <= rate + rate / 3,
        "the budget as a whole gets its rate ({rate} in {window:?}), not one rate per replica: {both}"
    );
    assert!(
        both >= rate / 2,
        "the rate is used, not starved: {both} of {rate}"
    );

    // All traffic on one replica: within seconds it gets nearly the whole rate.
    let running = Arc::new(AtomicBool::new(true));
    let admitted = Arc::new(AtomicU64::new(0));
    let tasks = hammer(&ips, &gateways[0].gateway, &running, &admitted).await;
    let window = Duration::from_secs(10);
    let alone = admitted_within(&admitted, Duration::from_secs(6), window).await;
    stop(&running, tasks).await;
    let rate = PER_MINUTE * window.as_secs() / 60;
    eprintln!("one busy replica admitted {alone} calls in {window:?} (budget rate: {rate})");
    assert!(
        alone >= rate * 3 / 4,
        "a replica that gets all the traffic gets nearly all the rate: {alone} of {rate}"
    );
    assert!(alone <= rate + rate / 3, "still the budget's rate: {alone}");
}
