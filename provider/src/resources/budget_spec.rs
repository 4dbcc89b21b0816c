//! What `aigov_cluster_budget` and `aigov_budget_template` share: the `AIBudgetSpec` both carry
//! (its attributes and blocks, its plan-time checks, and its conversion to and from the API
//! object) and the label selector block.
//!
//! The checks are the API's own where the API has them as code (`Usd::parse`, `ModelPattern`,
//! `labels`, `period::time_zone`, `validate_thresholds`) and its published patterns otherwise,
//! so a plan refuses what `kubectl apply` would refuse, on the attribute that is wrong.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use aigov_api::budget::{
    AIBudgetSpec, AMOUNT_REGEX, ATTRIBUTION_KEY_REGEX, Alerts, Attribution, DURATION_REGEX,
    DowngradeRule, Enforcement, EscalationStep, MAX_ATTRIBUTION_KEYS, MODEL_ID_REGEX, ModelRules,
    SNS_TOPIC_ARN_REGEX, SecretKeyRef, ValueLimit, WorkloadSelector,
};
use aigov_api::labels;
use aigov_api::pattern::ModelPattern;
use aigov_api::period::Rollover;
use aigov_api::{Usd, evaluation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use regex::Regex;
use rust_decimal::Decimal;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::unset_if_empty;
use crate::diag::{Diagnostics, Path};
use crate::schema::{Attribute, Block, NestedBlock, Nesting, Type};
use crate::validate;
use crate::value::Value;

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the API's patterns are valid regexes")
}

static AMOUNT: LazyLock<Regex> = LazyLock::new(|| regex(AMOUNT_REGEX));
static DURATION: LazyLock<Regex> = LazyLock::new(|| regex(DURATION_REGEX));
static SNS_TOPIC_ARN: LazyLock<Regex> = LazyLock::new(|| regex(SNS_TOPIC_ARN_REGEX));
static MODEL_ID: LazyLock<Regex> = LazyLock::new(|| regex(MODEL_ID_REGEX));
static ATTRIBUTION_KEY: LazyLock<Regex> = LazyLock::new(|| regex(ATTRIBUTION_KEY_REGEX));
static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| regex(r"^[-._a-zA-Z0-9]{1,253}$"));

/// The periods, as the API spells them.
pub const PERIODS: [&str; 6] = [
    "Daily",
    "Weekly",
    "Monthly",
    "Quarterly",
    "Yearly",
    "Credit",
];
const WEEK_STARTS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const ACTIONS: [&str; 3] = ["Throttle", "Downgrade", "Escalate"];
const FAIL_MODES: [&str; 2] = ["Closed", "Open"];

/// A list of strings.
fn strings() -> Type {
    Type::List(Box::new(Type::String))
}

fn single(name: &'static str, block: Block) -> NestedBlock {
    NestedBlock {
        name,
        nesting: Nesting::Single,
        max_items: 0,
        key: &[],
        block,
    }
}

fn list(name: &'static str, max_items: i64, block: Block) -> NestedBlock {
    NestedBlock {
        name,
        nesting: Nesting::List,
        max_items,
        key: &[],
        block,
    }
}

fn secret_ref_block(description: &'static str) -> NestedBlock {
    single(
        "webhook_secret_ref",
        Block {
            description,
            attributes: vec![
                Attribute::required("name", Type::String, "The Secret's name."),
                Attribute::required("key", Type::String, "The key within it."),
            ],
            blocks: vec![],
        },
    )
}

/// A Kubernetes label selector block (`namespace_selector`, `pod_selector`).
pub fn selector_block(name: &'static str, description: &'static str) -> NestedBlock {
    single(
        name,
        Block {
            description,
            attributes: vec![Attribute::optional(
                "match_labels",
                Type::string_map(),
                "Label key and value pairs that must all be present.",
            )],
            blocks: vec![list(
                "match_expressions",
                32,
                Block {
                    description: "A requirement that must be met (all of them must).",
                    attributes: vec![
                        Attribute::required("key", Type::String, "The label key."),
                        Attribute::required(
                            "operator",
                            Type::String,
                            "`In`, `NotIn`, `Exists` or `DoesNotExist`.",
                        ),
                        Attribute::optional(
                            "values",
                            strings(),
                            "The values, one or more for `In` and `NotIn`, none for `Exists` and `DoesNotExist`.",
                        ),
                    ],
                    blocks: vec![],
                },
            )],
        },
    )
}

/// The budget-spec attributes, after the resource's own.
pub fn attributes() -> Vec<Attribute> {
    vec![
        Attribute::required(
            "limit",
            Type::Number,
            "The most the budget may spend per period, in USD (`2500` or `1250.50`, up to 6 decimal places).",
        ),
        Attribute::optional(
            "period",
            Type::String,
            "`Daily`, `Weekly`, `Monthly`, `Quarterly`, `Yearly`, or `Credit` (a prepaid amount that never resets; raising the limit tops it up).",
        )
        .with_default(Value::string("Monthly")),
        Attribute::optional(
            "week_start",
            Type::String,
            "The day a `Weekly` period starts on (`Monday` unless set), such as `Sunday`.",
        ),
        Attribute::optional(
            "fiscal_year_start_month",
            Type::Number,
            "The month a fiscal year starts, 1 (January, unless set) to 12, for `Quarterly` and `Yearly` periods.",
        ),
        Attribute::optional(
            "time_zone",
            Type::String,
            "The IANA time zone in which periods start at local midnight, such as `Europe/Berlin`.",
        )
        .with_default(Value::string("UTC")),
        Attribute::optional(
            "thresholds",
            Type::List(Box::new(Type::Number)),
            "Percents of the limit at which an Event and an alert fire, strictly ascending whole numbers from 1 to 100.",
        )
        .with_default(Value::Seq(
            [50, 80, 100]
                .into_iter()
                .map(|n| Value::Number(n.into()))
                .collect(),
        )),
    ]
}

/// The budget-spec blocks.
pub fn blocks() -> Vec<NestedBlock> {
    vec![
        single(
            "rollover",
            Block {
                description: "Carries what a period left unused into the next (not with `Credit`).",
                attributes: vec![Attribute::required(
                    "max_percent",
                    Type::Number,
                    "The most that is carried, in percent of the next period's limit (0 to 100).",
                )],
                blocks: vec![],
            },
        ),
        single(
            "selector",
            Block {
                description: "Which workloads the budget meters; absent meters all of them.",
                attributes: vec![Attribute::optional(
                    "service_accounts",
                    strings(),
                    "Service account names; unset means any.",
                )],
                blocks: vec![selector_block(
                    "pod_selector",
                    "A label selector over pods; absent means any.",
                )],
            },
        ),
        single(
            "models",
            Block {
                description: "Which models may be called: model IDs, profile IDs or ARNs, `*` matching any run of characters.",
                attributes: vec![
                    Attribute::optional(
                        "allow",
                        strings(),
                        "Only these models may be called; unset allows all.",
                    ),
                    Attribute::optional("deny", strings(), "These models may never be called."),
                ],
                blocks: vec![],
            },
        ),
        single(
            "enforcement",
            Block {
                description: "What happens at the limit, and before it.",
                attributes: vec![
                    Attribute::optional(
                        "action",
                        Type::String,
                        "At the limit: `Throttle` (refuse), `Downgrade` (rewrite to the `downgrade` models) or `Escalate` (keep serving, escalate).",
                    )
                    .with_default(Value::string("Throttle")),
                    Attribute::optional(
                        "soft_limit_percent",
                        Type::Number,
                        "From this percent of the limit on (1 to 99), requests are rate-limited; goes with `soft_limit_requests_per_minute`.",
                    ),
                    Attribute::optional(
                        "soft_limit_requests_per_minute",
                        Type::Number,
                        "Past `soft_limit_percent`, the most requests per minute the budget admits as a whole (1 to 1000000).",
                    ),
                    Attribute::optional(
                        "fail_mode",
                        Type::String,
                        "While the gateway cannot reach the controller: `Closed` (spend only what was granted) or `Open` (keep serving).",
                    )
                    .with_default(Value::string("Closed")),
                ],
                blocks: vec![list(
                    "downgrade",
                    32,
                    Block {
                        description: "With action `Downgrade`: requests for `from` go to `to`.",
                        attributes: vec![
                            Attribute::required(
                                "from",
                                Type::String,
                                "A model pattern (`*` wildcards allowed).",
                            ),
                            Attribute::required(
                                "to",
                                Type::String,
                                "The model ID to use instead (no wildcards).",
                            ),
                        ],
                        blocks: vec![],
                    },
                )],
            },
        ),
        single(
            "alerts",
            Block {
                description: "Where threshold alerts go: an SNS topic, a webhook, or both.",
                attributes: vec![
                    Attribute::optional(
                        "sns_topic_arn",
                        Type::String,
                        "The SNS topic to publish to (an `aigov_alert_channel`'s `arn`).",
                    ),
                    Attribute::optional(
                        "cooldown",
                        Type::String,
                        "The least time between two alerts of this budget (a Go duration such as `15m`).",
                    )
                    .with_default(Value::string("15m")),
                ],
                blocks: vec![secret_ref_block(
                    "A key of a Secret (in the aigov controller's namespace) holding a Slack-compatible webhook URL.",
                )],
            },
        ),
        list(
            "escalation",
            5,
            Block {
                description: "Who is told next when the budget stays at 100% without acknowledgement (needs `alerts`).",
                attributes: vec![
                    Attribute::required(
                        "after",
                        Type::String,
                        "How long the budget must have been at 100% (a Go duration such as `30m`).",
                    ),
                    Attribute::optional("sns_topic_arn", Type::String, "The SNS topic to notify."),
                ],
                blocks: vec![secret_ref_block(
                    "A key of a Secret holding the webhook URL to notify.",
                )],
            },
        ),
        single(
            "attribution",
            Block {
                description: "Which request-metadata keys the budget's status breaks its spend down by.",
                attributes: vec![
                    Attribute::optional(
                        "keys",
                        strings(),
                        "Up to 5 request-metadata keys whose values the status ranks by spend, such as `[\"feature\", \"tenant\"]`.",
                    ),
                    Attribute::optional(
                        "require",
                        strings(),
                        "Request-metadata keys every call must carry, such as `[\"user\"]`.",
                    ),
                ],
                blocks: vec![],
            },
        ),
        list(
            "limit_per_value",
            3,
            Block {
                description: "A limit for every distinct value of a request-metadata key (each user, each tenant), inside the budget's limit.",
                attributes: vec![
                    Attribute::required(
                        "key",
                        Type::String,
                        "The request-metadata key, such as `user`.",
                    ),
                    Attribute::required(
                        "limit",
                        Type::Number,
                        "The most each value may spend per period, in USD.",
                    ),
                ],
                blocks: vec![],
            },
        ),
    ]
}

// --- plan-time checks

/// Checks a Kubernetes object name (a DNS subdomain).
pub fn validate_object_name(value: &Value, path: &Path, diags: &mut Diagnostics) {
    validate::name(
        value,
        &validate::KUBE_NAME,
        "use lower-case letters, digits, - and . (a Kubernetes object name), at most 253 characters",
        path,
        diags,
    );
}

/// Checks a USD amount as the API takes it: `Usd::parse`, then the CRD's pattern (at most 12
/// digits before the point and 6 after), then greater than zero.
fn validate_amount(value: &Value, path: &Path, diags: &mut Diagnostics) {
    let Some(n) = value.as_decimal() else {
        return;
    };
    let text = n.normalize().to_string();
    let problem = match Usd::parse(&text) {
        Err(e) => Some(e.to_string()),
        Ok(_) if !AMOUNT.is_match(&text) => Some(format!(
            "{text} is not an amount the API accepts: at most 12 digits before the decimal point and 6 after it."
        )),
        Ok(usd) if usd.is_zero() => {
            Some("it must be greater than zero, such as 250 or 1250.50.".to_owned())
        }
        Ok(_) => None,
    };
    if let Some(problem) = problem {
        diags.attr_error(path, "Invalid amount", problem);
    }
}

/// Checks a whole number within `[min, max]`.
fn validate_count(value: &Value, min: i64, max: i64, path: &Path, diags: &mut Diagnostics) {
    validate::whole(value, path, diags);
    validate::range(
        value,
        Decimal::from(min),
        false,
        Some(Decimal::from(max)),
        path,
        diags,
    );
}

fn validate_pattern(value: &Value, rule: &Regex, what: &str, path: &Path, diags: &mut Diagnostics) {
    if let Some(s) = value.as_str()
        && !rule.is_match(s)
    {
        diags.attr_error(path, "Invalid value", format!("{s:?} is not {what}."));
    }
}

fn validate_model_patterns(value: &Value, path: &Path, diags: &mut Diagnostics) {
    for (i, item) in value.items().iter().enumerate() {
        if let Some(s) = item.as_str()
            && let Err(e) = ModelPattern::parse(s)
        {
            diags.attr_error(&path.index(i), "Invalid model pattern", e.to_string());
        }
    }
}

fn validate_secret_ref(block: &Value, path: &Path, diags: &mut Diagnostics) {
    validate_object_name(block.get("name"), &path.then("name"), diags);
    validate_pattern(
        block.get("key"),
        &SECRET_KEY,
        "a Secret key (letters, digits, - _ and ., at most 253 characters)",
        &path.then("key"),
        diags,
    );
}

/// Checks a label selector block with the API's label rules, each problem on its element.
pub fn validate_selector(block: &Value, path: &Path, diags: &mut Diagnostics) {
    let field = display_path(path);
    if let Some(map) = block.get("match_labels").as_map() {
        for (k, v) in map {
            let Some(v) = v.as_str() else { continue };
            let one = LabelSelector {
                match_labels: Some(BTreeMap::from([(k.clone(), v.to_owned())])),
                match_expressions: None,
            };
            if let Some(problem) = labels::selector_problem(&one, &field) {
                diags.attr_error(
                    &path.then("match_labels").key(k),
                    "Invalid label selector",
                    problem.replace(".matchLabels", ".match_labels"),
                );
            }
        }
    }
    for (i, e) in block.get("match_expressions").items().iter().enumerate() {
        let (Some(key), Some(operator), Some(values)) = (
            e.get("key").as_str(),
            e.get("operator").as_str(),
            e.get("values").to_strings(),
        ) else {
            continue;
        };
        let one = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.to_owned(),
                operator: operator.to_owned(),
                values: Some(values),
            }]),
        };
        if let Some(problem) = labels::selector_problem(&one, &field) {
            let problem =
                problem.replace(".matchExpressions[0]", &format!(".match_expressions[{i}]"));
            let at = path.then("match_expressions").index(i);
            let attr = if problem.contains("].key ") {
                "key"
            } else if problem.contains("].values ") {
                "values"
            } else {
                "operator"
            };
            diags.attr_error(&at.then(attr), "Invalid label selector", problem);
        }
    }
}

/// `a.b[0].c` for messages.
fn display_path(path: &Path) -> String {
    use crate::diag::Step;
    let mut out = String::new();
    for step in &path.0 {
        match step {
            Step::Attr(a) if out.is_empty() => out.push_str(a),
            Step::Attr(a) => {
                out.push('.');
                out.push_str(a);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Key(k) => out.push_str(&format!("[{k:?}]")),
        }
    }
    out
}

/// The plan-time checks of the budget spec (its attributes are at the top level).
pub fn validate_spec(config: &Value, diags: &mut Diagnostics) {
    let at = Path::attr;
    validate_amount(config.get("limit"), &at("limit"), diags);

    // An unset period is the default, Monthly (unknown: not checked).
    let period = match config.get("period") {
        Value::Null => Some("Monthly"),
        p => p.as_str(),
    };
    validate::one_of(config.get("period"), &PERIODS, &at("period"), diags);
    validate::one_of(
        config.get("week_start"),
        &WEEK_STARTS,
        &at("week_start"),
        diags,
    );
    if !config.get("week_start").is_null() && period.is_some_and(|p| p != "Weekly") {
        diags.attr_error(
            &at("week_start"),
            "week_start needs a Weekly period",
            "week_start applies to a Weekly period only: remove it, or set period = \"Weekly\".",
        );
    }
    let month = config.get("fiscal_year_start_month");
    validate_count(month, 1, 12, &at("fiscal_year_start_month"), diags);
    if !month.is_null() && period.is_some_and(|p| p != "Quarterly" && p != "Yearly") {
        diags.attr_error(
            &at("fiscal_year_start_month"),
            "fiscal_year_start_month needs a Quarterly or Yearly period",
            "fiscal_year_start_month applies to Quarterly and Yearly periods only: remove it, or set period = \"Quarterly\" or \"Yearly\".",
        );
    }
    let rollover = config.get("rollover");
    validate_count(
        rollover.get("max_percent"),
        0,
        100,
        &at("rollover").then("max_percent"),
        diags,
    );
    if !rollover.is_null() && period == Some("Credit") {
        diags.attr_error(
            &at("rollover"),
            "rollover does not apply to a Credit",
            "rollover carries unused budget into the next period, and a Credit never ends: remove the rollover block, or choose a period that resets.",
        );
    }
    if let Some(zone) = config.get("time_zone").as_str() {
        let problem = if zone == "Local" {
            Some("Local is not accepted (it would be whatever zone a server runs in): name the IANA time zone, such as Europe/Berlin or UTC.".to_owned())
        } else {
            aigov_api::period::time_zone(zone).err().map(|e| {
                format!("{e}: use an IANA time zone name such as UTC, Europe/Berlin or America/Argentina/Buenos_Aires.")
            })
        };
        if let Some(problem) = problem {
            diags.attr_error(&at("time_zone"), "Invalid time zone", problem);
        }
    }
    let thresholds = config.get("thresholds");
    for (i, t) in thresholds.items().iter().enumerate() {
        validate_count(t, 1, 100, &at("thresholds").index(i), diags);
    }
    if let Some(ts) = thresholds
        .items()
        .iter()
        .map(|t| t.as_i64().and_then(|n| u32::try_from(n).ok()))
        .collect::<Option<Vec<u32>>>()
        && let Err(e) = evaluation::validate_thresholds(&ts)
    {
        diags.attr_error(
            &at("thresholds"),
            "Invalid thresholds",
            format!("{e}: thresholds are strictly ascending percents from 1 to 100, such as [50, 80, 100]."),
        );
    }

    let selector = config.get("selector");
    for (i, sa) in selector.get("service_accounts").items().iter().enumerate() {
        validate_object_name(sa, &at("selector").then("service_accounts").index(i), diags);
    }
    validate_selector(
        selector.get("pod_selector"),
        &at("selector").then("pod_selector"),
        diags,
    );

    let models = config.get("models");
    for list in ["allow", "deny"] {
        validate_model_patterns(models.get(list), &at("models").then(list), diags);
    }

    validate_enforcement(config, diags);
    validate_alerts(config, diags);
    validate_attribution(config, diags);
}

fn validate_enforcement(config: &Value, diags: &mut Diagnostics) {
    let at = Path::attr("enforcement");
    let e = config.get("enforcement");
    validate::one_of(e.get("action"), &ACTIONS, &at.then("action"), diags);
    validate::one_of(
        e.get("fail_mode"),
        &FAIL_MODES,
        &at.then("fail_mode"),
        diags,
    );
    let percent = e.get("soft_limit_percent");
    let rate = e.get("soft_limit_requests_per_minute");
    validate_count(percent, 1, 99, &at.then("soft_limit_percent"), diags);
    validate_count(
        rate,
        1,
        1_000_000,
        &at.then("soft_limit_requests_per_minute"),
        diags,
    );
    if !percent.is_unknown() && !rate.is_unknown() && percent.is_null() != rate.is_null() {
        let missing = if percent.is_null() {
            "soft_limit_percent"
        } else {
            "soft_limit_requests_per_minute"
        };
        diags.attr_error(
            &at.then(missing),
            "Incomplete soft limit",
            "soft_limit_percent and soft_limit_requests_per_minute go together: set both or neither.",
        );
    }
    let downgrades = e.get("downgrade").items();
    for (i, d) in downgrades.iter().enumerate() {
        let path = at.then("downgrade").index(i);
        if let Some(from) = d.get("from").as_str()
            && let Err(problem) = ModelPattern::parse(from)
        {
            diags.attr_error(
                &path.then("from"),
                "Invalid model pattern",
                problem.to_string(),
            );
        }
        validate_pattern(
            d.get("to"),
            &MODEL_ID,
            "a model ID or ARN without wildcards",
            &path.then("to"),
            diags,
        );
        if let (Some(from), Some(to)) = (d.get("from").as_str(), d.get("to").as_str())
            && from == to
        {
            diags.attr_error(
                &path.then("to"),
                "A downgrade must change the model",
                "from and to are the same: name a cheaper model in to.",
            );
        }
    }
    match e.get("action").as_str() {
        Some("Downgrade") if downgrades.is_empty() && !e.get("downgrade").is_unknown() => diags
            .attr_error(
                &at.then("action"),
                "Downgrade needs models",
                "action Downgrade needs at least one downgrade block (from, to) in enforcement.",
            ),
        Some(action) if action != "Downgrade" && !downgrades.is_empty() => diags.attr_error(
            &at.then("downgrade"),
            "downgrade is only used with action Downgrade",
            "enforcement.downgrade is only used with action Downgrade: remove the downgrade blocks or set action = \"Downgrade\".",
        ),
        Some("Escalate") if config.get("escalation").items().is_empty() => diags.attr_error(
            &at.then("action"),
            "Escalate needs escalation steps",
            "action Escalate needs at least one escalation block.",
        ),
        _ => {}
    }
}

fn validate_channel(block: &Value, path: &Path, what: &str, diags: &mut Diagnostics) {
    validate_pattern(
        block.get("sns_topic_arn"),
        &SNS_TOPIC_ARN,
        "an SNS topic ARN such as arn:aws:sns:us-east-1:123456789012:alerts (use an aigov_alert_channel's arn)",
        &path.then("sns_topic_arn"),
        diags,
    );
    let secret = block.get("webhook_secret_ref");
    validate_secret_ref(secret, &path.then("webhook_secret_ref"), diags);
    if !block.is_null() && block.get("sns_topic_arn").is_null() && secret.is_null() {
        diags.attr_error(
            path,
            "No channel",
            format!(
                "{what} needs a channel: set sns_topic_arn, a webhook_secret_ref block, or both."
            ),
        );
    }
}

fn validate_alerts(config: &Value, diags: &mut Diagnostics) {
    let alerts = config.get("alerts");
    let at = Path::attr("alerts");
    validate_channel(alerts, &at, "alerts", diags);
    validate_pattern(
        alerts.get("cooldown"),
        &DURATION,
        "a Go duration such as 15m, 1h or 1h30m",
        &at.then("cooldown"),
        diags,
    );
    let steps = config.get("escalation").items();
    for (i, step) in steps.iter().enumerate() {
        let path = Path::attr("escalation").index(i);
        validate_channel(step, &path, "an escalation step", diags);
        validate_pattern(
            step.get("after"),
            &DURATION,
            "a Go duration such as 30m or 2h",
            &path.then("after"),
            diags,
        );
    }
    if !steps.is_empty() && alerts.is_null() {
        diags.attr_error(
            &Path::attr("escalation"),
            "Escalation needs alerts",
            "escalation steps need alerts to be configured: add an alerts block (the first channel) before escalation steps.",
        );
    }
}

fn validate_attribution_keys(value: &Value, max: usize, path: &Path, diags: &mut Diagnostics) {
    let keys = value.items();
    if keys.len() > max {
        diags.attr_error(
            path,
            "Too many keys",
            format!("at most {max} keys; {} are listed.", keys.len()),
        );
    }
    for (i, k) in keys.iter().enumerate() {
        let Some(s) = k.as_str() else { continue };
        let problem = if !ATTRIBUTION_KEY.is_match(s) {
            Some(format!(
                "{s:?} is not a request-metadata key: letters, digits and _ . : / = + @ $ # , - only (no spaces), at most 128, such as user or tenant_id."
            ))
        } else if s.starts_with("aigov.") {
            Some(format!(
                "{s:?}: keys under aigov. are the gateway's own pairs; name a key your callers set, such as user."
            ))
        } else if keys[..i].iter().any(|o| o.as_str() == Some(s)) {
            Some(format!("{s:?} is listed twice: list each key once."))
        } else {
            None
        };
        if let Some(problem) = problem {
            diags.attr_error(&path.index(i), "Invalid key", problem);
        }
    }
}

fn validate_attribution(config: &Value, diags: &mut Diagnostics) {
    let attribution = config.get("attribution");
    let at = Path::attr("attribution");
    for list in ["keys", "require"] {
        validate_attribution_keys(
            attribution.get(list),
            MAX_ATTRIBUTION_KEYS,
            &at.then(list),
            diags,
        );
    }
    let limits = config.get("limit_per_value").items();
    for (i, l) in limits.iter().enumerate() {
        let path = Path::attr("limit_per_value").index(i);
        validate_amount(l.get("limit"), &path.then("limit"), diags);
        let key = l.get("key");
        validate_attribution_keys(&Value::Seq(vec![key.clone()]), 1, &path.then("key"), diags);
        if let Some(k) = key.as_str()
            && limits[..i].iter().any(|o| o.get("key").as_str() == Some(k))
        {
            diags.attr_error(
                &path.then("key"),
                "Duplicate key",
                format!("{k:?} has two limits: give each key one limit_per_value block."),
            );
        }
    }
}

// --- to and from the API object

fn enum_from<T: DeserializeOwned + Default>(value: &Value) -> T {
    value
        .as_str()
        .and_then(|s| serde_json::from_value(serde_json::Value::String(s.to_owned())).ok())
        .unwrap_or_default()
}

fn enum_name<T: Serialize>(value: &T) -> Value {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Value::String(s),
        _ => Value::Null,
    }
}

fn u32_of(value: &Value) -> Option<u32> {
    value.as_i64().and_then(|n| u32::try_from(n).ok())
}

fn amount(value: &Value) -> String {
    value
        .as_decimal()
        .and_then(|d| Usd::parse(&d.normalize().to_string()).ok())
        .map(Usd::to_api_string)
        .unwrap_or_default()
}

fn opt_string(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

fn strings_of(value: &Value) -> Vec<String> {
    value.to_strings().unwrap_or_default()
}

fn secret_ref(block: &Value) -> Option<SecretKeyRef> {
    (!block.is_null()).then(|| SecretKeyRef {
        name: block.get("name").as_str().unwrap_or_default().to_owned(),
        key: block.get("key").as_str().unwrap_or_default().to_owned(),
    })
}

/// The API's selector for a selector block (`None` when the block is absent).
pub fn to_selector(block: &Value) -> Option<LabelSelector> {
    if block.is_null() {
        return None;
    }
    let expressions: Vec<LabelSelectorRequirement> = block
        .get("match_expressions")
        .items()
        .iter()
        .map(|e| LabelSelectorRequirement {
            key: e.get("key").as_str().unwrap_or_default().to_owned(),
            operator: e.get("operator").as_str().unwrap_or_default().to_owned(),
            values: (!e.get("values").is_null()).then(|| strings_of(e.get("values"))),
        })
        .collect();
    Some(LabelSelector {
        match_labels: block.get("match_labels").as_map().map(|_| {
            block
                .get("match_labels")
                .to_string_map()
                .unwrap_or_default()
        }),
        match_expressions: (!expressions.is_empty()).then_some(expressions),
    })
}

/// The API's spec for a configuration or plan.
pub fn to_spec(v: &Value) -> AIBudgetSpec {
    let selector = v.get("selector");
    let models = v.get("models");
    let enforcement = v.get("enforcement");
    let alerts = v.get("alerts");
    let attribution = v.get("attribution");
    AIBudgetSpec {
        limit: amount(v.get("limit")),
        period: enum_from(v.get("period")),
        week_start: (!v.get("week_start").is_null()).then(|| enum_from(v.get("week_start"))),
        fiscal_year_start_month: v
            .get("fiscal_year_start_month")
            .as_i64()
            .and_then(|m| u8::try_from(m).ok()),
        rollover: u32_of(v.get("rollover").get("max_percent"))
            .map(|max_percent| Rollover { max_percent }),
        time_zone: v.get("time_zone").as_str().unwrap_or("UTC").to_owned(),
        selector: (!selector.is_null()).then(|| WorkloadSelector {
            service_accounts: strings_of(selector.get("service_accounts")),
            pod_selector: to_selector(selector.get("pod_selector")),
        }),
        models: (!models.is_null()).then(|| ModelRules {
            allow: strings_of(models.get("allow")),
            deny: strings_of(models.get("deny")),
        }),
        thresholds: v
            .get("thresholds")
            .items()
            .iter()
            .filter_map(u32_of)
            .collect(),
        enforcement: (!enforcement.is_null()).then(|| Enforcement {
            action: enum_from(enforcement.get("action")),
            soft_limit_percent: u32_of(enforcement.get("soft_limit_percent")),
            soft_limit_requests_per_minute: u32_of(
                enforcement.get("soft_limit_requests_per_minute"),
            ),
            downgrade: enforcement
                .get("downgrade")
                .items()
                .iter()
                .map(|d| DowngradeRule {
                    from: d.get("from").as_str().unwrap_or_default().to_owned(),
                    to: d.get("to").as_str().unwrap_or_default().to_owned(),
                })
                .collect(),
            fail_mode: enum_from(enforcement.get("fail_mode")),
        }),
        alerts: (!alerts.is_null()).then(|| Alerts {
            sns_topic_arn: opt_string(alerts.get("sns_topic_arn")),
            webhook_secret_ref: secret_ref(alerts.get("webhook_secret_ref")),
            cooldown: alerts.get("cooldown").as_str().unwrap_or("15m").to_owned(),
        }),
        escalation: v
            .get("escalation")
            .items()
            .iter()
            .map(|s| EscalationStep {
                after: s.get("after").as_str().unwrap_or_default().to_owned(),
                sns_topic_arn: opt_string(s.get("sns_topic_arn")),
                webhook_secret_ref: secret_ref(s.get("webhook_secret_ref")),
            })
            .collect(),
        attribution: (!attribution.is_null()).then(|| Attribution {
            keys: strings_of(attribution.get("keys")),
            require: strings_of(attribution.get("require")),
        }),
        limit_per_value: v
            .get("limit_per_value")
            .items()
            .iter()
            .map(|l| ValueLimit {
                key: l.get("key").as_str().unwrap_or_default().to_owned(),
                limit: amount(l.get("limit")),
            })
            .collect(),
        // Not an attribute of the provider's templates yet: set on the AIBudget itself.
        charge_bypass: false,
    }
}

/// A list of strings in the state: null when the API holds none and the configuration left it
/// unset, so `x = []` and an omitted `x` both plan no change.
fn strings_state(items: &[String], known: &Value) -> Value {
    unset_if_empty(known, Value::strings(items.iter().cloned()))
}

fn number(n: impl Into<Decimal>) -> Value {
    Value::Number(n.into())
}

fn amount_state(text: &str) -> Value {
    Value::opt_number(Decimal::from_str_exact(text).ok().map(|d| d.normalize()))
}

fn secret_ref_state(r: &Option<SecretKeyRef>) -> Value {
    r.as_ref().map_or(Value::Null, |r| {
        Value::object([
            ("name", Value::string(&r.name)),
            ("key", Value::string(&r.key)),
        ])
    })
}

/// The state of a selector block; `known` is the block as last configured or stored.
pub fn selector_state(selector: &Option<LabelSelector>, known: &Value) -> Value {
    let Some(s) = selector else {
        return Value::Null;
    };
    let known_expressions = known.get("match_expressions").items();
    let expressions = s
        .match_expressions
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, e)| {
            let known_values = known_expressions
                .get(i)
                .map(|k| k.get("values").clone())
                .unwrap_or_default();
            Value::object([
                ("key", Value::string(&e.key)),
                ("operator", Value::string(&e.operator)),
                (
                    "values",
                    strings_state(e.values.as_deref().unwrap_or_default(), &known_values),
                ),
            ])
        })
        .collect();
    Value::object([
        (
            "match_labels",
            s.match_labels.as_ref().map_or(Value::Null, |m| {
                unset_if_empty(known.get("match_labels"), Value::string_map(m))
            }),
        ),
        ("match_expressions", Value::Seq(expressions)),
    ])
}

/// The state's budget-spec attributes and blocks for what the API holds; `known` is the
/// configuration or state it was written from (null and empty lists keep its spelling).
pub fn spec_state(spec: &AIBudgetSpec, known: &Value) -> Vec<(&'static str, Value)> {
    let known_selector = known.get("selector");
    let known_models = known.get("models");
    let known_attribution = known.get("attribution");
    vec![
        ("limit", amount_state(&spec.limit)),
        ("period", enum_name(&spec.period)),
        (
            "week_start",
            spec.week_start.as_ref().map_or(Value::Null, enum_name),
        ),
        (
            "fiscal_year_start_month",
            Value::opt_number(spec.fiscal_year_start_month.map(Decimal::from)),
        ),
        ("time_zone", Value::string(&spec.time_zone)),
        (
            "thresholds",
            Value::Seq(spec.thresholds.iter().map(|t| number(*t)).collect()),
        ),
        (
            "rollover",
            spec.rollover.map_or(Value::Null, |r| {
                Value::object([("max_percent", number(r.max_percent))])
            }),
        ),
        (
            "selector",
            spec.selector.as_ref().map_or(Value::Null, |s| {
                Value::object([
                    (
                        "service_accounts",
                        strings_state(&s.service_accounts, known_selector.get("service_accounts")),
                    ),
                    (
                        "pod_selector",
                        selector_state(&s.pod_selector, known_selector.get("pod_selector")),
                    ),
                ])
            }),
        ),
        (
            "models",
            spec.models.as_ref().map_or(Value::Null, |m| {
                Value::object([
                    ("allow", strings_state(&m.allow, known_models.get("allow"))),
                    ("deny", strings_state(&m.deny, known_models.get("deny"))),
                ])
            }),
        ),
        (
            "enforcement",
            spec.enforcement.as_ref().map_or(Value::Null, |e| {
                Value::object([
                    ("action", enum_name(&e.action)),
                    (
                        "soft_limit_percent",
                        Value::opt_number(e.soft_limit_percent.map(Decimal::from)),
                    ),
                    (
                        "soft_limit_requests_per_minute",
                        Value::opt_number(e.soft_limit_requests_per_minute.map(Decimal::from)),
                    ),
                    ("fail_mode", enum_name(&e.fail_mode)),
                    (
                        "downgrade",
                        Value::Seq(
                            e.downgrade
                                .iter()
                                .map(|d| {
                                    Value::object([
                                        ("from", Value::string(&d.from)),
                                        ("to", Value::string(&d.to)),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                ])
            }),
        ),
        (
            "alerts",
            spec.alerts.as_ref().map_or(Value::Null, |a| {
                Value::object([
                    ("sns_topic_arn", Value::opt_string(a.sns_topic_arn.clone())),
                    (
                        "webhook_secret_ref",
                        secret_ref_state(&a.webhook_secret_ref),
                    ),
                    ("cooldown", Value::string(&a.cooldown)),
                ])
            }),
        ),
        (
            "escalation",
            Value::Seq(
                spec.escalation
                    .iter()
                    .map(|s| {
                        Value::object([
                            ("after", Value::string(&s.after)),
                            ("sns_topic_arn", Value::opt_string(s.sns_topic_arn.clone())),
                            (
                                "webhook_secret_ref",
                                secret_ref_state(&s.webhook_secret_ref),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "attribution",
            spec.attribution.as_ref().map_or(Value::Null, |a| {
                Value::object([
                    (
                        "keys",
                        strings_state(&a.keys, known_attribution.get("keys")),
                    ),
                    (
                        "require",
                        strings_state(&a.require, known_attribution.get("require")),
                    ),
                ])
            }),
        ),
        (
            "limit_per_value",
            Value::Seq(
                spec.limit_per_value
                    .iter()
                    .map(|l| {
                        Value::object([
                            ("key", Value::string(&l.key)),
                            ("limit", amount_state(&l.limit)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ]
}

/// Marks the computed `status` attributes unknown when anything else changes: the controller
/// recomputes them after a change, so the plan cannot promise their values. An unchanged
/// object keeps them (the plan stays empty).
pub fn plan_status(planned: &mut Value, prior: &Value, status: &[&str]) {
    if prior.is_null() {
        return;
    }
    let without = |v: &Value| match v {
        Value::Map(m) => Value::Map(
            m.iter()
                .filter(|(k, _)| !status.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    };
    if without(planned) != without(prior) {
        for name in status {
            planned.set(name, Value::unknown());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: Vec<(&str, Value)>) -> Value {
        let mut v = Block {
            description: "",
            attributes: attributes(),
            blocks: blocks(),
        }
        .conform(Value::object([("limit", Value::Number(250.into()))]));
        for (k, x) in extra {
            v.set(k, x);
        }
        v
    }

    fn errors(config: &Value) -> Vec<(String, String)> {
        let mut d = Diagnostics::default();
        validate_spec(config, &mut d);
        d.0.iter()
            .map(|d| (format!("{:?}", d.attribute), d.detail.clone()))
            .collect()
    }

    #[test]
    fn a_spec_goes_to_the_api_and_back_unchanged() {
        let v = config(vec![
            ("period", Value::string("Weekly")),
            ("week_start", Value::string("Sunday")),
            ("time_zone", Value::string("Europe/Berlin")),
            (
                "thresholds",
                Value::Seq(vec![Value::Number(80.into()), Value::Number(100.into())]),
            ),
            (
                "models",
                Value::object([
                    ("allow", Value::strings(["anthropic.*"])),
                    ("deny", Value::Null),
                ]),
            ),
            (
                "enforcement",
                Value::object([
                    ("action", Value::string("Throttle")),
                    ("soft_limit_percent", Value::Number(90.into())),
                    ("soft_limit_requests_per_minute", Value::Number(60.into())),
                    ("fail_mode", Value::string("Open")),
                    ("downgrade", Value::Seq(vec![])),
                ]),
            ),
        ]);
        let spec = to_spec(&v);
        assert_eq!(spec.limit, "250.00");
        let back = Value::object(spec_state(&spec, &v));
        for (k, want) in v.as_map().unwrap() {
            assert_eq!(back.get(k), want, "{k}");
        }
    }

    #[test]
    fn bad_values_are_refused_on_their_attribute_with_the_apis_rules() {
        let bad = config(vec![
            ("limit", Value::Number((-5).into())),
            ("period", Value::string("Monthly")),
            ("week_start", Value::string("Sunday")),
            ("time_zone", Value::string("Mars/Olympus")),
            (
                "thresholds",
                Value::Seq(vec![Value::Number(80.into()), Value::Number(50.into())]),
            ),
        ]);
        let found = errors(&bad);
        for (attr, says) in [
            ("limit", "negative"),
            ("week_start", "Weekly"),
            ("time_zone", "Mars/Olympus"),
            ("thresholds", "ascending"),
        ] {
            assert!(
                found
                    .iter()
                    .any(|(path, detail)| path.contains(attr) && detail.contains(says)),
                "{attr}: {found:?}"
            );
        }
        assert!(errors(&config(vec![])).is_empty());
    }

    #[test]
    fn a_label_selector_is_checked_by_element_with_the_apis_label_rules() {
        let selector = Value::object([
            (
                "match_labels",
                Value::object([("bad key!", Value::string("x"))]),
            ),
            (
                "match_expressions",
                Value::Seq(vec![
                    Value::object([
                        ("key", Value::string("team")),
                        ("operator", Value::string("Exists")),
                        ("values", Value::Null),
                    ]),
                    Value::object([
                        ("key", Value::string("tier")),
                        ("operator", Value::string("In")),
                        ("values", Value::Null),
                    ]),
                ]),
            ),
        ]);
        let mut d = Diagnostics::default();
        validate_selector(&selector, &Path::attr("namespace_selector"), &mut d);
        assert_eq!(d.0.len(), 2, "{:?}", d.0);
        assert!(
            d.0[0].detail.contains("not a label key"),
            "{}",
            d.0[0].detail
        );
        assert!(
            d.0[1]
                .detail
                .contains("namespace_selector.match_expressions[1].operator In needs"),
            "{}",
            d.0[1].detail
        );
        assert_eq!(
            d.0[1].attribute,
            Some(
                Path::attr("namespace_selector")
                    .then("match_expressions")
                    .index(1)
                    .then("operator")
                    .to_proto()
            )
        );
    }
}
