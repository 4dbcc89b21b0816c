//! The ledger's gRPC service: takes gateways' usage records and holdings, grants slices,
//! acknowledges what AIBudget status has persisted. Only the leader answers; other replicas
//! say so and the gateway tries the next endpoint.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aigov_api::Usd;
use jiff::Timestamp;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::emf::EmfWriter;
use crate::metrics::Metrics;
use aigov_ledger::clock::Clock;
use aigov_ledger::ledger::{BudgetKey, Charge, Ledger, RECOVERY_GATEWAY};
use aigov_ledger::outbox::Outgoing;
use aigov_ledger::proto::ledger_server::{Ledger as LedgerApi, LedgerServer};
use aigov_ledger::proto::{
    BudgetFigures, ExchangeRequest, ExchangeResponse, Grant, Holding, Refusal, UsageRecord,
};
use aigov_ledger::record::{UsageEvent, dimension_keys};
use aigov_ledger::value_limits;
use aigov_runtime::prices::Prices;

/// Something a record did that people should hear about, published by the reconciler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notable {
    /// Calls refused (throttled or exhausted) since the last report.
    pub refused: u64,
    /// Calls downgraded since the last report, with the last pair of models.
    pub downgraded: u64,
    /// `(from, to)` of the last downgrade.
    pub last_downgrade: Option<(String, String)>,
    /// The last refusal's pod.
    pub last_pod: Option<String>,
    /// Models this budget paid the fallback price for for the first time (in this leader's
    /// memory): nothing prices them, so they are charged the dearest catalog rates.
    pub unknown_models: Vec<String>,
    /// Calls made around the gateway by a principal mapped to the budget's namespace, found in
    /// Bedrock's invocation logs: `(the first call's request ID, what to tell)`, one per
    /// principal and model ([`crate::second_source::bypass`]).
    pub bypasses: Vec<(String, String)>,
}

impl Notable {
    /// Adds what happened since: counts add up, the latest pod and downgrade win.
    pub fn add(&mut self, fresh: Notable) {
        self.refused += fresh.refused;
        self.downgraded += fresh.downgraded;
        if fresh.last_downgrade.is_some() {
            self.last_downgrade = fresh.last_downgrade;
        }
        if fresh.last_pod.is_some() {
            self.last_pod = fresh.last_pod;
        }
        for model in fresh.unknown_models {
            if !self.unknown_models.contains(&model) {
                self.unknown_models.push(model);
            }
        }
        self.bypasses.extend(fresh.bypasses);
    }

    /// True when there is nothing to tell.
    pub fn is_empty(&self) -> bool {
        self.refused == 0
            && self.downgraded == 0
            && self.unknown_models.is_empty()
            && self.bypasses.is_empty()
    }
}

/// A gateway unheard from for this long is shown as silent in the status of every budget it
/// holds headroom of (`status.holdings`): a dozen routine exchanges missed (250 ms apart by
/// default), so a busy or briefly slow replica is not, a killed one soon is. What it holds
/// still counts until `--gateway-expiry` (it may be alive and spending).
pub const SILENT_AFTER: Duration = Duration::from_secs(3);

/// When a gateway was last heard from, and whether the budgets it holds were told it fell
/// silent (so that they are told once, and again when it comes back).
#[derive(Clone, Copy, Debug)]
struct Contact {
    last: Instant,
    /// `last` on the wall clock, which Bedrock's invocation logs are timed by.
    last_wall: Timestamp,
    told_silent: bool,
}

/// How far the controller has charged calls from Bedrock's invocation logs
/// (`crate::second_source`). While it runs, a silent gateway's holdings stay held past
/// `--gateway-expiry` until the logs have been read beyond the gateway's last contact: the
/// calls it made and never reported are charged first, so the holdings they were reserved
/// from cannot be granted again meanwhile and spend stays within the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recovery {
    /// Not reading the logs: holdings return at the expiry (calls never reported are lost).
    #[default]
    Off,
    /// Every call logged before this is charged.
    Through(Timestamp),
}

/// What a silent gateway's expiry returned to one budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Returned {
    /// The budget.
    pub budget: BudgetKey,
    /// The gateway.
    pub gateway: String,
    /// What it held of the budget.
    pub amount: Usd,
    /// How long it had been silent.
    pub silent_for: Duration,
}

/// How long records for a budget this leader has not loaded wait before the budget is taken
/// for deleted. Longer than any watch lag; short enough that a typo'd budget costs no memory.
const PARKED_GRACE: Duration = Duration::from_secs(60);

/// The `reason` label of a refusal.
fn refusal_reason(refusal: i32) -> &'static str {
    match Refusal::try_from(refusal) {
        Ok(Refusal::Throttled) => "throttled",
        Ok(Refusal::Exhausted) => "exhausted",
        Ok(Refusal::ModelForbidden) => "model_forbidden",
        Ok(Refusal::MetadataMissing) => "metadata_missing",
        _ => "other",
    }
}

/// The leader's ledger and what the service and reconciler share.
pub struct LedgerShared {
    ledger: Mutex<Ledger>,
    /// Prices for settling records.
    pub prices: Prices,
    /// True while this replica leads.
    pub leading: AtomicBool,
    /// Until when this replica can prove it holds the Lease: the start of its last successful
    /// renewal plus the renewal deadline ([`crate::leader::Elector::hold`]). Past it, nothing
    /// is granted or acknowledged, even before the renewal in progress gives up.
    proven_until: Mutex<Option<Instant>>,
    session: Mutex<(String, Instant)>,
    /// The Lease's transitions when this replica acquired it: sessions of later leaders carry
    /// higher epochs, so a gateway can tell a stale leader's answer from a newer one's.
    epoch: AtomicU64,
    settle: Duration,
    /// When each gateway was last heard from ([`Contact`]).
    seen: Mutex<HashMap<String, Contact>>,
    notable: Mutex<HashMap<BudgetKey, Notable>>,
    /// `(budget, model)` pairs already told to pay the fallback price.
    unknown_models_announced: Mutex<HashSet<(BudgetKey, String)>>,
    recovery: Mutex<Recovery>,
    /// Budgets whose account changed; the reconciler writes their status.
    pub changed: mpsc::UnboundedSender<BudgetKey>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Time.
    pub clock: Clock,
    emf: Option<EmfWriter>,
}

impl LedgerShared {
    /// Shared state, and the receiver of changed budgets.
    pub fn new(
        prices: Prices,
        settle: Duration,
        metrics: Arc<Metrics>,
        clock: Clock,
        emf: Option<EmfWriter>,
    ) -> (Arc<LedgerShared>, mpsc::UnboundedReceiver<BudgetKey>) {
        let (changed, receiver) = mpsc::unbounded_channel();
        let shared = LedgerShared {
            ledger: Mutex::new(Ledger::default()),
            prices,
            leading: AtomicBool::new(false),
            proven_until: Mutex::new(None),
            session: Mutex::new((String::new(), Instant::now())),
            epoch: AtomicU64::new(0),
            settle,
            seen: Mutex::default(),
            notable: Mutex::default(),
            unknown_models_announced: Mutex::default(),
            recovery: Mutex::default(),
            changed,
            metrics,
            clock,
            emf,
        };
        (Arc::new(shared), receiver)
    }

    /// The ledger, locked.
    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts leading: a new session at `epoch`, no grants until gateways have reported their
    /// holdings. Leadership is proven until `proven_until` and must be renewed with
    /// [`LedgerShared::lease_renewed`].
    pub fn start_leading(&self, identity: &str, epoch: u64, proven_until: Instant) {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) =
            (format!("{identity}-{nonce:x}"), Instant::now());
        self.epoch.store(epoch, Ordering::Release);
        self.lease_renewed(proven_until);
        self.leading.store(true, Ordering::Release);
    }

    /// The Lease was renewed: leadership is proven until `until`.
    pub fn lease_renewed(&self, until: Instant) {
        *self.proven_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
    }

    /// True while this replica leads and can prove it.
    pub fn leads(&self) -> bool {
        self.leading.load(Ordering::Acquire)
            && self
                .proven_until
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|until| Instant::now() < until)
    }

    /// Stops leading (a graceful stop, or the Lease lost): exchanges are refused from now on,
    /// so gateways turn to the next controller and nothing more is granted or acknowledged by
    /// this replica.
    pub fn stop_leading(&self) {
        self.leading.store(false, Ordering::Release);
    }

    /// What records did to `key` since the last call.
    pub fn take_notable(&self, key: &str) -> Option<Notable> {
        self.notable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
    }

    /// Looks over the gateways heard from (cheap: one pass): the budgets a gateway holds are
    /// told when it falls silent ([`SILENT_AFTER`]), and the holdings of one silent for longer
    /// than `expiry` are returned to their budgets. Returns what was returned: the caller
    /// has those budgets reconciled ([`crate::reconcile::Context::watch_gateways`]).
    pub fn watch_gateways(&self, expiry: Duration, now: Instant) -> Vec<Returned> {
        let (fell_silent, stale) = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let mut fell_silent = Vec::new();
            for (gateway, contact) in seen.iter_mut() {
                if !contact.told_silent && now.duration_since(contact.last) > SILENT_AFTER {
                    contact.told_silent = true;
                    fell_silent.push(gateway.clone());
                }
            }
            let recovery = self.recovery();
            let stale: Vec<(String, Duration)> = seen
                .iter()
                .filter(|(_, c)| match recovery {
                    Recovery::Off => true,
                    Recovery::Through(t) => t > c.last_wall,
                })
                .map(|(g, c)| (g.clone(), now.duration_since(c.last)))
                .filter(|(_, silent_for)| *silent_for > expiry)
                .collect();
            seen.retain(|g, _| !stale.iter().any(|(s, _)| s == g));
            (fell_silent, stale)
        };
        let mut ledger = self.ledger();
        for gateway in &fell_silent {
            for key in ledger.budgets_held_by(gateway) {
                let _ = self.changed.send(key);
            }
        }
        let mut returned = Vec::new();
        for (gateway, silent_for) in stale {
            tracing::info!(
                gateway,
                ?silent_for,
                "gateway silent: its slices return to the budgets"
            );
            for (budget, amount) in ledger.expire_gateway(&gateway) {
                returned.push(Returned {
                    budget,
                    gateway: gateway.clone(),
                    amount,
                    silent_for,
                });
            }
        }
        returned
    }

    /// Tells `key`'s reconciler of calls made around the gateway (a `BypassDetected` Event and
    /// alert): `first` is the first call's request ID (what makes the alert's ID).
    pub fn note_bypass(&self, key: &str, first: &str, note: String) {
        let mut notable = self.notable.lock().unwrap_or_else(|e| e.into_inner());
        let n = notable.entry(key.to_owned()).or_default();
        n.bypasses.push((first.to_owned(), note));
        drop(notable);
        let _ = self.changed.send(key.to_owned());
    }

    /// How far calls are charged from Bedrock's invocation logs ([`Recovery`]).
    pub fn recovery(&self) -> Recovery {
        *self.recovery.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The invocation logs are read, and every call logged before `through` is charged.
    pub fn recovered_through(&self, through: Timestamp) {
        *self.recovery.lock().unwrap_or_else(|e| e.into_inner()) = Recovery::Through(through);
    }

    /// Charges calls recovered from Bedrock's invocation logs, as [`RECOVERY_GATEWAY`]
    /// (sequences increasing, see `crate::second_source`); returns the sequence through which
    /// they are persisted in status.
    pub fn recover(&self, records: Vec<UsageRecord>) -> Result<u64, Status> {
        let request = ExchangeRequest {
            gateway_id: RECOVERY_GATEWAY.to_owned(),
            records,
            ..Default::default()
        };
        self.exchange(request).map(|r| r.acknowledged_through)
    }

    /// The gateways unheard from for longer than [`SILENT_AFTER`] at `now`, with how long.
    pub fn silent_gateways(&self, now: Instant) -> HashMap<String, Duration> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(g, c)| (g.clone(), now.duration_since(c.last)))
            .filter(|(_, silent_for)| *silent_for > SILENT_AFTER)
            .collect()
    }

    /// Notes that `gateway` was heard from; true when it had been shown as silent (its
    /// budgets' status is to show it is back).
    fn heard_from(&self, gateway: &str) -> bool {
        if gateway == RECOVERY_GATEWAY {
            return false; // the controller's own pseudo-gateway holds nothing and never falls silent
        }
        let contact = Contact {
            last: Instant::now(),
            last_wall: Timestamp::now(),
            told_silent: false,
        };
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(gateway.to_owned(), contact)
            .is_some_and(|was| was.told_silent)
    }

    /// Forgets the accounts of budgets that no longer exist, and records waiting for a budget
    /// that has not appeared within `PARKED_GRACE` (it was deleted before this leader saw it),
    /// with their metric series ([`Metrics::forget`]). Returns the budgets forgotten, so the
    /// reconciler can drop what it remembers of them too.
    pub fn forget_deleted(&self, exists: impl Fn(&str) -> bool) -> Vec<BudgetKey> {
        let mut ledger = self.ledger();
        let abandoned = ledger
            .parked()
            .filter(|(key, since)| since.elapsed() > PARKED_GRACE && !exists(key))
            .map(|(key, _)| key.clone());
        let gone: Vec<BudgetKey> = ledger
            .keys()
            .filter(|k| !exists(k))
            .cloned()
            .chain(abandoned)
            .collect();
        for key in &gone {
            ledger.remove(key);
        }
        drop(ledger);
        for key in &gone {
            let (namespace, name) = key.split_once('/').unwrap_or(("", key));
            self.metrics.forget(namespace, name);
        }
        gone
    }

    /// Tells metrics what one charge did, whether it was counted on arrival or when its
    /// budget's account was opened later, and stages its usage record for CloudWatch (written
    /// once its status is, [`aigov_ledger::outbox`]). A charge in doubt was counted by a
    /// previous leader: only its usage record may be missing.
    pub fn publish(&self, ledger: &mut Ledger, charge: &Charge, record: &UsageRecord) {
        if !charge.in_doubt {
            if charge.after != charge.before {
                self.metrics
                    .spent(&charge.budget, &record.model, charge.after - charge.before);
            }
            if record.refusal != Refusal::None as i32 {
                self.metrics
                    .refused(&charge.budget, refusal_reason(record.refusal));
            }
        }
        if self.emf.is_none() || charge.cost.is_zero() {
            return;
        }
        let (namespace, budget) = aigov_ledger::key::dimensions(&charge.budget);
        let event = UsageEvent {
            timestamp_ms: record.occurred_at_ms,
            namespace: namespace.to_owned(),
            budget: budget.to_owned(),
            model: record.model.clone(),
            cost: charge.cost,
            tokens: [
                record.input_tokens,
                record.output_tokens,
                record.cache_read_tokens,
                record.cache_write_tokens + record.cache_write_1h_tokens,
            ],
            request_id: record.request_id.clone(),
            pod: format!("{}/{}", record.pod_namespace, record.pod_name),
            workload: aigov_ledger::ledger::workload_of(record),
            operation: record.operation.clone(),
            metadata: record.request_metadata.clone(),
            recovered: charge.gateway == RECOVERY_GATEWAY,
            dimension_keys: ledger
                .account(&charge.budget)
                .map(|a| dimension_keys(a.attribution.keys(), &record.request_metadata))
                .unwrap_or_default(),
        };
        ledger.stage_usage(Outgoing {
            gateway: charge.gateway.clone(),
            sequence: charge.sequence,
            budget: charge.budget.clone(),
            event,
            in_doubt: charge.in_doubt,
        });
    }

    /// Hands the usage records whose status is written to the writer, and takes back what it
    /// wrote. Returns whether acknowledgements must wait for usage records (they do while
    /// the writer keeps up; see [`EmfWriter::overdue`]).
    pub fn sync_usage(&self, ledger: &mut Ledger) -> bool {
        let Some(emf) = &self.emf else {
            return false;
        };
        for (gateway, sequence) in emf.take_written() {
            ledger.usage_written(&gateway, sequence);
        }
        for outgoing in ledger.ready_usage() {
            emf.push(outgoing);
        }
        self.metrics.usage_unwritten(ledger.usage_unwritten());
        !emf.overdue()
    }

    /// Notes, the first time (in this leader's memory), that `budget` paid the fallback
    /// price for `model`, for the reconciler's `UnknownModelPriced` Event.
    fn note_unknown_model(&self, budget: &str, model: &str) {
        let mut announced = self
            .unknown_models_announced
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if announced.insert((budget.to_owned(), model.to_owned())) {
            let mut notable = self.notable.lock().unwrap_or_else(|e| e.into_inner());
            let n = notable.entry(budget.to_owned()).or_default();
            n.unknown_models.push(model.to_owned());
        }
    }

    /// Notes a refusal or a downgrade for the reconciler's Events on every budget `record`
    /// names, and marks those budgets changed.
    fn note(&self, record: &UsageRecord, changed: &mut HashSet<BudgetKey>) {
        let refused = record.refusal == Refusal::Throttled as i32
            || record.refusal == Refusal::Exhausted as i32;
        if !refused && record.downgraded_from.is_empty() {
            return;
        }
        let mut notable = self.notable.lock().unwrap_or_else(|e| e.into_inner());
        for key in &record.budgets {
            let n = notable.entry(key.clone()).or_default();
            if refused {
                n.refused += 1;
                n.last_pod = Some(format!("{}/{}", record.pod_namespace, record.pod_name));
            } else {
                n.downgraded += 1;
                n.last_downgrade = Some((record.downgraded_from.clone(), record.model.clone()));
            }
            changed.insert(key.clone());
        }
    }

    fn exchange(&self, request: ExchangeRequest) -> Result<ExchangeResponse, Status> {
        if !self.leads() {
            return Err(Status::failed_precondition(
                "not the leader (or its Lease renewal is overdue)",
            ));
        }
        let started = Instant::now();
        let gateway = request.gateway_id.as_str();
        if gateway.is_empty() || gateway.len() > 253 {
            return Err(Status::invalid_argument(
                "gateway_id must be 1 to 253 characters",
            ));
        }
        let (session, settling) = {
            let s = self.session.lock().unwrap_or_else(|e| e.into_inner());
            (s.0.clone(), s.1.elapsed() < self.settle)
        };
        let came_back = self.heard_from(gateway);
        let prices = self.prices.current();
        let mut changed: HashSet<BudgetKey> = HashSet::new();
        let mut ledger = self.ledger();
        if came_back {
            changed.extend(ledger.budgets_held_by(gateway));
        }
        for record in &request.records {
            for charge in ledger.apply(gateway, record, &prices) {
                if charge.unknown_model && !charge.in_doubt {
                    self.note_unknown_model(&charge.budget, &record.model);
                }
                self.publish(&mut ledger, &charge, record);
                changed.insert(charge.budget);
            }
            self.note(record, &mut changed);
        }
        let mut grants = Vec::new();
        let mut budgets = Vec::new();
        for holding in &request.holdings {
            let answer = take_holding(&mut ledger, gateway, holding, settling, started);
            if answer.held_changed {
                changed.insert(value_limits::budget_of(&holding.budget).to_owned());
            }
            grants.extend(answer.grant);
            budgets.extend(answer.figures);
        }
        let wait_for_usage = self.sync_usage(&mut ledger);
        let acknowledged_through = ledger.acknowledge(gateway, wait_for_usage);
        drop(ledger);
        for key in changed {
            let _ = self.changed.send(key);
        }
        self.metrics
            .exchanged(started.elapsed(), request.records.len() as u64);
        Ok(ExchangeResponse {
            acknowledged_through,
            grants,
            budgets,
            session,
            settling,
            epoch: self.epoch.load(Ordering::Acquire),
        })
    }
}

/// What one holding of an exchange gets back.
struct HoldingAnswer {
    /// The gateway's holding changed (the status shows holdings).
    held_changed: bool,
    /// A new slice, if one was asked for and could be granted.
    grant: Option<Grant>,
    /// The budget's figures, when its account is open.
    figures: Option<BudgetFigures>,
}

/// Takes `gateway`'s report of one holding (what it holds, what calls in flight reserve, the
/// calls it saw) and answers it: a grant of what it wants (nothing while `settling`) and the
/// budget's figures with its rate share and headroom advice.
fn take_holding(
    ledger: &mut Ledger,
    gateway: &str,
    holding: &Holding,
    settling: bool,
    now: Instant,
) -> HoldingAnswer {
    let key = holding.budget.as_str();
    let held = Usd::parse(&holding.held).unwrap_or(Usd::ZERO);
    let reserved = Usd::parse(&holding.reserved).unwrap_or(Usd::ZERO);
    let held_changed = ledger.set_held(key, gateway, held, reserved);
    let wanted = Usd::parse(&holding.wanted).unwrap_or(Usd::ZERO);
    let grant = (!settling && !wanted.is_zero())
        .then(|| ledger.grant(key, gateway, wanted, now))
        .filter(|amount| !amount.is_zero())
        .map(|amount| Grant {
            budget: key.to_owned(),
            amount: amount.to_api_string(),
        });
    let figures = ledger.figures(key).is_some().then(|| {
        // Soft-limit rates are the budget's; a value account has none to split.
        let rate_share = match value_limits::split(key) {
            Some(_) => 1.0,
            None => ledger.rate_share(key, gateway, holding.calls, now),
        };
        let advice = ledger.advice(key, gateway, now);
        let (spent, limit, window) = ledger.figures(key).expect("checked above");
        BudgetFigures {
            budget: key.to_owned(),
            spent: spent.to_api_string(),
            limit: limit.to_api_string(),
            period_end: window.end.to_string(),
            settling,
            rate_share,
            in_flight: advice.in_flight.to_api_string(),
            give_back: advice.give_back,
            recalling: advice.recalling,
        }
    });
    HoldingAnswer {
        held_changed,
        grant,
        figures,
    }
}

/// The tonic service over the shared ledger.
#[derive(Clone)]
pub struct LedgerService {
    shared: Arc<LedgerShared>,
}

impl LedgerService {
    /// The gRPC server for `shared`, with message limits raised for large record batches.
    pub fn server(shared: Arc<LedgerShared>) -> LedgerServer<LedgerService> {
        LedgerServer::new(LedgerService { shared })
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }
}

#[tonic::async_trait]
impl LedgerApi for LedgerService {
    async fn exchange(
        &self,
        request: Request<ExchangeRequest>,
    ) -> Result<Response<ExchangeResponse>, Status> {
        self.shared
            .exchange(request.into_inner())
            .map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigov_api::period::{Period, time_zone};
    use aigov_ledger::ledger::Account;
    use jiff::Timestamp;
    use prometheus_client::registry::Registry;

    fn shared() -> Arc<LedgerShared> {
        let metrics = Arc::new(Metrics::default());
        let clock = Clock::system();
        LedgerShared::new(Prices::default(), Duration::ZERO, metrics, clock, None).0
    }

    fn request() -> ExchangeRequest {
        ExchangeRequest {
            gateway_id: "gw-1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_leader_answers_only_while_it_can_prove_it_holds_the_lease() {
        let shared = shared();
        assert!(shared.exchange(request()).is_err(), "not leading yet");
        let soon = Instant::now() + Duration::from_millis(200);
        shared.start_leading("c-0", 7, soon);
        let answer = shared.exchange(request()).expect("leading");
        assert_eq!(answer.epoch, 7, "the session carries the Lease's epoch");
        std::thread::sleep(Duration::from_millis(250));
        let refused = shared.exchange(request()).expect_err("the proof ran out");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        shared.lease_renewed(Instant::now() + Duration::from_secs(5));
        assert!(shared.exchange(request()).is_ok(), "renewed");
        shared.stop_leading();
        assert!(shared.exchange(request()).is_err(), "stopped");
    }

    #[test]
    fn a_silent_gateway_is_shown_then_its_holdings_return_after_the_expiry_and_once() {
        let (shared, mut changed) = LedgerShared::new(
            Prices::default(),
            Duration::ZERO,
            Arc::new(Metrics::default()),
            Clock::system(),
            None,
        );
        let window = Period::Monthly
            .window_at(Timestamp::now(), &time_zone("UTC").unwrap())
            .unwrap();
        let account = Account::restore(window, Usd::parse("10").unwrap(), None);
        shared.ledger().insert("team/chat".into(), account);
        shared.start_leading("c-0", 1, Instant::now() + Duration::from_secs(60));
        let holding = Holding {
            budget: "team/chat".into(),
            held: "0.40".into(),
            ..Default::default()
        };
        let heard = Instant::now();
        shared
            .exchange(ExchangeRequest {
                holdings: vec![holding],
                ..request()
            })
            .expect("leading");
        while changed.try_recv().is_ok() {}
        let expiry = Duration::from_secs(8);

        assert!(shared.silent_gateways(heard).is_empty(), "just heard from");
        let later = heard + Duration::from_secs(4);
        assert!(shared.watch_gateways(expiry, later).is_empty());
        assert_eq!(changed.try_recv().ok().as_deref(), Some("team/chat"));
        assert!(shared.silent_gateways(later).contains_key("gw-1"));
        shared.watch_gateways(expiry, later + Duration::from_secs(1));
        assert!(changed.try_recv().is_err(), "told once that it fell silent");

        let returned = shared.watch_gateways(expiry, heard + Duration::from_secs(9));
        assert_eq!(returned.len(), 1);
        assert_eq!(
            (returned[0].budget.as_str(), returned[0].gateway.as_str()),
            ("team/chat", "gw-1")
        );
        assert_eq!(returned[0].amount, Usd::parse("0.40").unwrap());
        let account = shared.ledger().account("team/chat").cloned().unwrap();
        assert!(account.held_total().is_zero(), "returned to the budget");
        let again = shared.watch_gateways(expiry, heard + Duration::from_secs(20));
        assert!(again.is_empty(), "returned once");
    }

    #[test]
    fn forgetting_a_deleted_budget_removes_its_metric_series() {
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::register(&mut registry));
        let (shared, _changed) = LedgerShared::new(
            Prices::default(),
            Duration::ZERO,
            metrics.clone(),
            Clock::system(),
            None,
        );
        let window = Period::Monthly
            .window_at(
                "2026-11-10T00:00:00Z".parse().unwrap(),
                &time_zone("UTC").unwrap(),
            )
            .unwrap();
        for key in ["team/gone", "team/kept"] {
            let account = Account::restore(window.clone(), Usd::parse("10").unwrap(), None);
            metrics.budget("team", &key[5..], &account, None);
            metrics.refused(key, "throttled");
            shared.ledger().insert(key.to_owned(), account);
        }
        let forgotten = shared.forget_deleted(|key| key == "team/kept");
        assert_eq!(forgotten, ["team/gone"]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("budget=\"gone\""), "{text}");
        assert!(text.contains("budget=\"kept\""), "{text}");
        assert!(shared.ledger().account("team/gone").is_none());
    }
}
