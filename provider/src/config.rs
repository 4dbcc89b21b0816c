//! The provider block: AWS region, credentials, per-service endpoints, default tags, the account,
//! and the cluster for cluster-side objects; and the clients built from it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_config::BehaviorVersion;
use tokio::sync::OnceCell;

use crate::Error;
use crate::diag::{Diagnostics, Path};
use crate::schema::{Attribute, Block, NestedBlock, Nesting, Type};
use crate::validate::{self, Kind};
use crate::value::Value;

/// The AWS services whose endpoint can be overridden, as named in `endpoints { }`.
pub const ENDPOINT_SERVICES: [&str; 5] = ["budgets", "cloudwatch", "logs", "sns", "sts"];

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
    let tags_path = Path::attr("default_tags").then("tags");
    validate::tags(config.get("default_tags").get("tags"), &tags_path, diags);
}

/// The clients and settings every resource uses, built once per provider configuration.
pub struct Clients {
    /// AWS Budgets.
    pub budgets: aws_sdk_budgets::Client,
    /// SNS.
    pub sns: aws_sdk_sns::Client,
    /// CloudWatch Logs.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// CloudWatch.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    sts: aws_sdk_sts::Client,
    configured_account: Option<String>,
    account: OnceCell<String>,
    /// `default_tags`; `None` while they are unknown (planning before their inputs exist).
    pub default_tags: Option<BTreeMap<String, String>>,
    kube_config_path: Option<PathBuf>,
    kube_context: Option<String>,
    kube: OnceCell<kube::Client>,
}

impl Clients {
    /// Builds the clients from a provider block (which may hold unknowns during planning).
    pub async fn new(config: &Value) -> Result<Clients, Error> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
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
        let default_tags = config.get("default_tags").get("tags").to_string_map();
        let kubernetes = config.get("kubernetes");
        Ok(Clients {
            budgets: client!(aws_sdk_budgets, "budgets"),
            sns: client!(aws_sdk_sns, "sns"),
            logs: client!(aws_sdk_cloudwatchlogs, "logs"),
            cloudwatch: client!(aws_sdk_cloudwatch, "cloudwatch"),
            sts: client!(aws_sdk_sts, "sts"),
            configured_account: config.get("account_id").as_str().map(str::to_owned),
            account: OnceCell::new(),
            default_tags,
            kube_config_path: kubernetes.get("config_path").as_str().map(PathBuf::from),
            kube_context: kubernetes.get("context").as_str().map(str::to_owned),
            kube: OnceCell::new(),
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
                    Error::aws("finding the AWS account (sts:GetCallerIdentity)", e)
                })?;
                identity
                    .account
                    .ok_or_else(|| Error::Aws("sts:GetCallerIdentity returned no account".into()))
            })
            .await
            .cloned()
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
                Ok(kube::Client::try_from(config)?)
            })
            .await
            .cloned()
    }

    /// A resource's effective tags: `default_tags` with its own tags on top; `None` when unknown.
    pub fn tags_all(&self, tags: &Value) -> Option<BTreeMap<String, String>> {
        let mut all = self.default_tags.clone()?;
        all.extend(tags.to_string_map()?);
        Some(all)
    }
}
