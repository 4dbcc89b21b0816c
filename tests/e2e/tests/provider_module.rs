//! `examples/terraform/` and the `bedrock-governance` module, applied with OpenTofu (and
//! `terraform` when on PATH) to the local environment: apply, an empty plan, destroy, and nothing
//! left behind.

use std::path::PathBuf;

use aigov_e2e::terraform::{Workspace, clis, provider_block};
use aigov_e2e::{aws_config, block_on, kubectl, kubectl_ok, local_env, unique};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_bedrock_governance_module_applies_cleanly_and_destroys_without_leftovers() {
    for cli in clis() {
        let name = unique("gov").replace('-', "");
        let module = repo().join("terraform/bedrock-governance");
        let config = format!(
            r#"{provider}
module "governance" {{
  source            = "{module}"
  name              = "{name}"
  monthly_limit_usd = 12500.50
  emails            = ["finops@example.com"]
  webhook_url       = "https://hooks.example.com/services/secret"
  team_budgets = {{
    research = {{ namespace = "team-research", budget = "research-daily", hourly_limit_usd = 25 }}
    chat     = {{ namespace = "team-chat", budget = "chat-monthly", hourly_limit_usd = 2.5 }}
  }}
  pricing_overrides = {{
    haiku = {{ model = "anthropic.claude-3-haiku*", input = 0.225, output = 1.125, cache_read = 0.03 }}
  }}
  # Selectors on a label only this run's (absent) namespaces would carry, so that neither object
  # governs namespaces other tests use.
  cluster_budgets = {{
    prod = {{ limit = 5000, period = "Weekly", namespace_selector = {{ match_labels = {{ "aigov.dev/e2e-tier" = "{name}" }} }} }}
  }}
  budget_templates = {{
    teams = {{ budget_name = "team-default", limit = 250.5, namespace_selector = {{ match_labels = {{ "aigov.dev/e2e-team" = "{name}" }} }} }}
  }}
  tags = {{ team = "platform" }}
}}
output "governance" {{ value = module.governance }}
"#,
            // The account given, not asked of STS.
            provider = provider_block("  account_id = \"123456789012\"\n"),
            module = module.display()
        );
        let ws = Workspace::new(&cli, &config);
        ws.apply();
        ws.assert_no_changes("module after apply");
        let outputs: Value = serde_json::from_str(&ws.ok(&["output", "-json"])).unwrap();
        let governance = &outputs["governance"]["value"];
        let topic = governance["alert_channel_arn"].as_str().unwrap().to_owned();
        assert!(topic.ends_with(&format!(":{name}-alerts")), "{governance}");
        assert_eq!(governance["alarm_arns"].as_object().unwrap().len(), 3);
        let budget_name = format!("{name}-bedrock-monthly");
        let cluster_budget = format!("{name}-prod");
        let template = format!("{name}-teams");
        assert_eq!(
            governance["cluster_budget_names"]["prod"], cluster_budget,
            "{governance}"
        );
        assert_eq!(
            governance["budget_template_names"]["teams"], template,
            "{governance}"
        );

        let config_aws = block_on(aws_config());
        let budgets = aws_sdk_budgets::Client::new(&config_aws);
        let budget = block_on(
            budgets
                .describe_budget()
                .account_id("123456789012")
                .budget_name(&budget_name)
                .send(),
        )
        .unwrap()
        .budget
        .unwrap();
        assert_eq!(budget.budget_limit.unwrap().amount, "12500.5");
        #[allow(deprecated)]
        let filters = budget.cost_filters.unwrap();
        assert_eq!(
            filters["Service"],
            ["Amazon Bedrock"],
            "the budget is filtered to Bedrock"
        );
        let price = kubectl(
            &[
                "get",
                "aimodelprice",
                &format!("{name}-haiku"),
                "-o",
                "jsonpath={.spec.cacheRead}",
            ],
            None,
        );
        assert_eq!(String::from_utf8_lossy(&price.stdout), "0.03");

        let caib: Value = serde_json::from_str(&kubectl_ok(
            &["get", "caib", &cluster_budget, "-o", "json"],
            None,
        ))
        .unwrap();
        assert_eq!(caib["spec"]["limit"], "5000.00", "{caib}");
        assert_eq!(caib["spec"]["period"], "Weekly", "{caib}");
        assert_eq!(
            caib["spec"]["namespaceSelector"]["matchLabels"],
            serde_json::json!({ "aigov.dev/e2e-tier": name }),
            "{caib}"
        );
        let aibt: Value =
            serde_json::from_str(&kubectl_ok(&["get", "aibt", &template, "-o", "json"], None))
                .unwrap();
        assert_eq!(aibt["spec"]["budget"]["name"], "team-default", "{aibt}");
        assert_eq!(aibt["spec"]["budget"]["spec"]["limit"], "250.50", "{aibt}");
        assert_eq!(
            aibt["spec"]["budget"]["spec"]["period"], "Monthly",
            "{aibt}"
        );
        assert_eq!(
            aibt["spec"]["namespaceSelector"]["matchLabels"],
            serde_json::json!({ "aigov.dev/e2e-team": name }),
            "{aibt}"
        );

        ws.ok(&["destroy", "-auto-approve", "-input=false"]);
        let gone = block_on(
            budgets
                .describe_budget()
                .account_id("123456789012")
                .budget_name(&budget_name)
                .send(),
        );
        assert!(gone.is_err(), "the budget was left behind");
        let sns = aws_sdk_sns::Client::new(&config_aws);
        assert!(
            block_on(sns.get_topic_attributes().topic_arn(&topic).send()).is_err(),
            "the topic was left behind"
        );
        let price = kubectl(&["get", "aimodelprice", &format!("{name}-haiku")], None);
        assert!(!price.status.success(), "the AIModelPrice was left behind");
        let caib = kubectl(&["get", "caib", &cluster_budget], None);
        assert!(
            !caib.status.success() && String::from_utf8_lossy(&caib.stderr).contains("NotFound"),
            "the ClusterAIBudget was left behind: {}",
            String::from_utf8_lossy(&caib.stderr)
        );
        let aibt = kubectl(&["get", "aibt", &template], None);
        assert!(
            !aibt.status.success() && String::from_utf8_lossy(&aibt.stderr).contains("NotFound"),
            "the AIBudgetTemplate was left behind: {}",
            String::from_utf8_lossy(&aibt.stderr)
        );
    }
}

/// `hcl` without the top-level block that opens with the line `opening` (up to its closing
/// `}` at the start of a line).
fn without_block(hcl: &str, opening: &str) -> String {
    let start = hcl.find(opening).expect("the block is in the example");
    let end = start + hcl[start..].find("\n}\n").expect("the block closes") + 3;
    format!("{}{}", &hcl[..start], &hcl[end..])
}

#[test]
fn the_example_configuration_applies_to_the_local_environment() {
    let env = local_env();
    for cli in clis() {
        let main = std::fs::read_to_string(repo().join("examples/terraform/main.tf")).unwrap();
        // Unique names so that the example can run beside the demo's copy.
        let suffix = unique("x");
        let main = main
            .replace("\"aigov-finops\"", &format!("\"aigov-finops-{suffix}\""))
            .replace("\"aigov-oncall\"", &format!("\"aigov-oncall-{suffix}\""))
            .replace("\"/aigov/usage\"", &format!("\"/aigov/usage-{suffix}\""))
            .replace(
                "\"/aigov/bedrock-invocations\"",
                &format!("\"/aigov/bedrock-invocations-{suffix}\""),
            )
            .replace(
                "\"bedrock-monthly\"",
                &format!("\"bedrock-monthly-{suffix}\""),
            )
            .replace(
                "\"team-research-hourly-spend\"",
                &format!("\"team-research-hourly-spend-{suffix}\""),
            )
            .replace(
                "\"team-research-dataset-analysis-hourly-spend\"",
                &format!("\"team-research-dataset-analysis-hourly-spend-{suffix}\""),
            )
            .replace(
                "\"haiku-negotiated\"",
                &format!("\"haiku-negotiated-{suffix}\""),
            );
        // Bedrock keeps one invocation logging configuration per account and region: the
        // example's would collide with the demo's copy (`provider_invocation_logging.rs` tests
        // the resource), so it is left out here.
        let main = without_block(&main, "resource \"aigov_invocation_logging\" \"this\" {");
        let ws = Workspace::new(&cli, &main);
        std::fs::write(
            ws.dir.join("terraform.tfvars"),
            format!(
                "aws_endpoint = \"{}\"\nkubeconfig = \"{}\"\n",
                env.moto_endpoint,
                env.kubeconfig.display()
            ),
        )
        .unwrap();
        ws.apply();
        ws.assert_no_changes("example after apply");
        let outputs: Value = serde_json::from_str(&ws.ok(&["output", "-json"])).unwrap();
        let haiku = &outputs["haiku_price_per_million_tokens"]["value"];
        assert_eq!(haiku["input"], 0.72);
        assert_eq!(haiku["cache_read"], 0.072);
        assert!(
            haiku["source"]
                .as_str()
                .unwrap()
                .starts_with("override:haiku-negotiated"),
            "{haiku}"
        );
        ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    }
}

/// The module's organisation inputs are checked before anything is planned: each bad value
/// fails `plan` with the rule it broke and the variable it is in, and nothing is created. One
/// plan per bad value: Terraform reports only a variable's first failing rule.
#[test]
fn the_module_refuses_bad_cluster_budgets_and_templates_naming_the_variable_and_the_rule() {
    let module = repo().join("terraform/bedrock-governance");
    let selector = r#"namespace_selector = { match_labels = { team = "a" } }"#;
    let cases = [
        (
            "cluster_budgets",
            format!(r#"Prod = {{ limit = 10, {selector} }}"#),
            "cluster_budgets keys become part of Kubernetes object names",
        ),
        (
            "cluster_budgets",
            format!(r#"prod = {{ limit = 0, {selector} }}"#),
            "Every cluster_budgets limit must be greater than zero",
        ),
        (
            "cluster_budgets",
            format!(r#"prod = {{ limit = 10, period = "Fortnightly", {selector} }}"#),
            "Every cluster_budgets period must be one of Daily, Weekly",
        ),
        (
            "cluster_budgets",
            r#"prod = { limit = 10, namespace_selector = { match_labels = {} } }"#.to_owned(),
            "A cluster_budgets namespace_selector needs at least one match_labels pair",
        ),
        (
            "budget_templates",
            format!(r#""teams!" = {{ budget_name = "team", limit = 10, {selector} }}"#),
            "budget_templates keys become part of Kubernetes object names",
        ),
        (
            "budget_templates",
            format!(r#"teams = {{ budget_name = "Team_Default", limit = 10, {selector} }}"#),
            "Every budget_templates budget_name is the name of the AIBudget",
        ),
        (
            "budget_templates",
            format!(r#"teams = {{ budget_name = "team", limit = -1, {selector} }}"#),
            "Every budget_templates limit must be greater than zero",
        ),
        (
            "budget_templates",
            format!(r#"teams = {{ budget_name = "team", limit = 10, period = "Biweekly", {selector} }}"#),
            "Every budget_templates period must be one of Daily, Weekly",
        ),
        (
            "budget_templates",
            r#"teams = { budget_name = "team", limit = 10, namespace_selector = { match_labels = {} } }"#
                .to_owned(),
            "A budget_templates namespace_selector needs at least one match_labels pair",
        ),
    ];
    let config = |variable: &str, value: &str| {
        format!(
            r#"{provider}
module "governance" {{
  source            = "{module}"
  name              = "badorg"
  monthly_limit_usd = 100
  {variable} = {{
    {value}
  }}
}}
"#,
            provider = provider_block("  account_id = \"123456789012\"\n"),
            module = module.display()
        )
    };
    for cli in clis() {
        let ws = Workspace::new(&cli, &config("cluster_budgets", ""));
        for (variable, value, rule) in &cases {
            ws.write(&config(variable, value));
            let said = ws.fails(&["plan", "-input=false"]);
            // Diagnostics are boxed and wrapped: compare words, not lines.
            let words = said
                .replace('│', " ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                words.contains(rule) && words.contains(&format!("var.{variable}")),
                "{}: {value}: no diagnostic for var.{variable} saying {rule:?}:\n{said}",
                cli.name
            );
        }
        assert!(
            kubectl(&["get", "caib", "badorg-prod"], None).status.code() != Some(0),
            "{}: nothing was created",
            cli.name
        );
    }
}
