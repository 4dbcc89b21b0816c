//! The overshoot bound, proven: two gateway replicas and one controller, 64 concurrent clients
//! mixing the four bedrock-runtime operations (the Rust SDK, streaming included) and
//! bedrock-mantle's Chat Completions (streaming, without asking for usage), Responses and
//! Messages (streaming), ApplyGuardrail, and Nova Sonic speech sessions (InvokeModelWithBidirectionalStream
//! over HTTP/2, topping their reservations up as they go) against a $1.00 budget. Settled
//! spend must never pass the limit (the stated bound is zero with worst-case reservations),
//! and every call the simulator served must be charged exactly once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_e2e::aigov::Aigov;
use aigov_e2e::bedrock::{client_from, runtime_call, served, served_cost, worker_pods};
use aigov_e2e::budgets::wait_status;
use aigov_e2e::{budgets::budget, mantle, namespace};
use aws_sdk_bedrockruntime::operation::RequestId;

/// A profile ID no other test calls, so the simulator's record of this test is exact.
const MODEL: &str = "apac.anthropic.claude-3-5-sonnet-20240620-v1:0";
const CLIENTS: usize = 64;
const PODS: usize = 8;

/// Kinds of call: the four runtime inference operations, the three mantle ones, ApplyGuardrail.
const KINDS: usize = 8;
/// The guardrail this test applies (the simulator records it as the call's model).
const GUARDRAIL: &str = "gr-overshoot";
/// The speech model this test's sessions use (a profile no other test calls).
const SPEECH: &str = "apac.amazon.nova-sonic-v1:0";
/// Speech sessions beside the 64 clients, each turn after turn until its budget ends it.
const SESSIONS: usize = 4;

/// One speech client: sessions of 512-token turns until the budget ends one (or refuses to
/// open one) or `deadline` passes; the request IDs of the sessions Bedrock served.
async fn speech_sessions(
    client: aws_sdk_bedrockruntime::Client,
    deadline: Instant,
) -> Result<Vec<String>, String> {
    use aigov_e2e::speech::{close, content, read_turns, try_open};
    let mut ids = Vec::new();
    while Instant::now() < deadline {
        let mut session = match try_open(&client, SPEECH, 1024).await {
            Ok(session) => session,
            Err(e) => match aws_sdk_bedrockruntime::Error::from(e) {
                aws_sdk_bedrockruntime::Error::AccessDeniedException(_) => return Ok(ids),
                aws_sdk_bedrockruntime::Error::ThrottlingException(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                other => return Err(format!("{other:?}")),
            },
        };
        ids.push(session.request_id.clone());
        let mut turn = 0;
        let ended = loop {
            if Instant::now() >= deadline {
                break None;
            }
            turn += 1;
            content(
                &session.input,
                &format!("t{turn}"),
                "USER",
                "TEXT",
                "More. [sim:output_tokens=512]",
            );
            if let Err(e) = read_turns(&mut session, 1).await {
                break Some(aws_sdk_bedrockruntime::Error::from(e));
            }
        };
        match ended {
            None => {
                close(session).await;
                return Ok(ids);
            }
            // Ended by the budget: for good, or for now.
            Some(aws_sdk_bedrockruntime::Error::ValidationException(_)) => return Ok(ids),
            Some(aws_sdk_bedrockruntime::Error::ThrottlingException(_)) => {}
            Some(other) => return Err(format!("{other:?}")),
        }
    }
    Ok(ids)
}

/// One ApplyGuardrail call with `chars` characters of text; the same answers as [`runtime_call`].
async fn guardrail_call(
    client: &aws_sdk_bedrockruntime::Client,
    chars: usize,
) -> Result<Option<String>, String> {
    use aws_sdk_bedrockruntime::types::{
        GuardrailContentBlock, GuardrailContentSource, GuardrailTextBlock,
    };
    let text = GuardrailTextBlock::builder()
        .text("g".repeat(chars))
        .build()
        .map_err(|e| e.to_string())?;
    match client
        .apply_guardrail()
        .guardrail_identifier(GUARDRAIL)
        .guardrail_version("1")
        .source(GuardrailContentSource::Input)
        .content(GuardrailContentBlock::Text(text))
        .send()
        .await
    {
        Ok(out) => Ok(Some(out.request_id().unwrap_or_default().to_owned())),
        Err(e) => match aws_sdk_bedrockruntime::Error::from(e) {
            aws_sdk_bedrockruntime::Error::AccessDeniedException(_) => Ok(None),
            aws_sdk_bedrockruntime::Error::ThrottlingException(_) => Err("throttled".into()),
            other => Err(format!("{other:?}")),
        },
    }
}

/// One mantle call of kind `kind` (4, 5, 6); the same answers as [`runtime_call`].
async fn mantle_call(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    gateway: &str,
    kind: usize,
    n: usize,
    output: u32,
) -> Result<Option<String>, String> {
    let call = match kind {
        4 => mantle::Call::ChatStream,
        5 => mantle::Call::Responses,
        _ => mantle::Call::MessagesStream,
    };
    let text = format!("call {n} [sim:output_tokens={output}]");
    match mantle::send(client, gateway, call, MODEL, &text, 1000).await? {
        mantle::Answer::Served(id) => Ok(Some(id)),
        mantle::Answer::Refused(403, _) => Ok(None),
        mantle::Answer::Refused(429, _) => Err("throttled".into()),
        mantle::Answer::Refused(status, body) => Err(format!("{call:?}: {status} {body}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_and_64_clients_never_overshoot_a_one_dollar_budget() {
    let ns = namespace("overshoot");
    budget(&ns, "dollar", "  limit: '1.00'\n");
    let ips = worker_pods(&ns, PODS);
    let (_controller, gateways) = Aigov::controller_and_gateways(&ns, 2, &[]);
    let served_before: HashSet<String> = served().into_iter().map(|s| s.request_id).collect();

    let ids: Arc<Mutex<HashSet<String>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = client_from(ips[c % PODS], &gateways[c % 2].gateway, true).await;
        let wire = mantle::client_from(ips[c % PODS]);
        let gateway = gateways[c % 2].gateway.clone();
        let (ids, errors) = (ids.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = c;
            let mut throttles = 0;
            while Instant::now() < deadline {
                let output = 200 + ((n * 7919) % 800) as u32;
                let answer = match n % KINDS {
                    7 => guardrail_call(&client, 50 * output as usize).await,
                    kind @ 4.. => mantle_call(&wire, &gateway, kind, n, output).await,
                    _ => runtime_call(&client, MODEL, n, output).await,
                };
                match answer {
                    Ok(Some(id)) => {
                        ids.lock().unwrap().insert(id);
                    }
                    Ok(None) => return,
                    Err(e) if e == "throttled" => {
                        throttles += 1;
                        if throttles > 50 {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => errors.lock().unwrap().push(e),
                }
                n += CLIENTS;
            }
        }));
    }
    let mut speakers = Vec::new();
    for c in 0..SESSIONS {
        let client =
            aigov_e2e::speech::speech_client(ips[c % PODS], &gateways[c % 2].gateway).await;
        speakers.push(tokio::spawn(speech_sessions(client, deadline)));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    for t in speakers {
        match t.await.expect("speech task") {
            Ok(sessions) => ids.lock().unwrap().extend(sessions),
            Err(e) => errors.lock().unwrap().push(e),
        }
    }
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "unexpected errors: {errors:?}");
    let ids = ids.lock().unwrap().clone();

    // Everything the simulator served for this test, whether or not a client saw it.
    let ours: HashSet<String> = served()
        .into_iter()
        .filter(|s| {
            (s.model_id == MODEL || s.model_id == GUARDRAIL || s.model_id == SPEECH)
                && !served_before.contains(&s.request_id)
        })
        .map(|s| s.request_id)
        .collect();
    assert_eq!(
        ours, ids,
        "the simulator served exactly the calls the clients saw answered"
    );
    let (expected, count) = served_cost(&ours);
    assert_eq!(count, ids.len());
    let s = wait_status(&ns, "dollar", Duration::from_secs(30), |s| {
        s["spent"].as_str().and_then(|v| Usd::parse(v).ok()) == Some(expected)
    });
    let spent = Usd::parse(s["spent"].as_str().unwrap()).unwrap();
    let limit = Usd::parse("1.00").unwrap();
    assert!(spent <= limit, "overshoot: spent {spent} of {limit}");
    assert!(
        spent > Usd::parse("0.50").unwrap(),
        "the budget was really used: {spent}"
    );
    eprintln!(
        "overshoot test: {} calls served, spent {spent} of {limit}; statuses: requests {} throttled {}",
        ids.len(),
        s["requests"],
        s["throttledRequests"]
    );
}
