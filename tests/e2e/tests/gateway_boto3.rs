//! boto3 through the metering gateway, unchanged but for its endpoint URL: the four
//! operations are charged exactly, and the soft-limit throttle and the exhausted budget reach
//! boto3 as its own `ThrottlingException` and `AccessDeniedException`.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{pod, pod_ip, served_cost};
use aigov_e2e::budgets::{budget, set_limit, wait_status};
use aigov_e2e::{local_env, namespace};

fn boto3(gateway: &str, ip: &str, args: &[&str]) -> String {
    let env = local_env();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway_boto3.py");
    let out = Command::new(&env.python)
        .arg(&script)
        .args([gateway, ip])
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "boto3 {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn boto3_calls_are_metered_and_refusals_are_its_typed_exceptions() {
    let ns = namespace("gw-boto3");
    budget(
        &ns,
        "team",
        "  limit: '1.00'\n  enforcement: {action: Throttle, softLimitPercent: 1, softLimitRequestsPerMinute: 1}\n",
    );
    let ip = pod_ip();
    pod(&ns, "py", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let ip = ip.to_string();

    let out = boto3(&aigov.gateway, &ip, &["calls"]);
    let ids: HashSet<String> =
        serde_json::from_str(out.lines().last().unwrap_or("[]")).expect("request IDs");
    assert_eq!(ids.len(), 4);
    let (expected, count) = served_cost(&ids);
    assert_eq!(count, 4);
    wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["spent"].as_str().and_then(|v| Usd::parse(v).ok()) == Some(expected) && s["requests"] == 4
    });

    // The limit lowered to what is spent: boto3 sees the exhausted budget.
    set_limit(&ns, "team", expected);
    wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["phase"] == "Throttled"
    });
    std::thread::sleep(Duration::from_millis(600));
    let denied = boto3(
        &aigov.gateway,
        &ip,
        &["expect-denied", &format!("AIBudget {ns}/team")],
    );
    assert!(denied.contains("resets at"), "{denied}");
    // Ten times what is spent: 10%, past the 1% soft limit of one call a minute.
    set_limit(&ns, "team", expected.scaled(rust_decimal::Decimal::TEN));
    wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["phase"] == "Active"
    });
    std::thread::sleep(Duration::from_millis(600));
    let throttled = boto3(&aigov.gateway, &ip, &["expect-throttle"]);
    assert!(throttled.contains("requests per minute"), "{throttled}");
}
