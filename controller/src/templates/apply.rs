//! The I/O half of keeping a template: the budgets applied (server-side, forced), those no
//! longer claimed deleted (by UID), then the status applied and its Warning Events published.
//! A write the API server refuses for one namespace (a namespace's limit that breaks another
//! rule of the spec, say) is reported in the status, never stops the others.

use std::time::Duration;

use aigov_api::AIBudget;
use aigov_api::organisation::{AIBudgetTemplate, AIBudgetTemplateStatus};
use aigov_runtime::events::publish;
use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Resource, ResourceExt};

use super::Context;
use super::plan::{self, Failure, Plan, Removal, Stamp};
use crate::error::{Error, Result};
use crate::reconcile::FIELD_MANAGER;

/// Writes in flight at most per template (50 namespaces take a handful of round trips).
const WRITES_IN_FLIGHT: usize = 8;
/// A write that takes longer fails (and is planned again).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies and deletes what `plan` says; the writes the API server refused, by namespace.
/// Fails only when this replica no longer leads.
pub async fn carry_out(ctx: &Context, plan: &Plan) -> Result<Vec<Failure>> {
    if !(ctx.leads)() {
        return Err(Error::NotLeading);
    }
    // Collected first: a stream over a closure's futures is not `Send` for every lifetime.
    let applies: Vec<_> = plan.applies.iter().map(|s| apply_or_say(ctx, s)).collect();
    let mut failures: Vec<Failure> = futures::stream::iter(applies)
        .buffer_unordered(WRITES_IN_FLIGHT)
        .filter_map(futures::future::ready)
        .collect()
        .await;
    let removals: Vec<_> = plan
        .removals
        .iter()
        .map(|r| remove_or_say(ctx, r))
        .collect();
    let refused: Vec<Failure> = futures::stream::iter(removals)
        .buffer_unordered(WRITES_IN_FLIGHT)
        .filter_map(futures::future::ready)
        .collect()
        .await;
    failures.extend(refused);
    failures.sort_by(|a, b| a.namespace.cmp(&b.namespace));
    for f in &failures {
        tracing::warn!(namespace = %f.namespace, error = %f.message, "a template's budget was not written");
    }
    Ok(failures)
}

/// [`apply_budget`], its failure said for the status.
async fn apply_or_say(ctx: &Context, stamp: &Stamp) -> Option<Failure> {
    let error = apply_budget(ctx, stamp).await.err()?;
    Some(Failure {
        namespace: stamp.namespace.clone(),
        message: error.to_string(),
    })
}

/// [`remove_budget`], its failure said for the status.
async fn remove_or_say(ctx: &Context, removal: &Removal) -> Option<Failure> {
    let error = remove_budget(ctx, removal).await.err()?;
    Some(Failure {
        namespace: removal.namespace.clone(),
        message: error.to_string(),
    })
}

/// Server-side applies one stamped budget, forced: the fields it sets are the template's.
async fn apply_budget(ctx: &Context, stamp: &Stamp) -> Result<()> {
    let api: Api<AIBudget> = Api::namespaced(ctx.client.clone(), &stamp.namespace);
    let mut metadata = serde_json::json!({
        "name": stamp.name,
        "namespace": stamp.namespace,
        "labels": stamp.labels,
        "annotations": stamp.annotations,
    });
    if let Some(owner) = &stamp.owner {
        metadata["ownerReferences"] = serde_json::json!([owner]);
    }
    let body = serde_json::json!({
        "apiVersion": "aigov.dev/v1alpha1",
        "kind": "AIBudget",
        "metadata": metadata,
        "spec": stamp.spec,
    });
    let (params, patch) = (
        PatchParams::apply(FIELD_MANAGER).force(),
        Patch::Apply(&body),
    );
    let write = api.patch(&stamp.name, &params, &patch);
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .map_err(|_| Error::Timeout("applying a template's budget"))??;
    tracing::info!(budget = %format!("{}/{}", stamp.namespace, stamp.name), "template budget applied");
    Ok(())
}

/// Deletes one budget by UID; one already gone, or replaced by a new object, is no failure.
async fn remove_budget(ctx: &Context, removal: &Removal) -> Result<()> {
    let api: Api<AIBudget> = Api::namespaced(ctx.client.clone(), &removal.namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: removal.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let delete = api.delete(&removal.name, &params);
    match tokio::time::timeout(WRITE_TIMEOUT, delete).await {
        Err(_) => Err(Error::Timeout("deleting a template's budget")),
        Ok(Err(kube::Error::Api(e))) if e.code == 404 || e.code == 409 => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(_)) => {
            tracing::info!(budget = %format!("{}/{}", removal.namespace, removal.name), "template budget deleted");
            Ok(())
        }
    }
}

/// Writes the template's status if it changed, then the Warning Events it calls for.
pub async fn write_status(
    ctx: &Context,
    template: &AIBudgetTemplate,
    status: &AIBudgetTemplateStatus,
) -> Result<()> {
    let previous = template.status.as_ref();
    if previous == Some(status) {
        return Ok(());
    }
    if !(ctx.leads)() {
        return Err(Error::NotLeading);
    }
    let api: Api<AIBudgetTemplate> = Api::all(ctx.client.clone());
    let body = serde_json::json!({
        "apiVersion": "aigov.dev/v1alpha1",
        "kind": "AIBudgetTemplate",
        "status": status,
    });
    let (params, patch) = (
        PatchParams::apply(FIELD_MANAGER).force(),
        Patch::Apply(&body),
    );
    let name = template.name_any();
    let write = api.patch_status(&name, &params, &patch);
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .map_err(|_| Error::Timeout("template status write"))??;
    let regarding = template.object_ref(&());
    for (reason, note) in plan::warnings(previous, status) {
        publish(&ctx.recorder, &regarding, true, reason, note).await;
    }
    Ok(())
}
