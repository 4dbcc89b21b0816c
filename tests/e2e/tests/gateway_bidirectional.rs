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
use aws_config::retry::RetryConfig;
use aws_sdk_bedrockruntime::error::SdkError;
use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::primitives::event_stream::EventStreamSender;
use aws_sdk_bedrockruntime::types::error::{
    InvokeModelWithBidirectionalStreamInputError, InvokeModelWithBidirectionalStreamOutputError,
};
use aws_sdk_bedrockruntime::types::{
    BidirectionalInputPayloadPart, InvokeModelWithBidirectionalStreamInput,
    InvokeModelWithBidirectionalStreamOutput,
};
use base64::Engine;
use futures::channel::mpsc;
use serde_json::{Value, json};

const SONIC: &str = "amazon.nova-sonic-v1:0";

type Input =
    Result<InvokeModelWithBidirectionalStreamInput, InvokeModelWithBidirectionalStreamInputError>;

/// A Bedrock runtime client from `source` speaking HTTP/2 with prior knowledge to `endpoint`.
async fn speech_client(source: std::net::IpAddr, endpoint: &str) -> aws_sdk_bedrockruntime::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_bedrockruntime::config::Credentials::new(
            "workload-key",
            "workload-secret",
            None,
            None,
            "aigov-e2e",
        ))
        .http_client(aigov_example_workload::http2_client_from(source))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_bedrockruntime::Client::new(&config)
}

/// An open session: its input sender and output receiver.
struct Session {
    input: mpsc::UnboundedSender<Input>,
    output: aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver<
        InvokeModelWithBidirectionalStreamOutput,
        InvokeModelWithBidirectionalStreamOutputError,
    >,
    request_id: String,
}

fn chunk(event: &Value) -> Input {
    Ok(InvokeModelWithBidirectionalStreamInput::Chunk(
        BidirectionalInputPayloadPart::builder()
            .bytes(Blob::new(event.to_string().into_bytes()))
            .build(),
    ))
}

/// Opens a session with `maxTokens` and a system prompt.
async fn open(client: &aws_sdk_bedrockruntime::Client, max_tokens: u64) -> Session {
    let (input, rx) = mpsc::unbounded::<Input>();
    let start = [
        json!({"event": {"sessionStart": {"inferenceConfiguration": {"maxTokens": max_tokens, "topP": 0.9, "temperature": 0.7}}}}),
        json!({"event": {"promptStart": {"promptName": "p", "textOutputConfiguration": {"mediaType": "text/plain"},
            "audioOutputConfiguration": {"mediaType": "audio/lpcm", "sampleRateHertz": 24000, "sampleSizeBits": 16, "channelCount": 1, "voiceId": "matthew", "encoding": "base64", "audioType": "SPEECH"}}}}),
    ];
    for event in &start {
        input.unbounded_send(chunk(event)).unwrap();
    }
    content(
        &input,
        "system",
        "SYSTEM",
        "TEXT",
        "You are a helpful assistant.",
    );
    let sent = tokio::time::timeout(
        Duration::from_secs(20),
        client
            .invoke_model_with_bidirectional_stream()
            .model_id(SONIC)
            .body(EventStreamSender::from(rx))
            .send(),
    )
    .await
    .expect("the session opens at once")
    .expect("the gateway relays the session");
    let request_id = sent.request_id().expect("Bedrock's request ID").to_owned();
    Session {
        input,
        output: sent.body,
        request_id,
    }
}

/// Sends one content block (text, or audio as base64 of `payload`'s bytes).
fn content(
    input: &mpsc::UnboundedSender<Input>,
    name: &str,
    role: &str,
    kind: &str,
    payload: &str,
) {
    let ids = json!({"promptName": "p", "contentName": name});
    let mut start = ids.clone();
    start["type"] = kind.into();
    start["role"] = role.into();
    start["interactive"] = true.into();
    let body = match kind {
        "AUDIO" => {
            start["audioInputConfiguration"] = json!({"mediaType": "audio/lpcm", "sampleRateHertz": 16000, "sampleSizeBits": 16, "channelCount": 1, "audioType": "SPEECH", "encoding": "base64"});
            let audio = base64::engine::general_purpose::STANDARD.encode(payload.as_bytes());
            json!({"event": {"audioInput": merge(&ids, json!({"content": audio}))}})
        }
        _ => {
            start["textInputConfiguration"] = json!({"mediaType": "text/plain"});
            json!({"event": {"textInput": merge(&ids, json!({"content": payload}))}})
        }
    };
    for event in [
        json!({"event": {"contentStart": start}}),
        body,
        json!({"event": {"contentEnd": ids}}),
    ] {
        input.unbounded_send(chunk(&event)).unwrap();
    }
}

fn merge(a: &Value, b: Value) -> Value {
    let mut out = a.clone();
    if let (Some(o), Value::Object(b)) = (out.as_object_mut(), b) {
        o.extend(b);
    }
    out
}

/// Reads output events until `completions` completions ended: the event names seen, or
/// the error the stream ended with.
async fn read_turns(
    session: &mut Session,
    completions: usize,
) -> Result<
    Vec<String>,
    SdkError<
        InvokeModelWithBidirectionalStreamOutputError,
        aws_smithy_types::event_stream::RawMessage,
    >,
> {
    let mut names = Vec::new();
    let mut ended = 0;
    while ended < completions {
        let event = tokio::time::timeout(Duration::from_secs(30), session.output.recv())
            .await
            .expect("output within 30 s")?;
        let Some(InvokeModelWithBidirectionalStreamOutput::Chunk(part)) = event else {
            panic!("the output ended after {names:?}");
        };
        let json: Value =
            serde_json::from_slice(part.bytes().expect("bytes").as_ref()).expect("a JSON event");
        let name = json["event"]
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .unwrap_or_default();
        ended += usize::from(name == "completionEnd");
        names.push(name);
    }
    Ok(names)
}

/// Ends the session as a client does and reads the output to its end.
async fn close(mut session: Session) {
    for event in [
        json!({"event": {"promptEnd": {"promptName": "p"}}}),
        json!({"event": {"sessionEnd": {}}}),
    ] {
        session.input.unbounded_send(chunk(&event)).unwrap();
    }
    session.input.close_channel();
    while let Some(_event) = tokio::time::timeout(Duration::from_secs(30), session.output.recv())
        .await
        .expect("the output ends")
        .expect("no error")
    {}
}

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
