//! The I/O half of a reconcile, in the one order that keeps the ledger honest: write the
//! status, then commit the ledger [`Transition`](aigov_ledger::ledger::Transition) it
//! records, then publish the Events and hand the written alert outbox to the delivery task. A failed write returns before anything else
//! happens, so the ledger, the Events and what the reconciler remembers are as they were and
//! the retry plans the same again.
//!
//! The commit comes straight after the write rather than after the Events: the Events are
//! for people and take a round trip each, while the commit lets records be acknowledged and
//! moves the period, and the shorter the time between snapshot and commit, the rarer a
//! rollover held back for records that arrived in between ([`Committed::stale`]).

use std::time::{Duration, Instant};

use aigov_api::{AIBudget, AIBudgetStatus, ClusterAIBudget};
use aigov_ledger::key;
use aigov_ledger::ledger::Committed;
use aigov_runtime::events::publish_action;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::notices::EventNotice;
use super::plan::{MIN_REQUEUE, NotReadyPlan, Plan, Write};
use super::{Context, FIELD_MANAGER, cluster};
use crate::error::{Error, Result};

/// What applying a plan did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// `written`, `coalesced` or `requeue`, for the reconcile's span.
    pub outcome: &'static str,
    /// When to reconcile again.
    pub requeue: Duration,
}

/// Carries out `plan` for the budget `key`.
pub async fn apply(ctx: &Context, budget: &AIBudget, key: &str, plan: Plan) -> Result<Applied> {
    let (namespace, _) = key.split_once('/').unwrap_or(("", key));
    let mut transition = plan.transition;
    // A new object under the old name is a new budget: what was remembered of the old one
    // (its refusals awaiting an Event, its rollover, its price notes) is not told about it.
    if transition.replaces.is_some() {
        tracing::info!("budget re-created under the same name: a new budget, starting at zero");
        ctx.forget(&[key.to_owned()]);
    }
    if plan.write == Write::Now {
        patch_status(ctx, key, &plan.status).await?;
        transition.persisted = plan.status.ledger.clone();
        ctx.shared.metrics.status_written();
        ctx.remember(key, |m| m.last_write = Some(Instant::now()));
    }
    let committed = commit(ctx, key, transition);
    publish(ctx, budget, &plan.notices.events).await;
    // The outbox as written (or, unchanged, as it was), for the delivery task to deliver from.
    if let Some(alerter) = &ctx.alerter {
        alerter.track(key, plan.status.alerts.as_ref(), plan.alert_cooldown);
        let pending = plan.status.alerts.as_ref().map_or(0, |a| a.pending.len());
        ctx.shared
            .metrics
            .alerts_pending(namespace, &budget.name_any(), pending);
        if plan.write == Write::Now {
            for reason in &plan.dropped_alerts {
                ctx.shared.metrics.alerts_dropped(reason.label(), 1);
            }
        }
    }
    ctx.remember(key, |m| {
        if let Some(start) = plan.announces_rollover {
            m.announced_rollover = Some(start);
        }
        if plan.publishes_refusals {
            m.refusals.published(Instant::now());
        }
        m.queued_events
            .drain(..plan.queued_events.min(m.queued_events.len()));
    });
    let metrics = &ctx.shared.metrics;
    metrics.budget(namespace, &budget.name_any(), &plan.account, plan.forecast);
    // A rollover held back: come back at once to summarise the period with what arrived.
    let requeue = if committed.stale {
        tracing::debug!("records arrived during the write: the rollover is planned again");
        MIN_REQUEUE
    } else {
        plan.requeue
    };
    Ok(Applied {
        outcome: plan.write.outcome(),
        requeue,
    })
}

/// Carries out the plan for a budget the controller cannot evaluate: the status saying why,
/// then the Warning Event. The ledger is left alone: without a period there is nothing to
/// account in, and what it holds from the last good evaluation is kept for the fix.
pub async fn apply_not_ready(
    ctx: &Context,
    budget: &AIBudget,
    key: &str,
    plan: NotReadyPlan,
) -> Result<Applied> {
    if plan.write == Write::Now {
        if let Some(ready) = plan.status.conditions.first() {
            tracing::warn!(reason = %ready.reason, message = %ready.message, "budget not ready");
        }
        patch_status(ctx, key, &plan.status).await?;
        ctx.shared.metrics.status_written();
        ctx.remember(key, |m| m.last_write = Some(Instant::now()));
    }
    publish(ctx, budget, &plan.notices.events).await;
    Ok(Applied {
        outcome: plan.write.outcome(),
        requeue: plan.requeue,
    })
}

/// Publishes the Events on the budget, in order.
async fn publish(ctx: &Context, budget: &AIBudget, events: &[EventNotice]) {
    let regarding = cluster::regarding(budget);
    for event in events {
        publish_action(
            &ctx.recorder,
            &regarding,
            event.warning,
            event.reason,
            &event.action,
            event.note.clone(),
        )
        .await;
    }
}

/// Writes the status of the budget `key` names (an AIBudget or a ClusterAIBudget) with
/// server-side apply.
async fn patch_status(ctx: &Context, key: &str, status: &AIBudgetStatus) -> Result<()> {
    let patch = serde_json::json!({
        "apiVersion": "aigov.dev/v1alpha1",
        "kind": key::level(key).kind(),
        "status": status,
    });
    if !ctx.shared.leads() {
        return Err(Error::NotLeading);
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let patch = Patch::Apply(&patch);
    let client = ctx.client.clone();
    let write = async {
        match key::parts(key) {
            (Some(namespace), name) => Api::<AIBudget>::namespaced(client, namespace)
                .patch_status(name, &params, &patch)
                .await
                .map(drop),
            (None, name) => Api::<ClusterAIBudget>::all(client)
                .patch_status(name, &params, &patch)
                .await
                .map(drop),
        }
    };
    tokio::time::timeout(STATUS_WRITE_TIMEOUT, write)
        .await
        .map_err(|_| Error::Timeout("status write"))??;
    Ok(())
}

/// A status write that takes longer fails (and is planned again): the API server is not
/// answering, and a write must not wait past this replica's proof of leadership.
const STATUS_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Commits the ledger change and publishes the records counted on opening the account.
/// The persisted watermarks it moves release the budget's staged usage records to the writer.
fn commit(ctx: &Context, key: &str, transition: aigov_ledger::ledger::Transition) -> Committed {
    let mut ledger = ctx.shared.ledger();
    let mut committed = ledger.commit(key, transition);
    for (charge, record) in std::mem::take(&mut committed.replayed) {
        ctx.shared.publish(&mut ledger, &charge, &record);
    }
    ctx.shared.sync_usage(&mut ledger);
    committed
}
