//! The resources and the data source: one file each, behind one trait each, so the protocol
//! server stays the same for all of them.

use std::collections::BTreeMap;
use std::future::Future;

use async_trait::async_trait;

use crate::Error;
use crate::config::Clients;
use crate::diag::{Diagnostics, Path};
use crate::schema::{Attribute, Block, Type};
use crate::validate;
use crate::value::Value;

pub mod alarm;
pub mod alert_channel;
pub mod budget;
pub mod budget_spec;
pub mod invocation_logging;
pub mod log_group;
pub mod model_price;
pub mod organisation;
pub mod pricing_override;

/// One managed resource type.
#[async_trait]
pub trait Resource: Send + Sync {
    /// Its type name in HCL (`aigov_budget`).
    fn type_name(&self) -> &'static str;

    /// Its schema.
    fn schema(&self) -> Block;

    /// Plan-time checks of a configuration that may contain unknowns.
    fn validate(&self, config: &Value, diags: &mut Diagnostics);

    /// Fills values the provider knows at plan time (after the shared rules in `plan`).
    fn plan(&self, _clients: &Clients, _planned: &mut Value, _prior: &Value) {}

    /// Creates the object; returns its state.
    async fn create(&self, clients: &Clients, planned: &Value) -> Result<Value, Error>;

    /// Reads the object; `None` when it no longer exists (Terraform plans to create it again).
    async fn read(&self, clients: &Clients, state: &Value) -> Result<Option<Value>, Error>;

    /// Changes the object in place; returns its new state.
    async fn update(
        &self,
        clients: &Clients,
        prior: &Value,
        planned: &Value,
    ) -> Result<Value, Error>;

    /// Deletes the object (already gone is success).
    async fn delete(&self, clients: &Clients, state: &Value) -> Result<(), Error>;

    /// The state to read from for `terraform import` with this ID, or a message saying the format.
    async fn import(&self, clients: &Clients, id: &str) -> Result<Value, String>;
}

/// One data source type.
#[async_trait]
pub trait DataSource: Send + Sync {
    /// Its type name in HCL.
    fn type_name(&self) -> &'static str;

    /// Its schema.
    fn schema(&self) -> Block;

    /// Plan-time checks.
    fn validate(&self, config: &Value, diags: &mut Diagnostics);

    /// Reads it.
    async fn read(&self, clients: &Clients, config: &Value) -> Result<Value, Error>;
}

/// Every resource this provider serves.
pub fn all() -> Vec<Box<dyn Resource>> {
    vec![
        Box::new(budget::BudgetResource),
        Box::new(alert_channel::AlertChannel),
        Box::new(log_group::LogGroup),
        Box::new(invocation_logging::InvocationLogging),
        Box::new(alarm::Alarm),
        Box::new(pricing_override::PricingOverride),
        Box::new(organisation::ClusterBudget::default()),
        Box::new(organisation::Template::default()),
    ]
}

/// Every data source this provider serves.
pub fn data_sources() -> Vec<Box<dyn DataSource>> {
    vec![Box::new(model_price::ModelPrice)]
}

/// The `tags` and `tags_all` attributes every taggable resource has.
pub fn tag_attributes() -> [Attribute; 2] {
    [
        Attribute::optional("tags", Type::string_map(), "Tags for this resource."),
        Attribute::computed(
            "tags_all",
            Type::string_map(),
            "The tags the resource has: the provider's `default_tags` with `tags` on top.",
        ),
    ]
}

/// Validates `tags`.
pub fn validate_tags(config: &Value, diags: &mut Diagnostics) {
    validate::tags(config.get("tags"), &Path::attr("tags"), diags);
}

/// Plans `tags_all` from the configured tags and the provider's `default_tags`.
pub fn plan_tags_all(clients: &Clients, planned: &mut Value) {
    let all = clients
        .tags_all(planned.get("tags"))
        .map(|t| Value::string_map(&t))
        .unwrap_or_else(Value::unknown);
    planned.set("tags_all", all);
}

/// The state's `tags` for what the API reports, given the effective tags the API holds: the tags
/// that are not default tags with the same value (so default tags never show up as a diff).
pub fn split_tags(
    clients: &Clients,
    prior: &Value,
    remote: &BTreeMap<String, String>,
) -> (Value, Value) {
    let defaults = clients.default_tags.clone().unwrap_or_default();
    let configured = prior.get("tags").to_string_map().unwrap_or_default();
    let own: BTreeMap<String, String> = remote
        .iter()
        .filter(|(k, v)| configured.contains_key(*k) || defaults.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let tags = if own.is_empty() && prior.get("tags").is_null() {
        Value::Null
    } else {
        Value::string_map(&own)
    };
    (tags, Value::string_map(remote))
}

/// Applies tag changes with the service's own calls, each made only when there is something to do.
pub async fn apply_tag_changes<U, T>(
    (removed, changed): (Vec<String>, BTreeMap<String, String>),
    untag: impl FnOnce(Vec<String>) -> U,
    tag: impl FnOnce(BTreeMap<String, String>) -> T,
) -> Result<(), Error>
where
    U: Future<Output = Result<(), Error>>,
    T: Future<Output = Result<(), Error>>,
{
    if !removed.is_empty() {
        untag(removed).await?;
    }
    if !changed.is_empty() {
        tag(changed).await?;
    }
    Ok(())
}

/// The state read back right after a write: the object must exist.
pub fn written(read: Option<Value>, what: &str) -> Result<Value, Error> {
    read.ok_or_else(|| Error::Aws(format!("{what} vanished right after it was written")))
}

/// The state after a create: what the read-back returned or, when that failed or found nothing,
/// an [`Error::Created`] carrying `created` (the planned state with the IDs the create returned),
/// so the object is tracked rather than forgotten while it exists.
pub fn read_back(
    read: Result<Option<Value>, Error>,
    created: &Value,
    what: &str,
) -> Result<Value, Error> {
    let cause = match read {
        Ok(Some(state)) => return Ok(state),
        Ok(None) => Error::Aws(format!("{what} vanished right after it was written")),
        Err(e) => e,
    };
    Err(Error::Created {
        state: Box::new(created.clone().unknown_as_null()),
        cause: Box::new(cause),
    })
}

/// The error for a create that found its object already there: taking it over would silently
/// manage (and on destroy delete) what another state or person owns.
pub fn already_exists(type_name: &str, what: &str, import_id: &str) -> Error {
    Error::Aws(format!(
        "{what} already exists; {type_name} creates its objects and never takes over an existing one, which another Terraform state or person may own. To manage it here, import it: terraform import {type_name}.NAME {import_id} (or an import block with id = \"{import_id}\"); otherwise choose another name."
    ))
}

/// A collection the API reports empty: null when the configuration left it unset, else empty, so
/// that `x = []` and an omitted `x` both plan no change.
pub fn unset_if_empty(configured: &Value, remote: Value) -> Value {
    let empty = match &remote {
        Value::Seq(items) => items.is_empty(),
        Value::Map(m) => m.is_empty(),
        _ => false,
    };
    if empty && configured.is_null() {
        Value::Null
    } else {
        remote
    }
}

/// What changed between two effective tag sets: the keys to remove and the tags to set.
pub fn tag_changes(prior: &Value, planned: &Value) -> (Vec<String>, BTreeMap<String, String>) {
    let old = prior.get("tags_all").to_string_map().unwrap_or_default();
    let new = planned.get("tags_all").to_string_map().unwrap_or_default();
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    let set = new
        .into_iter()
        .filter(|(k, v)| old.get(k) != Some(v))
        .collect();
    (removed, set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_remote_collection_keeps_the_configured_spelling() {
        assert_eq!(
            unset_if_empty(&Value::Null, Value::Seq(vec![])),
            Value::Null
        );
        assert_eq!(
            unset_if_empty(&Value::Seq(vec![]), Value::Seq(vec![])),
            Value::Seq(vec![])
        );
        let some = Value::strings(["a"]);
        assert_eq!(unset_if_empty(&Value::Null, some.clone()), some);
    }
}
