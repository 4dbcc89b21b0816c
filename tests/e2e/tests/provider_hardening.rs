//! terraform-provider-aigov where it used to go wrong, through the real CLIs: budgets filtered to
//! another service, endpoints that never answer or answer nonsense, missing credentials and an
//! unreachable cluster, sensitive values in errors, objects another state owns, a create whose
//! read-back fails, and the module's notification limit. Each endpoint that misbehaves is a
//! loopback listener this test runs; everything else is the local environment's moto and cluster.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aigov_e2e::terraform::{Workspace, clis, provider_block};
use aigov_e2e::{aws_config, block_on, local_env, unique};

const ACCOUNT: &str = "123456789012";
const EC2: &str = "Amazon Elastic Compute Cloud - Compute";

/// The local environment's provider block with some services pointed elsewhere.
fn provider_with(overrides: &[(&str, &str)], extra: &str) -> String {
    let moto = local_env().moto_endpoint;
    let mut block = provider_block(extra);
    for (service, url) in overrides {
        let from = format!("{service:<10} = \"{moto}\"");
        assert!(block.contains(&from), "no {service} endpoint in {block}");
        block = block.replace(&from, &format!("{service:<10} = \"{url}\""));
    }
    block
}

/// What a CLI said, with Terraform's box drawing and line wrapping taken out.
fn said(out: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.replace(['│', '╷', '╵'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a command expected to fail within `limit`; what it said, whitespace-normalised.
fn fails_within(ws: &Workspace, args: &[&str], env: &[(&str, Option<&str>)], limit: u64) -> String {
    let out = ws
        .run_with(args, env, Duration::from_secs(limit))
        .unwrap_or_else(|| panic!("{} {args:?} still running after {limit}s", ws.cli.name));
    let text = said(&out);
    assert!(
        !out.status.success(),
        "{} {args:?} succeeded: {text}",
        ws.cli.name
    );
    text
}

/// A loopback endpoint that accepts connections and never answers (holding them open).
fn silent_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    url
}

/// A loopback endpoint that answers every request `404 Not Found` with a plain-text body.
fn not_found_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = read_request(&mut stream);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
            );
        }
    });
    url
}

/// A loopback URL where nothing listens (the port was bound, then released).
fn refused_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// One HTTP/1.1 request: its head (through the blank line) and body (by Content-Length).
fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut byte).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut byte).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&byte[..n]);
    }
    Some((head, body))
}

/// `head` with its Connection header replaced by `Connection: close`: one request per connection.
fn closing(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

/// A proxy to moto that fails AWS Budgets' DescribeBudget (a 400 AWS Budgets error) and passes
/// every other request through: a budget can be created but not read back.
fn budgets_proxy_failing_reads() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let moto = local_env()
        .moto_endpoint
        .trim_start_matches("http://")
        .to_owned();
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let moto = moto.clone();
            std::thread::spawn(move || {
                let Some((head, body)) = read_request(&mut client) else {
                    return;
                };
                if head.contains("AWSBudgetServiceGateway.DescribeBudget\r\n") {
                    let error = br#"{"__type":"InvalidParameterException","Message":"injected by the test: DescribeBudget fails"}"#;
                    let _ = write!(
                        client,
                        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        error.len()
                    );
                    let _ = client.write_all(error);
                    return;
                }
                let mut upstream = TcpStream::connect(&moto).unwrap();
                upstream.write_all(closing(&head).as_bytes()).unwrap();
                upstream.write_all(&body).unwrap();
                let mut answer = Vec::new();
                let _ = upstream.read_to_end(&mut answer);
                let split = answer
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map_or(answer.len(), |i| i + 4);
                let answer_head = String::from_utf8_lossy(&answer[..split]).into_owned();
                let _ = client.write_all(closing(&answer_head).as_bytes());
                let _ = client.write_all(&answer[split..]);
            });
        }
    });
    url
}

fn budgets() -> aws_sdk_budgets::Client {
    block_on(async { aws_sdk_budgets::Client::new(&aws_config().await) })
}

/// A monthly cost budget written straight to moto, filtered to `service`.
fn budget_filtered_to(name: &str, amount: &str, service: &str) -> aws_sdk_budgets::types::Budget {
    use aws_sdk_budgets::types::{Budget, BudgetType, Spend, TimeUnit};
    #[allow(deprecated)] // CostFilters is what the provider writes and reads
    Budget::builder()
        .budget_name(name)
        .budget_limit(Spend::builder().amount(amount).unit("USD").build().unwrap())
        .time_unit(TimeUnit::Monthly)
        .budget_type(BudgetType::Cost)
        .cost_filters("Service", vec![service.to_owned()])
        .build()
        .unwrap()
}

fn service_filter(name: &str) -> Vec<String> {
    let budget = block_on(
        budgets()
            .describe_budget()
            .account_id(ACCOUNT)
            .budget_name(name)
            .send(),
    )
    .unwrap()
    .budget
    .unwrap();
    #[allow(deprecated)]
    budget
        .cost_filters
        .unwrap_or_default()
        .remove("Service")
        .unwrap_or_default()
}

fn delete_budget(name: &str) {
    let _ = block_on(
        budgets()
            .delete_budget()
            .account_id(ACCOUNT)
            .budget_name(name)
            .send(),
    );
}

fn budget_config(name: &str, amount: &str) -> String {
    format!(
        r#"{provider}
resource "aigov_budget" "b" {{
  name       = "{name}"
  account_id = "{ACCOUNT}"
  amount     = {amount}
  time_unit  = "MONTHLY"
}}
"#,
        provider = provider_block("")
    )
}

#[test]
fn a_budget_filtered_to_another_service_is_not_imported_and_a_changed_filter_is_planned_back() {
    for cli in clis() {
        // Import of a budget of EC2 spend: refused, naming the filter.
        let ec2 = unique("aigov-ec2");
        block_on(
            budgets()
                .create_budget()
                .account_id(ACCOUNT)
                .budget(budget_filtered_to(&ec2, "100", EC2))
                .send(),
        )
        .unwrap();
        let ws = Workspace::new(&cli, &budget_config(&ec2, "100"));
        let id = format!("{ACCOUNT}:{ec2}");
        let out = fails_within(
            &ws,
            &["import", "-input=false", "aigov_budget.b", &id],
            &[],
            120,
        );
        assert!(out.contains(EC2) && out.contains("Amazon Bedrock"), "{out}");
        assert!(
            out.contains("aws_budgets_budget"),
            "the error says what to use: {out}"
        );
        assert_eq!(service_filter(&ec2), [EC2], "the EC2 budget was left alone");
        delete_budget(&ec2);

        // A filter changed out of band is drift: planned back to Bedrock, in place.
        let name = unique("aigov-filter");
        ws.write(&budget_config(&name, "100"));
        ws.apply();
        block_on(
            budgets()
                .update_budget()
                .account_id(ACCOUNT)
                .new_budget(budget_filtered_to(&name, "100", EC2))
                .send(),
        )
        .unwrap();
        assert_eq!(
            ws.plan_changes(),
            [("aigov_budget.b".to_owned(), vec!["update".to_owned()])],
            "the out-of-band filter is detected"
        );

        // Changing only the amount shows the filter being set back, not silently.
        ws.write(&budget_config(&name, "150"));
        let plan = said(&ws.run(&["plan", "-input=false"]));
        assert!(
            plan.contains(&format!(
                r#"cost_filter = "Service={EC2}" -> "Service=Amazon Bedrock""#
            )),
            "{plan}"
        );
        ws.apply();
        assert_eq!(service_filter(&name), ["Amazon Bedrock"]);
        ws.assert_no_changes("after setting the filter back");
        ws.ok(&["destroy", "-auto-approve", "-input=false"]);
    }
}

/// A log group imported by an `import` block: a plan reads it from AWS.
fn log_group_import(name: &str) -> String {
    format!(
        r#"
import {{
  to = aigov_log_group.g
  id = "{name}"
}}
resource "aigov_log_group" "g" {{
  name = "{name}"
}}
"#
    )
}

#[test]
fn an_endpoint_that_never_answers_fails_the_plan_in_bounded_time_naming_it() {
    for cli in clis() {
        let silent = silent_endpoint();
        let limits = "  max_retries               = 1\n  connect_timeout_seconds   = 2\n  attempt_timeout_seconds   = 2\n  operation_timeout_seconds = 6\n";
        let config = format!(
            "{}{}",
            provider_with(&[("logs", silent.as_str())], limits),
            log_group_import("/aigov/silent")
        );
        let ws = Workspace::new(&cli, &config);
        let started = Instant::now();
        let out = fails_within(&ws, &["plan", "-input=false"], &[], 120);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(60),
            "the plan took {took:?}: {out}"
        );
        assert!(out.contains(&silent), "the error names the endpoint: {out}");
        assert!(out.contains("did not answer within 6s"), "{out}");
        assert!(
            out.contains("operation_timeout_seconds"),
            "the error says what to raise: {out}"
        );
    }
}

#[test]
fn failed_calls_name_the_service_the_endpoint_the_cause_and_the_fix() {
    for cli in clis() {
        // HTTP 404 from something that is not AWS.
        let not_found = not_found_endpoint();
        let config = format!(
            "{}{}",
            provider_with(&[("logs", not_found.as_str())], ""),
            log_group_import("/aigov/not-found")
        );
        let ws = Workspace::new(&cli, &config);
        let out = fails_within(&ws, &["plan", "-input=false"], &[], 120);
        assert!(!out.contains("unhandled error"), "{out}");
        for part in [not_found.as_str(), "AWS logs", "HTTP 404", "endpoints.logs"] {
            assert!(out.contains(part), "{part:?} missing: {out}");
        }

        // Nothing listening.
        let refused = refused_endpoint();
        ws.write(&format!(
            "{}{}",
            provider_with(&[("logs", refused.as_str())], "  max_retries = 0\n"),
            log_group_import("/aigov/refused")
        ));
        let out = fails_within(&ws, &["plan", "-input=false"], &[], 120);
        for part in [refused.as_str(), "could not be reached", "endpoints.logs"] {
            assert!(out.contains(part), "{part:?} missing: {out}");
        }
        assert!(!out.contains("ConnectorError {"), "no debug dump: {out}");

        // No credentials anywhere in the chain.
        ws.write(&format!(
            "{}{}",
            provider_block(""),
            log_group_import("/aigov/no-creds")
        ));
        let no_credentials = [
            ("AWS_ACCESS_KEY_ID", None),
            ("AWS_SECRET_ACCESS_KEY", None),
            ("AWS_SESSION_TOKEN", None),
            ("AWS_PROFILE", None),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", None),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", None),
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", None),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                Some("/nonexistent/aigov/credentials"),
            ),
            ("AWS_CONFIG_FILE", Some("/nonexistent/aigov/config")),
            ("AWS_EC2_METADATA_DISABLED", Some("true")),
        ];
        let out = fails_within(&ws, &["plan", "-input=false"], &no_credentials, 120);
        for part in ["no usable AWS credentials", "AWS_ACCESS_KEY_ID", "AWS logs"] {
            assert!(out.contains(part), "{part:?} missing: {out}");
        }
        assert!(
            !out.contains("Some(") && !out.contains("{ source"),
            "no debug dump: {out}"
        );

        // A cluster nobody answers for.
        let dead = refused_endpoint().replace("http://", "https://");
        let kubeconfig = ws.dir.join("dead-kubeconfig");
        std::fs::write(&kubeconfig, format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: {dead}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: dead\n  context:\n    cluster: dead\n    user: u\ncurrent-context: dead\n"
        )).unwrap();
        let provider = provider_block("").replace(
            &local_env().kubeconfig.display().to_string(),
            &kubeconfig.display().to_string(),
        );
        ws.write(&format!(
            "{provider}\ndata \"aigov_model_price\" \"p\" {{\n  model = \"anthropic.claude-3-haiku-20240307-v1:0\"\n}}\n"
        ));
        let out = fails_within(&ws, &["plan", "-input=false"], &[], 120);
        for part in [
            dead.as_str(),
            "could not be reached",
            "kubernetes.config_path",
        ] {
            assert!(out.contains(part), "{part:?} missing: {out}");
        }
    }
}

#[test]
fn a_sensitive_webhook_url_is_never_printed_in_an_error() {
    let secret = "very-secret-token";
    let hook = format!("http://hooks.example.com/services/T000/B000/{secret}");
    let module =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../terraform/bedrock-governance");
    for cli in clis() {
        let variable = format!(
            "variable \"hook\" {{\n  type      = string\n  sensitive = true\n  default   = \"{hook}\"\n}}\n"
        );
        let direct = format!(
            r#"{provider}{variable}
resource "aigov_alert_channel" "c" {{
  name = "{name}"
  subscription {{
    protocol = "https"
    endpoint = var.hook
  }}
}}
"#,
            provider = provider_block(""),
            name = unique("aigov-secret")
        );
        let through_module = format!(
            r#"{provider}{variable}
module "governance" {{
  source            = "{module}"
  name              = "{name}"
  monthly_limit_usd = 10
  webhook_url       = var.hook
}}
"#,
            provider = provider_block(""),
            module = module.display(),
            name = unique("gov").replace('-', "")
        );
        for (what, config) in [("resource", direct), ("module", through_module)] {
            // The value is a sensitive variable's default: the lines Terraform shows hold only var.hook.
            let ws = Workspace::new(&cli, &config);
            let out = fails_within(&ws, &["plan", "-input=false"], &[], 120);
            assert!(out.contains("is not an https:// URL"), "{what}: {out}");
            assert!(
                !out.contains(secret),
                "{what}: the webhook URL was printed: {out}"
            );
        }
    }
}

#[test]
fn create_refuses_a_topic_or_alarm_that_already_exists_and_says_how_to_import_it() {
    for cli in clis() {
        let name = unique("aigov-taken");
        let config = block_on(aws_config());
        let sns = aws_sdk_sns::Client::new(&config);
        let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
        let topic = block_on(sns.create_topic().name(&name).send())
            .unwrap()
            .topic_arn
            .unwrap();
        block_on(
            cloudwatch
                .put_metric_alarm()
                .alarm_name(&name)
                .namespace("AIGov")
                .metric_name("Requests")
                .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
                .period(60)
                .evaluation_periods(1)
                .threshold(7.0)
                .comparison_operator(
                    aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold,
                )
                .send(),
        )
        .unwrap();
        let ws = Workspace::new(
            &cli,
            &format!(
                r#"{provider}
resource "aigov_alert_channel" "c" {{
  name = "{name}"
}}
resource "aigov_alarm" "a" {{
  name      = "{name}"
  threshold = 1
  metric {{
    namespace   = "AIGov"
    metric_name = "Requests"
  }}
}}
"#,
                provider = provider_block("")
            ),
        );
        let out = fails_within(&ws, &["apply", "-auto-approve", "-input=false"], &[], 300);
        assert!(
            out.contains(&format!(
                "terraform import aigov_alert_channel.NAME {topic}"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!("terraform import aigov_alarm.NAME {name}")),
            "{out}"
        );
        assert!(out.contains("already exists"), "{out}");
        let state = ws.run(&["state", "list"]);
        assert!(
            String::from_utf8_lossy(&state.stdout).trim().is_empty(),
            "nothing was adopted"
        );
        let alarm = block_on(cloudwatch.describe_alarms().alarm_names(&name).send()).unwrap();
        assert_eq!(
            alarm.metric_alarms()[0].threshold,
            Some(7.0),
            "the alarm was not overwritten"
        );
        block_on(sns.get_topic_attributes().topic_arn(&topic).send())
            .expect("the topic is still there");
        let _ = block_on(cloudwatch.delete_alarms().alarm_names(&name).send());
        let _ = block_on(sns.delete_topic().topic_arn(&topic).send());
    }
}

#[test]
fn a_budget_whose_read_back_fails_stays_in_the_state() {
    for cli in clis() {
        let name = unique("aigov-readback");
        let proxy = budgets_proxy_failing_reads();
        let config = budget_config(&name, "40");
        let failing = config.replace(
            &format!("budgets    = \"{}\"", local_env().moto_endpoint),
            &format!("budgets    = \"{proxy}\""),
        );
        assert_ne!(failing, config);
        let ws = Workspace::new(&cli, &failing);
        let out = fails_within(&ws, &["apply", "-auto-approve", "-input=false"], &[], 300);
        assert!(
            out.contains("was created, but reading it back failed"),
            "{out}"
        );
        assert!(
            out.contains("injected by the test"),
            "the cause is shown: {out}"
        );
        let listed = ws.ok(&["state", "list"]);
        assert!(
            listed.contains("aigov_budget.b"),
            "the budget was forgotten: {listed}"
        );
        assert_eq!(
            ws.state_of("aigov_budget.b")["id"],
            format!("{ACCOUNT}:{name}")
        );
        // Tracked, so Terraform can destroy it once AWS answers again.
        ws.write(&config);
        ws.ok(&["destroy", "-auto-approve", "-input=false"]);
        let gone = block_on(
            budgets()
                .describe_budget()
                .account_id(ACCOUNT)
                .budget_name(&name)
                .send(),
        );
        assert!(gone.is_err(), "destroy left the budget behind");
        delete_budget(&name);
    }
}

#[test]
fn the_module_refuses_more_notifications_than_aws_budgets_allows_at_plan_time() {
    let module =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../terraform/bedrock-governance");
    for cli in clis() {
        let config = |percents: &str, forecast: &str| {
            format!(
                r#"{provider}
module "governance" {{
  source              = "{module}"
  name                = "{name}"
  monthly_limit_usd   = 10
  notify_at_percent   = {percents}
  forecast_at_percent = {forecast}
}}
"#,
                provider = provider_block("  account_id = \"123456789012\"\n"),
                module = module.display(),
                name = unique("gov").replace('-', "")
            )
        };
        // Five actual thresholds plus the default forecast: six, one too many.
        let ws = Workspace::new(&cli, &config("[10, 20, 30, 40, 50]", "100"));
        let out = fails_within(&ws, &["plan", "-input=false"], &[], 120);
        assert!(out.contains("at most 5 notifications"), "{out}");
        assert!(
            out.contains("forecast_at_percent"),
            "the error names the variables: {out}"
        );
        // Five in all, either way, plan.
        ws.write(&config("[10, 20, 30, 40]", "100"));
        ws.ok(&["plan", "-input=false"]);
        ws.write(&config("[10, 20, 30, 40, 50]", "null"));
        ws.ok(&["plan", "-input=false"]);
    }
}
