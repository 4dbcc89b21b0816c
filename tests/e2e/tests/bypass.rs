//! Calls made around the gateway. A boto3 client assumes the role the namespace names
//! (`aigov.dev/iam-role`) and calls the Bedrock simulator straight, as a laptop with the team's
//! role or a missed NetworkPolicy would. The controller finds the calls in Bedrock's model
//! invocation logs, signed by a session of that role with no gateway stamp: a `BypassDetected`
//! Warning Event on each of the namespace's budgets names the principal, the model and the
//! cost; the budget with `chargeBypass: true` is charged exactly what the simulator served
//! (`status.bypass`), the other nothing; both budgets' alert channels hear of it.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{log_invocations_to, served_cost};
use aigov_e2e::budgets::{budget, status, wait_event, wait_status};
use aigov_e2e::promises::Witness;
use aigov_e2e::{kubectl_ok, local_env, log_group, namespace, unique};

/// A model no other test calls.
const MODEL: &str = "apac.anthropic.claude-3-haiku-20240307-v1:0";
const CALLS: usize = 3;

/// boto3 assumes `role` and makes `CALLS` Converse calls straight to the simulator: the
/// request IDs, and the session's ARN.
fn boto3_around_the_gateway(role: &str) -> (HashSet<String>, String) {
    let env = local_env();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bypass_boto3.py");
    let calls = CALLS.to_string();
    let out = Command::new(&env.python)
        .arg(&script)
        .args([
            &env.moto_endpoint,
            &env.bedrock_sim_endpoint,
            role,
            MODEL,
            &calls,
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let ids = printed["ids"].as_array().into_iter().flatten();
    let ids = ids
        .map(|i| i.as_str().unwrap_or_default().to_owned())
        .collect();
    (
        ids,
        printed["principal"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_around_the_gateway_with_the_namespaces_role_is_detected_and_charged_where_asked() {
    let ns = namespace("bypass");
    let role = format!(
        "arn:aws:iam::123456789012:role/teams/{}",
        unique("team-app")
    );
    kubectl_ok(
        &[
            "annotate",
            "namespace",
            &ns,
            &format!("aigov.dev/iam-role={role}"),
        ],
        None,
    );
    let witness = Witness::new(&ns).await;
    let alerting = Witness::alerting(&[100]);
    budget(
        &ns,
        "charged",
        &format!("  limit: '10.00'\n  chargeBypass: true\n{alerting}"),
    );
    budget(&ns, "watching", &format!("  limit: '10.00'\n{alerting}"));
    let invocations = log_group("/aigov/e2e/bypass-invocations").await;
    let emf = witness.group.clone();
    log_invocations_to(Some(&invocations), false).await;
    let mut options = Options::all(&ns);
    options.role = "controller";
    options.extra = [
        "--emf-log-group",
        &emf,
        "--invocation-log-group",
        &invocations,
        "--invocation-log-lag",
        "3s",
        "--invocation-log-interval",
        "1s",
    ]
    .map(str::to_owned)
    .to_vec();
    let controller = Aigov::start(options, true);

    let (ids, principal) = boto3_around_the_gateway(&role);
    assert_eq!(ids.len(), CALLS);
    assert!(principal.contains(":assumed-role/"), "{principal}");
    let (cost, found) = served_cost(&ids);
    assert_eq!(found, CALLS, "the simulator served every call");

    let charged = wait_status(&ns, "charged", Duration::from_secs(40), |s| {
        s["bypass"]["calls"].as_u64() == Some(CALLS as u64)
    });
    assert_eq!(
        charged["spent"].as_str(),
        Some(cost.to_api_string().as_str()),
        "{charged}"
    );
    assert_eq!(
        charged["bypass"]["spent"].as_str(),
        Some(cost.to_api_string().as_str())
    );
    for name in ["charged", "watching"] {
        let note = wait_event(&ns, name, "BypassDetected", &principal);
        // The calls may fall in more than one window: each Event tells the cost of its own.
        assert!(note.contains(MODEL) && note.contains(&ns), "{note}");
        let charged_text = if name == "charged" {
            "charged to this budget"
        } else {
            "not charged"
        };
        assert!(note.contains(charged_text), "{note}");
    }
    // And an alert to each budget's channel, naming the principal.
    let waited = std::time::Instant::now();
    let alerted = |name: &str| {
        witness.posted().iter().any(|p| {
            p.body.contains(&format!("AIBudget {ns}/{name}")) && p.body.contains(&principal)
        })
    };
    while !(alerted("charged") && alerted("watching")) {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "no bypass alert for each budget: {:?}",
            witness.posted().iter().map(|p| &p.body).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let watching = status(&ns, "watching");
    assert_eq!(watching["requests"].as_u64(), Some(0), "{watching}");
    assert!(watching["bypass"].is_null(), "{watching}");
    log_invocations_to(None, false).await;
    drop(controller);
}
