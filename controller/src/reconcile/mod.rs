//! The AIBudget reconciler: keeps each budget's period, ledger account and status current,
//! publishes its Events, records its alerts in the outbox and runs its escalation. Status is written with
//! server-side apply, at once when a threshold or the phase changes, else at most once per
//! `status_interval` (bursts of usage coalesce into one write).
//!
//! A reconcile is a pure [`plan::plan`] over copies (the budget, the ledger's account, the
//! time, what was last written and published) and a thin [`apply::apply`]: write the status,
//! then commit the ledger [`Transition`](aigov_ledger::ledger::Transition) it records, then
//! publish. The ledger moves only after the status recording the move is written, so a
//! failed write at a rollover loses neither the finished period's summary nor its
//! `PeriodRolledOver` Event: the retry plans both again. And records are acknowledged only
//! once every budget they were charged to has them in a written status (exactly once).
//!
//! # Following one budget
//!
//! Every reconcile runs in an `info` span `reconcile` with the fields `budget`
//! (`namespace/name`) and `outcome` (`written`, `coalesced`, `requeue`, or `failed`), so any
//! line logged during it names the budget. Each reconcile also ends with a `debug` line
//! `reconciled`; switch those on by adding `aigov_controller::reconcile=debug` to the
//! default filter (setting `RUST_LOG` replaces it, see `aigov_runtime::cli::init_tracing`):
//!
//! ```text
//! RUST_LOG=info,kube_runtime=warn,tower=warn,hyper=warn,aigov_controller::reconcile=debug
//! ```
//!
//! The directive covers the submodules (`aigov_controller::reconcile::apply`) too. Then
//! `grep 'budget=team/chat'` follows one budget; a line reads
//! `DEBUG reconcile{budget=team/chat outcome="written"}: aigov_controller::reconcile:
//! reconciled outcome="written" requeue_ms=300000`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aigov_api::period::Window;
use aigov_api::{AIBudget, ClusterAIBudget};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::Instrument;

use crate::alerts::Alerter;
use crate::error::{Error, Result};
use crate::ledger_service::LedgerShared;
use crate::status::Replicas;
use aigov_ledger::clock::Clock;
use aigov_ledger::key::{self, Level};
use aigov_ledger::ledger::{Account, BudgetKey};
use tokio::sync::mpsc::UnboundedReceiver;

pub mod apply;
pub mod cluster;
pub mod notices;
pub mod plan;
#[cfg(test)]
mod tests;
pub mod validity;

use notices::{EventNotice, RefusalGate};
use plan::{Ledgered, PlanInputs, Recollection};

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

/// What the reconciler remembers of one budget between reconciles (this replica only: a new
/// leader starts afresh, which at worst writes or tells something once more).
#[derive(Debug, Default)]
struct Memory {
    /// When this controller last wrote the status.
    last_write: Option<Instant>,
    /// The period start whose `PeriodRolledOver` Event went out.
    announced_rollover: Option<String>,
    /// Refusal Events' pacing and what awaits them.
    refusals: RefusalGate,
    /// Events queued from outside the reconcile, not yet published.
    queued_events: Vec<EventNotice>,
}

/// The reconciler's two clocks that flags set.
#[derive(Clone, Copy, Debug)]
pub struct Intervals {
    /// `--status-interval`: non-urgent status writes at most this often.
    pub status: Duration,
    /// `--gateway-expiry`: a silent gateway's holdings are returned after this long.
    pub gateway_expiry: Duration,
}

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
    /// `--gateway-expiry`: a silent gateway's holdings are returned after this long.
    pub gateway_expiry: Duration,
    memory: Mutex<HashMap<BudgetKey, Memory>>,
}

impl Context {
    /// A context.
    pub fn new(
        client: Client,
        shared: Arc<LedgerShared>,
        recorder: Recorder,
        alerter: Option<Alerter>,
        clock: Clock,
        intervals: Intervals,
    ) -> Arc<Context> {
        Arc::new(Context {
            client,
            shared,
            recorder,
            alerter,
            clock,
            status_interval: intervals.status,
            gateway_expiry: intervals.gateway_expiry,
            memory: Mutex::default(),
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
        for key in affected {
            let event = notices::price_changed(&note);
            self.remember(&key, |m| m.queued_events.push(event.clone()));
            let _ = self.shared.changed.send(key);
        }
    }

    /// Shows gateways that fell silent in their budgets' status, returns the holdings of
    /// those silent past the expiry, and queues a `HoldingsReturned` Event on each budget
    /// that got some back.
    pub fn watch_gateways(&self) {
        for returned in self
            .shared
            .watch_gateways(self.gateway_expiry, Instant::now())
        {
            let event = notices::holdings_returned(&returned, self.gateway_expiry);
            self.remember(&returned.budget, |m| m.queued_events.push(event));
            let _ = self.shared.changed.send(returned.budget);
        }
    }

    /// Changes what is remembered of `key`.
    fn remember(&self, key: &str, change: impl FnOnce(&mut Memory)) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        change(memory.entry(key.to_owned()).or_default());
    }

    /// Forgets what is remembered of deleted budgets.
    fn forget(&self, keys: &[BudgetKey]) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            memory.remove(key);
        }
        drop(memory);
        if let Some(alerter) = &self.alerter {
            alerter.forget(keys);
        }
    }

    /// What the plan needs to know of the past; takes what gateways reported since the last
    /// reconcile into the refusal gate (it stays there until its Events went out), and what
    /// alert deliveries found that `budget`'s status does not show yet.
    fn recall(&self, key: &str, budget: &AIBudget) -> Recollection {
        let observed = budget.status.as_ref().and_then(|s| s.alerts.as_ref());
        let alert_outcomes = self
            .alerter
            .as_ref()
            .map(|a| a.outcomes(key, observed))
            .unwrap_or_default();
        let fresh = self.shared.take_notable(key);
        let now = Instant::now();
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let m = memory.entry(key.to_owned()).or_default();
        if let Some(fresh) = fresh {
            m.refusals.add(fresh);
        }
        Recollection {
            since_write: m.last_write.map(|t| now.saturating_duration_since(t)),
            announced_rollover: m.announced_rollover.clone(),
            refusals: m.refusals.pending().clone(),
            refusal_wait: m.refusals.wait(now),
            queued_events: m.queued_events.clone(),
            alert_outcomes,
        }
    }

    /// A copy of the budget's account, or of the account opening it would create (for this
    /// object: its UID and creation time, see [`Account::for_object`]). An account of another
    /// object under the same name is copied as it is: the plan decides it is a new budget.
    fn ledgered(
        &self,
        key: &str,
        budget: &AIBudget,
        window: &Window,
        limit: aigov_api::Usd,
    ) -> Ledgered {
        let keys = budget
            .spec
            .attribution
            .as_ref()
            .map(|a| a.keys.clone())
            .unwrap_or_default();
        let silent = self.shared.silent_gateways(Instant::now());
        let mut ledger = self.shared.ledger();
        // The keys are spec, not spend: declaring them moves no figure a status must record
        // first, so the ledger's account takes them at once.
        let value_limits = budget.spec.value_limits();
        if let Some(account) = ledger.account_mut(key) {
            account.declare_attribution(&keys);
            account.declare_value_limits(&value_limits);
        }
        let replicas = Replicas {
            in_flight: ledger.in_flight(key),
            silent,
            expiry: self.gateway_expiry,
        };
        match ledger.account(key) {
            Some(account) => Ledgered {
                account: account.clone(),
                unopened: None,
                replicas,
            },
            None => {
                let mut restored = Account::restore(window.clone(), limit, budget.status.as_ref())
                    .for_object(plan::object_uid(budget), plan::object_created(budget));
                restored.declare_attribution(&keys);
                restored.declare_value_limits(&value_limits);
                Ledgered {
                    account: ledger.preview(key, restored.clone()),
                    unopened: Some(restored),
                    replicas,
                }
            }
        }
    }
}

/// Reconciles one AIBudget, in a span naming it (see the module's doc).
pub async fn reconcile(budget: Arc<AIBudget>, ctx: Arc<Context>) -> Result<Action> {
    let key = key::namespaced(&budget.namespace().unwrap_or_default(), &budget.name_any());
    reconcile_in_span(&budget, None, key, &ctx).await
}

/// Reconciles one ClusterAIBudget, as the AIBudget it carries ([`cluster::view`]).
pub async fn reconcile_cluster(cap: Arc<ClusterAIBudget>, ctx: Arc<Context>) -> Result<Action> {
    let view = cluster::view(&cap);
    let key = key::cluster(&cap.name_any());
    reconcile_in_span(&view, cap.spec.namespace_selector.as_ref(), key, &ctx).await
}

/// Reconciles `budget` (`namespaces`: a ClusterAIBudget's selector) in a span naming `key`.
async fn reconcile_in_span(
    budget: &AIBudget,
    namespaces: Option<&LabelSelector>,
    key: BudgetKey,
    ctx: &Context,
) -> Result<Action> {
    let span = tracing::info_span!("reconcile", budget = %key, outcome = tracing::field::Empty);
    async move {
        let started = Instant::now();
        let result = plan_and_apply(budget, namespaces, &key, ctx).await;
        let span = tracing::Span::current();
        match &result {
            Ok(applied) => {
                span.record("outcome", applied.outcome);
                ctx.shared.metrics.reconciled(started.elapsed());
                tracing::debug!(
                    outcome = applied.outcome,
                    requeue_ms = applied.requeue.as_millis() as u64,
                    "reconciled"
                );
            }
            Err(error) => {
                span.record("outcome", "failed");
                tracing::debug!(outcome = "failed", %error, "reconciled");
            }
        }
        result.map(|applied| Action::requeue(applied.requeue))
    }
    .instrument(span)
    .await
}

/// Gathers the inputs, plans, applies. A budget that cannot be evaluated is planned too: its
/// `Ready` condition and a Warning Event say why (never only a log line and a retry).
async fn plan_and_apply(
    budget: &AIBudget,
    namespaces: Option<&LabelSelector>,
    key: &str,
    ctx: &Context,
) -> Result<apply::Applied> {
    let now = ctx.clock.now();
    let (policy, window) = match validity::evaluate(budget, namespaces, now) {
        Ok(evaluated) => evaluated,
        Err(why) => {
            let plan = plan::plan_not_ready(budget, key, &why, now);
            return apply::apply_not_ready(ctx, budget, key, plan).await;
        }
    };
    let terms = plan::terms(budget, policy.limit, &window);
    let ledgered = ctx.ledgered(&policy.key, budget, &window, terms.limit);
    // What rollover carries is read from the same snapshot the plan rolls over from.
    let carried = plan::carried(budget, policy.limit, &window, &ledgered);
    let terms = terms.carrying(carried);
    let recollection = ctx.recall(&policy.key, budget);
    let plan = plan::plan(&PlanInputs {
        budget,
        key: &policy.key,
        window: &window,
        terms: &terms,
        ledgered: &ledgered,
        now,
        recollection: &recollection,
        status_interval: ctx.status_interval,
        alerts: ctx.alerter.as_ref().map(|a| a.retry()),
    });
    apply::apply(ctx, budget, &policy.key, plan).await
}

fn error_policy<K: ResourceExt>(budget: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(budget = budget.name_any(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the reconcilers until the process ends: of AIBudgets (in `namespace`, else all) and,
/// when every namespace is watched, of ClusterAIBudgets (a cap over namespaces needs a
/// cluster-wide install, as the gateways enforce it only then). `changed` names budgets whose
/// ledger account moved. Also expires silent gateways' slices every few seconds.
pub async fn run(
    ctx: Arc<Context>,
    mut changed: tokio::sync::mpsc::UnboundedReceiver<BudgetKey>,
    namespace: Option<String>,
) {
    let (budgets_changed, budget_triggers) = tokio::sync::mpsc::unbounded_channel();
    let (caps_changed, cap_triggers) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(key) = changed.recv().await {
            let _ = match key::level(&key) {
                Level::Namespace => budgets_changed.send(key),
                Level::Cluster => caps_changed.send(key),
            };
        }
    });
    let budgets = controller_for(
        match &namespace {
            Some(ns) => Api::namespaced(ctx.client.clone(), ns),
            None => Api::all(ctx.client.clone()),
        },
        budget_triggers,
    );
    let caps = namespace
        .is_none()
        .then(|| controller_for(Api::all(ctx.client.clone()), cap_triggers));
    tokio::spawn(housekeep(
        ctx.clone(),
        budgets.store(),
        caps.as_ref().map(|c| c.store()),
    ));
    let budgets = budgets.run(reconcile, error_policy, ctx.clone());
    let budgets = budgets.for_each(|_| futures::future::ready(()));
    match caps {
        Some(caps) => {
            let caps = caps.run(reconcile_cluster, error_policy, ctx);
            let caps = caps.for_each(|_| futures::future::ready(()));
            tokio::join!(budgets, caps);
        }
        None => budgets.await,
    }
}

/// A controller of `K` over `api`, reconciling again the objects `triggers` names by key.
fn controller_for<K>(api: Api<K>, triggers: UnboundedReceiver<BudgetKey>) -> Controller<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let triggers = futures::stream::unfold(triggers, |mut receiver| async move {
        let key = receiver.recv().await?;
        Some((object_of::<K>(&key), receiver))
    });
    // The controller's own cache of budgets, without managedFields (a third of each object).
    let (store, writer) = kube::runtime::reflector::store();
    let objects = watcher::watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|budget: &mut K| budget.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects();
    // Bounded concurrency: 10,000 budgets at start-up must not mean 10,000 requests in flight
    // (each with its own connection and buffers).
    Controller::for_stream(objects, store)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY),
        )
        .reconcile_on(triggers)
}

/// The object a budget key names.
fn object_of<K: kube::Resource<DynamicType = ()>>(key: &str) -> ObjectRef<K> {
    match key::parts(key) {
        (Some(namespace), name) => ObjectRef::new(name).within(namespace),
        (None, name) => ObjectRef::new(name),
    }
}

/// Every 2 seconds, expires silent gateways; every 30, forgets the accounts of budgets that
/// no longer exist (rare: looked for off the async workers).
async fn housekeep(
    ctx: Arc<Context>,
    budgets: Store<AIBudget>,
    caps: Option<Store<ClusterAIBudget>>,
) {
    let mut ticks = 0u64;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        ctx.watch_gateways();
        ticks += 1;
        if !ticks.is_multiple_of(15) || budgets.wait_until_ready().await.is_err() {
            continue;
        }
        if let Some(caps) = &caps
            && caps.wait_until_ready().await.is_err()
        {
            continue;
        }
        let (shared, budgets, caps) = (ctx.shared.clone(), budgets.clone(), caps.clone());
        let gone = tokio::task::spawn_blocking(move || {
            shared.forget_deleted(|key| match key::level(key) {
                Level::Namespace => budgets.get(&object_of(key)).is_some(),
                Level::Cluster => caps
                    .as_ref()
                    .is_some_and(|c| c.get(&object_of(key)).is_some()),
            })
        })
        .await
        .unwrap_or_default();
        ctx.forget(&gone);
    }
}
