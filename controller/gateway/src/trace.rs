//! Follow one call: one log line per call, at `debug` level on the target `aigov::call`, off
//! unless an operator asks for it:
//!
//! ```text
//! RUST_LOG=info,aigov::call=debug
//! ```
//!
//! The line is written when the call is over for the gateway: at once for a refusal or a
//! failure, when the call settles otherwise (for a stream, when the stream ends or the client
//! goes away), so it can carry the settled cost. It names the request ID (Bedrock's when
//! Bedrock answered, else the gateway's own), the pod (`namespace/name`), the budgets that
//! select it, the model asked for and the one called after a downgrade, the operation, the
//! outcome (the label of `aigov_gateway_requests_total`), the status, the cost, and the time
//! the gateway added before forwarding (for a refusal, the time to refuse).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_api::pricing::ServiceTier;
use aigov_api::request_metadata::RequestMetadata;
use aigov_ledger::policy::{BudgetPolicy, Workload};
use http::StatusCode;

use crate::admission::Admitted;
use crate::route::{Operation, Route};

/// The `tracing` target of the per-call line.
pub const TARGET: &str = "aigov::call";

/// What the gateway learnt about a call so far, step by step; refusals are recorded from it
/// too (pod, model, operation).
#[derive(Clone, Debug)]
pub struct CallTrace {
    /// The gateway's own ID for the call (its refusals carry it).
    pub request_id: String,
    /// The TCP peer.
    pub peer: IpAddr,
    /// When the gateway received the request head.
    pub started: Instant,
    /// The operation, once routed.
    pub operation: Option<Operation>,
    /// The model asked for, once routed.
    pub model: Option<String>,
    /// The model called instead, after a downgrade.
    pub downgraded_to: Option<String>,
    /// The calling pod, once identified.
    pub workload: Option<Arc<Workload>>,
    /// The budgets that select the pod (shared with the cache: no copy per call).
    pub budgets: Vec<Arc<BudgetPolicy>>,
    /// The gateway's time before forwarding, once forwarded.
    pub added: Option<Duration>,
    /// The caller's request metadata (its own pairs), once read.
    pub metadata: RequestMetadata,
    /// The service tier the call asks for, once read.
    pub service_tier: ServiceTier,
}

impl CallTrace {
    /// A call just received from `peer`.
    pub fn new(request_id: String, peer: IpAddr) -> CallTrace {
        CallTrace {
            request_id,
            peer,
            started: Instant::now(),
            operation: None,
            model: None,
            downgraded_to: None,
            workload: None,
            budgets: Vec::new(),
            added: None,
            metadata: RequestMetadata::new(),
            service_tier: ServiceTier::Standard,
        }
    }

    /// The call is routed.
    pub fn routed(&mut self, route: &Route) {
        self.operation = Some(route.operation);
        self.model = Some(route.model.clone());
    }

    /// The call is admitted (perhaps on a cheaper model).
    pub fn admitted(&mut self, admitted: &Admitted) {
        if admitted.downgraded_from.is_some() {
            self.downgraded_to = Some(admitted.model.clone());
        }
    }

    /// The call goes to Bedrock now: returns (and keeps) the time the gateway added.
    pub fn forwarding(&mut self) -> Duration {
        let added = self.started.elapsed();
        self.added = Some(added);
        added
    }

    /// Whether the per-call line is on (`RUST_LOG=...,aigov::call=debug`). When it is off,
    /// as by default, the data path neither keeps nor formats anything for it.
    pub fn enabled() -> bool {
        tracing::enabled!(target: TARGET, tracing::Level::DEBUG)
    }

    /// Writes the call's line (see the module documentation); nothing when it is off.
    pub fn log(&self, request_id: &str, outcome: &str, status: StatusCode, cost: Option<Usd>) {
        if !CallTrace::enabled() {
            return;
        }
        let budgets: Vec<&str> = self.budgets.iter().map(|p| p.key.as_str()).collect();
        let pod = self.workload.as_ref().map_or_else(
            || format!("unknown ({})", self.peer),
            |w| format!("{}/{}", w.namespace, w.name),
        );
        let added = self.added.unwrap_or_else(|| self.started.elapsed());
        tracing::debug!(
            target: TARGET,
            request_id,
            pod = %pod,
            budgets = %budgets.join(","),
            model = self.model.as_deref().unwrap_or("-"),
            downgraded_to = self.downgraded_to.as_deref().unwrap_or("-"),
            operation = self.operation.map_or("-", Operation::name),
            outcome,
            status = status.as_u16(),
            cost = %cost.map_or_else(|| "-".to_owned(), Usd::to_api_string),
            added = ?added,
            "call"
        );
    }
}
