//! The AIBudget reconciler: keeps each budget's period, ledger account and status current,
//! publishes its Events, queues its alerts and runs its escalation. Status is written with
//! server-side apply, at once when a threshold or the phase changes, else at most once per
//! `status_interval` (bursts of usage coalesce into one write).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aigov_api::budget::{EscalationStatus, ExtensionStatus, PeriodSummary};
use aigov_api::{AIBudget, Usd};
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::alerts::{Alert, Alerter, Channel};
use crate::error::{Error, Result};
use crate::ledger_service::{LedgerShared, Notable};
use crate::status::{self, StatusInputs, summarize};
use aigov_ledger::clock::Clock;
use aigov_ledger::ledger::{Account, BudgetKey};
use aigov_ledger::policy::BudgetPolicy;
use aigov_runtime::events::{publish, publish_action};

/// Annotation a person sets to raise the limit for the rest of the period:
/// `"<USD amount>[ <reason>]"`, e.g. `"50.00 launch week"`.
pub const EXTENSION_ANNOTATION: &str = "aigov.dev/extension";
/// Annotation a person sets to acknowledge an exhausted budget and stop escalation; its
/// value says who (e.g. `"alice"`).
pub const ACKNOWLEDGED_ANNOTATION: &str = "aigov.dev/acknowledged";
/// Server-side apply field manager.
pub const FIELD_MANAGER: &str = "aigov-controller";
/// Status figures (forecast) are refreshed at least this often even without usage.
pub const REFRESH: Duration = Duration::from_secs(300);
/// Reconciles in flight at most.
pub const RECONCILE_CONCURRENCY: u16 = 16;
/// Throttled / Downgraded Events on a budget at most this often.
pub const REFUSAL_EVENT_INTERVAL: Duration = Duration::from_secs(60);

/// What reconciles share.
pub struct Context {
    /// The API.
    pub client: Client,
    /// The ledger.
    pub shared: Arc<LedgerShared>,
    /// Events on budgets.
    pub recorder: Recorder,
    /// Alert delivery (None: alerts disabled).
    pub alerter: Option<Alerter>,
    /// Time.
    pub clock: Clock,
    /// Coalescing interval for status writes.
    pub status_interval: Duration,
    written: Mutex<HashMap<BudgetKey, Instant>>,
    refusal_events: Mutex<HashMap<BudgetKey, (Instant, Notable)>>,
    notes: Mutex<HashMap<BudgetKey, Vec<String>>>,
}

impl Context {
    /// A context.
    pub fn new(
        client: Client,
        shared: Arc<LedgerShared>,
        recorder: Recorder,
        alerter: Option<Alerter>,
        clock: Clock,
        status_interval: Duration,
    ) -> Arc<Context> {
        Arc::new(Context {
            client,
            shared,
            recorder,
            alerter,
            clock,
            status_interval,
            written: Mutex::default(),
            refusal_events: Mutex::default(),
            notes: Mutex::default(),
        })
    }

    /// Queues a `PriceChanged` note for every budget that spent on a model the price covers
    /// this period, and has them reconciled.
    pub fn price_changed(&self, price: &aigov_api::AIModelPrice) {
        let Ok(pattern) = aigov_api::pattern::ModelPattern::parse(&price.spec.model) else {
            return;
        };
        let affected: Vec<BudgetKey> = {
            let ledger = self.shared.ledger();
            ledger
                .keys()
                .filter(|k| {
                    ledger.account(k).is_some_and(|a| {
                        a.models
                            .keys()
                            .any(|m| pattern.matches_model(&aigov_api::model::resolve(m)))
                    })
                })
                .cloned()
                .collect()
        };
        let note = format!(
            "AIModelPrice {} now prices {}: input ${}, output ${} per 1M tokens{}; usage from then on is priced at it",
            price.name_any(),
            price.spec.model,
            price.spec.input,
            price.spec.output,
            price
                .spec
                .effective_from
                .as_deref()
                .map(|t| format!(", effective from {t}"))
                .unwrap_or_default()
        );
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        for key in affected {
            notes.entry(key.clone()).or_default().push(note.clone());
            let _ = self.shared.changed.send(key);
        }
    }
}

/// A budget's extension this period, from its annotation and what status recorded.
fn extension_for(
    annotation: Option<&String>,
    previous: Option<&ExtensionStatus>,
    window_start: &str,
) -> Option<ExtensionStatus> {
    let text = annotation?.trim();
    let (amount, reason) = match text.split_once(char::is_whitespace) {
        Some((a, r)) => (a, Some(r.trim().to_owned())),
        None => (text, None),
    };
    let amount = Usd::parse(amount).ok()?.to_api_string();
    match previous {
        // The same annotation, recorded for an earlier period: it has expired.
        Some(p) if p.amount == amount && p.reason == reason && p.period_start != window_start => {
            None
        }
        Some(p) if p.amount == amount && p.reason == reason => Some(p.clone()),
        _ => Some(ExtensionStatus {
            amount,
            period_start: window_start.to_owned(),
            reason,
        }),
    }
}

/// Reconciles one AIBudget.
pub async fn reconcile(budget: Arc<AIBudget>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let policy = BudgetPolicy::from_budget(&budget)?;
    let key = policy.key.clone();
    let now = ctx.clock.now();
    let window = policy.window_at(now)?;
    let window_start = window.start.to_string();
    let previous = budget.status.as_ref();
    let annotations = budget.annotations();
    let previous_extension = previous.and_then(|p| p.extension.as_ref());
    let extension = extension_for(
        annotations.get(EXTENSION_ANNOTATION),
        previous_extension,
        &window_start,
    );
    let extension_granted = extension.is_some() && extension.as_ref() != previous_extension;
    let limit = policy.limit
        + extension
            .as_ref()
            .and_then(|e| Usd::parse(&e.amount).ok())
            .unwrap_or(Usd::ZERO);

    let mut finished: Option<PeriodSummary> = None;
    let mut replayed = Vec::new();
    let snapshot: Account = {
        let mut ledger = ctx.shared.ledger();
        if ledger.account(&key).is_none() {
            replayed = ledger.insert(
                key.clone(),
                Account::restore(window.clone(), limit, previous),
            );
            // A status from an earlier period: that period ended while no leader ran.
            let spec_limit = Usd::parse(&budget.spec.limit).unwrap_or(Usd::ZERO);
            finished = previous.and_then(|p| status::ended_while_away(p, &window, spec_limit));
        }
        let account = ledger.account_mut(&key).expect("inserted above");
        if account.window != window {
            finished = Some(summarize(account));
            account.roll_over(window.clone(), limit);
        }
        if account.limit != limit {
            account.limit = limit;
            account.version += 1;
        }
        account.clone()
    };
    for (charge, record) in &replayed {
        ctx.shared.publish(charge, record);
    }

    let mut history: Vec<PeriodSummary> = previous.map(|p| p.history.clone()).unwrap_or_default();
    if let Some(summary) = &finished
        && !history.iter().any(|h| h.start == summary.start)
    {
        history.insert(0, summary.clone());
        history.truncate(status::HISTORY_LEN);
    }

    // Escalation: from the moment spend reaches the limit, each step fires after its delay
    // unless someone acknowledged.
    let exhausted = snapshot.exhausted();
    let same_period =
        previous.and_then(|p| p.period_start.as_deref()) == Some(window_start.as_str());
    let mut escalation: Option<EscalationStatus> = previous
        .filter(|_| same_period)
        .and_then(|p| p.escalation.clone());
    if exhausted && escalation.is_none() {
        escalation = Some(EscalationStatus {
            limit_reached_at: now.to_string(),
            steps_notified: 0,
            acknowledged_by: None,
        });
    }
    if !exhausted && escalation.as_ref().is_some_and(|e| e.steps_notified == 0) {
        escalation = None;
    }
    let mut escalations: Vec<(usize, String)> = Vec::new();
    let mut next_step_due: Option<Timestamp> = None;
    if let Some(e) = escalation.as_mut() {
        if let Some(who) = annotations.get(ACKNOWLEDGED_ANNOTATION) {
            e.acknowledged_by = Some(who.clone());
        }
        let reached_at: Timestamp = e.limit_reached_at.parse().unwrap_or(now);
        if e.acknowledged_by.is_none() {
            for (i, step) in budget
                .spec
                .escalation
                .iter()
                .enumerate()
                .skip(e.steps_notified as usize)
            {
                let due = reached_at + step.after.parse::<SignedDuration>().unwrap_or_default();
                if now >= due {
                    e.steps_notified = i as u32 + 1;
                    escalations.push((i, step.after.clone()));
                } else {
                    next_step_due = Some(due);
                    break;
                }
            }
        }
    }

    let outcome = status::build(StatusInputs {
        spec: &budget.spec,
        generation: budget.metadata.generation,
        previous,
        account: &snapshot,
        limit,
        extension: extension.clone(),
        escalation: escalation.clone(),
        history,
        now,
    });

    let name = budget.name_any();
    let namespace = policy.namespace.clone();
    let resets = snapshot.window.end.to_string();
    let figures = format!(
        "spent {} of {} ({:.1}%); resets at {resets}",
        snapshot.spent.display_cents(),
        limit.display_cents(),
        snapshot.spent.percent_of(limit)
    );

    // Write the status: at once when urgent, else coalesced.
    let mut comparable = outcome.status.clone();
    comparable.forecast = None;
    let mut before = previous.cloned().unwrap_or_default();
    before.forecast = None;
    let last_write = ctx
        .written
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .copied();
    let urgent = outcome.urgent()
        || finished.is_some()
        || extension_granted
        || !escalations.is_empty()
        || previous.is_none()
        || previous.and_then(|p| p.observed_generation) != budget.metadata.generation
        || escalation.as_ref() != previous.and_then(|p| p.escalation.as_ref());
    let since_write = last_write.map(|t| t.elapsed());
    let interval_passed = since_write.is_none_or(|e| e >= ctx.status_interval);
    let stale = since_write.is_none_or(|e| e >= REFRESH)
        && outcome.status.forecast != previous.and_then(|p| p.forecast.clone());
    let write = urgent || (comparable != before && interval_passed) || stale;
    let mut requeue = REFRESH;
    if write {
        let api: Api<AIBudget> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({
            "apiVersion": "aigov.dev/v1alpha1",
            "kind": "AIBudget",
            "status": outcome.status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        ctx.shared
            .ledger()
            .mark_persisted(&key, &outcome.status.ledger);
        ctx.shared.metrics.status_written();
        ctx.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), Instant::now());
    } else if comparable != before {
        requeue = ctx
            .status_interval
            .saturating_sub(since_write.unwrap_or_default());
    }

    // Events and alerts, after the status they describe is written.
    let regarding = budget.object_ref(&());
    if let Some(summary) = &finished {
        publish(
            &ctx.recorder,
            &regarding,
            false,
            "PeriodRolledOver",
            format!(
                "period {} to {} closed at {} of {} ({} requests, {} refused); the new period runs to {resets}",
                summary.start, summary.end, summary.spent, summary.limit, summary.requests, summary.throttled_requests
            ),
        )
        .await;
    }
    if extension_granted && let Some(e) = &extension {
        publish(
            &ctx.recorder,
            &regarding,
            false,
            "ExtensionGranted",
            format!(
                "limit raised by ${} for this period{} (effective limit {}); {figures}",
                e.amount,
                e.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                limit.display_cents()
            ),
        )
        .await;
    }
    let alert_channels = budget
        .spec
        .alerts
        .as_ref()
        .map(|a| {
            Channel::from_parts(
                &namespace,
                a.sns_topic_arn.as_ref(),
                a.webhook_secret_ref.as_ref(),
            )
        })
        .unwrap_or_default();
    let cooldown = budget
        .spec
        .alerts
        .as_ref()
        .and_then(|a| a.cooldown.parse::<SignedDuration>().ok())
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or(Duration::from_secs(900));
    let alert = |channels: &[Channel], urgent: bool, subject: String, message: String| {
        if let Some(alerter) = &ctx.alerter {
            for channel in channels {
                alerter.send(Alert {
                    budget: key.clone(),
                    channel: channel.clone(),
                    subject: subject.clone(),
                    message: message.clone(),
                    cooldown,
                    urgent,
                });
            }
        }
    };
    for threshold in &outcome.newly_crossed {
        let message = format!("AIBudget {key}: {threshold}% threshold crossed: {figures}");
        publish_action(
            &ctx.recorder,
            &regarding,
            false,
            "ThresholdCrossed",
            &format!("Threshold{threshold}"),
            message.clone(),
        )
        .await;
        alert(
            &alert_channels,
            *threshold >= 100,
            format!("AIBudget {key} at {threshold}%"),
            message,
        );
    }
    let was_exhausted = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == "BudgetExhausted"))
        .is_some_and(|c| c.status == "True")
        && finished.is_none();
    if exhausted && !was_exhausted {
        let at_limit = snapshot.at_limit();
        let message = if at_limit {
            format!("AIBudget {key} reached its limit: {figures}; calls are refused until then")
        } else {
            format!(
                "AIBudget {key} is exhausted: {figures}; less than its dearest call ({}) is left, so calls that do not fit are refused until then",
                snapshot.largest_call.display_cents()
            )
        };
        publish(
            &ctx.recorder,
            &regarding,
            true,
            "BudgetExhausted",
            message.clone(),
        )
        .await;
        // The 100% threshold's alert says it already, unless the budget is exhausted short of
        // 100% (too little left for another call).
        if !(budget.spec.thresholds.contains(&100) && at_limit) {
            alert(
                &alert_channels,
                true,
                format!("AIBudget {key} exhausted"),
                message,
            );
        }
    }
    for (i, after) in &escalations {
        let step = &budget.spec.escalation[*i];
        let channels = Channel::from_parts(
            &namespace,
            step.sns_topic_arn.as_ref(),
            step.webhook_secret_ref.as_ref(),
        );
        let message = format!(
            "AIBudget {key} has been at its limit for {after} without acknowledgement (escalation step {}): {figures}. \
             Acknowledge with: kubectl annotate aib -n {namespace} {name} {ACKNOWLEDGED_ANNOTATION}=<your name>",
            i + 1
        );
        publish(
            &ctx.recorder,
            &regarding,
            true,
            "Escalated",
            message.clone(),
        )
        .await;
        alert(
            &channels,
            true,
            format!("ESCALATION: AIBudget {key} exhausted"),
            message,
        );
    }
    publish_refusals(&ctx, &key, &regarding, &figures).await;
    let notes = ctx
        .notes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&key);
    for note in notes.into_iter().flatten() {
        publish(&ctx.recorder, &regarding, false, "PriceChanged", note).await;
    }

    let forecast = aigov_api::evaluation::forecast(snapshot.spent, &snapshot.window, now);
    ctx.shared
        .metrics
        .budget(&namespace, &name, &snapshot, forecast);
    ctx.shared.metrics.reconciled(started.elapsed());

    let until_end = Duration::try_from(snapshot.window.end.duration_since(now)).unwrap_or_default();
    let until_step = next_step_due
        .and_then(|d| Duration::try_from(d.duration_since(now)).ok())
        .unwrap_or(REFRESH);
    Ok(Action::requeue(
        requeue
            .min(until_end + Duration::from_millis(50))
            .min(until_step + Duration::from_millis(50))
            .max(Duration::from_millis(20)),
    ))
}

async fn publish_refusals(
    ctx: &Context,
    key: &str,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    figures: &str,
) {
    let Some(fresh) = ctx.shared.take_notable(key) else {
        return;
    };
    let ready = {
        let mut events = ctx.refusal_events.lock().unwrap_or_else(|e| e.into_inner());
        let entry = events
            .entry(key.to_owned())
            .or_insert((Instant::now() - REFUSAL_EVENT_INTERVAL, Notable::default()));
        entry.1.refused += fresh.refused;
        entry.1.downgraded += fresh.downgraded;
        if fresh.last_downgrade.is_some() {
            entry.1.last_downgrade = fresh.last_downgrade;
        }
        if fresh.last_pod.is_some() {
            entry.1.last_pod = fresh.last_pod;
        }
        if entry.0.elapsed() >= REFUSAL_EVENT_INTERVAL {
            entry.0 = Instant::now();
            Some(std::mem::take(&mut entry.1))
        } else {
            None
        }
    };
    let Some(n) = ready else {
        // Not yet: come back when the interval has passed.
        let _ = ctx.shared.changed.send(key.to_owned());
        return;
    };
    if n.refused > 0 {
        publish(
            &ctx.recorder,
            regarding,
            true,
            "Throttled",
            format!(
                "{} call(s) refused (throttled or over the limit){}; {figures}",
                n.refused,
                n.last_pod
                    .map(|p| format!(", the last from pod {p}"))
                    .unwrap_or_default()
            ),
        )
        .await;
    }
    if n.downgraded > 0 {
        let (from, to) = n.last_downgrade.unwrap_or_default();
        publish(
            &ctx.recorder,
            regarding,
            true,
            "Downgraded",
            format!(
                "{} call(s) downgraded, the last from {from} to {to}; {figures}",
                n.downgraded
            ),
        )
        .await;
    }
}

fn error_policy(budget: Arc<AIBudget>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(budget = budget.name_any(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the reconciler until the process ends; `changed` names budgets whose ledger account
/// moved. Also expires silent gateways' slices every few seconds.
pub async fn run(
    ctx: Arc<Context>,
    changed: tokio::sync::mpsc::UnboundedReceiver<BudgetKey>,
    gateway_expiry: Duration,
    namespace: Option<String>,
) {
    let api: Api<AIBudget> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let triggers = futures::stream::unfold(changed, |mut receiver| async move {
        let key = receiver.recv().await?;
        let (namespace, name) = key.split_once('/').unwrap_or(("", &key));
        Some((ObjectRef::<AIBudget>::new(name).within(namespace), receiver))
    });
    // The controller's own cache of budgets, without managedFields (a third of each object).
    let (store, writer) = kube::runtime::reflector::store();
    let budgets = watcher::watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|budget: &mut AIBudget| budget.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects();
    // Bounded concurrency: 10,000 budgets at start-up must not mean 10,000 requests in flight
    // (each with its own connection and buffers).
    let controller = Controller::for_stream(budgets, store)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY),
        )
        .reconcile_on(triggers);
    let store = controller.store();
    let shared = ctx.shared.clone();
    tokio::spawn(async move {
        let mut ticks = 0u64;
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            shared.expire_gateways(gateway_expiry);
            ticks += 1;
            // Deleted budgets are rare: look for them every 30 seconds, off the async workers.
            if ticks.is_multiple_of(15) && store.wait_until_ready().await.is_ok() {
                let (store, shared) = (store.clone(), shared.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    shared.forget_deleted(|key| {
                        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
                        store.get(&ObjectRef::new(name).within(namespace)).is_some()
                    });
                })
                .await;
            }
        }
    });
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extension_lasts_for_the_period_it_was_granted_in() {
        let granted = extension_for(
            Some(&"50.00 launch".to_owned()),
            None,
            "2026-11-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(
            (granted.amount.as_str(), granted.reason.as_deref()),
            ("50.00", Some("launch"))
        );
        let same = extension_for(
            Some(&"50.00 launch".to_owned()),
            Some(&granted),
            "2026-11-01T00:00:00Z",
        );
        assert_eq!(same.as_ref(), Some(&granted));
        assert_eq!(
            extension_for(
                Some(&"50.00 launch".to_owned()),
                Some(&granted),
                "2026-12-01T00:00:00Z"
            ),
            None
        );
        let again = extension_for(
            Some(&"20 december".to_owned()),
            Some(&granted),
            "2026-12-01T00:00:00Z",
        )
        .unwrap();
        assert_eq!(again.period_start, "2026-12-01T00:00:00Z");
        assert_eq!(extension_for(Some(&"lots".to_owned()), None, "x"), None);
    }
}
