//! Nothing invalid is accepted silently: what the controller could not use is refused at
//! `kubectl apply` with a message naming the field and the fix; what it still cannot evaluate
//! is `Ready` False with a Warning Event saying why; and what `kubectl get` and
//! `kubectl explain` print is readable and true.

use std::time::Duration;

use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::budgets::{budget, condition, wait_event, wait_status};
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

/// Refused specs: the spec, the field the error must name, and phrases of the message.
const REFUSED: &[(&str, &str, &[&str])] = &[
    (
        r#"{limit: "10", timeZone: Local}"#,
        "spec.timeZone",
        &["timeZone Local is not accepted", "name the IANA time zone"],
    ),
    (
        r#"{limit: "10", timeZone: Mars/Olympus_Mons}"#,
        "spec.timeZone",
        &[
            "Mars/Olympus_Mons is not an IANA time zone name",
            "Europe/Berlin",
        ],
    ),
    (
        r#"{limit: "10", timeZone: europe/berlin}"#,
        "spec.timeZone",
        &["is not an IANA time zone name"],
    ),
    (
        r#"{limit: "10", timeZone: posixrules}"#,
        "spec.timeZone",
        &["is not an IANA time zone name"],
    ),
    (
        r#"{limit: "10", selector: {podSelector: {matchLabels: {"bad key!": chat}}}}"#,
        "spec.selector.podSelector.matchLabels",
        &[
            "every matchLabels key must be a label key",
            "app.kubernetes.io/name",
        ],
    ),
    (
        r#"{limit: "10", selector: {podSelector: {matchExpressions: [{key: "bad key!", operator: Exists}]}}}"#,
        "spec.selector.podSelector.matchExpressions[0].key",
        &["a label key is an optional DNS subdomain prefix"],
    ),
    (
        r#"{limit: "10", selector: {podSelector: {matchExpressions: [{key: app, operator: Maybe, values: [chat]}]}}}"#,
        "spec.selector.podSelector.matchExpressions[0].operator",
        &[r#"Unsupported value: "Maybe""#, r#""DoesNotExist""#],
    ),
    (
        r#"{limit: "10", selector: {podSelector: {matchExpressions: [{key: app, operator: Exists, values: [chat]}]}}}"#,
        "spec.selector.podSelector.matchExpressions[0].values",
        &["operator Exists takes no values"],
    ),
    (
        r#"{limit: "10", selector: {podSelector: {matchExpressions: [{key: app, operator: In}]}}}"#,
        "spec.selector.podSelector.matchExpressions[0].values",
        &["operator In needs at least one value"],
    ),
    (
        r#"{limit: "10", selector: {podSelector: {matchLabels: {app: "bad value!"}}}}"#,
        "spec.selector.podSelector.matchLabels.app",
        &["should match"],
    ),
];

#[test]
fn time_zones_and_selectors_the_controller_cannot_use_are_refused_naming_the_field_and_the_fix() {
    let ns = namespace("api-refused");
    let mut failures = Vec::new();
    for (i, (spec, field, says)) in REFUSED.iter().enumerate() {
        match apply_budget(&ns, &format!("bad-{i}"), spec) {
            Ok(_) => failures.push(format!("#{i} {spec} was accepted")),
            Err(stderr) => {
                if !stderr.contains(&format!("{field}:"))
                    || !says.iter().all(|s| stderr.contains(s))
                {
                    failures.push(format!(
                        "#{i} {spec}: expected `{field}` and {says:?} in: {stderr}"
                    ));
                }
            }
        }
    }
    let left = kubectl_ok(&["get", "aib", "-n", &ns, "-o", "name"], None);
    assert!(left.trim().is_empty(), "budgets were created: {left}");
    assert!(failures.is_empty(), "misjudged:\n{}", failures.join("\n"));
}

#[test]
fn iana_zones_and_kubernetes_selectors_are_accepted() {
    let ns = namespace("api-accepted");
    let zones = [
        "Europe/Berlin",
        "UTC",
        "America/Argentina/Buenos_Aires",
        "Etc/GMT+5",
    ];
    for (i, zone) in zones.iter().enumerate() {
        let spec = format!(r#"{{limit: "10", timeZone: "{zone}"}}"#);
        if let Err(e) = apply_budget(&ns, &format!("zone-{i}"), &spec) {
            panic!("{zone} refused: {e}");
        }
    }
    let selector = r#"{limit: "10", selector: {podSelector: {matchLabels: {app.kubernetes.io/name: chat, tier: ""}, matchExpressions: [{key: example.com/team, operator: In, values: [a, b]}, {key: track, operator: NotIn, values: [canary]}, {key: gpu, operator: Exists}, {key: legacy, operator: DoesNotExist}]}}}"#;
    if let Err(e) = apply_budget(&ns, "selector", selector) {
        panic!("a Kubernetes selector refused: {e}");
    }
}

/// A clock file for a controller: `target` now.
fn clock_at(file: &std::path::Path, target: &str) {
    std::fs::write(file, format!("{target} {}", jiff::Timestamp::now())).unwrap();
}

#[test]
fn a_budget_the_controller_cannot_evaluate_is_not_ready_with_a_warning_event_saying_why() {
    // December 9999: a Monthly period would end in the year 10000, past what can be computed.
    let ns = namespace("api-unevaluable");
    budget(&ns, "monthly", "  limit: '5.00'\n");
    let clock = std::env::temp_dir().join(unique("clock"));
    clock_at(&clock, "9999-12-20T00:00:00Z");
    let mut options = Options::all(&ns);
    options.extra = vec!["--clock-file".into(), clock.display().to_string()];
    let aigov = Aigov::start(options, true);

    let s = wait_status(&ns, "monthly", Duration::from_secs(20), |s| {
        condition(s, "Ready")["status"] == "False"
    });
    let ready = condition(&s, "Ready");
    assert_eq!(ready["reason"], "EvaluationFailed", "{ready:#}");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("the current Monthly period cannot be computed in time zone UTC"),
        "{message}"
    );
    let note = wait_event(&ns, "monthly", "EvaluationFailed", "cannot be evaluated");
    assert!(note.contains(message), "{note}");
    let types = kubectl_ok(
        &[
            "get",
            "events.events.k8s.io",
            "-n",
            &ns,
            "--field-selector",
            "reason=EvaluationFailed",
            "-o",
            "jsonpath={.items[*].type}",
        ],
        None,
    );
    assert_eq!(types.trim(), "Warning");

    // Time comes back: the next reconcile finds the budget Ready again.
    clock_at(&clock, &jiff::Timestamp::now().to_string());
    kubectl_ok(
        &[
            "annotate",
            "aib",
            "-n",
            &ns,
            "monthly",
            "example.com/touched=1",
        ],
        None,
    );
    wait_status(&ns, "monthly", Duration::from_secs(20), |s| {
        condition(s, "Ready")["status"] == "True"
    });
    drop(aigov);
    let _ = std::fs::remove_file(&clock);
}

/// An RFC 3339 time 40 days from now, to the second.
fn in_40_days() -> String {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 40);
    jiff::Timestamp::from_second(at.as_second())
        .unwrap()
        .to_string()
}

#[test]
fn kubectl_get_wide_shows_when_a_budget_resets_and_when_a_price_takes_effect() {
    let ns = namespace("api-columns");
    budget(&ns, "chat", "  limit: '10'\n");
    let resets = in_40_days();
    let status = format!(r#"{{"status": {{"periodEnd": "{resets}", "phase": "Active"}}}}"#);
    kubectl_ok(
        &[
            "patch",
            "aib",
            "-n",
            &ns,
            "chat",
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ],
        None,
    );
    let wide = kubectl_ok(&["get", "aib", "-n", &ns, "chat", "-o", "wide"], None);
    assert!(
        wide.lines().next().unwrap_or_default().contains("RESETS"),
        "{wide}"
    );
    assert!(
        wide.contains(&resets) && !wide.contains("<invalid>"),
        "{wide}"
    );

    let name = unique("future-price");
    let effective = in_40_days();
    let price = format!(
        "apiVersion: aigov.dev/v1alpha1\nkind: AIModelPrice\nmetadata: {{name: {name}}}\nspec: {{model: amazon.nova-pro-v1:0, input: '0.70', output: '2.80', effectiveFrom: '{effective}'}}\n"
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&price));
    let wide = kubectl_ok(&["get", "aimp", &name, "-o", "wide"], None);
    assert!(
        wide.lines()
            .next()
            .unwrap_or_default()
            .contains("EFFECTIVE"),
        "{wide}"
    );
    assert!(
        wide.contains(&effective) && !wide.contains("<invalid>"),
        "{wide}"
    );
    kubectl_ok(&["delete", "aimp", &name], None);
}

#[test]
fn kubectl_explain_says_the_soft_limit_rate_is_for_the_budget_as_a_whole_across_replicas() {
    let out = kubectl_ok(
        &[
            "explain",
            "aibudget.spec.enforcement.softLimitRequestsPerMinute",
        ],
        None,
    );
    // explain wraps its text: compare words.
    let text = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for says in [
        "the most requests per minute the budget admits as a whole",
        "across every gateway replica and all the workloads it selects",
        "the shares add up to the rate",
    ] {
        assert!(text.contains(says), "{says:?} not in: {out}");
    }
    assert!(!text.contains("per workload"), "{out}");
}

/// Refused ClusterAIBudget specs: the spec, the field the error must name, and phrases of the
/// message. The kind flattens every AIBudget field beside `namespaceSelector`, so the API
/// server must apply the same rules there.
const REFUSED_CLUSTER: &[(&str, &str, &[&str])] = &[
    (
        r#"{limit: "10", namespaceSelector: {matchLabels: {"bad key!": prod}}}"#,
        "spec.namespaceSelector.matchLabels",
        &["every matchLabels key must be a label key"],
    ),
    (
        r#"{limit: "10", namespaceSelector: {matchExpressions: [{key: "bad key!", operator: Exists}]}}"#,
        "spec.namespaceSelector.matchExpressions[0].key",
        &["a label key is an optional DNS subdomain prefix"],
    ),
    (
        r#"{limit: "10", namespaceSelector: {matchExpressions: [{key: tier, operator: In}]}}"#,
        "spec.namespaceSelector.matchExpressions[0].values",
        &["operator In needs at least one value"],
    ),
    (
        r#"{limit: "10", namespaceSelector: {matchLabels: {tier: "bad value!"}}}"#,
        "spec.namespaceSelector.matchLabels.tier",
        &["should match"],
    ),
    (
        r#"{limit: "-5"}"#,
        "spec.limit",
        &[r#""-5""#, "should match"],
    ),
    (r#"{limit: "lots"}"#, "spec.limit", &[r#""lots""#]),
    (
        r#"{limit: "0"}"#,
        "spec.limit",
        &["limit must be greater than zero"],
    ),
    (
        r#"{limit: "10", timeZone: Mars/Olympus_Mons}"#,
        "spec.timeZone",
        &["Mars/Olympus_Mons is not an IANA time zone name"],
    ),
    (
        r#"{limit: "10", timeZone: Local}"#,
        "spec.timeZone",
        &["timeZone Local is not accepted"],
    ),
    (
        r#"{limit: "10", weekStart: Sunday}"#,
        "spec.weekStart",
        &["weekStart applies to a Weekly period only"],
    ),
];

#[test]
fn cluster_budgets_with_bad_selectors_limits_or_zones_are_refused_naming_the_field() {
    let prefix = unique("bad-caib");
    let mut failures = Vec::new();
    for (i, (spec, field, says)) in REFUSED_CLUSTER.iter().enumerate() {
        let manifest = format!(
            "apiVersion: aigov.dev/v1alpha1\nkind: ClusterAIBudget\nmetadata: {{name: {prefix}-{i}}}\nspec: {spec}\n"
        );
        let out = kubectl(&["apply", "-f", "-"], Some(&manifest));
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            failures.push(format!("#{i} {spec} was accepted"));
        } else if !stderr.contains(&format!("{field}:")) || !says.iter().all(|s| stderr.contains(s))
        {
            failures.push(format!(
                "#{i} {spec}: expected `{field}` and {says:?} in: {stderr}"
            ));
        }
    }
    let left = kubectl_ok(&["get", "caib", "-o", "name"], None);
    let created: Vec<&str> = left.lines().filter(|l| l.contains(&prefix)).collect();
    assert!(
        created.is_empty(),
        "cluster budgets were created: {created:?}"
    );
    assert!(failures.is_empty(), "misjudged:\n{}", failures.join("\n"));

    // The same selector shapes that are refused above are accepted when well formed.
    let good = format!(
        "apiVersion: aigov.dev/v1alpha1\nkind: ClusterAIBudget\nmetadata: {{name: {prefix}-good}}\nspec: {{limit: \"10\", timeZone: Europe/Berlin, namespaceSelector: {{matchLabels: {{aigov.dev/tier: prod}}, matchExpressions: [{{key: team, operator: In, values: [a]}}]}}}}\n"
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&good));
    kubectl_ok(&["delete", "caib", &format!("{prefix}-good")], None);
}
