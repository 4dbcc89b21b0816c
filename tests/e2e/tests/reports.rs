//! `kubectl aigov` against a running aigov, the real kube-apiserver and moto's CloudWatch Logs:
//! the report is the budget's status, the usage records add up to its spend, `top` and
//! `compare` are built from those records, and bad input is refused with the flag and the fix.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{HAIKU, client_from, converse, pod, pod_ip};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::{kubectl_aigov, local_env, log_group, namespace};
use serde_json::Value;

const SONNET: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

fn aigov_cli(log_group: &str, args: &[&str]) -> Output {
    kubectl_aigov(log_group, args)
        .output()
        .expect("kubectl-aigov runs")
}

fn json(log_group: &str, args: &[&str]) -> Value {
    let out = aigov_cli(log_group, args);
    assert!(
        out.status.success(),
        "kubectl aigov {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn usd(v: &Value) -> Usd {
    Usd::parse(v.as_str().unwrap_or_else(|| panic!("{v} is not an amount"))).unwrap()
}

fn refused(log_group: &str, args: &[&str]) -> String {
    let out = aigov_cli(log_group, args);
    assert!(!out.status.success(), "kubectl aigov {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_agree_with_the_status_and_with_each_other() {
    let ns = namespace("reports");
    let log_group = log_group("/aigov/reports").await;
    budget(&ns, "team", "  limit: '10.00'\n  period: Daily\n");
    let (api_ip, batch_ip) = (pod_ip(), pod_ip());
    pod(&ns, "api-7d9f8-x2x4z", "default", &[("app", "api")], api_ip);
    pod(&ns, "batch-0", "default", &[], batch_ip);
    let mut options = Options::all(&ns);
    options.extra = vec!["--emf-log-group".into(), log_group.clone()];
    let aigov = Aigov::start(options, true);

    let api = client_from(api_ip, &aigov.gateway, true).await;
    for _ in 0..3 {
        converse(&api, HAIKU, "short [sim:output_tokens=300]", 400)
            .await
            .expect("api call");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let switched = jiff::Timestamp::now().to_string();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let batch = client_from(batch_ip, &aigov.gateway, true).await;
    for _ in 0..2 {
        converse(&batch, SONNET, "long [sim:output_tokens=2000]", 2048)
            .await
            .expect("batch call");
    }
    let status = wait_status(&ns, "team", Duration::from_secs(20), |s| s["requests"] == 5);
    let spent = usd(&status["spent"]);

    // report: the status, exactly, with its workloads named as a team would.
    let report = json(&log_group, &["report", "-n", &ns, "team", "-o", "json"]);
    let row = &report[0];
    assert_eq!(usd(&row["spent"]), spent);
    assert_eq!(row["phase"], status["phase"]);
    assert_eq!(usd(&row["limit"]), Usd::parse("10").unwrap());
    let workloads: Vec<(&str, u64)> = row["topWorkloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(workloads, [("batch-0", 2), ("api", 3)], "{row:#}");
    let models: Vec<&str> = row["topModels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(models, [SONNET, HAIKU]);

    // export: one record per call, adding up to the status's spend to the micro-dollar.
    let deadline = Instant::now() + Duration::from_secs(20);
    let records = loop {
        let records = json(
            &log_group,
            &["export", "-n", &ns, "--from", "-10m", "-o", "json"],
        );
        if records.as_array().unwrap().len() >= 5 || Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 5, "{records:#?}");
    let total: Usd = records.iter().map(|r| usd(&r["cost_usd"])).sum();
    assert_eq!(total, spent);
    assert!(
        records
            .iter()
            .all(|r| r["budget"] == "team" && r["namespace"] == ns.as_str())
    );
    let csv = aigov_cli(&log_group, &["export", "-n", &ns, "--from", "-10m"]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert_eq!(csv.lines().count(), 6, "a header and five rows: {csv}");
    assert!(
        csv.lines()
            .any(|l| l.contains(&format!(",{ns}/batch-0,{SONNET},Converse,"))),
        "{csv}"
    );

    // top: the same records as rates, dearest workload first.
    let top = json(
        &log_group,
        &["top", "-n", &ns, "--window", "10m", "-o", "json"],
    );
    let top = top.as_array().unwrap();
    assert_eq!(top[0]["workload"], "batch-0");
    assert_eq!(top[1]["workload"], "api");
    assert_eq!(top[1]["requests"], 3);
    assert_eq!(usd(&top[0]["spent"]) + usd(&top[1]["spent"]), spent);

    // compare: Haiku before the switch, Sonnet after, totals equal to the spend.
    let a = format!("-10m..{switched}");
    let b = format!("{switched}..now");
    let c = json(
        &log_group,
        &["compare", "-n", &ns, "--a", &a, "--b", &b, "-o", "json"],
    );
    let row = |model: &str| {
        c["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == model)
            .unwrap_or_else(|| panic!("{model} missing from {c:#}"))
            .clone()
    };
    assert_eq!(
        (
            row(HAIKU)["beforeRequests"].as_u64(),
            row(HAIKU)["afterRequests"].as_u64()
        ),
        (Some(3), Some(0))
    );
    assert_eq!(row(SONNET)["changePercent"], Value::Null, "new in B");
    assert_eq!(
        usd(&c["total"]["before"]) + usd(&c["total"]["after"]),
        spent
    );

    // compare with only a budget: its last period (no calls) against this one so far.
    let c = json(&log_group, &["compare", "-n", &ns, "team", "-o", "json"]);
    assert_eq!(usd(&c["total"]["before"]), Usd::ZERO);
    assert_eq!(usd(&c["total"]["after"]), spent);
    assert_eq!(c["after"]["from"], status["periodStart"], "{c:#}");

    // The table for people: aligned, no colour codes without a terminal.
    let table = aigov_cli(&log_group, &["report", "-n", &ns]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(!table.contains('\x1b'), "{table}");
    assert!(
        table.lines().next().unwrap().starts_with("NAMESPACE"),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("  api ")), "{table}");

    // top --watch: refreshes until interrupted.
    let mut watching = kubectl_aigov(
        &log_group,
        &[
            "top",
            "-n",
            &ns,
            "--window",
            "10m",
            "--watch",
            "--interval",
            "1s",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("top --watch starts");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        watching.try_wait().unwrap().is_none(),
        "top --watch stopped by itself"
    );
    watching.kill().unwrap();
    let watched = String::from_utf8(watching.wait_with_output().unwrap().stdout).unwrap();
    assert!(
        watched.matches("Spend rate over").count() >= 2,
        "refreshed: {watched}"
    );
    assert!(
        watched.lines().filter(|l| l.contains(" batch-0 ")).count() >= 2,
        "{watched}"
    );

    // --kubeconfig and --context choose the cluster, whatever KUBECONFIG says.
    let kubeconfig = local_env().kubeconfig.display().to_string();
    let chosen = kubectl_aigov(
        &log_group,
        &[
            "report",
            "-n",
            &ns,
            "team",
            "-o",
            "json",
            "--kubeconfig",
            &kubeconfig,
            "--context",
            "aigov-local",
        ],
    )
    .env("KUBECONFIG", "/nonexistent/kubeconfig")
    .output()
    .unwrap();
    assert!(
        chosen.status.success(),
        "{}",
        String::from_utf8_lossy(&chosen.stderr)
    );
    let chosen: Value = serde_json::from_slice(&chosen.stdout).unwrap();
    assert_eq!(usd(&chosen[0]["spent"]), spent);
    let e = refused(&log_group, &["report", "-n", &ns, "--context", "nosuch"]);
    assert!(e.contains("nosuch"), "{e}");

    // Bad input: the flag and the fix.
    let e = refused(&log_group, &["report", "-n", &ns, "Team,x"]);
    assert!(e.contains("not an AIBudget name"), "{e}");
    let e = refused(&log_group, &["compare", "-n", &ns]);
    assert!(e.contains("--a START..END"), "{e}");
    let e = refused(&log_group, &["export", "-n", &ns, "--from", "yesterday"]);
    assert!(e.contains("--from") && e.contains("-2h"), "{e}");
    let e = refused(&log_group, &["report", "-n", &ns, "nosuch"]);
    assert!(e.contains("no AIBudget \"nosuch\""), "{e}");
    let e = refused("/aigov/no-such-group", &["top", "-n", &ns]);
    assert!(e.contains("--log-group"), "{e}");
    let e = refused(&log_group, &["report", "-n", &ns, "-o", "csv"]);
    assert!(e.contains("export only"), "{e}");
    drop(aigov);
}
