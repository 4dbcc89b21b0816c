//! `aigov_budget`: an AWS Budgets cost budget filtered to Amazon Bedrock, with threshold
//! notifications to alert channels and e-mail: the account-level backstop behind the cluster's
//! per-team `AIBudget`s.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use async_trait::async_trait;
use aws_sdk_budgets::types::{
    Budget, BudgetType, ComparisonOperator, Notification, NotificationType,
    NotificationWithSubscribers, ResourceTag, Spend, Subscriber, SubscriptionType, ThresholdType,
    TimePeriod, TimeUnit,
};
use regex::Regex;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::{
    Resource, apply_tag_changes, plan_tags_all, read_back, split_tags, tag_attributes, tag_changes,
    unset_if_empty, validate_tags, written,
};
use crate::Error;
use crate::config::Clients;
use crate::diag::{Diagnostics, Path};
use crate::schema::{Attribute, Block, NestedBlock, Nesting, Type};
use crate::validate::{self, Kind};
use crate::value::Value;

/// The service name AWS Budgets' `Service` cost filter uses for Bedrock.
pub const BEDROCK_SERVICE: &str = "Amazon Bedrock";

/// `cost_filter` of a budget this resource manages: Bedrock and nothing else (tags and linked
/// accounts have attributes of their own).
pub const BEDROCK_FILTER: &str = "Service=Amazon Bedrock";

/// The cost filters with attributes of their own, left out of `cost_filter`.
const OWN_FILTERS: [&str; 2] = ["TagKeyValue", "LinkedAccount"];

static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[^:\\]{1,100}$").expect("valid regex"));
static DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d{4}-\d{2}-\d{2}$").expect("valid regex"));

const TIME_UNITS: [&str; 4] = ["DAILY", "MONTHLY", "QUARTERLY", "ANNUALLY"];
const NOTIFICATION_TYPES: [&str; 2] = ["ACTUAL", "FORECASTED"];
const THRESHOLD_TYPES: [&str; 2] = ["PERCENTAGE", "ABSOLUTE_VALUE"];
const COMPARISONS: [&str; 3] = ["GREATER_THAN", "LESS_THAN", "EQUAL_TO"];

/// The resource.
pub struct BudgetResource;

#[async_trait]
impl Resource for BudgetResource {
    fn type_name(&self) -> &'static str {
        "aigov_budget"
    }

    fn schema(&self) -> Block {
        let mut attributes = vec![
            Attribute::computed("id", Type::String, "`ACCOUNT_ID:NAME`, the import ID."),
            Attribute::required(
                "name",
                Type::String,
                "The budget name (up to 100 characters, no `:` or `\\`).",
            )
            .force_new(),
            Attribute::defaulted(
                "account_id",
                Type::String,
                "The account that owns the budget; defaults to the provider's.",
            )
            .force_new(),
            Attribute::required(
                "amount",
                Type::Number,
                "The limit in USD, such as `2000` or `1250.50`.",
            ),
            Attribute::required(
                "time_unit",
                Type::String,
                "`DAILY`, `MONTHLY`, `QUARTERLY` or `ANNUALLY`.",
            ),
            Attribute::defaulted(
                "start",
                Type::String,
                "The first day the budget covers (`YYYY-MM-DD`, UTC); defaults to the start of the current period.",
            ),
            Attribute::optional(
                "cost_allocation_tags",
                Type::string_map(),
                "Narrow the budget to Bedrock spend carrying these cost allocation tags (tag key to value).",
            ),
            Attribute::optional(
                "linked_accounts",
                Type::string_set(),
                "Narrow the budget to Bedrock spend of these linked accounts (12-digit IDs).",
            ),
            Attribute::computed("arn", Type::String, "The budget ARN."),
            Attribute::computed(
                "cost_filter",
                Type::String,
                "The budget's cost filter as AWS Budgets holds it, apart from `cost_allocation_tags` and `linked_accounts` (`NAME=VALUE,VALUE; ...`, sorted): always `Service=Amazon Bedrock` for a budget this resource manages. A filter changed outside Terraform (another service, a Region or UsageType filter, a `FilterExpression`) reads back as what it is, and the plan sets it back to Amazon Bedrock in place.",
            ),
        ];
        attributes.extend(tag_attributes());
        Block {
            description: "An AWS Budgets cost budget for Amazon Bedrock spend, with threshold notifications.",
            attributes,
            blocks: vec![NestedBlock {
                name: "notification",
                nesting: Nesting::List,
                max_items: 5,
                key: &[],
                block: Block {
                    description: "A threshold that notifies alert channels and e-mail addresses (AWS Budgets allows 5 per budget).",
                    attributes: vec![
                        Attribute::required(
                            "notification_type",
                            Type::String,
                            "`ACTUAL` spend or `FORECASTED` spend.",
                        ),
                        Attribute::required(
                            "threshold",
                            Type::Number,
                            "The threshold: a percentage of the amount (default) or an amount in USD.",
                        ),
                        Attribute::optional(
                            "threshold_type",
                            Type::String,
                            "`PERCENTAGE` or `ABSOLUTE_VALUE`.",
                        )
                        .with_default(Value::string("PERCENTAGE")),
                        Attribute::optional(
                            "comparison_operator",
                            Type::String,
                            "`GREATER_THAN`, `LESS_THAN` or `EQUAL_TO`.",
                        )
                        .with_default(Value::string("GREATER_THAN")),
                        Attribute::optional(
                            "alert_channel_arn",
                            Type::String,
                            "The SNS topic to notify (an `aigov_alert_channel`'s `arn`); AWS Budgets allows one per notification.",
                        ),
                        Attribute::optional(
                            "emails",
                            Type::string_set(),
                            "E-mail addresses to notify (up to 10).",
                        ),
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
            "use 1 to 100 characters without : or \\",
            &Path::attr("name"),
            diags,
        );
        validate::kind(
            config.get("account_id"),
            Kind::AccountId,
            &Path::attr("account_id"),
            diags,
        );
        validate::range(
            config.get("amount"),
            Decimal::ZERO,
            true,
            None,
            &Path::attr("amount"),
            diags,
        );
        validate::max_places(config.get("amount"), 2, &Path::attr("amount"), diags);
        validate::one_of(
            config.get("time_unit"),
            &TIME_UNITS,
            &Path::attr("time_unit"),
            diags,
        );
        if let Some(start) = config.get("start").as_str()
            && (!DATE.is_match(start) || start.parse::<jiff::civil::Date>().is_err())
        {
            diags.attr_error(
                &Path::attr("start"),
                "Invalid date",
                format!("{start:?} is not a date; write it as YYYY-MM-DD, such as 2026-01-01."),
            );
        }
        validate::each_kind(
            config.get("linked_accounts"),
            Kind::AccountId,
            &Path::attr("linked_accounts"),
            diags,
        );
        for (i, n) in config.get("notification").items().iter().enumerate() {
            let path = Path::attr("notification").index(i);
            validate::one_of(
                n.get("notification_type"),
                &NOTIFICATION_TYPES,
                &path.then("notification_type"),
                diags,
            );
            validate::one_of(
                n.get("threshold_type"),
                &THRESHOLD_TYPES,
                &path.then("threshold_type"),
                diags,
            );
            validate::one_of(
                n.get("comparison_operator"),
                &COMPARISONS,
                &path.then("comparison_operator"),
                diags,
            );
            let max = match n.get("threshold_type").as_str() {
                Some("ABSOLUTE_VALUE") => None,
                _ => Some(Decimal::from(1000)),
            };
            validate::range(
                n.get("threshold"),
                Decimal::ZERO,
                true,
                max,
                &path.then("threshold"),
                diags,
            );
            validate::kind(
                n.get("alert_channel_arn"),
                Kind::SnsTopicArn,
                &path.then("alert_channel_arn"),
                diags,
            );
            validate::each_kind(n.get("emails"), Kind::Email, &path.then("emails"), diags);
            if n.get("emails").items().len() > 10 {
                diags.attr_error(&path.then("emails"), "Too many e-mail addresses", "AWS Budgets notifies at most 10 e-mail addresses per notification; use an alert channel for more.");
            }
            let nobody = n.get("alert_channel_arn").is_null()
                && n.get("emails").items().is_empty()
                && !n.get("emails").is_unknown();
            if nobody {
                diags.attr_error(
                    &path,
                    "Notification without subscribers",
                    "set alert_channel_arn, emails, or both: a notification must reach someone.",
                );
            }
        }
        validate_tags(config, diags);
    }

    fn plan(&self, clients: &Clients, planned: &mut Value, _prior: &Value) {
        if planned.get("account_id").is_unknown()
            && let Some(account) = clients.known_account_id()
        {
            planned.set("account_id", Value::string(account));
        }
        let account = planned.get("account_id").as_str().map(str::to_owned);
        let name = planned.get("name").as_str().map(str::to_owned);
        match (account, name) {
            (Some(account), Some(name)) => {
                planned.set("id", Value::string(format!("{account}:{name}")));
                planned.set("arn", Value::string(budget_arn(clients, &account, &name)));
            }
            _ => {
                planned.set("id", Value::unknown());
                planned.set("arn", Value::unknown());
            }
        }
        // Every write sends the Bedrock filter: planning it shows a filter changed out of band
        // being put back, instead of an amount change resetting it silently.
        planned.set("cost_filter", Value::string(BEDROCK_FILTER));
        plan_tags_all(clients, planned);
    }

    async fn create(&self, clients: &Clients, planned: &Value) -> Result<Value, Error> {
        let mut state = planned.clone();
        let account = match planned.get("account_id").as_str() {
            Some(a) => a.to_owned(),
            None => clients.account_id().await?,
        };
        state.set("account_id", Value::string(&account));
        let name = planned.get("name").as_str().unwrap_or_default().to_owned();
        let notifications = planned
            .get("notification")
            .items()
            .iter()
            .map(|n| {
                NotificationWithSubscribers::builder()
                    .notification(notification(n)?)
                    .set_subscribers(Some(subscribers(n)?))
                    .build()
                    .map_err(build_error)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let tags = resource_tags(planned.get("tags_all").to_string_map().unwrap_or_default())?;
        clients
            .budgets
            .create_budget()
            .account_id(&account)
            .budget(budget(planned)?)
            .set_notifications_with_subscribers(Some(notifications))
            .set_resource_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("budgets"),
                    &format!("creating budget {name}"),
                    e,
                )
            })?;
        state.set("id", Value::string(format!("{account}:{name}")));
        state.set("arn", Value::string(budget_arn(clients, &account, &name)));
        state.set("cost_filter", Value::string(BEDROCK_FILTER));
        read_back(
            self.read(clients, &state).await,
            &state,
            &format!("budget {name}"),
        )
    }

    async fn read(&self, clients: &Clients, state: &Value) -> Result<Option<Value>, Error> {
        let account = match state.get("account_id").as_str() {
            Some(a) => a.to_owned(),
            None => clients.account_id().await?,
        };
        let name = state.get("name").as_str().unwrap_or_default().to_owned();
        let described = match clients
            .budgets
            .describe_budget()
            .account_id(&account)
            .budget_name(&name)
            .send()
            .await
        {
            Ok(out) => out.budget,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(Error::aws(
                    clients.target("budgets"),
                    &format!("reading budget {name}"),
                    e,
                ));
            }
        };
        let Some(remote) = described else {
            return Ok(None);
        };
        let amount = remote
            .budget_limit
            .as_ref()
            .and_then(|l| Decimal::from_str_exact(l.amount()).ok())
            .map(Value::Number)
            .unwrap_or_default();
        #[allow(deprecated)] // see `budget()`
        let filters = remote.cost_filters.clone().unwrap_or_default();
        let cost_filter = describe_filter(&filters, remote.filter_expression.is_some());
        let cost_allocation_tags: BTreeMap<String, String> = filters
            .get("TagKeyValue")
            .into_iter()
            .flatten()
            .filter_map(|kv| kv.strip_prefix("user:").and_then(|kv| kv.split_once('$')))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let linked: Vec<String> = filters.get("LinkedAccount").cloned().unwrap_or_default();
        let start = remote
            .time_period
            .as_ref()
            .and_then(|p| p.start())
            .and_then(|t| jiff::Timestamp::from_second(t.secs()).ok())
            .map(|t| {
                t.to_zoned_datetime(jiff::tz::TimeZone::UTC)
                    .date()
                    .to_string()
            });

        let mut notifications = Vec::new();
        let listed = clients
            .budgets
            .describe_notifications_for_budget()
            .account_id(&account)
            .budget_name(&name)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("budgets"),
                    &format!("reading the notifications of budget {name}"),
                    e,
                )
            })?;
        for n in listed.notifications.unwrap_or_default() {
            let subscribers = clients
                .budgets
                .describe_subscribers_for_notification()
                .account_id(&account)
                .budget_name(&name)
                .notification(n.clone())
                .send()
                .await
                .map_err(|e| {
                    Error::aws(
                        clients.target("budgets"),
                        &format!("reading the subscribers of budget {name}"),
                        e,
                    )
                })?
                .subscribers
                .unwrap_or_default();
            let sns = subscribers
                .iter()
                .find(|s| s.subscription_type == SubscriptionType::Sns)
                .map(|s| s.address.clone());
            let emails: Vec<String> = subscribers
                .iter()
                .filter(|s| s.subscription_type == SubscriptionType::Email)
                .map(|s| s.address.clone())
                .collect();
            let threshold = Decimal::from_str_exact(&format!("{}", n.threshold))
                .map_err(|e| Error::Value(e.to_string()))?;
            notifications.push(Value::object([
                (
                    "notification_type",
                    Value::string(n.notification_type.as_str()),
                ),
                ("threshold", Value::Number(threshold)),
                (
                    "threshold_type",
                    Value::string(
                        n.threshold_type
                            .as_ref()
                            .map_or("PERCENTAGE", |t| t.as_str()),
                    ),
                ),
                (
                    "comparison_operator",
                    Value::string(n.comparison_operator.as_str()),
                ),
                ("alert_channel_arn", Value::opt_string(sns)),
                ("emails", Value::strings(emails)),
            ]));
        }
        let prior = state.get("notification").items();
        notifications.sort_by_key(|n| {
            prior
                .iter()
                .position(|p| same_notification(p, n))
                .unwrap_or(usize::MAX)
        });
        for n in notifications.iter_mut() {
            let configured = prior.iter().find(|p| same_notification(p, n));
            let emails = unset_if_empty(
                configured.map_or(&Value::Null, |p| p.get("emails")),
                n.get("emails").clone(),
            );
            n.set("emails", emails);
        }

        let arn = budget_arn(clients, &account, &name);
        let remote_tags: BTreeMap<String, String> = clients
            .budgets
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("budgets"),
                    &format!("reading the tags of budget {name}"),
                    e,
                )
            })?
            .resource_tags
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect();
        let (tags, tags_all) = split_tags(clients, state, &remote_tags);
        Ok(Some(Value::object([
            ("id", Value::string(format!("{account}:{name}"))),
            ("name", Value::string(&name)),
            ("account_id", Value::string(&account)),
            ("amount", amount),
            ("time_unit", Value::string(remote.time_unit.as_str())),
            ("start", Value::opt_string(start)),
            (
                "cost_allocation_tags",
                unset_if_empty(
                    state.get("cost_allocation_tags"),
                    Value::string_map(&cost_allocation_tags),
                ),
            ),
            (
                "linked_accounts",
                unset_if_empty(state.get("linked_accounts"), Value::strings(linked)),
            ),
            ("arn", Value::string(arn)),
            ("cost_filter", Value::string(cost_filter)),
            ("notification", Value::Seq(notifications)),
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
        let account = prior
            .get("account_id")
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = prior.get("name").as_str().unwrap_or_default().to_owned();
        clients
            .budgets
            .update_budget()
            .account_id(&account)
            .new_budget(budget(planned)?)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("budgets"),
                    &format!("updating budget {name}"),
                    e,
                )
            })?;
        let old = prior.get("notification").items();
        let new = planned.get("notification").items();
        // A notification is identified by what triggers it; one whose subscribers changed is
        // replaced, which AWS Budgets does atomically enough for alerts.
        for o in old {
            if !new
                .iter()
                .any(|n| same_notification(n, o) && same_subscribers(n, o))
            {
                clients
                    .budgets
                    .delete_notification()
                    .account_id(&account)
                    .budget_name(&name)
                    .notification(notification(o)?)
                    .send()
                    .await
                    .map_err(|e| {
                        Error::aws(
                            clients.target("budgets"),
                            &format!("removing a notification of budget {name}"),
                            e,
                        )
                    })?;
            }
        }
        for n in new {
            if !old
                .iter()
                .any(|o| same_notification(n, o) && same_subscribers(n, o))
            {
                clients
                    .budgets
                    .create_notification()
                    .account_id(&account)
                    .budget_name(&name)
                    .notification(notification(n)?)
                    .set_subscribers(Some(subscribers(n)?))
                    .send()
                    .await
                    .map_err(|e| {
                        Error::aws(
                            clients.target("budgets"),
                            &format!("adding a notification to budget {name}"),
                            e,
                        )
                    })?;
            }
        }
        let arn = budget_arn(clients, &account, &name);
        let (arn, name) = (&arn, &name);
        apply_tag_changes(
            tag_changes(prior, planned),
            |keys| async move {
                clients
                    .budgets
                    .untag_resource()
                    .resource_arn(arn)
                    .set_resource_tag_keys(Some(keys))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        Error::aws(
                            clients.target("budgets"),
                            &format!("untagging budget {name}"),
                            e,
                        )
                    })
            },
            |tags| async move {
                clients
                    .budgets
                    .tag_resource()
                    .resource_arn(arn)
                    .set_resource_tags(Some(resource_tags(tags)?))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        Error::aws(
                            clients.target("budgets"),
                            &format!("tagging budget {name}"),
                            e,
                        )
                    })
            },
        )
        .await?;
        written(
            self.read(clients, planned).await?,
            &format!("budget {name}"),
        )
    }

    async fn delete(&self, clients: &Clients, state: &Value) -> Result<(), Error> {
        let account = state.get("account_id").as_str().unwrap_or_default();
        let name = state.get("name").as_str().unwrap_or_default();
        match clients
            .budgets
            .delete_budget()
            .account_id(account)
            .budget_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::aws(
                clients.target("budgets"),
                &format!("deleting budget {name}"),
                e,
            )),
        }
    }

    async fn import(&self, clients: &Clients, id: &str) -> Result<Value, String> {
        let (account, name) = match id.split_once(':') {
            Some((account, name))
                if account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && !name.is_empty() =>
            {
                (account, name)
            }
            _ => {
                return Err(format!(
                    "import a budget as ACCOUNT_ID:NAME, such as 123456789012:bedrock-monthly; got {id:?}"
                ));
            }
        };
        // A budget filtered to something other than Bedrock is not one this resource manages:
        // importing it would plan its filter over on the next apply.
        if let Some(filter) = remote_filter(clients, account, name)
            .await
            .map_err(|e| e.to_string())?
            && filter != BEDROCK_FILTER
        {
            return Err(format!(
                "budget {name} is filtered as {filter:?}, not {BEDROCK_FILTER:?}: aigov_budget manages budgets of Amazon Bedrock spend only, and importing this one would change its filter on the next apply. Manage it with the AWS provider's aws_budgets_budget instead, or change its filter to Amazon Bedrock alone (tags and linked accounts may stay) and import again."
            ));
        }
        Ok(Value::object([
            ("account_id", Value::string(account)),
            ("name", Value::string(name)),
        ]))
    }
}

/// `cost_filter` for what AWS Budgets holds: every filter but the ones with attributes of their
/// own, sorted, so the same filter always reads the same.
fn describe_filter(filters: &HashMap<String, Vec<String>>, has_expression: bool) -> String {
    let mut parts: Vec<String> = filters
        .iter()
        .filter(|(k, _)| !OWN_FILTERS.contains(&k.as_str()))
        .map(|(k, v)| {
            let mut values = v.clone();
            values.sort();
            format!("{k}={}", values.join(","))
        })
        .collect();
    parts.sort();
    // AWS may also return a FilterExpression equivalent to the CostFilters; only one standing
    // alone is a filter CostFilters cannot show.
    if has_expression && filters.is_empty() {
        parts.push("FilterExpression=(set outside Terraform)".to_owned());
    }
    if parts.is_empty() {
        "(none: all services)".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The `cost_filter` of an existing budget, or `None` when there is no such budget.
async fn remote_filter(
    clients: &Clients,
    account: &str,
    name: &str,
) -> Result<Option<String>, Error> {
    match clients
        .budgets
        .describe_budget()
        .account_id(account)
        .budget_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.budget.map(|b| {
            #[allow(deprecated)] // see `budget()`
            let filters = b.cost_filters.unwrap_or_default();
            describe_filter(&filters, b.filter_expression.is_some())
        })),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::aws(
            clients.target("budgets"),
            &format!("reading budget {name}"),
            e,
        )),
    }
}

/// A budget's ARN, in the partition of the provider's region (AWS Budgets builds it the same way;
/// it returns no ARN to read).
fn budget_arn(clients: &Clients, account: &str, name: &str) -> String {
    format!(
        "arn:{}:budgets::{account}:budget/{name}",
        clients.partition()
    )
}

/// AWS Budgets' resource tags.
fn resource_tags(tags: BTreeMap<String, String>) -> Result<Vec<ResourceTag>, Error> {
    tags.into_iter()
        .map(|(k, v)| {
            ResourceTag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(build_error)
        })
        .collect()
}

fn build_error(e: aws_sdk_budgets::error::BuildError) -> Error {
    Error::Value(e.to_string())
}

/// The AWS Budgets budget a configuration describes: cost, filtered to Bedrock.
fn budget(planned: &Value) -> Result<Budget, Error> {
    let amount = planned.get("amount").as_decimal().unwrap_or_default();
    let mut filters: HashMap<String, Vec<String>> = HashMap::new();
    filters.insert("Service".to_owned(), vec![BEDROCK_SERVICE.to_owned()]);
    let tags = planned
        .get("cost_allocation_tags")
        .to_string_map()
        .unwrap_or_default();
    if !tags.is_empty() {
        filters.insert(
            "TagKeyValue".to_owned(),
            tags.iter().map(|(k, v)| format!("user:{k}${v}")).collect(),
        );
    }
    let linked = planned
        .get("linked_accounts")
        .to_strings()
        .unwrap_or_default();
    if !linked.is_empty() {
        filters.insert("LinkedAccount".to_owned(), linked);
    }
    let start = planned
        .get("start")
        .as_str()
        .and_then(|d| d.parse::<jiff::civil::Date>().ok())
        .and_then(|d| d.to_zoned_datetime(jiff::tz::TimeZone::UTC).ok())
        .map(|z| aws_sdk_budgets::primitives::DateTime::from_secs(z.timestamp().as_second()));
    // CostFilters is deprecated in favour of FilterExpression, but it is what every AWS Budgets
    // API version and emulator understands, and it expresses the Bedrock filter exactly.
    #[allow(deprecated)]
    Budget::builder()
        .budget_name(planned.get("name").as_str().unwrap_or_default())
        .budget_limit(
            Spend::builder()
                .amount(amount.normalize().to_string())
                .unit("USD")
                .build()
                .map_err(build_error)?,
        )
        .time_unit(TimeUnit::from(
            planned.get("time_unit").as_str().unwrap_or("MONTHLY"),
        ))
        .budget_type(BudgetType::Cost)
        .set_cost_filters(Some(filters))
        .set_time_period(start.map(|s| TimePeriod::builder().start(s).build()))
        .build()
        .map_err(build_error)
}

fn notification(n: &Value) -> Result<Notification, Error> {
    let threshold = n.get("threshold").as_decimal().unwrap_or_default();
    Notification::builder()
        .notification_type(NotificationType::from(
            n.get("notification_type").as_str().unwrap_or("ACTUAL"),
        ))
        .comparison_operator(ComparisonOperator::from(
            n.get("comparison_operator")
                .as_str()
                .unwrap_or("GREATER_THAN"),
        ))
        // The API's threshold is a double; thresholds are short decimals that convert exactly back.
        .threshold(threshold.to_f64().unwrap_or_default())
        .threshold_type(ThresholdType::from(
            n.get("threshold_type").as_str().unwrap_or("PERCENTAGE"),
        ))
        .build()
        .map_err(build_error)
}

fn subscribers(n: &Value) -> Result<Vec<Subscriber>, Error> {
    let sns = n
        .get("alert_channel_arn")
        .as_str()
        .map(|a| (SubscriptionType::Sns, a.to_owned()));
    let emails = n
        .get("emails")
        .to_strings()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (SubscriptionType::Email, e));
    sns.into_iter()
        .chain(emails)
        .map(|(kind, address)| {
            Subscriber::builder()
                .subscription_type(kind)
                .address(address)
                .build()
                .map_err(build_error)
        })
        .collect()
}

/// Two notifications with the same trigger (AWS Budgets' identity for a notification).
fn same_notification(a: &Value, b: &Value) -> bool {
    [
        "notification_type",
        "threshold",
        "threshold_type",
        "comparison_operator",
    ]
    .iter()
    .all(|k| a.get(k) == b.get(k))
}

fn same_subscribers(a: &Value, b: &Value) -> bool {
    a.get("alert_channel_arn") == b.get("alert_channel_arn")
        && Type::string_set().same(
            &Value::strings(a.get("emails").to_strings().unwrap_or_default()),
            &Value::strings(b.get("emails").to_strings().unwrap_or_default()),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_reads_the_same_however_aws_orders_it() {
        let mut filters = HashMap::new();
        filters.insert("Service".to_owned(), vec![BEDROCK_SERVICE.to_owned()]);
        filters.insert("TagKeyValue".to_owned(), vec!["user:team$a".to_owned()]);
        assert_eq!(describe_filter(&filters, false), BEDROCK_FILTER);
        filters.insert(
            "Region".to_owned(),
            vec!["us-west-2".into(), "eu-west-1".into()],
        );
        assert_eq!(
            describe_filter(&filters, false),
            "Region=eu-west-1,us-west-2; Service=Amazon Bedrock"
        );
        assert_eq!(
            describe_filter(&HashMap::new(), false),
            "(none: all services)"
        );
    }
}
