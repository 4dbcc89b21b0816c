//! The slice book: the pure half of the $0 overshoot bound on a gateway replica (what it was
//! granted, what calls in flight reserve, what it gives back), with time injected.
//!
//! A call is admitted only if every budget that selects it has the call's worst case free in
//! this replica's slice; the worst case is reserved until the call settles, then the real cost
//! is drawn and the rest returned to the slice. The controller grants slices only from what no
//! replica holds (see [`crate::ledger::Ledger::grant`]), so all replicas together stay within
//! the limit as long as each [`SliceBook`] never reserves more than it was granted.
//!
//! The book does no I/O and never reads a clock: every decision that depends on time takes
//! `now` ([`std::time::Instant`]) from its caller, so tests can drive TTL expiry and idleness
//! without sleeping. The gateway wraps it with the gRPC exchange loop.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use aigov_api::Usd;
use rust_decimal::Decimal;

use crate::ledger::BudgetKey;
use crate::proto::{ExchangeRequest, ExchangeResponse, Holding, UsageRecord};
use crate::value_limits;

/// A slice used within this long counts as in use: it is kept topped up to a full slice. One
/// idle for longer is given back whole, so budget a replica no longer spends returns to the
/// controller for other replicas within a minute.
pub const RECENTLY_USED: Duration = Duration::from_secs(60);

/// A slice in use asks for a refill (up to a full slice) once its free part falls below this
/// fraction of a slice: early enough that calls rarely wait for a grant, late enough that a
/// replica does not ask on every exchange.
pub const REFILL_BELOW: Decimal = Decimal::from_parts(5, 0, 0, false, 1);

/// Free budget is given back only when it exceeds this multiple of what the replica keeps
/// (a full slice in use, nothing when idle): the hysteresis keeps a replica from giving back
/// and asking again on alternate exchanges after a large grant.
pub const GIVE_BACK_ABOVE: Decimal = Decimal::TWO;

/// The book's settings (the gateway's flags).
#[derive(Clone, Debug)]
pub struct BookConfig {
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
    /// This replica's fraction of the budget's soft-limit rate, in (0, 1]
    /// ([`crate::rates`]).
    pub rate_share: f64,
    /// What calls in flight reserve on every replica ([`crate::headroom`]).
    pub in_flight: Usd,
    /// Headroom is being recalled from other replicas for this one.
    pub recalling: bool,
}

/// What a call holds until it settles: per budget, the part of its worst case backed by a
/// slice (zero when a fail-open budget admitted it without one).
#[derive(Debug, Default)]
#[must_use = "a reservation must be settled or released, or its amount stays held"]
pub struct Reservation {
    amounts: Vec<(BudgetKey, Usd)>,
}

impl Reservation {
    /// True when no budget is charged (nobody selects the caller).
    pub fn is_empty(&self) -> bool {
        self.amounts.is_empty()
    }

    /// The budgets this call is charged to (not the value accounts it reserved on: a value's
    /// spend is counted from its budget's record, [`crate::value_limits`]).
    pub fn budgets(&self) -> Vec<BudgetKey> {
        self.amounts
            .iter()
            .filter(|(k, _)| value_limits::split(k).is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Takes `more` into this reservation, budget by budget: a session that grows its
    /// reservation as it goes (a bidirectional stream's top-ups) settles it as one.
    pub fn absorb(&mut self, more: Reservation) {
        for (key, amount) in more.amounts {
            match self.amounts.iter_mut().find(|(k, _)| *k == key) {
                Some((_, held)) => *held += amount,
                None => self.amounts.push((key, amount)),
            }
        }
    }

    /// The amount reserved on `key` from its slice (zero when unbacked or not charged).
    pub fn backed(&self, key: &str) -> Usd {
        self.amounts
            .iter()
            .find(|(k, _)| k == key)
            .map_or(Usd::ZERO, |(_, a)| *a)
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

/// What the replica holds of one budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Balance {
    /// Granted and neither reserved nor spent.
    pub free: Usd,
    /// Reserved by calls in flight.
    pub reserved: Usd,
}

#[derive(Debug)]
struct SliceAccount {
    free: Usd,
    reserved: Usd,
    urgent: Usd,
    /// What a short call asked for ([`SliceBook::ask_for`]) and has not yet reserved: kept
    /// from the give-back, or the grant could go back before the call that waits for it
    /// takes it (a call's worst case can be many slices of a small per-value limit).
    asked: Usd,
    /// A call claimed this account, or its balance changed, since it was last looked at for
    /// an exchange: a value account that is not dirty is passed over without building its
    /// holding (a replica may hold 100,000 of them).
    touched: bool,
    /// A per-value account ([`value_limits::split`]), not a budget's own.
    is_value: bool,
    /// What the last holding reported (held, reserved): a value account whose holding has not
    /// changed and that no call touched is left out of the next exchange.
    reported: Option<(String, String)>,
    limit_hint: Usd,
    figures: Option<Figures>,
    last_used: Instant,
    /// Calls seen since the last exchange (the demand reported in the holding).
    calls: u64,
    /// The controller asked for every free part back (another replica needs it).
    give_back: bool,
}

impl SliceAccount {
    fn limit(&self) -> Usd {
        self.figures.as_ref().map_or(self.limit_hint, |f| f.limit)
    }
}

#[derive(Debug)]
struct Pending {
    record: UsageRecord,
    sent: bool,
}

/// A replica's slices, its reservations and its unacknowledged usage records.
#[derive(Debug)]
pub struct SliceBook {
    config: BookConfig,
    accounts: HashMap<BudgetKey, SliceAccount>,
    pending: VecDeque<Pending>,
    next_sequence: u64,
    session: String,
    last_contact: Option<Instant>,
    settling: bool,
    /// The highest leader epoch heard from ([`StaleLeader`]).
    epoch: u64,
    /// The process is stopping: every slice's free part goes back to the controller.
    leaving: bool,
}

/// An answer from a leader older than one this replica has already heard from: a replica that
/// has not yet noticed it lost the Lease. It is ignored (nothing granted or acknowledged by
/// it counts), and the gateway turns to another controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an answer from a stale leader (epoch {epoch}; epoch {newest} has led since)")]
pub struct StaleLeader {
    /// The answer's epoch.
    pub epoch: u64,
    /// The highest epoch heard from.
    pub newest: u64,
}

impl SliceBook {
    /// An empty book: nothing granted, no contact yet, the first record numbered 1.
    pub fn new(config: BookConfig) -> SliceBook {
        SliceBook {
            config,
            accounts: HashMap::new(),
            pending: VecDeque::new(),
            next_sequence: 1,
            session: String::new(),
            last_contact: None,
            settling: false,
            epoch: 0,
            leaving: false,
        }
    }

    /// True while the controller has answered within the slice TTL.
    pub fn connected(&self, now: Instant) -> bool {
        self.last_contact
            .is_some_and(|t| now.saturating_duration_since(t) < self.config.ttl)
    }

    /// True once a leader answers and grants (it is not settling in).
    pub fn ready(&self, now: Instant) -> bool {
        self.connected(now) && !self.settling
    }

    /// True when the controller has answered at or after `since`.
    pub fn answered_since(&self, since: Instant) -> bool {
        self.last_contact.is_some_and(|t| t >= since)
    }

    /// The controller's latest figures for `key`.
    pub fn figures(&self, key: &str) -> Option<Figures> {
        self.accounts.get(key).and_then(|a| a.figures.clone())
    }

    /// Counts a call for each budget of `keys` this replica has claimed (whether or not the
    /// call is then admitted: the demand by which the controller splits soft-limit rates
    /// across replicas) and returns each one's latest figures.
    pub fn arrive<'k>(&mut self, keys: impl IntoIterator<Item = &'k str>) -> Vec<Option<Figures>> {
        keys.into_iter()
            .map(|key| {
                let account = self.accounts.get_mut(key)?;
                account.calls += 1;
                account.figures.clone()
            })
            .collect()
    }

    /// What the replica holds of `key`, if it ever claimed it.
    pub fn balance(&self, key: &str) -> Option<Balance> {
        self.accounts.get(key).map(|a| Balance {
            free: a.free,
            reserved: a.reserved,
        })
    }

    /// True while some call in flight still holds a reservation.
    pub fn any_reserved(&self) -> bool {
        self.accounts.values().any(|a| !a.reserved.is_zero())
    }

    /// Reserves `worst` on every claimed budget, or nothing: all claims are checked before any
    /// is drawn. Without the controller, a fail-open budget whose slice is short admits the
    /// call unbacked (reserving zero; it is reconciled when the records arrive).
    pub fn reserve(
        &mut self,
        claims: &[Claim],
        worst: Usd,
        now: Instant,
    ) -> Result<Reservation, Shortfall> {
        if self.pending.len() >= self.config.max_pending {
            return Err(Shortfall::Backlog);
        }
        let connected = self.connected(now);
        for claim in claims {
            let account = self.account(claim, now);
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
            let account = self.account(claim, now);
            account.last_used = now;
            account.asked = Usd::ZERO;
            let backed = account.free >= worst;
            let amount = if backed { worst } else { Usd::ZERO };
            account.free = account.free - amount;
            account.reserved += amount;
            reservation.amounts.push((claim.key.clone(), amount));
        }
        Ok(reservation)
    }

    /// The claimed budgets whose slice lacks `worst` right now (their accounts opened if
    /// new), so that a short call asks for every one of them in one exchange instead of
    /// learning of the next only after waiting for the first.
    pub fn short_of(&mut self, claims: &[Claim], worst: Usd, now: Instant) -> Vec<BudgetKey> {
        claims
            .iter()
            .filter(|claim| self.account(claim, now).free < worst)
            .map(|claim| claim.key.clone())
            .collect()
    }

    /// True when the controller has never reported figures for `key`: it has not opened the
    /// budget's account yet (a budget created moments ago), so nothing can be granted on it
    /// until it does.
    pub fn unopened(&self, key: &str) -> bool {
        self.accounts.get(key).is_none_or(|a| a.figures.is_none())
    }

    /// Asks for enough on `key`'s next exchange to fit `worst` and still hold a full slice
    /// (after a [`Shortfall`], so the retry has a chance).
    pub fn ask_for(&mut self, key: &str, worst: Usd) {
        let slice = self.slice_size(key);
        if let Some(account) = self.accounts.get_mut(key) {
            let need = worst.saturating_sub(account.free) + slice;
            account.urgent = account.urgent.max(need);
            account.asked = account.asked.max(worst);
        }
    }

    /// One slice of `key`: the slice fraction of its limit (the controller's figure once
    /// known), zero for a budget never claimed.
    pub fn slice_size(&self, key: &str) -> Usd {
        self.accounts
            .get(key)
            .map_or(Usd::ZERO, |a| a.limit().scaled(self.config.slice_fraction))
    }

    /// Settles a call: draws `cost` from each budget's reservation, returns the rest to the
    /// slice, and queues the record charged to every budget of the reservation.
    pub fn settle(&mut self, reservation: Reservation, cost: Usd, mut record: UsageRecord) {
        for (key, amount) in &reservation.amounts {
            if let Some(account) = self.accounts.get_mut(key) {
                account.touched = true;
                account.reserved = account.reserved.saturating_sub(*amount);
                if !amount.is_zero() {
                    // Normally cost <= amount. Were the worst case ever wrong, the excess comes
                    // out of the slice, which may go negative until the next grant.
                    account.free = account.free + *amount - cost;
                }
            }
        }
        record.budgets = reservation.budgets();
        self.push(record);
    }

    /// Returns a reservation untouched (the call never reached Bedrock, or Bedrock reported
    /// nothing to charge).
    pub fn release(&mut self, reservation: Reservation) {
        for (key, amount) in &reservation.amounts {
            if let Some(account) = self.accounts.get_mut(key) {
                account.touched = true;
                account.reserved = account.reserved.saturating_sub(*amount);
                account.free += *amount;
            }
        }
    }

    /// Queues a record of a refused call (it counts as a request and a throttle).
    pub fn record(&mut self, record: UsageRecord) {
        self.push(record);
    }

    /// Records not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The records not yet acknowledged, oldest first.
    pub fn pending_records(&self) -> impl Iterator<Item = &UsageRecord> {
        self.pending.iter().map(|p| &p.record)
    }

    /// The next exchange's request: every budget's holding (after expiring a slice past its
    /// TTL, giving back surplus and asking for refills) and the next batch of unsent records.
    pub fn exchange_request(&mut self, gateway_id: &str, now: Instant) -> ExchangeRequest {
        // Expired: the controller will hand this replica's slice to others.
        let expired = !self.connected(now) && self.last_contact.is_some();
        let drop_free = expired || self.leaving;
        let fraction = self.config.slice_fraction;
        let leaving = self.leaving;
        // Budgets are reported every exchange; a value account only when a call touched it or
        // its holding changed (the ledger keeps what was last reported), so 100,000 values
        // called once each are not 100,000 holdings every exchange.
        let holdings = self
            .accounts
            .iter_mut()
            .filter_map(|(key, account)| {
                let idle = now.saturating_duration_since(account.last_used) >= RECENTLY_USED;
                let due = account.touched || drop_free || (idle && !account.free.is_zero());
                if account.is_value && !due {
                    return None;
                }
                let holding = holding(key, account, fraction, drop_free, leaving, now);
                let current = (holding.held.clone(), holding.reserved.clone());
                let touched = std::mem::take(&mut account.touched);
                let unchanged = account.reported.as_ref() == Some(&current);
                let wants = Usd::parse(&holding.wanted).is_ok_and(|w| !w.is_zero());
                let quiet = unchanged && !touched && !wants;
                account.reported = Some(current);
                (value_limits::split(key).is_none() || !quiet).then_some(holding)
            })
            .collect();
        // A value account that holds nothing and has not been used lately is forgotten once
        // its empty holding is reported here: values come and go by the thousand.
        self.accounts.retain(|_, account| {
            !account.is_value
                || !account.free.is_zero()
                || !account.reserved.is_zero()
                || now.saturating_duration_since(account.last_used) < RECENTLY_USED
        });
        let records = self
            .pending
            .iter_mut()
            .filter(|p| !p.sent)
            .take(self.config.batch)
            .map(|p| {
                p.sent = true;
                p.record.clone()
            })
            .collect();
        ExchangeRequest {
            gateway_id: gateway_id.to_owned(),
            records,
            holdings,
        }
    }

    /// Takes the controller's answer: contact, acknowledgements (forgotten), grants (added
    /// to the free part) and figures. A new session means a new leader that may lack records
    /// sent before: all unacknowledged ones are sent again. Returns true when records remain
    /// unsent (exchange again at once). An answer from an older leader than one already heard
    /// from changes nothing ([`StaleLeader`]).
    pub fn apply_response(
        &mut self,
        response: ExchangeResponse,
        now: Instant,
    ) -> Result<bool, StaleLeader> {
        if response.epoch < self.epoch {
            self.exchange_failed();
            return Err(StaleLeader {
                epoch: response.epoch,
                newest: self.epoch,
            });
        }
        self.epoch = response.epoch;
        self.last_contact = Some(now);
        self.settling = response.settling;
        if response.session != self.session {
            self.session = response.session;
            self.exchange_failed();
        }
        while self
            .pending
            .front()
            .is_some_and(|p| p.record.sequence <= response.acknowledged_through)
        {
            self.pending.pop_front();
        }
        for grant in response.grants {
            if let (Some(account), Ok(amount)) = (
                self.accounts.get_mut(&grant.budget),
                Usd::parse(&grant.amount),
            ) {
                account.free += amount;
                account.touched = true;
            }
        }
        // A give-back asked for goes out with the next exchange, at once.
        let mut again = false;
        for figures in response.budgets {
            if let (Some(account), Ok(spent), Ok(limit)) = (
                self.accounts.get_mut(&figures.budget),
                Usd::parse(&figures.spent),
                Usd::parse(&figures.limit),
            ) {
                // Older controllers send no share: the whole rate.
                let rate_share = if figures.rate_share > 0.0 && figures.rate_share <= 1.0 {
                    figures.rate_share
                } else {
                    1.0
                };
                account.give_back |= figures.give_back;
                account.touched |= figures.give_back;
                again |= figures.give_back;
                account.figures = Some(Figures {
                    spent,
                    limit,
                    period_end: figures.period_end,
                    rate_share,
                    in_flight: Usd::parse(&figures.in_flight).unwrap_or(Usd::ZERO),
                    recalling: figures.recalling,
                });
            }
        }
        Ok(again || self.pending.iter().any(|p| !p.sent))
    }

    /// The exchange failed: its records may not have arrived, so all are sent again.
    pub fn exchange_failed(&mut self) {
        for p in self.pending.iter_mut() {
            p.sent = false;
        }
    }

    /// The process is stopping: from the next exchange on, every slice's free part is given
    /// back and nothing more is asked for.
    pub fn leave(&mut self) {
        self.leaving = true;
    }

    /// True when a stopping replica is done: the controller answered at or after `since` (so
    /// it has the give-back), acknowledged every record, and no call still holds a reservation.
    pub fn left(&self, since: Instant) -> bool {
        self.pending.is_empty() && self.answered_since(since) && !self.any_reserved()
    }

    fn account(&mut self, claim: &Claim, now: Instant) -> &mut SliceAccount {
        let account = self.open(claim, now);
        account.touched = true;
        account
    }

    fn open(&mut self, claim: &Claim, now: Instant) -> &mut SliceAccount {
        self.accounts
            .entry(claim.key.clone())
            .or_insert_with(|| SliceAccount {
                free: Usd::ZERO,
                reserved: Usd::ZERO,
                urgent: Usd::ZERO,
                asked: Usd::ZERO,
                touched: false,
                is_value: value_limits::split(&claim.key).is_some(),
                reported: None,
                limit_hint: claim.limit,
                figures: None,
                last_used: now,
                calls: 0,
                give_back: false,
            })
    }

    fn push(&mut self, mut record: UsageRecord) {
        record.sequence = self.next_sequence;
        self.next_sequence += 1;
        self.pending.push_back(Pending {
            record,
            sent: false,
        });
    }
}

/// One budget's holding for the next exchange, adjusting the account on the way: the free part
/// dropped when the slice expired or the replica leaves, surplus given back, a refill asked
/// for when a slice in use runs low (or what a short reservation asked for urgently).
fn holding(
    key: &str,
    account: &mut SliceAccount,
    fraction: Decimal,
    drop_free: bool,
    leaving: bool,
    now: Instant,
) -> Holding {
    if drop_free || std::mem::take(&mut account.give_back) {
        account.free = account.free.min(Usd::ZERO);
    }
    let slice = account.limit().scaled(fraction);
    let recently_used =
        !leaving && now.saturating_duration_since(account.last_used) < RECENTLY_USED;
    let mut wanted = std::mem::replace(&mut account.urgent, Usd::ZERO);
    if leaving {
        wanted = Usd::ZERO;
    }
    if wanted.is_zero() && recently_used && account.free < slice.scaled(REFILL_BELOW) {
        wanted = slice.saturating_sub(account.free);
    }
    let keep = if recently_used {
        slice + account.asked
    } else {
        Usd::ZERO
    };
    if wanted.is_zero() && account.free > keep.scaled(GIVE_BACK_ABOVE) {
        // Give back what this replica does not need.
        account.free = keep;
    }
    Holding {
        budget: key.to_owned(),
        held: (account.free + account.reserved)
            .max(Usd::ZERO)
            .to_api_string(),
        wanted: wanted.to_api_string(),
        calls: std::mem::take(&mut account.calls),
        reserved: account.reserved.to_api_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{BudgetFigures, Grant};
    use proptest::prelude::*;

    const TTL: Duration = Duration::from_secs(20);

    fn book() -> SliceBook {
        SliceBook::new(BookConfig {
            ttl: TTL,
            slice_fraction: Decimal::new(5, 2),
            max_pending: 1000,
            batch: 100,
        })
    }

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    fn claim(key: &str, limit: &str, fail_open: bool) -> Claim {
        Claim {
            key: key.to_owned(),
            limit: usd(limit),
            fail_open,
        }
    }

    fn answer(grants: &[(&str, &str)], acknowledged_through: u64) -> ExchangeResponse {
        ExchangeResponse {
            acknowledged_through,
            grants: grants
                .iter()
                .map(|(budget, amount)| Grant {
                    budget: (*budget).to_owned(),
                    amount: (*amount).to_owned(),
                })
                .collect(),
            session: "s1".to_owned(),
            ..ExchangeResponse::default()
        }
    }

    fn record(id: &str) -> UsageRecord {
        UsageRecord {
            request_id: id.to_owned(),
            ..UsageRecord::default()
        }
    }

    /// A book in contact at `now`, holding `amount` free of `key` (limit $100).
    fn granted(key: &str, amount: &str, now: Instant) -> SliceBook {
        let mut book = book();
        let _ = book.reserve(&[claim(key, "100", false)], usd("1000"), now);
        book.apply_response(answer(&[(key, amount)], 0), now)
            .unwrap();
        book
    }

    fn holding_of<'a>(request: &'a ExchangeRequest, key: &str) -> &'a Holding {
        request.holdings.iter().find(|h| h.budget == key).unwrap()
    }

    #[test]
    fn a_call_is_admitted_only_when_every_budget_has_its_worst_case_free() {
        let now = Instant::now();
        let mut book = granted("ns/a", "5", now);
        let claims = [claim("ns/a", "100", false), claim("ns/b", "100", false)];
        assert_eq!(
            book.reserve(&claims, usd("1"), now).unwrap_err(),
            Shortfall::Budget("ns/b".into())
        );
        assert_eq!(
            book.balance("ns/a").unwrap().free,
            usd("5"),
            "a refused call draws on no budget"
        );
    }

    #[test]
    fn a_reservation_that_absorbed_top_ups_settles_them_all_at_once() {
        let now = Instant::now();
        let mut book = granted("ns/a", "5", now);
        let claims = [claim("ns/a", "100", false)];
        let mut reservation = book.reserve(&claims, usd("1"), now).unwrap();
        reservation.absorb(book.reserve(&claims, usd("1.5"), now).unwrap());
        assert_eq!(reservation.backed("ns/a"), usd("2.5"));
        book.settle(reservation, usd("2.25"), record("session"));
        assert_eq!(
            book.balance("ns/a").unwrap(),
            Balance {
                free: usd("2.75"),
                reserved: Usd::ZERO
            },
            "the whole session drawn once, nothing left reserved"
        );
    }

    #[test]
    fn settling_draws_the_real_cost_and_returns_the_rest_of_the_worst_case() {
        let now = Instant::now();
        let mut book = granted("ns/a", "5", now);
        let reservation = book
            .reserve(&[claim("ns/a", "100", false)], usd("2"), now)
            .unwrap();
        assert_eq!(
            book.balance("ns/a").unwrap(),
            Balance {
                free: usd("3"),
                reserved: usd("2")
            }
        );
        book.settle(reservation, usd("0.25"), record("r1"));
        assert_eq!(
            book.balance("ns/a").unwrap(),
            Balance {
                free: usd("4.75"),
                reserved: Usd::ZERO
            }
        );
        let queued: Vec<_> = book.pending_records().collect();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].budgets, vec!["ns/a".to_owned()]);
    }

    #[test]
    fn a_released_reservation_returns_in_full_and_queues_nothing() {
        let now = Instant::now();
        let mut book = granted("ns/a", "5", now);
        let reservation = book
            .reserve(&[claim("ns/a", "100", false)], usd("2"), now)
            .unwrap();
        book.release(reservation);
        assert_eq!(book.balance("ns/a").unwrap().free, usd("5"));
        assert_eq!(book.pending(), 0);
    }

    #[test]
    fn without_the_controller_a_fail_closed_budget_is_unreachable_and_a_fail_open_one_admits_unbacked()
     {
        let now = Instant::now();
        let mut book = book();
        assert_eq!(
            book.reserve(&[claim("ns/a", "100", false)], usd("1"), now)
                .unwrap_err(),
            Shortfall::Unreachable("ns/a".into())
        );
        let reservation = book
            .reserve(&[claim("ns/b", "100", true)], usd("1"), now)
            .unwrap();
        assert_eq!(reservation.backed("ns/b"), Usd::ZERO);
        assert_eq!(reservation.budgets(), vec!["ns/b".to_owned()]);
        assert_eq!(book.balance("ns/b").unwrap().reserved, Usd::ZERO);
    }

    #[test]
    fn too_many_unacknowledged_records_refuse_new_calls() {
        let now = Instant::now();
        let mut book = SliceBook::new(BookConfig {
            max_pending: 2,
            ..book().config
        });
        book.record(record("a"));
        book.record(record("b"));
        assert_eq!(
            book.reserve(&[], Usd::ZERO, now).unwrap_err(),
            Shortfall::Backlog
        );
    }

    #[test]
    fn a_slice_past_its_ttl_without_contact_is_given_up_on_the_next_exchange() {
        let now = Instant::now();
        let mut book = granted("ns/a", "5", now);
        let later = now + TTL;
        assert!(!book.connected(later));
        let request = book.exchange_request("g", later);
        assert_eq!(book.balance("ns/a").unwrap().free, Usd::ZERO);
        assert_eq!(holding_of(&request, "ns/a").held, "0.00");
    }

    #[test]
    fn a_short_reservation_asks_for_the_shortfall_plus_a_slice_at_once() {
        let now = Instant::now();
        let mut book = granted("ns/a", "1", now);
        let claims = [claim("ns/a", "100", false)];
        assert!(book.reserve(&claims, usd("3"), now).is_err());
        book.ask_for("ns/a", usd("3"));
        let request = book.exchange_request("g", now);
        assert_eq!(
            holding_of(&request, "ns/a").wanted,
            "7.00",
            "$2 short + $5 slice"
        );
        let request = book.exchange_request("g", now);
        assert_eq!(
            holding_of(&request, "ns/a").wanted,
            "4.00",
            "then only the routine refill to a full slice"
        );
    }

    #[test]
    fn every_short_budget_of_a_call_is_found_at_once_and_a_new_one_is_unopened() {
        let now = Instant::now();
        let mut book = granted("ns/a", "5", now);
        let claims = [
            claim("ns/b", "100", false),
            claim("ns/a", "100", false),
            claim("ns/c", "100", false),
        ];
        assert_eq!(
            book.short_of(&claims, usd("1"), now),
            vec!["ns/b".to_owned(), "ns/c".to_owned()],
            "both, not only the first"
        );
        assert!(book.unopened("ns/b"), "no figures from the controller yet");
        let mut response = answer(&[], 0);
        response.budgets.push(BudgetFigures {
            budget: "ns/b".into(),
            spent: "0".into(),
            limit: "100".into(),
            period_end: "2026-01-01T00:00:00Z".into(),
            ..Default::default()
        });
        book.apply_response(response, now).unwrap();
        assert!(!book.unopened("ns/b"));
        assert!(book.unopened("ns/never-claimed"));
    }

    #[test]
    fn a_slice_in_use_is_refilled_below_half_and_kept_up_to_a_full_slice() {
        let now = Instant::now();
        let mut book = granted("ns/a", "2.49", now);
        let request = book.exchange_request("g", now);
        assert_eq!(holding_of(&request, "ns/a").wanted, "2.51");
        book.apply_response(answer(&[("ns/a", "0.02")], 0), now)
            .unwrap();
        let request = book.exchange_request("g", now);
        assert_eq!(
            holding_of(&request, "ns/a").wanted,
            "0.00",
            "$2.51 is half a slice or more"
        );
    }

    #[test]
    fn surplus_beyond_twice_a_slice_is_given_back_down_to_one_slice() {
        let now = Instant::now();
        let mut book = granted("ns/a", "10", now);
        let request = book.exchange_request("g", now);
        assert_eq!(
            holding_of(&request, "ns/a").held,
            "10.00",
            "exactly 2x is kept"
        );
        book.apply_response(answer(&[("ns/a", "0.01")], 0), now)
            .unwrap();
        let request = book.exchange_request("g", now);
        assert_eq!(holding_of(&request, "ns/a").held, "5.00");
    }

    #[test]
    fn a_grant_a_short_call_asked_for_is_not_given_back_before_the_call_takes_it() {
        // A $0.01 per-value limit: a slice is $0.0005, a call's worst case $0.004.
        let now = Instant::now();
        let mut book = book();
        let claims = [claim("ns/a\u{1f}user\u{1f}u-1", "0.01", false)];
        assert!(book.reserve(&claims, usd("0.004"), now).is_err());
        book.ask_for(&claims[0].key, usd("0.004"));
        let request = book.exchange_request("g", now);
        assert_eq!(holding_of(&request, &claims[0].key).wanted, "0.0045");
        book.apply_response(answer(&[(&claims[0].key, "0.0045")], 0), now)
            .unwrap();
        // The exchange loop may go again before the waiting call takes the lock.
        let request = book.exchange_request("g", now);
        assert_eq!(holding_of(&request, &claims[0].key).held, "0.0045");
        let reservation = book
            .reserve(&claims, usd("0.004"), now)
            .expect("the grant waited");
        book.release(reservation);
        // Once taken, surplus beyond twice a slice goes back as before.
        let request = book.exchange_request("g", now);
        assert_eq!(holding_of(&request, &claims[0].key).held, "0.0005");
    }

    #[test]
    fn a_value_account_that_holds_nothing_is_forgotten_after_a_minute_idle() {
        let now = Instant::now();
        let mut book = book();
        let value = "ns/a\u{1f}user\u{1f}u-1";
        let claims = [claim(value, "0.01", false)];
        assert!(book.reserve(&claims, usd("0.004"), now).is_err());
        let later = now + RECENTLY_USED + Duration::from_secs(1);
        book.apply_response(answer(&[], 0), later).unwrap();
        let request = book.exchange_request("g", later);
        assert_eq!(
            holding_of(&request, value).held,
            "0.00",
            "reported empty once"
        );
        assert!(book.balance(value).is_none(), "then forgotten");
        let request = book.exchange_request("g", later);
        assert!(request.holdings.iter().all(|h| h.budget != value));
    }

    #[test]
    fn a_value_account_is_reported_only_when_a_call_touched_it_or_its_holding_changed() {
        let now = Instant::now();
        let mut book = book();
        let value = "ns/a\u{1f}user\u{1f}u-1";
        let claims = [claim("ns/a", "1000", false), claim(value, "1000", false)];
        book.apply_response(answer(&[], 0), now).unwrap();
        assert_eq!(book.short_of(&claims, usd("1"), now).len(), 2);
        book.ask_for(value, usd("1"));
        book.ask_for("ns/a", usd("1"));
        let reported = |book: &mut SliceBook| {
            let request = book.exchange_request("g", now);
            request.holdings.iter().any(|h| h.budget == value)
        };
        assert!(reported(&mut book), "asked for");
        book.apply_response(answer(&[(value, "51"), ("ns/a", "51")], 0), now)
            .unwrap();
        assert!(reported(&mut book), "its holding changed");
        assert!(!reported(&mut book), "nothing new: left out");
        let request = book.exchange_request("g", now);
        assert!(
            request.holdings.iter().any(|h| h.budget == "ns/a"),
            "budgets always"
        );
        let r = book.reserve(&claims, usd("1"), now).unwrap();
        assert!(reported(&mut book), "a call touched it");
        book.release(r);
        assert!(reported(&mut book), "released: changed again");
        assert!(!reported(&mut book));
    }

    #[test]
    fn a_slice_idle_for_a_minute_is_given_back_whole() {
        let now = Instant::now();
        let mut book = granted("ns/a", "5", now);
        let idle = now + RECENTLY_USED;
        book.apply_response(answer(&[], 0), idle).unwrap();
        let request = book.exchange_request("g", idle);
        assert_eq!(holding_of(&request, "ns/a").held, "0.00");
        assert_eq!(holding_of(&request, "ns/a").wanted, "0.00");
    }

    #[test]
    fn a_leaving_replica_gives_back_every_free_part_but_keeps_what_calls_in_flight_hold() {
        let now = Instant::now();
        let mut book = granted("ns/a", "5", now);
        let reservation = book
            .reserve(&[claim("ns/a", "100", false)], usd("1"), now)
            .unwrap();
        book.ask_for("ns/a", usd("100"));
        book.leave();
        let request = book.exchange_request("g", now);
        assert_eq!(holding_of(&request, "ns/a").held, "1.00");
        assert_eq!(holding_of(&request, "ns/a").wanted, "0.00");
        let since = now;
        book.apply_response(answer(&[], 0), now).unwrap();
        assert!(!book.left(since), "a call still holds a reservation");
        book.settle(reservation, usd("0.5"), record("r"));
        assert!(!book.left(since), "its record is unacknowledged");
        book.exchange_request("g", now);
        book.apply_response(answer(&[], 1), now).unwrap();
        assert!(book.left(since));
    }

    #[test]
    fn records_are_numbered_from_one_and_resent_after_a_failure_or_a_new_session() {
        let now = Instant::now();
        let mut book = book();
        book.apply_response(answer(&[], 0), now).unwrap();
        book.record(record("a"));
        book.record(record("b"));
        let first = book.exchange_request("g", now);
        assert_eq!(
            first.records.iter().map(|r| r.sequence).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(book.exchange_request("g", now).records.is_empty());
        book.exchange_failed();
        assert_eq!(book.exchange_request("g", now).records.len(), 2);
        assert!(
            !book.apply_response(answer(&[], 1), now).unwrap(),
            "b was sent"
        );
        let mut changed = answer(&[], 1);
        changed.session = "s2".into();
        assert!(
            book.apply_response(changed, now).unwrap(),
            "b must go again"
        );
        let again = book.exchange_request("g", now);
        assert_eq!(again.records[0].request_id, "b");
    }

    #[test]
    fn figures_arrive_for_budgets_the_replica_holds_and_size_its_slice() {
        let now = Instant::now();
        let mut book = granted("ns/a", "1", now);
        let mut response = answer(&[], 0);
        response.budgets.push(BudgetFigures {
            budget: "ns/a".into(),
            spent: "3".into(),
            limit: "200".into(),
            period_end: "2026-01-01T00:00:00Z".into(),
            ..Default::default()
        });
        book.apply_response(response, now).unwrap();
        assert_eq!(book.figures("ns/a").unwrap().limit, usd("200"));
        assert_eq!(book.slice_size("ns/a"), usd("10"));
        assert_eq!(book.figures("ns/other"), None);
    }

    #[test]
    fn calls_seen_are_reported_once_as_demand_and_the_rate_share_comes_back_with_the_figures() {
        let now = Instant::now();
        let mut book = granted("ns/a", "1", now);
        let seen = book.arrive(["ns/a", "ns/unclaimed"]);
        assert_eq!(seen.len(), 2);
        book.arrive(["ns/a"]);
        let request = book.exchange_request("gw", now);
        assert_eq!(holding_of(&request, "ns/a").calls, 2);
        let again = book.exchange_request("gw", now);
        assert_eq!(holding_of(&again, "ns/a").calls, 0, "reported once");
        let mut response = answer(&[], 0);
        response.budgets.push(BudgetFigures {
            budget: "ns/a".into(),
            spent: "0".into(),
            limit: "10".into(),
            rate_share: 0.25,
            ..Default::default()
        });
        book.apply_response(response, now).unwrap();
        assert_eq!(book.arrive(["ns/a"])[0].as_ref().unwrap().rate_share, 0.25);
        let mut older = answer(&[], 0);
        older.budgets.push(BudgetFigures {
            budget: "ns/a".into(),
            spent: "0".into(),
            limit: "10".into(),
            ..Default::default()
        });
        book.apply_response(older, now).unwrap();
        let whole = book.figures("ns/a").unwrap().rate_share;
        assert_eq!(whole, 1.0, "an older controller's zero is the whole rate");
    }

    #[test]
    fn an_answer_from_a_leader_older_than_one_heard_from_grants_and_acknowledges_nothing() {
        let now = Instant::now();
        let mut book = granted("ns/a", "1", now);
        book.record(record("r1"));
        let mut newer = answer(&[], 0);
        newer.epoch = 3;
        book.apply_response(newer, now).unwrap();
        let mut stale = answer(&[("ns/a", "5")], 1);
        stale.epoch = 2;
        let refused = book.apply_response(stale, now).unwrap_err();
        assert_eq!(
            refused,
            StaleLeader {
                epoch: 2,
                newest: 3
            }
        );
        assert_eq!(book.pending(), 1, "the stale acknowledgement is ignored");
        assert_eq!(
            book.balance("ns/a").unwrap().free,
            usd("1"),
            "and its grant"
        );
    }

    const KEYS: [&str; 3] = ["ns/a", "ns/b", "ns/c"];
    const LIMITS: [&str; 3] = ["100", "10", "1"];

    #[derive(Clone, Debug)]
    enum Op {
        Reserve {
            mask: u8,
            cents: i64,
            fail_open: bool,
        },
        Settle {
            pick: usize,
            percent: i64,
        },
        Release {
            pick: usize,
        },
        Refuse,
        Exchange {
            grant: [i64; 3],
            ack: bool,
            new_session: bool,
            answered: bool,
        },
        Wait {
            secs: u64,
        },
        Leave,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            16 => (1u8..8, 0i64..400, any::<bool>())
                .prop_map(|(mask, cents, fail_open)| Op::Reserve { mask, cents, fail_open }),
            12 => (any::<usize>(), 0i64..=100).prop_map(|(pick, percent)| Op::Settle { pick, percent }),
            4 => any::<usize>().prop_map(|pick| Op::Release { pick }),
            4 => Just(Op::Refuse),
            12 => (prop::array::uniform3(0i64..800), any::<bool>(), prop::bool::weighted(0.1), prop::bool::weighted(0.8))
                .prop_map(|(grant, ack, new_session, answered)| Op::Exchange { grant, ack, new_session, answered }),
            4 => (0u64..90).prop_map(|secs| Op::Wait { secs }),
            1 => Just(Op::Leave),
        ]
    }

    /// What the test knows independently of the book: per budget, what the controller granted
    /// and what settled calls cost from their slices; the calls still in flight; every record
    /// queued, in order.
    #[derive(Default)]
    struct Model {
        granted: [Usd; 3],
        settled: [Usd; 3],
        in_flight: Vec<(Reservation, Usd)>,
        queued: Vec<String>,
        acknowledged: usize,
        session: u32,
        next_id: u32,
    }

    impl Model {
        fn id(&mut self) -> String {
            self.next_id += 1;
            format!("call-{}", self.next_id)
        }
    }

    fn apply(book: &mut SliceBook, model: &mut Model, op: Op, now: &mut Instant) {
        match op {
            Op::Reserve {
                mask,
                cents,
                fail_open,
            } => {
                let claims: Vec<Claim> = (0..3)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| claim(KEYS[i], LIMITS[i], fail_open))
                    .collect();
                let worst = Usd::from_cents(cents);
                if let Ok(r) = book.reserve(&claims, worst, *now) {
                    model.in_flight.push((r, worst));
                }
            }
            Op::Settle { pick, percent } if !model.in_flight.is_empty() => {
                let (r, worst) = model.in_flight.swap_remove(pick % model.in_flight.len());
                let cost = worst.scaled(Decimal::new(percent, 2));
                for (i, key) in KEYS.iter().enumerate() {
                    if !r.backed(key).is_zero() {
                        model.settled[i] += cost;
                    }
                }
                let id = model.id();
                model.queued.push(id.clone());
                book.settle(r, cost, record(&id));
            }
            Op::Release { pick } if !model.in_flight.is_empty() => {
                let (r, _) = model.in_flight.swap_remove(pick % model.in_flight.len());
                book.release(r);
            }
            Op::Settle { .. } | Op::Release { .. } => {}
            Op::Refuse => {
                let id = model.id();
                model.queued.push(id.clone());
                book.record(record(&id));
            }
            Op::Exchange {
                grant,
                ack,
                new_session,
                answered,
            } => {
                exchange(book, model, grant, ack, new_session, answered, *now);
            }
            Op::Wait { secs } => *now += Duration::from_secs(secs),
            Op::Leave => book.leave(),
        }
    }

    fn exchange(
        book: &mut SliceBook,
        model: &mut Model,
        grant: [i64; 3],
        ack: bool,
        new_session: bool,
        answered: bool,
        now: Instant,
    ) {
        let request = book.exchange_request("g", now);
        for h in &request.holdings {
            assert!(Usd::parse(&h.held).unwrap() >= Usd::ZERO);
        }
        if !answered {
            book.exchange_failed();
            return;
        }
        let mut grants = Vec::new();
        for (i, key) in KEYS.iter().enumerate() {
            // The controller grants only on budgets the replica holds (it reported them).
            if book.balance(key).is_some() && grant[i] > 0 {
                model.granted[i] += Usd::from_cents(grant[i]);
                grants.push((*key, Usd::from_cents(grant[i]).to_api_string()));
            }
        }
        let through = if ack {
            request.records.last().map_or(0, |r| r.sequence)
        } else {
            0
        };
        let grants: Vec<(&str, &str)> = grants.iter().map(|(k, a)| (*k, a.as_str())).collect();
        let mut response = answer(&grants, through);
        if new_session {
            model.session += 1;
        }
        response.session = format!("s{}", model.session);
        book.apply_response(response, now).unwrap();
        if through > 0 {
            model.acknowledged = through as usize;
        }
    }

    /// Runs `ops`, checking `check` after each, then settles or releases every call still in
    /// flight (checking after each too). Returns the book and the model at the end.
    fn run(ops: Vec<Op>, check: impl Fn(&SliceBook, &Model)) -> (SliceBook, Model) {
        let mut book = book();
        let mut model = Model::default();
        let mut now = Instant::now();
        for op in ops {
            apply(&mut book, &mut model, op, &mut now);
            check(&book, &model);
        }
        while let Some((r, worst)) = model.in_flight.pop() {
            apply_settle_or_release(&mut book, &mut model, r, worst);
            check(&book, &model);
        }
        (book, model)
    }

    fn within_grants(book: &SliceBook, model: &Model) {
        for (i, key) in KEYS.iter().enumerate() {
            let Some(balance) = book.balance(key) else {
                continue;
            };
            let in_flight: Usd = model.in_flight.iter().map(|(r, _)| r.backed(key)).sum();
            let net = model.granted[i] - model.settled[i];
            assert_eq!(
                balance.reserved, in_flight,
                "{key}: reserved is what calls hold"
            );
            assert!(
                in_flight <= net,
                "{key}: reserved {in_flight} beyond granted-settled {net}"
            );
            assert!(
                balance.free + balance.reserved <= net,
                "{key}: holds more than granted less settled"
            );
        }
    }

    fn never_negative(book: &SliceBook, _: &Model) {
        for key in KEYS {
            if let Some(balance) = book.balance(key) {
                assert!(balance.free >= Usd::ZERO, "{key}: free {}", balance.free);
                assert!(
                    balance.reserved >= Usd::ZERO,
                    "{key}: reserved {}",
                    balance.reserved
                );
                assert!(balance.free + balance.reserved >= Usd::ZERO);
            }
        }
    }

    fn queued_once_in_sequence(book: &SliceBook, model: &Model) {
        let pending: Vec<&UsageRecord> = book.pending_records().collect();
        let expected = &model.queued[model.acknowledged..];
        assert_eq!(
            pending.len(),
            expected.len(),
            "every record queued exactly once"
        );
        for (n, (record, id)) in pending.iter().zip(expected).enumerate() {
            assert_eq!(&record.request_id, id);
            assert_eq!(
                record.sequence,
                (model.acknowledged + n + 1) as u64,
                "consecutive"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_sequence_of_operations_lets_the_replica_reserve_beyond_what_it_was_granted(
            ops in prop::collection::vec(op(), 1..120)
        ) {
            run(ops, within_grants);
        }

        #[test]
        fn no_sequence_of_operations_makes_free_plus_reserved_negative(
            ops in prop::collection::vec(op(), 1..120)
        ) {
            run(ops, never_negative);
        }

        #[test]
        fn nothing_reserved_is_ever_forgotten_and_every_record_is_queued_once_in_sequence(
            ops in prop::collection::vec(op(), 1..120)
        ) {
            let (book, model) = run(ops, queued_once_in_sequence);
            for key in KEYS {
                if let Some(balance) = book.balance(key) {
                    prop_assert_eq!(balance.reserved, Usd::ZERO, "{} still reserved", key);
                }
            }
            prop_assert!(!book.any_reserved());
            prop_assert_eq!(
                book.pending_records().map(|r| r.sequence).last().unwrap_or(model.acknowledged as u64),
                model.queued.len() as u64,
                "the last record queued has the last sequence"
            );
        }
    }

    fn apply_settle_or_release(
        book: &mut SliceBook,
        model: &mut Model,
        r: Reservation,
        worst: Usd,
    ) {
        if model.queued.len().is_multiple_of(2) {
            model.in_flight.push((r, worst));
            let last = model.in_flight.len() - 1;
            let mut now = Instant::now();
            apply(
                book,
                model,
                Op::Settle {
                    pick: last,
                    percent: 50,
                },
                &mut now,
            );
        } else {
            book.release(r);
        }
    }
}
