//! The provider block: AWS region, credentials, per-service endpoints, default tags, the account,
//! and the cluster for cluster-side objects; and the clients built from it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use rust_decimal::Decimal;
use tokio::sync::OnceCell;

use crate::Error;
use crate::diag::{Diagnostics, Path};
use crate::error::AwsTarget;
use crate::schema::{Attribute, Block, NestedBlock, Nesting, Type};
use crate::validate::{self, Kind};
use crate::value::Value;

/// The AWS services whose endpoint can be overridden, as named in `endpoints { }`.
pub const ENDPOINT_SERVICES: [&str; 6] = ["bedrock", "budgets", "cloudwatch", "logs", "sns", "sts"];

/// The timeout attributes, in seconds.
const TIMEOUTS: [&str; 3] = [
    "connect_timeout_seconds",
    "attempt_timeout_seconds",
    "operation_timeout_seconds",
];
const MAX_RETRIES_LIMIT: i64 = 25;
const MAX_TIMEOUT_SECONDS: i64 = 3600;

/// The limits of every AWS call. Without them the SDK waits on a silent endpoint for ever (a plan
/// hung 420 s on one); the defaults bound a call to two minutes however the endpoint behaves.
#[derive(Clone, Copy, Debug)]
struct Limits {
    retries: u32,
    connect: Duration,
    attempt: Duration,
    operation: Duration,
}

impl Limits {
    fn from_config(config: &Value) -> Limits {
        let secs = |name: &str, default: u64| {
            Duration::from_secs(
                config
                    .get(name)
                    .as_i64()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(default),
            )
        };
        Limits {
            retries: config
                .get("max_retries")
                .as_i64()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(3),
            connect: secs("connect_timeout_seconds", 10),
            attempt: secs("attempt_timeout_seconds", 30),
            operation: secs("operation_timeout_seconds", 120),
        }
    }
}

/// The AWS partition of a region (`aws`, `aws-cn`, `aws-us-gov`, ...), for the ARNs the provider
/// builds itself: hard-coding `arn:aws:` gives wrong ARNs in China and GovCloud.
pub fn partition(region: &str) -> &'static str {
    const PREFIXES: [(&str, &str); 6] = [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |&(_, p)| p)
}

/// The provider block's schema.
pub fn schema() -> Block {
    Block {
        description: "Configures AWS access and the Kubernetes cluster that aigov's provider manages.",
        attributes: vec![
            Attribute::optional(
                "region",
                Type::String,
                "AWS region; defaults to the standard chain (`AWS_REGION`, the profile).",
            ),
            Attribute::optional(
                "profile",
                Type::String,
                "Named profile from the shared AWS config files; credentials otherwise come from the standard chain.",
            ),
            Attribute::optional(
                "account_id",
                Type::String,
                "The AWS account that owns budgets; defaults to the caller's account from STS.",
            ),
            Attribute::optional(
                "max_retries",
                Type::Number,
                "Retries of a failed AWS call (throttling, 5xx, timeouts, connection errors) after the first attempt, with the SDK's standard backoff; default 3, like the AWS SDKs' standard mode (the AWS provider's `max_retries`).",
            ),
            Attribute::optional(
                "connect_timeout_seconds",
                Type::Number,
                "Seconds to wait for a connection to an AWS endpoint; default 10.",
            ),
            Attribute::optional(
                "attempt_timeout_seconds",
                Type::Number,
                "Seconds one attempt of an AWS call may take before it is abandoned and retried; default 30.",
            ),
            Attribute::optional(
                "operation_timeout_seconds",
                Type::Number,
                "Seconds one AWS call may take in all, retries included; default 120. An endpoint that accepts connections and never answers fails the call after this long, naming the endpoint.",
            ),
        ],
        blocks: vec![
            NestedBlock {
                name: "endpoints",
                nesting: Nesting::Single,
                max_items: 1,
                key: &[],
                block: Block {
                    description: "Endpoint overrides per AWS service (for emulators, VPC endpoints or FIPS).",
                    attributes: ENDPOINT_SERVICES
                        .iter()
                        .map(|s| {
                            Attribute::optional(s, Type::String, "Endpoint URL for this service.")
                        })
                        .collect(),
                    blocks: vec![],
                },
            },
            NestedBlock {
                name: "default_tags",
                nesting: Nesting::Single,
                max_items: 1,
                key: &[],
                block: Block {
                    description: "Tags merged into every taggable resource (a resource's own tags win); see each resource's `tags_all`.",
                    attributes: vec![Attribute::optional("tags", Type::string_map(), "The tags.")],
                    blocks: vec![],
                },
            },
            NestedBlock {
                name: "kubernetes",
                nesting: Nesting::Single,
                max_items: 1,
                key: &[],
                block: Block {
                    description: "The cluster for cluster-side objects (`aigov_pricing_override`, overrides read by `aigov_model_price`); defaults to `KUBECONFIG` or `~/.kube/config`.",
                    attributes: vec![
                        Attribute::optional(
                            "config_path",
                            Type::String,
                            "Path to a kubeconfig file.",
                        ),
                        Attribute::optional(
                            "context",
                            Type::String,
                            "The kubeconfig context to use.",
                        ),
                    ],
                    blocks: vec![],
                },
            },
        ],
    }
}

/// Plan-time checks of the provider block.
pub fn validate(config: &Value, diags: &mut Diagnostics) {
    validate::kind(
        config.get("account_id"),
        Kind::AccountId,
        &Path::attr("account_id"),
        diags,
    );
    let endpoints = config.get("endpoints");
    for service in ENDPOINT_SERVICES {
        let path = Path::attr("endpoints").then(service);
        validate::kind(endpoints.get(service), Kind::Url, &path, diags);
    }
    validate::range(
        config.get("max_retries"),
        Decimal::ZERO,
        false,
        Some(Decimal::from(MAX_RETRIES_LIMIT)),
        &Path::attr("max_retries"),
        diags,
    );
    validate::whole(config.get("max_retries"), &Path::attr("max_retries"), diags);
    for name in TIMEOUTS {
        let path = Path::attr(name);
        validate::range(
            config.get(name),
            Decimal::ZERO,
            true,
            Some(Decimal::from(MAX_TIMEOUT_SECONDS)),
            &path,
            diags,
        );
        validate::whole(config.get(name), &path, diags);
    }
    let tags_path = Path::attr("default_tags").then("tags");
    validate::tags(config.get("default_tags").get("tags"), &tags_path, diags);
}

/// The clients and settings every resource uses, built once per provider configuration.
pub struct Clients {
    /// Amazon Bedrock's control plane (model invocation logging).
    pub bedrock: aws_sdk_bedrock::Client,
    /// AWS Budgets.
    pub budgets: aws_sdk_budgets::Client,
    /// SNS.
    pub sns: aws_sdk_sns::Client,
    /// CloudWatch Logs.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// CloudWatch.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    sts: aws_sdk_sts::Client,
    targets: BTreeMap<&'static str, AwsTarget>,
    region: Option<String>,
    partition: &'static str,
    configured_account: Option<String>,
    account: OnceCell<String>,
    /// `default_tags`; `None` while they are unknown (planning before their inputs exist).
    pub default_tags: Option<BTreeMap<String, String>>,
    kube_config_path: Option<PathBuf>,
    kube_context: Option<String>,
    kube: OnceCell<kube::Client>,
    kube_server: std::sync::OnceLock<String>,
}

/// The provider's name and version in the user agent of every AWS call it makes
/// (`app/terraform-provider-aigov-0.1.0`), so CloudTrail tells which provider build called.
fn app_name() -> aws_config::AppName {
    aws_config::AppName::new(concat!(
        "terraform-provider-aigov-",
        env!("CARGO_PKG_VERSION")
    ))
    .expect("the crate's name and version make a valid app name")
}

impl Clients {
    /// Builds the clients from a provider block (which may hold unknowns during planning).
    pub async fn new(config: &Value) -> Result<Clients, Error> {
        let limits = Limits::from_config(config);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .app_name(app_name())
            .retry_config(RetryConfig::standard().with_max_attempts(limits.retries + 1))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(limits.connect)
                    .operation_attempt_timeout(limits.attempt)
                    .operation_timeout(limits.operation)
                    .build(),
            );
        if let Some(region) = config.get("region").as_str() {
            loader = loader.region(aws_config::Region::new(region.to_owned()));
        }
        if let Some(profile) = config.get("profile").as_str() {
            loader = loader.profile_name(profile);
        }
        let shared = loader.load().await;
        let endpoint = |service: &str| {
            config
                .get("endpoints")
                .get(service)
                .as_str()
                .map(str::to_owned)
        };
        macro_rules! client {
            ($krate:ident, $service:literal) => {{
                let mut builder = $krate::config::Builder::from(&shared);
                if let Some(url) = endpoint($service) {
                    builder = builder.endpoint_url(url);
                }
                $krate::Client::from_conf(builder.build())
            }};
        }
        let region = shared.region().map(|r| r.as_ref().to_owned());
        let targets = ENDPOINT_SERVICES
            .iter()
            .map(|&service| {
                (
                    service,
                    target(service, endpoint(service), region.as_deref(), limits),
                )
            })
            .collect();
        let default_tags = config.get("default_tags").get("tags").to_string_map();
        let kubernetes = config.get("kubernetes");
        Ok(Clients {
            bedrock: client!(aws_sdk_bedrock, "bedrock"),
            budgets: client!(aws_sdk_budgets, "budgets"),
            sns: client!(aws_sdk_sns, "sns"),
            logs: client!(aws_sdk_cloudwatchlogs, "logs"),
            cloudwatch: client!(aws_sdk_cloudwatch, "cloudwatch"),
            sts: client!(aws_sdk_sts, "sts"),
            targets,
            partition: partition(region.as_deref().unwrap_or("us-east-1")),
            region,
            configured_account: config.get("account_id").as_str().map(str::to_owned),
            account: OnceCell::new(),
            default_tags,
            kube_config_path: kubernetes.get("config_path").as_str().map(PathBuf::from),
            kube_context: kubernetes.get("context").as_str().map(str::to_owned),
            kube: OnceCell::new(),
            kube_server: std::sync::OnceLock::new(),
        })
    }

    /// The account that owns budgets: configured, else the caller's (asked of STS once).
    pub async fn account_id(&self) -> Result<String, Error> {
        if let Some(account) = &self.configured_account {
            return Ok(account.clone());
        }
        self.account
            .get_or_try_init(|| async {
                let identity = self.sts.get_caller_identity().send().await.map_err(|e| {
                    Error::aws(
                        self.target("sts"),
                        "finding the AWS account (sts:GetCallerIdentity; or set account_id in the provider block)",
                        e,
                    )
                })?;
                identity
                    .account
                    .ok_or_else(|| Error::Aws("sts:GetCallerIdentity returned no account".into()))
            })
            .await
            .cloned()
    }

    /// Where calls to `service` (as named in `endpoints { }`) go, for error messages.
    pub fn target(&self, service: &str) -> &AwsTarget {
        self.targets
            .get(service)
            .unwrap_or_else(|| &self.targets["sts"])
    }

    /// The provider's region (configured or from the standard chain); `None` when neither sets one.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The AWS partition the provider's region belongs to (`aws` when no region is set).
    pub fn partition(&self) -> &'static str {
        self.partition
    }

    /// The account, when known without a call (configured, or already asked of STS).
    pub fn known_account_id(&self) -> Option<String> {
        self.configured_account
            .clone()
            .or_else(|| self.account.get().cloned())
    }

    /// The cluster client, connected on first use.
    pub async fn kube(&self) -> Result<kube::Client, Error> {
        self.kube
            .get_or_try_init(|| async {
                let options = kube::config::KubeConfigOptions {
                    context: self.kube_context.clone(),
                    ..Default::default()
                };
                let config = match &self.kube_config_path {
                    Some(path) => {
                        let file = kube::config::Kubeconfig::read_from(path)
                            .map_err(|e| Error::KubeConfig(format!("{}: {e}", path.display())))?;
                        kube::Config::from_custom_kubeconfig(file, &options).await
                    }
                    None => kube::Config::from_kubeconfig(&options).await,
                }
                .map_err(|e| Error::KubeConfig(e.to_string()))?;
                let _ = self.kube_server.set(config.cluster_url.to_string());
                kube::Client::try_from(config).map_err(|e| self.kube_error(e))
            })
            .await
            .cloned()
    }

    /// A Kubernetes failure naming the cluster it happened on.
    pub fn kube_error(&self, source: kube::Error) -> Error {
        Error::Kube {
            server: self
                .kube_server
                .get()
                .cloned()
                .unwrap_or_else(|| "(not yet known)".to_owned()),
            source,
        }
    }

    /// A resource's effective tags: `default_tags` with its own tags on top; `None` when unknown.
    pub fn tags_all(&self, tags: &Value) -> Option<BTreeMap<String, String>> {
        let mut all = self.default_tags.clone()?;
        all.extend(tags.to_string_map()?);
        Some(all)
    }
}

/// Where calls to one service go: the override, else the SDK's default endpoint for the region.
fn target(
    service: &'static str,
    endpoint: Option<String>,
    region: Option<&str>,
    limits: Limits,
) -> AwsTarget {
    let region = region.unwrap_or("(no region set)");
    let host = match service {
        "budgets" => "budgets.amazonaws.com".to_owned(),
        "cloudwatch" => format!("monitoring.{region}.amazonaws.com"),
        other => format!("{other}.{region}.amazonaws.com"),
    };
    AwsTarget {
        service,
        overridden: endpoint.is_some(),
        endpoint: endpoint
            .unwrap_or_else(|| format!("https://{host} (the default for region {region})")),
        connect_timeout: limits.connect,
        operation_timeout: limits.operation,
        attempts: limits.retries + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_agent_names_the_provider_and_its_version() {
        assert_eq!(
            app_name().to_string(),
            format!("terraform-provider-aigov-{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn arns_get_the_partition_of_the_region() {
        assert_eq!(partition("us-east-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("us-isob-east-1"), "aws-iso-b");
        assert_eq!(partition("us-iso-east-1"), "aws-iso");
    }

    #[test]
    fn calls_are_bounded_by_default_and_the_limits_are_configurable() {
        let defaults = Limits::from_config(&Value::Null);
        assert_eq!(defaults.retries, 3);
        assert_eq!(defaults.operation, Duration::from_secs(120));
        let set = Limits::from_config(&Value::object([
            ("max_retries", Value::Number(Decimal::from(0))),
            ("operation_timeout_seconds", Value::Number(Decimal::from(5))),
        ]));
        assert_eq!((set.retries, set.operation), (0, Duration::from_secs(5)));
    }
}
