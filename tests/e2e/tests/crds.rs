//! The aigov CRDs in the real kube-apiserver: installed, Established, defaulted, printed, and
//! refusing bad manifests with a message that names the field.

use aigov_api::{AIBudget, AIModelPrice};
use aigov_e2e::{kube_client, kubectl, kubectl_ok, namespace, unique};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};

#[tokio::test]
async fn the_crds_are_installed_and_established() {
    let crds: Api<CustomResourceDefinition> = Api::all(kube_client().await);
    for name in ["aibudgets.aigov.dev", "aimodelprices.aigov.dev"] {
        let crd = crds.get(name).await.unwrap();
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{name} is not Established");
    }
}

#[tokio::test]
async fn a_valid_budget_is_accepted_defaulted_and_printed_with_its_columns() {
    let ns = namespace("crd-valid");
    let manifest = format!(
        r#"
apiVersion: aigov.dev/v1alpha1
kind: AIBudget
metadata: {{name: chat-monthly, namespace: {ns}}}
spec:
  limit: "250.00"
  selector:
    serviceAccounts: [chat]
    podSelector: {{matchLabels: {{app: chat}}}}
  models:
    allow: ["anthropic.claude-3-*", "*amazon.nova-*"]
  enforcement:
    action: Downgrade
    downgrade:
      - {{from: "anthropic.claude-3-5-sonnet*", to: "anthropic.claude-3-haiku-20240307-v1:0"}}
    softLimitPercent: 90
    softLimitRequestsPerMinute: 30
  alerts:
    snsTopicArn: arn:aws:sns:us-east-1:123456789012:ai-spend
"#
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&manifest));

    let client = kube_client().await;
    let budgets: Api<AIBudget> = Api::namespaced(client, &ns);
    let budget = budgets.get("chat-monthly").await.unwrap();
    assert_eq!(budget.spec.limit, "250.00");
    assert_eq!(
        budget.spec.period,
        aigov_api::period::Period::Monthly,
        "period defaults to Monthly"
    );
    assert_eq!(budget.spec.time_zone, "UTC");
    assert_eq!(budget.spec.thresholds, vec![50, 80, 100]);
    assert_eq!(budget.spec.alerts.as_ref().unwrap().cooldown, "15m");
    assert_eq!(
        budget.spec.enforcement.as_ref().unwrap().fail_mode,
        aigov_api::budget::FailMode::Closed
    );

    // The status subresource takes what the controller will write, and the columns show it.
    let status = serde_json::json!({"status": {"spent": "112.50", "percentUsed": "45.0", "phase": "Active", "requests": 9}});
    budgets
        .patch_status(
            "chat-monthly",
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    let table = kubectl_ok(&["get", "aib", "-n", &ns], None);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "LIMIT", "SPENT", "USED%", "PHASE", "AGE"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..5],
        ["chat-monthly", "250.00", "112.50", "45.0", "Active"]
    );
    let wide = kubectl_ok(
        &["get", "aibudgets.aigov.dev", "-n", &ns, "-o", "wide"],
        None,
    );
    assert!(wide.lines().next().unwrap().contains("PERIOD"), "{wide}");
}

#[tokio::test]
async fn a_model_price_is_cluster_scoped_and_turns_into_a_price_override() {
    let name = unique("price");
    let manifest = format!(
        r#"
apiVersion: aigov.dev/v1alpha1
kind: AIModelPrice
metadata: {{name: {name}}}
spec:
  model: "anthropic.claude-3-haiku-*"
  input: "0.20"
  output: "1.00"
  cacheRead: "0.02"
  effectiveFrom: "2026-01-01T00:00:00Z"
"#
    );
    kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
    let prices: Api<AIModelPrice> = Api::all(kube_client().await);
    let price = prices.get(&name).await.unwrap().to_override().unwrap();
    assert_eq!(price.prices.input.to_api_string(), "0.20");
    assert!(
        price
            .pattern
            .matches("anthropic.claude-3-haiku-20240307-v1:0")
    );
    let table = kubectl_ok(&["get", "aimp", &name], None);
    assert!(
        table.contains("anthropic.claude-3-haiku-*") && table.contains("0.20"),
        "{table}"
    );
}

/// One refused manifest: the spec, the field the error must name, and a phrase of the message.
struct Bad {
    kind: &'static str,
    spec: &'static str,
    field: &'static str,
    says: &'static str,
}

const BAD_BUDGETS: &[Bad] = &[
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "-5"}"#,
        field: "spec.limit",
        says: "should match",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "12,50"}"#,
        field: "spec.limit",
        says: "should match",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "0.00"}"#,
        field: "spec.limit",
        says: "limit must be greater than zero",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{period: Monthly}"#,
        field: "spec.limit",
        says: "Required value",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", period: Hourly}"#,
        field: "spec.period",
        says: r#"Unsupported value: "Hourly""#,
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", thresholds: [80, 50]}"#,
        field: "spec.thresholds",
        says: "strictly ascending",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", thresholds: [50, 50]}"#,
        field: "spec.thresholds",
        says: "strictly ascending",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", thresholds: [50, 120]}"#,
        field: "spec.thresholds",
        says: "between 1 and 100",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", timeZone: Mars/Olympus_Mons}"#,
        field: "spec.timeZone",
        says: "IANA time zone",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", timeZone: "Europe Berlin"}"#,
        field: "spec.timeZone",
        says: "should match",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", enforcement: {action: Downgrade}}"#,
        field: "spec.enforcement.downgrade",
        says: "needs at least one model",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", enforcement: {action: Throttle, downgrade: [{from: "a.b", to: "c.d"}]}}"#,
        field: "spec.enforcement.downgrade",
        says: "only used with action Downgrade",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", enforcement: {softLimitPercent: 80}}"#,
        field: "spec.enforcement.softLimitRequestsPerMinute",
        says: "set both or neither",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", enforcement: {softLimitPercent: 100, softLimitRequestsPerMinute: 5}}"#,
        field: "spec.enforcement.softLimitPercent",
        says: "less than or equal to 99",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", enforcement: {failMode: Maybe}}"#,
        field: "spec.enforcement.failMode",
        says: r#"Unsupported value: "Maybe""#,
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", enforcement: {action: Downgrade, downgrade: [{from: "a.b", to: "a.b"}]}}"#,
        field: "spec.enforcement.downgrade[0].to",
        says: "must change the model",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", models: {allow: ["claude 3"]}}"#,
        field: "spec.models.allow[0]",
        says: "should match",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", models: {deny: ["anthropic.**"]}}"#,
        field: "spec.models.deny",
        says: "single * as the wildcard",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", alerts: {snsTopicArn: "arn:aws:sqs:us-east-1:123456789012:q"}}"#,
        field: "spec.alerts.snsTopicArn",
        says: "should match",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", alerts: {cooldown: 15m}}"#,
        field: "spec.alerts",
        says: "alerts need a channel",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", alerts: {snsTopicArn: "arn:aws:sns:us-east-1:123456789012:t", cooldown: "5 minutes"}}"#,
        field: "spec.alerts.cooldown",
        says: "should match",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", enforcement: {action: Escalate}, alerts: {snsTopicArn: "arn:aws:sns:us-east-1:123456789012:t"}}"#,
        field: "spec.escalation",
        says: "needs at least one step",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", escalation: [{after: 30m, snsTopicArn: "arn:aws:sns:us-east-1:123456789012:t"}]}"#,
        field: "spec.escalation",
        says: "need alerts to be configured",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", alerts: {snsTopicArn: "arn:aws:sns:us-east-1:123456789012:t"}, escalation: [{after: 30m}]}"#,
        field: "spec.escalation[0]",
        says: "needs a channel",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", attribution: {keys: ["tenant id"]}}"#,
        field: "spec.attribution.keys",
        says: "attribution keys are request-metadata keys",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", attribution: {keys: [aigov.workload]}}"#,
        field: "spec.attribution.keys",
        says: "the gateway's own pairs",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", attribution: {keys: [feature, user, feature]}}"#,
        field: "spec.attribution.keys",
        says: "must be unique",
    },
    Bad {
        kind: "AIBudget",
        spec: r#"{limit: "10", attribution: {keys: [a, b, c, d, e, f]}}"#,
        field: "spec.attribution.keys",
        says: "must have at most 5 items",
    },
    Bad {
        kind: "AIModelPrice",
        spec: r#"{model: "amazon.nova-pro-v1:0", input: "-1", output: "1"}"#,
        field: "spec.input",
        says: "should match",
    },
    Bad {
        kind: "AIModelPrice",
        spec: r#"{model: "amazon nova", input: "1", output: "1"}"#,
        field: "spec.model",
        says: "should match",
    },
    Bad {
        kind: "AIModelPrice",
        spec: r#"{model: "amazon.nova-pro-v1:0", input: "1", output: "1", effectiveFrom: "next tuesday"}"#,
        field: "spec.effectiveFrom",
        says: "RFC 3339",
    },
];

#[test]
fn bad_manifests_are_refused_by_the_api_server_naming_the_field() {
    assert!(BAD_BUDGETS.len() >= 12);
    let ns = namespace("crd-bad");
    let mut failures = Vec::new();
    for (i, bad) in BAD_BUDGETS.iter().enumerate() {
        let name = format!("bad-{i}");
        let metadata = if bad.kind == "AIBudget" {
            format!("{{name: {name}, namespace: {ns}}}")
        } else {
            format!("{{name: {}}}", unique("bad-price"))
        };
        let manifest = format!(
            "apiVersion: aigov.dev/v1alpha1\nkind: {}\nmetadata: {metadata}\nspec: {}\n",
            bad.kind, bad.spec
        );
        let out = kubectl(&["apply", "-f", "-"], Some(&manifest));
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            failures.push(format!("#{i} {} was accepted", bad.spec));
        } else if !stderr.contains(&format!("{}:", bad.field)) || !stderr.contains(bad.says) {
            failures.push(format!(
                "#{i} {}: expected `{}` and `{}` in: {stderr}",
                bad.spec, bad.field, bad.says
            ));
        }
    }
    // Nothing half-created: the namespace holds no budgets.
    let left = kubectl_ok(&["get", "aib", "-n", &ns, "-o", "name"], None);
    assert!(left.trim().is_empty(), "budgets were created: {left}");
    assert!(
        failures.is_empty(),
        "{} of {} bad manifests misjudged:\n{}",
        failures.len(),
        BAD_BUDGETS.len(),
        failures.join("\n")
    );
}
