//! The AIBudgetTemplate controller: keeps one AIBudget in every namespace a template selects
//! (created when a namespace starts matching, applied again when the template, the namespace's
//! annotations or the budget change, deleted when the namespace stops matching or the
//! template is deleted), and says in the template's status how many it keeps, which
//! namespaces override the limit and where something else keeps the name.
//!
//! A reconcile is a pure [`plan::plan`] over copies of the controller's caches (every
//! template, namespace and AIBudget) and a thin [`apply`]: server-side apply of the budgets
//! that differ (field manager `aigov-controller`, forced, so a hand edit of a field the
//! template sets is put back), deletions by UID, then the status, also by server-side apply.
//!
//! Deleting: there is no finalizer on templates (a template must stay deletable when the
//! controller is not installed any more). A deleted template's budgets are found by their
//! `aigov.dev/template` label ([`plan::orphans`]) and deleted as soon as the controller sees
//! the deletion, or when it next starts. Where Kubernetes' garbage collector runs, the
//! ownerReference each stamped budget carries has it delete them too; a kept budget
//! (`aigov.dev/keep`) carries none, so neither deletes it.
//!
//! Templates are kept by the leader only, and only by a controller that watches every
//! namespace: one scoped to a namespace (`--watch-namespace`) leaves them alone, since a
//! template spans namespaces.

use std::sync::Arc;
use std::time::Duration;

use aigov_api::AIBudget;
use aigov_api::organisation::AIBudgetTemplate;
use aigov_ledger::clock::Clock;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use crate::error::{Error, Result};

pub mod apply;
pub mod plan;
#[cfg(test)]
mod tests;

pub use plan::{GENERATION_ANNOTATION, KEEP_ANNOTATION};

/// Every template is planned again this often even without a change (a missed watch event
/// or a failed write is repaired by then).
pub const RESYNC: Duration = Duration::from_secs(300);
/// A template whose writes failed is planned again this soon.
pub const RETRY: Duration = Duration::from_secs(5);
/// Stamped budgets of deleted templates are looked for at least this often.
pub const SWEEP: Duration = Duration::from_secs(2);

/// What reconciles share: the API, Events, and the caches the plan reads.
pub struct Context {
    /// The API.
    pub client: Client,
    /// Events on templates.
    pub recorder: Recorder,
    /// Time (the controller's clock, which tests may set).
    pub clock: Clock,
    /// Whether this replica still leads: no write is made otherwise.
    pub leads: Box<dyn Fn() -> bool + Send + Sync>,
    templates: Store<AIBudgetTemplate>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    budgets: Store<AIBudget>,
}

/// The caches, copied for one plan.
struct Snapshot {
    templates: Vec<Arc<AIBudgetTemplate>>,
    namespaces: Vec<plan::NamespaceView>,
    budgets: Vec<Arc<AIBudget>>,
}

impl Snapshot {
    fn world(&self) -> plan::World<'_> {
        plan::World {
            templates: &self.templates,
            namespaces: &self.namespaces,
            budgets: &self.budgets,
        }
    }
}

impl Context {
    /// A copy of the caches once all three hold a full list (planning from a cache still
    /// filling would delete budgets whose namespace it has not seen yet).
    async fn snapshot(&self) -> Result<Snapshot> {
        let ready = async {
            self.templates.wait_until_ready().await?;
            self.namespaces.wait_until_ready().await?;
            self.budgets.wait_until_ready().await
        };
        ready
            .await
            .map_err(|_| Error::Timeout("the caches of templates, namespaces and budgets"))?;
        // By name: the status lists namespaces in that order.
        let mut namespaces: Vec<plan::NamespaceView> = self
            .namespaces
            .state()
            .iter()
            .map(|n| plan::NamespaceView {
                name: n.name_any(),
                labels: n.labels().clone(),
                annotations: n.annotations().clone(),
            })
            .collect();
        namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Snapshot {
            templates: self.templates.state(),
            namespaces,
            budgets: self.budgets.state(),
        })
    }
}

/// Keeps one template's budgets and status.
async fn reconcile(template: Arc<AIBudgetTemplate>, ctx: Arc<Context>) -> Result<Action> {
    // Being deleted (another finalizer holds it): the sweep removes its budgets.
    if template.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let snapshot = ctx.snapshot().await?;
    let plan = plan::plan(&template, &snapshot.world());
    let failures = apply::carry_out(&ctx, &plan).await?;
    let status = plan::status(&template, &plan, &failures, ctx.clock.now());
    apply::write_status(&ctx, &template, &status).await?;
    tracing::debug!(
        template = %template.name_any(),
        kept = plan.kept,
        applied = plan.applies.len(),
        removed = plan.removals.len(),
        conflicts = plan.conflicts.len(),
        failed = failures.len(),
        "template reconciled"
    );
    Ok(Action::requeue(if failures.is_empty() {
        RESYNC
    } else {
        RETRY
    }))
}

fn error_policy(template: Arc<AIBudgetTemplate>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(template = template.name_any(), %error, "template reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Every template's reference: a namespace's change concerns every template.
fn all_templates(store: &Store<AIBudgetTemplate>) -> Vec<ObjectRef<AIBudgetTemplate>> {
    store
        .state()
        .iter()
        .map(|t| ObjectRef::from_obj(t.as_ref()))
        .collect()
}

/// The templates an AIBudget's change concerns: the one its label names, and every one that
/// stamps its name (a budget made by hand, or deleted, changes who keeps that name).
fn concerned(
    store: &Store<AIBudgetTemplate>,
    budget: &AIBudget,
) -> Vec<ObjectRef<AIBudgetTemplate>> {
    let name = budget.name_any();
    let label = plan::stamped_by(budget);
    store
        .state()
        .iter()
        .filter(|t| t.spec.budget.name == name || label == Some(t.name_any().as_str()))
        .map(|t| ObjectRef::from_obj(t.as_ref()))
        .collect()
}

/// Runs the template controller until the process ends (or the task is aborted when this
/// replica stops leading).
pub async fn run(
    client: Client,
    recorder: Recorder,
    clock: Clock,
    leads: Box<dyn Fn() -> bool + Send + Sync>,
) {
    let (templates, template_writer) = reflector::store();
    let (namespaces, namespace_writer) = reflector::store();
    let (budgets, budget_writer) = reflector::store();
    let config = || watcher::Config::default().any_semantic();
    let template_stream = watcher::watcher(Api::<AIBudgetTemplate>::all(client.clone()), config())
        .default_backoff()
        .modify(|t: &mut AIBudgetTemplate| t.managed_fields_mut().clear())
        .reflect(template_writer)
        .touched_objects();
    // Labels and annotations are all a namespace is needed for.
    let namespace_stream = watcher::watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        config(),
    )
    .default_backoff()
    .modify(|n: &mut PartialObjectMeta<Namespace>| n.managed_fields_mut().clear())
    .reflect(namespace_writer)
    .touched_objects();
    // Every AIBudget, without status or managedFields: a hand-made one of a template's name
    // is a conflict, and a stamped one is compared with what its template says.
    let budget_stream = watcher::watcher(Api::<AIBudget>::all(client.clone()), config())
        .default_backoff()
        .modify(|b: &mut AIBudget| {
            b.managed_fields_mut().clear();
            b.status = None;
        })
        .reflect(budget_writer)
        .touched_objects();
    let ctx = Arc::new(Context {
        client,
        recorder,
        clock,
        leads,
        templates: templates.clone(),
        namespaces,
        budgets,
    });
    let (on_namespace, on_budget) = (templates.clone(), templates.clone());
    let controller = Controller::for_stream(template_stream, templates)
        .watches_stream(namespace_stream, move |_| all_templates(&on_namespace))
        .watches_stream(budget_stream, move |b| concerned(&on_budget, &b));
    tokio::spawn(sweep(ctx.clone()));
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Deletes the budgets of deleted templates ([`plan::orphans`]) every [`SWEEP`].
async fn sweep(ctx: Arc<Context>) {
    loop {
        tokio::time::sleep(SWEEP).await;
        let Ok(snapshot) = ctx.snapshot().await else {
            continue;
        };
        let removals = plan::orphans(&snapshot.world());
        if removals.is_empty() {
            continue;
        }
        let orphaned = plan::Plan {
            removals,
            ..plan::Plan::default()
        };
        if let Err(e) = apply::carry_out(&ctx, &orphaned).await {
            tracing::warn!(error = %e, "the budgets of deleted templates were not all deleted");
        }
    }
}
