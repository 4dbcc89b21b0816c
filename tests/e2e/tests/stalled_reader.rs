//! A stalled reader cannot pin its reservation. A real `aws-sdk-bedrockruntime` client opens a
//! 64,000-token ConverseStream (about 50 MB of events, more than the sockets between client and
//! gateway can buffer) through the real gateway, reads a few events, and stops reading while keeping
//! the connection open. The gateway, started with `--response-write-timeout 2s`, cuts the stream
//! once it has waited that long for the client, reads the rest of Bedrock's stream itself, and
//! charges the call exactly as a hang-up is charged: Bedrock's own usage. The budget shows the
//! exact cost, one request and nothing reserved; the client, when it reads again, gets the
//! bytes that were already on their way and then an error, never the final metadata event.
//!
//! The same over HTTP/2 with the AWS SDK for JavaScript v3 (`tests/e2e/stalled_js.mjs`): there
//! the client's stalled stream shuts only its own flow-control window, its connection stays
//! writable, and the stream's stall watch alone cuts it (an RST_STREAM); the client's next call
//! is served and charged.
//!
//! Both end checking the four promises ([`Witness::assert_kept`]).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_bedrock_sim::server::Served;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{client_from, pod, pod_ip, served, served_cost, user};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::namespace;
use aigov_e2e::promises::Witness;
use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::types::InferenceConfiguration;

/// A profile ID no other test calls (64,000 output tokens at most, $15 per million).
const MODEL: &str = "us.anthropic.claude-3-7-sonnet-20250219-v1:0";
/// The gateway's write timeout in this test.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// A profile ID for the HTTP/2 test (64,000 output tokens at most).
const JS_MODEL: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";

/// An aigov for `ns` with the short write timeout and a $0.01 slice (so what the gateway holds
/// once the call settled is next to nothing beside the call's $0.96 worst case), writing usage
/// records where `witness` reads them.
fn aigov(ns: &str, witness: &Witness) -> Aigov {
    let mut options = Options::all(ns);
    options.extra = vec![
        "--response-write-timeout".into(),
        format!("{}s", WRITE_TIMEOUT.as_secs()),
        "--slice-fraction".into(),
        "0.001".into(),
    ];
    options.extra.extend(witness.controller_flags());
    Aigov::start(options, true)
}

/// The budget: $10, alerting at 5% (a $0.96 call crosses it).
fn team(ns: &str) {
    budget(
        ns,
        "team",
        &format!("  limit: '10.00'\n{}", Witness::alerting(&[5])),
    );
}

/// Waits until the budget holds next to nothing (its gateway's $0.01 slice at most): no call's
/// worst case is reserved any more.
fn wait_nothing_reserved(ns: &str) -> serde_json::Value {
    let status = wait_status(ns, "team", Duration::from_secs(20), |st| {
        let reserved = st["reserved"].as_str().and_then(|v| Usd::parse(v).ok());
        reserved.is_some_and(|r| r <= Usd::parse("0.05").unwrap())
    });
    status["reserved"].clone()
}

/// The simulator's record of request `id`, once it has finished serving it.
fn wait_served(id: &str, within: Duration) -> Served {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = served().into_iter().find(|s| s.request_id == id) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "the simulator never finished {id}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of a metric line (`name{labels} value`) on the process's `/metrics`, or 0.
fn metric(aigov: &Aigov, name: &str) -> f64 {
    let (_, text) = aigov.get("/metrics").expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_a_long_stream_is_cut_after_the_write_timeout_and_charged_exactly()
 {
    let ns = namespace("stalled");
    let witness = Witness::new(&ns).await;
    team(&ns);
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = aigov(&ns, &witness);
    let client = client_from(ip, &aigov.gateway, false).await;

    let mut stream = client
        .converse_stream()
        .model_id(MODEL)
        // Words of 700 bytes: about 50 MB of events, more than the socket buffers between client
        // and gateway can hold however far the kernel grows them (32 MB here at most).
        .messages(user(
            "a very long answer [sim:output_tokens=64000] [sim:word_bytes=700]",
        ))
        .inference_config(InferenceConfiguration::builder().max_tokens(64000).build())
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
    // The client stops reading here, connection open.
    let stopped = Instant::now();

    // The gateway cuts the stream once a part has waited the write timeout for the client:
    // not before (the client stopped reading at `stopped`). A part waits only once the socket
    // buffers between client and gateway are full, which takes as long as the simulator (a
    // debug build) needs to produce up to 32 MB of events: seconds here, a minute on a loaded
    // CI machine (two fresh-clone runs saw no cut within 17 s), hence the generous deadline.
    let cut = loop {
        if metric(&aigov, "aigov_gateway_stalled_streams_total") >= 1.0 {
            break stopped.elapsed();
        }
        assert!(
            stopped.elapsed() < WRITE_TIMEOUT + Duration::from_secs(90),
            "the stalled stream was never cut:\n{}",
            aigov.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        cut >= WRITE_TIMEOUT,
        "cut only after the write timeout, not {cut:?}"
    );
    // Then it read Bedrock's stream to its end for the usage.
    let record = wait_served(&id, Duration::from_secs(30));
    assert!(
        record.usage_delivered,
        "the gateway read Bedrock's stream to its usage: {record:?}"
    );
    assert_eq!(record.output_tokens, 64000);
    let (expected, count) = served_cost(&HashSet::from([id.clone()]));
    assert_eq!(count, 1);
    let status = wait_status(&ns, "team", Duration::from_secs(20), |st| {
        let amount = |k: &str| st[k].as_str().and_then(|v| Usd::parse(v).ok());
        st["requests"] == 1 && amount("spent") == Some(expected)
    });
    assert_eq!(status["tokens"]["output"], 64000, "{status:#}");
    assert_eq!(
        metric(&aigov, "aigov_gateway_stalled_streams_total"),
        1.0,
        "one stalled stream, counted once"
    );
    // Nothing stays held for the cut call: its whole worst case ($0.96 and the input) is back,
    // and what the gateway keeps is its $0.01 slice.
    let reserved = wait_nothing_reserved(&ns);

    // The client reads again: what was already on its way, then the cut; never the usage.
    let mut events = 0u64;
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match stream.stream.recv().await {
                Ok(Some(event)) => {
                    assert!(!event.is_metadata(), "the stream was cut before its usage");
                    events += 1;
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("{e:?}")),
            }
        }
    })
    .await
    .expect("the client's stream ends");
    assert!(
        ended.is_err(),
        "the cut stream ends in an error, not as a whole answer ({events} more events)"
    );
    assert!(
        events < 63_000,
        "most of the answer never reached the client: {events}"
    );
    eprintln!(
        "stalled reader: cut {cut:?} after it stopped reading; charged {expected} exactly; \
         reserved after: {reserved}; the client read {events} more events"
    );
    witness.assert_kept(&[("team", &HashSet::from([id]))]).await;
}

/// Where tests/env/tools.sh installed the JavaScript SDK (`$JS_SDK_DIR` of tests/env/lib.sh).
fn js_sdk_dir() -> PathBuf {
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../env/lib.sh");
    let out = Command::new("bash")
        .args(["-c", "source \"$1\" && printf %s \"$JS_SDK_DIR\"", "lib.sh"])
        .arg(&lib)
        .output()
        .expect("bash runs");
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).into_owned());
    assert!(
        dir.join("node_modules/@aws-sdk/client-bedrock-runtime")
            .is_dir(),
        "the JavaScript SDK is not installed in {}: run `bash tests/env/tools.sh js-sdk`",
        dir.display()
    );
    dir
}

/// What stalled_js.mjs reports.
#[derive(serde::Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct JsReport {
    stream_id: String,
    after_id: String,
    events_after: u64,
    metadata: bool,
    ended: String,
    error: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_javascript_client_that_stops_reading_an_http2_stream_has_that_stream_alone_reset_and_pays_exactly()
 {
    let ns = namespace("stalled-h2");
    let witness = Witness::new(&ns).await;
    team(&ns);
    // The JavaScript SDK connects from 127.0.0.1: the pod here, in a namespace only this
    // test's gateway watches.
    pod(
        &ns,
        "node",
        "default",
        &[],
        "127.0.0.1".parse().expect("an address"),
    );
    let aigov = aigov(&ns, &witness);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stalled_js.mjs");
    // Stalled for three times the write timeout.
    let wait_ms = (3 * WRITE_TIMEOUT).as_millis().to_string();
    let out = Command::new("node")
        .arg(&script)
        .args([aigov.gateway.as_str(), JS_MODEL, wait_ms.as_str()])
        .env("AIGOV_JS_SDK", js_sdk_dir())
        .env_remove("AWS_PROFILE")
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the JavaScript SDK failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: JsReport =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the script's report");

    assert_eq!(
        report.ended, "error",
        "the stalled stream was cut: {report:?}"
    );
    assert!(!report.metadata, "never the usage: {report:?}");
    assert!(
        report.events_after < 63_000,
        "most of the answer never reached the client: {report:?}"
    );
    // The stream alone was reset (RST_STREAM, which node reports with its code), the
    // connection was not cut (that would be a session error or a reset socket).
    assert!(
        report
            .error
            .as_deref()
            .is_some_and(|e| e.contains("NGHTTP2_INTERNAL_ERROR")),
        "{report:?}"
    );
    assert_eq!(
        metric(&aigov, "aigov_gateway_stalled_streams_total"),
        1.0,
        "the stream's stall watch cut it"
    );
    let record = wait_served(&report.stream_id, Duration::from_secs(30));
    assert!(record.usage_delivered, "read to its usage: {record:?}");
    assert_eq!(record.output_tokens, 64000);
    let ids = HashSet::from([report.stream_id.clone(), report.after_id.clone()]);
    let (expected, count) = served_cost(&ids);
    assert_eq!(count, 2);
    wait_status(&ns, "team", Duration::from_secs(20), |st| {
        st["requests"] == 2
            && st["spent"].as_str().and_then(|v| Usd::parse(v).ok()) == Some(expected)
    });
    let reserved = wait_nothing_reserved(&ns);
    eprintln!(
        "stalled h2 reader: cut ({:?}); charged {expected} for both calls exactly; reserved \
         after: {reserved}; the client read {} more events",
        report.error, report.events_after
    );
    witness.assert_kept(&[("team", &ids)]).await;
}
