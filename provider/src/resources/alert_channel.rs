//! `aigov_alert_channel`: an SNS topic and its subscriptions, where budgets, alarms and the
//! controller send their alerts.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use async_trait::async_trait;
use regex::Regex;

use super::{
    Resource, already_exists, apply_tag_changes, plan_tags_all, read_back, split_tags,
    tag_attributes, tag_changes, validate_tags, written,
};
use crate::Error;
use crate::config::Clients;
use crate::diag::{Diagnostics, Path};
use crate::schema::{Attribute, Block, NestedBlock, Nesting, Type};
use crate::validate::{self, Kind};
use crate::value::Value;

static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_-]{1,256}(\.fifo)?$").expect("valid regex"));

/// The subscription protocols an alert channel offers.
pub const PROTOCOLS: [&str; 4] = ["email", "https", "sqs", "lambda"];

/// The resource.
pub struct AlertChannel;

#[async_trait]
impl Resource for AlertChannel {
    fn type_name(&self) -> &'static str {
        "aigov_alert_channel"
    }

    fn schema(&self) -> Block {
        let mut attributes = vec![
            Attribute::computed("id", Type::String, "The topic ARN."),
            Attribute::required("name", Type::String, "The SNS topic name.").force_new(),
            Attribute::optional(
                "display_name",
                Type::String,
                "The topic's display name (the sender name of e-mail alerts).",
            ),
            Attribute::optional(
                "kms_master_key_id",
                Type::String,
                "KMS key for server-side encryption of the topic.",
            ),
            Attribute::computed(
                "arn",
                Type::String,
                "The topic ARN, for `aigov_budget` notifications, `aigov_alarm` actions and `AIBudget.spec.alerts.snsTopicArn`.",
            ),
        ];
        attributes.extend(tag_attributes());
        Block {
            description: "An SNS topic and its subscriptions that aigov's alerts reach.",
            attributes,
            blocks: vec![NestedBlock {
                name: "subscription",
                nesting: Nesting::List,
                max_items: 0,
                key: &["protocol", "endpoint"],
                block: Block {
                    description: "A subscriber. Adding or removing one changes the topic in place.",
                    attributes: vec![
                        Attribute::required("protocol", Type::String, "`email`, `https` (a webhook), `sqs` or `lambda`."),
                        Attribute::required("endpoint", Type::String, "The address: an e-mail address, an `https://` URL, an SQS queue ARN or a Lambda function ARN. Sensitive, since webhook URLs carry secrets.").sensitive(),
                        Attribute::optional("raw_message_delivery", Type::Bool, "Deliver the message without SNS's JSON envelope (`https` and `sqs` only).").with_default(Value::Bool(false)),
                        Attribute::computed("arn", Type::String, "The subscription ARN."),
                    ],
                    blocks: vec![],
                },
            }],
        }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate::name(
            config.get("name"),
            &NAME,
            "use 1 to 256 letters, digits, - and _ (a FIFO topic ends in .fifo)",
            &Path::attr("name"),
            diags,
        );
        validate::kind(
            config.get("kms_master_key_id"),
            Kind::KmsKey,
            &Path::attr("kms_master_key_id"),
            diags,
        );
        for (i, sub) in config.get("subscription").items().iter().enumerate() {
            let path = Path::attr("subscription").index(i);
            let protocol = sub.get("protocol");
            validate::one_of(protocol, &PROTOCOLS, &path.then("protocol"), diags);
            let endpoint = sub.get("endpoint");
            let kind = match protocol.as_str() {
                Some("email") => Kind::Email,
                Some("https") => Kind::HttpsUrl,
                Some("sqs") => Kind::SqsQueueArn,
                Some("lambda") => Kind::LambdaArn,
                _ => continue,
            };
            // The endpoint is sensitive (webhook URLs carry secrets): never echoed.
            validate::secret_kind(endpoint, kind, &path.then("endpoint"), diags);
            if sub.get("raw_message_delivery").as_bool() == Some(true)
                && matches!(protocol.as_str(), Some("email" | "lambda"))
            {
                diags.attr_error(
                    &path.then("raw_message_delivery"),
                    "Raw delivery not supported",
                    "raw_message_delivery applies to https and sqs subscriptions only; remove it here.",
                );
            }
        }
        validate_tags(config, diags);
    }

    fn plan(&self, clients: &Clients, planned: &mut Value, _prior: &Value) {
        planned.set("id", planned.get("arn").clone());
        plan_tags_all(clients, planned);
    }

    async fn create(&self, clients: &Clients, planned: &Value) -> Result<Value, Error> {
        let name = planned.get("name").as_str().unwrap_or_default().to_owned();
        let mut attributes = HashMap::new();
        if let Some(d) = planned.get("display_name").as_str() {
            attributes.insert("DisplayName".to_owned(), d.to_owned());
        }
        if let Some(k) = planned.get("kms_master_key_id").as_str() {
            attributes.insert("KmsMasterKeyId".to_owned(), k.to_owned());
        }
        if name.ends_with(".fifo") {
            attributes.insert("FifoTopic".to_owned(), "true".to_owned());
        }
        let tags = sns_tags(planned.get("tags_all").to_string_map().unwrap_or_default())?;
        // CreateTopic returns the existing topic of that name as if it had created it: look
        // first, and refuse to adopt it.
        if let Some(existing) = find_topic(clients, &name).await? {
            return Err(already_exists(
                "aigov_alert_channel",
                &format!("SNS topic {name} ({existing})"),
                &existing,
            ));
        }
        let topic = clients
            .sns
            .create_topic()
            .name(&name)
            .set_attributes((!attributes.is_empty()).then_some(attributes))
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("sns"),
                    &format!("creating SNS topic {name}"),
                    e,
                )
            })?;
        let arn = topic.topic_arn.unwrap_or_default();
        for sub in planned.get("subscription").items() {
            self.subscribe(clients, &arn, sub).await?;
        }
        let mut state = planned.clone();
        state.set("arn", Value::string(&arn));
        state.set("id", Value::string(&arn));
        read_back(
            self.read(clients, &state).await,
            &state,
            &format!("SNS topic {arn}"),
        )
    }

    async fn read(&self, clients: &Clients, state: &Value) -> Result<Option<Value>, Error> {
        let arn = state.get("arn").as_str().unwrap_or_default().to_owned();
        let attributes = match clients
            .sns
            .get_topic_attributes()
            .topic_arn(&arn)
            .send()
            .await
        {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(Error::aws(
                    clients.target("sns"),
                    &format!("reading SNS topic {arn}"),
                    e,
                ));
            }
        };
        let mut remote = Vec::new();
        let mut next = None;
        loop {
            let page = clients
                .sns
                .list_subscriptions_by_topic()
                .topic_arn(&arn)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| {
                    Error::aws(
                        clients.target("sns"),
                        &format!("listing the subscriptions of {arn}"),
                        e,
                    )
                })?;
            remote.extend(page.subscriptions.unwrap_or_default());
            next = page.next_token;
            if next.is_none() {
                break;
            }
        }
        let prior_subs = state.get("subscription").items();
        let mut subs = Vec::new();
        for s in remote {
            let protocol = s.protocol.unwrap_or_default();
            let endpoint = s.endpoint.unwrap_or_default();
            let prior = prior_subs.iter().find(|p| {
                p.get("protocol").as_str() == Some(&protocol)
                    && p.get("endpoint").as_str() == Some(&endpoint)
            });
            let mut sub_arn = s.subscription_arn.unwrap_or_default();
            // E-mail and webhook subscriptions read "PendingConfirmation" until confirmed; keep
            // the ARN SNS returned when the subscription was made.
            if !sub_arn.starts_with("arn:") {
                sub_arn = prior
                    .and_then(|p| p.get("arn").as_str())
                    .unwrap_or(&sub_arn)
                    .to_owned();
            }
            let raw = if sub_arn.starts_with("arn:") && matches!(protocol.as_str(), "https" | "sqs")
            {
                clients
                    .sns
                    .get_subscription_attributes()
                    .subscription_arn(&sub_arn)
                    .send()
                    .await
                    .map_err(|e| {
                        Error::aws(
                            clients.target("sns"),
                            &format!("reading subscription {sub_arn}"),
                            e,
                        )
                    })?
                    .attributes
                    .unwrap_or_default()
                    .get("RawMessageDelivery")
                    .is_some_and(|v| v == "true")
            } else {
                false
            };
            subs.push(Value::object([
                ("protocol", Value::string(protocol)),
                ("endpoint", Value::string(endpoint)),
                ("raw_message_delivery", Value::Bool(raw)),
                ("arn", Value::string(sub_arn)),
            ]));
        }
        // Keep the configuration's order so that an unchanged list never shows as a diff.
        let position = |s: &Value| {
            prior_subs
                .iter()
                .position(|p| {
                    p.get("protocol") == s.get("protocol") && p.get("endpoint") == s.get("endpoint")
                })
                .unwrap_or(usize::MAX)
        };
        subs.sort_by_key(position);
        let remote_tags: BTreeMap<String, String> = clients
            .sns
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("sns"),
                    &format!("reading the tags of {arn}"),
                    e,
                )
            })?
            .tags
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect();
        let (tags, tags_all) = split_tags(clients, state, &remote_tags);
        let name = arn.rsplit(':').next().unwrap_or_default().to_owned();
        Ok(Some(Value::object([
            ("id", Value::string(&arn)),
            ("arn", Value::string(&arn)),
            ("name", Value::string(name)),
            (
                "display_name",
                Value::opt_string(
                    attributes
                        .get("DisplayName")
                        .filter(|d| !d.is_empty())
                        .cloned(),
                ),
            ),
            (
                "kms_master_key_id",
                Value::opt_string(
                    attributes
                        .get("KmsMasterKeyId")
                        .filter(|d| !d.is_empty())
                        .cloned(),
                ),
            ),
            ("subscription", Value::Seq(subs)),
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
        let arn = prior.get("arn").as_str().unwrap_or_default().to_owned();
        for (attribute, name) in [
            ("display_name", "DisplayName"),
            ("kms_master_key_id", "KmsMasterKeyId"),
        ] {
            if prior.get(attribute) != planned.get(attribute) {
                clients
                    .sns
                    .set_topic_attributes()
                    .topic_arn(&arn)
                    .attribute_name(name)
                    .attribute_value(planned.get(attribute).as_str().unwrap_or_default())
                    .send()
                    .await
                    .map_err(|e| {
                        Error::aws(
                            clients.target("sns"),
                            &format!("setting {name} of {arn}"),
                            e,
                        )
                    })?;
            }
        }
        let same = |a: &Value, b: &Value| {
            a.get("protocol") == b.get("protocol") && a.get("endpoint") == b.get("endpoint")
        };
        let wanted = planned.get("subscription").items();
        for old in prior.get("subscription").items() {
            match wanted.iter().find(|w| same(w, old)) {
                None => {
                    let sub_arn = old.get("arn").as_str().unwrap_or_default();
                    clients
                        .sns
                        .unsubscribe()
                        .subscription_arn(sub_arn)
                        .send()
                        .await
                        .map_err(|e| {
                            Error::aws(
                                clients.target("sns"),
                                &format!("removing subscription {sub_arn}"),
                                e,
                            )
                        })?;
                }
                Some(w) if w.get("raw_message_delivery") != old.get("raw_message_delivery") => {
                    let sub_arn = old.get("arn").as_str().unwrap_or_default();
                    clients
                        .sns
                        .set_subscription_attributes()
                        .subscription_arn(sub_arn)
                        .attribute_name("RawMessageDelivery")
                        .attribute_value(
                            w.get("raw_message_delivery")
                                .as_bool()
                                .unwrap_or(false)
                                .to_string(),
                        )
                        .send()
                        .await
                        .map_err(|e| {
                            Error::aws(
                                clients.target("sns"),
                                &format!("changing subscription {sub_arn}"),
                                e,
                            )
                        })?;
                }
                Some(_) => {}
            }
        }
        for new in wanted {
            if !prior
                .get("subscription")
                .items()
                .iter()
                .any(|p| same(p, new))
            {
                self.subscribe(clients, &arn, new).await?;
            }
        }
        let name = arn.clone();
        let (arn, name) = (&arn, &name);
        apply_tag_changes(
            tag_changes(prior, planned),
            |keys| async move {
                clients
                    .sns
                    .untag_resource()
                    .resource_arn(arn)
                    .set_tag_keys(Some(keys))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        Error::aws(
                            clients.target("sns"),
                            &format!("untagging SNS topic {name}"),
                            e,
                        )
                    })
            },
            |tags| async move {
                clients
                    .sns
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(sns_tags(tags)?))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        Error::aws(
                            clients.target("sns"),
                            &format!("tagging SNS topic {name}"),
                            e,
                        )
                    })
            },
        )
        .await?;
        written(
            self.read(clients, planned).await?,
            &format!("SNS topic {name}"),
        )
    }

    async fn delete(&self, clients: &Clients, state: &Value) -> Result<(), Error> {
        let arn = state.get("arn").as_str().unwrap_or_default();
        // Subscriptions first: SNS deletes them with the topic, but emulators and eventual
        // consistency can leave them behind.
        for sub in state.get("subscription").items() {
            if let Some(sub_arn) = sub.get("arn").as_str().filter(|a| a.starts_with("arn:")) {
                match clients
                    .sns
                    .unsubscribe()
                    .subscription_arn(sub_arn)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_not_found_exception()) => {}
                    Err(e) => {
                        return Err(Error::aws(
                            clients.target("sns"),
                            &format!("removing subscription {sub_arn}"),
                            e,
                        ));
                    }
                }
            }
        }
        match clients.sns.delete_topic().topic_arn(arn).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::aws(
                clients.target("sns"),
                &format!("deleting SNS topic {arn}"),
                e,
            )),
        }
    }

    async fn import(&self, _clients: &Clients, id: &str) -> Result<Value, String> {
        if !id.starts_with("arn:") || !id.contains(":sns:") {
            return Err(format!(
                "import an alert channel by its SNS topic ARN, such as arn:aws:sns:us-east-1:123456789012:alerts; got {id:?}"
            ));
        }
        Ok(Value::object([("arn", Value::string(id))]))
    }
}

impl AlertChannel {
    async fn subscribe(&self, clients: &Clients, topic: &str, sub: &Value) -> Result<(), Error> {
        let protocol = sub.get("protocol").as_str().unwrap_or_default();
        let mut attributes = HashMap::new();
        if sub.get("raw_message_delivery").as_bool() == Some(true) {
            attributes.insert("RawMessageDelivery".to_owned(), "true".to_owned());
        }
        clients
            .sns
            .subscribe()
            .topic_arn(topic)
            .protocol(protocol)
            .endpoint(sub.get("endpoint").as_str().unwrap_or_default())
            .return_subscription_arn(true)
            .set_attributes((!attributes.is_empty()).then_some(attributes))
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("sns"),
                    &format!("subscribing a {protocol} endpoint to {topic}"),
                    e,
                )
            })?;
        Ok(())
    }
}

/// The ARN of the topic named `name` in the provider's account and region, if there is one
/// (ListTopics, every page: the name is the ARN's last field).
async fn find_topic(clients: &Clients, name: &str) -> Result<Option<String>, Error> {
    let suffix = format!(":{name}");
    let mut token = None;
    loop {
        let page = clients
            .sns
            .list_topics()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("sns"),
                    &format!("looking for an existing SNS topic {name}"),
                    e,
                )
            })?;
        if let Some(arn) = page
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|arn| arn.ends_with(&suffix))
        {
            return Ok(Some(arn.to_owned()));
        }
        match page.next_token {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(None),
        }
    }
}

fn sns_tags(tags: BTreeMap<String, String>) -> Result<Vec<aws_sdk_sns::types::Tag>, Error> {
    tags.into_iter()
        .map(|(k, v)| {
            aws_sdk_sns::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| Error::Value(e.to_string()))
        })
        .collect()
}
