//! The real OpenAI and Anthropic Python SDKs and the `openai` npm package through the metering
//! gateway, pointed at it by their base URLs: Chat Completions (streaming with and without usage asked for), Responses
//! (streaming, and in the background), Messages (streaming, with a cache write), and boto3's
//! CountTokens, ApplyGuardrail and async invocations. Every call is charged exactly what the
//! simulator reported, priced by the catalog; CountTokens and the reads of jobs cost nothing;
//! an exhausted budget reaches each SDK as its own typed, non-retryable error naming it; and
//! the bidirectional stream, which cannot be metered here, is refused Bedrock-shaped.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{pod, pod_ip, served, served_cost};
use aigov_e2e::budgets::{budget, set_limit, wait_status};
use aigov_e2e::namespace;

/// Runs tests/e2e/gateway_mantle.py with the pinned SDKs' Python.
fn sdks(gateway: &str, ip: &str, args: &[&str]) -> String {
    let python = std::env::var("AIGOV_LLM_SDK_PYTHON").expect(
        "AIGOV_LLM_SDK_PYTHON is not set: run tests/env/up.sh (tools.sh llm-sdks) and source env.sh",
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway_mantle.py");
    let out = Command::new(python)
        .arg(&script)
        .args([gateway, ip])
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "SDK script {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs tests/e2e/gateway_openai.mjs with the pinned `openai` npm package.
fn openai_js(gateway: &str, ip: &str, args: &[&str]) -> String {
    let dir = std::env::var("AIGOV_OPENAI_JS_DIR").expect(
        "AIGOV_OPENAI_JS_DIR is not set: run tests/env/up.sh (tools.sh llm-sdks) and source env.sh",
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway_openai.mjs");
    let out = Command::new("node")
        .arg(&script)
        .args([dir.as_str(), gateway, ip])
        .args(args)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "openai-js {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn ids(out: &str) -> HashSet<String> {
    serde_json::from_str(out.lines().last().unwrap_or("[]")).expect("request IDs")
}

fn spent_is(ns: &str, expected: Usd) -> serde_json::Value {
    wait_status(ns, "team", Duration::from_secs(30), |s| {
        s["spent"].as_str().and_then(|v| Usd::parse(v).ok()) == Some(expected)
    })
}

#[test]
fn openai_and_anthropic_sdk_calls_through_the_gateway_are_charged_exactly_and_refused_in_their_own_shapes()
 {
    let ns = namespace("gw-mantle");
    budget(&ns, "team", "  limit: '5.00'\n");
    let ip = pod_ip();
    pod(&ns, "sdk", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let ip = ip.to_string();

    let mut mantle = ids(&sdks(&aigov.gateway, &ip, &["calls"]));
    assert_eq!(mantle.len(), 8, "{mantle:?}");
    let js = ids(&openai_js(&aigov.gateway, &ip, &["calls"]));
    assert_eq!(js.len(), 3, "{js:?}");
    mantle.extend(js);
    let (expected, count) = served_cost(&mantle);
    assert_eq!(
        count, 11,
        "the simulator served every call the SDKs saw answered"
    );
    assert!(expected > Usd::ZERO);
    for s in served().iter().filter(|s| mantle.contains(&s.request_id)) {
        assert_eq!(
            (
                s.signed_for.as_str(),
                s.access_key.as_str(),
                s.signature_verified
            ),
            ("bedrock-mantle/us-east-1", "aigov-gateway", true),
            "re-signed by the gateway for bedrock-mantle, the caller's key dropped: {s:?}"
        );
    }
    let status = spent_is(&ns, expected);
    assert!(
        status["requests"].as_u64().unwrap_or(0) >= 12,
        "the free count_tokens call counts as a request: {status}"
    );

    let out = sdks(&aigov.gateway, &ip, &["runtime"]);
    let runtime: serde_json::Value =
        serde_json::from_str(out.lines().last().unwrap_or("{}")).expect("request IDs");
    let set = |key: &str| -> HashSet<String> {
        serde_json::from_value(runtime[key].clone()).expect("a list of request IDs")
    };
    let (units, count) = served_cost(&set("units"));
    assert_eq!(count, 2, "ApplyGuardrail and StartAsyncInvoke: {runtime}");
    // 3 text units x (content 0.15 + topics 0.15 + PII 0.10) / 1000, and 12 s of Nova Reel.
    assert_eq!(
        units,
        Usd::parse("0.0012").unwrap() + Usd::parse("0.96").unwrap()
    );
    let (guarded, count) = served_cost(&set("guarded"));
    assert_eq!(
        count, 4,
        "Converse, ConverseStream, InvokeModel and its stream with a guardrail: {runtime}"
    );
    let (checks, count) = served_cost(&set("checks"));
    assert_eq!(count, 1, "InvokeGuardrailChecks: {runtime}");
    // 2,100 characters in one block: 4 text units, content filter $0.15 and PII $0.10 per 1,000.
    assert_eq!(checks, Usd::parse("0.001").unwrap());
    let everything = expected + units + guarded + checks;
    spent_is(&ns, everything);

    set_limit(&ns, "team", everything);
    wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["phase"] == "Throttled"
    });
    std::thread::sleep(Duration::from_millis(600));
    let denied = sdks(
        &aigov.gateway,
        &ip,
        &["expect-denied", &format!("AIBudget {ns}/team")],
    );
    assert!(
        denied.contains("openai:") && denied.contains("anthropic:"),
        "{denied}"
    );
    let denied = openai_js(
        &aigov.gateway,
        &ip,
        &["expect-denied", &format!("AIBudget {ns}/team")],
    );
    assert!(denied.contains("resets"), "{denied}");
}

#[test]
fn with_a_mantle_api_key_the_gateway_sends_its_own_key_never_the_callers() {
    let ns = namespace("gw-mantle-key");
    budget(&ns, "team", "  limit: '5.00'\n");
    let ip = pod_ip();
    pod(&ns, "sdk", "default", &[], ip);
    let mut options = Options::all(&ns);
    options.env = vec![(
        "AIGOV_MANTLE_API_KEY".into(),
        "gateway-bedrock-api-key".into(),
    )];
    let aigov = Aigov::start(options, true);
    let js = ids(&openai_js(&aigov.gateway, &ip.to_string(), &["calls"]));
    assert_eq!(js.len(), 3);
    for s in served().iter().filter(|s| js.contains(&s.request_id)) {
        assert_eq!(
            (s.signed_for.as_str(), s.access_key.as_str()),
            ("bearer", "gateway-bedrock-api-key"),
            "{s:?}"
        );
    }
    let (expected, _) = served_cost(&js);
    spent_is(&ns, expected);
}
