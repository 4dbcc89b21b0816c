//! The AWS SDK for JavaScript v3 (`@aws-sdk/client-bedrock-runtime` from npm) through the
//! metering gateway, unchanged but for its endpoint: its default request handler speaks h2c
//! (HTTP/2 with prior knowledge) to an `http://` endpoint, so this is the test that the
//! gateway serves HTTP/2 as well as HTTP/1.1, and charges those calls exactly.
//!
//! The SDK opens its connections from the default source address and offers no option for
//! another, so the calling pod here is 127.0.0.1, in a namespace only this test's gateway
//! watches.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{pod, served_cost};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::namespace;

/// Where tests/env/tools.sh installed the SDK, as tests/env/lib.sh says (one source of truth
/// for the pinned version and the cache directory).
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

/// What gateway_js.mjs reports.
#[derive(serde::Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Report {
    ids: Vec<String>,
    handler: String,
    protocol: Option<String>,
    h2_sessions: usize,
}

fn js(gateway: &str) -> Report {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway_js.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(gateway)
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
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the script's report")
}

/// `text` without its ANSI colour sequences (the log may be coloured).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_js_sdk_speaks_http2_to_the_gateway_and_its_calls_are_charged_exactly() {
    let ns = namespace("gw-js");
    budget(&ns, "team", "  limit: '1.00'\n");
    let ip = "127.0.0.1".parse().expect("an address");
    pod(&ns, "node", "default", &[], ip);
    let mut options = Options::all(&ns);
    // The listener logs each connection's protocol at debug.
    options.env.push((
        "RUST_LOG".into(),
        "info,kube_runtime=warn,aigov_gateway::server=debug".into(),
    ));
    let aigov = Aigov::start(options, true);

    let report = js(&aigov.gateway);
    assert_eq!(report.handler, "NodeHttp2Handler", "{report:?}");
    assert_eq!(report.protocol.as_deref(), Some("h2"), "{report:?}");
    let ids: HashSet<String> = report.ids.iter().cloned().collect();
    assert_eq!(ids.len(), 2, "{report:?}");
    let (expected, count) = served_cost(&ids);
    assert_eq!(count, 2, "the simulator served both calls");
    wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["spent"].as_str().and_then(|v| Usd::parse(v).ok()) == Some(expected) && s["requests"] == 2
    });

    // Every connection the SDK opened reached the gateway as h2c, none as HTTP/1.1.
    let log = plain(&aigov.log_text());
    let protocols: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("aigov_gateway::server") && l.contains("peer=127.0.0.1:"))
        .filter_map(|l| l.split("protocol=").nth(1))
        .map(|p| p.split_whitespace().next().unwrap_or(""))
        .collect();
    assert!(report.h2_sessions >= 2, "{report:?}");
    assert_eq!(
        protocols,
        vec!["H2c"; report.h2_sessions],
        "connections as the gateway saw them"
    );
}
