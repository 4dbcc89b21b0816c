//! A gateway killed mid-stream (SIGKILL: a crash or an OOM kill, no goodbye). Two gateways and a
//! controller; eight SDK clients stream through gateway A while gateway B serves calls of its
//! own; A is killed with every stream in flight.
//!
//! What is promised (docs/operations.md, "Gateway killed"): the killed replica's calls in
//! flight lose their settlement (their usage dies with the process, never charged twice or
//! guessed), every other call is charged exactly once, and what the killed replica held
//! (its slice and the worst cases of its streams) returns to the budget after the controller's
//! `--gateway-expiry`. So: the budget's spend is exactly the cost of B's calls (at most the cost
//! of everything the simulator served); until the expiry a call whose worst case fits only with
//! A's holdings is throttled, after it that call is admitted through B; and once B too has
//! stopped, nothing is reserved. While A is silent the status shows its holdings as such
//! (`status.holdings`: silent since, returned at), and a `HoldingsReturned` Event says when they
//! were returned. The four promises hold at the end ([`Witness::assert_kept`]).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{client_from, converse, served, served_cost, user, worker_pods};
use aigov_e2e::budgets::{budget, wait_event, wait_status};
use aigov_e2e::namespace;
use aigov_e2e::promises::Witness;
use aws_sdk_bedrockruntime::types::InferenceConfiguration;

/// Profile IDs no other test calls, so the simulator's record of this test is exact.
const MODEL: &str = "eu.anthropic.claude-3-5-sonnet-20240620-v1:0";
/// A model with a 64K output bound, for the call that needs A's returned headroom.
const BIG_MODEL: &str = "eu.anthropic.claude-3-7-sonnet-20250219-v1:0";
const STREAMS: usize = 8;
/// The controller takes back a silent gateway's holdings after this long.
/// Long enough for the probe below: B first waits up to the recall (`RECALL_FOR`, 3 s) for
/// headroom the dead A can never give back.
const EXPIRY: Duration = Duration::from_secs(8);

/// The calls a budget's status counts as answered: its requests less the throttled ones (a
/// throttle, retried by the SDK, counts as a request too).
fn answered(status: &serde_json::Value) -> Option<u64> {
    let throttled = status["throttledRequests"].as_u64().unwrap_or(0);
    status["requests"].as_u64()?.checked_sub(throttled)
}

fn amount(status: &serde_json::Value, key: &str) -> Option<Usd> {
    status[key].as_str().and_then(|v| Usd::parse(v).ok())
}

fn gateway(ns: &str, controller: &Aigov) -> Aigov {
    let mut options = Options::all(ns);
    options.role = "gateway";
    options.controller_endpoints = vec![controller.ledger.clone()];
    // Within the expiry by more than the longest call outliving an outage (none here).
    options.extra = vec!["--slice-ttl".into(), "2s".into()];
    Aigov::start(options, true)
}

/// One ConverseStream of 300 events 30 ms apart (9 s): `Ok(())` if it ran to its end.
async fn long_stream(
    client: aws_sdk_bedrockruntime::Client,
    n: usize,
    started: tokio::sync::mpsc::Sender<()>,
) -> Result<(), String> {
    let text = format!("stream {n} [sim:output_tokens=300] [sim:chunk_delay_ms=30]");
    let mut out = client
        .converse_stream()
        .model_id(MODEL)
        .messages(user(&text))
        .inference_config(InferenceConfiguration::builder().max_tokens(2000).build())
        .send()
        .await
        .map_err(|e| format!("{:?}", aws_sdk_bedrockruntime::Error::from(e)))?;
    out.stream
        .recv()
        .await
        .map_err(|e| format!("{e:?}"))?
        .ok_or("an empty stream")?;
    let _ = started.send(()).await;
    while out
        .stream
        .recv()
        .await
        .map_err(|e| format!("{e:?}"))?
        .is_some()
    {}
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_mid_stream_loses_only_its_calls_in_flight_and_its_holdings_return_after_the_expiry()
 {
    let ns = namespace("gwkill");
    let witness = Witness::new(&ns).await;
    // The big call at the end (about $0.03) crosses all three.
    budget(
        &ns,
        "team",
        &format!("  limit: '1.00'\n{}", Witness::alerting(&[1, 2, 3])),
    );
    let ips = worker_pods(&ns, STREAMS + 1);
    let mut options = Options::all(&ns);
    options.role = "controller";
    options.extra = vec![
        "--settle".into(),
        "500ms".into(),
        "--gateway-expiry".into(),
        format!("{}s", EXPIRY.as_secs()),
    ];
    options.extra.extend(witness.controller_flags());
    let controller = Aigov::start(options, true);
    let mut a = gateway(&ns, &controller);
    let b = gateway(&ns, &controller);
    let served_before: HashSet<String> = served().into_iter().map(|s| s.request_id).collect();
    let b_client = client_from(ips[STREAMS], &b.gateway, true).await;
    let mut b_ids = HashSet::new();
    for n in 0..3 {
        let text = format!("before {n} [sim:output_tokens=20]");
        b_ids.insert(
            converse(&b_client, MODEL, &text, 100)
                .await
                .expect("B answers"),
        );
    }

    // Eight streams through A, each holding its worst case (2,000 tokens at $15 per million,
    // and its input), all in flight.
    let (started, mut starts) = tokio::sync::mpsc::channel(STREAMS);
    let mut streams = Vec::new();
    for (n, ip) in ips[..STREAMS].iter().enumerate() {
        // Retries on: a throttle while A's slice grows to hold all eight is retried.
        let client = client_from(*ip, &a.gateway, true).await;
        streams.push(tokio::spawn(long_stream(client, n, started.clone())));
    }
    for _ in 0..STREAMS {
        if tokio::time::timeout(Duration::from_secs(20), starts.recv())
            .await
            .is_err()
        {
            let mut failed = Vec::new();
            for stream in streams.into_iter().filter(|s| s.is_finished()) {
                failed.push(stream.await.expect("client task"));
            }
            panic!("not every stream started: {failed:?}\n{}", a.log_text());
        }
    }
    let held = wait_status(&ns, "team", Duration::from_secs(10), |st| {
        amount(st, "reserved").is_some_and(|r| r >= Usd::parse("0.24").unwrap())
    });
    let held = amount(&held, "reserved").expect("reserved");

    a.kill();
    let killed = Instant::now();
    for stream in streams {
        let ended = stream.await.expect("client task");
        assert!(
            ended.is_err(),
            "a stream through the killed gateway cannot have finished"
        );
    }
    // Until the expiry, what A held still counts (the $0 bound needs it: A could have been
    // alive and spending): a call whose worst case needs it is not admitted, only throttled.
    let probe = client_from(ips[STREAMS], &b.gateway, false).await;
    match converse(&probe, BIG_MODEL, "too soon [sim:output_tokens=10]", 52_000).await {
        Err(aws_sdk_bedrockruntime::Error::ThrottlingException(_)) => {}
        other => panic!("before the expiry A's holdings still count: {other:?}"),
    }
    assert!(
        killed.elapsed() < EXPIRY,
        "the probe came before the expiry"
    );
    for n in 0..3 {
        let text = format!("after {n} [sim:output_tokens=20]");
        b_ids.insert(
            converse(&b_client, MODEL, &text, 100)
                .await
                .expect("B answers"),
        );
    }

    // Until then the status shows A as silent, with what it holds and when that returns.
    let silent = wait_status(&ns, "team", EXPIRY, |st| {
        st["holdings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["silentSince"].is_string())
    });
    let a_holding = silent["holdings"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["silentSince"].is_string()))
        .expect("A's holding");
    let stamp = |k: &str| {
        a_holding[k]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .expect(k)
    };
    assert_eq!(
        stamp("returnsAt").duration_since(stamp("silentSince")),
        jiff::SignedDuration::try_from(EXPIRY).unwrap(),
        "returned the expiry after A was last heard from: {silent:#}"
    );
    let a_reserved = Usd::parse(a_holding["reserved"].as_str().expect("reserved")).unwrap();
    assert!(
        a_reserved >= Usd::parse("0.24").unwrap(),
        "A still holds its eight streams' worst cases: {silent:#}"
    );

    // Spend: B's calls exactly, nothing of A's (their settlement died with A).
    let deadline = Instant::now() + Duration::from_secs(10);
    let all: HashSet<String> = loop {
        let ours: HashSet<String> = served()
            .into_iter()
            .filter(|s| s.model_id == MODEL && !served_before.contains(&s.request_id))
            .map(|s| s.request_id)
            .collect();
        if ours.len() == b_ids.len() + STREAMS {
            break ours;
        }
        assert!(Instant::now() < deadline, "served {} calls", ours.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(b_ids.is_subset(&all));
    let (served_total, _) = served_cost(&all);
    let (b_cost, count) = served_cost(&b_ids);
    assert_eq!(count, b_ids.len());
    let status = wait_status(&ns, "team", Duration::from_secs(20), |st| {
        amount(st, "spent") == Some(b_cost)
    });
    assert!(b_cost <= served_total);
    assert_eq!(answered(&status), Some(b_ids.len() as u64), "{status:#}");

    // After the expiry, what A held is B's to have: a call whose worst case ($0.78 and its
    // input) fits in what is left only with A's holdings returned (A held at least the eight
    // streams' $0.03 worst cases).
    let limit = Usd::parse("1.00").unwrap();
    let a_held_at_least = Usd::parse("0.24").unwrap();
    let big_worst = Usd::parse("0.78").unwrap();
    assert!(
        big_worst > limit - b_cost - a_held_at_least,
        "the big call could not fit beside A's holdings"
    );
    // The controller looks for silent gateways every 2 s.
    let expired = killed + EXPIRY + Duration::from_millis(2500);
    tokio::time::sleep(expired.saturating_duration_since(Instant::now())).await;
    let big = converse(&b_client, BIG_MODEL, "big [sim:output_tokens=2000]", 52_000)
        .await
        .expect("the headroom A held is granted again");
    b_ids.insert(big);
    let since_kill = killed.elapsed();
    let note = wait_event(&ns, "team", "HoldingsReturned", "is returned to the budget");
    assert!(
        note.contains(&a_reserved.display()) && note.contains("--gateway-expiry 8s"),
        "{note}"
    );

    // B stops too: then nothing at all is held, and spend is B's calls exactly.
    let mut b = b;
    b.terminate();
    assert!(
        b.wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        b.log_text()
    );
    let (b_cost, _) = served_cost(&b_ids);
    let status = wait_status(&ns, "team", Duration::from_secs(30), |st| {
        amount(st, "spent") == Some(b_cost) && amount(st, "reserved").is_none_or(|r| r.is_zero())
    });
    assert_eq!(answered(&status), Some(b_ids.len() as u64), "{status:#}");
    eprintln!(
        "gateway kill: {held} held with A's {STREAMS} streams in flight; served {served_total} \
         in all, charged {b_cost} (B's {} calls); the big call admitted {since_kill:?} after \
         the kill ({} throttled tries before); A shown silent holding {a_reserved}",
        b_ids.len(),
        status["throttledRequests"]
    );
    witness.assert_kept(&[("team", &b_ids)]).await;
}
