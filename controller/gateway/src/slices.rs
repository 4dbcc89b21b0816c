//! The gateway's side of the ledger: the slices of budget this replica holds, the worst-case
//! reservations of calls in flight, and the usage records the controller has not yet
//! acknowledged, exchanged with the controller a few times a second.
//!
//! A call is admitted only if every budget that selects it has the call's worst case free in
//! this replica's slice; the worst case is reserved until the call settles, then the real cost
//! is drawn and the rest returned to the slice. The controller grants slices only from what no
//! replica holds, so all replicas together stay within the limit.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aigov_api::Usd;
use rust_decimal::Decimal;
use tokio::sync::{Notify, watch};
use tonic::transport::{Channel, Endpoint};

use aigov_ledger::ledger::BudgetKey;
use aigov_ledger::proto::ledger_client::LedgerClient;
use aigov_ledger::proto::{ExchangeRequest, ExchangeResponse, Holding, UsageRecord};

/// How the gateway talks to the ledger.
#[derive(Clone, Debug)]
pub struct SliceConfig {
    /// Unique per process.
    pub gateway_id: String,
    /// Controller replicas (gRPC URLs); the one that answers as leader is used.
    pub endpoints: Vec<String>,
    /// Time between routine exchanges.
    pub interval: Duration,
    /// How long a slice stays spendable without contact with the controller.
    pub ttl: Duration,
    /// The slice a replica asks for, as a fraction of the limit.
    pub slice_fraction: Decimal,
    /// Unacknowledged records kept before new calls are refused (memory bound).
    pub max_pending: usize,
    /// Records sent per exchange.
    pub batch: usize,
}

/// The controller's latest figures for a budget.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// Settled spend.
    pub spent: Usd,
    /// Effective limit.
    pub limit: Usd,
    /// End of the period (RFC 3339).
    pub period_end: String,
}

#[derive(Debug)]
struct SliceAccount {
    free: Usd,
    reserved: Usd,
    urgent: Usd,
    limit_hint: Usd,
    figures: Option<Figures>,
    last_used: Instant,
}

#[derive(Debug)]
struct Pending {
    record: UsageRecord,
    sent: bool,
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<BudgetKey, SliceAccount>,
    pending: VecDeque<Pending>,
    next_sequence: u64,
    session: String,
    last_contact: Option<Instant>,
    settling: bool,
    started: u64,
    /// The process is stopping: every slice's free part goes back to the controller.
    leaving: bool,
}

/// What a call holds until it settles.
#[derive(Debug, Default)]
pub struct Reservation {
    amounts: Vec<(BudgetKey, Usd)>,
}

impl Reservation {
    /// True when no budget is charged (nobody selects the caller).
    pub fn is_empty(&self) -> bool {
        self.amounts.is_empty()
    }

    /// The budgets this call is charged to.
    pub fn budgets(&self) -> Vec<BudgetKey> {
        self.amounts.iter().map(|(k, _)| k.clone()).collect()
    }
}

/// Why a reservation failed.
#[derive(Clone, Debug, PartialEq)]
pub enum Shortfall {
    /// This budget's slice lacks the worst case (and the controller granted no more).
    Budget(BudgetKey),
    /// The controller is unreachable and the budget fails closed with nothing granted.
    Unreachable(BudgetKey),
    /// Too many records await acknowledgement.
    Backlog,
}

/// One budget to reserve on: its key, its limit, and whether it fails open.
#[derive(Clone, Debug)]
pub struct Claim {
    /// The budget.
    pub key: BudgetKey,
    /// Its spec limit (sizes the slice until the controller's figures arrive).
    pub limit: Usd,
    /// `failMode: Open`.
    pub fail_open: bool,
}

/// The replica's slices and pending records.
pub struct Slices {
    config: SliceConfig,
    state: Mutex<State>,
    wake: Notify,
    completed: watch::Sender<u64>,
}

impl Slices {
    /// Empty slices; `run` must be spawned to exchange with the controller.
    pub fn new(config: SliceConfig) -> Arc<Slices> {
        Arc::new(Slices {
            config,
            state: Mutex::new(State {
                next_sequence: 1,
                ..State::default()
            }),
            wake: Notify::new(),
            completed: watch::channel(0).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True while the controller has answered within the slice TTL.
    pub fn connected(&self) -> bool {
        self.lock()
            .last_contact
            .is_some_and(|t| t.elapsed() < self.config.ttl)
    }

    /// True once a leader answers and grants (it is not settling in).
    pub fn ready(&self) -> bool {
        let state = self.lock();
        state
            .last_contact
            .is_some_and(|t| t.elapsed() < self.config.ttl)
            && !state.settling
    }

    /// The controller's latest figures for `key`.
    pub fn figures(&self, key: &str) -> Option<Figures> {
        self.lock()
            .accounts
            .get(key)
            .and_then(|a| a.figures.clone())
    }

    fn try_reserve(&self, claims: &[Claim], worst: Usd) -> Result<Reservation, Shortfall> {
        let mut state = self.lock();
        if state.pending.len() >= self.config.max_pending {
            return Err(Shortfall::Backlog);
        }
        let connected = state
            .last_contact
            .is_some_and(|t| t.elapsed() < self.config.ttl);
        for claim in claims {
            let account = account(&mut state, claim);
            if account.free < worst && (connected || !claim.fail_open) {
                return Err(if connected {
                    Shortfall::Budget(claim.key.clone())
                } else {
                    Shortfall::Unreachable(claim.key.clone())
                });
            }
        }
        let mut reservation = Reservation::default();
        for claim in claims {
            let account = account(&mut state, claim);
            account.last_used = Instant::now();
            // Failing open without the controller: admitted without a slice, settled later.
            let backed = account.free >= worst;
            let amount = if backed { worst } else { Usd::ZERO };
            account.free = account.free - amount;
            account.reserved += amount;
            reservation.amounts.push((claim.key.clone(), amount));
        }
        Ok(reservation)
    }

    /// Reserves `worst` on every claimed budget, asking the controller for more once if a
    /// slice is short.
    pub async fn reserve(&self, claims: &[Claim], worst: Usd) -> Result<Reservation, Shortfall> {
        let shortfall = match self.try_reserve(claims, worst) {
            Ok(r) => return Ok(r),
            Err(Shortfall::Budget(key) | Shortfall::Unreachable(key)) => key,
            Err(Shortfall::Backlog) => return Err(Shortfall::Backlog),
        };
        let target = {
            let mut state = self.lock();
            let slice_size = self.slice_size_of(&state, &shortfall);
            if let Some(account) = state.accounts.get_mut(&shortfall) {
                let need = worst.saturating_sub(account.free) + slice_size;
                account.urgent = account.urgent.max(need);
            }
            state.started + 1
        };
        let mut completed = self.completed.subscribe();
        self.wake.notify_one();
        let wait = completed.wait_for(|done| *done >= target);
        let _ = tokio::time::timeout(self.config.interval * 4 + Duration::from_secs(1), wait).await;
        self.try_reserve(claims, worst)
    }

    fn slice_size_of(&self, state: &State, key: &str) -> Usd {
        state.accounts.get(key).map_or(Usd::ZERO, |a| {
            let limit = a.figures.as_ref().map_or(a.limit_hint, |f| f.limit);
            limit.scaled(self.config.slice_fraction)
        })
    }

    /// Settles a call: draws `cost` from each budget's reservation and queues the record.
    pub fn settle(&self, reservation: Reservation, cost: Usd, mut record: UsageRecord) {
        let mut state = self.lock();
        for (key, amount) in &reservation.amounts {
            if let Some(account) = state.accounts.get_mut(key) {
                account.reserved = account.reserved.saturating_sub(*amount);
                if !amount.is_zero() {
                    // Normally cost <= amount. Were the worst case ever wrong, the excess comes
                    // out of the slice, which may go negative until the next grant.
                    account.free = account.free + *amount - cost;
                }
            }
        }
        record.budgets = reservation.budgets();
        push(&mut state, record);
    }

    /// Returns a reservation untouched (the call never reached Bedrock).
    pub fn release(&self, reservation: Reservation) {
        let mut state = self.lock();
        for (key, amount) in &reservation.amounts {
            if let Some(account) = state.accounts.get_mut(key) {
                account.reserved = account.reserved.saturating_sub(*amount);
                account.free += *amount;
            }
        }
    }

    /// Queues a record of a refused call (it counts as a request and a throttle).
    pub fn record(&self, record: UsageRecord) {
        push(&mut self.lock(), record);
    }

    /// Records not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    fn build_request(&self) -> (ExchangeRequest, u64) {
        let mut state = self.lock();
        state.started += 1;
        let number = state.started;
        let connected = state
            .last_contact
            .is_some_and(|t| t.elapsed() < self.config.ttl);
        let fraction = self.config.slice_fraction;
        let expired = !connected && state.last_contact.is_some();
        let mut holdings = Vec::new();
        let leaving = state.leaving;
        for (key, account) in state.accounts.iter_mut() {
            if expired || leaving {
                // Expired: the controller will hand this replica's slice to others.
                account.free = account.free.min(Usd::ZERO);
            }
            let limit = account
                .figures
                .as_ref()
                .map_or(account.limit_hint, |f| f.limit);
            let slice = limit.scaled(fraction);
            let recently_used = !leaving && account.last_used.elapsed() < Duration::from_secs(60);
            let mut wanted = std::mem::replace(&mut account.urgent, Usd::ZERO);
            if leaving {
                wanted = Usd::ZERO;
            }
            if wanted.is_zero() && recently_used && account.free < slice.scaled(Decimal::new(5, 1))
            {
                wanted = slice.saturating_sub(account.free);
            }
            let keep = if recently_used { slice } else { Usd::ZERO };
            if wanted.is_zero() && account.free > keep.scaled(Decimal::TWO) {
                // Give back what this replica does not need.
                account.free = keep;
            }
            holdings.push(Holding {
                budget: key.clone(),
                held: (account.free + account.reserved)
                    .max(Usd::ZERO)
                    .to_api_string(),
                wanted: wanted.to_api_string(),
            });
        }
        let records = state
            .pending
            .iter_mut()
            .filter(|p| !p.sent)
            .take(self.config.batch)
            .map(|p| {
                p.sent = true;
                p.record.clone()
            })
            .collect();
        (
            ExchangeRequest {
                gateway_id: self.config.gateway_id.clone(),
                records,
                holdings,
            },
            number,
        )
    }

    fn apply_response(&self, response: ExchangeResponse) -> bool {
        let mut state = self.lock();
        state.last_contact = Some(Instant::now());
        state.settling = response.settling;
        if response.session != state.session {
            state.session = response.session.clone();
            for p in state.pending.iter_mut() {
                p.sent = false;
            }
        }
        while state
            .pending
            .front()
            .is_some_and(|p| p.record.sequence <= response.acknowledged_through)
        {
            state.pending.pop_front();
        }
        for grant in response.grants {
            if let (Some(account), Ok(amount)) = (
                state.accounts.get_mut(&grant.budget),
                Usd::parse(&grant.amount),
            ) {
                account.free += amount;
            }
        }
        for figures in response.budgets {
            if let (Some(account), Ok(spent), Ok(limit)) = (
                state.accounts.get_mut(&figures.budget),
                Usd::parse(&figures.spent),
                Usd::parse(&figures.limit),
            ) {
                account.figures = Some(Figures {
                    spent,
                    limit,
                    period_end: figures.period_end,
                });
            }
        }
        state.pending.iter().any(|p| !p.sent)
    }

    fn mark_unsent(&self) {
        for p in self.lock().pending.iter_mut() {
            p.sent = false;
        }
    }

    /// Hands everything back before the process exits: the free part of every slice is
    /// returned to the controller (calls still settling keep their reservations until they
    /// settle) and every record is sent, until the controller has acknowledged them all after
    /// the give-back, or `within` runs out. Returns the records still unacknowledged. `run`
    /// must still be running.
    pub async fn leave(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        let since = Instant::now();
        self.lock().leaving = true;
        loop {
            let target = self.lock().started + 1;
            let mut completed = self.completed.subscribe();
            self.wake.notify_one();
            let exchanged = completed.wait_for(|done| *done >= target);
            if tokio::time::timeout_at(deadline, exchanged).await.is_err() {
                return self.pending();
            }
            let state = self.lock();
            let contact = state.last_contact.is_some_and(|t| t >= since);
            let held = state.accounts.values().any(|a| !a.reserved.is_zero());
            if state.pending.is_empty() && contact && !held {
                return 0;
            }
        }
    }

    /// Exchanges with the controller until the process ends.
    pub async fn run(self: Arc<Self>) {
        let channels: Vec<LedgerClient<Channel>> = self
            .config
            .endpoints
            .iter()
            .filter_map(|url| match Endpoint::from_shared(url.clone()) {
                Ok(e) => Some(LedgerClient::new(
                    e.connect_timeout(Duration::from_secs(1))
                        .timeout(Duration::from_secs(5))
                        .connect_lazy(),
                )),
                Err(e) => {
                    tracing::error!(url, error = %e, "bad controller endpoint");
                    None
                }
            })
            .map(|c| {
                c.max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20)
            })
            .collect();
        if channels.is_empty() {
            tracing::error!("no controller endpoint: slices will never be granted");
            return;
        }
        let mut current = 0;
        let mut more = false;
        loop {
            if !more {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.interval) => {}
                    _ = self.wake.notified() => {}
                }
            }
            let (request, number) = self.build_request();
            let mut client = channels[current].clone();
            match client.exchange(request).await {
                Ok(response) => more = self.apply_response(response.into_inner()),
                Err(status) => {
                    tracing::debug!(endpoint = current, %status, "ledger exchange failed");
                    self.mark_unsent();
                    current = (current + 1) % channels.len();
                    more = false;
                }
            }
            self.completed.send_replace(number);
        }
    }
}

fn account<'a>(state: &'a mut State, claim: &Claim) -> &'a mut SliceAccount {
    state
        .accounts
        .entry(claim.key.clone())
        .or_insert_with(|| SliceAccount {
            free: Usd::ZERO,
            reserved: Usd::ZERO,
            urgent: Usd::ZERO,
            limit_hint: claim.limit,
            figures: None,
            last_used: Instant::now(),
        })
}

fn push(state: &mut State, mut record: UsageRecord) {
    record.sequence = state.next_sequence;
    state.next_sequence += 1;
    state.pending.push_back(Pending {
        record,
        sent: false,
    });
}
