//! The usage ledger: every budget's spend this period, counted exactly once, and the slices of
//! the remaining budget held by gateways. Pure state and decisions; the gRPC service and the
//! status writer drive it.
//!
//! Exactly-once: a gateway numbers its records; a budget remembers, per gateway, the last
//! sequence it counted (`applied`), and what of that is in AIBudget status (`persisted`). A
//! record is acknowledged only once every budget it was charged to has persisted it, so a new
//! leader that restores `persisted` from status and receives the re-sent records counts each
//! once. Within a session the Bedrock request ID is checked as well.
//!
//! A budget deleted and created again under the same name is a new object, so a new budget:
//! its account (see [`Account::uid`]) starts at zero, inherits the old account's watermarks (so
//! nothing the old budget counted is counted again, and all of it is acknowledged) and its
//! gateways' holdings (so what they still hold keeps grants within the limit), and records
//! answered before the new object was created are acknowledged without being charged to it.
//!
//! No overshoot: spend plus what gateways hold never exceeds the effective limit, because a
//! grant is only ever made from `limit - spent - held`, and a gateway only spends from what it
//! holds (reserving each request's worst case first).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use aigov_api::budget::{LedgerWatermark, ModelSpend, NamespaceSpend, TokenCounts, WorkloadSpend};
use aigov_api::model::resolve;
use aigov_api::period::Window;
use aigov_api::pricing::{InvocationMode, PriceBook, PriceSource, ServiceTier, Usage};
use aigov_api::{AIBudgetStatus, Usd};
use jiff::Timestamp;

use crate::attribution::{self, Attribution};
use crate::headroom::{Advice, Headroom};
use crate::key;
use crate::outbox::{Outgoing, UsageOutbox};
use crate::proto::{Refusal, UsageRecord};
use crate::rates::RateShares;
use crate::value_limits::{self, ValueLimits};

pub use crate::key::BudgetKey;

/// How many models a status lists in `topModels`.
pub const TOP_MODELS: usize = 10;
/// How many workloads a status lists in `topWorkloads`.
pub const TOP_WORKLOADS: usize = 10;

/// One workload's calls this period.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WorkloadTally {
    /// Settled spend.
    pub spent: Usd,
    /// Calls (refusals included).
    pub requests: u64,
    /// Calls refused with a throttle or an exhausted budget.
    pub throttled: u64,
}

/// How many namespaces a ClusterAIBudget's status lists in `topNamespaces`.
pub const TOP_NAMESPACES: usize = 10;

impl WorkloadTally {
    /// A tally as a status wrote it (`None`: a spend that is not an amount).
    fn parse(spent: &str, requests: u64, throttled: u64) -> Option<WorkloadTally> {
        let spent = Usd::parse(spent).ok()?;
        Some(WorkloadTally {
            spent,
            requests,
            throttled,
        })
    }

    /// Counts one call: `cost` when served, a refusal when `throttled`.
    fn count(&mut self, cost: Option<Usd>, throttled: bool) {
        self.requests += 1;
        self.throttled += u64::from(throttled);
        self.spent += cost.unwrap_or(Usd::ZERO);
    }
}

/// The `n` tallies with most spend (then most refusals), dearest first, ties by name.
fn dearest(
    tallies: &BTreeMap<String, WorkloadTally>,
    n: usize,
) -> impl Iterator<Item = (&String, &WorkloadTally)> {
    let mut sorted: Vec<_> = tallies.iter().collect();
    sorted.sort_by(|a, b| {
        (b.1.spent, b.1.throttled)
            .cmp(&(a.1.spent, a.1.throttled))
            .then(a.0.cmp(b.0))
    });
    sorted.into_iter().take(n)
}

/// How long before a re-created budget's `creationTimestamp` a record must have been answered
/// to be taken for the deleted budget's rather than the new one's. Gateways' clocks and the API
/// server's may disagree by a little; erring towards charging the new budget keeps the
/// overshoot bound (a call the new budget paid for is never left out of its spend).
pub const RECREATION_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_secs(1);

/// One budget's account for the current period.
#[derive(Clone, Debug)]
pub struct Account {
    /// The UID of the AIBudget object this account was opened for (empty: not known). A
    /// budget deleted and created again under the same name is a new object, so a new budget:
    /// the reconciler compares this with the object's and opens a fresh account
    /// ([`Account::succeeding`]).
    pub uid: String,
    /// Records answered before this are not charged here (they are counted for their
    /// watermark only, so they are acknowledged): they were made for an earlier object under
    /// the same name. The object's `creationTimestamp` less [`RECREATION_MARGIN`].
    pub not_before: Option<Timestamp>,
    /// The current period.
    pub window: Window,
    /// The effective limit (spec plus extension).
    pub limit: Usd,
    /// Settled spend.
    pub spent: Usd,
    /// Tokens by kind.
    pub tokens: TokenCounts,
    /// Calls charged (refusals included).
    pub requests: u64,
    /// Calls refused with a throttle or an exhausted budget.
    pub throttled: u64,
    /// Calls charged from Bedrock's invocation logs ([`RECOVERY_GATEWAY`]): part of
    /// `requests` and `spent`, shown apart.
    pub recovered: Recovered,
    /// Calls made around the gateway and charged from the invocation logs
    /// (`spec.chargeBypass`; such records are marked `metadata_unstamped`).
    pub bypass: Recovered,
    /// Spend and calls per model.
    pub models: BTreeMap<String, (Usd, u64)>,
    /// Spend and calls per workload (see `WorkloadSpend`).
    pub workloads: BTreeMap<String, WorkloadTally>,
    /// A ClusterAIBudget's only: spend and calls per namespace its workloads ran in (an
    /// AIBudget's all run in one).
    pub namespaces: BTreeMap<String, WorkloadTally>,
    /// Spend and calls per value of each request-metadata key the budget declares
    /// (`spec.attribution.keys`; see [`crate::attribution`]).
    pub attribution: Attribution,
    /// Spend and holdings per value of each key the budget limits per value
    /// (`spec.limitPerValue`; see [`crate::value_limits`]).
    pub values: ValueLimits,
    /// The dearest single call settled this period.
    pub largest_call: Usd,
    /// Set to the limit in force when a call was refused because what was left could not pay
    /// for it and was less than the dearest call served: the budget is then spent for every
    /// practical purpose (reservations mean spend itself never quite reaches the limit), until
    /// the limit changes or the period ends.
    pub refused_at_limit: Option<Usd>,
    /// Per gateway, the last record counted here.
    pub applied: HashMap<String, u64>,
    /// Per gateway, the last record counted here that is also in AIBudget status.
    pub persisted: HashMap<String, u64>,
    /// Per gateway, what it holds of this budget (granted, not yet spent).
    pub held: HashMap<String, Usd>,
    /// Per gateway, the watermark this account was restored with from status: what previous
    /// leaders counted.
    restored: HashMap<String, u64>,
    /// Per gateway, the last record within `restored` this leader has seen again.
    doubts_seen: HashMap<String, u64>,
    /// Bedrock request IDs counted lately (see [`RecentRequests`]).
    seen: RecentRequests,
    /// What `spec.rollover` carried into this period from the one before (part of `limit`),
    /// kept apart so that status shows it and a restarted leader restores it.
    pub rolled_over: Usd,
    /// Bumped on every change; the status writer compares it.
    pub version: u64,
}

impl Account {
    /// A fresh account, restored from the status a previous leader wrote when that status is
    /// for the same period.
    pub fn restore(window: Window, limit: Usd, status: Option<&AIBudgetStatus>) -> Account {
        let mut account = Account {
            uid: String::new(),
            not_before: None,
            window: window.clone(),
            limit,
            spent: Usd::ZERO,
            tokens: TokenCounts::default(),
            requests: 0,
            throttled: 0,
            recovered: Recovered::default(),
            bypass: Recovered::default(),
            models: BTreeMap::new(),
            workloads: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            attribution: Attribution::default(),
            values: ValueLimits::default(),
            largest_call: Usd::ZERO,
            refused_at_limit: None,
            applied: HashMap::new(),
            persisted: HashMap::new(),
            held: HashMap::new(),
            restored: HashMap::new(),
            doubts_seen: HashMap::new(),
            seen: RecentRequests::default(),
            rolled_over: Usd::ZERO,
            version: 1,
        };
        let Some(status) = status else {
            return account;
        };
        let same_period = status
            .period_start
            .as_deref()
            .and_then(|s| s.parse::<Timestamp>().ok())
            == Some(window.start);
        // Watermarks survive a rollover: a gateway's sequence keeps counting across periods.
        for w in &status.ledger {
            account.applied.insert(w.gateway.clone(), w.sequence);
            account.persisted.insert(w.gateway.clone(), w.sequence);
            account.restored.insert(w.gateway.clone(), w.sequence);
        }
        if !same_period {
            return account;
        }
        account.spent = status
            .spent
            .as_deref()
            .and_then(|s| Usd::parse(s).ok())
            .unwrap_or(Usd::ZERO);
        account.rolled_over = status
            .rolled_over
            .as_deref()
            .and_then(|s| Usd::parse(s).ok())
            .unwrap_or(Usd::ZERO);
        account.tokens = status.tokens.clone().unwrap_or_default();
        account.largest_call = status
            .largest_call
            .as_deref()
            .and_then(|s| Usd::parse(s).ok())
            .unwrap_or(Usd::ZERO);
        let was_exhausted = status
            .conditions
            .iter()
            .any(|c| c.type_ == "BudgetExhausted" && c.status == "True");
        if was_exhausted {
            account.refused_at_limit = Some(limit);
        }
        account.requests = status.requests;
        account.throttled = status.throttled_requests;
        account.recovered = Recovered::restore(status.recovered.as_ref());
        account.bypass = Recovered::restore(status.bypass.as_ref());
        account.restore_breakdowns(status);
        account
    }

    /// Takes this period's breakdowns from `status`: by model, workload, namespace, request
    /// metadata and limited value.
    fn restore_breakdowns(&mut self, status: &AIBudgetStatus) {
        for m in &status.top_models {
            if let Ok(spent) = Usd::parse(&m.spent) {
                self.models.insert(m.model.clone(), (spent, m.requests));
            }
        }
        for w in &status.top_workloads {
            if let Some(tally) = WorkloadTally::parse(&w.spent, w.requests, w.throttled_requests) {
                self.workloads.insert(w.workload.clone(), tally);
            }
        }
        for n in &status.top_namespaces {
            if let Some(tally) = WorkloadTally::parse(&n.spent, n.requests, n.throttled_requests) {
                self.namespaces.insert(n.namespace.clone(), tally);
            }
        }
        // The keys the status lists; the reconciler then declares the spec's
        // ([`Account::declare_attribution`]).
        let keys: Vec<String> = status.attribution.iter().map(|k| k.key.clone()).collect();
        self.attribution = Attribution::restore(&keys, &status.attribution);
        self.values = ValueLimits::restore(&status.value_ledger);
    }

    /// This account, for the AIBudget object `uid` created at `created`: records answered
    /// before that (less [`RECREATION_MARGIN`]) belong to an earlier object of the same name.
    pub fn for_object(mut self, uid: &str, created: Option<Timestamp>) -> Account {
        self.uid = uid.to_owned();
        self.not_before = created.and_then(|t| t.checked_sub(RECREATION_MARGIN).ok());
        self
    }

    /// Whether this account was opened for another AIBudget object than `uid` (a budget
    /// deleted and created again under the same name). An unknown UID on either side is
    /// never taken for a difference.
    pub fn is_for_another_object(&self, uid: &str) -> bool {
        !self.uid.is_empty() && !uid.is_empty() && self.uid != uid
    }

    /// `fresh` (the new object's account) made to succeed `old` (the deleted object's under
    /// the same key). It takes the old account's watermarks, so no record the old budget
    /// counted is ever charged to the new one and every such record is acknowledged once the
    /// new status (which lists them) is written: gateways never re-send them forever. It takes
    /// the old gateways' holdings too: a gateway keeps its slice of the key and may spend it
    /// on the new budget, so counting it as held keeps grants within `limit - spent - held`.
    /// Spend, calls, models and workloads start at zero. Merging is by maximum, so
    /// succeeding again (the commit, after the plan) takes what the old account gained since.
    pub fn succeeding(mut self, old: &Account) -> Account {
        for (marks, old_marks) in [
            (&mut self.applied, &old.applied),
            (&mut self.persisted, &old.persisted),
        ] {
            for (gateway, sequence) in old_marks {
                let mark = marks.entry(gateway.clone()).or_insert(0);
                *mark = (*mark).max(*sequence);
            }
        }
        for (gateway, held) in &old.held {
            self.held.entry(gateway.clone()).or_insert(*held);
        }
        self.version = self.version.max(old.version) + 1;
        self
    }

    /// Whether the budget is spent: at its limit, or refusing calls because what is left is
    /// less than the dearest call it has served this period.
    pub fn exhausted(&self) -> bool {
        self.at_limit() || self.refused_at_limit == Some(self.limit)
    }

    /// Whether spend has reached the limit itself.
    pub fn at_limit(&self) -> bool {
        aigov_api::evaluation::reached(self.spent, self.limit, 100)
    }

    /// What gateways hold of this budget in all.
    pub fn held_total(&self) -> Usd {
        self.held.values().copied().fold(Usd::ZERO, |a, b| a + b)
    }

    /// What may still be granted: the limit less spend and holdings.
    pub fn grantable(&self) -> Usd {
        self.limit.saturating_sub(self.spent + self.held_total())
    }

    /// The models with most spend, dearest first.
    pub fn top_models(&self) -> Vec<ModelSpend> {
        let mut models: Vec<_> = self.models.iter().collect();
        models.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        models
            .into_iter()
            .take(TOP_MODELS)
            .map(|(model, (spent, requests))| ModelSpend {
                model: model.clone(),
                spent: spent.to_api_string(),
                requests: *requests,
            })
            .collect()
    }

    /// The workloads with most spend (then most refusals), dearest first.
    pub fn top_workloads(&self) -> Vec<WorkloadSpend> {
        dearest(&self.workloads, TOP_WORKLOADS)
            .map(|(workload, tally)| WorkloadSpend {
                workload: workload.clone(),
                spent: tally.spent.to_api_string(),
                requests: tally.requests,
                throttled_requests: tally.throttled,
            })
            .collect()
    }

    /// A ClusterAIBudget's namespaces with most spend (then most refusals), dearest first.
    pub fn top_namespaces(&self) -> Vec<NamespaceSpend> {
        dearest(&self.namespaces, TOP_NAMESPACES)
            .map(|(namespace, tally)| NamespaceSpend {
                namespace: namespace.clone(),
                spent: tally.spent.to_api_string(),
                requests: tally.requests,
                throttled_requests: tally.throttled,
            })
            .collect()
    }

    /// Declares the request-metadata keys this account breaks spend down by from now on (see
    /// [`Attribution::declare`]).
    pub fn declare_attribution(&mut self, keys: &[String]) {
        if self.attribution.declare(keys) {
            self.version += 1;
        }
    }

    /// Takes the spec's per-value limits ([`ValueLimits::declare`]).
    pub fn declare_value_limits(&mut self, limits: &[(String, Usd)]) {
        if self.values.declare(limits) {
            self.version += 1;
        }
    }

    /// Per declared key, the values that spent most this period (`status.attribution`).
    pub fn top_attribution(&self) -> Vec<aigov_api::budget::KeyAttribution> {
        self.attribution.top(attribution::SHOWN_VALUES)
    }

    /// The watermarks to persist with the status, sorted for a stable status.
    pub fn watermarks(&self) -> Vec<LedgerWatermark> {
        let mut marks: Vec<_> = self
            .applied
            .iter()
            .map(|(gateway, sequence)| LedgerWatermark {
                gateway: gateway.clone(),
                sequence: *sequence,
            })
            .collect();
        marks.sort_by(|a, b| a.gateway.cmp(&b.gateway));
        marks
    }

    /// Counts a served call's cost and tokens into spend and its model.
    fn settle(&mut self, record: &UsageRecord, cost: Usd) {
        let usage = usage_of(record);
        self.largest_call = self.largest_call.max(cost);
        self.spent += cost;
        self.tokens.input += usage.input_tokens;
        self.tokens.output += usage.output_tokens;
        self.tokens.cache_read += usage.cache_read_tokens;
        self.tokens.cache_write += usage.cache_write_tokens + usage.cache_write_1h_tokens;
        let entry = self
            .models
            .entry(record.model.clone())
            .or_insert((Usd::ZERO, 0));
        entry.0 += cost;
        entry.1 += 1;
    }

    /// Counts a call to its workload and, for a ClusterAIBudget (whose workloads run in many
    /// namespaces, so are named `namespace/workload`), to its namespace.
    fn tally_caller(
        &mut self,
        key: &str,
        record: &UsageRecord,
        cost: Option<Usd>,
        throttled: bool,
    ) {
        let workload = workload_of(record);
        if key::level(key) == key::Level::Namespace {
            self.workloads
                .entry(workload)
                .or_default()
                .count(cost, throttled);
            return;
        }
        let namespace = match record.pod_namespace.as_str() {
            "" => "unknown",
            namespace => namespace,
        };
        let qualified = format!("{namespace}/{workload}");
        self.workloads
            .entry(qualified)
            .or_default()
            .count(cost, throttled);
        let tally = self.namespaces.entry(namespace.to_owned()).or_default();
        tally.count(cost, throttled);
    }

    /// Counts `record` (costing `cost`) into this account, unless this account already counted
    /// it (by sequence from `gateway`, or by Bedrock request ID). Returns the change to spend.
    fn charge(
        &mut self,
        key: &str,
        gateway: &str,
        record: &UsageRecord,
        cost: Usd,
    ) -> Option<Charge> {
        let applied = self.applied.get(gateway).copied().unwrap_or(0);
        if record.sequence <= applied {
            return None;
        }
        self.applied.insert(gateway.to_owned(), record.sequence);
        self.version += 1;
        if self.not_before.is_some_and(|t| occurred_at(record) < t) {
            return None;
        }
        if !self.seen.insert(&record.request_id, record.occurred_at_ms) {
            return None;
        }
        let before = self.spent;
        let served = record.refusal == Refusal::None as i32;
        let throttled = !served && !Refusal::is_policy(record.refusal);
        self.requests += 1;
        self.throttled += u64::from(throttled);
        if record.refusal == Refusal::Exhausted as i32
            && self.limit.saturating_sub(self.spent) < self.largest_call
        {
            self.refused_at_limit = Some(self.limit);
        }
        let settled = served.then_some(cost);
        if served {
            self.settle(record, cost);
            if gateway == RECOVERY_GATEWAY {
                let tally = match record.metadata_unstamped {
                    true => &mut self.bypass,
                    false => &mut self.recovered,
                };
                tally.count(self.spent - before);
            }
        }
        self.tally_caller(key, record, settled, throttled);
        let call = attribution::Call {
            cost: self.spent - before,
            throttled,
        };
        // Bounded whatever a gateway sent, so no status grows past the stated limits.
        let metadata = aigov_api::request_metadata::bounded(&record.request_metadata);
        self.attribution.count(&metadata, call);
        if !call.cost.is_zero() {
            self.values.count(&record.request_metadata, call.cost);
        }
        Some(Charge {
            budget: key.to_owned(),
            gateway: gateway.to_owned(),
            sequence: record.sequence,
            before,
            after: self.spent,
            cost: self.spent - before,
            in_doubt: false,
            unknown_model: false,
        })
    }

    /// Counts `record` as [`Account::charge`] does; a record a previous leader already
    /// counted comes back once as a charge in doubt (see [`Charge::in_doubt`]).
    fn count(
        &mut self,
        key: &str,
        gateway: &str,
        record: &UsageRecord,
        cost: Usd,
    ) -> Option<Charge> {
        if let Some(charge) = self.charge(key, gateway, record, cost) {
            return Some(charge);
        }
        let restored = self.restored.get(gateway).copied().unwrap_or(0);
        let checked = self.doubts_seen.entry(gateway.to_owned()).or_insert(0);
        if record.sequence > restored || record.sequence <= *checked {
            return None;
        }
        *checked = record.sequence;
        let charged = record.refusal == Refusal::None as i32;
        Some(Charge {
            budget: key.to_owned(),
            gateway: gateway.to_owned(),
            sequence: record.sequence,
            before: self.spent,
            after: self.spent,
            cost: if charged { cost } else { Usd::ZERO },
            in_doubt: true,
            unknown_model: false,
        })
    }

    /// Starts the next period at zero, with `limit` in force, of which `carried` is what
    /// `spec.rollover` brought from the period that ended. Watermarks and holdings carry over.
    pub fn roll_over(&mut self, window: Window, limit: Usd, carried: Usd) {
        self.window = window;
        self.limit = limit;
        self.rolled_over = carried;
        self.spent = Usd::ZERO;
        self.tokens = TokenCounts::default();
        self.requests = 0;
        self.throttled = 0;
        self.recovered = Recovered::default();
        self.bypass = Recovered::default();
        self.models.clear();
        self.workloads.clear();
        self.namespaces.clear();
        self.attribution.clear();
        self.values.roll_over();
        self.largest_call = Usd::ZERO;
        self.refused_at_limit = None;
        self.seen.clear();
        self.version += 1;
    }
}

/// The gateway identity under which the controller charges calls it recovered from Bedrock's
/// model invocation logs: calls a gateway made and never reported (it was killed after Bedrock
/// answered). Its sequences are derived from the log records themselves (see
/// `aigov_controller::second_source`), so a new leader that reads the same records again
/// numbers them alike and its watermark counts each once.
pub const RECOVERY_GATEWAY: &str = "bedrock-invocation-logs";

/// Calls charged from Bedrock's invocation logs this period, and what they cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Calls.
    pub calls: u64,
    /// Their cost.
    pub spent: Usd,
}

impl Recovered {
    fn restore(status: Option<&aigov_api::budget::RecoveredCalls>) -> Recovered {
        status.map_or_else(Recovered::default, |r| Recovered {
            calls: r.calls,
            spent: Usd::parse(&r.spent).unwrap_or(Usd::ZERO),
        })
    }

    fn count(&mut self, cost: Usd) {
        self.calls += 1;
        self.spent += cost;
    }

    /// As status shows it: nothing until a call was recovered.
    pub fn status(&self) -> Option<aigov_api::budget::RecoveredCalls> {
        (self.calls > 0).then(|| aigov_api::budget::RecoveredCalls {
            calls: self.calls,
            spent: self.spent.to_api_string(),
        })
    }
}

/// How long a Bedrock request ID is remembered, by the calls' own times: a record can be sent
/// again only while its gateway has not had it acknowledged, and re-sends by the same gateway
/// are caught by its sequence watermark anyway. The IDs are the second line, for the same call
/// reported under two gateway identities, which can only happen close together in time.
pub const REQUEST_ID_HORIZON_MS: i64 = 15 * 60 * 1000;

/// The Bedrock request IDs an account counted within [`REQUEST_ID_HORIZON_MS`] of the newest,
/// in minute buckets by the call's time: memory follows the call rate over the horizon, not
/// the length of the period (a monthly budget at 5,000 calls a second would otherwise keep
/// every ID of the month).
#[derive(Clone, Debug, Default)]
pub struct RecentRequests {
    by_minute: BTreeMap<i64, HashSet<String>>,
}

impl RecentRequests {
    const BUCKET_MS: i64 = 60_000;

    /// Remembers `id` of a call at `at_ms`; false when it was already counted (an empty ID
    /// is never a duplicate).
    pub fn insert(&mut self, id: &str, at_ms: i64) -> bool {
        if id.is_empty() {
            return true;
        }
        if self.by_minute.values().any(|ids| ids.contains(id)) {
            return false;
        }
        let bucket = at_ms.div_euclid(Self::BUCKET_MS);
        self.by_minute
            .entry(bucket)
            .or_default()
            .insert(id.to_owned());
        let newest = self.by_minute.keys().next_back().copied().unwrap_or(bucket);
        let oldest_kept = newest - REQUEST_ID_HORIZON_MS / Self::BUCKET_MS;
        while self
            .by_minute
            .first_key_value()
            .is_some_and(|(minute, _)| *minute < oldest_kept)
        {
            self.by_minute.pop_first();
        }
        true
    }

    /// True when `id` was counted within the horizon.
    pub fn contains(&self, id: &str) -> bool {
        self.by_minute.values().any(|ids| ids.contains(id))
    }

    /// IDs remembered.
    pub fn len(&self) -> usize {
        self.by_minute.values().map(HashSet::len).sum()
    }

    /// True when none are.
    pub fn is_empty(&self) -> bool {
        self.by_minute.is_empty()
    }

    /// Forgets them all (a new period).
    pub fn clear(&mut self) {
        self.by_minute.clear();
    }
}

/// A change to one budget's account that the reconciler plans from a snapshot and commits
/// with [`Ledger::commit`] only after the AIBudget status that records it is written: a
/// status patch that fails leaves the ledger as it was, so the retry plans the same change
/// (the finished period's summary, its Event) instead of finding it already made.
#[derive(Clone, Debug)]
pub struct Transition {
    /// Opens the account (restored from status, without the records waiting for it: those
    /// are counted on opening) when the ledger has none yet, or, with `replaces`, in place of
    /// the account of a deleted object under the same key.
    pub open: Option<Account>,
    /// The UID of the account `open` replaces: the budget was deleted and created again
    /// under the same name, so it is a new budget. Replaced only while the ledger's account
    /// is still that object's (a retry after a commit finds it replaced already).
    pub replaces: Option<String>,
    /// Starts the next period.
    pub roll_over: Option<RollOver>,
    /// The effective limit from now on.
    pub limit: Usd,
    /// What the written status holds (`status.ledger`), which lets records be acknowledged;
    /// empty when nothing was written.
    pub persisted: Vec<LedgerWatermark>,
}

/// A planned rollover from the period `from` to `to`, planned from the account at `version`.
/// Records counted after the snapshot belong to the period they were counted in but are not
/// in the summary the status recorded, so the rollover is held back when `version` moved
/// ([`Committed::stale`]), and the next reconcile summarises again.
#[derive(Clone, Debug, PartialEq)]
pub struct RollOver {
    /// The period that ended.
    pub from: Window,
    /// The period that began.
    pub to: Window,
    /// The account's version the plan saw.
    pub version: u64,
    /// What `spec.rollover` carries from `from` into `to`, computed from the account at
    /// `version` (its exact spend and limit) and included in [`Transition::limit`].
    pub carried: Usd,
}

/// What [`Ledger::commit`] did.
#[derive(Debug, Default)]
pub struct Committed {
    /// Records that were waiting for the account, counted when it opened.
    pub replayed: Vec<(Charge, UsageRecord)>,
    /// True when a planned rollover was held back (records arrived since the snapshot), or
    /// when a replaced account counted records since the snapshot: the status written does
    /// not list them yet, so the next reconcile comes at once to let them be acknowledged.
    pub stale: bool,
}

/// What applying one record did to one budget.
#[derive(Clone, Debug, PartialEq)]
pub struct Charge {
    /// The budget charged.
    pub budget: BudgetKey,
    /// The gateway whose record it is, and the record's sequence there.
    pub gateway: String,
    /// The record's sequence at its gateway.
    pub sequence: u64,
    /// Spend before.
    pub before: Usd,
    /// Spend after.
    pub after: Usd,
    /// What the call cost this budget (for a charge in doubt, what it cost when a previous
    /// leader counted it: spend does not move again).
    pub cost: Usd,
    /// A previous leader counted this record (it is within the watermark this account was
    /// restored with) and this leader has not seen it before: counted no more, but its usage
    /// record may not have been written ([`crate::outbox`]).
    pub in_doubt: bool,
    /// Neither the catalog nor an `AIModelPrice` prices the record's model: the fallback did
    /// (the dearest catalog rates), which the budget's owners should hear about.
    pub unknown_model: bool,
}

/// The workload a record is reported under: the gateway's name for it, else the pod's (records
/// from gateways older than the `workload` field), else `unknown`.
pub fn workload_of(record: &UsageRecord) -> String {
    [&record.workload, &record.pod_name]
        .into_iter()
        .find(|name| !name.is_empty())
        .cloned()
        .unwrap_or_else(|| "unknown".to_owned())
}

/// When Bedrock answered the call a record reports (now, when the record says nothing usable).
fn occurred_at(record: &UsageRecord) -> Timestamp {
    Timestamp::from_millisecond(record.occurred_at_ms).unwrap_or_else(|_| Timestamp::now())
}

/// The service tier a record's call asked for, which its tokens are priced at: empty is
/// Standard (and so is a value no gateway sends, rather than a refused record).
pub fn service_tier(record: &UsageRecord) -> ServiceTier {
    match record.service_tier.as_str() {
        "" => ServiceTier::Standard,
        tier => tier.parse().unwrap_or_default(),
    }
}

/// The tokens a record reports, as the price book counts them.
fn usage_of(record: &UsageRecord) -> Usage {
    Usage {
        input_tokens: record.input_tokens,
        output_tokens: record.output_tokens,
        cache_read_tokens: record.cache_read_tokens,
        cache_write_tokens: record.cache_write_tokens,
        cache_write_1h_tokens: record.cache_write_1h_tokens,
    }
}

/// A record for a budget this leader has no account for yet (its reconciler has not loaded the
/// budget: a leader just elected, or a budget just created). It is counted when the account
/// is opened, and until then holds back the gateway's acknowledgement.
#[derive(Debug)]
struct Parked {
    gateway: String,
    record: UsageRecord,
    cost: Usd,
}

/// Every budget's account, and which gateway records still await acknowledgement.
#[derive(Debug, Default)]
pub struct Ledger {
    accounts: HashMap<BudgetKey, Account>,
    /// Per gateway: received records not yet acknowledged, in order (sequence, budgets).
    unacknowledged: HashMap<String, Vec<(u64, Vec<BudgetKey>)>>,
    /// Per gateway: the highest sequence acknowledged.
    acknowledged: HashMap<String, u64>,
    /// Per budget without an account: the records waiting for it, and when the first came.
    parked: HashMap<BudgetKey, (Instant, Vec<Parked>)>,
    /// Every budget's soft-limit rate, split across the gateways by their demand.
    rates: RateShares,
    /// Reservations in flight and recalls of headroom, per budget.
    headroom: Headroom,
    /// Usage records to write once persisted ([`crate::outbox`]).
    outbox: UsageOutbox,
}

impl Ledger {
    /// The account of `key`, if the budget is known.
    pub fn account(&self, key: &str) -> Option<&Account> {
        self.accounts.get(key)
    }

    /// The account of `key` for changes.
    pub fn account_mut(&mut self, key: &str) -> Option<&mut Account> {
        self.accounts.get_mut(key)
    }

    /// Adds or replaces an account (a budget seen for the first time by this leader), then
    /// counts the records that arrived for it before it was loaded. Returns what those did,
    /// with the records, so that they are published like any other.
    pub fn insert(&mut self, key: BudgetKey, mut account: Account) -> Vec<(Charge, UsageRecord)> {
        let replayed = self
            .parked
            .remove(&key)
            .map(|(_, parked)| parked)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                let charge = account.count(&key, &p.gateway, &p.record, p.cost)?;
                Some((charge, p.record))
            })
            .collect();
        self.accounts.insert(key, account);
        replayed
    }

    /// The account opening `account` would create for `key`: the same account with the
    /// records waiting for it counted, while the ledger itself is left as it is. The
    /// reconciler writes the status of this preview first and opens the account (with
    /// [`Ledger::commit`]) only once that status is written, so a failed write leaves the
    /// budget unopened and the next reconcile plans the same opening again.
    pub fn preview(&self, key: &str, mut account: Account) -> Account {
        if let Some((_, parked)) = self.parked.get(key) {
            for p in parked {
                let _ = account.charge(key, &p.gateway, &p.record, p.cost);
            }
        }
        account
    }

    /// Commits a [`Transition`] the reconciler planned for `key`, after the status recording
    /// it was written (or when no write was planned). Returns the charges of records counted
    /// on opening the account, for publishing like any other, and whether a planned rollover
    /// was held back because records arrived since the plan's snapshot (see [`RollOver`]).
    pub fn commit(&mut self, key: &str, transition: Transition) -> Committed {
        let mut committed = Committed::default();
        if let Some(account) = transition.open {
            match (self.accounts.get(key), &transition.replaces) {
                (None, _) => committed.replayed = self.insert(key.to_owned(), account),
                (Some(old), Some(uid)) if old.uid == *uid => {
                    let succeeding = account.succeeding(old);
                    let written = |gateway: &str| {
                        let mark = transition.persisted.iter().find(|w| w.gateway == gateway);
                        mark.map_or(0, |w| w.sequence)
                    };
                    committed.stale = succeeding.applied.iter().any(|(g, s)| *s > written(g));
                    committed.replayed = self.insert(key.to_owned(), succeeding);
                }
                _ => {}
            }
        }
        if let Some(account) = self.accounts.get_mut(key) {
            let rolled = match &transition.roll_over {
                Some(r) if account.window == r.from => {
                    let unchanged = account.version == r.version;
                    if unchanged {
                        account.roll_over(r.to.clone(), transition.limit, r.carried);
                    }
                    unchanged
                }
                _ => true,
            };
            committed.stale |= !rolled;
            if rolled && account.limit != transition.limit {
                account.limit = transition.limit;
                account.version += 1;
            }
        }
        self.mark_persisted(key, &transition.persisted);
        committed
    }

    /// Forgets a deleted budget and the records waiting for it; records charged to it are then
    /// acknowledged for it.
    pub fn remove(&mut self, key: &str) {
        self.accounts.remove(key);
        self.parked.remove(key);
        self.rates.forget_budget(key);
        self.headroom.forget_budget(key);
    }

    /// Budgets with records waiting for an account, and since when.
    pub fn parked(&self) -> impl Iterator<Item = (&BudgetKey, Instant)> {
        self.parked.iter().map(|(key, (since, _))| (key, *since))
    }

    fn park(&mut self, key: &str, gateway: &str, record: &UsageRecord, cost: Usd) {
        let (_, waiting) = self
            .parked
            .entry(key.to_owned())
            .or_insert_with(|| (Instant::now(), Vec::new()));
        // A gateway re-sends what is unacknowledged after a reconnect: keep one copy.
        let already = waiting
            .iter()
            .any(|p| p.gateway == gateway && p.record.sequence == record.sequence);
        if !already {
            waiting.push(Parked {
                gateway: gateway.to_owned(),
                record: record.clone(),
                cost,
            });
        }
    }

    /// True when `key`'s account counted the call `request_id` within
    /// [`REQUEST_ID_HORIZON_MS`] of its newest call, in this leader's memory.
    pub fn counted(&self, key: &str, request_id: &str) -> bool {
        self.accounts
            .get(key)
            .is_some_and(|a| a.seen.contains(request_id))
    }

    /// Every known budget.
    pub fn keys(&self) -> impl Iterator<Item = &BudgetKey> {
        self.accounts.keys()
    }

    /// Counts one record from `gateway` into every budget it names, exactly once, priced at
    /// the record's own time. Returns what changed.
    pub fn apply(
        &mut self,
        gateway: &str,
        record: &UsageRecord,
        prices: &PriceBook,
    ) -> Vec<Charge> {
        let mut charges = Vec::new();
        let at = occurred_at(record);
        let priced = (record.refusal == Refusal::None as i32).then(|| {
            prices.cost_in(
                &resolve(&record.model),
                &usage_of(record),
                InvocationMode::OnDemand,
                service_tier(record),
                at,
            )
        });
        let unknown_model = priced
            .as_ref()
            .is_some_and(|c| c.price.source == PriceSource::Fallback);
        let cost = priced.map_or(Usd::ZERO, |c| c.amount + unit_cost(record));
        for key in &record.budgets {
            match self.accounts.get_mut(key) {
                Some(account) => charges.extend(
                    account
                        .count(key, gateway, record, cost)
                        .map(|c| Charge { unknown_model, ..c }),
                ),
                None => self.park(key, gateway, record, cost),
            }
        }
        let pending = self.unacknowledged.entry(gateway.to_owned()).or_default();
        if pending.last().is_none_or(|(seq, _)| *seq < record.sequence) {
            pending.push((record.sequence, record.budgets.clone()));
        }
        charges
    }

    /// Records that the status of `key` now holds everything counted up to `watermarks`.
    pub fn mark_persisted(&mut self, key: &str, watermarks: &[LedgerWatermark]) {
        if let Some(account) = self.accounts.get_mut(key) {
            for w in watermarks {
                account.persisted.insert(w.gateway.clone(), w.sequence);
            }
        }
    }

    /// Stages the usage record of a charge, written once its status is ([`UsageOutbox`]).
    pub fn stage_usage(&mut self, outgoing: Outgoing) {
        self.outbox.stage(outgoing);
    }

    /// The staged usage records whose status is written, to hand to the writer.
    pub fn ready_usage(&mut self) -> Vec<Outgoing> {
        let accounts = &self.accounts;
        self.outbox.take_ready(|budget, gateway| {
            let account = accounts.get(budget)?;
            Some(account.persisted.get(gateway).copied().unwrap_or(0))
        })
    }

    /// The writer wrote the usage record of `sequence` from `gateway`.
    pub fn usage_written(&mut self, gateway: &str, sequence: u64) {
        self.outbox.written(gateway, sequence);
    }

    /// Usage records staged or being written.
    pub fn usage_unwritten(&self) -> usize {
        self.outbox.len()
    }

    /// The highest sequence of `gateway` up to which every record is persisted in every
    /// budget it was charged to (a deleted budget needs nothing) and, with `wait_for_usage`,
    /// its usage records are written.
    pub fn acknowledge(&mut self, gateway: &str, wait_for_usage: bool) -> u64 {
        let usage_cap = if wait_for_usage {
            self.outbox.acknowledgeable(gateway).unwrap_or(u64::MAX)
        } else {
            u64::MAX
        };
        let (accounts, parked) = (&self.accounts, &self.parked);
        let persisted = |seq: u64, budgets: &[BudgetKey]| {
            budgets.iter().all(|key| match accounts.get(key) {
                Some(a) => a.persisted.get(gateway).copied().unwrap_or(0) >= seq,
                None => parked.get(key).is_none_or(|(_, waiting)| {
                    !waiting
                        .iter()
                        .any(|p| p.gateway == gateway && p.record.sequence <= seq)
                }),
            })
        };
        let mut through = self.acknowledged.get(gateway).copied().unwrap_or(0);
        if let Some(pending) = self.unacknowledged.get_mut(gateway) {
            let done = pending
                .iter()
                .take_while(|(seq, budgets)| *seq <= usage_cap && persisted(*seq, budgets))
                .count();
            if done > 0 {
                through = through.max(pending[done - 1].0);
                pending.drain(..done);
            }
        }
        self.acknowledged.insert(gateway.to_owned(), through);
        through
    }

    /// Takes a gateway's report of what it holds of `key` and what of that calls in flight
    /// reserve; true when either changed (the status shows both).
    pub fn set_held(&mut self, key: &str, gateway: &str, held: Usd, reserved: Usd) -> bool {
        let in_flight_changed = self.headroom.set_reserved(key, gateway, reserved);
        if let Some(v) = value_limits::split(key) {
            return match self.accounts.get_mut(v.budget) {
                Some(account) => account.values.set_held(v.key, v.value, gateway, held),
                None => false,
            };
        }
        match self.accounts.get_mut(key) {
            Some(account) => {
                let held_changed = account.held.insert(gateway.to_owned(), held) != Some(held);
                held_changed || in_flight_changed
            }
            None => false,
        }
    }

    /// What calls in flight reserve of `key`'s holdings, by gateway.
    pub fn in_flight(&self, key: &str) -> HashMap<String, Usd> {
        self.headroom.in_flight(key)
    }

    /// What `gateway` should know of headroom on `key` elsewhere ([`Headroom`]).
    pub fn advice(&self, key: &str, gateway: &str, now: Instant) -> Advice {
        self.headroom.advice(key, gateway, now)
    }

    /// Takes a gateway's count of the calls it saw for `key` since its last exchange, and
    /// answers its share of the budget's soft-limit rate ([`RateShares`]).
    pub fn rate_share(&mut self, key: &str, gateway: &str, calls: u64, now: Instant) -> f64 {
        self.rates.observe(key, gateway, calls, now);
        self.rates.share(key, gateway)
    }

    /// Grants `gateway` up to `wanted` of `key` from what no one holds; returns the grant.
    /// A grant short of `wanted` recalls the budget from the other gateways ([`Headroom`]).
    /// While the budget is recalled for another gateway, nothing is granted to this one.
    pub fn grant(&mut self, key: &str, gateway: &str, wanted: Usd, now: Instant) -> Usd {
        if self.headroom.advice(key, gateway, now).give_back {
            return Usd::ZERO;
        }
        if let Some(v) = value_limits::split(key) {
            let Some(account) = self.accounts.get_mut(v.budget) else {
                return Usd::ZERO;
            };
            let amount = wanted.min(account.values.grantable(v.key, v.value));
            if !amount.is_zero() {
                account.values.hold(v.key, v.value, gateway, amount);
            }
            if amount < wanted && account.values.others_hold(v.key, v.value, gateway) {
                self.headroom.short(key, gateway, now);
            } else if amount == wanted {
                self.headroom.satisfied(key, gateway);
            }
            return amount;
        }
        let Some(account) = self.accounts.get_mut(key) else {
            return Usd::ZERO;
        };
        let amount = wanted.min(account.grantable());
        if !amount.is_zero() {
            let held = account.held.entry(gateway.to_owned()).or_insert(Usd::ZERO);
            *held += amount;
        }
        let others_hold = account
            .held
            .iter()
            .any(|(g, h)| g != gateway && !h.is_zero());
        if amount < wanted && others_hold {
            self.headroom.short(key, gateway, now);
        } else if amount == wanted {
            self.headroom.satisfied(key, gateway);
        }
        amount
    }

    /// The budgets `gateway` holds headroom of.
    pub fn budgets_held_by(&self, gateway: &str) -> Vec<BudgetKey> {
        self.accounts
            .iter()
            .filter(|(_, a)| {
                a.held.get(gateway).is_some_and(|h| !h.is_zero())
                    || !a.values.held_by(gateway).is_empty()
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The figures a gateway is told of an account: spend, limit and the period's end, for a
    /// budget's own account or one of its values ([`value_limits::value_key`]).
    pub fn figures(&self, key: &str) -> Option<(Usd, Usd, &Window)> {
        match value_limits::split(key) {
            Some(v) => {
                let account = self.accounts.get(v.budget)?;
                let limit = account.values.limit(v.key)?;
                let spent = account.values.spent(v.key, v.value);
                Some((spent, limit, &account.window))
            }
            None => {
                let account = self.accounts.get(key)?;
                Some((account.spent, account.limit, &account.window))
            }
        }
    }

    /// Forgets the holdings of a gateway that has not been heard from (its slices expired).
    /// Returns the budgets whose holdings changed, with what each got back (their status
    /// shows holdings, and an Event says what was returned).
    pub fn expire_gateway(&mut self, gateway: &str) -> Vec<(BudgetKey, Usd)> {
        let mut changed = Vec::new();
        for (key, account) in self.accounts.iter_mut() {
            let values = account.values.expire_gateway(gateway);
            let own = account.held.remove(gateway).unwrap_or(Usd::ZERO);
            if !own.is_zero() || !values.is_empty() {
                changed.push((key.clone(), own));
            }
        }
        self.unacknowledged.remove(gateway);
        self.rates.forget_gateway(gateway);
        self.headroom.forget_gateway(gateway);
        self.outbox.forget_gateway(gateway);
        changed
    }
}

/// What a record cost beyond its tokens (`unit_cost`); a malformed figure (from no gateway of
/// ours) counts as nothing rather than failing the exchange.
fn unit_cost(record: &UsageRecord) -> Usd {
    if record.unit_cost.is_empty() {
        return Usd::ZERO;
    }
    Usd::parse(&record.unit_cost).unwrap_or(Usd::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigov_api::period::{Period, time_zone};

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    fn window() -> Window {
        Period::Monthly
            .window_at(
                "2026-11-10T00:00:00Z".parse().unwrap(),
                &time_zone("UTC").unwrap(),
            )
            .unwrap()
    }

    fn record(seq: u64, id: &str, budgets: &[&str], output: u64) -> UsageRecord {
        UsageRecord {
            sequence: seq,
            request_id: id.into(),
            budgets: budgets.iter().map(|b| (*b).to_owned()).collect(),
            model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
            input_tokens: 0,
            output_tokens: output,
            occurred_at_ms: 1_763_000_000_000,
            ..Default::default()
        }
    }

    fn ledger_with(keys: &[&str], limit: &str) -> Ledger {
        let mut ledger = Ledger::default();
        for key in keys {
            ledger.insert(
                (*key).to_owned(),
                Account::restore(window(), usd(limit), None),
            );
        }
        ledger
    }

    #[test]
    fn a_record_a_previous_leader_counted_comes_back_once_in_doubt_and_is_not_counted_again() {
        let status = AIBudgetStatus {
            period_start: Some(window().start.to_string()),
            spent: Some("2.00".into()),
            ledger: vec![LedgerWatermark {
                gateway: "g1".into(),
                sequence: 2,
            }],
            ..Default::default()
        };
        let mut ledger = Ledger::default();
        let restored = Account::restore(window(), usd("10"), Some(&status));
        ledger.insert("a/x".into(), restored);
        let prices = PriceBook::default();
        let resent = record(2, "r2", &["a/x"], 800_000);
        let charges = ledger.apply("g1", &resent, &prices);
        assert_eq!(charges.len(), 1);
        assert!(
            charges[0].in_doubt,
            "the previous leader may have written it"
        );
        assert_eq!(
            charges[0].cost,
            usd("1.00"),
            "its usage record says what it cost"
        );
        assert_eq!(charges[0].after, charges[0].before, "spend does not move");
        assert!(ledger.apply("g1", &resent, &prices).is_empty(), "once");
        let new = ledger.apply("g1", &record(3, "r3", &["a/x"], 800_000), &prices);
        assert!(!new[0].in_doubt);
        assert_eq!(ledger.account("a/x").unwrap().spent, usd("3.00"));
    }

    #[test]
    fn a_usage_record_waits_for_its_status_and_holds_the_acknowledgement_until_written() {
        let mut ledger = ledger_with(&["a/x"], "10");
        let charge = ledger.apply("g1", &record(1, "r1", &["a/x"], 8), &PriceBook::default());
        ledger.stage_usage(Outgoing {
            gateway: "g1".into(),
            sequence: charge[0].sequence,
            budget: "a/x".into(),
            event: Default::default(),
            in_doubt: false,
        });
        assert!(ledger.ready_usage().is_empty(), "not in status yet");
        ledger.mark_persisted(
            "a/x",
            &[LedgerWatermark {
                gateway: "g1".into(),
                sequence: 1,
            }],
        );
        assert_eq!(ledger.acknowledge("g1", true), 0, "persisted, not written");
        assert_eq!(ledger.ready_usage().len(), 1);
        ledger.usage_written("g1", 1);
        assert_eq!(ledger.acknowledge("g1", true), 1);
    }

    #[test]
    fn a_record_is_priced_and_charged_to_every_budget_it_names() {
        let mut ledger = ledger_with(&["a/x", "a/y"], "10");
        // Haiku 3 output: $1.25 per 1M tokens, so 800,000 tokens cost $1.00.
        let charges = ledger.apply(
            "g1",
            &record(1, "r1", &["a/x", "a/y"], 800_000),
            &PriceBook::default(),
        );
        assert_eq!(charges.len(), 2);
        assert_eq!(ledger.account("a/x").unwrap().spent, usd("1.00"));
        assert_eq!(ledger.account("a/y").unwrap().spent, usd("1.00"));
        assert_eq!(ledger.account("a/x").unwrap().tokens.output, 800_000);
    }

    #[test]
    fn a_records_unit_cost_is_added_to_its_token_cost_exactly_once() {
        let mut ledger = ledger_with(&["a/x"], "10");
        let mut r = record(1, "r1", &["a/x"], 800_000);
        r.unit_cost = "0.9612".into();
        ledger.apply("g1", &r, &PriceBook::default());
        ledger.apply("g1", &r, &PriceBook::default());
        assert_eq!(ledger.account("a/x").unwrap().spent, usd("1.9612"));
        let mut junk = record(2, "r2", &["a/x"], 0);
        junk.unit_cost = "not money".into();
        ledger.apply("g1", &junk, &PriceBook::default());
        assert_eq!(ledger.account("a/x").unwrap().spent, usd("1.9612"));
    }

    #[test]
    fn a_resent_record_is_counted_once() {
        let mut ledger = ledger_with(&["a/x"], "10");
        let r = record(1, "r1", &["a/x"], 800_000);
        ledger.apply("g1", &r, &PriceBook::default());
        ledger.apply("g1", &r, &PriceBook::default());
        assert_eq!(ledger.account("a/x").unwrap().spent, usd("1.00"));
        assert_eq!(ledger.account("a/x").unwrap().requests, 1);
    }

    #[test]
    fn request_ids_are_remembered_for_the_horizon_by_the_calls_time_not_for_the_period() {
        let mut recent = RecentRequests::default();
        let start = 1_700_000_000_000;
        assert!(recent.insert("r0", start));
        assert!(
            !recent.insert("r0", start + 5_000),
            "a re-sent call is caught"
        );
        for minute in 1..=60 {
            let at = start + minute * 60_000;
            for n in 0..100 {
                assert!(recent.insert(&format!("r{minute}-{n}"), at));
            }
        }
        assert!(
            recent.len() <= 16 * 100,
            "an hour of calls keeps about the horizon's: {}",
            recent.len()
        );
        assert!(
            !recent.insert("r60-5", start + 60 * 60_000 + 1),
            "recent ones stay"
        );
        assert!(recent.insert("", start), "no ID, no duplicate");
    }

    #[test]
    fn the_same_bedrock_request_id_from_two_gateways_is_counted_once() {
        let mut ledger = ledger_with(&["a/x"], "10");
        ledger.apply(
            "g1",
            &record(1, "r1", &["a/x"], 800_000),
            &PriceBook::default(),
        );
        ledger.apply(
            "g2",
            &record(1, "r1", &["a/x"], 800_000),
            &PriceBook::default(),
        );
        assert_eq!(ledger.account("a/x").unwrap().spent, usd("1.00"));
    }

    #[test]
    fn a_record_is_acknowledged_only_once_every_budget_persisted_it() {
        let mut ledger = ledger_with(&["a/x", "a/y"], "10");
        ledger.apply(
            "g1",
            &record(1, "r1", &["a/x", "a/y"], 1),
            &PriceBook::default(),
        );
        ledger.apply("g1", &record(2, "r2", &["a/x"], 1), &PriceBook::default());
        assert_eq!(ledger.acknowledge("g1", false), 0);
        let marks = ledger.account("a/x").unwrap().watermarks();
        ledger.mark_persisted("a/x", &marks);
        assert_eq!(
            ledger.acknowledge("g1", false),
            0,
            "a/y has not persisted record 1"
        );
        let marks = ledger.account("a/y").unwrap().watermarks();
        ledger.mark_persisted("a/y", &marks);
        assert_eq!(ledger.acknowledge("g1", false), 2);
    }

    #[test]
    fn a_record_for_a_budget_not_yet_loaded_waits_unacknowledged_and_counts_when_it_loads() {
        // A leader just elected hears from a gateway before its reconciler loaded "a/x".
        let mut ledger = ledger_with(&["a/y"], "10");
        let r = record(1, "r1", &["a/x", "a/y"], 800_000);
        ledger.apply("g1", &r, &PriceBook::default());
        ledger.apply("g1", &r, &PriceBook::default());
        let marks = ledger.account("a/y").unwrap().watermarks();
        ledger.mark_persisted("a/y", &marks);
        assert_eq!(
            ledger.acknowledge("g1", false),
            0,
            "a/x has not counted record 1"
        );

        let replayed = ledger.insert("a/x".into(), Account::restore(window(), usd("10"), None));
        assert_eq!(replayed.len(), 1, "counted once although it arrived twice");
        assert_eq!(replayed[0].0.after, usd("1.00"));
        let account = ledger.account("a/x").unwrap();
        assert_eq!((account.spent, account.requests), (usd("1.00"), 1));
        let marks = account.watermarks();
        ledger.mark_persisted("a/x", &marks);
        assert_eq!(ledger.acknowledge("g1", false), 1);
    }

    #[test]
    fn records_waiting_for_a_deleted_budget_are_acknowledged_once_it_is_forgotten() {
        let mut ledger = Ledger::default();
        ledger.apply(
            "g1",
            &record(1, "r1", &["a/gone"], 1),
            &PriceBook::default(),
        );
        assert_eq!(ledger.acknowledge("g1", false), 0);
        assert_eq!(ledger.parked().count(), 1);
        ledger.remove("a/gone");
        assert_eq!(ledger.parked().count(), 0);
        assert_eq!(ledger.acknowledge("g1", false), 1);
    }

    #[test]
    fn a_new_leader_restored_from_status_skips_what_status_already_counts() {
        let mut first = ledger_with(&["a/x"], "10");
        first.apply(
            "g1",
            &record(1, "r1", &["a/x"], 800_000),
            &PriceBook::default(),
        );
        let account = first.account("a/x").unwrap();
        let status = AIBudgetStatus {
            period_start: Some(account.window.start.to_string()),
            spent: Some(account.spent.to_api_string()),
            requests: account.requests,
            ledger: account.watermarks(),
            ..Default::default()
        };
        let mut second = Ledger::default();
        second.insert(
            "a/x".into(),
            Account::restore(window(), usd("10"), Some(&status)),
        );
        // The gateway re-sends record 1 (never acknowledged) and sends record 2.
        second.apply(
            "g1",
            &record(1, "r1", &["a/x"], 800_000),
            &PriceBook::default(),
        );
        second.apply(
            "g1",
            &record(2, "r2", &["a/x"], 800_000),
            &PriceBook::default(),
        );
        assert_eq!(second.account("a/x").unwrap().spent, usd("2.00"));
        assert_eq!(second.account("a/x").unwrap().requests, 2);
    }

    #[test]
    fn status_from_an_earlier_period_restores_watermarks_but_not_spend() {
        let status = AIBudgetStatus {
            period_start: Some("2026-10-01T00:00:00Z".into()),
            spent: Some("7.00".into()),
            ledger: vec![LedgerWatermark {
                gateway: "g1".into(),
                sequence: 9,
            }],
            ..Default::default()
        };
        let account = Account::restore(window(), usd("10"), Some(&status));
        assert_eq!(account.spent, Usd::ZERO);
        assert_eq!(account.applied.get("g1"), Some(&9));
    }

    #[test]
    fn a_recovered_call_counts_apart_once_and_a_new_leader_restores_the_count() {
        let mut ledger = ledger_with(&["a/x"], "1.00");
        let book = PriceBook::default();
        ledger.apply("g1", &record(1, "r1", &["a/x"], 320_000), &book); // $0.40
        ledger.apply(RECOVERY_GATEWAY, &record(5, "r2", &["a/x"], 80_000), &book); // $0.10
        // A gateway re-sending the same call under its own numbering is not counted again.
        ledger.apply("g1", &record(2, "r2", &["a/x"], 80_000), &book);
        let account = ledger.account("a/x").unwrap();
        assert_eq!(account.spent, usd("0.50"));
        assert_eq!(account.recovered.calls, 1);
        assert_eq!(account.recovered.spent, usd("0.10"));
        let status = AIBudgetStatus {
            period_start: Some(window().start.to_string()),
            spent: Some(account.spent.to_api_string()),
            recovered: account.recovered.status(),
            ledger: account.watermarks(),
            ..Default::default()
        };
        let mut successor = ledger_with(&[], "1.00");
        successor.insert(
            "a/x".into(),
            Account::restore(window(), usd("1.00"), Some(&status)),
        );
        successor.apply(RECOVERY_GATEWAY, &record(5, "r2", &["a/x"], 80_000), &book);
        let account = successor.account("a/x").unwrap();
        assert_eq!((account.spent, account.recovered.calls), (usd("0.50"), 1));
    }

    #[test]
    fn grants_never_exceed_the_limit_less_spend_and_holdings() {
        let mut ledger = ledger_with(&["a/x"], "1.00");
        ledger.apply(
            "g1",
            &record(1, "r1", &["a/x"], 320_000),
            &PriceBook::default(),
        ); // $0.40
        assert_eq!(
            ledger.grant("a/x", "g1", usd("0.50"), Instant::now()),
            usd("0.50")
        );
        assert_eq!(
            ledger.grant("a/x", "g2", usd("0.50"), Instant::now()),
            usd("0.10")
        );
        assert_eq!(
            ledger.grant("a/x", "g2", usd("0.50"), Instant::now()),
            Usd::ZERO
        );
        ledger.set_held("a/x", "g1", usd("0.20"), Usd::ZERO);
        assert_eq!(ledger.account("a/x").unwrap().grantable(), usd("0.30"));
    }

    #[test]
    fn refusals_count_as_requests_and_throttles_but_cost_nothing() {
        let mut ledger = ledger_with(&["a/x"], "1.00");
        let mut r = record(1, "g1-1", &["a/x"], 0);
        r.refusal = Refusal::Throttled as i32;
        ledger.apply("g1", &r, &PriceBook::default());
        let a = ledger.account("a/x").unwrap();
        assert_eq!((a.requests, a.throttled, a.spent), (1, 1, Usd::ZERO));
    }

    #[test]
    fn workloads_are_charged_their_spend_and_refusals_and_survive_a_restore() {
        let mut ledger = ledger_with(&["a/x"], "10");
        let prices = PriceBook::default();
        let from = |mut r: UsageRecord, workload: &str| {
            r.workload = workload.into();
            r
        };
        ledger.apply(
            "g",
            &from(record(1, "r1", &["a/x"], 800_000), "chat"),
            &prices,
        );
        ledger.apply(
            "g",
            &from(record(2, "r2", &["a/x"], 400_000), "batch"),
            &prices,
        );
        let mut refused = from(record(3, "r3", &["a/x"], 0), "batch");
        refused.refusal = Refusal::Exhausted as i32;
        ledger.apply("g", &refused, &prices);
        let top = ledger.account("a/x").unwrap().top_workloads();
        let rows: Vec<_> = top
            .iter()
            .map(|w| {
                (
                    w.workload.as_str(),
                    w.spent.as_str(),
                    w.requests,
                    w.throttled_requests,
                )
            })
            .collect();
        assert_eq!(rows, [("chat", "1.00", 1, 0), ("batch", "0.50", 2, 1)]);

        let status = AIBudgetStatus {
            period_start: Some(window().start.to_string()),
            spent: Some("1.50".into()),
            top_workloads: top.clone(),
            ..Default::default()
        };
        let restored = Account::restore(window(), usd("10"), Some(&status));
        assert_eq!(restored.top_workloads(), top);
    }

    #[test]
    fn a_cluster_budget_tallies_namespaces_and_names_workloads_with_theirs() {
        let mut ledger = ledger_with(&["/org", "a/x"], "10");
        let prices = PriceBook::default();
        let from = |seq: u64, namespace: &str, workload: &str, output: u64| {
            let mut r = record(seq, &format!("r{seq}"), &["/org", "a/x"], output);
            r.pod_namespace = namespace.into();
            r.workload = workload.into();
            r
        };
        ledger.apply("g", &from(1, "a", "chat", 800_000), &prices);
        ledger.apply("g", &from(2, "b", "chat", 400_000), &prices);
        let mut refused = from(3, "b", "batch", 0);
        refused.refusal = Refusal::Exhausted as i32;
        ledger.apply("g", &refused, &prices);
        let org = ledger.account("/org").unwrap();
        let namespaces: Vec<_> = org
            .top_namespaces()
            .into_iter()
            .map(|n| (n.namespace, n.spent, n.requests, n.throttled_requests))
            .collect();
        assert_eq!(
            namespaces,
            [
                ("a".into(), "1.00".into(), 1, 0),
                ("b".into(), "0.50".into(), 2, 1)
            ]
        );
        let workloads: Vec<_> = org
            .top_workloads()
            .into_iter()
            .map(|w| w.workload)
            .collect();
        assert_eq!(workloads, ["a/chat", "b/chat", "b/batch"]);
        // The namespaced budget neither qualifies its workloads nor tallies namespaces.
        let team = ledger.account("a/x").unwrap();
        assert!(team.top_namespaces().is_empty());
        assert!(team.workloads.contains_key("chat"));

        let status = AIBudgetStatus {
            period_start: Some(window().start.to_string()),
            spent: Some("1.50".into()),
            top_namespaces: org.top_namespaces(),
            ..Default::default()
        };
        let restored = Account::restore(window(), usd("10"), Some(&status));
        assert_eq!(restored.top_namespaces(), org.top_namespaces());
    }

    #[test]
    fn calls_are_attributed_to_their_metadata_values_and_the_books_survive_a_restore() {
        let mut ledger = ledger_with(&["a/x"], "10");
        let keys = ["feature".to_owned()];
        ledger
            .account_mut("a/x")
            .unwrap()
            .declare_attribution(&keys);
        let prices = PriceBook::default();
        let tagged = |mut r: UsageRecord, value: Option<&str>| {
            if let Some(v) = value {
                r.request_metadata.insert("feature".into(), v.into());
            }
            r.request_metadata
                .insert("user".into(), "not declared".into());
            r
        };
        ledger.apply(
            "g",
            &tagged(record(1, "r1", &["a/x"], 800_000), Some("search")),
            &prices,
        );
        ledger.apply(
            "g",
            &tagged(record(2, "r2", &["a/x"], 400_000), None),
            &prices,
        );
        let mut refused = tagged(record(3, "r3", &["a/x"], 0), Some("search"));
        refused.refusal = Refusal::Throttled as i32;
        ledger.apply("g", &refused, &prices);
        let top = ledger.account("a/x").unwrap().top_attribution();
        assert_eq!(top.len(), 1, "only declared keys: {top:?}");
        let rows: Vec<_> = top[0]
            .values
            .iter()
            .map(|v| {
                (
                    v.value.as_str(),
                    v.spent.as_str(),
                    v.requests,
                    v.throttled_requests,
                )
            })
            .collect();
        assert_eq!(rows, [("search", "1.00", 2, 1), ("(none)", "0.50", 1, 0)]);

        let status = AIBudgetStatus {
            period_start: Some(window().start.to_string()),
            spent: Some("1.50".into()),
            attribution: top.clone(),
            ..Default::default()
        };
        let mut restored = Account::restore(window(), usd("10"), Some(&status));
        restored.declare_attribution(&keys);
        assert_eq!(restored.top_attribution(), top);
        let next = Period::Monthly
            .window_at(window().end, &time_zone("UTC").unwrap())
            .unwrap();
        restored.roll_over(next, usd("10"), Usd::ZERO);
        assert!(restored.top_attribution().is_empty());
        assert_eq!(restored.attribution.keys().collect::<Vec<_>>(), ["feature"]);
    }

    #[test]
    fn a_refusal_for_want_of_headroom_exhausts_the_budget_until_the_limit_changes() {
        // Haiku 3 output: 800,000 tokens cost $1.00.
        let mut ledger = ledger_with(&["a/x"], "2.50");
        let prices = PriceBook::default();
        ledger.apply("g", &record(1, "r1", &["a/x"], 800_000), &prices);
        ledger.apply("g", &record(2, "r2", &["a/x"], 800_000), &prices);
        let exhausted_refusal = |seq, id: &str| {
            let mut r = record(seq, id, &["a/x"], 0);
            r.refusal = Refusal::Exhausted as i32;
            r
        };
        assert!(!ledger.account("a/x").unwrap().exhausted());
        // $0.50 left, less than the $1.00 calls it serves: spent in practice.
        ledger.apply("g", &exhausted_refusal(3, "r3"), &prices);
        assert!(ledger.account("a/x").unwrap().exhausted());
        // An extension lifts it.
        ledger.account_mut("a/x").unwrap().limit = usd("10");
        assert!(!ledger.account("a/x").unwrap().exhausted());
        // A refusal with more left than the dearest call (a huge maxTokens) does not exhaust it.
        ledger.apply("g", &exhausted_refusal(4, "r4"), &prices);
        assert!(!ledger.account("a/x").unwrap().exhausted());
    }

    #[test]
    fn a_preview_counts_the_waiting_records_and_leaves_the_account_unopened() {
        let mut ledger = Ledger::default();
        ledger.apply(
            "g1",
            &record(1, "r1", &["a/x"], 800_000),
            &PriceBook::default(),
        );
        let preview = ledger.preview("a/x", Account::restore(window(), usd("10"), None));
        assert_eq!((preview.spent, preview.requests), (usd("1.00"), 1));
        assert!(ledger.account("a/x").is_none());
        assert_eq!(ledger.parked().count(), 1, "still waiting");
        assert_eq!(ledger.acknowledge("g1", false), 0);
    }

    #[test]
    fn committing_an_opening_counts_the_waiting_records_and_persists_what_status_holds() {
        let mut ledger = Ledger::default();
        ledger.apply("g1", &record(1, "r1", &["a/x"], 1), &PriceBook::default());
        let restored = Account::restore(window(), usd("10"), None);
        let preview = ledger.preview("a/x", restored.clone());
        let committed = ledger.commit(
            "a/x",
            Transition {
                open: Some(restored),
                replaces: None,
                roll_over: None,
                limit: usd("10"),
                persisted: preview.watermarks(),
            },
        );
        assert_eq!(committed.replayed.len(), 1);
        assert!(!committed.stale);
        assert_eq!(ledger.account("a/x").unwrap().requests, 1);
        assert_eq!(ledger.acknowledge("g1", false), 1);
    }

    #[test]
    fn a_rollover_is_held_back_when_records_arrived_since_the_snapshot() {
        let mut ledger = ledger_with(&["a/x"], "10");
        let next = Period::Monthly
            .window_at(
                "2026-12-10T00:00:00Z".parse().unwrap(),
                &time_zone("UTC").unwrap(),
            )
            .unwrap();
        let snapshot = ledger.account("a/x").unwrap().clone();
        let transition = Transition {
            open: None,
            replaces: None,
            roll_over: Some(RollOver {
                from: snapshot.window.clone(),
                to: next.clone(),
                version: snapshot.version,
                carried: Usd::ZERO,
            }),
            limit: usd("20"),
            persisted: snapshot.watermarks(),
        };
        // A record counted between the snapshot and the commit.
        ledger.apply(
            "g1",
            &record(1, "r1", &["a/x"], 800_000),
            &PriceBook::default(),
        );
        let committed = ledger.commit("a/x", transition.clone());
        assert!(committed.stale);
        let account = ledger.account("a/x").unwrap();
        assert_eq!(
            (account.window.clone(), account.spent, account.limit),
            (window(), usd("1.00"), usd("10")),
            "the old period keeps the record and its limit"
        );
        assert_eq!(
            ledger.acknowledge("g1", false),
            0,
            "the record is in no status"
        );

        let snapshot = ledger.account("a/x").unwrap().clone();
        let committed = ledger.commit(
            "a/x",
            Transition {
                roll_over: Some(RollOver {
                    version: snapshot.version,
                    ..transition.roll_over.clone().unwrap()
                }),
                persisted: snapshot.watermarks(),
                ..transition
            },
        );
        assert!(!committed.stale);
        let account = ledger.account("a/x").unwrap();
        assert_eq!(
            (account.window.clone(), account.spent, account.limit),
            (next, Usd::ZERO, usd("20"))
        );
        assert_eq!(ledger.acknowledge("g1", false), 1);
    }

    #[test]
    fn a_rollover_at_the_boundary_carries_the_unused_budget_capped_and_a_restart_keeps_it() {
        let mut ledger = ledger_with(&["a/x"], "10");
        ledger.apply(
            "g1",
            &record(1, "r1", &["a/x"], 800_000),
            &PriceBook::default(),
        );
        let snapshot = ledger.account("a/x").unwrap().clone();
        let next = Period::Monthly
            .window_at(snapshot.window.end, &time_zone("UTC").unwrap())
            .unwrap();
        assert_eq!(
            next.start, snapshot.window.end,
            "the next period starts at the boundary"
        );
        // $9.00 unused of $10.00; at most 50% of the next $10.00 limit is carried.
        let rule = aigov_api::period::Rollover { max_percent: 50 };
        let carried = rule.carried(snapshot.limit, snapshot.spent, usd("10"));
        assert_eq!(carried, usd("5"));
        let committed = ledger.commit(
            "a/x",
            Transition {
                open: None,
                replaces: None,
                roll_over: Some(RollOver {
                    from: snapshot.window.clone(),
                    to: next.clone(),
                    version: snapshot.version,
                    carried,
                }),
                limit: usd("10") + carried,
                persisted: snapshot.watermarks(),
            },
        );
        assert!(!committed.stale);
        let account = ledger.account("a/x").unwrap();
        assert_eq!(
            (
                account.window.clone(),
                account.spent,
                account.limit,
                account.rolled_over
            ),
            (next.clone(), Usd::ZERO, usd("15"), usd("5"))
        );
        let status = AIBudgetStatus {
            period_start: Some(next.start.to_string()),
            period_end: Some(next.end.to_string()),
            effective_limit: Some("15.00".into()),
            rolled_over: Some("5.00".into()),
            spent: Some("0".into()),
            ..AIBudgetStatus::default()
        };
        let restored = Account::restore(next.clone(), usd("15"), Some(&status));
        assert_eq!(
            restored.rolled_over,
            usd("5"),
            "a new leader restores what was carried"
        );
        let later = Period::Monthly
            .window_at(next.end, &time_zone("UTC").unwrap())
            .unwrap();
        let from_old_status = Account::restore(later, usd("10"), Some(&status));
        assert_eq!(
            from_old_status.rolled_over,
            Usd::ZERO,
            "only for its own period"
        );
    }

    /// The instant the records of `record` were answered at (`occurred_at_ms`).
    fn answered() -> Timestamp {
        Timestamp::from_millisecond(1_763_000_000_000).unwrap()
    }

    /// A ledger whose "a/x" account is the object "old"'s, which counted record 1 ($1.00,
    /// persisted in its status) and record 2 ($1.00, not yet persisted) from g1.
    fn ledger_of_the_old_object() -> Ledger {
        let mut ledger = Ledger::default();
        let old = Account::restore(window(), usd("10"), None).for_object("old", None);
        ledger.insert("a/x".into(), old);
        let prices = PriceBook::default();
        ledger.apply("g1", &record(1, "r1", &["a/x"], 800_000), &prices);
        let marks = ledger.account("a/x").unwrap().watermarks();
        ledger.mark_persisted("a/x", &marks);
        ledger.apply("g1", &record(2, "r2", &["a/x"], 800_000), &prices);
        assert_eq!(ledger.acknowledge("g1", false), 1);
        ledger
    }

    /// The transition the reconciler plans for the new object "new" created at `created`,
    /// with the status it writes (the successor's watermarks) as written.
    fn replacement(ledger: &Ledger, created: Timestamp) -> Transition {
        let fresh = Account::restore(window(), usd("10"), None).for_object("new", Some(created));
        let written = fresh.clone().succeeding(ledger.account("a/x").unwrap());
        Transition {
            open: Some(fresh),
            replaces: Some("old".into()),
            roll_over: None,
            limit: usd("10"),
            persisted: written.watermarks(),
        }
    }

    #[test]
    fn a_budget_created_again_under_the_same_name_starts_at_zero_and_acknowledges_the_old_records()
    {
        let mut ledger = ledger_of_the_old_object();
        let created = answered() + jiff::SignedDuration::from_secs(60);
        let committed = ledger.commit("a/x", replacement(&ledger, created));
        assert!(!committed.stale);
        let account = ledger.account("a/x").unwrap();
        assert_eq!(account.uid, "new");
        assert_eq!((account.spent, account.requests), (Usd::ZERO, 0));
        assert_eq!(
            ledger.acknowledge("g1", false),
            2,
            "the old budget's unpersisted record is acknowledged, not kept for ever"
        );
        // A re-send of what the old budget counted is never charged to the new one.
        ledger.apply(
            "g1",
            &record(2, "r2", &["a/x"], 800_000),
            &PriceBook::default(),
        );
        assert_eq!(ledger.account("a/x").unwrap().spent, Usd::ZERO);
    }

    #[test]
    fn a_record_answered_before_the_new_object_was_created_is_acknowledged_but_not_charged_to_it() {
        let mut ledger = ledger_of_the_old_object();
        let created = answered() + RECREATION_MARGIN + jiff::SignedDuration::from_millis(1);
        ledger.commit("a/x", replacement(&ledger, created));
        // Record 3 arrives late: answered for the old budget, before the new object existed.
        let charges = ledger.apply(
            "g1",
            &record(3, "r3", &["a/x"], 800_000),
            &PriceBook::default(),
        );
        assert!(charges.is_empty());
        let account = ledger.account("a/x").unwrap();
        assert_eq!((account.spent, account.requests), (Usd::ZERO, 0));
        assert_eq!(
            ledger.acknowledge("g1", false),
            2,
            "not in the new status yet"
        );
        let marks = ledger.account("a/x").unwrap().watermarks();
        ledger.mark_persisted("a/x", &marks);
        assert_eq!(ledger.acknowledge("g1", false), 3);
    }

    #[test]
    fn a_record_answered_after_the_new_object_was_created_is_charged_to_it_alone() {
        let mut ledger = ledger_of_the_old_object();
        // Within the margin: a gateway clock a little behind the API server's still charges
        // the new budget.
        let created = answered() + RECREATION_MARGIN;
        ledger.commit("a/x", replacement(&ledger, created));
        ledger.apply(
            "g1",
            &record(3, "r3", &["a/x"], 800_000),
            &PriceBook::default(),
        );
        let account = ledger.account("a/x").unwrap();
        assert_eq!((account.spent, account.requests), (usd("1.00"), 1));
    }

    #[test]
    fn a_re_created_budget_counts_what_gateways_still_hold_of_the_old_one_as_held() {
        let mut ledger = ledger_of_the_old_object();
        ledger.set_held("a/x", "g2", usd("3.00"), Usd::ZERO);
        ledger.commit("a/x", replacement(&ledger, answered()));
        let account = ledger.account("a/x").unwrap();
        assert_eq!(
            account.grantable(),
            usd("7.00"),
            "$10 less $0 spent, $3 held"
        );
        assert_eq!(
            ledger.grant("a/x", "g1", usd("9.00"), Instant::now()),
            usd("7.00")
        );
    }

    #[test]
    fn records_the_old_budget_counted_after_the_plan_make_the_replacement_commit_stale() {
        let mut ledger = ledger_of_the_old_object();
        let transition = replacement(&ledger, answered() + jiff::SignedDuration::from_secs(60));
        ledger.apply("g1", &record(3, "r3", &["a/x"], 1), &PriceBook::default());
        let committed = ledger.commit("a/x", transition);
        assert!(
            committed.stale,
            "come back to write the status that lists it"
        );
        assert_eq!(ledger.account("a/x").unwrap().applied.get("g1"), Some(&3));
        assert_eq!(ledger.acknowledge("g1", false), 2);
    }

    #[test]
    fn a_replacement_committed_again_leaves_the_new_budgets_account_alone() {
        let mut ledger = ledger_of_the_old_object();
        let transition = replacement(&ledger, answered());
        ledger.commit("a/x", transition.clone());
        ledger.apply(
            "g1",
            &record(3, "r3", &["a/x"], 800_000),
            &PriceBook::default(),
        );
        ledger.commit("a/x", transition);
        let account = ledger.account("a/x").unwrap();
        assert_eq!((account.uid.as_str(), account.spent), ("new", usd("1.00")));
    }

    #[test]
    fn an_account_of_unknown_uid_is_never_taken_for_another_objects() {
        let unknown = Account::restore(window(), usd("10"), None);
        assert!(!unknown.is_for_another_object("u1"));
        let known = unknown.for_object("u1", None);
        assert!(!known.is_for_another_object("u1"));
        assert!(!known.is_for_another_object(""));
        assert!(known.is_for_another_object("u2"));
    }

    #[test]
    fn a_grant_short_because_another_gateway_holds_the_rest_recalls_it_for_the_one_that_asked() {
        let mut ledger = ledger_with(&["a/x"], "0.50");
        let now = Instant::now();
        assert_eq!(ledger.grant("a/x", "g1", usd("0.25"), now), usd("0.25"));
        assert_eq!(ledger.grant("a/x", "g2", usd("0.25"), now), usd("0.25"));
        // Each holds 0.25 (0.04 of it reserved); g2 needs 0.30 for a call's worst case.
        ledger.set_held("a/x", "g1", usd("0.25"), usd("0.04"));
        ledger.set_held("a/x", "g2", usd("0.25"), Usd::ZERO);
        assert_eq!(ledger.grant("a/x", "g2", usd("0.30"), now), Usd::ZERO);
        let asker = ledger.advice("a/x", "g2", now);
        assert!(asker.recalling);
        assert_eq!(
            asker.in_flight,
            usd("0.04"),
            "calls in flight on every replica"
        );
        assert!(ledger.advice("a/x", "g1", now).give_back);
        assert_eq!(
            ledger.grant("a/x", "g1", usd("0.25"), now),
            Usd::ZERO,
            "nothing goes back to a replica asked to give back"
        );
        ledger.set_held("a/x", "g1", usd("0.04"), usd("0.04"));
        assert_eq!(ledger.grant("a/x", "g2", usd("0.30"), now), usd("0.21"));
    }

    #[test]
    fn an_expired_gateway_gives_back_what_it_held() {
        let mut ledger = ledger_with(&["a/x"], "1.00");
        ledger.grant("a/x", "g1", usd("1.00"), Instant::now());
        assert_eq!(ledger.account("a/x").unwrap().grantable(), Usd::ZERO);
        let returned = ledger.expire_gateway("g1");
        assert_eq!(returned, vec![("a/x".to_owned(), usd("1.00"))]);
        assert_eq!(ledger.account("a/x").unwrap().grantable(), usd("1.00"));
    }
}
