//! AIBudgetTemplates against the real kube-apiserver and a real controller: 50 namespaces
//! labelled for a template get their budgets within 10 s, an edit of the template reaches all
//! 50, a namespace annotation overrides one limit (and a bad one is reported), a hand edit is
//! put back, unlabelling removes a budget unless it is kept, a second template and a budget
//! made by hand are conflicts stated in status, deleting the template deletes what it kept
//! (not the kept one), the example works, and a template with a bad budget spec is refused
//! naming the field.
//!
//! One test runs the controller: it watches every namespace (templates span them), so two
//! such tests at once would both keep the same templates.

use std::path::Path;
use std::time::{Duration, Instant};

use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::budgets::{condition, events};
use aigov_e2e::{kubectl, kubectl_ok, namespace, unique};

/// Polls `probe` every 200 ms until it gives a value, or panics after `within` with `what`
/// and the last thing `probe` saw (its `Err`).
fn eventually<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what} did not happen within {within:?}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&kubectl_ok(args, None)).expect("json")
}

/// `(namespace, spec.limit)` of every AIBudget the template `name` keeps, by namespace.
fn stamped(name: &str) -> Vec<(String, String)> {
    let label = format!("aigov.dev/template={name}");
    let list = json(&["get", "aib", "-A", "-l", &label, "-o", "json"]);
    let mut out: Vec<(String, String)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                b["spec"]["limit"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn budget_json(ns: &str, name: &str) -> Option<serde_json::Value> {
    let out = kubectl(&["get", "aib", "-n", ns, name, "-o", "json"], None);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("json"))
}

fn template_status(name: &str) -> serde_json::Value {
    json(&["get", "aibt", name, "-o", "json"])["status"].clone()
}

/// Applies an AIBudgetTemplate: `Ok(stdout)` or `Err(stderr)`.
fn apply_template(name: &str, selector_key: &str, budget_spec: &str) -> Result<String, String> {
    let manifest = format!(
        "apiVersion: aigov.dev/v1alpha1\nkind: AIBudgetTemplate\nmetadata: {{name: {name}}}\nspec:\n  namespaceSelector:\n    matchLabels: {{{selector_key}: \"yes\"}}\n  budget:\n    name: team-default\n    labels: {{cost-centre: \"42\"}}\n    spec: {budget_spec}\n"
    );
    let out = kubectl(&["apply", "-f", "-"], Some(&manifest));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_template_whose_budget_spec_is_invalid_is_refused_naming_the_field() {
    let refused = [
        (
            r#"{limit: "100.00", thresholds: [80, 50]}"#,
            "spec.budget.spec.thresholds",
            "strictly ascending",
        ),
        (
            r#"{limit: "0"}"#,
            "spec.budget.spec.limit",
            "greater than zero",
        ),
        (
            r#"{limit: "10", period: Monthly, fiscalYearStartMonth: 4}"#,
            "spec.budget.spec.fiscalYearStartMonth",
            "applies to Quarterly and Yearly periods only",
        ),
    ];
    for (i, (spec, field, says)) in refused.iter().enumerate() {
        let name = unique("bad-template");
        let stderr = apply_template(&name, "example.com/none", spec)
            .err()
            .unwrap_or_else(|| panic!("#{i} {spec} was accepted"));
        assert!(
            stderr.contains(&format!("{field}:")) && stderr.contains(says),
            "#{i} {spec}: expected `{field}` and {says:?} in: {stderr}"
        );
    }
    // The controller's own label is refused in budget.labels.
    let manifest = format!(
        "apiVersion: aigov.dev/v1alpha1\nkind: AIBudgetTemplate\nmetadata: {{name: {}}}\nspec:\n  budget:\n    name: b\n    labels: {{aigov.dev/template: x}}\n    spec: {{limit: \"1\"}}\n",
        unique("bad-template")
    );
    let out = kubectl(&["apply", "-f", "-"], Some(&manifest));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("spec.budget.labels")
            && stderr.contains("controller's own"),
        "{stderr}"
    );
}

/// Creates `n` namespaces named `prefix-i` in one request.
fn namespaces(prefix: &str, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let manifest: String = names
        .iter()
        .map(|n| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}}}\n---\n"))
        .collect();
    kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    names
}

fn label(namespaces: &[String], label: &str) {
    let mut args = vec!["label", "--overwrite", "namespace"];
    args.extend(namespaces.iter().map(String::as_str));
    args.push(label);
    kubectl_ok(&args, None);
}

#[test]
fn a_template_keeps_one_budget_in_each_of_50_labelled_namespaces() {
    let system = namespace("templates-system");
    let controller = Options {
        role: "controller",
        scoped: false,
        ..Options::all(&system)
    };
    let aigov = Aigov::start(controller, true);
    let key = format!("e2e.aigov.dev/{}", unique("t"));
    let selected = format!("{key}=yes");
    let first = unique("standard");
    apply_template(
        &first,
        &key,
        r#"{limit: "100.00", thresholds: [50, 80, 100]}"#,
    )
    .expect("template");
    let names = namespaces(&unique("team"), 50);

    // Labelled: all 50 within 10 s.
    let labelled = Instant::now();
    label(&names, &selected);
    eventually(Duration::from_secs(10), "50 budgets", || {
        let got = stamped(&first);
        (got.len() == 50)
            .then_some(())
            .ok_or(format!("{} budgets", got.len()))
    });
    let took = labelled.elapsed();
    eprintln!("50 namespaces got their budgets {took:?} after the label");
    let b = budget_json(&names[0], "team-default").expect("a budget");
    assert_eq!(b["metadata"]["labels"]["cost-centre"], "42");
    assert_eq!(
        b["metadata"]["ownerReferences"][0]["kind"],
        "AIBudgetTemplate"
    );
    assert_eq!(b["metadata"]["ownerReferences"][0]["name"], first.as_str());
    eventually(Duration::from_secs(10), "status: 50 budgets", || {
        let s = template_status(&first);
        (s["budgets"] == 50 && condition(&s, "Ready")["status"] == "True")
            .then_some(())
            .ok_or(s.to_string())
    });

    // Editing the template reaches all 50.
    apply_template(
        &first,
        &key,
        r#"{limit: "150.00", thresholds: [50, 80, 100]}"#,
    )
    .expect("edit");
    eventually(Duration::from_secs(10), "the new limit in all 50", || {
        let got = stamped(&first);
        let at = got.iter().filter(|(_, l)| l == "150.00").count();
        (at == 50)
            .then_some(())
            .ok_or(format!("{at} of {}", got.len()))
    });

    overrides_and_hand_edits(&first, &names);
    unlabelling_and_keeping(&first, &names, &key);
    conflicts(&first, &names, &key);
    the_example();

    // Deleting the template deletes what it kept, except the kept budget.
    kubectl_ok(&["delete", "aibt", &first], None);
    eventually(Duration::from_secs(10), "the budgets deleted", || {
        let left = stamped(&first);
        (left.len() == 1 && left[0].0 == names[4])
            .then_some(())
            .ok_or(format!("{left:?}"))
    });
    assert!(aigov.get("/readyz").is_some());
}

/// A namespace's limit annotation, a bad one, and a hand edit put back.
fn overrides_and_hand_edits(template: &str, names: &[String]) {
    kubectl_ok(
        &[
            "annotate",
            "--overwrite",
            "ns",
            &names[0],
            "aigov.dev/budget-limit=1200",
        ],
        None,
    );
    kubectl_ok(
        &[
            "annotate",
            "--overwrite",
            "ns",
            &names[1],
            "aigov.dev/budget-limit=$5",
        ],
        None,
    );
    eventually(Duration::from_secs(10), "the override", || {
        let limit = budget_json(&names[0], "team-default").map(|b| b["spec"]["limit"].clone());
        (limit == Some("1200.00".into()))
            .then_some(())
            .ok_or(format!("{limit:?}"))
    });
    let s = eventually(Duration::from_secs(10), "overridden in status", || {
        let s = template_status(template);
        (s["overriddenCount"] == 2)
            .then_some(s.clone())
            .ok_or(s.to_string())
    });
    let overridden = s["overridden"].as_array().expect("overridden").clone();
    assert_eq!(overridden[0]["namespace"], names[0].as_str(), "{s:#}");
    assert_eq!(overridden[0]["limit"], "1200.00");
    assert_eq!(overridden[1]["namespace"], names[1].as_str());
    let why = overridden[1]["limit"].as_str().unwrap_or_default();
    assert!(why.contains("is not a limit"), "{why}");
    let b = budget_json(&names[1], "team-default").expect("budget");
    assert_eq!(
        b["spec"]["limit"], "150.00",
        "a bad override keeps the template's limit"
    );
    eventually(Duration::from_secs(10), "an OverrideInvalid Event", || {
        let found = events("default", template)
            .into_iter()
            .any(|(r, n)| r == "OverrideInvalid" && n.contains(&names[1]));
        found
            .then_some(())
            .ok_or_else(|| format!("{:?}", events("default", template)))
    });

    // A hand edit of a field the template sets is put back.
    kubectl_ok(
        &[
            "patch",
            "aib",
            "-n",
            &names[2],
            "team-default",
            "--type=merge",
            "-p",
            r#"{"spec":{"limit":"9999.00"}}"#,
        ],
        None,
    );
    eventually(Duration::from_secs(10), "the hand edit put back", || {
        let limit = budget_json(&names[2], "team-default").map(|b| b["spec"]["limit"].clone());
        (limit == Some("150.00".into()))
            .then_some(())
            .ok_or(format!("{limit:?}"))
    });
}

/// Unlabelling removes a budget; one annotated `aigov.dev/keep` stays.
fn unlabelling_and_keeping(template: &str, names: &[String], key: &str) {
    kubectl_ok(&["label", "ns", &names[3], &format!("{key}-")], None);
    eventually(
        Duration::from_secs(10),
        "the unlabelled namespace's budget deleted",
        || {
            budget_json(&names[3], "team-default")
                .is_none()
                .then_some(())
                .ok_or("still there".into())
        },
    );
    kubectl_ok(
        &[
            "annotate",
            "aib",
            "-n",
            &names[4],
            "team-default",
            "aigov.dev/keep=true",
        ],
        None,
    );
    eventually(Duration::from_secs(10), "the kept budget released", || {
        let b = budget_json(&names[4], "team-default").expect("budget");
        b["metadata"]["ownerReferences"]
            .is_null()
            .then_some(())
            .ok_or(b["metadata"].to_string())
    });
    kubectl_ok(&["label", "ns", &names[4], &format!("{key}-")], None);
    eventually(Duration::from_secs(10), "status: 48 budgets", || {
        let s = template_status(template);
        (s["budgets"] == 48).then_some(()).ok_or(s.to_string())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        budget_json(&names[4], "team-default").is_some(),
        "the kept budget was deleted"
    );
}

/// A second template stamping the same name, and a budget of that name made by hand.
fn conflicts(first: &str, names: &[String], key: &str) {
    let hand = namespace("hand");
    kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: aigov.dev/v1alpha1\nkind: AIBudget\nmetadata: {{name: team-default, namespace: {hand}}}\nspec: {{limit: \"5.00\"}}\n"
        )),
    );
    kubectl_ok(&["label", "ns", &hand, &format!("{key}=yes")], None);
    // Created a second later, so it is the newer by creation time.
    std::thread::sleep(Duration::from_millis(1100));
    let second = unique("second");
    apply_template(&second, key, r#"{limit: "7.00"}"#).expect("second template");
    let s = eventually(
        Duration::from_secs(10),
        "the first template's conflict",
        || {
            let s = template_status(first);
            let listed = s["conflicts"].as_array().map_or(0, Vec::len);
            (listed == 1).then_some(s.clone()).ok_or(s.to_string())
        },
    );
    assert_eq!(s["conflicts"][0]["namespace"], hand.as_str());
    assert_eq!(s["conflicts"][0]["keptBy"], "a person");
    assert_eq!(condition(&s, "Conflict")["status"], "True");
    let b = budget_json(&hand, "team-default").expect("the hand-made budget");
    assert_eq!(
        b["spec"]["limit"], "5.00",
        "a hand-made budget is never overwritten"
    );
    assert!(b["metadata"]["labels"]["aigov.dev/template"].is_null());
    let s = eventually(
        Duration::from_secs(10),
        "the second template's conflicts",
        || {
            let s = template_status(&second);
            (s["conflicts"].as_array().map_or(0, Vec::len) == 49)
                .then_some(s.clone())
                .ok_or(s.to_string())
        },
    );
    assert_eq!(s["budgets"], 0);
    let kept_by: Vec<&str> = s["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["keptBy"].as_str())
        .collect();
    assert_eq!(
        kept_by.iter().filter(|k| **k == "a person").count(),
        1,
        "{kept_by:?}"
    );
    let by_first = format!("AIBudgetTemplate {first}");
    assert_eq!(
        kept_by.iter().filter(|k| **k == by_first).count(),
        48,
        "{kept_by:?}"
    );
    assert_eq!(condition(&s, "Conflict")["reason"], "NameTaken");
    assert!(stamped(&second).is_empty());
    assert!(stamped(first).iter().all(|(_, l)| l != "7.00"));
    kubectl_ok(&["delete", "aibt", &second], None);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        stamped(first).len(),
        49,
        "deleting the loser touched the winner's budgets"
    );
    let _ = names;
}

/// `examples/budgets/template.yaml` stamps its budget into a namespace labelled as it says.
fn the_example() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/budgets/template.yaml");
    let path = path.display().to_string();
    kubectl_ok(&["apply", "-f", &path], None);
    let ns = namespace("example-team");
    kubectl_ok(
        &["label", "ns", &ns, "aigov.dev/budget-template=standard"],
        None,
    );
    kubectl_ok(
        &["annotate", "ns", &ns, "aigov.dev/budget-limit=400.00"],
        None,
    );
    let b = eventually(Duration::from_secs(10), "the example's budget", || {
        budget_json(&ns, "team-monthly").ok_or("none yet".into())
    });
    assert_eq!(b["spec"]["limit"], "400.00");
    assert_eq!(
        b["metadata"]["labels"]["aigov.dev/template"],
        "team-standard"
    );
    kubectl_ok(&["delete", "-f", &path], None);
    eventually(
        Duration::from_secs(10),
        "the example's budget deleted",
        || {
            budget_json(&ns, "team-monthly")
                .is_none()
                .then_some(())
                .ok_or("still there".into())
        },
    );
}
