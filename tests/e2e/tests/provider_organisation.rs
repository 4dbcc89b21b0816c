//! `aigov_cluster_budget` and `aigov_budget_template` with the real CLIs (OpenTofu, and
//! `terraform` when on PATH) against the local kube-apiserver: apply, an empty plan, an update in
//! place, import, a deletion behind Terraform's back detected, bad values refused at plan time
//! on the attribute, destroy.

use aigov_e2e::terraform::{Cli, Workspace, clis, provider_block};
use aigov_e2e::{kubectl, kubectl_ok, unique};

/// One kind's lifecycle: the configuration created, the same changed in place, and what the
/// change must have written (a JSONPath into the object and its value).
struct Case {
    kind: &'static str,
    address: &'static str,
    name: String,
    created: String,
    updated: String,
    written: (&'static str, &'static str),
}

fn config(resource: &str) -> String {
    format!("{}\n{resource}", provider_block(""))
}

fn get(kind: &str, name: &str, jsonpath: &str) -> String {
    kubectl_ok(
        &["get", kind, name, "-o", &format!("jsonpath={{{jsonpath}}}")],
        None,
    )
}

fn exists(kind: &str, name: &str) -> bool {
    kubectl(&["get", kind, name], None).status.success()
}

fn lifecycle(cli: &Cli, case: &Case) {
    let (kind, address, name) = (case.kind, case.address, case.name.as_str());
    let ws = Workspace::new(cli, &config(&case.created));

    ws.apply();
    assert!(
        exists(kind, name),
        "{} did not create {kind} {name}",
        cli.name
    );
    ws.assert_no_changes("after create");
    let created = ws.state_of(address);
    assert_eq!(created["id"], name);

    ws.write(&config(&case.updated));
    assert_eq!(
        ws.plan_changes(),
        [(address.to_owned(), vec!["update".to_owned()])],
        "an in-place update"
    );
    ws.apply();
    ws.assert_no_changes("after update");
    let (path, want) = case.written;
    assert_eq!(get(kind, name, path), want, "the update wrote {path}");

    // Import: forget it, import it by its name, and get the same state apply wrote.
    let applied = ws.state_of(address);
    ws.ok(&["state", "rm", address]);
    ws.ok(&["import", "-input=false", address, name]);
    assert_eq!(
        ws.state_of(address),
        applied,
        "import reads back what apply wrote"
    );
    ws.assert_no_changes("after import");

    // Deleted behind Terraform's back: the plan creates it again.
    kubectl_ok(&["delete", kind, name], None);
    assert_eq!(
        ws.plan_changes(),
        [(address.to_owned(), vec!["create".to_owned()])],
        "the deletion is detected"
    );
    ws.apply();
    ws.assert_no_changes("after re-creating");

    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    assert!(!exists(kind, name), "destroy left {kind} {name} behind");
}

#[test]
fn cluster_budget_lifecycle_with_the_real_cli() {
    for cli in clis() {
        let name = unique("org-cap");
        let created = format!(
            r#"resource "aigov_cluster_budget" "org" {{
  name  = "{name}"
  limit = 5000
  namespace_selector {{
    match_labels = {{ "aigov.dev/tier" = "production" }}
  }}
  alerts {{
    sns_topic_arn = "arn:aws:sns:us-east-1:123456789012:finops"
  }}
}}"#
        );
        let updated = format!(
            r#"resource "aigov_cluster_budget" "org" {{
  name                    = "{name}"
  limit                   = 7500.25
  period                  = "Quarterly"
  fiscal_year_start_month = 4
  time_zone               = "Europe/Berlin"
  namespace_selector {{
    match_expressions {{
      key      = "team"
      operator = "In"
      values   = ["research", "chat"]
    }}
    match_expressions {{
      key      = "sandbox"
      operator = "DoesNotExist"
    }}
  }}
  selector {{
    service_accounts = ["inference"]
    pod_selector {{
      match_labels = {{ app = "notebook" }}
    }}
  }}
  models {{
    allow = ["anthropic.claude-*"]
    deny  = ["anthropic.claude-opus-*"]
  }}
  thresholds = [50, 90, 100]
  rollover {{
    max_percent = 25
  }}
  enforcement {{
    action                         = "Downgrade"
    soft_limit_percent             = 80
    soft_limit_requests_per_minute = 120
    fail_mode                      = "Open"
    downgrade {{
      from = "anthropic.claude-sonnet-4*"
      to   = "anthropic.claude-3-5-haiku-20241022-v1:0"
    }}
  }}
  alerts {{
    sns_topic_arn = "arn:aws:sns:us-east-1:123456789012:finops"
    cooldown      = "30m"
  }}
  escalation {{
    after         = "1h"
    sns_topic_arn = "arn:aws:sns:us-east-1:123456789012:cfo"
  }}
  attribution {{
    keys    = ["tenant"]
    require = ["user"]
  }}
  limit_per_value {{
    key   = "user"
    limit = 25
  }}
}}"#
        );
        lifecycle(
            &cli,
            &Case {
                kind: "clusteraibudget",
                address: "aigov_cluster_budget.org",
                name,
                created,
                updated,
                written: (
                    ".spec.enforcement.downgrade[0].to",
                    "anthropic.claude-3-5-haiku-20241022-v1:0",
                ),
            },
        );
    }
}

#[test]
fn budget_template_lifecycle_with_the_real_cli() {
    for cli in clis() {
        let name = unique("team-default");
        let created = format!(
            r#"resource "aigov_budget_template" "teams" {{
  name        = "{name}"
  budget_name = "team-default"
  namespace_selector {{
    match_expressions {{
      key      = "team"
      operator = "Exists"
    }}
  }}
  limit = 500
}}"#
        );
        let updated = format!(
            r#"resource "aigov_budget_template" "teams" {{
  name          = "{name}"
  budget_name   = "team-monthly"
  budget_labels = {{ "cost-center" = "engineering" }}
  namespace_selector {{
    match_labels = {{ "aigov.dev/budgeted" = "true" }}
  }}
  limit      = 750.5
  period     = "Weekly"
  week_start = "Sunday"
  models {{
    allow = ["anthropic.claude-*", "amazon.nova-*"]
  }}
  enforcement {{
    action = "Throttle"
  }}
}}"#
        );
        lifecycle(
            &cli,
            &Case {
                kind: "aibudgettemplate",
                address: "aigov_budget_template.teams",
                name,
                created,
                updated,
                written: (".spec.budget.spec.limit", "750.50"),
            },
        );
    }
}

/// A bad configuration, the line Terraform must underline, and what the message must say.
const BAD: &[(&str, &str, &str)] = &[
    (
        r#"resource "aigov_cluster_budget" "b" {
  name  = "b"
  limit = -5
}"#,
        "limit = -5",
        "negative",
    ),
    (
        r#"resource "aigov_cluster_budget" "b" {
  name      = "b"
  limit     = 5
  time_zone = "Mars/Olympus"
}"#,
        "time_zone = \"Mars/Olympus\"",
        "Mars/Olympus",
    ),
    (
        r#"resource "aigov_cluster_budget" "b" {
  name       = "b"
  limit      = 5
  week_start = "Sunday"
}"#,
        "week_start = \"Sunday\"",
        "Weekly",
    ),
    (
        r#"resource "aigov_cluster_budget" "b" {
  name       = "b"
  limit      = 5
  thresholds = [80, 50]
}"#,
        "thresholds = [80, 50]",
        "ascending",
    ),
    (
        r#"resource "aigov_cluster_budget" "b" {
  name  = "b"
  limit = 5
  namespace_selector {
    match_expressions {
      key      = "team"
      operator = "In"
    }
  }
}"#,
        "operator = \"In\"",
        "needs at least one value",
    ),
    (
        r#"resource "aigov_budget_template" "t" {
  name          = "t"
  budget_name   = "Team_Default"
  limit         = 5
}"#,
        "budget_name   = \"Team_Default\"",
        "Kubernetes object name",
    ),
    (
        r#"resource "aigov_budget_template" "t" {
  name          = "t"
  budget_name   = "team"
  budget_labels = { "aigov.dev/template" = "x" }
  limit         = 5
}"#,
        "budget_labels",
        "controller's own",
    ),
    (
        r#"resource "aigov_budget_template" "t" {
  name        = "t"
  budget_name = "team"
  limit       = 5
  models {
    allow = ["anthropic.claude-**"]
  }
}"#,
        "allow = [\"anthropic.claude-**\"]",
        "single *",
    ),
];

#[test]
fn bad_organisation_budgets_are_refused_at_plan_time_on_the_attribute() {
    for cli in clis() {
        let ws = Workspace::new(&cli, &provider_block(""));
        for (resource, underlined, says) in BAD {
            ws.write(&config(resource));
            ws.assert_refused_on(underlined, says);
        }
    }
}
