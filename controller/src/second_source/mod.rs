//! Bedrock's own records as the second source of truth: the leader reads the account's model
//! invocation logs (CloudWatch Logs) a window at a time, matches each record with the ledger
//! by request ID, and charges the calls a gateway made and never reported.
//!
//! Why this is exactly once. A gateway reports each call, and the ledger acknowledges it only
//! once every budget's status holds it; an unacknowledged record is re-sent. A gateway killed
//! after Bedrock answered loses what it had not reported, but Bedrock logged the call, with
//! the gateway's `aigov.budgets` stamp. The reader stays [`Options::lag`] behind the present,
//! longer than a gateway keeps re-sending, so a record still missing then is one no gateway
//! will report. It is missing when no usage record for it is in the EMF log group (the
//! ledger's durable journal, written once the status holds the charge) nor in this leader's
//! memory ([`aigov_ledger::ledger::Ledger::counted`]). It is charged as
//! [`aigov_ledger::ledger::RECOVERY_GATEWAY`] with a sequence taken from the record itself
//! ([`plan::sequenced`]), so a new leader reading the same window again numbers it alike and
//! the watermark persisted in status counts it once. The window's end is stored (a Lease's
//! annotation) only after the ledger acknowledged every charge, so a restart or failover
//! rereads, never skips.
//!
//! The overshoot bound: while the reader runs, a silent gateway's holdings are not returned
//! before the window has passed the gateway's last contact
//! ([`crate::ledger_service::Recovery`]): its unreported calls were reserved from them.

pub mod bypass;
pub mod cursor;
pub mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aigov_ledger::key;
use aigov_ledger::record::UsageEvent;
use aws_sdk_cloudwatchlogs::Client as Logs;
use jiff::{SignedDuration, Timestamp};

use crate::emf::EmfWriter;
use crate::ledger_service::LedgerShared;
use aigov_ledger::invocation_log::InvocationLog;
use plan::{Finding, Ledgered};

/// How the reader runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The log group Bedrock's model invocation logging writes to.
    pub invocation_group: String,
    /// The EMF log group the ledger writes its usage records to.
    pub emf_group: String,
    /// How often a window is read.
    pub interval: Duration,
    /// How far behind the present the reader stays: longer than a gateway re-sends an
    /// unacknowledged record and than Bedrock takes to deliver a record.
    pub lag: Duration,
    /// Where a reader with no stored position starts, back from `now - lag`.
    pub lookback: Duration,
    /// The one namespace this controller keeps, if it keeps one.
    pub scope: Option<String>,
}

/// Usage records are looked for this far either side of the window: the gateway times a call
/// when it settles, Bedrock when it logs it.
const MATCH_SLACK: SignedDuration = SignedDuration::from_mins(10);

/// How long a window's charges may take to be persisted before it is read again.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// The reader: what it reads with and charges into.
pub struct Reader {
    /// The options.
    pub options: Options,
    /// CloudWatch Logs.
    pub logs: Logs,
    /// Where the position is kept.
    pub cursor: cursor::Cursor,
    /// The ledger.
    pub shared: Arc<LedgerShared>,
    /// The EMF writer: no window is read past a backlog of unwritten usage records.
    pub emf: EmfWriter,
    /// The cluster: the annotations mapping principals to namespaces, and budgets' specs.
    pub client: kube::Client,
}

/// What one window found, by finding.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Matched, token counts equal.
    pub matched: u64,
    /// Matched, token counts differing.
    pub drift: u64,
    /// Recovered and charged.
    pub recovered: u64,
    /// Without a gateway stamp.
    pub unstamped: u64,
    /// For budgets another controller keeps.
    pub out_of_scope: u64,
    /// Of the unstamped, those signed by a principal mapped to a namespace.
    pub bypass: u64,
}

impl Reader {
    /// Reads a window every [`Options::interval`] while this replica leads.
    pub async fn run(self) {
        tracing::info!(group = self.options.invocation_group, lag = ?self.options.lag,
            "reconciling with Bedrock's model invocation logs");
        // From now on no silent gateway's holdings return before the logs are read past it.
        self.shared.recovered_through(Timestamp::MIN);
        loop {
            tokio::time::sleep(self.options.interval).await;
            if !self.shared.leads() || self.emf.overdue() {
                continue;
            }
            if let Err(e) = self.round(Timestamp::now()).await {
                tracing::warn!(error = %e, "invocation logs: window not reconciled; read again next round");
            }
        }
    }

    /// Reconciles the window from the stored position to `now - lag`.
    async fn round(&self, now: Timestamp) -> Result<(), String> {
        let lag = SignedDuration::try_from(self.options.lag).map_err(|e| e.to_string())?;
        let to = now - lag;
        let from = match self.cursor.load().await? {
            Some(through) => through,
            None => {
                to - SignedDuration::try_from(self.options.lookback).map_err(|e| e.to_string())?
            }
        };
        if to <= from {
            return Ok(());
        }
        let logs = self.read_invocations(from, to).await?;
        let tally = self.reconcile(plan::sequenced(logs), from, to).await?;
        self.cursor.save(to).await?;
        self.shared.recovered_through(to);
        let metrics = &self.shared.metrics;
        for (finding, n) in [
            ("matched", tally.matched),
            ("drift", tally.drift),
            ("recovered", tally.recovered),
            ("unstamped", tally.unstamped),
            ("out_of_scope", tally.out_of_scope),
            ("bypass", tally.bypass),
        ] {
            metrics.invocation_logs(finding, n);
        }
        metrics.invocation_logs_through(to.as_second());
        if tally.recovered > 0 || tally.drift > 0 {
            tracing::info!(%from, %to, ?tally, "invocation logs reconciled");
        }
        Ok(())
    }

    /// Classifies `logs` and charges the recovered ones, waiting until they are persisted.
    async fn reconcile(
        &self,
        logs: Vec<(u64, InvocationLog)>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Tally, String> {
        let mut ledgered = Ledgered::default();
        let mut findings = self.classify(&logs, &ledgered);
        // The journal is read only when memory cannot vouch for a call (after a failover, or
        // a call truly lost): a steady window costs no CloudWatch read beyond its own.
        if findings.iter().any(|f| matches!(f, Finding::Recovered(_))) {
            ledgered.written = self
                .read_written(from - MATCH_SLACK, to + MATCH_SLACK)
                .await?;
            findings = self.classify(&logs, &ledgered);
        }
        let mut tally = Tally::default();
        let mut charges = Vec::new();
        let mut unstamped = Vec::new();
        for ((sequence, log), finding) in logs.iter().zip(findings) {
            match finding {
                Finding::Matched { drift: false } => tally.matched += 1,
                Finding::Matched { drift: true } => tally.drift += 1,
                Finding::Recovered(record) => charges.push(*record),
                Finding::Unstamped => unstamped.push((*sequence, log)),
                Finding::OutOfScope => tally.out_of_scope += 1,
            }
        }
        tally.recovered = charges.len() as u64;
        tally.unstamped = unstamped.len() as u64;
        let (bypassed, charged) = self.bypasses(&unstamped).await?;
        tally.bypass = bypassed;
        charges.extend(charged);
        charges.sort_by_key(|r| r.sequence);
        if let Some(last) = charges.last().map(|r| r.sequence) {
            self.charge(charges, last).await?;
        }
        Ok(tally)
    }

    fn classify(&self, logs: &[(u64, InvocationLog)], ledgered: &Ledgered) -> Vec<Finding> {
        let ledger = self.shared.ledger();
        let counted = |budget: &str, id: &str| ledger.counted(budget, id);
        let scope = self.options.scope.as_deref();
        logs.iter()
            .map(|(sequence, log)| plan::classify(*sequence, log, ledgered, counted, scope))
            .collect()
    }

    /// Charges the recovered `records` and waits until the ledger acknowledges `last`.
    async fn charge(
        &self,
        records: Vec<aigov_ledger::proto::UsageRecord>,
        last: u64,
    ) -> Result<(), String> {
        let started = tokio::time::Instant::now();
        let mut through = self
            .shared
            .recover(records)
            .map_err(|s| s.message().to_owned())?;
        while through < last {
            if started.elapsed() > ACK_WAIT {
                return Err(format!("recovered calls not persisted within {ACK_WAIT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            through = self
                .shared
                .recover(Vec::new())
                .map_err(|s| s.message().to_owned())?;
        }
        Ok(())
    }

    /// The invocation-log records of `[from, to)`.
    async fn read_invocations(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<InvocationLog>, String> {
        let mut found = Vec::new();
        self.filter(&self.options.invocation_group, from, to, |at, message| {
            found.extend(InvocationLog::from_event(at, message));
        })
        .await?;
        Ok(found)
    }

    /// The ledger's usage records of `[from, to)`, by request ID and budget.
    async fn read_written(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<HashMap<(String, key::BudgetKey), [u64; 4]>, String> {
        let mut found = HashMap::new();
        self.filter(&self.options.emf_group, from, to, |_, message| {
            if let Some(e) = UsageEvent::from_emf(message) {
                found.insert(
                    (e.request_id, key::from_dimensions(&e.namespace, &e.budget)),
                    e.tokens,
                );
            }
        })
        .await?;
        Ok(found)
    }

    /// Calls `each(timestamp, message)` for every event of `group` in `[from, to)`.
    async fn filter(
        &self,
        group: &str,
        from: Timestamp,
        to: Timestamp,
        mut each: impl FnMut(i64, &str),
    ) -> Result<(), String> {
        let mut pages = self
            .logs
            .filter_log_events()
            .log_group_name(group)
            .start_time(from.as_millisecond())
            .end_time(to.as_millisecond() - 1)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                // No group yet: nothing was logged (logging not turned on, or nothing written).
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    return Ok(());
                }
                Err(e) => {
                    let error = aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e);
                    return Err(format!("{group}: {error}"));
                }
            };
            for event in page.events() {
                if let (Some(at), Some(message)) = (event.timestamp(), event.message()) {
                    each(at, message);
                }
            }
        }
        Ok(())
    }
}
