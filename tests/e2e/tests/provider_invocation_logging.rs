//! `aigov_invocation_logging` with the real CLIs (OpenTofu, and `terraform` when on PATH) against
//! moto: apply, an empty plan, an update in place, import by region, a deletion behind
//! Terraform's back detected, destroy; what Bedrock holds checked with the AWS SDK after each
//! step; bad values refused at plan time on the attribute; and the `bedrock-governance` module's
//! `invocation_logging` toggle.
//!
//! Bedrock keeps one configuration per account and region, so each test owns a region no other
//! test uses (the rest of the suite is in us-east-1) and clears it first.

use std::path::PathBuf;

use aigov_e2e::terraform::{Workspace, clis, provider_block};
use aigov_e2e::{aws_config, block_on, unique};
use aws_sdk_bedrock::types::LoggingConfig;
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
/// The lifecycle test's region.
const LIFECYCLE_REGION: &str = "eu-west-3";
/// The module test's region.
const MODULE_REGION: &str = "eu-north-1";

/// The provider block of the local environment, for `region`.
fn provider(region: &str, extra: &str) -> String {
    let block = provider_block(extra);
    let us_east_1 = "region = \"us-east-1\"";
    assert!(block.contains(us_east_1), "{block}");
    block.replace(us_east_1, &format!("region = \"{region}\""))
}

fn bedrock(region: &str) -> aws_sdk_bedrock::Client {
    block_on(async {
        let shared = aws_config().await;
        let config = aws_sdk_bedrock::config::Builder::from(&shared)
            .region(aws_sdk_bedrock::config::Region::new(region.to_owned()))
            .build();
        aws_sdk_bedrock::Client::from_conf(config)
    })
}

/// What Bedrock (moto) holds in `region`; `None` when invocation logging is off.
fn remote(region: &str) -> Option<LoggingConfig> {
    block_on(
        bedrock(region)
            .get_model_invocation_logging_configuration()
            .send(),
    )
    .expect("GetModelInvocationLoggingConfiguration")
    .logging_config
}

fn clear(region: &str) {
    block_on(
        bedrock(region)
            .delete_model_invocation_logging_configuration()
            .send(),
    )
    .expect("DeleteModelInvocationLoggingConfiguration");
}

fn role(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// The configuration: a log group and the logging into it, with `settings` in the latter.
fn config(group: &str, settings: &str) -> String {
    format!(
        r#"{provider}
resource "aigov_log_group" "invocations" {{
  name              = "{group}"
  retention_in_days = 30
}}

resource "aigov_invocation_logging" "this" {{
  log_group_name = aigov_log_group.invocations.name
{settings}}}
"#,
        provider = provider(LIFECYCLE_REGION, "")
    )
}

/// Asserts what Bedrock holds: the log group, the role, the flags (text, image, embedding,
/// video) and the large-data bucket and prefix.
fn assert_remote(
    group: &str,
    role_arn: &str,
    flags: [bool; 4],
    large: Option<(&str, Option<&str>)>,
) {
    let config = remote(LIFECYCLE_REGION).expect("invocation logging is configured");
    let cw = config.cloud_watch_config().expect("CloudWatch delivery");
    assert_eq!(cw.log_group_name(), group);
    assert_eq!(cw.role_arn(), role_arn);
    let got = [
        config.text_data_delivery_enabled(),
        config.image_data_delivery_enabled(),
        config.embedding_data_delivery_enabled(),
        config.video_data_delivery_enabled(),
    ];
    assert_eq!(got, flags.map(Some), "text, image, embedding, video");
    let s3 = cw
        .large_data_delivery_s3_config()
        .map(|s| (s.bucket_name(), s.key_prefix()));
    assert_eq!(s3, large, "large data delivery");
}

#[test]
fn invocation_logging_lifecycle_with_the_real_cli() {
    const ADDRESS: &str = "aigov_invocation_logging.this";
    for cli in clis() {
        clear(LIFECYCLE_REGION);
        let group = unique("/aigov/bedrock-invocations");
        let created = format!(
            r#"  role_arn       = "{}"
  large_data_delivery_s3 {{
    bucket_name = "aigov-large-logs"
    key_prefix  = "invocations/"
  }}
"#,
            role("bedrock-logs")
        );
        let ws = Workspace::new(&cli, &config(&group, &created));
        ws.apply();
        ws.assert_no_changes("after create");
        assert_eq!(ws.state_of(ADDRESS)["id"], LIFECYCLE_REGION);
        assert_remote(
            &group,
            &role("bedrock-logs"),
            [true, false, false, false],
            Some(("aigov-large-logs", Some("invocations/"))),
        );

        // In place: flags toggled, another role, the S3 block dropped.
        let updated = format!(
            r#"  role_arn                        = "{}"
  text_data_delivery_enabled      = false
  image_data_delivery_enabled     = true
  embedding_data_delivery_enabled = true
"#,
            role("service/bedrock-logs-v2")
        );
        ws.write(&config(&group, &updated));
        assert_eq!(
            ws.plan_changes(),
            [(ADDRESS.to_owned(), vec!["update".to_owned()])],
            "{}: an in-place update",
            cli.name
        );
        ws.apply();
        ws.assert_no_changes("after update");
        assert_remote(
            &group,
            &role("service/bedrock-logs-v2"),
            [false, true, true, false],
            None,
        );

        // Import by region: forget it, import it, get the same state apply wrote.
        let applied = ws.state_of(ADDRESS);
        ws.ok(&["state", "rm", ADDRESS]);
        let wrong = ws.fails(&["import", "-input=false", ADDRESS, "ap-south-1"]);
        assert!(
            wrong.contains("configured for region eu-west-3"),
            "{}: importing another region's configuration: {wrong}",
            cli.name
        );
        ws.ok(&["import", "-input=false", ADDRESS, LIFECYCLE_REGION]);
        assert_eq!(
            ws.state_of(ADDRESS),
            applied,
            "{}: import reads back what apply wrote",
            cli.name
        );
        ws.assert_no_changes("after import");

        // Turned off behind Terraform's back: the plan configures it again.
        clear(LIFECYCLE_REGION);
        assert_eq!(
            ws.plan_changes(),
            [(ADDRESS.to_owned(), vec!["create".to_owned()])],
            "{}: the deletion is detected",
            cli.name
        );
        ws.apply();
        ws.assert_no_changes("after re-creating");
        assert_remote(
            &group,
            &role("service/bedrock-logs-v2"),
            [false, true, true, false],
            None,
        );

        ws.ok(&["destroy", "-auto-approve", "-input=false"]);
        assert!(
            remote(LIFECYCLE_REGION).is_none(),
            "{}: destroy left invocation logging on",
            cli.name
        );
    }
}

#[test]
fn creating_over_an_existing_configuration_is_refused_with_the_import_to_run() {
    const REGION: &str = "ca-central-1";
    for cli in clis() {
        clear(REGION);
        let existing = aws_sdk_bedrock::types::CloudWatchConfig::builder()
            .log_group_name("/someone/else")
            .role_arn(role("theirs"))
            .build()
            .unwrap();
        block_on(
            bedrock(REGION)
                .put_model_invocation_logging_configuration()
                .logging_config(
                    LoggingConfig::builder()
                        .cloud_watch_config(existing)
                        .build(),
                )
                .send(),
        )
        .unwrap();
        let ws = Workspace::new(
            &cli,
            &format!(
                r#"{}
resource "aigov_invocation_logging" "this" {{
  log_group_name = "/aigov/mine"
  role_arn       = "{}"
}}
"#,
                provider(REGION, ""),
                role("mine")
            ),
        );
        let said = ws.fails(&["apply", "-auto-approve", "-input=false"]);
        assert!(
            said.contains("already exists") && said.contains(REGION),
            "{}: {said}",
            cli.name
        );
        let kept = remote(REGION).unwrap();
        assert_eq!(
            kept.cloud_watch_config().unwrap().log_group_name(),
            "/someone/else",
            "{}: the existing configuration was overwritten",
            cli.name
        );
        clear(REGION);
    }
}

/// A bad configuration, the line Terraform must underline, and what the message must say.
const BAD: &[(&str, &str, &str)] = &[
    (
        r#"resource "aigov_invocation_logging" "l" {
  log_group_name = ""
  role_arn       = "arn:aws:iam::123456789012:role/bedrock-logs"
}"#,
        "log_group_name = \"\"",
        "not a valid name",
    ),
    (
        r#"resource "aigov_invocation_logging" "l" {
  log_group_name = "/aigov/bedrock"
  role_arn       = "arn:aws:iam::123456789012:user/alice"
}"#,
        "role_arn       = \"arn:aws:iam::123456789012:user/alice\"",
        "IAM role ARN",
    ),
    (
        r#"resource "aigov_invocation_logging" "l" {
  log_group_name = "/aigov/bedrock"
  role_arn       = "bedrock-logs"
}"#,
        "role_arn       = \"bedrock-logs\"",
        "IAM role ARN",
    ),
    (
        r#"resource "aigov_invocation_logging" "l" {
  log_group_name = "/aigov/bedrock"
  role_arn       = "arn:aws:iam::123456789012:role/bedrock-logs"
  large_data_delivery_s3 {
    bucket_name = "Large_Logs"
  }
}"#,
        "bucket_name = \"Large_Logs\"",
        "S3 bucket name",
    ),
    (
        r#"resource "aigov_invocation_logging" "l" {
  log_group_name = "/aigov/bedrock"
  role_arn       = "arn:aws:iam::123456789012:role/bedrock-logs"
  large_data_delivery_s3 {
    bucket_name = "large-logs"
    key_prefix  = ""
  }
}"#,
        "key_prefix  = \"\"",
        "empty",
    ),
];

#[test]
fn bad_invocation_logging_values_are_refused_at_plan_time_on_the_attribute() {
    for cli in clis() {
        let ws = Workspace::new(&cli, &provider_block(""));
        for (resource, underlined, says) in BAD {
            ws.write(&format!("{}\n{resource}", provider_block("")));
            ws.assert_refused_on(underlined, says);
        }
        // The same resource with good values is valid: the failures come from the bad values.
        ws.write(&format!(
            r#"{}
resource "aigov_invocation_logging" "l" {{
  log_group_name = "/aigov/bedrock"
  role_arn       = "arn:aws:iam::123456789012:role/bedrock-logs"
}}"#,
            provider_block("")
        ));
        ws.ok(&["validate"]);
    }
}

#[test]
fn the_module_turns_invocation_logging_on_into_its_own_log_group() {
    let module =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../terraform/bedrock-governance");
    for cli in clis() {
        clear(MODULE_REGION);
        let name = unique("gov").replace('-', "");
        let config = |enabled: bool| {
            let logging = if enabled {
                format!(
                    r#"{{ role_arn = "{}", retention_days = 14, image_data = true }}"#,
                    role("bedrock-logs")
                )
            } else {
                "null".to_owned()
            };
            format!(
                r#"{provider}
module "governance" {{
  source             = "{module}"
  name               = "{name}"
  monthly_limit_usd  = 100
  invocation_logging = {logging}
}}
output "governance" {{ value = module.governance }}
"#,
                provider = provider(MODULE_REGION, "  account_id = \"123456789012\"\n"),
                module = module.display(),
            )
        };
        let ws = Workspace::new(&cli, &config(true));
        ws.apply();
        ws.assert_no_changes("module after apply");
        let outputs: Value = serde_json::from_str(&ws.ok(&["output", "-json"])).unwrap();
        let governance = &outputs["governance"]["value"];
        let group = format!("/aigov/{name}/bedrock-invocations");
        assert_eq!(
            governance["invocation_log_group"], group,
            "{}: {governance}",
            cli.name
        );
        assert_eq!(governance["invocation_logging_region"], MODULE_REGION);
        let held = remote(MODULE_REGION).expect("the module turned invocation logging on");
        let cw = held.cloud_watch_config().unwrap();
        assert_eq!(
            (cw.log_group_name(), cw.role_arn()),
            (group.as_str(), role("bedrock-logs").as_str())
        );
        assert_eq!(
            (
                held.text_data_delivery_enabled(),
                held.image_data_delivery_enabled()
            ),
            (Some(true), Some(true))
        );

        // Toggled off: the configuration and its log group go, the rest stays.
        ws.write(&config(false));
        let mut changes = ws.plan_changes();
        changes.sort();
        assert_eq!(
            changes,
            [
                (
                    "module.governance.aigov_invocation_logging.this[0]".to_owned(),
                    vec!["delete".to_owned()]
                ),
                (
                    "module.governance.aigov_log_group.invocations[0]".to_owned(),
                    vec!["delete".to_owned()]
                ),
            ],
            "{}",
            cli.name
        );
        ws.apply();
        ws.assert_no_changes("module after turning invocation logging off");
        assert!(remote(MODULE_REGION).is_none(), "{}", cli.name);

        ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    }
}
