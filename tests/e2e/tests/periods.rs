//! The periods finance uses, against the real kube-apiserver: bad period settings are refused
//! at `kubectl apply` naming the field; a Quarterly budget in a DST time zone rolls over at
//! local midnight carrying its unused budget, capped (moved there with the controller's
//! `--clock-file`); and a Credit never resets while raising its limit tops it up.

use std::time::Duration;

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{HAIKU, client_from, converse, pod, pod_ip};
use aigov_e2e::budgets::{budget, set_limit, wait_status};
use aigov_e2e::{kubectl, kubectl_ok, namespace, unique};

/// Applies `spec` as AIBudget `name` in `ns`: `Ok(stdout)` or `Err(stderr)`.
fn apply_budget(ns: &str, name: &str, spec: &str) -> Result<String, String> {
    let manifest = format!(
        "apiVersion: aigov.dev/v1alpha1\nkind: AIBudget\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    );
    let out = kubectl(&["apply", "-f", "-"], Some(&manifest));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Refused specs: the spec, the field the error must name, and a phrase of the message.
const REFUSED: &[(&str, &str, &str)] = &[
    (
        r#"{limit: "10", period: Quarterly, fiscalYearStartMonth: 13}"#,
        "spec.fiscalYearStartMonth",
        "from 1 (January) to 12 (December)",
    ),
    (
        r#"{limit: "10", period: Yearly, fiscalYearStartMonth: 0}"#,
        "spec.fiscalYearStartMonth",
        "from 1 (January) to 12 (December)",
    ),
    (
        r#"{limit: "10", period: Monthly, fiscalYearStartMonth: 4}"#,
        "spec.fiscalYearStartMonth",
        "applies to Quarterly and Yearly periods only",
    ),
    (
        r#"{limit: "10", fiscalYearStartMonth: 4}"#,
        "spec.fiscalYearStartMonth",
        "applies to Quarterly and Yearly periods only",
    ),
    (
        r#"{limit: "10", period: Weekly, weekStart: Funday}"#,
        "spec.weekStart",
        r#"Unsupported value: "Funday""#,
    ),
    (
        r#"{limit: "10", period: Weekly, weekStart: sunday}"#,
        "spec.weekStart",
        r#""Sunday""#,
    ),
    (
        r#"{limit: "10", period: Daily, weekStart: Sunday}"#,
        "spec.weekStart",
        "applies to a Weekly period only",
    ),
    (
        r#"{limit: "10", rollover: {maxPercent: 101}}"#,
        "spec.rollover.maxPercent",
        "a percent of the limit from 0 to 100",
    ),
    (
        r#"{limit: "10", rollover: {maxPercent: -1}}"#,
        "spec.rollover.maxPercent",
        "greater than or equal to 0",
    ),
    (
        r#"{limit: "10", period: Credit, rollover: {maxPercent: 50}}"#,
        "spec.rollover",
        "a Credit never ends",
    ),
    (
        r#"{limit: "10", period: Fortnightly}"#,
        "spec.period",
        r#""Quarterly", "Yearly", "Credit""#,
    ),
];

#[test]
fn bad_period_settings_are_refused_naming_the_field_and_good_ones_are_accepted() {
    let ns = namespace("periods-refused");
    let mut failures = Vec::new();
    for (i, (spec, field, says)) in REFUSED.iter().enumerate() {
        match apply_budget(&ns, &format!("bad-{i}"), spec) {
            Ok(_) => failures.push(format!("#{i} {spec} was accepted")),
            Err(stderr) if !stderr.contains(&format!("{field}:")) || !stderr.contains(says) => {
                failures.push(format!(
                    "#{i} {spec}: expected `{field}` and {says:?} in: {stderr}"
                ))
            }
            Err(_) => {}
        }
    }
    let left = kubectl_ok(&["get", "aib", "-n", &ns, "-o", "name"], None);
    assert!(left.trim().is_empty(), "budgets were created: {left}");
    assert!(failures.is_empty(), "misjudged:\n{}", failures.join("\n"));

    let accepted = [
        r#"{limit: "10", period: Weekly, weekStart: Sunday}"#,
        r#"{limit: "10", period: Quarterly, fiscalYearStartMonth: 4, rollover: {maxPercent: 0}}"#,
        r#"{limit: "10", period: Yearly, fiscalYearStartMonth: 10, rollover: {maxPercent: 100}}"#,
        r#"{limit: "10", period: Quarterly, timeZone: America/New_York}"#,
        r#"{limit: "10", period: Credit}"#,
    ];
    for (i, spec) in accepted.iter().enumerate() {
        if let Err(e) = apply_budget(&ns, &format!("good-{i}"), spec) {
            panic!("{spec} refused: {e}");
        }
    }
}

fn usd(s: &serde_json::Value, field: &str) -> Usd {
    Usd::parse(s[field].as_str().unwrap_or("0")).unwrap_or_else(|_| panic!("{field}: {s:#}"))
}

/// Sets the controller's clock (a `--clock-file`) to `target`, and touches the budget so it is
/// reconciled at once.
fn clock_to(file: &std::path::Path, target: jiff::Timestamp, ns: &str, name: &str) {
    std::fs::write(file, format!("{target} {}", jiff::Timestamp::now())).unwrap();
    let touch = format!(
        "example.com/touched={}",
        jiff::Timestamp::now().as_millisecond()
    );
    kubectl_ok(
        &["annotate", "--overwrite", "aib", "-n", ns, name, &touch],
        None,
    );
}

/// A controller and gateway for `ns` whose clock is the file returned, set to `start`.
fn start_at(ns: &str, start: &str) -> (Aigov, std::path::PathBuf) {
    let clock = std::env::temp_dir().join(unique("clock"));
    std::fs::write(&clock, format!("{start} {}", jiff::Timestamp::now())).unwrap();
    let mut options = Options::all(ns);
    options.extra = vec!["--clock-file".into(), clock.display().to_string()];
    (Aigov::start(options, true), clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quarterly_budget_in_new_york_rolls_over_at_local_midnight_carrying_the_capped_unused_budget()
 {
    let ns = namespace("periods-quarter");
    // Q1 2027 in New York (fiscal year from January) runs from 00:00 EST on 1 January to
    // 00:00 EDT on 1 April: DST began on 14 March, so the quarter is an hour short.
    budget(
        &ns,
        "q",
        "  limit: '0.02'\n  period: Quarterly\n  timeZone: America/New_York\n  rollover: {maxPercent: 50}\n",
    );
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let (aigov, clock) = start_at(&ns, "2027-03-31T12:00:00Z");
    let s = wait_status(&ns, "q", Duration::from_secs(20), |s| {
        s["periodEnd"].is_string()
    });
    assert_eq!(s["periodStart"], "2027-01-01T05:00:00Z");
    assert_eq!(s["periodEnd"], "2027-04-01T04:00:00Z");
    assert_eq!(s["rolledOver"], "0.00");
    let client = client_from(ip, &aigov.gateway, false).await;
    converse(&client, HAIKU, "spend [sim:output_tokens=1000]", 1000)
        .await
        .expect("call");
    let s = wait_status(&ns, "q", Duration::from_secs(20), |s| s["requests"] == 1);
    let spent = usd(&s, "spent");
    let limit = Usd::parse("0.02").unwrap();
    assert!(
        !spent.is_zero() && spent < limit,
        "one call spends some: {spent}"
    );

    // Just before local midnight nothing rolls over; at midnight EDT it does.
    let end: jiff::Timestamp = "2027-04-01T04:00:00Z".parse().unwrap();
    clock_to(&clock, end - jiff::SignedDuration::from_secs(30), &ns, "q");
    std::thread::sleep(Duration::from_secs(2));
    let s = wait_status(&ns, "q", Duration::from_secs(5), |s| s["requests"] == 1);
    assert_eq!(s["periodStart"], "2027-01-01T05:00:00Z");
    clock_to(&clock, end + jiff::SignedDuration::from_secs(2), &ns, "q");
    let s = wait_status(&ns, "q", Duration::from_secs(20), |s| {
        s["periodStart"] == "2027-04-01T04:00:00Z"
    });
    assert_eq!(s["periodEnd"], "2027-07-01T04:00:00Z");
    assert_eq!(s["spent"], "0.00");
    assert_eq!(usd(&s["history"][0], "spent"), spent);
    // Unused is $0.02 - spent; at most 50% of the $0.02 limit is carried.
    let cap = Usd::parse("0.01").unwrap();
    let carried = limit.saturating_sub(spent).min(cap);
    assert_eq!(usd(&s, "rolledOver"), carried);
    assert_eq!(usd(&s, "effectiveLimit"), limit + carried);
    drop(aigov);

    // A new leader restores the carried amount from status.
    let (_aigov, clock2) = start_at(
        &ns,
        &(end + jiff::SignedDuration::from_secs(60)).to_string(),
    );
    clock_to(&clock2, end + jiff::SignedDuration::from_secs(60), &ns, "q");
    std::thread::sleep(Duration::from_secs(3));
    let s = wait_status(&ns, "q", Duration::from_secs(20), |s| {
        s["periodStart"] == "2027-04-01T04:00:00Z"
    });
    assert_eq!(usd(&s, "rolledOver"), carried);
    assert_eq!(usd(&s, "effectiveLimit"), limit + carried);
    let _ = std::fs::remove_file(&clock);
    let _ = std::fs::remove_file(&clock2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_credit_never_resets_and_raising_its_limit_tops_it_up_and_readmits_calls() {
    let ns = namespace("periods-credit");
    budget(&ns, "credit", "  limit: '10.00'\n  period: Credit\n");
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let (aigov, clock) = start_at(&ns, "2027-01-15T12:00:00Z");
    let client = client_from(ip, &aigov.gateway, false).await;
    converse(&client, HAIKU, "spend [sim:output_tokens=500]", 500)
        .await
        .expect("call 1");
    let s = wait_status(&ns, "credit", Duration::from_secs(20), |s| {
        s["requests"] == 1
    });
    let spent = usd(&s, "spent");
    assert_eq!(s["periodEnd"], aigov_api::period::CREDIT_END);
    assert!(
        s["forecast"].is_null(),
        "a credit has no end to forecast: {s:#}"
    );

    // Years later nothing has reset.
    clock_to(
        &clock,
        "2031-06-01T00:00:00Z".parse().unwrap(),
        &ns,
        "credit",
    );
    std::thread::sleep(Duration::from_secs(2));
    let s = wait_status(&ns, "credit", Duration::from_secs(5), |s| {
        s["requests"] == 1
    });
    assert_eq!(usd(&s, "spent"), spent);
    assert!(
        s["history"].as_array().is_none_or(|h| h.is_empty()),
        "{s:#}"
    );

    // Used up: the limit is what is spent, and calls are refused.
    set_limit(&ns, "credit", spent);
    wait_status(&ns, "credit", Duration::from_secs(20), |s| {
        s["phase"] == "Throttled"
    });
    tokio::time::sleep(Duration::from_millis(600)).await; // the gateway's next exchange
    let err = converse(&client, HAIKU, "more", 100)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, aws_sdk_bedrockruntime::Error::AccessDeniedException(_)),
        "{err:?}"
    );

    // A top-up: the limit raised by $5.00 re-admits calls, on top of what was spent.
    set_limit(&ns, "credit", spent + Usd::parse("5").unwrap());
    wait_status(&ns, "credit", Duration::from_secs(20), |s| {
        s["phase"] == "Active"
    });
    let mut refusals = Vec::new();
    for _ in 0..20 {
        match converse(&client, HAIKU, "again [sim:output_tokens=10]", 10).await {
            Ok(_) => break,
            Err(e) => refusals.push(format!("{e:?}")),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        refusals.len() < 20,
        "the topped-up credit admits calls again: {refusals:#?}"
    );
    // Refusals count as requests too: the admitted call shows as more spend, on top of the old.
    let s = wait_status(&ns, "credit", Duration::from_secs(20), |s| {
        usd(s, "spent") > spent
    });
    assert_eq!(s["periodEnd"], aigov_api::period::CREDIT_END);
    assert!(
        s["history"].as_array().is_none_or(|h| h.is_empty()),
        "{s:#}"
    );
    let _ = std::fs::remove_file(&clock);
}
