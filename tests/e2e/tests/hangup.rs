//! No call is free: a client that hangs up mid-stream, and a stream Bedrock cuts short, are
//! charged. Real `aws-sdk-bedrockruntime` clients through the real gateway to the simulator.
//!
//! - A client that reads a few events of a long stream and drops it: the gateway reads the rest
//!   of Bedrock's stream itself, so the budget is charged exactly the usage Bedrock reported
//!   (the simulator's record × price), and the call counts as a request.
//! - The same for bedrock-mantle's SSE streams: a Messages stream, and a Chat Completions stream
//!   that did not ask for its usage (the gateway asked for it, and reads it after the hang-up).
//! - A stream that ends without its usage-bearing event (`[sim:truncate]`): charged the stated
//!   estimate (the input bound plus the output seen), never zero.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_api::pricing::{InvocationMode, Usage};
use aigov_bedrock_sim::server::Served;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{
    HAIKU, client_from, cluster_price_book, pod, pod_ip, served, served_cost, user,
};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::namespace;
use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::InferenceConfiguration;

/// A budget `team` with `$10.00`, one pod, an aigov, and a client from the pod.
async fn setup(prefix: &str) -> (String, Aigov, aws_sdk_bedrockruntime::Client) {
    let ns = namespace(prefix);
    budget(&ns, "team", "  limit: '10.00'\n");
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;
    (ns, aigov, client)
}

/// The simulator's record of request `id`, once it has finished serving it.
fn wait_served(id: &str) -> Served {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = served().into_iter().find(|s| s.request_id == id) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "the simulator never finished {id}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the budget counts one request costing exactly what the simulator reported for
/// `id`, and that Bedrock's stream was read to its end (its usage was delivered).
fn assert_charged_as_reported(ns: &str, id: &str) {
    let s = wait_served(id);
    assert!(
        s.usage_delivered,
        "the gateway read the abandoned stream to its end: {s:?}"
    );
    let (expected, count) = served_cost(&HashSet::from([id.to_owned()]));
    assert_eq!(count, 1);
    assert!(expected > Usd::ZERO);
    let status = wait_status(ns, "team", Duration::from_secs(30), |st| {
        st["requests"] == 1 && st["spent"].as_str() == Some(expected.to_api_string().as_str())
    });
    assert_eq!(status["tokens"]["output"], s.output_tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_converse_stream_dropped_after_a_few_events_is_charged_bedrocks_usage() {
    let (ns, _aigov, client) = setup("hangup-cs").await;
    // 2,000 output tokens (about 60 KB of events), one event a millisecond: the client is
    // long gone before the final metadata event.
    let mut stream = client
        .converse_stream()
        .model_id(HAIKU)
        .messages(user(
            "a long answer [sim:output_tokens=2000] [sim:chunk_delay_ms=1]",
        ))
        .inference_config(InferenceConfiguration::builder().max_tokens(2000).build())
        .send()
        .await
        .expect("converse-stream");
    let id = stream.request_id().unwrap_or_default().to_owned();
    for _ in 0..3 {
        stream
            .stream
            .recv()
            .await
            .expect("an event")
            .expect("the stream goes on");
    }
    drop(stream);
    drop(client);
    assert_charged_as_reported(&ns, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invoke_stream_dropped_after_a_few_chunks_is_charged_bedrocks_usage() {
    let (ns, _aigov, client) = setup("hangup-is").await;
    let body = serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 2000,
        "messages": [{"role": "user",
                      "content": "a long answer [sim:output_tokens=2000] [sim:chunk_delay_ms=1]"}]});
    let mut out = client
        .invoke_model_with_response_stream()
        .model_id(HAIKU)
        .content_type("application/json")
        .body(Blob::new(body.to_string()))
        .send()
        .await
        .expect("invoke-with-response-stream");
    let id = out.request_id().unwrap_or_default().to_owned();
    for _ in 0..3 {
        out.body
            .recv()
            .await
            .expect("a chunk")
            .expect("the stream goes on");
    }
    drop(out);
    drop(client);
    assert_charged_as_reported(&ns, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_cut_short_without_usage_is_charged_the_stated_estimate_not_zero() {
    let (ns, _aigov, client) = setup("hangup-cut").await;
    let mut stream = client
        .converse_stream()
        .model_id(HAIKU)
        .messages(user("cut [sim:output_tokens=10] [sim:truncate]"))
        .inference_config(InferenceConfiguration::builder().max_tokens(64).build())
        .send()
        .await
        .expect("converse-stream");
    let id = stream.request_id().unwrap_or_default().to_owned();
    while let Ok(Some(_)) = stream.stream.recv().await {}
    let served = wait_served(&id);
    assert!(
        !served.usage_delivered,
        "the simulator cut the metadata event"
    );
    let status = wait_status(&ns, "team", Duration::from_secs(30), |st| {
        st["requests"] == 1 && st["spent"].as_str() != Some("0.00")
    });
    // The estimate: the input bound (the body's bytes: at least the tokens Bedrock counted)
    // and the output seen, the bytes of the ten words "w0 " .. "w9 " (capped by maxTokens 64).
    let tokens = &status["tokens"];
    assert_eq!(tokens["output"], 30, "{status:#}");
    let input = tokens["input"].as_u64().expect("input tokens");
    assert!(
        input >= served.input_tokens,
        "{input} < {}",
        served.input_tokens
    );
    let usage = Usage {
        input_tokens: input,
        output_tokens: 30,
        ..Usage::default()
    };
    let estimate = cluster_price_book()
        .cost(
            &aigov_api::model::resolve(HAIKU),
            &usage,
            InvocationMode::OnDemand,
            jiff::Timestamp::now(),
        )
        .amount;
    assert_eq!(
        status["spent"].as_str(),
        Some(estimate.to_api_string().as_str())
    );
    let (reported, _) = served_cost(&HashSet::from([id]));
    assert!(
        estimate >= reported,
        "conservative: {estimate} < what Bedrock counted {reported}"
    );
}

/// A mantle stream of `call` read for one frame and dropped is charged Bedrock's usage.
async fn mantle_hangup(prefix: &str, call: aigov_e2e::mantle::Call) {
    use http_body_util::BodyExt;
    let ns = namespace(prefix);
    budget(&ns, "team", "  limit: '10.00'\n");
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = aigov_e2e::mantle::client_from(ip);
    let text = "a long answer [sim:output_tokens=2000] [sim:chunk_delay_ms=1]";
    let response = aigov_e2e::mantle::open(&client, &aigov.gateway, call, HAIKU, text, 2000)
        .await
        .expect("the stream starts");
    assert_eq!(response.status(), 200);
    let id = ["x-request-id", "request-id"]
        .iter()
        .find_map(|h| response.headers().get(*h).and_then(|v| v.to_str().ok()))
        .expect("a request ID")
        .to_owned();
    let mut body = response.into_body();
    body.frame()
        .await
        .expect("a frame")
        .expect("the stream goes on");
    drop(body);
    drop(client);
    assert_charged_as_reported(&ns, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_messages_stream_dropped_after_a_frame_is_charged_bedrocks_usage() {
    mantle_hangup("hangup-msg", aigov_e2e::mantle::Call::MessagesStream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chat_stream_without_usage_asked_dropped_after_a_frame_is_charged_bedrocks_usage() {
    mantle_hangup("hangup-chat", aigov_e2e::mantle::Call::ChatStream).await;
}
