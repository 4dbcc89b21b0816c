//! `aigov_alarm`: a CloudWatch metric alarm on AI spend. Presets name the metrics aigov's
//! controller publishes (EMF, namespace `AIGov`) and Bedrock's own (`AWS/Bedrock`); raw mode takes
//! any metric. Actions point at alert channels.
//!
//! An aigov preset may watch one value of a request-metadata key the budget declares in
//! `spec.attribution.keys` (`key = "feature"`, `value = "search"`): the controller's usage
//! records make each declared key a dimension `meta.KEY` beside `Namespace` and `Budget`
//! (`aigov_ledger::record`), never beside `Model`, so the preset takes `key` or `model`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use aigov_api::budget::ATTRIBUTION_KEY_REGEX;
use aigov_api::request_metadata::{STAMP_PREFIX, is_dimension_value};
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricAlarm, Statistic, Tag};
use regex::Regex;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::{
    Resource, already_exists, apply_tag_changes, plan_tags_all, read_back, split_tags,
    tag_attributes, tag_changes, unset_if_empty, validate_tags, written,
};
use crate::Error;
use crate::config::Clients;
use crate::diag::{Diagnostics, Path};
use crate::schema::{Attribute, Block, NestedBlock, Nesting, Type};
use crate::validate::{self, Kind};
use crate::value::Value;

/// The controller's CloudWatch namespace (its EMF records).
pub const AIGOV_NAMESPACE: &str = "AIGov";
/// Bedrock's CloudWatch namespace.
pub const BEDROCK_NAMESPACE: &str = "AWS/Bedrock";

/// Presets: name, CloudWatch namespace, metric name.
pub const PRESETS: [(&str, &str, &str); 13] = [
    ("spend", AIGOV_NAMESPACE, "CostUSD"),
    ("input_tokens", AIGOV_NAMESPACE, "InputTokens"),
    ("output_tokens", AIGOV_NAMESPACE, "OutputTokens"),
    ("cache_read_tokens", AIGOV_NAMESPACE, "CacheReadTokens"),
    ("cache_write_tokens", AIGOV_NAMESPACE, "CacheWriteTokens"),
    ("requests", AIGOV_NAMESPACE, "Requests"),
    ("bedrock_invocations", BEDROCK_NAMESPACE, "Invocations"),
    (
        "bedrock_throttles",
        BEDROCK_NAMESPACE,
        "InvocationThrottles",
    ),
    ("bedrock_input_tokens", BEDROCK_NAMESPACE, "InputTokenCount"),
    (
        "bedrock_output_tokens",
        BEDROCK_NAMESPACE,
        "OutputTokenCount",
    ),
    ("bedrock_latency", BEDROCK_NAMESPACE, "InvocationLatency"),
    (
        "bedrock_client_errors",
        BEDROCK_NAMESPACE,
        "InvocationClientErrors",
    ),
    (
        "bedrock_server_errors",
        BEDROCK_NAMESPACE,
        "InvocationServerErrors",
    ),
];

/// The prefix of the dimension a declared attribution key becomes in aigov's metrics
/// (`aigov_ledger::record::METADATA_PREFIX`; the provider does not depend on the ledger crate).
pub const KEY_DIMENSION_PREFIX: &str = "meta.";

/// The tag that records which preset an alarm was written from, so that a read (and an import)
/// gives back the mode the configuration used; hidden from `tags` and `tags_all`.
pub const PRESET_TAG: &str = "aigov:preset";

const STATISTICS: [&str; 5] = ["Sum", "Average", "Maximum", "Minimum", "SampleCount"];
const COMPARISONS: [&str; 4] = [
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
];
const MISSING_DATA: [&str; 4] = ["breaching", "notBreaching", "ignore", "missing"];

static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[^\x00-\x1f]{1,255}$").expect("valid regex"));
/// What an `AIBudget` accepts as an attribution key (the CRD's own rule).
static ATTRIBUTION_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(ATTRIBUTION_KEY_REGEX).expect("valid regex"));

/// The resource.
pub struct Alarm;

#[async_trait]
impl Resource for Alarm {
    fn type_name(&self) -> &'static str {
        "aigov_alarm"
    }

    fn schema(&self) -> Block {
        let mut attributes = vec![
            Attribute::computed("id", Type::String, "The alarm name."),
            Attribute::required("name", Type::String, "The alarm name.").force_new(),
            Attribute::optional("description", Type::String, "What the alarm means and what to do."),
            Attribute::required("threshold", Type::Number, "The value compared with the statistic (USD for `spend`)."),
            Attribute::optional("comparison_operator", Type::String, "`GreaterThanOrEqualToThreshold` (default), `GreaterThanThreshold`, `LessThanThreshold` or `LessThanOrEqualToThreshold`.").with_default(Value::string("GreaterThanOrEqualToThreshold")),
            Attribute::optional("statistic", Type::String, "`Sum` (default), `Average`, `Maximum`, `Minimum` or `SampleCount`.").with_default(Value::string("Sum")),
            Attribute::optional("period", Type::Number, "Seconds per evaluation period: 10, 30 or a multiple of 60 (default 300).").with_default(Value::Number(300.into())),
            Attribute::optional("evaluation_periods", Type::Number, "Periods compared with the threshold (default 1).").with_default(Value::Number(1.into())),
            Attribute::optional("datapoints_to_alarm", Type::Number, "Breaching periods (of `evaluation_periods`) that trigger the alarm; defaults to all."),
            Attribute::optional("treat_missing_data", Type::String, "`notBreaching` (default), `breaching`, `ignore` or `missing`.").with_default(Value::string("notBreaching")),
            Attribute::optional("alarm_actions", Type::string_set(), "SNS topics (alert channel ARNs) notified when the alarm fires."),
            Attribute::optional("ok_actions", Type::string_set(), "SNS topics notified when the alarm returns to OK."),
            Attribute::computed("arn", Type::String, "The alarm ARN."),
        ];
        attributes.extend(tag_attributes());
        Block {
            description: "A CloudWatch metric alarm on AI spend, tokens or Bedrock health; exactly one of `preset` or `metric`.",
            attributes,
            blocks: vec![
                NestedBlock {
                    name: "preset",
                    nesting: Nesting::Single,
                    max_items: 1,
                    key: &[],
                    block: Block {
                        description: "A metric by name: aigov's (`spend`, `input_tokens`, `output_tokens`, `cache_read_tokens`, `cache_write_tokens`, `requests`, per `namespace` and `budget`, optionally per `model` or per one value of a declared attribution `key`) or Bedrock's (`bedrock_invocations`, `bedrock_throttles`, `bedrock_input_tokens`, `bedrock_output_tokens`, `bedrock_latency`, `bedrock_client_errors`, `bedrock_server_errors`, optionally per `model`).",
                        attributes: vec![
                            Attribute::required("metric", Type::String, "The preset name."),
                            Attribute::optional(
                                "namespace",
                                Type::String,
                                "The Kubernetes namespace of the `AIBudget` (aigov presets).",
                            ),
                            Attribute::optional(
                                "budget",
                                Type::String,
                                "The `AIBudget` name (aigov presets).",
                            ),
                            Attribute::optional(
                                "model",
                                Type::String,
                                "Narrow to one model (the billing model ID).",
                            ),
                            Attribute::optional(
                                "key",
                                Type::String,
                                "Narrow to one value of a request-metadata key the budget declares in `spec.attribution.keys`, e.g. `feature` (aigov presets; with `value`, not with `model`). The alarm watches dimension `meta.KEY`; an undeclared key has no metric.",
                            ),
                            Attribute::optional(
                                "value",
                                Type::String,
                                "The value of `key` to watch, e.g. `search`: up to 256 of Bedrock's metadata characters (letters, digits, spaces and _ . : / = + @ $ # , -), not only spaces.",
                            ),
                        ],
                        blocks: vec![],
                    },
                },
                NestedBlock {
                    name: "metric",
                    nesting: Nesting::Single,
                    max_items: 1,
                    key: &[],
                    block: Block {
                        description: "Any CloudWatch metric (raw mode).",
                        attributes: vec![
                            Attribute::required(
                                "namespace",
                                Type::String,
                                "The CloudWatch namespace.",
                            ),
                            Attribute::required("metric_name", Type::String, "The metric name."),
                            Attribute::optional(
                                "dimensions",
                                Type::string_map(),
                                "The metric's dimensions.",
                            ),
                        ],
                        blocks: vec![],
                    },
                },
            ],
        }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        validate::name(
            config.get("name"),
            &NAME,
            "use 1 to 255 printable characters",
            &Path::attr("name"),
            diags,
        );
        let preset = config.get("preset");
        let metric = config.get("metric");
        match (preset.is_null(), metric.is_null()) {
            // Terraform underlines attributes, not blocks: point at the preset's metric.
            (false, false) => diags.attr_error(
                &Path::attr("preset").then("metric"),
                "Conflicting alarm modes",
                "set either a preset block or a metric block, not both: preset names aigov's or Bedrock's metrics, metric takes any CloudWatch metric.",
            ),
            (true, true) => diags.error(
                "Missing alarm metric",
                "add a preset block (for example preset { metric = \"spend\" namespace = \"team-a\" budget = \"team-a-daily\" }) or a metric block.",
            ),
            _ => {}
        }
        if let Some(name) = preset.get("metric").as_str() {
            let path = Path::attr("preset");
            match PRESETS.iter().find(|p| p.0 == name) {
                None => diags.attr_error(
                    &path.then("metric"),
                    "Unknown preset",
                    format!(
                        "{name:?} is not a preset; use one of: {}.",
                        PRESETS.map(|p| p.0).join(", ")
                    ),
                ),
                Some((_, AIGOV_NAMESPACE, _)) => {
                    for field in ["namespace", "budget"] {
                        if preset.get(field).is_null() {
                            diags.attr_error(
                                &path.then(field),
                                "Missing attribute",
                                format!("the {name} preset is per AIBudget: set {field}."),
                            );
                        }
                    }
                    validate_key(preset, name, &path, diags);
                }
                Some(_) => {
                    for field in ["namespace", "budget"] {
                        if !preset.get(field).is_null() {
                            diags.attr_error(&path.then(field), "Not applicable", format!("Bedrock's own metrics know no AIBudget; remove {field} from the {name} preset (or use an aigov preset such as spend)."));
                        }
                    }
                    for field in ["key", "value"] {
                        if !preset.get(field).is_null() {
                            diags.attr_error(&path.then(field), "Not applicable", format!("Bedrock's own metrics know no request metadata; remove {field} from the {name} preset, or watch an aigov preset such as spend or requests, whose metrics are per declared attribution key."));
                        }
                    }
                }
            }
        }
        validate::range(
            config.get("threshold"),
            Decimal::from(-1_000_000_000),
            false,
            None,
            &Path::attr("threshold"),
            diags,
        );
        validate::one_of(
            config.get("comparison_operator"),
            &COMPARISONS,
            &Path::attr("comparison_operator"),
            diags,
        );
        validate::one_of(
            config.get("statistic"),
            &STATISTICS,
            &Path::attr("statistic"),
            diags,
        );
        validate::one_of(
            config.get("treat_missing_data"),
            &MISSING_DATA,
            &Path::attr("treat_missing_data"),
            diags,
        );
        if let Some(period) = config.get("period").as_decimal() {
            let ok = period.fract().is_zero()
                && (period == Decimal::from(10)
                    || period == Decimal::from(30)
                    || (period > Decimal::ZERO && (period % Decimal::from(60)).is_zero()));
            if !ok {
                diags.attr_error(&Path::attr("period"), "Invalid period", format!("{period} seconds is not a CloudWatch alarm period; use 10, 30 or a multiple of 60 such as 300."));
            }
        }
        for field in ["evaluation_periods", "datapoints_to_alarm"] {
            validate::range(
                config.get(field),
                Decimal::ONE,
                false,
                Some(Decimal::from(100_000)),
                &Path::attr(field),
                diags,
            );
            validate::whole(config.get(field), &Path::attr(field), diags);
        }
        if let (Some(d), Some(e)) = (
            config.get("datapoints_to_alarm").as_decimal(),
            config.get("evaluation_periods").as_decimal(),
        ) && d > e
        {
            diags.attr_error(
                &Path::attr("datapoints_to_alarm"),
                "Value out of range",
                format!("datapoints_to_alarm ({d}) cannot exceed evaluation_periods ({e})."),
            );
        }
        validate::each_kind(
            config.get("alarm_actions"),
            Kind::SnsTopicArn,
            &Path::attr("alarm_actions"),
            diags,
        );
        validate::each_kind(
            config.get("ok_actions"),
            Kind::SnsTopicArn,
            &Path::attr("ok_actions"),
            diags,
        );
        validate_tags(config, diags);
    }

    fn plan(&self, clients: &Clients, planned: &mut Value, _prior: &Value) {
        planned.set("id", planned.get("name").clone());
        plan_tags_all(clients, planned);
    }

    async fn create(&self, clients: &Clients, planned: &Value) -> Result<Value, Error> {
        let name = planned.get("name").as_str().unwrap_or_default();
        // PutMetricAlarm overwrites an alarm of the same name: look first, and refuse.
        if self.read(clients, planned).await?.is_some() {
            return Err(already_exists(
                "aigov_alarm",
                &format!("CloudWatch alarm {name}"),
                name,
            ));
        }
        self.put(clients, planned, true).await?;
        read_back(
            self.read(clients, planned).await,
            planned,
            &format!("alarm {name}"),
        )
    }

    async fn read(&self, clients: &Clients, state: &Value) -> Result<Option<Value>, Error> {
        let name = state.get("name").as_str().unwrap_or_default().to_owned();
        let found = clients
            .cloudwatch
            .describe_alarms()
            .alarm_names(&name)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("cloudwatch"),
                    &format!("reading alarm {name}"),
                    e,
                )
            })?;
        let Some(alarm) = found
            .metric_alarms
            .unwrap_or_default()
            .into_iter()
            .find(|a| a.alarm_name.as_deref() == Some(&name))
        else {
            return Ok(None);
        };
        let arn = alarm.alarm_arn.clone().unwrap_or_default();
        let mut remote_tags: BTreeMap<String, String> = clients
            .cloudwatch
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    clients.target("cloudwatch"),
                    &format!("reading the tags of alarm {name}"),
                    e,
                )
            })?
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| Some((t.key?, t.value?)))
            .collect();
        let preset = remote_tags.remove(PRESET_TAG);
        let (tags, tags_all) = split_tags(clients, state, &remote_tags);
        Ok(Some(alarm_state(
            &alarm,
            state,
            preset.as_deref(),
            tags,
            tags_all,
        )))
    }

    async fn update(
        &self,
        clients: &Clients,
        prior: &Value,
        planned: &Value,
    ) -> Result<Value, Error> {
        self.put(clients, planned, false).await?;
        let arn = prior.get("arn").as_str().unwrap_or_default().to_owned();
        let name = planned.get("name").as_str().unwrap_or_default().to_owned();
        let (mut removed, mut changed) = tag_changes(prior, planned);
        match planned.get("preset").get("metric").as_str() {
            Some(preset) => {
                changed.insert(PRESET_TAG.to_owned(), preset.to_owned());
            }
            None => removed.push(PRESET_TAG.to_owned()),
        }
        let (arn, name) = (&arn, &name);
        apply_tag_changes(
            (removed, changed),
            |keys| async move {
                clients
                    .cloudwatch
                    .untag_resource()
                    .resource_arn(arn)
                    .set_tag_keys(Some(keys))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        Error::aws(
                            clients.target("cloudwatch"),
                            &format!("untagging alarm {name}"),
                            e,
                        )
                    })
            },
            |tags| async move {
                clients
                    .cloudwatch
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(cloudwatch_tags(tags)))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        Error::aws(
                            clients.target("cloudwatch"),
                            &format!("tagging alarm {name}"),
                            e,
                        )
                    })
            },
        )
        .await?;
        written(self.read(clients, planned).await?, &format!("alarm {name}"))
    }

    async fn delete(&self, clients: &Clients, state: &Value) -> Result<(), Error> {
        let name = state.get("name").as_str().unwrap_or_default();
        clients
            .cloudwatch
            .delete_alarms()
            .alarm_names(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                Error::aws(
                    clients.target("cloudwatch"),
                    &format!("deleting alarm {name}"),
                    e,
                )
            })
    }

    async fn import(&self, _clients: &Clients, id: &str) -> Result<Value, String> {
        if !NAME.is_match(id) {
            return Err(format!(
                "import an alarm by its name; {id:?} is not an alarm name"
            ));
        }
        Ok(Value::object([("name", Value::string(id))]))
    }
}

impl Alarm {
    /// PutMetricAlarm creates or replaces the whole alarm; tags are only taken on creation.
    async fn put(&self, clients: &Clients, planned: &Value, creating: bool) -> Result<(), Error> {
        let name = planned.get("name").as_str().unwrap_or_default().to_owned();
        let (namespace, metric_name, dimensions) = metric_of(planned);
        let number = |attr: &str| planned.get(attr).as_i64().map(|n| n as i32);
        let mut tags = planned.get("tags_all").to_string_map().unwrap_or_default();
        if let Some(preset) = planned.get("preset").get("metric").as_str() {
            tags.insert(PRESET_TAG.to_owned(), preset.to_owned());
        }
        clients
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(&name)
            .set_alarm_description(planned.get("description").as_str().map(str::to_owned))
            .namespace(namespace)
            .metric_name(metric_name)
            .set_dimensions(Some(
                dimensions
                    .into_iter()
                    .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                    .collect(),
            ))
            .statistic(Statistic::from(
                planned.get("statistic").as_str().unwrap_or("Sum"),
            ))
            .set_period(number("period"))
            .set_evaluation_periods(number("evaluation_periods"))
            .set_datapoints_to_alarm(number("datapoints_to_alarm"))
            .threshold(
                planned
                    .get("threshold")
                    .as_decimal()
                    .and_then(|d| d.to_f64())
                    .unwrap_or_default(),
            )
            .comparison_operator(ComparisonOperator::from(
                planned
                    .get("comparison_operator")
                    .as_str()
                    .unwrap_or("GreaterThanOrEqualToThreshold"),
            ))
            .set_treat_missing_data(
                planned
                    .get("treat_missing_data")
                    .as_str()
                    .map(str::to_owned),
            )
            .actions_enabled(true)
            .set_alarm_actions(Some(
                planned
                    .get("alarm_actions")
                    .to_strings()
                    .unwrap_or_default(),
            ))
            .set_ok_actions(Some(
                planned.get("ok_actions").to_strings().unwrap_or_default(),
            ))
            .set_tags((creating && !tags.is_empty()).then(|| cloudwatch_tags(tags)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                Error::aws(
                    clients.target("cloudwatch"),
                    &format!("writing alarm {name}"),
                    e,
                )
            })
    }
}

/// An aigov preset's `key` and `value`: both or neither, not with `model` (the controller's
/// per-key metrics are per namespace and budget only), the key one an `AIBudget` can declare,
/// the value one Bedrock takes as request metadata and CloudWatch as a dimension value.
fn validate_key(preset: &Value, name: &str, path: &Path, diags: &mut Diagnostics) {
    let (key, value) = (preset.get("key"), preset.get("value"));
    for (set, missing) in [(key, "value"), (value, "key")] {
        if !set.is_null() && preset.get(missing).is_null() {
            diags.attr_error(
                &path.then(missing),
                "Missing attribute",
                format!("the {name} preset watches one value of one key: set both key and value (for example key = \"feature\" value = \"search\")."),
            );
        }
    }
    if !key.is_null() && !preset.get("model").is_null() {
        diags.attr_error(
            &path.then("key"),
            "Conflicting attributes",
            "aigov's per-key metrics are per namespace and budget, not per model: remove model or key.",
        );
    }
    if let Some(k) = key.as_str()
        && (!ATTRIBUTION_KEY.is_match(k) || k.starts_with(STAMP_PREFIX))
    {
        diags.attr_error(
            &path.then("key"),
            "Invalid attribution key",
            format!("{k:?} is not a key an AIBudget can declare in spec.attribution.keys: use 1 to 128 of letters, digits and _ . : / = + @ $ # , - (no spaces), not under {STAMP_PREFIX}, e.g. feature."),
        );
    }
    if let Some(v) = value.as_str()
        && !is_dimension_value(v)
    {
        diags.attr_error(
            &path.then("value"),
            "Invalid attribution value",
            format!("{v:?} cannot be a request-metadata value and a metric dimension: use 1 to 256 of letters, digits, spaces and _ . : / = + @ $ # , -, not only spaces, e.g. search."),
        );
    }
}

/// The CloudWatch metric a configuration watches: namespace, name, dimensions.
fn metric_of(config: &Value) -> (String, String, BTreeMap<String, String>) {
    let preset = config.get("preset");
    if let Some((_, namespace, metric)) = preset
        .get("metric")
        .as_str()
        .and_then(|m| PRESETS.iter().find(|p| p.0 == m))
    {
        let mut dimensions = BTreeMap::new();
        if *namespace == AIGOV_NAMESPACE {
            for (attr, dimension) in [
                ("namespace", "Namespace"),
                ("budget", "Budget"),
                ("model", "Model"),
            ] {
                if let Some(v) = preset.get(attr).as_str() {
                    dimensions.insert(dimension.to_owned(), v.to_owned());
                }
            }
            if let (Some(key), Some(value)) =
                (preset.get("key").as_str(), preset.get("value").as_str())
            {
                dimensions.insert(format!("{KEY_DIMENSION_PREFIX}{key}"), value.to_owned());
            }
        } else if let Some(model) = preset.get("model").as_str() {
            dimensions.insert("ModelId".to_owned(), model.to_owned());
        }
        return ((*namespace).to_owned(), (*metric).to_owned(), dimensions);
    }
    let metric = config.get("metric");
    (
        metric
            .get("namespace")
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        metric
            .get("metric_name")
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        metric.get("dimensions").to_string_map().unwrap_or_default(),
    )
}

/// The preset block an alarm reads back as: the one it was written from, when that preset still
/// describes its metric exactly (its namespace and name, and dimensions a preset can set: for
/// aigov's, `Namespace`, `Budget` and either `Model` or one `meta.KEY`); else None (raw mode).
fn preset_of(
    written_from: Option<&str>,
    namespace: &str,
    metric_name: &str,
    dimensions: &BTreeMap<String, String>,
) -> Option<Value> {
    let (preset, ns, _) = PRESETS
        .iter()
        .find(|p| Some(p.0) == written_from && p.1 == namespace && p.2 == metric_name)?;
    let get = |k: &str| Value::opt_string(dimensions.get(k).cloned());
    if *ns != AIGOV_NAMESPACE {
        if dimensions.keys().any(|k| k != "ModelId") {
            return None;
        }
        return Some(Value::object([
            ("metric", Value::string(*preset)),
            ("namespace", Value::Null),
            ("budget", Value::Null),
            ("model", get("ModelId")),
            ("key", Value::Null),
            ("value", Value::Null),
        ]));
    }
    let keyed: Vec<(&String, &String)> = dimensions
        .iter()
        .filter(|(k, _)| !["Namespace", "Budget", "Model"].contains(&k.as_str()))
        .collect();
    let (key, value) = match keyed.as_slice() {
        [] => (Value::Null, Value::Null),
        [(k, v)] if !dimensions.contains_key("Model") => (
            Value::string(k.strip_prefix(KEY_DIMENSION_PREFIX)?),
            Value::string(*v),
        ),
        _ => return None,
    };
    Some(Value::object([
        ("metric", Value::string(*preset)),
        ("namespace", get("Namespace")),
        ("budget", get("Budget")),
        ("model", get("Model")),
        ("key", key),
        ("value", value),
    ]))
}

/// The state for an alarm: in preset mode when it was written from a preset that still describes
/// its metric exactly, else in raw mode.
fn alarm_state(
    alarm: &MetricAlarm,
    state: &Value,
    written_from: Option<&str>,
    tags: Value,
    tags_all: Value,
) -> Value {
    let namespace = alarm.namespace.clone().unwrap_or_default();
    let metric_name = alarm.metric_name.clone().unwrap_or_default();
    let dimensions: BTreeMap<String, String> = alarm
        .dimensions()
        .iter()
        .filter_map(|d| Some((d.name.clone()?, d.value.clone()?)))
        .collect();
    let preset = preset_of(written_from, &namespace, &metric_name, &dimensions);
    let metric = match &preset {
        Some(_) => Value::Null,
        None => Value::object([
            ("namespace", Value::string(namespace)),
            ("metric_name", Value::string(metric_name)),
            (
                "dimensions",
                unset_if_empty(
                    state.get("metric").get("dimensions"),
                    Value::string_map(&dimensions),
                ),
            ),
        ]),
    };
    let actions = |attr: &str, remote: &[String]| {
        unset_if_empty(state.get(attr), Value::strings(remote.to_vec()))
    };
    let int = |n: Option<i32>| Value::opt_number(n.map(Decimal::from));
    let threshold = alarm
        .threshold
        .and_then(|t| Decimal::from_str_exact(&format!("{t}")).ok())
        .map(Value::Number)
        .unwrap_or_default();
    // Unset, CloudWatch evaluates all periods (and may echo that back as a number).
    let datapoints = match alarm.datapoints_to_alarm {
        Some(d)
            if !(state.get("datapoints_to_alarm").is_null()
                && Some(d) == alarm.evaluation_periods) =>
        {
            int(Some(d))
        }
        _ => Value::Null,
    };
    let name = alarm.alarm_name.clone().unwrap_or_default();
    Value::object([
        ("id", Value::string(&name)),
        ("name", Value::string(&name)),
        (
            "description",
            Value::opt_string(alarm.alarm_description.clone().filter(|d| !d.is_empty())),
        ),
        ("threshold", threshold),
        (
            "comparison_operator",
            Value::opt_string(
                alarm
                    .comparison_operator
                    .as_ref()
                    .map(|c| c.as_str().to_owned()),
            ),
        ),
        (
            "statistic",
            Value::opt_string(alarm.statistic.as_ref().map(|s| s.as_str().to_owned())),
        ),
        ("period", int(alarm.period)),
        ("evaluation_periods", int(alarm.evaluation_periods)),
        ("datapoints_to_alarm", datapoints),
        (
            "treat_missing_data",
            Value::opt_string(alarm.treat_missing_data.clone()),
        ),
        (
            "alarm_actions",
            actions("alarm_actions", alarm.alarm_actions()),
        ),
        ("ok_actions", actions("ok_actions", alarm.ok_actions())),
        ("arn", Value::opt_string(alarm.alarm_arn.clone())),
        ("preset", preset.unwrap_or_default()),
        ("metric", metric),
        ("tags", tags),
        ("tags_all", tags_all),
    ])
}

fn cloudwatch_tags(tags: BTreeMap<String, String>) -> Vec<Tag> {
    tags.into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tfplugin6::attribute_path::step::Selector;

    /// An alarm configuration with this preset block.
    fn with_preset(preset: &[(&str, &str)]) -> Value {
        let preset = preset.iter().map(|(k, v)| (*k, Value::string(*v)));
        Value::object([
            ("name", Value::string("a")),
            ("threshold", Value::Number(Decimal::ONE)),
            ("preset", Value::object(preset)),
        ])
    }

    /// The errors validation reports: (the attribute underlined, summary and detail).
    fn errors(config: &Value) -> Vec<(String, String)> {
        let mut diags = Diagnostics::default();
        Alarm.validate(config, &mut diags);
        diags
            .into_vec()
            .into_iter()
            .map(|d| {
                let last = d.attribute.and_then(|p| p.steps.last().cloned());
                let attr = match last.and_then(|s| s.selector) {
                    Some(Selector::AttributeName(a)) => a,
                    _ => String::new(),
                };
                (attr, format!("{}: {}", d.summary, d.detail))
            })
            .collect()
    }

    const PER_KEY: [(&str, &str); 5] = [
        ("metric", "spend"),
        ("namespace", "team-a"),
        ("budget", "chat-daily"),
        ("key", "feature"),
        ("value", "search"),
    ];

    #[test]
    fn an_aigov_preset_per_key_is_valid_and_watches_the_keys_dimension_beside_namespace_and_budget()
    {
        let config = with_preset(&PER_KEY);
        let found = errors(&config);
        assert!(found.is_empty(), "{found:?}");
        let (namespace, metric, dimensions) = metric_of(&config);
        assert_eq!((namespace.as_str(), metric.as_str()), ("AIGov", "CostUSD"));
        assert_eq!(
            dimensions.into_iter().collect::<Vec<_>>(),
            [
                ("Budget".to_owned(), "chat-daily".to_owned()),
                ("Namespace".to_owned(), "team-a".to_owned()),
                ("meta.feature".to_owned(), "search".to_owned()),
            ]
        );
    }

    #[test]
    fn a_per_key_alarm_reads_back_as_the_preset_it_was_written_from() {
        for preset in [
            &PER_KEY[..],
            &PER_KEY[..3],
            &[
                ("metric", "requests"),
                ("namespace", "n"),
                ("budget", "b"),
                ("model", "m"),
            ][..],
            &[("metric", "bedrock_latency"), ("model", "m")][..],
        ] {
            let config = with_preset(preset);
            let (namespace, metric, dimensions) = metric_of(&config);
            let name = config.get("preset").get("metric").as_str();
            let read = preset_of(name, &namespace, &metric, &dimensions).expect("preset mode");
            for field in ["metric", "namespace", "budget", "model", "key", "value"] {
                assert_eq!(
                    read.get(field),
                    config.get("preset").get(field),
                    "{field} of {preset:?}"
                );
            }
        }
    }

    #[test]
    fn an_alarm_whose_dimensions_no_preset_can_set_reads_back_in_raw_mode() {
        let dims = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let base = [("Namespace", "n"), ("Budget", "b")];
        for extra in [
            &[("meta.feature", "search"), ("meta.user", "ann")][..],
            &[("meta.feature", "search"), ("Model", "m")][..],
            &[("Tenant", "t")][..],
        ] {
            let all = dims(&[&base[..], extra].concat());
            assert_eq!(
                preset_of(Some("spend"), "AIGov", "CostUSD", &all),
                None,
                "{extra:?}"
            );
        }
    }

    #[test]
    fn a_key_needs_its_value_and_a_value_its_key() {
        let no_value = errors(&with_preset(&PER_KEY[..4]));
        assert_eq!(no_value.len(), 1, "{no_value:?}");
        assert_eq!(no_value[0].0, "value");
        assert!(no_value[0].1.contains("set both key and value"));
        let mut no_key = PER_KEY.to_vec();
        no_key.remove(3);
        let no_key = errors(&with_preset(&no_key));
        assert_eq!(no_key.len(), 1, "{no_key:?}");
        assert_eq!(no_key[0].0, "key");
    }

    #[test]
    fn a_key_is_not_combined_with_a_model() {
        let mut preset = PER_KEY.to_vec();
        preset.push(("model", "anthropic.claude-3-5-haiku-20241022-v1:0"));
        let found = errors(&with_preset(&preset));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "key");
        assert!(found[0].1.contains("remove model or key"), "{found:?}");
    }

    #[test]
    fn keys_and_values_follow_the_attribution_and_request_metadata_rules() {
        let long_key = "k".repeat(129);
        let long_value = "v".repeat(257);
        for (key, value, underlined) in [
            ("tenant id", "t", "key"),
            ("aigov.workload", "chat", "key"),
            (long_key.as_str(), "v", "key"),
            ("feature", "   ", "value"),
            ("feature", "", "value"),
            ("feature", "a\tb", "value"),
            ("feature", "caf\u{e9}", "value"),
            ("feature", long_value.as_str(), "value"),
        ] {
            let mut preset = PER_KEY[..3].to_vec();
            preset.extend([("key", key), ("value", value)]);
            let found = errors(&with_preset(&preset));
            assert_eq!(found.len(), 1, "{key:?}={value:?}: {found:?}");
            assert_eq!(found[0].0, underlined, "{key:?}={value:?}");
        }
        for (key, value) in [("tenant_id", "acme corp"), ("a:b/c=d+e@f$g#h,i-j", "x")] {
            let mut preset = PER_KEY[..3].to_vec();
            preset.extend([("key", key), ("value", value)]);
            let found = errors(&with_preset(&preset));
            assert!(found.is_empty(), "{key:?}={value:?}: {found:?}");
        }
    }

    #[test]
    fn a_bedrock_preset_refuses_a_key_and_says_which_presets_take_one() {
        let found = errors(&with_preset(&[
            ("metric", "bedrock_invocations"),
            ("key", "feature"),
            ("value", "search"),
        ]));
        let attrs: Vec<&str> = found.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(attrs, ["key", "value"], "{found:?}");
        assert!(
            found[0]
                .1
                .contains("remove key from the bedrock_invocations preset")
        );
        assert!(found[0].1.contains("aigov preset such as spend"));
    }

    #[test]
    fn an_unknown_key_or_value_is_not_validated_before_apply() {
        let mut config = with_preset(&PER_KEY);
        if let Some(preset) = config.get_mut("preset") {
            preset.set("value", Value::unknown());
        }
        let found = errors(&config);
        assert!(found.is_empty(), "{found:?}");
    }
}
