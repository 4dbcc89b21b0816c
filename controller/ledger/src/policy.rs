//! An AIBudget compiled for the data path: which workloads it selects, which models it
//! allows, what it downgrades, its soft limit. Pure; built once per budget change, read on
//! every request.

use std::collections::BTreeMap;

use aigov_api::budget::AIBudgetSpec;
use aigov_api::budget::{FailMode, WorkloadSelector};
use aigov_api::evaluation::EnforcementAction;
use aigov_api::model::ResolvedModel;
use aigov_api::pattern::ModelPattern;
use aigov_api::period::{Calendar, Period, Window, time_zone};
use aigov_api::{AIBudget, ClusterAIBudget, Usd};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::error::{Error, Result};
use crate::key::{self, BudgetKey, Level};

/// The percent of the limit from which `Downgrade` rewrites models when the budget sets no
/// `softLimitPercent`.
pub const DEFAULT_DOWNGRADE_PERCENT: u32 = 90;

/// The calling workload, as the pod watch cache knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// Its service account.
    pub service_account: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// What reports call it (see `gateway::cluster::workload_name`).
    pub workload: String,
}

/// Where a budget's workloads are.
#[derive(Clone, Debug)]
enum Scope {
    /// An AIBudget's: its namespace.
    Namespace(String),
    /// A ClusterAIBudget's: the namespaces this selector matches (empty: all).
    Cluster(LabelSelector),
}

/// An AIBudget or a ClusterAIBudget ready for per-request decisions.
#[derive(Clone, Debug)]
pub struct BudgetPolicy {
    /// Its account key ([`crate::key`]).
    pub key: BudgetKey,
    /// The budget's namespace (empty for a ClusterAIBudget).
    pub namespace: String,
    scope: Scope,
    /// The budget's name.
    pub name: String,
    /// The spec's limit (an extension arrives with the controller's figures).
    pub limit: Usd,
    selector: WorkloadSelector,
    allow: Vec<ModelPattern>,
    deny: Vec<ModelPattern>,
    /// What happens at the limit.
    pub action: EnforcementAction,
    downgrade: Vec<(ModelPattern, String)>,
    /// Percent from which requests are rate-limited, and the rate.
    pub soft_limit: Option<(u32, u32)>,
    /// What the gateway does while the controller is unreachable.
    pub fail_mode: FailMode,
    /// `spec.limitPerValue`: each value of these request-metadata keys is limited to this much
    /// ([`crate::value_limits`]).
    pub value_limits: Vec<(String, Usd)>,
    /// `spec.attribution.require`: request-metadata keys every call must carry.
    pub required_keys: Vec<String>,
    calendar: Calendar,
    tz: TimeZone,
}

/// Whether a budget lets a model through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelVerdict {
    /// Allowed.
    Allowed,
    /// Denied by a `models.deny` pattern.
    Denied(String),
    /// Not matched by any `models.allow` pattern.
    NotAllowed,
}

impl BudgetPolicy {
    /// Compiles an AIBudget (already validated by the API server).
    pub fn from_budget(budget: &AIBudget) -> Result<BudgetPolicy> {
        let namespace = budget
            .metadata
            .namespace
            .clone()
            .ok_or_else(|| Error::Missing("AIBudget".into(), "namespace"))?;
        let name = budget
            .metadata
            .name
            .clone()
            .ok_or_else(|| Error::Missing("AIBudget".into(), "name"))?;
        let key = key::namespaced(&namespace, &name);
        Self::compile(key, Scope::Namespace(namespace), name, &budget.spec)
    }

    /// Compiles a ClusterAIBudget (already validated by the API server).
    pub fn from_cluster_budget(budget: &ClusterAIBudget) -> Result<BudgetPolicy> {
        let name = budget
            .metadata
            .name
            .clone()
            .ok_or_else(|| Error::Missing("ClusterAIBudget".into(), "name"))?;
        Self::from_cluster_spec(
            name,
            &budget.spec.budget,
            budget.spec.namespace_selector.clone(),
        )
    }

    /// Compiles the ClusterAIBudget `name` from its parts.
    pub fn from_cluster_spec(
        name: String,
        spec: &AIBudgetSpec,
        namespace_selector: Option<LabelSelector>,
    ) -> Result<BudgetPolicy> {
        let scope = Scope::Cluster(namespace_selector.unwrap_or_default());
        Self::compile(key::cluster(&name), scope, name, spec)
    }

    fn compile(
        key: BudgetKey,
        scope: Scope,
        name: String,
        spec: &AIBudgetSpec,
    ) -> Result<BudgetPolicy> {
        let patterns = |list: &[String]| -> Result<Vec<ModelPattern>> {
            list.iter()
                .map(|p| ModelPattern::parse(p).map_err(Error::from))
                .collect()
        };
        let rules = spec.models.clone().unwrap_or_default();
        let enforcement = spec.enforcement.clone().unwrap_or_default();
        let downgrade = enforcement
            .downgrade
            .iter()
            .map(|r| Ok((ModelPattern::parse(&r.from)?, r.to.clone())))
            .collect::<Result<Vec<_>>>()?;
        Ok(BudgetPolicy {
            key,
            namespace: match &scope {
                Scope::Namespace(namespace) => namespace.clone(),
                Scope::Cluster(_) => String::new(),
            },
            scope,
            limit: Usd::parse(&spec.limit)?,
            selector: spec.selector.clone().unwrap_or_default(),
            allow: patterns(&rules.allow)?,
            deny: patterns(&rules.deny)?,
            action: enforcement.action,
            downgrade,
            soft_limit: enforcement
                .soft_limit_percent
                .zip(enforcement.soft_limit_requests_per_minute),
            fail_mode: enforcement.fail_mode,
            value_limits: spec.value_limits(),
            required_keys: spec.required_keys().to_vec(),
            calendar: spec.calendar(),
            tz: time_zone(&spec.time_zone)?,
            name,
        })
    }

    /// The level this budget enforces at.
    pub fn level(&self) -> Level {
        match self.scope {
            Scope::Namespace(_) => Level::Namespace,
            Scope::Cluster(_) => Level::Cluster,
        }
    }

    /// How people are told of this budget: `AIBudget team/chat`, `ClusterAIBudget research`.
    pub fn describe(&self) -> String {
        key::describe(&self.key)
    }

    /// True when this ClusterAIBudget covers a namespace with `labels` (an AIBudget covers
    /// only its own namespace, which [`BudgetPolicy::selects`] checks).
    pub fn covers_namespace(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.scope {
            Scope::Namespace(_) => false,
            Scope::Cluster(selector) => label_selector_matches(selector, labels),
        }
    }

    /// How long spend accumulates (`spec.period`).
    pub fn period(&self) -> Period {
        self.calendar.period
    }

    /// The period that contains `at`.
    pub fn window_at(&self, at: Timestamp) -> Result<Window> {
        Ok(self.calendar.window_at(at, &self.tz)?)
    }

    /// True when the budget applies to `workload`: its namespace (an AIBudget's own; a
    /// ClusterAIBudget's namespaces are matched by the caller, who knows their labels: see
    /// [`BudgetPolicy::covers_namespace`]), one of the service accounts (if any are listed),
    /// and the pod selector (if set).
    pub fn selects(&self, workload: &Workload) -> bool {
        let namespace = match &self.scope {
            Scope::Namespace(namespace) => *namespace == workload.namespace,
            Scope::Cluster(_) => true,
        };
        namespace
            && (self.selector.service_accounts.is_empty()
                || self
                    .selector
                    .service_accounts
                    .contains(&workload.service_account))
            && self
                .selector
                .pod_selector
                .as_ref()
                .is_none_or(|s| label_selector_matches(s, &workload.labels))
    }

    /// Whether `model` may be called under this budget: deny wins over allow; an empty
    /// allow list allows everything.
    pub fn model_verdict(&self, model: &ResolvedModel) -> ModelVerdict {
        if let Some(p) = self.deny.iter().find(|p| p.matches_model(model)) {
            return ModelVerdict::Denied(p.as_str().to_owned());
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches_model(model)) {
            return ModelVerdict::NotAllowed;
        }
        ModelVerdict::Allowed
    }

    /// The cheaper model `model` is rewritten to, when this budget downgrades and `spent`
    /// has reached the downgrade point (the soft limit, else 90%).
    pub fn downgrade_target(&self, model: &ResolvedModel, spent: Usd, limit: Usd) -> Option<&str> {
        if self.action != EnforcementAction::Downgrade {
            return None;
        }
        let percent = self
            .soft_limit
            .map_or(DEFAULT_DOWNGRADE_PERCENT, |(p, _)| p);
        if !aigov_api::evaluation::reached(spent, limit, percent) {
            return None;
        }
        self.downgrade
            .iter()
            .find(|(from, _)| from.matches_model(model))
            .map(|(_, to)| to.as_str())
    }

    /// The requests-per-minute cap in force at `spent`, if the soft limit is reached.
    pub fn soft_rate(&self, spent: Usd, limit: Usd) -> Option<u32> {
        self.soft_limit
            .filter(|(percent, _)| aigov_api::evaluation::reached(spent, limit, *percent))
            .map(|(_, rpm)| rpm)
    }
}

/// Kubernetes label-selector semantics: every `matchLabels` pair and every expression.
pub fn label_selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let pairs = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    pairs && expressions
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigov_api::model::resolve;

    fn budget(yaml: &str) -> BudgetPolicy {
        let budget: AIBudget = serde_yaml::from_str(yaml).unwrap();
        BudgetPolicy::from_budget(&budget).unwrap()
    }

    fn workload(sa: &str, labels: &[(&str, &str)]) -> Workload {
        Workload {
            namespace: "team".into(),
            name: "pod".into(),
            service_account: sa.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            workload: "pod".into(),
        }
    }

    const HEAD: &str =
        "apiVersion: aigov.dev/v1alpha1\nkind: AIBudget\nmetadata: {name: b, namespace: team}\n";

    #[test]
    fn an_empty_selector_selects_every_workload_in_the_namespace_only() {
        let b = budget(&format!("{HEAD}spec: {{limit: '10'}}"));
        assert!(b.selects(&workload("default", &[])));
        let other = Workload {
            namespace: "elsewhere".into(),
            ..workload("default", &[])
        };
        assert!(!b.selects(&other));
    }

    #[test]
    fn a_cluster_budget_covers_the_namespaces_its_selector_matches_and_selects_within_them() {
        let cap: ClusterAIBudget = serde_yaml::from_str(
            "apiVersion: aigov.dev/v1alpha1\nkind: ClusterAIBudget\nmetadata: {name: research}\nspec:\n  limit: '1.00'\n  namespaceSelector: {matchLabels: {unit: research}}\n  selector: {serviceAccounts: [chat]}\n",
        )
        .unwrap();
        let cap = BudgetPolicy::from_cluster_budget(&cap).unwrap();
        assert_eq!(
            (cap.key.as_str(), cap.level()),
            ("/research", Level::Cluster)
        );
        assert_eq!(cap.describe(), "ClusterAIBudget research");
        let research: BTreeMap<_, _> = [("unit".to_owned(), "research".to_owned())].into();
        assert!(cap.covers_namespace(&research));
        assert!(!cap.covers_namespace(&BTreeMap::new()));
        let elsewhere = Workload {
            namespace: "elsewhere".into(),
            ..workload("chat", &[])
        };
        assert!(cap.selects(&elsewhere));
        assert!(!cap.selects(&workload("other", &[])));
        let every: ClusterAIBudget = serde_yaml::from_str(
            "apiVersion: aigov.dev/v1alpha1\nkind: ClusterAIBudget\nmetadata: {name: all}\nspec: {limit: '5'}\n",
        )
        .unwrap();
        let every = BudgetPolicy::from_cluster_budget(&every).unwrap();
        assert!(every.covers_namespace(&BTreeMap::new()));
        assert!(!budget(&format!("{HEAD}spec: {{limit: '10'}}")).covers_namespace(&research));
    }

    #[test]
    fn service_accounts_and_pod_selector_must_both_match() {
        let b = budget(&format!(
            "{HEAD}spec:\n  limit: '10'\n  selector:\n    serviceAccounts: [chat]\n    podSelector:\n      matchLabels: {{app: chat}}\n      matchExpressions: [{{key: tier, operator: NotIn, values: [batch]}}]\n"
        ));
        assert!(b.selects(&workload("chat", &[("app", "chat")])));
        assert!(!b.selects(&workload("other", &[("app", "chat")])));
        assert!(!b.selects(&workload("chat", &[("app", "web")])));
        assert!(!b.selects(&workload("chat", &[("app", "chat"), ("tier", "batch")])));
    }

    #[test]
    fn deny_wins_over_allow_and_profiles_match_their_model() {
        let b = budget(&format!(
            "{HEAD}spec:\n  limit: '10'\n  models: {{allow: ['anthropic.*'], deny: ['*opus*']}}\n"
        ));
        assert_eq!(
            b.model_verdict(&resolve("us.anthropic.claude-3-5-haiku-20241022-v1:0")),
            ModelVerdict::Allowed
        );
        assert_eq!(
            b.model_verdict(&resolve("anthropic.claude-opus-4-20250514-v1:0")),
            ModelVerdict::Denied("*opus*".into())
        );
        assert_eq!(
            b.model_verdict(&resolve("amazon.nova-micro-v1:0")),
            ModelVerdict::NotAllowed
        );
    }

    #[test]
    fn downgrade_starts_at_the_soft_limit() {
        let b = budget(&format!(
            "{HEAD}spec:\n  limit: '10'\n  enforcement:\n    action: Downgrade\n    downgrade: [{{from: '*sonnet*', to: anthropic.claude-3-haiku-20240307-v1:0}}]\n    softLimitPercent: 80\n    softLimitRequestsPerMinute: 60\n"
        ));
        let sonnet = resolve("anthropic.claude-3-5-sonnet-20240620-v1:0");
        let limit = Usd::parse("10").unwrap();
        assert_eq!(
            b.downgrade_target(&sonnet, Usd::parse("7.99").unwrap(), limit),
            None
        );
        assert_eq!(
            b.downgrade_target(&sonnet, Usd::parse("8").unwrap(), limit),
            Some("anthropic.claude-3-haiku-20240307-v1:0")
        );
        assert_eq!(b.soft_rate(Usd::parse("8").unwrap(), limit), Some(60));
        assert_eq!(b.soft_rate(Usd::parse("7").unwrap(), limit), None);
    }
}
