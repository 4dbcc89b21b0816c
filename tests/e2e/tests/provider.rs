//! terraform-provider-aigov with the real CLIs (OpenTofu, and `terraform` when on PATH) against
//! moto and the local kube-apiserver: every resource through its whole lifecycle, the data
//! source, and bad configurations refused at plan time on the attribute.

use std::collections::BTreeMap;

use aigov_e2e::terraform::{Cli, Workspace, clis, provider_block};
use aigov_e2e::{aws_config, block_on, kubectl, unique};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";

/// One resource's lifecycle: three configurations (created, changed in place, replaced), how to
/// import it, and how to see and delete it behind Terraform's back.
struct Case<'a> {
    address: &'a str,
    created: String,
    updated: String,
    replaced: String,
    import_id: &'a dyn Fn(&Value) -> String,
    exists: &'a dyn Fn(&Value) -> bool,
    delete_out_of_band: &'a dyn Fn(&Value),
}

fn lifecycle(cli: &Cli, case: Case) {
    let config = |resource: &str| format!("{}\n{resource}", provider_block(""));
    let ws = Workspace::new(cli, &config(&case.created));
    let address = case.address;

    ws.apply();
    ws.assert_no_changes("after create");
    let created = ws.state_of(address);
    assert!(
        (case.exists)(&created),
        "{address} was not created: {created}"
    );

    ws.write(&config(&case.updated));
    assert_eq!(
        ws.plan_changes(),
        [(address.to_owned(), vec!["update".to_owned()])],
        "an in-place update"
    );
    ws.apply();
    ws.assert_no_changes("after update");
    assert_eq!(
        ws.state_of(address)["id"],
        created["id"],
        "updated in place, not replaced"
    );

    ws.write(&config(&case.replaced));
    let changes = ws.plan_changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    let mut actions = changes[0].1.clone();
    actions.sort();
    assert_eq!(actions, ["create", "delete"], "a replacement");
    ws.apply();
    ws.assert_no_changes("after replace");
    assert!(
        !(case.exists)(&created),
        "the replaced object was left behind: {created}"
    );

    // Import: forget it, import it by its ID, and get the same state apply wrote.
    let applied = ws.state_of(address);
    ws.ok(&["state", "rm", address]);
    ws.ok(&[
        "import",
        "-input=false",
        address,
        &(case.import_id)(&applied),
    ]);
    let imported = ws.state_of(address);
    assert_eq!(imported, applied, "import reads back what apply wrote");
    ws.assert_no_changes("after import");

    // Deleted out of band: the plan re-creates it.
    (case.delete_out_of_band)(&applied);
    assert_eq!(
        ws.plan_changes(),
        [(address.to_owned(), vec!["create".to_owned()])],
        "drift is detected"
    );
    ws.apply();
    ws.assert_no_changes("after re-creating");

    let last = ws.state_of(address);
    ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    assert!(
        !(case.exists)(&last),
        "destroy left {address} behind: {last}"
    );
}

fn for_each_cli(test: impl Fn(&Cli)) {
    for cli in clis() {
        test(&cli);
    }
}

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key].as_str().unwrap_or_default()
}

#[test]
fn log_group_lifecycle_with_the_real_cli() {
    for_each_cli(|cli| {
        let name = unique("/aigov/usage");
        let renamed = format!("{name}-v2");
        let logs = || block_on(async { aws_sdk_cloudwatchlogs::Client::new(&aws_config().await) });
        let exists = |s: &Value| {
            let name = str_of(s, "name").to_owned();
            block_on(async {
                let client = aws_sdk_cloudwatchlogs::Client::new(&aws_config().await);
                let out = client
                    .describe_log_groups()
                    .log_group_name_prefix(&name)
                    .send()
                    .await
                    .unwrap();
                out.log_groups()
                    .iter()
                    .any(|g| g.log_group_name() == Some(name.as_str()))
            })
        };
        lifecycle(
            cli,
            Case {
                address: "aigov_log_group.usage",
                created: format!(
                    r#"resource "aigov_log_group" "usage" {{
  name              = "{name}"
  retention_in_days = 30
  tags              = {{ team = "research" }}
}}"#
                ),
                updated: format!(
                    r#"resource "aigov_log_group" "usage" {{
  name              = "{name}"
  retention_in_days = 90
  kms_key_id        = "arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  tags              = {{ team = "platform", cost-center = "42" }}
}}"#
                ),
                replaced: format!(
                    r#"resource "aigov_log_group" "usage" {{
  name              = "{renamed}"
  retention_in_days = 90
}}"#
                ),
                import_id: &|s| str_of(s, "name").to_owned(),
                exists: &exists,
                delete_out_of_band: &|s| {
                    let client = logs();
                    block_on(
                        client
                            .delete_log_group()
                            .log_group_name(str_of(s, "name"))
                            .send(),
                    )
                    .unwrap();
                },
            },
        );
    });
}

#[test]
fn alert_channel_lifecycle_with_the_real_cli() {
    for_each_cli(|cli| {
        let name = unique("aigov-alerts");
        let sns = || block_on(async { aws_sdk_sns::Client::new(&aws_config().await) });
        let exists = |s: &Value| {
            let arn = str_of(s, "arn").to_owned();
            let client = sns();
            let topic = block_on(client.get_topic_attributes().topic_arn(&arn).send()).is_ok();
            let subscriptions = block_on(client.list_subscriptions().send()).unwrap();
            let subscribed = subscriptions
                .subscriptions()
                .iter()
                .any(|s| s.topic_arn() == Some(arn.as_str()));
            topic || subscribed
        };
        let queue = format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}-inbox");
        lifecycle(
            cli,
            Case {
                address: "aigov_alert_channel.finops",
                created: format!(
                    r#"resource "aigov_alert_channel" "finops" {{
  name = "{name}"
  subscription {{
    protocol = "email"
    endpoint = "finops@example.com"
  }}
  subscription {{
    protocol = "https"
    endpoint = "https://hooks.example.com/services/T000/B000/secret"
  }}
}}"#
                ),
                updated: format!(
                    r#"resource "aigov_alert_channel" "finops" {{
  name              = "{name}"
  display_name      = "AI spend"
  kms_master_key_id = "alias/aigov-alerts"
  subscription {{
    protocol             = "https"
    endpoint             = "https://hooks.example.com/services/T000/B000/secret"
    raw_message_delivery = true
  }}
  subscription {{
    protocol = "sqs"
    endpoint = "{queue}"
  }}
  tags = {{ team = "finops" }}
}}"#
                ),
                replaced: format!(
                    r#"resource "aigov_alert_channel" "finops" {{
  name = "{name}-v2"
  subscription {{
    protocol = "lambda"
    endpoint = "arn:aws:lambda:us-east-1:{ACCOUNT}:function:notify"
  }}
}}"#
                ),
                import_id: &|s| str_of(s, "arn").to_owned(),
                exists: &exists,
                delete_out_of_band: &|s| {
                    let client = sns();
                    block_on(client.delete_topic().topic_arn(str_of(s, "arn")).send()).unwrap();
                },
            },
        );
    });
}

#[test]
fn budget_lifecycle_with_the_real_cli() {
    for_each_cli(|cli| {
        let name = unique("bedrock-monthly");
        let budgets = || block_on(async { aws_sdk_budgets::Client::new(&aws_config().await) });
        let exists = |s: &Value| {
            let client = budgets();
            block_on(
                client
                    .describe_budget()
                    .account_id(ACCOUNT)
                    .budget_name(str_of(s, "name"))
                    .send(),
            )
            .is_ok()
        };
        lifecycle(
            cli,
            Case {
                address: "aigov_budget.bedrock",
                // 2000.0 against the 2000 AWS Budgets reports: the same number, no perpetual diff.
                created: format!(
                    r#"resource "aigov_budget" "bedrock" {{
  name      = "{name}"
  amount    = 2000.0
  time_unit = "MONTHLY"
  notification {{
    notification_type = "ACTUAL"
    threshold         = 80
    emails            = ["finops@example.com"]
  }}
}}"#
                ),
                updated: format!(
                    r#"resource "aigov_budget" "bedrock" {{
  name                 = "{name}"
  amount               = 2500.55
  time_unit            = "MONTHLY"
  cost_allocation_tags = {{ team = "research" }}
  linked_accounts      = ["{ACCOUNT}", "210987654321"]
  start                = "2026-01-01"
  notification {{
    notification_type = "ACTUAL"
    threshold         = 80
    emails            = ["finops@example.com", "oncall@example.com"]
  }}
  notification {{
    notification_type = "FORECASTED"
    threshold         = 100.5
    alert_channel_arn = "arn:aws:sns:us-east-1:{ACCOUNT}:aigov-finops"
  }}
  tags = {{ team = "research" }}
}}"#
                ),
                replaced: format!(
                    r#"resource "aigov_budget" "bedrock" {{
  name      = "{name}-v2"
  amount    = 100
  time_unit = "DAILY"
}}"#
                ),
                import_id: &|s| format!("{ACCOUNT}:{}", str_of(s, "name")),
                exists: &exists,
                delete_out_of_band: &|s| {
                    let client = budgets();
                    block_on(
                        client
                            .delete_budget()
                            .account_id(ACCOUNT)
                            .budget_name(str_of(s, "name"))
                            .send(),
                    )
                    .unwrap();
                },
            },
        );
    });
}

#[test]
fn alarm_lifecycle_with_the_real_cli() {
    for_each_cli(|cli| {
        let name = unique("team-research-spend");
        let cloudwatch =
            || block_on(async { aws_sdk_cloudwatch::Client::new(&aws_config().await) });
        let exists = |s: &Value| {
            let client = cloudwatch();
            let out = block_on(
                client
                    .describe_alarms()
                    .alarm_names(str_of(s, "name"))
                    .send(),
            )
            .unwrap();
            !out.metric_alarms().is_empty()
        };
        lifecycle(
            cli,
            Case {
                address: "aigov_alarm.spend",
                created: format!(
                    r#"resource "aigov_alarm" "spend" {{
  name      = "{name}"
  threshold = 50
  preset {{
    metric    = "spend"
    namespace = "team-research"
    budget    = "research-daily"
  }}
  alarm_actions = ["arn:aws:sns:us-east-1:{ACCOUNT}:aigov-finops"]
}}"#
                ),
                updated: format!(
                    r#"resource "aigov_alarm" "spend" {{
  name               = "{name}"
  description        = "Team research spends over $75 an hour"
  threshold          = 75.25
  period             = 3600
  evaluation_periods = 2
  preset {{
    metric    = "spend"
    namespace = "team-research"
    budget    = "research-daily"
    model     = "anthropic.claude-sonnet-4-5-20250929-v1:0"
  }}
  alarm_actions = ["arn:aws:sns:us-east-1:{ACCOUNT}:aigov-finops"]
  tags          = {{ team = "research" }}
}}"#
                ),
                replaced: format!(
                    r#"resource "aigov_alarm" "spend" {{
  name      = "{name}-throttles"
  threshold = 10
  period    = 60
  metric {{
    namespace   = "AWS/Bedrock"
    metric_name = "InvocationThrottles"
    dimensions  = {{ ModelId = "anthropic.claude-3-haiku-20240307-v1:0" }}
  }}
}}"#
                ),
                import_id: &|s| str_of(s, "name").to_owned(),
                exists: &exists,
                delete_out_of_band: &|s| {
                    let client = cloudwatch();
                    block_on(client.delete_alarms().alarm_names(str_of(s, "name")).send()).unwrap();
                },
            },
        );
    });
}

/// The alarm CloudWatch (moto) holds under `name`: its namespace, metric name and dimensions.
fn described_alarm(name: &str) -> (String, String, BTreeMap<String, String>) {
    block_on(async {
        let client = aws_sdk_cloudwatch::Client::new(&aws_config().await);
        let out = client
            .describe_alarms()
            .alarm_names(name)
            .send()
            .await
            .unwrap();
        let alarm = out.metric_alarms().first().cloned().expect("the alarm");
        let dimensions = alarm
            .dimensions()
            .iter()
            .map(|d| (d.name().unwrap().to_owned(), d.value().unwrap().to_owned()))
            .collect();
        let namespace = alarm.namespace().unwrap_or_default().to_owned();
        (
            namespace,
            alarm.metric_name().unwrap_or_default().to_owned(),
            dimensions,
        )
    })
}

#[test]
fn a_per_key_alarm_watches_the_declared_keys_dimension_plans_empty_and_imports_as_configured() {
    for_each_cli(|cli| {
        let name = unique("team-a-search-spend");
        let config = |value: &str| {
            format!(
                r#"{}
resource "aigov_alarm" "search" {{
  name      = "{name}"
  threshold = 10
  period    = 3600
  preset {{
    metric    = "spend"
    namespace = "team-a"
    budget    = "chat-daily"
    key       = "feature"
    value     = "{value}"
  }}
}}"#,
                provider_block("")
            )
        };
        let address = "aigov_alarm.search";
        let ws = Workspace::new(cli, &config("search"));
        ws.apply();
        ws.assert_no_changes("after create");
        let dims = |value: &str| -> BTreeMap<String, String> {
            [
                ("Namespace", "team-a"),
                ("Budget", "chat-daily"),
                ("meta.feature", value),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
        };
        assert_eq!(
            described_alarm(&name),
            ("AIGov".to_owned(), "CostUSD".to_owned(), dims("search")),
            "{}: the alarm watches CostUSD per namespace, budget and feature",
            cli.name
        );

        ws.write(&config("dataset analysis"));
        assert_eq!(
            ws.plan_changes(),
            [(address.to_owned(), vec!["update".to_owned()])],
            "another value is an in-place update"
        );
        ws.apply();
        ws.assert_no_changes("after update");
        assert_eq!(described_alarm(&name).2, dims("dataset analysis"));

        let applied = ws.state_of(address);
        assert_eq!(applied["preset"]["key"], "feature", "{applied}");
        assert_eq!(applied["preset"]["value"], "dataset analysis", "{applied}");
        assert!(
            applied["metric"].is_null(),
            "preset mode, not raw: {applied}"
        );
        ws.ok(&["state", "rm", address]);
        ws.ok(&["import", "-input=false", address, &name]);
        assert_eq!(
            ws.state_of(address),
            applied,
            "import reads back the preset with its key"
        );
        ws.assert_no_changes("after import");
        ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    });
}

#[test]
fn pricing_override_lifecycle_with_the_real_cli() {
    for_each_cli(|cli| {
        let name = unique("sonnet-contract");
        let exists = |s: &Value| {
            kubectl(&["get", "aimodelprice", str_of(s, "name")], None)
                .status
                .success()
        };
        lifecycle(
            cli,
            Case {
                address: "aigov_pricing_override.sonnet",
                created: format!(
                    r#"resource "aigov_pricing_override" "sonnet" {{
  name   = "{name}"
  model  = "anthropic.claude-sonnet-4-5*"
  input  = 2.7
  output = 13.5
}}"#
                ),
                updated: format!(
                    r#"resource "aigov_pricing_override" "sonnet" {{
  name           = "{name}"
  model          = "anthropic.claude-sonnet-4-5*"
  input          = 2.7
  output         = 13.25
  cache_read     = 0.27
  cache_write    = 3.375
  effective_from = "2026-01-01T00:00:00Z"
  description    = "2026 enterprise agreement"
}}"#
                ),
                replaced: format!(
                    r#"resource "aigov_pricing_override" "sonnet" {{
  name   = "{name}-v2"
  model  = "anthropic.claude-sonnet-4-5*"
  input  = 2.5
  output = 12.5
}}"#
                ),
                import_id: &|s| str_of(s, "name").to_owned(),
                exists: &exists,
                delete_out_of_band: &|s| {
                    let out = kubectl(&["delete", "aimodelprice", str_of(s, "name")], None);
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                },
            },
        );
    });
}

/// A bad configuration, the line Terraform must underline, and what the message must say.
struct Bad {
    resource: &'static str,
    underlined: &'static str,
    says: &'static str,
}

const BAD: &[Bad] = &[
    Bad {
        resource: r#"resource "aigov_budget" "b" {
  name = "x"
  amount = -5
  time_unit = "MONTHLY"
}"#,
        underlined: "amount = -5",
        says: "greater than 0",
    },
    Bad {
        resource: r#"resource "aigov_budget" "b" {
  name = "x"
  amount = 10.123
  time_unit = "MONTHLY"
}"#,
        underlined: "amount = 10.123",
        says: "decimal places",
    },
    Bad {
        resource: r#"resource "aigov_budget" "b" {
  name = "x"
  amount = 10
  time_unit = "HOURLY"
}"#,
        underlined: "time_unit = \"HOURLY\"",
        says: "DAILY, MONTHLY, QUARTERLY, ANNUALLY",
    },
    Bad {
        resource: r#"resource "aigov_budget" "b" {
  name = "x"
  amount = 10
  time_unit = "MONTHLY"
  notification {
    notification_type = "ACTUAL"
    threshold = 1500
    emails = ["a@example.com"]
  }
}"#,
        underlined: "threshold = 1500",
        says: "at most 1000",
    },
    Bad {
        resource: r#"resource "aigov_budget" "b" {
  name = "x"
  amount = 10
  time_unit = "MONTHLY"
  notification {
    notification_type = "ACTUAL"
    threshold = 80
    alert_channel_arn = "arn:aws:sqs:us-east-1:123456789012:q"
  }
}"#,
        underlined: "alert_channel_arn = \"arn:aws:sqs",
        says: "SNS topic ARN",
    },
    Bad {
        resource: r#"resource "aigov_budget" "b" {
  name = "x"
  amount = 10
  time_unit = "MONTHLY"
  start = "01/02/2026"
}"#,
        underlined: "start = \"01/02/2026\"",
        says: "YYYY-MM-DD",
    },
    Bad {
        resource: r#"resource "aigov_budget" "b" {
  name = "x"
  amount = 10
  time_unit = "MONTHLY"
  linked_accounts = ["12345"]
}"#,
        underlined: "linked_accounts",
        says: "12-digit",
    },
    Bad {
        resource: r#"resource "aigov_log_group" "l" {
  name = "/aigov/usage"
  retention_in_days = 45
}"#,
        underlined: "retention_in_days = 45",
        says: "not a retention CloudWatch Logs accepts",
    },
    Bad {
        resource: r#"resource "aigov_log_group" "l" {
  name = "bad name with spaces"
}"#,
        underlined: "name = \"bad name",
        says: "not a valid name",
    },
    Bad {
        resource: r#"resource "aigov_log_group" "l" {
  name = "/aigov/usage"
  tags = { "aws:reserved" = "x" }
}"#,
        underlined: "tags",
        says: "reserved prefix aws:",
    },
    Bad {
        resource: r#"resource "aigov_alert_channel" "c" {
  name = "alerts"
  subscription {
    protocol = "https"
    endpoint = "http://insecure.example.com/hook"
  }
}"#,
        underlined: "endpoint",
        says: "https:// URL",
    },
    Bad {
        resource: r#"resource "aigov_alert_channel" "c" {
  name = "alerts"
  subscription {
    protocol = "sms"
    endpoint = "+15555550100"
  }
}"#,
        underlined: "protocol = \"sms\"",
        says: "email, https, sqs, lambda",
    },
    Bad {
        resource: r#"resource "aigov_alert_channel" "c" {
  name = "alerts"
  kms_master_key_id = "not a key"
}"#,
        underlined: "kms_master_key_id",
        says: "KMS key",
    },
    Bad {
        resource: r#"resource "aigov_alarm" "a" {
  name = "a"
  threshold = 1
  preset {
    metric = "spend"
    namespace = "team"
    budget = "b"
  }
  metric {
    namespace = "AWS/Bedrock"
    metric_name = "Invocations"
  }
}"#,
        underlined: "metric = \"spend\"",
        says: "not both",
    },
    Bad {
        resource: r#"resource "aigov_alarm" "a" {
  name = "a"
  threshold = 1
  period = 45
  preset {
    metric = "bedrock_invocations"
  }
}"#,
        underlined: "period = 45",
        says: "multiple of 60",
    },
    Bad {
        resource: r#"resource "aigov_alarm" "a" {
  name = "a"
  threshold = 1
  preset {
    metric = "spend"
    namespace = "team"
  }
}"#,
        underlined: "preset {",
        says: "set budget",
    },
    Bad {
        resource: r#"resource "aigov_alarm" "a" {
  name = "a"
  threshold = 1
  preset {
    metric = "dollars"
  }
}"#,
        underlined: "metric = \"dollars\"",
        says: "is not a preset",
    },
    Bad {
        resource: r#"resource "aigov_alarm" "a" {
  name = "a"
  threshold = 1
  preset {
    metric = "bedrock_invocations"
    key = "feature"
    value = "search"
  }
}"#,
        underlined: "key = \"feature\"",
        says: "remove key from the bedrock_invocations preset",
    },
    Bad {
        resource: r#"resource "aigov_alarm" "a" {
  name = "a"
  threshold = 1
  preset {
    metric = "spend"
    namespace = "team"
    budget = "b"
    key = "feature"
    value = "  "
  }
}"#,
        underlined: "value = \"  \"",
        says: "not only spaces",
    },
    Bad {
        resource: r#"resource "aigov_alarm" "a" {
  name = "a"
  threshold = 1
  preset {
    metric = "spend"
    namespace = "team"
    budget = "b"
    key = "tenant id"
    value = "acme"
  }
}"#,
        underlined: "key = \"tenant id\"",
        says: "spec.attribution.keys",
    },
    Bad {
        resource: r#"resource "aigov_pricing_override" "p" {
  name = "p"
  model = "anthropic.claude-sonet-9*"
  input = 1
  output = 2
}"#,
        underlined: "model = ",
        says: "matches no model",
    },
    Bad {
        resource: r#"resource "aigov_pricing_override" "p" {
  name = "p"
  model = "anthropic.claude-sonnet-4*"
  input = -1
  output = 2
}"#,
        underlined: "input = -1",
        says: "between 0",
    },
    Bad {
        resource: r#"resource "aigov_pricing_override" "p" {
  name = "Not_A_Name"
  model = "anthropic.claude-sonnet-4*"
  input = 1
  output = 2
}"#,
        underlined: "name = \"Not_A_Name\"",
        says: "Kubernetes object name",
    },
    Bad {
        resource: r#"resource "aigov_pricing_override" "p" {
  name = "p"
  model = "anthropic.claude-sonnet-4*"
  input = 1
  output = 2
  effective_from = "next tuesday"
}"#,
        underlined: "effective_from",
        says: "RFC 3339",
    },
];

#[test]
fn bad_configurations_are_refused_at_plan_time_on_the_attribute() {
    assert!(BAD.len() >= 15);
    for_each_cli(|cli| {
        let ws = Workspace::new(cli, &provider_block(""));
        for bad in BAD {
            ws.write(&format!("{}\n{}", provider_block(""), bad.resource));
            ws.assert_refused_on(bad.underlined, bad.says);
        }
        // The same budget is valid: the failures above come from the bad values alone.
        ws.write(&format!(
            "{}\n{}",
            provider_block(""),
            r#"resource "aigov_budget" "b" {
  name = "x"
  amount = 10
  time_unit = "MONTHLY"
}"#
        ));
        ws.ok(&["validate"]);
    });
}

#[test]
fn values_known_only_after_apply_plan_without_false_errors_and_secrets_stay_hidden_and_empty_collections_stay_empty()
 {
    for_each_cli(|cli| {
        let name = unique("aigov-unknowns");
        let config = format!(
            r#"{provider}
resource "aigov_alert_channel" "c" {{
  name = "{name}"
  subscription {{
    protocol = "https"
    endpoint = "https://hooks.example.com/services/very-secret-token"
  }}
}}
resource "aigov_budget" "b" {{
  name      = "{name}"
  amount    = 25
  time_unit = "DAILY"
  notification {{
    notification_type = "ACTUAL"
    threshold         = 50
    alert_channel_arn = aigov_alert_channel.c.arn
  }}
}}
resource "aigov_alarm" "a" {{
  name          = "{name}"
  threshold     = 5
  alarm_actions = [aigov_alert_channel.c.arn]
  preset {{
    metric = "bedrock_throttles"
  }}
}}
# Empty collections written as empty, not left out: still no diff after apply.
resource "aigov_alarm" "raw" {{
  name       = "{name}-raw"
  threshold  = 1
  ok_actions = []
  metric {{
    namespace   = "AIGov"
    metric_name = "Requests"
    dimensions  = {{}}
  }}
}}
data "aigov_model_price" "haiku" {{
  model = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
  include_overrides = false
}}
output "haiku_cache_read" {{ value = data.aigov_model_price.haiku.cache_read }}
output "haiku_source" {{ value = data.aigov_model_price.haiku.source }}
"#,
            provider = provider_block(
                "  default_tags {\n    tags = { managed-by = \"terraform\" }\n  }\n"
            )
        );
        let ws = Workspace::new(cli, &config);
        let plan = ws.ok(&["plan", "-input=false"]);
        let unknown_arn = plan
            .lines()
            .any(|l| l.contains("alert_channel_arn") && l.contains("(known after apply)"));
        assert!(
            unknown_arn,
            "the channel's ARN is planned as unknown, without error:\n{plan}"
        );
        assert!(
            !plan.contains("very-secret-token"),
            "a webhook URL leaked into the plan:\n{plan}"
        );
        assert!(plan.contains("(sensitive value)"), "{plan}");
        ws.apply();
        ws.assert_no_changes("after apply with default tags");
        let channel = ws.state_of("aigov_alert_channel.c");
        assert_eq!(
            channel["tags_all"]["managed-by"], "terraform",
            "default_tags reach tags_all"
        );
        assert!(
            channel["tags"].is_null(),
            "default tags are not the resource's own tags"
        );
        let budget = ws.state_of("aigov_budget.b");
        assert_eq!(
            budget["notification"][0]["alert_channel_arn"],
            channel["arn"]
        );
        // The catalog price, exact: Claude 3.5 Haiku reads its cache at $0.08 per 1M tokens.
        let outputs: Value = serde_json::from_str(&ws.ok(&["output", "-json"])).unwrap();
        assert_eq!(outputs["haiku_source"]["value"], "catalog");
        assert_eq!(outputs["haiku_cache_read"]["value"], 0.08);
        ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    });
}
