//! The gateway's Prometheus metrics, registered into the process's registry (served by
//! [`aigov_runtime::probes`]).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Ledger exchanges by result (`ok`, `failed`, `stale_leader`), counted by the exchange loop
/// ([`crate::slices::Slices::run`]) and exported with [`GatewayMetrics`].
#[derive(Clone, Debug, Default)]
pub struct ExchangeCounts(Family<ResultLabels, Counter>);

impl ExchangeCounts {
    /// Counts one exchange.
    pub fn count(&self, result: &'static str) {
        self.0.get_or_create(&ResultLabels { result }).inc();
    }
}

/// What the gateway exports.
#[derive(Debug)]
pub struct GatewayMetrics {
    requests: Family<OutcomeLabels, Counter>,
    overhead: Histogram,
    stalled_streams: Counter,
    metadata_unstamped: Counter,
}

impl GatewayMetrics {
    /// Registers the ledger exchange counts of the replica's slices in `registry`.
    pub fn register_exchanges(registry: &mut Registry, exchanges: &ExchangeCounts) {
        registry.register(
            "gateway_ledger_exchanges",
            "Exchanges with the controller's ledger, by result (ok, failed: no answer or an \
             error, such as no replica leading; stale_leader: an answer from a replaced leader)",
            exchanges.0.clone(),
        );
    }

    /// The gateway's metrics, registered in `registry` (which carries the `aigov` prefix).
    pub fn register(registry: &mut Registry) -> GatewayMetrics {
        let metrics = GatewayMetrics {
            requests: Family::default(),
            overhead: Histogram::new(exponential_buckets(0.000_01, 2.0, 16)),
            stalled_streams: Counter::default(),
            metadata_unstamped: Counter::default(),
        };
        registry.register(
            "gateway_requests",
            "Calls the gateway answered, by outcome",
            metrics.requests.clone(),
        );
        registry.register(
            "gateway_overhead_seconds",
            "Time a call spends in the gateway before it is forwarded",
            metrics.overhead.clone(),
        );
        registry.register(
            "gateway_stalled_streams",
            "Streams cut because their client left them unread past --response-write-timeout \
             (each charged as a hang-up)",
            metrics.stalled_streams.clone(),
        );
        registry.register(
            "gateway_metadata_unstamped",
            "Calls forwarded without the gateway's aigov.* request-metadata pairs because the \
             caller's own pairs left no room within Bedrock's 16",
            metrics.metadata_unstamped.clone(),
        );
        metrics
    }

    /// Counts one call whose metadata had no room for the gateway's pairs.
    pub fn metadata_unstamped(&self) {
        self.metadata_unstamped.inc();
    }

    /// Counts one stream cut for a client that stopped reading.
    pub fn stalled_stream(&self) {
        self.stalled_streams.inc();
    }

    /// Counts one gateway answer.
    pub fn request(&self, outcome: &'static str) {
        self.requests
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Observes the gateway's own time for one call.
    pub fn overhead(&self, elapsed: Duration) {
        self.overhead.observe(elapsed.as_secs_f64());
    }
}

impl Default for GatewayMetrics {
    /// Metrics registered nowhere (tests, benchmarks).
    fn default() -> Self {
        GatewayMetrics::register(&mut Registry::default())
    }
}
