//! The organisation's kinds, cluster-scoped: `ClusterAIBudget` (an AIBudget's spec over the
//! namespaces a label selector picks, enforced together with every budget inside them) and
//! `AIBudgetTemplate` (one AIBudget kept in every namespace a selector picks).
//!
//! Both carry [`AIBudgetSpec`] whole, so the API server applies every AIBudget rule to them
//! with the same messages.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::Usd;
use crate::budget::{AIBudgetSpec, AIBudgetStatus};

/// Annotation on a namespace that sets the limit of the budget an [`AIBudgetTemplate`] stamps
/// into it (a USD amount, e.g. `"1200.00"`), instead of the template's.
pub const BUDGET_LIMIT_ANNOTATION: &str = "aigov.dev/budget-limit";
/// Label on every AIBudget a template keeps: the template's name.
pub const TEMPLATE_LABEL: &str = "aigov.dev/template";

/// The desired state of a `ClusterAIBudget`: an AIBudget's spec (limit, period, selector,
/// models, enforcement, alerts, escalation, attribution) plus the namespaces it covers.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "aigov.dev",
    version = "v1alpha1",
    kind = "ClusterAIBudget",
    plural = "clusteraibudgets",
    shortname = "caib",
    category = "aigov",
    status = "AIBudgetStatus",
    doc = "A spending limit on Amazon Bedrock over every namespace it selects: a call is admitted only if it fits in this budget and in every AIBudget that selects it.",
    printcolumn = r#"{"name":"Limit","type":"string","description":"USD per period","jsonPath":".spec.limit"}"#,
    printcolumn = r#"{"name":"Spent","type":"string","description":"USD settled this period","jsonPath":".status.spent"}"#,
    printcolumn = r#"{"name":"Used%","type":"string","description":"Percent of the limit used","jsonPath":".status.percentUsed"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Period","type":"string","priority":1,"jsonPath":".spec.period"}"#,
    printcolumn = r#"{"name":"Resets","type":"string","priority":1,"description":"When spend resets (RFC 3339)","jsonPath":".status.periodEnd"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAIBudgetSpec {
    /// The namespaces whose workloads this budget governs, by their labels; absent or empty
    /// selects every namespace. `selector` then narrows it to service accounts and pod labels
    /// within them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::budget::namespace_selector_schema")]
    pub namespace_selector: Option<LabelSelector>,
    /// Everything else, as in an AIBudget.
    #[serde(flatten)]
    pub budget: AIBudgetSpec,
}

/// The desired state of an `AIBudgetTemplate`: the AIBudget every namespace it selects gets.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "aigov.dev",
    version = "v1alpha1",
    kind = "AIBudgetTemplate",
    plural = "aibudgettemplates",
    shortname = "aibt",
    category = "aigov",
    status = "AIBudgetTemplateStatus",
    doc = "Keeps one AIBudget in every namespace it selects: created when a namespace starts matching, updated with the template, deleted when the namespace stops matching or the template is deleted.",
    printcolumn = r#"{"name":"Budget","type":"string","jsonPath":".spec.budget.name"}"#,
    printcolumn = r#"{"name":"Limit","type":"string","description":"USD per period, unless a namespace overrides it","jsonPath":".spec.budget.spec.limit"}"#,
    printcolumn = r#"{"name":"Budgets","type":"integer","description":"AIBudgets kept","jsonPath":".status.budgets"}"#,
    printcolumn = r#"{"name":"Overridden","type":"integer","description":"Namespaces that set their own limit","jsonPath":".status.overriddenCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AIBudgetTemplateSpec {
    /// The namespaces that get the budget, by their labels; absent or empty selects every
    /// namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::budget::namespace_selector_schema")]
    pub namespace_selector: Option<LabelSelector>,
    /// The AIBudget stamped into each selected namespace.
    pub budget: BudgetTemplate,
}

/// The AIBudget a template stamps: its name, its labels, its spec.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BudgetTemplate {
    /// The AIBudget's name in every namespace (a DNS subdomain, e.g. `team-default`).
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
    /// Labels the AIBudget carries (the controller adds `aigov.dev/template`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("!('aigov.dev/template' in self)").message("the label aigov.dev/template is the controller's own: remove it from budget.labels"))]
    pub labels: BTreeMap<String, String>,
    /// The AIBudget's spec; a namespace's `aigov.dev/budget-limit` annotation replaces
    /// `limit`.
    pub spec: AIBudgetSpec,
}

/// What an `AIBudgetTemplate` keeps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AIBudgetTemplateStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// AIBudgets this template keeps.
    #[serde(default)]
    pub budgets: u32,
    /// How many namespaces set their own limit (`aigov.dev/budget-limit`).
    #[serde(default)]
    pub overridden_count: u32,
    /// The namespaces that set their own limit, with it (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<NamespaceOverride>,
    /// Namespaces where this template cannot keep its budget, and why (another template
    /// keeps an AIBudget of the same name there, or one was made by hand; at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<TemplateConflict>,
    /// Ready, Conflict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A namespace's own limit for a template's budget.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceOverride {
    /// The namespace.
    pub namespace: String,
    /// The limit its annotation sets (USD), or what was wrong with the annotation.
    pub limit: String,
}

/// A namespace where a template's budget is kept by something else.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateConflict {
    /// The namespace.
    pub namespace: String,
    /// Who keeps the AIBudget of that name there: `AIBudgetTemplate NAME`, or `a person`.
    pub kept_by: String,
}

impl ClusterAIBudget {
    /// The AIBudget this cap is governed as: its metadata (no namespace), its budget spec and
    /// its status. The controller reconciles a cap as this and reports show it as this; which
    /// namespaces it covers is `spec.namespaceSelector`'s business alone.
    pub fn as_budget(&self) -> crate::AIBudget {
        let mut metadata = self.metadata.clone();
        metadata.namespace = None;
        crate::AIBudget {
            metadata,
            spec: self.spec.budget.clone(),
            status: self.status.clone(),
        }
    }
}

/// The limit a [`BUDGET_LIMIT_ANNOTATION`] sets, or why it sets none (said in the template's
/// status, and the template's own limit applies).
pub fn annotated_limit(text: &str) -> Result<Usd, String> {
    let why = |reason: &str| {
        format!(
            "{BUDGET_LIMIT_ANNOTATION} {text:?} is not a limit: {reason}; write a USD amount such as \"1200.00\""
        )
    };
    match Usd::parse(text) {
        Ok(limit) if limit > Usd::ZERO => Ok(limit),
        Ok(_) => Err(why("it must be greater than zero")),
        Err(crate::Error::InvalidAmount { reason, .. }) => Err(why(reason)),
        Err(other) => Err(why(&other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_limit_annotation_is_a_positive_amount_and_a_bad_one_says_why() {
        assert_eq!(annotated_limit("1200.00"), Ok(Usd::parse("1200").unwrap()));
        assert_eq!(annotated_limit("0.5"), Ok(Usd::parse("0.50").unwrap()));
        for bad in ["", "0", "0.00", "-1", "1.", "1,200", "$5"] {
            let why = annotated_limit(bad).unwrap_err();
            assert!(
                why.contains("aigov.dev/budget-limit") && why.contains("1200.00"),
                "{why}"
            );
        }
    }
}
