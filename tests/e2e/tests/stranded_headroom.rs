//! No headroom stranded near the limit: a $0.50 budget, two gateway replicas, 64 real SDK
//! clients whose calls cost close to their $0.06 worst case. Before, the last 15% sat in slices
//! split across the two replicas, each part too small for a call: 429 "calls in flight hold the
//! rest" for a minute with nothing in flight, never a 403, and `BudgetExhausted` stayed False.
//! Now the controller recalls the headroom for the replica that falls short, calls run until
//! what is left cannot pay for one, every client ends on the budget's 403, and the budget is
//! exhausted; spend stays within the limit and equals what the simulator served, and the four
//! promises hold ([`Witness::assert_kept`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_e2e::aigov::Aigov;
use aigov_e2e::bedrock::{client_from, converse, served, served_cost, worker_pods};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::namespace;
use aigov_e2e::promises::Witness;

/// A model ID no other test calls, so the simulator's record of this test is exact.
const MODEL: &str = "us.anthropic.claude-3-5-sonnet-20240620-v1:0";
const CLIENTS: usize = 64;
const PODS: usize = 8;

/// How a client's run ended.
#[derive(Debug, Default)]
struct Tally {
    ids: HashSet<String>,
    throttled: usize,
    ended_on_403: usize,
    errors: Vec<String>,
}

/// Calls until the budget's 403 (or the deadline), retrying 429s after a pause.
async fn run_client(client: aws_sdk_bedrockruntime::Client, n: usize, tally: Arc<Mutex<Tally>>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    // 4,000 output tokens of Claude 3.5 Sonnet: $0.06, what the call reserves, nearly.
    let text = format!("client {n} [sim:output_tokens=4000]");
    while Instant::now() < deadline {
        match converse(&client, MODEL, &text, 4000).await {
            Ok(id) => {
                tally.lock().unwrap().ids.insert(id);
            }
            Err(aws_sdk_bedrockruntime::Error::AccessDeniedException(_)) => {
                tally.lock().unwrap().ended_on_403 += 1;
                return;
            }
            Err(aws_sdk_bedrockruntime::Error::ThrottlingException(_)) => {
                tally.lock().unwrap().throttled += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => tally.lock().unwrap().errors.push(format!("{e:?}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_half_dollar_budget_on_two_gateways_ends_exhausted_with_403s_not_endless_429s() {
    let ns = namespace("stranded");
    let witness = Witness::new(&ns).await;
    let spec = format!("  limit: '0.50'\n{}", Witness::alerting(&[50, 80, 100]));
    budget(&ns, "half", &spec);
    let ips = worker_pods(&ns, PODS);
    let flags = witness.controller_flags();
    let (_controller, gateways) = Aigov::controller_and_gateways(&ns, 2, &flags);
    let served_before: HashSet<String> = served().into_iter().map(|s| s.request_id).collect();

    let tally: Arc<Mutex<Tally>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = client_from(ips[c % PODS], &gateways[c % 2].gateway, false).await;
        tasks.push(tokio::spawn(run_client(client, c, tally.clone())));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    eprintln!(
        "stranded headroom: {} calls served, {} 429s, {} clients ended on a 403",
        tally.ids.len(),
        tally.throttled,
        tally.ended_on_403
    );
    assert!(
        tally.errors.is_empty(),
        "unexpected errors: {:?}",
        tally.errors
    );
    assert_eq!(
        tally.ended_on_403, CLIENTS,
        "every client ends on the budget's 403 within a minute, not on endless 429s"
    );

    let ours: HashSet<String> = served()
        .into_iter()
        .filter(|s| s.model_id == MODEL && !served_before.contains(&s.request_id))
        .map(|s| s.request_id)
        .collect();
    assert_eq!(
        ours, tally.ids,
        "the simulator served exactly the calls answered"
    );
    let (expected, _) = served_cost(&ours);
    let status = wait_status(&ns, "half", Duration::from_secs(30), |s| {
        let spent = s["spent"].as_str().and_then(|v| Usd::parse(v).ok());
        let exhausted = s["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "BudgetExhausted" && c["status"] == "True")
        });
        spent == Some(expected) && exhausted
    });
    let spent = Usd::parse(status["spent"].as_str().unwrap()).unwrap();
    let limit = Usd::parse("0.50").unwrap();
    assert!(spent <= limit, "overshoot: {spent} of {limit}");
    assert!(
        limit.saturating_sub(spent) < Usd::parse("0.06").unwrap(),
        "what is left cannot pay for one more call: spent {spent} of {limit}"
    );
    let kept = witness.assert_kept(&[("half", &ours)]).await;
    eprintln!(
        "{} calls, {} usage records, {} alerts, each once",
        kept.calls, kept.records, kept.alerts
    );
}
