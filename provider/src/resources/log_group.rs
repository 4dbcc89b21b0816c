//! `aigov_log_group`: a CloudWatch Logs group for aigov's usage records (the controller's EMF
//! output) or for Bedrock model invocation logging.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use regex::Regex;
use rust_decimal::Decimal;

use super::{
    Resource, apply_tag_changes, plan_tags_all, read_back, split_tags, tag_attributes, tag_changes,
    validate_tags, written,
};
use crate::Error;
use crate::config::Clients;
use crate::diag::{Diagnostics, Path};
use crate::schema::{Attribute, Block, Type};
use crate::validate::{self, Kind};
use crate::value::Value;

/// The retention periods CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: [i64; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// CloudWatch Logs' rule for a log group name (also checked where another resource names one).
pub static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[.\-_/#A-Za-z0-9]{1,512}$").expect("valid regex"));

/// The resource.
pub struct LogGroup;

#[async_trait]
impl Resource for LogGroup {
    fn type_name(&self) -> &'static str {
        "aigov_log_group"
    }

    fn schema(&self) -> Block {
        let mut attributes = vec![
            Attribute::computed("id", Type::String, "The log group name."),
            Attribute::required(
                "name",
                Type::String,
                "The log group name, such as `/aigov/usage`.",
            )
            .force_new(),
            Attribute::optional(
                "retention_in_days",
                Type::Number,
                "Days to keep events; one of the values CloudWatch accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653). Unset: never expire.",
            ),
            Attribute::optional(
                "kms_key_id",
                Type::String,
                "ARN of the KMS key that encrypts the group's events.",
            ),
            Attribute::computed("arn", Type::String, "The log group ARN."),
        ];
        attributes.extend(tag_attributes());
        Block {
            description: "A CloudWatch Logs group for aigov's usage records (`--emf-log-group`) or Bedrock model invocation logging.",
            attributes,
            blocks: vec![],
        }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate::name(
            config.get("name"),
            &NAME,
            "use 1 to 512 letters, digits and . - _ / #",
            &Path::attr("name"),
            diags,
        );
        let retention = config.get("retention_in_days");
        if let Some(days) = retention.as_decimal()
            && !RETENTION_DAYS.iter().any(|d| Decimal::from(*d) == days)
        {
            diags.attr_error(
                &Path::attr("retention_in_days"),
                "Retention not accepted by CloudWatch Logs",
                format!(
                    "{days} days is not a retention CloudWatch Logs accepts; use one of {} (or leave it unset to keep events forever).",
                    RETENTION_DAYS.map(|d| d.to_string()).join(", ")
                ),
            );
        }
        validate::kind(
            config.get("kms_key_id"),
            Kind::KmsKey,
            &Path::attr("kms_key_id"),
            diags,
        );
        validate_tags(config, diags);
    }

    fn plan(&self, clients: &Clients, planned: &mut Value, _prior: &Value) {
        planned.set("id", planned.get("name").clone());
        plan_tags_all(clients, planned);
    }

    async fn create(&self, clients: &Clients, planned: &Value) -> Result<Value, Error> {
        let name = planned.get("name").as_str().unwrap_or_default().to_owned();
        let tags = planned.get("tags_all").to_string_map().unwrap_or_default();
        clients
            .logs
            .create_log_group()
            .log_group_name(&name)
            .set_kms_key_id(planned.get("kms_key_id").as_str().map(str::to_owned))
            .set_tags((!tags.is_empty()).then(|| tags.into_iter().collect()))
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("logs"),
                    &format!("creating log group {name}"),
                    e,
                )
            })?;
        if !planned.get("retention_in_days").is_null() {
            self.set_retention(clients, &name, planned.get("retention_in_days"))
                .await?;
        }
        read_back(
            self.read(clients, planned).await,
            planned,
            &format!("log group {name}"),
        )
    }

    async fn read(&self, clients: &Clients, state: &Value) -> Result<Option<Value>, Error> {
        let name = state.get("name").as_str().unwrap_or_default();
        let Some(group) = find_log_group(clients, name).await? else {
            return Ok(None);
        };
        let arn = group
            .arn
            .unwrap_or_default()
            .trim_end_matches(":*")
            .to_owned();
        let remote_tags: BTreeMap<String, String> = clients
            .logs
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("logs"),
                    &format!("reading the tags of log group {name}"),
                    e,
                )
            })?
            .tags
            .unwrap_or_default()
            .into_iter()
            .collect();
        let (tags, tags_all) = split_tags(clients, state, &remote_tags);
        Ok(Some(Value::object([
            ("id", Value::string(name)),
            ("name", Value::string(name)),
            (
                "retention_in_days",
                Value::opt_number(group.retention_in_days.map(Decimal::from)),
            ),
            ("kms_key_id", Value::opt_string(group.kms_key_id)),
            ("arn", Value::string(arn)),
            ("tags", tags),
            ("tags_all", tags_all),
        ])))
    }

    async fn update(
        &self,
        clients: &Clients,
        prior: &Value,
        planned: &Value,
    ) -> Result<Value, Error> {
        let name = planned.get("name").as_str().unwrap_or_default().to_owned();
        if prior.get("retention_in_days") != planned.get("retention_in_days") {
            self.set_retention(clients, &name, planned.get("retention_in_days"))
                .await?;
        }
        if prior.get("kms_key_id") != planned.get("kms_key_id") {
            match planned.get("kms_key_id").as_str() {
                Some(key) => clients
                    .logs
                    .associate_kms_key()
                    .log_group_name(&name)
                    .kms_key_id(key)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        Error::aws(
                            clients.target("logs"),
                            &format!("associating the KMS key with log group {name}"),
                            e,
                        )
                    })?,
                None => clients
                    .logs
                    .disassociate_kms_key()
                    .log_group_name(&name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        Error::aws(
                            clients.target("logs"),
                            &format!("disassociating the KMS key from log group {name}"),
                            e,
                        )
                    })?,
            }
        }
        let arn = prior.get("arn").as_str().unwrap_or_default().to_owned();
        let (arn, name) = (&arn, &name);
        apply_tag_changes(
            tag_changes(prior, planned),
            |keys| async move {
                clients
                    .logs
                    .untag_resource()
                    .resource_arn(arn)
                    .set_tag_keys(Some(keys))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        Error::aws(
                            clients.target("logs"),
                            &format!("untagging log group {name}"),
                            e,
                        )
                    })
            },
            |tags| async move {
                clients
                    .logs
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(tags.into_iter().collect()))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        Error::aws(
                            clients.target("logs"),
                            &format!("tagging log group {name}"),
                            e,
                        )
                    })
            },
        )
        .await?;
        written(
            self.read(clients, planned).await?,
            &format!("log group {name}"),
        )
    }

    async fn delete(&self, clients: &Clients, state: &Value) -> Result<(), Error> {
        let name = state.get("name").as_str().unwrap_or_default();
        match clients
            .logs
            .delete_log_group()
            .log_group_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::aws(
                clients.target("logs"),
                &format!("deleting log group {name}"),
                e,
            )),
        }
    }

    async fn import(&self, _clients: &Clients, id: &str) -> Result<Value, String> {
        if !NAME.is_match(id) {
            return Err(format!(
                "import a log group by its name, such as /aigov/usage; {id:?} is not a log group name"
            ));
        }
        Ok(Value::object([("name", Value::string(id))]))
    }
}

/// The log group named exactly `name`. DescribeLogGroups filters by prefix and answers 50 groups
/// a page, so `/aigov/usage` can be past the first page behind `/aigov/usage-1`...: read every
/// page until it is found.
async fn find_log_group(
    clients: &Clients,
    name: &str,
) -> Result<Option<aws_sdk_cloudwatchlogs::types::LogGroup>, Error> {
    let mut token = None;
    loop {
        let page = clients
            .logs
            .describe_log_groups()
            .log_group_name_prefix(name)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("logs"),
                    &format!("reading log group {name}"),
                    e,
                )
            })?;
        let next = page.next_token.clone();
        if let Some(group) = page
            .log_groups
            .unwrap_or_default()
            .into_iter()
            .find(|g| g.log_group_name.as_deref() == Some(name))
        {
            return Ok(Some(group));
        }
        match next {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(None),
        }
    }
}

impl LogGroup {
    async fn set_retention(
        &self,
        clients: &Clients,
        name: &str,
        days: &Value,
    ) -> Result<(), Error> {
        match days.as_i64() {
            Some(days) => clients
                .logs
                .put_retention_policy()
                .log_group_name(name)
                .retention_in_days(days as i32)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    Error::aws(
                        clients.target("logs"),
                        &format!("setting the retention of log group {name}"),
                        e,
                    )
                }),
            None => clients
                .logs
                .delete_retention_policy()
                .log_group_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    Error::aws(
                        clients.target("logs"),
                        &format!("removing the retention of log group {name}"),
                        e,
                    )
                }),
        }
    }
}
