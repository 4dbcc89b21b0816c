//! The gateway's side of the ledger, as I/O: the [`SliceBook`] (the pure slices, reservations
//! and unacknowledged records, in [`aigov_ledger::slices`]) behind a lock, exchanged with the
//! controller over gRPC a few times a second by [`Slices::run`].
//!
//! Everything that decides how much this replica may spend lives in the book, with time passed
//! in; this module only reads the clock, talks to the controller (failing over between its
//! replicas), wakes the exchange loop when a call runs short, and lets a call wait for the
//! grant it asked for.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aigov_api::Usd;
use rust_decimal::Decimal;
use tokio::sync::{Notify, watch};
use tonic::transport::{Channel, Endpoint};

use aigov_ledger::proto::ledger_client::LedgerClient;
use aigov_ledger::proto::{ExchangeRequest, UsageRecord};
use aigov_ledger::slices::{BookConfig, SliceBook};

pub use aigov_ledger::slices::{Claim, Figures, Reservation, Shortfall};

/// How long a connection attempt to a controller replica may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one exchange may take before the next replica is tried.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest exchange message either way (a full batch of records fits easily).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// How long a call waits for the first grant of a budget the controller has not opened yet
/// (its reconciler opens a new budget's account within a moment of its creation).
pub const FIRST_GRANT_WAIT: Duration = Duration::from_secs(5);

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

#[derive(Debug)]
struct State {
    book: SliceBook,
    /// Exchanges started so far; a waiter waits for one started after its request.
    started: u64,
}

/// The replica's slices and pending records, shared by every call and the exchange loop.
pub struct Slices {
    config: SliceConfig,
    state: Mutex<State>,
    wake: Notify,
    /// The number of the last exchange that completed (answered or failed).
    completed: watch::Sender<u64>,
    /// Exchanges by result, for `/metrics`.
    pub exchanges: crate::metrics::ExchangeCounts,
}

impl Slices {
    /// Empty slices; `run` must be spawned to exchange with the controller.
    pub fn new(config: SliceConfig) -> Arc<Slices> {
        let book = SliceBook::new(BookConfig {
            ttl: config.ttl,
            slice_fraction: config.slice_fraction,
            max_pending: config.max_pending,
            batch: config.batch,
        });
        Arc::new(Slices {
            config,
            state: Mutex::new(State { book, started: 0 }),
            wake: Notify::new(),
            completed: watch::channel(0).0,
            exchanges: Default::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True while the controller has answered within the slice TTL.
    pub fn connected(&self) -> bool {
        self.lock().book.connected(Instant::now())
    }

    /// True once a leader answers and grants (it is not settling in).
    pub fn ready(&self) -> bool {
        self.lock().book.ready(Instant::now())
    }

    /// The controller's latest figures for `key`.
    pub fn figures(&self, key: &str) -> Option<Figures> {
        self.lock().book.figures(key)
    }

    /// The latest figures of each of `keys`, under one lock.
    pub fn figures_of<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Vec<Option<Figures>> {
        let state = self.lock();
        keys.into_iter().map(|k| state.book.figures(k)).collect()
    }

    /// Counts a call arriving for `keys` (the demand that splits soft-limit rates across
    /// replicas) and returns their figures, under one lock.
    pub fn arrive<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Vec<Option<Figures>> {
        self.lock().book.arrive(keys)
    }

    /// Reserves `worst` on every claimed budget. When a slice is short, asks the controller
    /// for every short budget at once and waits for that exchange (a few intervals at most),
    /// then tries again; a budget the controller has not opened yet (created moments ago)
    /// is waited for a little longer ([`FIRST_GRANT_WAIT`]), exchange after exchange, so that
    /// its first call waits for its first grant instead of being refused; so is a budget whose
    /// headroom the controller is recalling from other replicas for this one
    /// ([`aigov_ledger::headroom`]).
    pub async fn reserve(&self, claims: &[Claim], worst: Usd) -> Result<Reservation, Shortfall> {
        let first = self.lock().book.reserve(claims, worst, Instant::now());
        if !matches!(first, Err(Shortfall::Budget(_) | Shortfall::Unreachable(_))) {
            return first;
        }
        let deadline = Instant::now() + FIRST_GRANT_WAIT;
        let within = self.config.interval * 4 + Duration::from_secs(1);
        loop {
            let (target, waiting_for_first) = {
                let mut state = self.lock();
                let now = Instant::now();
                let short = state.book.short_of(claims, worst, now);
                for key in &short {
                    state.book.ask_for(key, worst);
                }
                let unopened = short.iter().any(|k| state.book.unopened(k));
                (state.started + 1, unopened && state.book.connected(now))
            };
            let _ = tokio::time::timeout(within, self.exchanged(target)).await;
            let result = self.lock().book.reserve(claims, worst, Instant::now());
            // A recall cannot help a call that can never fit in what is left: it is answered
            // at once (the budget's, or the value's, 403).
            let (recalling, never_fits) = match &result {
                Err(Shortfall::Budget(key)) => self.figures(key).map_or((false, false), |f| {
                    (f.recalling, f.limit.saturating_sub(f.spent) < worst)
                }),
                _ => (false, false),
            };
            let short = matches!(result, Err(Shortfall::Budget(_)));
            let wait_more = (waiting_for_first || recalling) && !never_fits;
            if !short || !wait_more || Instant::now() >= deadline {
                return result;
            }
        }
    }

    /// Wakes the exchange loop and waits until exchange number `target` (or a later one) has
    /// completed.
    async fn exchanged(&self, target: u64) {
        let mut completed = self.completed.subscribe();
        self.wake.notify_one();
        let _ = completed.wait_for(|done| *done >= target).await;
    }

    /// Settles a call: draws `cost` from each budget's reservation and queues the record.
    pub fn settle(&self, reservation: Reservation, cost: Usd, record: UsageRecord) {
        self.lock().book.settle(reservation, cost, record);
    }

    /// Returns a reservation untouched (the call never reached Bedrock).
    pub fn release(&self, reservation: Reservation) {
        self.lock().book.release(reservation);
    }

    /// Queues a record of a refused call (it counts as a request and a throttle).
    pub fn record(&self, record: UsageRecord) {
        self.lock().book.record(record);
    }

    /// Records not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.lock().book.pending()
    }

    /// Hands everything back before the process exits: the free part of every slice is
    /// returned to the controller (calls still settling keep their reservations until they
    /// settle) and every record is sent, until the controller has acknowledged them all after
    /// the give-back, or `within` runs out. Returns the records still unacknowledged. `run`
    /// must still be running.
    pub async fn leave(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        let since = Instant::now();
        self.lock().book.leave();
        loop {
            let target = self.lock().started + 1;
            if tokio::time::timeout_at(deadline, self.exchanged(target))
                .await
                .is_err()
            {
                return self.pending();
            }
            if self.lock().book.left(since) {
                return 0;
            }
        }
    }

    fn next_request(&self) -> (ExchangeRequest, u64) {
        let mut state = self.lock();
        state.started += 1;
        let request = state
            .book
            .exchange_request(&self.config.gateway_id, Instant::now());
        (request, state.started)
    }

    /// One client per configured controller replica (connected lazily).
    fn clients(&self) -> Vec<LedgerClient<Channel>> {
        self.config
            .endpoints
            .iter()
            .filter_map(|url| match Endpoint::from_shared(url.clone()) {
                Ok(e) => Some(LedgerClient::new(
                    e.connect_timeout(CONNECT_TIMEOUT)
                        .timeout(EXCHANGE_TIMEOUT)
                        .connect_lazy(),
                )),
                Err(e) => {
                    tracing::error!(url, error = %e, "bad controller endpoint");
                    None
                }
            })
            .map(|c| {
                c.max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES)
            })
            .collect()
    }

    /// Exchanges with the controller until the process ends: every interval, at once when a
    /// call runs short or records remain unsent, and on the next replica after a failure.
    pub async fn run(self: Arc<Self>) {
        let clients = self.clients();
        if clients.is_empty() {
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
            let (request, number) = self.next_request();
            let mut client = clients[current].clone();
            let answer = client.exchange(request).await.map(|r| {
                let mut state = self.lock();
                state.book.apply_response(r.into_inner(), Instant::now())
            });
            let result = match &answer {
                Ok(Ok(_)) => "ok",
                Ok(Err(_)) => "stale_leader",
                Err(_) => "failed",
            };
            self.exchanges.count(result);
            match answer {
                Ok(Ok(unsent)) => more = unsent,
                Ok(Err(stale)) => {
                    tracing::warn!(endpoint = current, %stale, "ignoring a stale leader");
                    current = (current + 1) % clients.len();
                    more = false;
                }
                Err(status) => {
                    tracing::debug!(endpoint = current, %status, "ledger exchange failed");
                    self.lock().book.exchange_failed();
                    current = (current + 1) % clients.len();
                    more = false;
                }
            }
            self.completed.send_replace(number);
        }
    }
}
