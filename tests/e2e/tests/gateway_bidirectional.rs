//! InvokeModelWithBidirectionalStream (Nova Sonic speech sessions) through the gateway: the
//! real `aws-sdk-bedrockruntime` client over HTTP/2 (h2c) to the real gateway, which relays
//! the session over HTTP/2 to the simulator, its events re-signed in the gateway's own
//! signature chain (the simulator checks every link), and meters it from its `usageEvent`s.
//!
//! - A session of a spoken turn and a typed one is charged exactly the simulator's reported
//!   totals (speech and text tokens at their own rates) to the micro-dollar, and nothing
//!   stays reserved.
//! - A session that outgrows a small budget is ended with a typed `ValidationException`
//!   naming the budget, charged exactly what it used, which is within the limit ($0
//!   overshoot).
//! - A client that hangs up mid-answer pays what the session used: the gateway reads the
//!   rest of Bedrock's answer for its totals.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_bedrock_sim::server::Served;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{pod, pod_ip, served, served_cost};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::namespace;
use aigov_e2e::speech::{close, content, open, read_turns, speech_client};
use serde_json::Value;

/// The simulator's record of session `id`, once the session is over. Async: the client's
/// connection runs on this runtime, and must go on to end or reset the session's stream.
async fn wait_served(id: &str) -> Served {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = served().into_iter().find(|s| s.request_id == id) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "the simulator never finished {id}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spent(status: &Value) -> Usd {
    Usd::parse(status["spent"].as_str().unwrap_or("0")).unwrap()
}

/// The budget's spend reaches `expected` exactly, stays there, and nothing is held.
fn assert_charged(ns: &str, expected: Usd) -> Value {
    let status = wait_status(ns, "team", Duration::from_secs(30), |s| {
        spent(s) == expected
    });
    assert_eq!(spent(&status), expected, "spend exact: {status}");
    std::thread::sleep(Duration::from_secs(1));
    let status = wait_status(ns, "team", Duration::from_secs(30), |s| {
        s["holdings"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|h| h["inFlight"] == "0.00")
    });
    assert_eq!(spent(&status), expected, "and nothing more later: {status}");
    status
}

async fn setup(prefix: &str, limit: &str) -> (String, Aigov, aws_sdk_bedrockruntime::Client) {
    let ns = namespace(prefix);
    budget(&ns, "team", &format!("  limit: '{limit}'\n"));
    let ip = pod_ip();
    pod(&ns, "speech", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = speech_client(ip, &aigov.gateway).await;
    (ns, aigov, client)
}

#[tokio::test]
async fn a_speech_session_is_relayed_re_signed_and_charged_its_reported_usage_to_the_micro_dollar()
{
    let (ns, _aigov, client) = setup("gw-bidi", "10.00").await;
    let mut session = open(&client, 1024).await;
    // One second of 16 kHz 16-bit mono speech (50 speech tokens in the simulator's count).
    content(
        &session.input,
        "spoken",
        "USER",
        "AUDIO",
        &"a".repeat(32_000),
    );
    content(
        &session.input,
        "typed",
        "USER",
        "TEXT",
        "And the weather? [sim:output_tokens=600]",
    );
    let names = read_turns(&mut session, 2).await.expect("two answers");
    for wanted in [
        "completionStart",
        "textOutput",
        "audioOutput",
        "usageEvent",
        "completionEnd",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    let id = session.request_id.clone();
    close(session).await;
    let s = wait_served(&id).await;
    assert_eq!(s.operation, "InvokeModelWithBidirectionalStream");
    assert!(s.error.is_none(), "{s:?}");
    assert_eq!(
        s.access_key, "aigov-gateway",
        "re-signed with the gateway's key"
    );
    assert!(
        s.signature_verified,
        "the request and every event's chained signature checked: {s:?}"
    );
    assert_eq!(
        (s.speech_input_tokens, s.speech_output_tokens),
        (50, 616),
        "{s:?}"
    );
    assert!(
        s.input_tokens > 0 && s.output_tokens > 0,
        "text tokens too: {s:?}"
    );
    let (cost, n) = served_cost(&HashSet::from([id]));
    assert_eq!(n, 1);
    assert!(cost > Usd::ZERO);
    let status = assert_charged(&ns, cost);
    assert_eq!(status["requests"], 1, "{status}");
}

#[tokio::test]
async fn a_session_that_outgrows_its_budget_is_ended_naming_it_and_charged_what_it_used_within_the_limit()
 {
    let limit = Usd::parse("0.10").unwrap();
    let (ns, _aigov, client) = setup("gw-bidi-out", "0.10").await;
    let mut session = open(&client, 1024).await;
    let mut refusal = None;
    for turn in 0..20 {
        content(
            &session.input,
            &format!("t{turn}"),
            "USER",
            "TEXT",
            "Go on. [sim:output_tokens=1024]",
        );
        match read_turns(&mut session, 1).await {
            Ok(_) => continue,
            Err(e) => {
                refusal = Some(aws_sdk_bedrockruntime::Error::from(e));
                break;
            }
        }
    }
    let id = session.request_id.clone();
    match refusal.expect("the budget ends the session") {
        aws_sdk_bedrockruntime::Error::ValidationException(e) => {
            let message = e.message().unwrap_or_default();
            assert!(
                message.contains(&format!("AIBudget {ns}/team"))
                    && message.contains("cannot cover this session"),
                "{message}"
            );
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }
    drop(session);
    let s = wait_served(&id).await;
    assert!(
        s.speech_output_tokens >= 4 * 1024,
        "it ran several turns first: {s:?}"
    );
    let (cost, _) = served_cost(&HashSet::from([id]));
    assert!(cost <= limit, "$0 overshoot: {cost} of {limit}");
    assert_charged(&ns, cost);
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_answer_pays_what_the_session_used() {
    let (ns, _aigov, client) = setup("gw-bidi-hup", "10.00").await;
    let mut session = open(&client, 8000).await;
    content(
        &session.input,
        "long",
        "USER",
        "TEXT",
        "Tell me a story. [sim:output_tokens=6000] [sim:chunk_delay_ms=150]",
    );
    // Take a few events of the answer, then go away.
    for _ in 0..4 {
        let event = tokio::time::timeout(Duration::from_secs(30), session.output.recv()).await;
        assert!(matches!(event, Ok(Ok(Some(_)))), "{event:?}");
    }
    let id = session.request_id.clone();
    drop(session);
    let s = wait_served(&id).await;
    assert!(s.usage_delivered, "{s:?}");
    assert!(s.speech_output_tokens > 0, "{s:?}");
    let (cost, _) = served_cost(&HashSet::from([id]));
    assert_charged(&ns, cost);
}
