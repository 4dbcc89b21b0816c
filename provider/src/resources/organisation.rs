//! The organisation's budgets, cluster-scoped: `aigov_cluster_budget` (a `ClusterAIBudget`: an
//! AIBudget's spec over the namespaces a label selector picks) and `aigov_budget_template` (an
//! `AIBudgetTemplate`: one AIBudget kept in every namespace a selector picks), so the platform
//! team declares the organisation's caps beside its infrastructure and reviews them in pull
//! requests. One resource implementation serves both kinds; the budget spec they share is
//! `budget_spec`'s.

use std::fmt::Debug;
use std::marker::PhantomData;

use aigov_api::budget::AIBudgetStatus;
use aigov_api::labels;
use aigov_api::organisation::{
    AIBudgetTemplate, AIBudgetTemplateSpec, BudgetTemplate, ClusterAIBudget, ClusterAIBudgetSpec,
    TEMPLATE_LABEL,
};
use async_trait::async_trait;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube::core::ClusterResourceScope;
use rust_decimal::Decimal;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::budget_spec::{self, selector_state, spec_state, to_selector, to_spec};
use super::pricing_override::FIELD_MANAGER;
use super::{Resource, already_exists, unset_if_empty};
use crate::Error;
use crate::config::Clients;
use crate::diag::{Diagnostics, Path};
use crate::schema::{Attribute, Block, Type};
use crate::value::Value;

/// What differs between the two kinds; the rest is [`Organisation`].
pub trait Kind:
    kube::Resource<Scope = ClusterResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The HCL type name.
    const TYPE_NAME: &'static str;
    /// What the resource is, for messages (`a cluster budget`).
    const WHAT: &'static str;
    /// The computed attributes read from the object's status.
    const STATUS: &'static [&'static str];
    /// What the registry docs say the resource is.
    const DESCRIPTION: &'static str;
    /// The kind's own attributes (after `id` and `name`), the status ones included.
    fn own_attributes() -> Vec<Attribute>;
    /// Plan-time checks of the kind's own attributes.
    fn validate_own(config: &Value, diags: &mut Diagnostics);
    /// The object for a planned state.
    fn object(name: &str, planned: &Value) -> Self;
    /// Sets the object's spec from a planned state.
    fn set_spec(&mut self, planned: &Value);
    /// The state's own and status attributes for the object.
    fn own_state(&self, known: &Value) -> Vec<(&'static str, Value)>;
}

/// The resource for one kind.
pub struct Organisation<K>(PhantomData<K>);

impl<K> Default for Organisation<K> {
    fn default() -> Self {
        Organisation(PhantomData)
    }
}

fn name_of(v: &Value) -> &str {
    v.get("name").as_str().unwrap_or_default()
}

fn state<K: Kind>(object: &K, known: &Value) -> Value {
    let name = object.meta().name.clone().unwrap_or_default();
    let mut state = vec![("id", Value::string(&name)), ("name", Value::string(&name))];
    state.extend(object.own_state(known));
    Value::object(state)
}

async fn api<K: Kind>(clients: &Clients) -> Result<Api<K>, Error> {
    Ok(Api::all(clients.kube().await?))
}

fn params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

#[async_trait]
impl<K: Kind> Resource for Organisation<K> {
    fn type_name(&self) -> &'static str {
        K::TYPE_NAME
    }

    fn schema(&self) -> Block {
        let mut attributes = vec![
            Attribute::computed("id", Type::String, "The object's name."),
            Attribute::required(
                "name",
                Type::String,
                "The object's name (a DNS subdomain, cluster-wide).",
            )
            .force_new(),
        ];
        attributes.extend(K::own_attributes());
        attributes.extend(budget_spec::attributes());
        let mut blocks = vec![budget_spec::selector_block(
            "namespace_selector",
            "The namespaces it covers, by their labels; absent or empty selects every namespace.",
        )];
        blocks.extend(budget_spec::blocks());
        Block {
            description: K::DESCRIPTION,
            attributes,
            blocks,
        }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        budget_spec::validate_object_name(config.get("name"), &Path::attr("name"), diags);
        budget_spec::validate_selector(
            config.get("namespace_selector"),
            &Path::attr("namespace_selector"),
            diags,
        );
        K::validate_own(config, diags);
        budget_spec::validate_spec(config, diags);
    }

    fn plan(&self, _clients: &Clients, planned: &mut Value, prior: &Value) {
        planned.set("id", planned.get("name").clone());
        budget_spec::plan_status(planned, prior, K::STATUS);
    }

    async fn create(&self, clients: &Clients, planned: &Value) -> Result<Value, Error> {
        let name = name_of(planned);
        match api::<K>(clients)
            .await?
            .create(&params(), &K::object(name, planned))
            .await
        {
            Ok(created) => Ok(state(&created, planned)),
            Err(kube::Error::Api(e)) if e.code == 409 => Err(already_exists(
                K::TYPE_NAME,
                &format!("{} {name:?}", K::kind(&())),
                name,
            )),
            Err(e) => Err(clients.kube_error(e)),
        }
    }

    async fn read(&self, clients: &Clients, state_now: &Value) -> Result<Option<Value>, Error> {
        Ok(api::<K>(clients)
            .await?
            .get_opt(name_of(state_now))
            .await
            .map_err(|e| clients.kube_error(e))?
            .map(|o| state(&o, state_now)))
    }

    /// Replaces the whole spec (so what the configuration dropped is dropped) and keeps the
    /// metadata; the read and the write are one optimistic transaction (`resourceVersion`), so
    /// a concurrent change fails the apply instead of being overwritten.
    async fn update(
        &self,
        clients: &Clients,
        _prior: &Value,
        planned: &Value,
    ) -> Result<Value, Error> {
        let api = api::<K>(clients).await?;
        let name = name_of(planned);
        let mut object = api.get(name).await.map_err(|e| clients.kube_error(e))?;
        object.set_spec(planned);
        let replaced = api
            .replace(name, &params(), &object)
            .await
            .map_err(|e| clients.kube_error(e))?;
        Ok(state(&replaced, planned))
    }

    async fn delete(&self, clients: &Clients, state_now: &Value) -> Result<(), Error> {
        match api::<K>(clients)
            .await?
            .delete(name_of(state_now), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(clients.kube_error(e)),
        }
    }

    async fn import(&self, _clients: &Clients, id: &str) -> Result<Value, String> {
        if !crate::validate::KUBE_NAME.is_match(id) {
            return Err(format!(
                "import {} by its {} name; {id:?} is not a Kubernetes object name",
                K::WHAT,
                K::kind(&())
            ));
        }
        Ok(Value::object([("name", Value::string(id))]))
    }
}

/// `aigov_cluster_budget`.
pub type ClusterBudget = Organisation<ClusterAIBudget>;
/// `aigov_budget_template`.
pub type Template = Organisation<AIBudgetTemplate>;

fn amount(text: &Option<String>) -> Value {
    Value::opt_number(
        text.as_deref()
            .and_then(|s| Decimal::from_str_exact(s).ok())
            .map(|d| d.normalize()),
    )
}

impl Kind for ClusterAIBudget {
    const TYPE_NAME: &'static str = "aigov_cluster_budget";
    const WHAT: &'static str = "a cluster budget";
    const STATUS: &'static [&'static str] = &["phase", "spent", "percent_used", "period_end"];
    const DESCRIPTION: &'static str = "A `ClusterAIBudget` in the cluster: a spending limit on Amazon Bedrock over every namespace its `namespace_selector` picks, enforced together with every AIBudget inside them (a call is admitted only if it fits in all of them).";

    fn own_attributes() -> Vec<Attribute> {
        vec![
            Attribute::computed(
                "phase",
                Type::String,
                "Where the budget stands, as the controller last reported it: `Active`, `Warning`, `Throttled`, `Downgraded` or `Escalated` (null until the controller has seen it).",
            ),
            Attribute::computed(
                "spent",
                Type::Number,
                "USD settled this period, as the controller last reported it.",
            ),
            Attribute::computed(
                "percent_used",
                Type::Number,
                "Percent of the limit used, as the controller last reported it.",
            ),
            Attribute::computed(
                "period_end",
                Type::String,
                "When spend resets (RFC 3339), as the controller last reported it.",
            ),
        ]
    }

    fn validate_own(_config: &Value, _diags: &mut Diagnostics) {}

    fn object(name: &str, planned: &Value) -> Self {
        ClusterAIBudget::new(name, cluster_spec(planned))
    }

    fn set_spec(&mut self, planned: &Value) {
        self.spec = cluster_spec(planned);
    }

    fn own_state(&self, known: &Value) -> Vec<(&'static str, Value)> {
        let status = self.status.clone().unwrap_or_default();
        let AIBudgetStatus {
            phase,
            spent,
            percent_used,
            period_end,
            ..
        } = status;
        let mut state = vec![
            (
                "namespace_selector",
                selector_state(
                    &self.spec.namespace_selector,
                    known.get("namespace_selector"),
                ),
            ),
            ("phase", Value::opt_string(phase.map(|p| format!("{p:?}")))),
            ("spent", amount(&spent)),
            ("percent_used", amount(&percent_used)),
            ("period_end", Value::opt_string(period_end)),
        ];
        state.extend(spec_state(&self.spec.budget, known));
        state
    }
}

fn cluster_spec(planned: &Value) -> ClusterAIBudgetSpec {
    ClusterAIBudgetSpec {
        namespace_selector: to_selector(planned.get("namespace_selector")),
        budget: to_spec(planned),
    }
}

impl Kind for AIBudgetTemplate {
    const TYPE_NAME: &'static str = "aigov_budget_template";
    const WHAT: &'static str = "a budget template";
    const STATUS: &'static [&'static str] = &["budgets", "overridden_count"];
    const DESCRIPTION: &'static str = "An `AIBudgetTemplate` in the cluster: keeps one AIBudget in every namespace its `namespace_selector` picks (created when a namespace starts matching, updated with the template, deleted when it stops matching or the template is deleted); a namespace's `aigov.dev/budget-limit` annotation replaces `limit` there.";

    fn own_attributes() -> Vec<Attribute> {
        vec![
            Attribute::required(
                "budget_name",
                Type::String,
                "The name of the AIBudget kept in every selected namespace (a DNS subdomain, such as `team-default`).",
            ),
            Attribute::optional(
                "budget_labels",
                Type::string_map(),
                "Labels the AIBudgets carry (the controller adds `aigov.dev/template`).",
            ),
            Attribute::computed(
                "budgets",
                Type::Number,
                "How many AIBudgets the template keeps, as the controller last reported it (null until the controller has seen it).",
            ),
            Attribute::computed(
                "overridden_count",
                Type::Number,
                "How many namespaces set their own limit with `aigov.dev/budget-limit`, as the controller last reported it.",
            ),
        ]
    }

    fn validate_own(config: &Value, diags: &mut Diagnostics) {
        budget_spec::validate_object_name(
            config.get("budget_name"),
            &Path::attr("budget_name"),
            diags,
        );
        let Some(map) = config.get("budget_labels").as_map() else {
            return;
        };
        if map.len() > 64 {
            diags.attr_error(
                &Path::attr("budget_labels"),
                "Too many labels",
                format!("at most 64 labels; {} are set.", map.len()),
            );
        }
        for (k, v) in map {
            let path = Path::attr("budget_labels").key(k);
            let problem = if k == TEMPLATE_LABEL {
                Some(format!(
                    "the label {TEMPLATE_LABEL} is the controller's own: remove it from budget_labels."
                ))
            } else if !labels::is_label_key(k) {
                Some(format!(
                    "{k:?} is not a label key: {}.",
                    labels::LABEL_KEY_RULES
                ))
            } else {
                v.as_str()
                    .filter(|v| !labels::is_label_value(v))
                    .map(|v| format!("{v:?} is not a label value: {}.", labels::LABEL_VALUE_RULES))
            };
            if let Some(problem) = problem {
                diags.attr_error(&path, "Invalid label", problem);
            }
        }
    }

    fn object(name: &str, planned: &Value) -> Self {
        AIBudgetTemplate::new(name, template_spec(planned))
    }

    fn set_spec(&mut self, planned: &Value) {
        self.spec = template_spec(planned);
    }

    fn own_state(&self, known: &Value) -> Vec<(&'static str, Value)> {
        let count = |f: fn(&aigov_api::organisation::AIBudgetTemplateStatus) -> u32| {
            self.status
                .as_ref()
                .map_or(Value::Null, |s| Value::Number(f(s).into()))
        };
        let budget = &self.spec.budget;
        let mut state = vec![
            (
                "namespace_selector",
                selector_state(
                    &self.spec.namespace_selector,
                    known.get("namespace_selector"),
                ),
            ),
            ("budget_name", Value::string(&budget.name)),
            (
                "budget_labels",
                unset_if_empty(
                    known.get("budget_labels"),
                    Value::string_map(&budget.labels),
                ),
            ),
            ("budgets", count(|s| s.budgets)),
            ("overridden_count", count(|s| s.overridden_count)),
        ];
        state.extend(spec_state(&budget.spec, known));
        state
    }
}

fn template_spec(planned: &Value) -> AIBudgetTemplateSpec {
    AIBudgetTemplateSpec {
        namespace_selector: to_selector(planned.get("namespace_selector")),
        budget: BudgetTemplate {
            name: planned
                .get("budget_name")
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            labels: planned
                .get("budget_labels")
                .to_string_map()
                .unwrap_or_default(),
            spec: to_spec(planned),
        },
    }
}
