//! `aigov_invocation_logging`: Amazon Bedrock's model invocation logging for the provider's
//! account and region, delivered to a CloudWatch Logs group (such as an `aigov_log_group`) with
//! the IAM role Bedrock assumes to write there. Bedrock keeps one configuration per account and
//! region, so the region is the ID; `PutModelInvocationLoggingConfiguration` replaces it whole.

use std::sync::LazyLock;

use async_trait::async_trait;
use aws_sdk_bedrock::types::{CloudWatchConfig, LoggingConfig, S3Config};
use regex::Regex;

use super::log_group::NAME as LOG_GROUP_NAME;
use super::{Resource, read_back, written};
use crate::Error;
use crate::config::Clients;
use crate::diag::{Diagnostics, Path};
use crate::schema::{Attribute, Block, NestedBlock, Nesting, Type};
use crate::validate::{self, Kind};
use crate::value::Value;

const TYPE_NAME: &str = "aigov_invocation_logging";

/// The delivery flags: attribute, default, description. Text is on by default because prompts
/// and completions are what a spend investigation reads; the others are large and rarely needed.
const DELIVERY: [(&str, bool, &str); 5] = [
    (
        "text_data_delivery_enabled",
        true,
        "Log the text of prompts and completions (default `true`).",
    ),
    (
        "image_data_delivery_enabled",
        false,
        "Log image inputs and outputs (default `false`).",
    ),
    (
        "embedding_data_delivery_enabled",
        false,
        "Log embeddings (default `false`).",
    ),
    (
        "video_data_delivery_enabled",
        false,
        "Log video inputs and outputs (default `false`).",
    ),
    (
        "audio_data_delivery_enabled",
        false,
        "Log audio inputs and outputs (default `false`).",
    ),
];

/// An AWS region name, as `terraform import` takes it.
static REGION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]{2}(-[a-z]+)+-\d+$").expect("valid regex"));

/// The resource.
pub struct InvocationLogging;

#[async_trait]
impl Resource for InvocationLogging {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Block {
        let mut attributes = vec![
            Attribute::computed(
                "id",
                Type::String,
                "The region whose configuration this is (the provider's): Bedrock keeps one per account and region.",
            ),
            Attribute::required(
                "log_group_name",
                Type::String,
                "The CloudWatch Logs group Bedrock delivers invocation logs to, such as an `aigov_log_group`'s `name`.",
            ),
            Attribute::required(
                "role_arn",
                Type::String,
                "ARN of the IAM role Bedrock assumes to write to the log group (trusting `bedrock.amazonaws.com`, allowed `logs:CreateLogStream` and `logs:PutLogEvents` on it).",
            ),
        ];
        attributes.extend(DELIVERY.iter().map(|&(name, default, description)| {
            Attribute::optional(name, Type::Bool, description).with_default(Value::Bool(default))
        }));
        Block {
            description: "Amazon Bedrock model invocation logging for the provider's account and region, delivered to a CloudWatch Logs group. Bedrock keeps one configuration per account and region: this resource replaces it whole (an S3 destination set elsewhere is removed) and destroying it turns invocation logging off.",
            attributes,
            blocks: vec![NestedBlock {
                name: "large_data_delivery_s3",
                nesting: Nesting::Single,
                max_items: 1,
                key: &[],
                block: Block {
                    description: "The S3 bucket Bedrock delivers the log data too large for CloudWatch Logs to (over 100 KB, and binary image data).",
                    attributes: vec![
                        Attribute::required("bucket_name", Type::String, "The S3 bucket."),
                        Attribute::optional(
                            "key_prefix",
                            Type::String,
                            "The key prefix of the objects, such as `bedrock/`.",
                        ),
                    ],
                    blocks: vec![],
                },
            }],
        }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate::name(
            config.get("log_group_name"),
            &LOG_GROUP_NAME,
            "use 1 to 512 letters, digits and . - _ / #",
            &Path::attr("log_group_name"),
            diags,
        );
        validate::kind(
            config.get("role_arn"),
            Kind::IamRoleArn,
            &Path::attr("role_arn"),
            diags,
        );
        let s3 = config.get("large_data_delivery_s3");
        let s3_path = Path::attr("large_data_delivery_s3");
        validate::kind(
            s3.get("bucket_name"),
            Kind::S3Bucket,
            &s3_path.then("bucket_name"),
            diags,
        );
        // Bedrock drops an empty prefix; accepting "" would then plan a change on every run.
        if s3.get("key_prefix").as_str() == Some("") {
            diags.attr_error(
                &s3_path.then("key_prefix"),
                "Invalid value",
                "key_prefix is empty; leave it out to write at the top of the bucket.",
            );
        }
    }

    fn plan(&self, clients: &Clients, planned: &mut Value, _prior: &Value) {
        let id = clients
            .region()
            .map(Value::string)
            .unwrap_or_else(Value::unknown);
        planned.set("id", id);
    }

    async fn create(&self, clients: &Clients, planned: &Value) -> Result<Value, Error> {
        let region = region(clients, planned);
        if get(clients, &region).await?.is_some() {
            return Err(taken(&region));
        }
        put(clients, &region, planned).await?;
        let mut created = planned.clone();
        created.set("id", Value::string(&region));
        read_back(self.read(clients, &created).await, &created, &what(&region))
    }

    async fn read(&self, clients: &Clients, state: &Value) -> Result<Option<Value>, Error> {
        let region = region(clients, state);
        Ok(get(clients, &region)
            .await?
            .map(|config| state_of(&region, &config)))
    }

    async fn update(
        &self,
        clients: &Clients,
        _prior: &Value,
        planned: &Value,
    ) -> Result<Value, Error> {
        let region = region(clients, planned);
        put(clients, &region, planned).await?;
        written(self.read(clients, planned).await?, &what(&region))
    }

    async fn delete(&self, clients: &Clients, state: &Value) -> Result<(), Error> {
        let region = region(clients, state);
        // Deleting a configuration that is not there succeeds: nothing to handle as "gone".
        clients
            .bedrock
            .delete_model_invocation_logging_configuration()
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                Error::aws(
                    clients.target("bedrock"),
                    &format!("deleting {}", what(&region)),
                    e,
                )
            })
    }

    async fn import(&self, clients: &Clients, id: &str) -> Result<Value, String> {
        if !REGION.is_match(id) {
            return Err(format!(
                "import the invocation logging configuration by its region, such as us-east-1 (Bedrock keeps one per account and region); {id:?} is not a region"
            ));
        }
        match clients.region() {
            Some(region) if region != id => Err(format!(
                "the provider is configured for region {region}, so it manages the configuration of {region}, not of {id}: import with id {region}, or with a provider (alias) whose region is {id}"
            )),
            _ => Ok(Value::object([("id", Value::string(id))])),
        }
    }
}

/// The error for a create that found a configuration there: like [`super::already_exists`], but
/// there is no other name to choose, only importing it or turning it off first.
fn taken(region: &str) -> Error {
    Error::Aws(format!(
        "{} already exists (Bedrock keeps one per account and region); {TYPE_NAME} never takes over an existing one, which another Terraform state or person may own. To manage it here, import it: terraform import {TYPE_NAME}.NAME {region} (or an import block with id = \"{region}\"); otherwise turn it off first (aws bedrock delete-model-invocation-logging-configuration --region {region}).",
        what(region)
    ))
}

fn what(region: &str) -> String {
    format!("the Bedrock model invocation logging configuration of {region}")
}

/// The region the calls go to: the provider's (the clients are bound to it), else the state's.
fn region(clients: &Clients, state: &Value) -> String {
    clients
        .region()
        .or_else(|| state.get("id").as_str())
        .unwrap_or("(no region set)")
        .to_owned()
}

/// The configuration Bedrock holds, `None` when there is none. Bedrock answers an empty
/// `loggingConfig` (or none) when logging is off; one without any destination is off too.
async fn get(clients: &Clients, region: &str) -> Result<Option<LoggingConfig>, Error> {
    let out = clients
        .bedrock
        .get_model_invocation_logging_configuration()
        .send()
        .await
        .map_err(|e| {
            Error::aws(
                clients.target("bedrock"),
                &format!("reading {}", what(region)),
                e,
            )
        })?;
    Ok(out
        .logging_config
        .filter(|c| c.cloud_watch_config.is_some() || c.s3_config.is_some()))
}

async fn put(clients: &Clients, region: &str, planned: &Value) -> Result<(), Error> {
    clients
        .bedrock
        .put_model_invocation_logging_configuration()
        .logging_config(logging_config(planned)?)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            Error::aws(
                clients.target("bedrock"),
                &format!("writing {}", what(region)),
                e,
            )
        })
}

/// The configuration to put for a planned state: CloudWatch delivery and every flag, so that
/// what Bedrock holds afterwards is exactly the plan (Put replaces the configuration whole).
pub fn logging_config(planned: &Value) -> Result<LoggingConfig, Error> {
    let s3 = planned.get("large_data_delivery_s3");
    let large = match s3.get("bucket_name").as_str() {
        Some(bucket) => Some(
            S3Config::builder()
                .bucket_name(bucket)
                .set_key_prefix(s3.get("key_prefix").as_str().map(str::to_owned))
                .build()
                .map_err(|e| Error::Value(format!("large_data_delivery_s3: {e}")))?,
        ),
        None => None,
    };
    let cloud_watch = CloudWatchConfig::builder()
        .log_group_name(planned.get("log_group_name").as_str().unwrap_or_default())
        .role_arn(planned.get("role_arn").as_str().unwrap_or_default())
        .set_large_data_delivery_s3_config(large)
        .build()
        .map_err(|e| Error::Value(format!("invocation logging: {e}")))?;
    let flag = |i: usize| {
        let (name, default, _) = DELIVERY[i];
        planned.get(name).as_bool().unwrap_or(default)
    };
    Ok(LoggingConfig::builder()
        .cloud_watch_config(cloud_watch)
        .text_data_delivery_enabled(flag(0))
        .image_data_delivery_enabled(flag(1))
        .embedding_data_delivery_enabled(flag(2))
        .video_data_delivery_enabled(flag(3))
        .audio_data_delivery_enabled(flag(4))
        .build())
}

/// The state for what Bedrock holds. A flag Bedrock leaves out is off; an S3-only configuration
/// (set elsewhere) reads with a null log group and role, so the plan shows what apply restores
/// rather than a create that would find the configuration there.
pub fn state_of(region: &str, config: &LoggingConfig) -> Value {
    let cloud_watch = config.cloud_watch_config.as_ref();
    let large = cloud_watch
        .and_then(|c| c.large_data_delivery_s3_config.as_ref())
        .map_or(Value::Null, |s3| {
            Value::object([
                ("bucket_name", Value::string(&s3.bucket_name)),
                (
                    "key_prefix",
                    Value::opt_string(s3.key_prefix.clone().filter(|p| !p.is_empty())),
                ),
            ])
        });
    let flags = [
        config.text_data_delivery_enabled,
        config.image_data_delivery_enabled,
        config.embedding_data_delivery_enabled,
        config.video_data_delivery_enabled,
        config.audio_data_delivery_enabled,
    ];
    let mut state = Value::object([
        ("id", Value::string(region)),
        (
            "log_group_name",
            Value::opt_string(cloud_watch.map(|c| c.log_group_name.clone())),
        ),
        (
            "role_arn",
            Value::opt_string(cloud_watch.map(|c| c.role_arn.clone())),
        ),
        ("large_data_delivery_s3", large),
    ]);
    for ((name, _, _), enabled) in DELIVERY.iter().zip(flags) {
        state.set(name, Value::Bool(enabled.unwrap_or(false)));
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(s3: Value) -> Value {
        Value::object([
            ("id", Value::string("eu-west-1")),
            ("log_group_name", Value::string("/aigov/bedrock")),
            (
                "role_arn",
                Value::string("arn:aws:iam::123456789012:role/bedrock-logs"),
            ),
            ("text_data_delivery_enabled", Value::Bool(true)),
            ("image_data_delivery_enabled", Value::Bool(false)),
            ("embedding_data_delivery_enabled", Value::Bool(true)),
            ("video_data_delivery_enabled", Value::Bool(false)),
            ("audio_data_delivery_enabled", Value::Bool(false)),
            ("large_data_delivery_s3", s3),
        ])
    }

    #[test]
    fn what_is_put_reads_back_as_the_plan() {
        for s3 in [
            Value::Null,
            Value::object([
                ("bucket_name", Value::string("aigov-logs")),
                ("key_prefix", Value::Null),
            ]),
            Value::object([
                ("bucket_name", Value::string("aigov-logs")),
                ("key_prefix", Value::string("bedrock/")),
            ]),
        ] {
            let plan = planned(s3);
            let put = logging_config(&plan).unwrap();
            assert_eq!(state_of("eu-west-1", &put), plan);
        }
    }

    #[test]
    fn flags_bedrock_leaves_out_read_as_off() {
        let config = LoggingConfig::builder()
            .cloud_watch_config(
                CloudWatchConfig::builder()
                    .log_group_name("g")
                    .role_arn("arn:aws:iam::123456789012:role/r")
                    .build()
                    .unwrap(),
            )
            .build();
        let state = state_of("us-east-1", &config);
        for (name, _, _) in DELIVERY {
            assert_eq!(state.get(name), &Value::Bool(false), "{name}");
        }
        assert!(state.get("large_data_delivery_s3").is_null());
    }

    fn errors_on(config: Value) -> Vec<String> {
        let mut diags = Diagnostics::default();
        InvocationLogging.validate(&config, &mut diags);
        diags
            .0
            .iter()
            .map(|d| format!("{:?} {}", d.attribute, d.detail))
            .collect()
    }

    #[test]
    fn bad_values_are_refused_on_their_attribute() {
        let mut config = planned(Value::object([
            ("bucket_name", Value::string("Not_A_Bucket")),
            ("key_prefix", Value::string("")),
        ]));
        config.set("log_group_name", Value::string(""));
        config.set(
            "role_arn",
            Value::string("arn:aws:iam::123456789012:user/bob"),
        );
        let errors = errors_on(config);
        assert_eq!(errors.len(), 4, "{errors:?}");
        for (attr, says) in [
            ("log_group_name", "not a valid name"),
            ("role_arn", "IAM role ARN"),
            ("bucket_name", "S3 bucket name"),
            ("key_prefix", "empty"),
        ] {
            assert!(
                errors.iter().any(|e| e.contains(attr) && e.contains(says)),
                "{attr}: {errors:?}"
            );
        }
        assert!(errors_on(planned(Value::Null)).is_empty());
    }

    #[test]
    fn the_defaults_log_text_only() {
        let schema = InvocationLogging.schema();
        let default = |name: &str| schema.attribute(name).unwrap().default.clone();
        assert_eq!(
            default("text_data_delivery_enabled"),
            Some(Value::Bool(true))
        );
        for name in [
            "image_data_delivery_enabled",
            "embedding_data_delivery_enabled",
            "video_data_delivery_enabled",
            "audio_data_delivery_enabled",
        ] {
            assert_eq!(default(name), Some(Value::Bool(false)), "{name}");
        }
    }
}
