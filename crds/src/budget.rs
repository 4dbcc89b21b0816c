//! `AIBudget`: a team's spending limit on Bedrock, in its namespace. The schema carries every
//! rule the API server can check (patterns, ranges, CEL), so a bad manifest is refused at
//! `kubectl apply` with a message that names the field.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use kube::KubeSchema;
use kube::core::Rule;
use serde::{Deserialize, Serialize};

use crate::evaluation::{EnforcementAction, Phase};
use crate::period::{Calendar, Period, Rollover, WeekStart};

/// A USD amount as the API accepts it: a plain decimal, up to 6 decimal places.
pub const AMOUNT_REGEX: &str = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,6})?$";
/// A Go-style duration such as `15m`, `1h30m` or `45s`.
pub const DURATION_REGEX: &str = r"^([0-9]+(s|m|h))+$";
/// An SNS topic ARN.
pub const SNS_TOPIC_ARN_REGEX: &str =
    r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$";
/// An IANA zone name's shape (the zone's existence is checked by a CEL rule).
pub const TIME_ZONE_REGEX: &str = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$";
/// A model ID or ARN with no wildcard (a downgrade target).
pub const MODEL_ID_REGEX: &str = r"^[A-Za-z0-9._:/-]+$";

/// The desired state of an `AIBudget`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "aigov.dev",
    version = "v1alpha1",
    kind = "AIBudget",
    plural = "aibudgets",
    shortname = "aib",
    category = "aigov",
    namespaced,
    status = "AIBudgetStatus",
    doc = "A spending limit on Amazon Bedrock for the workloads it selects in its namespace.",
    printcolumn = r#"{"name":"Limit","type":"string","description":"USD per period","jsonPath":".spec.limit"}"#,
    printcolumn = r#"{"name":"Spent","type":"string","description":"USD settled this period","jsonPath":".status.spent"}"#,
    printcolumn = r#"{"name":"Used%","type":"string","description":"Percent of the limit used","jsonPath":".status.percentUsed"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Period","type":"string","priority":1,"jsonPath":".spec.period"}"#,
    printcolumn = r#"{"name":"Resets","type":"string","priority":1,"description":"When spend resets (RFC 3339): a date column would print a future time as <invalid>","jsonPath":".status.periodEnd"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(self.escalation) || size(self.escalation) == 0 || has(self.alerts)").message("escalation steps need alerts to be configured: add spec.alerts (the first channel) before escalation steps").field_path(".escalation"))]
#[x_kube(validation = Rule::new("!has(self.enforcement) || self.enforcement.action != 'Escalate' || (has(self.escalation) && size(self.escalation) > 0)").message("enforcement.action Escalate needs at least one step in spec.escalation").field_path(".escalation"))]
#[x_kube(validation = Rule::new("!has(self.weekStart) || (has(self.period) && self.period == 'Weekly')").message("weekStart applies to a Weekly period only: remove it, or set period: Weekly").field_path(".weekStart"))]
#[x_kube(validation = Rule::new("!has(self.fiscalYearStartMonth) || (has(self.period) && self.period in ['Quarterly', 'Yearly'])").message("fiscalYearStartMonth applies to Quarterly and Yearly periods only: remove it, or set period: Quarterly or Yearly").field_path(".fiscalYearStartMonth"))]
#[x_kube(validation = Rule::new("!has(self.rollover) || !has(self.period) || self.period != 'Credit'").message("rollover carries unused budget into the next period, and a Credit never ends: remove spec.rollover, or choose a period that resets").field_path(".rollover"))]
#[serde(rename_all = "camelCase")]
pub struct AIBudgetSpec {
    /// The most this budget may spend per period, in USD, as a decimal string (`"250.00"`).
    #[schemars(regex(pattern = AMOUNT_REGEX))]
    #[x_kube(validation = Rule::new("self.matches('[1-9]')").message("limit must be greater than zero, e.g. \"250.00\""))]
    pub limit: String,

    /// How long spend accumulates before it starts again at zero: `Daily`, `Weekly`,
    /// `Monthly`, `Quarterly`, `Yearly`, or `Credit`, a prepaid amount that never resets (raising
    /// the limit tops it up).
    #[serde(default)]
    pub period: Period,

    /// The day a `Weekly` period starts on, by its English name (default `Monday`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        description = "The day a `Weekly` period starts on, by its English name (default `Monday`), e.g. `Sunday`."
    )]
    pub week_start: Option<WeekStart>,

    /// The month a fiscal year starts, from 1 (January, the default) to 12: a `Yearly` period
    /// starts on the 1st of it, a `Quarterly` one on the 1st of it and every 3 months after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 12").message("fiscalYearStartMonth is the month the fiscal year starts, from 1 (January) to 12 (December), e.g. 4 for a year from April"))]
    pub fiscal_year_start_month: Option<u8>,

    /// Carries what a period left unused into the next, at most `maxPercent` of the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollover: Option<Rollover>,

    /// The IANA time zone in which periods start at local midnight (default `UTC`), by its
    /// name in the tz database: `Europe/Berlin`, `America/Argentina/Buenos_Aires`,
    /// `Etc/GMT+5`. `Local` (whatever zone a server runs in) is not a zone a budget can use.
    #[serde(default = "default_time_zone")]
    #[schemars(
        description = "The IANA time zone in which periods start at local midnight (default `UTC`), by its name in the tz database: `Europe/Berlin`, `America/Argentina/Buenos_Aires`, `Etc/GMT+5`. `Local` (whatever zone a server runs in) is not a zone a budget can use."
    )]
    #[schemars(regex(pattern = TIME_ZONE_REGEX), length(max = 64))]
    #[x_kube(validation = time_zone_rule())]
    pub time_zone: String,

    /// Which workloads in the namespace this budget meters; empty selects all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,

    /// Which models the selected workloads may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<ModelRules>,

    /// Percents of the limit at which an Event and an alert fire, strictly ascending.
    #[serde(default = "default_thresholds")]
    #[schemars(length(max = 10))]
    #[x_kube(validation = Rule::new("self.all(t, t >= 1 && t <= 100)").message("thresholds are percents of the limit between 1 and 100"))]
    #[x_kube(validation = Rule::new("self.isSorted() && self.all(t, self.exists_one(u, u == t))").message("thresholds must be strictly ascending, e.g. [50, 80, 100]"))]
    pub thresholds: Vec<u32>,

    /// What happens at the limit, and before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,

    /// Where threshold alerts go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Alerts>,

    /// Who is told next when the budget stays at 100% without acknowledgement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub escalation: Vec<EscalationStep>,

    /// Which keys of Bedrock's request metadata this budget's status breaks its spend down by.
    /// Metadata never selects a budget: it only subdivides what the calling pod's budgets spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,

    /// A limit for every distinct value of a request-metadata key (each user, each tenant),
    /// inside this budget's limit and period. (The description below is the same text on one
    /// line, so that `kubectl explain` wraps it as a paragraph.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    #[schemars(
        description = "A limit for every distinct value of a request-metadata key, e.g. [{key: user, limit: \"1.00\"}]: each user (tenant, ...) may spend at most that much this period, inside the budget's own limit, enforced like the limit itself (each call's worst case reserved first, so no value's settled spend passes its limit, across every gateway replica). A call without the key is held to the budget's limit only (require the key with `attribution.require`). A refusal names the key and the value. Up to 100,000 values per budget are tracked this period; at that cap a value that spent nothing is forgotten first, and when every tracked value has spent, a call with a new value is refused (429) until the period ends. Metadata comes from the workload: a forged value can at worst move spend between the caller's own values, never out of this budget."
    )]
    #[x_kube(validation = Rule::new("self.all(l, self.exists_one(m, m.key == l.key))").message("limitPerValue keys must be unique: give each key one limit"))]
    pub limit_per_value: Vec<ValueLimit>,
    /// Charge this budget for calls made around the gateway (straight to Bedrock) by an IAM
    /// principal mapped to this namespace, as the controller finds them in Bedrock's model
    /// invocation logs: the namespace's `aigov.dev/iam-role` annotation, or a ServiceAccount's
    /// `eks.amazonaws.com/role-arn`. Either way such a call raises a `BypassDetected` Event.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub charge_bypass: bool,
}

impl AIBudgetSpec {
    /// The period with its calendar (`weekStart`, `fiscalYearStartMonth`, their defaults).
    pub fn calendar(&self) -> Calendar {
        Calendar {
            period: self.period,
            week_start: self.week_start.unwrap_or_default(),
            fiscal_year_start_month: self
                .fiscal_year_start_month
                .and_then(|m| i8::try_from(m).ok())
                .unwrap_or(1),
        }
    }

    /// `limitPerValue` as (key, limit) pairs; a limit that does not parse (the API server
    /// refuses one) is left out rather than taken for zero.
    pub fn value_limits(&self) -> Vec<(String, crate::Usd)> {
        self.limit_per_value
            .iter()
            .filter_map(|l| Some((l.key.clone(), crate::Usd::parse(&l.limit).ok()?)))
            .collect()
    }

    /// The request-metadata keys every call must carry (`attribution.require`).
    pub fn required_keys(&self) -> &[String] {
        self.attribution.as_ref().map_or(&[], |a| &a.require)
    }
}

/// A limit per value of one request-metadata key (`spec.limitPerValue`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ValueLimit {
    /// The request-metadata key whose every value gets the limit, e.g. `user` or `tenant`.
    #[schemars(regex(pattern = ATTRIBUTION_KEY_REGEX))]
    #[x_kube(validation = Rule::new("!self.startsWith('aigov.')").message("limitPerValue keys under aigov. are the gateway's own pairs: name a key your callers set, e.g. user"))]
    pub key: String,
    /// The most each value may spend per period, in USD, as a decimal string (`"1.00"`).
    #[schemars(regex(pattern = AMOUNT_REGEX))]
    #[x_kube(validation = Rule::new("self.matches('[1-9]')").message("limitPerValue limit must be greater than zero, e.g. \"1.00\""))]
    pub limit: String,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

/// The `timeZone` rule: the name must be one the tz database bundled into this build knows
/// (jiff's copy, which the controller and gateway evaluate periods with). The API server's
/// own check (CEL `getHours`, Go's `time.LoadLocation`) is not used: it accepts `Local`, and
/// whatever the server's zoneinfo holds, which the controller then could not evaluate.
fn time_zone_rule() -> Rule {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|name| format!("'{}'", name.as_str()))
        .collect();
    names.sort();
    let message = concat!(
        "self == 'Local' ? ",
        "'timeZone Local is not accepted (it would be whatever zone a server runs in): name the IANA time zone, e.g. Europe/Berlin or UTC' : ",
        "'timeZone ' + self + ' is not an IANA time zone name: use one such as UTC, Europe/Berlin or America/Argentina/Buenos_Aires'"
    );
    Rule::new(format!("self in [{}]", names.join(", ")))
        .message(kube::core::Message::Expression(message.to_owned()))
}

/// The schema of `selector.podSelector` (see [`label_selector_schema`]).
fn pod_selector_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    label_selector_schema("pods", "a pod")
}

/// The schema of a `namespaceSelector` (see [`label_selector_schema`]).
pub(crate) fn namespace_selector_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    label_selector_schema("namespaces", "a namespace")
}

/// Kubernetes' `LabelSelector` over `what` (plural; `one` names one of them), with the rules
/// the API server applies to its own selectors (label keys and values, the four operators,
/// values only with In and NotIn) and bounds that keep the CEL rules' cost within the API
/// server's limits.
fn label_selector_schema(what: &str, one: &str) -> schemars::Schema {
    use crate::labels::{LABEL_KEY_REGEX, LABEL_KEY_RULES, LABEL_VALUE_REGEX, MAX_LABEL_KEY_LEN};
    let key_ok = |k: &str| format!("{k}.matches('{LABEL_KEY_REGEX}') && {k}.indexOf('/') <= 253");
    let value =
        serde_json::json!({"type": "string", "maxLength": 63, "pattern": LABEL_VALUE_REGEX});
    let schema = serde_json::json!({
        "description": format!("A label selector over {what}; absent means any."),
        "type": "object",
        "nullable": true,
        "properties": {
            "matchLabels": {
                "description": format!("Label key and value pairs {one} must all have."),
                "type": "object",
                "maxProperties": 64,
                "additionalProperties": value,
                "x-kubernetes-validations": [{
                    "rule": format!("self.all(k, {})", key_ok("k")),
                    // A message naming the bad keys (filter, join) is refused as too costly:
                    // the API server cannot bound a map key's length.
                    "message": format!("every matchLabels key must be a label key: {LABEL_KEY_RULES}"),
                }],
            },
            "matchExpressions": {
                "description": format!("Requirements {one} must all meet: key, operator (In, NotIn, Exists, DoesNotExist) and values (one or more for In and NotIn, none for Exists and DoesNotExist)."),
                "type": "array",
                "maxItems": 32,
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": {
                            "description": "The label key.",
                            "type": "string",
                            "maxLength": MAX_LABEL_KEY_LEN,
                            "x-kubernetes-validations": [{"rule": key_ok("self"), "message": LABEL_KEY_RULES}],
                        },
                        "operator": {
                            "description": "In, NotIn, Exists or DoesNotExist.",
                            "type": "string",
                            "enum": crate::labels::OPERATORS,
                        },
                        "values": {
                            "description": "The values for In and NotIn.",
                            "type": "array",
                            "maxItems": 64,
                            "items": value,
                        },
                    },
                    "x-kubernetes-validations": [{
                        "rule": "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
                        "messageExpression": "self.operator in ['In', 'NotIn'] ? 'operator ' + self.operator + ' needs at least one value in values' : 'operator ' + self.operator + ' takes no values: remove values'",
                        "fieldPath": ".values",
                    }],
                },
            },
        },
    });
    schemars::Schema::try_from(schema).expect("a label selector schema is an object")
}

fn default_thresholds() -> Vec<u32> {
    vec![50, 80, 100]
}

/// Selects workloads in the budget's namespace: pods that run as one of the service
/// accounts (if any are listed) and match the pod selector (if one is given).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Service account names; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(regex(pattern = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"))
    )]
    pub service_accounts: Vec<String>,
    /// A label selector over pods; absent means any. Label keys, values and operators follow
    /// Kubernetes' rules (refused at `kubectl apply`); at most 64 `matchLabels` and 32
    /// `matchExpressions` of at most 64 values each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pod_selector_schema")]
    #[schemars(
        description = "A label selector over pods; absent means any. Label keys, values and operators follow Kubernetes' rules (refused at `kubectl apply`); at most 64 `matchLabels` and 32 `matchExpressions` of at most 64 values each."
    )]
    pub pod_selector: Option<LabelSelector>,
}

/// Model allow and deny lists. Patterns are model IDs, profile IDs or ARNs with `*` wildcards;
/// a model must match `allow` (when it is set) and must not match `deny`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelRules {
    /// Only these models may be called; empty allows all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = crate::pattern::PATTERN_REGEX), length(max = 256)))]
    #[x_kube(validation = Rule::new("self.all(p, !p.contains('**'))").message("model patterns use a single * as the wildcard"))]
    pub allow: Vec<String>,
    /// These models may never be called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = crate::pattern::PATTERN_REGEX), length(max = 256)))]
    #[x_kube(validation = Rule::new("self.all(p, !p.contains('**'))").message("model patterns use a single * as the wildcard"))]
    pub deny: Vec<String>,
}

/// Enforcement: the action at 100% and the soft limit before it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("self.action != 'Downgrade' || (has(self.downgrade) && size(self.downgrade) > 0)").message("action Downgrade needs at least one model in enforcement.downgrade").field_path(".downgrade"))]
#[x_kube(validation = Rule::new("self.action == 'Downgrade' || !has(self.downgrade) || size(self.downgrade) == 0").message("enforcement.downgrade is only used with action Downgrade: remove it or set action: Downgrade").field_path(".downgrade"))]
#[x_kube(validation = Rule::new("has(self.softLimitPercent) == has(self.softLimitRequestsPerMinute)").message("softLimitPercent and softLimitRequestsPerMinute go together: set both or neither").field_path(".softLimitRequestsPerMinute"))]
#[serde(rename_all = "camelCase")]
pub struct Enforcement {
    /// What happens when spend reaches the limit.
    #[serde(default)]
    pub action: EnforcementAction,
    /// From this percent of the limit on, requests are rate-limited (429 ThrottlingException).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 99))]
    pub soft_limit_percent: Option<u32>,
    /// Past `softLimitPercent`, the most requests per minute the budget admits as a whole,
    /// across every gateway replica and all the workloads it selects: each replica's token
    /// bucket fills at its share of the rate, which the controller sets by the calls each
    /// replica sees (`aigov_ledger::rates`). (The description below is the
    /// same text on one line, so that `kubectl explain` wraps it as a paragraph.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    #[schemars(
        description = "Past `softLimitPercent`, the most requests per minute the budget admits as a whole, across every gateway replica and all the workloads it selects. Each replica fills its own token bucket at its share of the rate, which the controller sets in proportion to the calls each replica sees (within seconds of traffic moving), so the shares add up to the rate; each replica allows a burst of 10 seconds' worth of its share (at least 1 request). A request over it is refused with 429 ThrottlingException and Retry-After. Without the controller, a replica keeps its last share."
    )]
    pub soft_limit_requests_per_minute: Option<u32>,
    /// Which cheaper model replaces which, when the action is Downgrade.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub downgrade: Vec<DowngradeRule>,
    /// What the gateway does when it cannot reach the controller.
    #[serde(default)]
    pub fail_mode: FailMode,
}

/// One downgrade: requests for models matching `from` go to `to` instead.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.from != self.to").message("a downgrade must change the model: from and to are the same").field_path(".to"))]
pub struct DowngradeRule {
    /// A model pattern (`*` wildcards allowed).
    #[schemars(regex(pattern = crate::pattern::PATTERN_REGEX), length(max = 256))]
    pub from: String,
    /// The model ID to use instead (no wildcards).
    #[schemars(regex(pattern = MODEL_ID_REGEX), length(max = 256))]
    pub to: String,
}

/// A request-metadata key a budget can break its spend down by: Bedrock's key characters
/// (letters, digits and `_ . : / = + @ $ # , -`, here without whitespace), at most 128 of them.
pub const ATTRIBUTION_KEY_REGEX: &str = r"^[A-Za-z0-9_.:/=+@$#,-]{1,128}$";
/// How many keys one budget breaks its spend down by.
pub const MAX_ATTRIBUTION_KEYS: usize = 5;

/// Breaking a budget's spend down by the metadata its callers put on each request
/// (Converse `requestMetadata`, the `X-Amzn-Bedrock-Request-Metadata` header).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Attribution {
    /// The request-metadata keys whose values `status.attribution` ranks. (The description
    /// below is the same text on one line, so that `kubectl explain` wraps it as a paragraph.)
    #[serde(default)]
    #[schemars(length(max = 5), inner(length(min = 1, max = 128)))]
    #[schemars(
        description = "The request-metadata keys (up to 5, e.g. [feature, user, tenant]) whose values `status.attribution` ranks by spend this period: the top 10 values with their spend, calls and refusals, the rest folded into `(other)` and calls without the key into `(none)`; finished periods keep their top 5 in `status.history`. Metadata only subdivides the spend this budget already meters: which budgets apply to a call is decided by the calling pod alone, never by its metadata, so a caller cannot choose or escape a budget with it. Keys are Bedrock's key characters without whitespace (letters, digits and _ . : / = + @ $ # , -), at most 128 of them; keys under `aigov.` are the gateway's own."
    )]
    #[x_kube(validation = attribution_key_rule())]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('aigov.'))").message("attribution keys under aigov. are the gateway's own pairs: name a key your callers set, e.g. feature"))]
    #[x_kube(validation = Rule::new("self.all(k, self.exists_one(j, j == k))").message("attribution keys must be unique: list each key once"))]
    pub keys: Vec<String>,

    /// Request-metadata keys every call must carry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), inner(length(min = 1, max = 128)))]
    #[schemars(
        description = "Request-metadata keys every call this budget meters must carry, e.g. [user]: a call without one is refused with Bedrock's 400 ValidationException naming the key, before anything is reserved or charged (it counts as a refused request). Same key characters as `keys`."
    )]
    #[x_kube(validation = Rule::new(format!("self.all(k, k.matches('{ATTRIBUTION_KEY_REGEX}'))")).message("required keys are request-metadata keys: letters, digits and _ . : / = + @ $ # , - only (no spaces), e.g. user"))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('aigov.'))").message("required keys under aigov. are the gateway's own pairs: name a key your callers set, e.g. user"))]
    pub require: Vec<String>,
}

/// The rule on each attribution key: [`ATTRIBUTION_KEY_REGEX`], with a message saying what it
/// allows.
fn attribution_key_rule() -> Rule {
    Rule::new(format!("self.all(k, k.matches('{ATTRIBUTION_KEY_REGEX}'))")).message(
        "attribution keys are request-metadata keys: letters, digits and _ . : / = + @ $ # , - only (no spaces), e.g. feature or tenant_id",
    )
}

/// What the gateway does while the controller is unreachable.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum FailMode {
    /// Spend only what was already granted, then refuse.
    #[default]
    Closed,
    /// Keep serving and reconcile the spend when the controller is back.
    Open,
}

/// Where threshold alerts go, once per threshold per period.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("has(self.snsTopicArn) || has(self.webhookSecretRef)").message("alerts need a channel: set snsTopicArn, webhookSecretRef, or both"))]
#[serde(rename_all = "camelCase")]
pub struct Alerts {
    /// The SNS topic to publish to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SNS_TOPIC_ARN_REGEX))]
    pub sns_topic_arn: Option<String>,
    /// A Secret key holding a Slack-compatible webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_ref: Option<SecretKeyRef>,
    /// The least time between two alerts of this budget (a Go duration, default `15m`).
    #[serde(default = "default_cooldown")]
    #[schemars(regex(pattern = DURATION_REGEX))]
    pub cooldown: String,
}

fn default_cooldown() -> String {
    "15m".to_owned()
}

/// A key in a Secret in the budget's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"))]
    pub name: String,
    /// The key within it.
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(max = 253))]
    pub key: String,
}

/// One escalation step: after `after` at 100% without acknowledgement, notify these channels.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.snsTopicArn) || has(self.webhookSecretRef)").message("an escalation step needs a channel: set snsTopicArn or webhookSecretRef"))]
#[serde(rename_all = "camelCase")]
pub struct EscalationStep {
    /// How long the budget must have been at 100% (a Go duration such as `30m`).
    #[schemars(regex(pattern = DURATION_REGEX))]
    pub after: String,
    /// The SNS topic to notify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SNS_TOPIC_ARN_REGEX))]
    pub sns_topic_arn: Option<String>,
    /// A Secret key holding the webhook URL to notify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_ref: Option<SecretKeyRef>,
}

/// What the controller observed. Amounts are exact USD decimal strings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AIBudgetStatus {
    /// The spec generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the budget stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The current period's first instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_start: Option<String>,
    /// The current period's end: when spend resets (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_end: Option<String>,
    /// The limit in force: the spec's, plus what was carried into this period, plus any
    /// extension (USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_limit: Option<String>,
    /// What `spec.rollover` carried into this period from the one before, part of
    /// `effectiveLimit` (USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_over: Option<String>,
    /// Settled spend this period (USD, exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent: Option<String>,
    /// Held by the metering gateways and not yet spent: their slices of headroom, out of
    /// which their calls in flight reserve their worst cases (USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<String>,
    /// `reserved` by gateway replica, most first. A replica not heard from for a few seconds
    /// (killed, cut off) is marked silent: what it holds still counts, since it may be alive
    /// and spending, until it is returned at `returnsAt` (the controller's `--gateway-expiry`
    /// after it was last heard from; a `HoldingsReturned` Event says so).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holdings: Vec<GatewayHolding>,
    /// Settled spend as a percent of the effective limit, rounded down to 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_used: Option<String>,
    /// Projected spend at the period's end at the current rate (USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<String>,
    /// The dearest single call this period (USD): when less than this is left and a call is
    /// refused for it, the budget counts as exhausted (see `BudgetExhausted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub largest_call: Option<String>,
    /// Tokens this period, by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenCounts>,
    /// Requests settled this period.
    #[serde(default)]
    pub requests: u64,
    /// Requests refused or rate-limited this period.
    #[serde(default)]
    pub throttled_requests: u64,
    /// Calls this period that no gateway reported (a gateway killed after Bedrock answered)
    /// and that the controller charged from Bedrock's model invocation logs: part of
    /// `requests` and `spent`, shown apart (see `RecoveredCalls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<RecoveredCalls>,
    /// Calls this period made around the gateway by a principal mapped to this namespace and
    /// charged to this budget (`spec.chargeBypass`): part of `requests` and `spent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass: Option<RecoveredCalls>,
    /// The models that spent most this period, most first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_models: Vec<ModelSpend>,
    /// The workloads that spent most this period, most first (see `WorkloadSpend`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_workloads: Vec<WorkloadSpend>,
    /// A `ClusterAIBudget`'s namespaces that spent most this period, most first (absent on an
    /// `AIBudget`, whose workloads all run in its namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_namespaces: Vec<NamespaceSpend>,
    /// Per key of `spec.attribution.keys`, the values that spent most this period (see
    /// `KeyAttribution`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attribution: Vec<KeyAttribution>,
    /// Per key of `spec.limitPerValue`, how many values are at their limit and the ones that
    /// spent most (see `ValueLimitStatus`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_limits: Vec<ValueLimitStatus>,
    /// Ready, ThresholdCrossed, BudgetExhausted, Throttling, Escalated, AlertDeliveryFailing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Recent finished periods, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PeriodSummary>,
    /// Thresholds already crossed (and announced) this period, so a restart does not repeat
    /// an Event or an alert.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds_crossed: Vec<u32>,
    /// A temporary extension in force this period (from the `aigov.dev/extension` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<ExtensionStatus>,
    /// Escalation progress this period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationStatus>,
    /// Per metering gateway, the last usage record counted in `spent`: a restarted controller
    /// or a new leader skips what gateways re-send up to here, so nothing is counted twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ledger: Vec<LedgerWatermark>,
    /// Per key of `spec.limitPerValue`, every value's spend this period as the ledger counted
    /// it (with `ledger`'s watermarks), so a new leader enforces each value's limit from where
    /// the last one left off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub value_ledger: Vec<ValueLedger>,
    /// The alert outbox: every alert is recorded here in the same write that records what it
    /// tells (a threshold crossed, say), delivered from here (by whichever replica leads), and
    /// removed once delivered, so a failed delivery, a restart or a failover never loses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertOutbox>,
}

/// Alerts not yet delivered, and the latest delivered (for de-duplication and the cooldown).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertOutbox {
    /// Alerts waiting for delivery, oldest first: retried with backoff until delivered or until
    /// the controller's retry horizon (`--alert-retry-horizon`, 24h by default) has passed since
    /// `createdAt`. At most 32: past that the oldest non-urgent one is dropped (a Warning Event
    /// `AlertDropped`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingAlert>,
    /// The latest deliveries, newest first (at most 20, none older than the cooldown or an
    /// hour, whichever is longer): an alert whose ID is here is never sent again, and the
    /// newest per channel starts its cooldown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivered: Vec<DeliveredAlert>,
}

/// Where an alert goes: exactly one of the two.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertChannel {
    /// An SNS topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns_topic_arn: Option<String>,
    /// A Secret key (in the budget's namespace) holding a webhook URL; the URL itself is never
    /// written anywhere but the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_ref: Option<AlertSecretRef>,
}

/// A Secret key named by an alert channel.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct AlertSecretRef {
    /// The Secret's name.
    pub name: String,
    /// The key within it.
    pub key: String,
}

/// One alert waiting for delivery.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingAlert {
    /// Unique per alert: what it tells (`threshold50`, `exhausted`, `escalation1`) and a hash
    /// of the budget's UID, the period start, that and the channel. Sent with the alert
    /// (webhook header `X-Aigov-Alert-Ids`, SNS message attribute `aigov.alert-ids`) so a
    /// receiver can de-duplicate too.
    pub id: String,
    /// Where to.
    pub channel: AlertChannel,
    /// The one-line subject (SNS subject, the webhook text's first line).
    pub subject: String,
    /// The text.
    pub message: String,
    /// Goes out at once, cooldown or not (an exhausted budget, the 100% threshold, an
    /// escalation step), taking along the channel's other pending alerts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub urgent: bool,
    /// When it was recorded (RFC 3339).
    pub created_at: String,
    /// Delivery attempts that failed so far.
    #[serde(default)]
    pub attempts: u32,
    /// No attempt before this (RFC 3339): the backoff after a failure (1s doubling, capped by
    /// `--alert-retry-max-backoff`, 5m by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// What the last failed attempt said (never the webhook URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One alert delivered.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredAlert {
    /// The alert's ID (see `PendingAlert.id`).
    pub id: String,
    /// Where it went.
    pub channel: AlertChannel,
    /// When the channel accepted it (RFC 3339).
    pub delivered_at: String,
    /// The attempts it took (1 when the first succeeded).
    pub attempts: u32,
}

/// A temporary raise of the limit for the rest of one period.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionStatus {
    /// USD added to the spec's limit.
    pub amount: String,
    /// The period it applies to (its start, RFC 3339).
    pub period_start: String,
    /// Who or what asked for it (the annotation's value after the amount, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How far escalation has gone this period.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EscalationStatus {
    /// When spend reached the limit (RFC 3339).
    pub limit_reached_at: String,
    /// How many `spec.escalation` steps have been notified.
    pub steps_notified: u32,
    /// Who acknowledged (the `aigov.dev/acknowledged` annotation), stopping further steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
}

/// What one metering gateway replica holds of a budget.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayHolding {
    /// The gateway process (pod name and start nonce).
    pub gateway: String,
    /// What it holds (USD): its slice of headroom, calls in flight included.
    pub reserved: String,
    /// What its calls in flight reserve of that (their worst cases, USD); the rest is headroom
    /// it may spend without asking the controller.
    pub in_flight: String,
    /// When it was last heard from, if that was more than a few seconds ago (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_since: Option<String>,
    /// When a silent replica's holdings return to the budget (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns_at: Option<String>,
}

/// The last usage record of one gateway counted in a budget's spend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerWatermark {
    /// The gateway process (pod name and start nonce).
    pub gateway: String,
    /// Its last record counted.
    pub sequence: u64,
}

/// Token counts by kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenCounts {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Cache-read tokens.
    pub cache_read: u64,
    /// Cache-write tokens (all TTLs).
    pub cache_write: u64,
}

/// One model's share of a period's spend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpend {
    /// The foundation model (or what was requested, if unresolvable).
    pub model: String,
    /// USD.
    pub spent: String,
    /// Requests.
    pub requests: u64,
}

/// One workload's share of a period's spend. A workload is what a team would call it: the
/// pod's `app.kubernetes.io/name` or `app` label, else its controller (a Deployment's name for
/// its ReplicaSets' pods), else the pod's name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpend {
    /// The workload's name (in the budget's namespace).
    pub workload: String,
    /// USD.
    pub spent: String,
    /// Requests (refused ones included).
    pub requests: u64,
    /// Requests refused or rate-limited.
    #[serde(default)]
    pub throttled_requests: u64,
}

/// Calls charged from Bedrock's model invocation logs rather than a gateway's report: made
/// through a gateway (they carry its `aigov.budgets` stamp) that never reported them, found
/// once past the ledger's acknowledgement horizon, and charged exactly once.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveredCalls {
    /// Calls recovered this period.
    pub calls: u64,
    /// What they cost (USD, exact).
    pub spent: String,
}

/// One namespace's share of a `ClusterAIBudget`'s spend this period.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSpend {
    /// The namespace.
    pub namespace: String,
    /// USD.
    pub spent: String,
    /// Requests (refused ones included).
    pub requests: u64,
    /// Requests refused or rate-limited.
    #[serde(default)]
    pub throttled_requests: u64,
}

/// A finished period.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeriodSummary {
    /// First instant (RFC 3339).
    pub start: String,
    /// End (RFC 3339).
    pub end: String,
    /// USD spent.
    pub spent: String,
    /// USD limit in force at the end.
    pub limit: String,
    /// Requests settled.
    pub requests: u64,
    /// Requests refused or rate-limited.
    pub throttled_requests: u64,
    /// The models that spent most in the period, most first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_models: Vec<ModelSpend>,
    /// The workloads that spent most in the period, most first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_workloads: Vec<WorkloadSpend>,
    /// Per attribution key, the period's top 5 values, then `(other)` and `(none)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attribution: Vec<KeyAttribution>,
}

/// The value that stands for every value not listed (a value Bedrock accepts cannot contain
/// parentheses, so no caller's value is mistaken for it).
pub const OTHER_VALUE: &str = "(other)";
/// The value that stands for calls without the key.
pub const NONE_VALUE: &str = "(none)";

/// One request-metadata key's breakdown of a period's spend. The listed values' figures are
/// exact: a value is listed only when the controller counted it from its first call of the
/// period. `(other)` holds the values not listed (past the top ones shown, past the 100
/// values tracked per key, or first seen after a controller restart found `(other)` in use);
/// `(none)` the calls without the key. Together they add up to the budget's spend and calls.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyAttribution {
    /// The key (from `spec.attribution.keys`).
    pub key: String,
    /// The values that spent most, most first, then `(other)` and `(none)` when they have calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<ValueSpend>,
}

/// One key of `spec.limitPerValue` this period.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueLimitStatus {
    /// The key.
    pub key: String,
    /// Each value's limit, USD.
    pub limit: String,
    /// Values tracked this period (that spent, or hold a reservation).
    #[serde(default)]
    pub values: u64,
    /// Values whose spend has reached the limit.
    #[serde(default)]
    pub at_limit: u64,
    /// The values that spent most, most first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<ValueSpent>,
}

/// One value's spend under a per-value limit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueSpent {
    /// The value.
    pub value: String,
    /// USD this period.
    pub spent: String,
}

/// The ledger's record of one per-value key's spend this period.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueLedger {
    /// The key.
    pub key: String,
    /// Value → USD spent this period.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub spent: BTreeMap<String, String>,
    /// False when values that spent did not fit in the status (it holds at most 256 KiB of
    /// them per budget): a new leader then refuses the values it does not find here for the
    /// rest of the period rather than take them for unspent.
    #[serde(default = "complete_by_default")]
    pub complete: bool,
}

fn complete_by_default() -> bool {
    true
}

/// One value's share of a period's spend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueSpend {
    /// The value (or `(other)`, `(none)`).
    pub value: String,
    /// USD.
    pub spent: String,
    /// Requests (refused ones included).
    pub requests: u64,
    /// Requests refused or rate-limited.
    #[serde(default)]
    pub throttled_requests: u64,
}
