//! The controller's Prometheus metrics (budgets' spend, limits and forecasts, the ledger and
//! the reconciler), registered into the process's registry (served by [`aigov_runtime::probes`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    namespace: String,
    budget: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    namespace: String,
    budget: String,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    namespace: String,
    budget: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabels {
    finding: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    namespace: String,
    budget: String,
    kind: String,
}

/// Dollars as Prometheus wants them (a float); exact figures stay in AIBudget status.
fn dollars(amount: aigov_api::Usd) -> f64 {
    amount.as_decimal().try_into().unwrap_or_default()
}

/// The label values a budget's series were created with in the families whose labels are
/// open-ended (models, refusal reasons), so that [`Metrics::forget`] can name every one:
/// `prometheus_client`'s [`Family`] removes a series only by its full label set.
#[derive(Debug, Default)]
struct BudgetSeries {
    models: BTreeSet<String>,
    reasons: BTreeSet<&'static str>,
}

/// The token kinds `budget_tokens` has a series for.
const TOKEN_KINDS: [&str; 4] = ["input", "output", "cache_read", "cache_write"];

/// What the controller exports.
#[derive(Debug)]
pub struct Metrics {
    spent: Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    limit: Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    forecast: Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    spent_total: Family<ModelLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    refused_total: Family<RefusalLabels, Counter>,
    tokens: Family<TokenLabels, Gauge>,
    throttled: Family<BudgetLabels, Gauge>,
    exhausted: Family<BudgetLabels, Gauge>,
    reconcile: Histogram,
    exchange: Histogram,
    records: Counter,
    status_writes: Counter,
    usage_unwritten: Gauge,
    alert_deliveries: Family<DeliveryLabels, Counter>,
    alerts_dropped: Family<DropLabels, Counter>,
    alerts_pending: Family<BudgetLabels, Gauge>,
    invocation_logs: Family<FindingLabels, Counter>,
    invocation_logs_through: Gauge,
    series: Mutex<HashMap<BudgetLabels, BudgetSeries>>,
}

impl Default for Metrics {
    /// Metrics registered nowhere (tests, benchmarks).
    fn default() -> Self {
        Metrics::register(&mut Registry::default())
    }
}

impl Metrics {
    /// `records` invocation-log records were found to be `finding`.
    pub fn invocation_logs(&self, finding: &'static str, records: u64) {
        self.invocation_logs
            .get_or_create(&FindingLabels { finding })
            .inc_by(records);
    }

    /// Every invocation-log record before `unix_seconds` is reconciled.
    pub fn invocation_logs_through(&self, unix_seconds: i64) {
        self.invocation_logs_through.set(unix_seconds);
    }

    /// The controller's metrics, registered in `registry` (which carries the `aigov` prefix).
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            spent: Family::default(),
            limit: Family::default(),
            forecast: Family::default(),
            spent_total: Family::default(),
            refused_total: Family::default(),
            tokens: Family::default(),
            throttled: Family::default(),
            exhausted: Family::default(),
            reconcile: Histogram::new(exponential_buckets(0.000_1, 2.0, 16)),
            exchange: Histogram::new(exponential_buckets(0.000_01, 2.0, 16)),
            records: Counter::default(),
            status_writes: Counter::default(),
            usage_unwritten: Gauge::default(),
            alert_deliveries: Family::default(),
            alerts_dropped: Family::default(),
            alerts_pending: Family::default(),
            invocation_logs: Family::default(),
            invocation_logs_through: Gauge::default(),
            series: Mutex::default(),
        };
        registry.register(
            "budget_spent_usd",
            "Settled spend this period",
            m.spent.clone(),
        );
        registry.register(
            "budget_limit_usd",
            "Effective limit this period",
            m.limit.clone(),
        );
        registry.register(
            "budget_forecast_usd",
            "Projected spend at the period's end at the current rate",
            m.forecast.clone(),
        );
        registry.register(
            "spent_usd",
            "Settled spend by budget and model, across periods (rate() of it is the burn rate)",
            m.spent_total.clone(),
        );
        registry.register(
            "refused_requests",
            "Calls refused by a budget, by reason (throttled, exhausted, model_forbidden)",
            m.refused_total.clone(),
        );
        registry.register(
            "budget_tokens",
            "Tokens this period by kind",
            m.tokens.clone(),
        );
        registry.register(
            "budget_throttled_requests",
            "Refused calls this period",
            m.throttled.clone(),
        );
        registry.register(
            "budget_exhausted",
            "1 while the budget is exhausted (BudgetExhausted True: what is left cannot pay for \
             the calls it refuses), else 0",
            m.exhausted.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "AIBudget reconcile latency",
            m.reconcile.clone(),
        );
        registry.register(
            "ledger_exchange_duration_seconds",
            "Ledger Exchange gRPC latency",
            m.exchange.clone(),
        );
        registry.register(
            "ledger_records",
            "Usage records received by the ledger",
            m.records.clone(),
        );
        registry.register(
            "status_writes",
            "AIBudget status patches written",
            m.status_writes.clone(),
        );
        registry.register(
            "usage_records_unwritten",
            "Usage records (EMF) counted but not yet written to CloudWatch Logs",
            m.usage_unwritten.clone(),
        );
        registry.register(
            "alert_deliveries",
            "Alert delivery attempts (one message, possibly several merged alerts) by channel kind and result (delivered, failed)",
            m.alert_deliveries.clone(),
        );
        registry.register(
            "alerts_dropped",
            "Alerts dropped undelivered, by reason (horizon: not delivered within --alert-retry-horizon; overflow: more than 32 pending on a budget)",
            m.alerts_dropped.clone(),
        );
        registry.register(
            "invocation_log_records",
            "Bedrock model invocation log records reconciled with the ledger, by finding (matched, drift, recovered, unstamped, out_of_scope)",
            m.invocation_logs.clone(),
        );
        registry.register(
            "invocation_logs_reconciled_through_seconds",
            "Unix time before which every invocation log record is reconciled",
            m.invocation_logs_through.clone(),
        );
        registry.register(
            "alerts_pending",
            "Alerts in a budget's outbox not yet delivered",
            m.alerts_pending.clone(),
        );
        m
    }
}

impl Metrics {
    /// Publishes one budget's figures for the current period.
    pub fn budget(
        &self,
        namespace: &str,
        budget: &str,
        account: &aigov_ledger::ledger::Account,
        forecast: Option<aigov_api::Usd>,
    ) {
        let labels = BudgetLabels {
            namespace: namespace.to_owned(),
            budget: budget.to_owned(),
        };
        self.spent
            .get_or_create(&labels)
            .set(dollars(account.spent));
        self.limit
            .get_or_create(&labels)
            .set(dollars(account.limit));
        match forecast {
            Some(forecast) => {
                self.forecast.get_or_create(&labels).set(dollars(forecast));
            }
            None => {
                self.forecast.remove(&labels);
            }
        }
        self.throttled
            .get_or_create(&labels)
            .set(account.throttled as i64);
        self.exhausted
            .get_or_create(&labels)
            .set(i64::from(account.exhausted()));
        let tokens = [
            account.tokens.input,
            account.tokens.output,
            account.tokens.cache_read,
            account.tokens.cache_write,
        ];
        for (kind, count) in TOKEN_KINDS.into_iter().zip(tokens) {
            self.tokens
                .get_or_create(&TokenLabels {
                    namespace: namespace.to_owned(),
                    budget: budget.to_owned(),
                    kind: kind.to_owned(),
                })
                .set(count as i64);
        }
    }

    /// Counts settled spend charged to a budget for a model.
    pub fn spent(&self, budget_key: &str, model: &str, cost: aigov_api::Usd) {
        let (namespace, budget) = budget_key.split_once('/').unwrap_or(("", budget_key));
        self.remember(namespace, budget, |s| {
            if !s.models.contains(model) {
                s.models.insert(model.to_owned());
            }
        });
        self.spent_total
            .get_or_create(&ModelLabels {
                namespace: namespace.to_owned(),
                budget: budget.to_owned(),
                model: model.to_owned(),
            })
            .inc_by(dollars(cost));
    }

    /// Counts one call a budget refused.
    pub fn refused(&self, budget_key: &str, reason: &'static str) {
        let (namespace, budget) = budget_key.split_once('/').unwrap_or(("", budget_key));
        self.remember(namespace, budget, |s| {
            s.reasons.insert(reason);
        });
        self.refused_total
            .get_or_create(&RefusalLabels {
                namespace: namespace.to_owned(),
                budget: budget.to_owned(),
                reason,
            })
            .inc();
    }

    /// Removes every series of a deleted budget from every family, so that dashboards stop
    /// showing it and the exposition does not grow with every budget ever created.
    pub fn forget(&self, namespace: &str, budget: &str) {
        let labels = BudgetLabels {
            namespace: namespace.to_owned(),
            budget: budget.to_owned(),
        };
        for family in [&self.spent, &self.limit, &self.forecast] {
            family.remove(&labels);
        }
        self.throttled.remove(&labels);
        self.exhausted.remove(&labels);
        self.alerts_pending.remove(&labels);
        for kind in TOKEN_KINDS {
            self.tokens.remove(&TokenLabels {
                namespace: namespace.to_owned(),
                budget: budget.to_owned(),
                kind: kind.to_owned(),
            });
        }
        let series = self
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&labels)
            .unwrap_or_default();
        for model in series.models {
            self.spent_total.remove(&ModelLabels {
                namespace: namespace.to_owned(),
                budget: budget.to_owned(),
                model,
            });
        }
        for reason in series.reasons {
            self.refused_total.remove(&RefusalLabels {
                namespace: namespace.to_owned(),
                budget: budget.to_owned(),
                reason,
            });
        }
    }

    /// Notes a label value of one of a budget's open-ended series, for [`Metrics::forget`].
    fn remember(&self, namespace: &str, budget: &str, note: impl FnOnce(&mut BudgetSeries)) {
        let labels = BudgetLabels {
            namespace: namespace.to_owned(),
            budget: budget.to_owned(),
        };
        note(
            self.series
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(labels)
                .or_default(),
        );
    }

    /// Observes one reconcile.
    pub fn reconciled(&self, elapsed: Duration) {
        self.reconcile.observe(elapsed.as_secs_f64());
    }

    /// Counts one status write.
    pub fn status_written(&self) {
        self.status_writes.inc();
    }

    /// Usage records counted and not yet written.
    pub fn usage_unwritten(&self, count: usize) {
        self.usage_unwritten
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Counts one alert delivery attempt to a channel of `kind` (`sns`, `webhook`).
    pub fn alert_delivery(&self, kind: &'static str, delivered: bool) {
        let result = if delivered { "delivered" } else { "failed" };
        self.alert_deliveries
            .get_or_create(&DeliveryLabels {
                channel: kind,
                result,
            })
            .inc();
    }

    /// Counts alerts dropped undelivered.
    pub fn alerts_dropped(&self, reason: &'static str, count: u64) {
        self.alerts_dropped
            .get_or_create(&DropLabels { reason })
            .inc_by(count);
    }

    /// How many alerts a budget's outbox holds undelivered.
    pub fn alerts_pending(&self, namespace: &str, budget: &str, count: usize) {
        let labels = BudgetLabels {
            namespace: namespace.to_owned(),
            budget: budget.to_owned(),
        };
        self.alerts_pending.get_or_create(&labels).set(count as i64);
    }

    /// Observes one ledger exchange and the records it carried.
    pub fn exchanged(&self, elapsed: Duration, records: u64) {
        self.exchange.observe(elapsed.as_secs_f64());
        self.records.inc_by(records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigov_api::Usd;
    use aigov_api::period::{Period, time_zone};
    use aigov_ledger::ledger::Account;

    fn account() -> Account {
        let window = Period::Monthly
            .window_at(
                "2026-11-10T00:00:00Z".parse().unwrap(),
                &time_zone("UTC").unwrap(),
            )
            .unwrap();
        let mut a = Account::restore(window, Usd::parse("100").unwrap(), None);
        a.spent = Usd::parse("12.5").unwrap();
        a.tokens.input = 7;
        a
    }

    fn exposition(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn a_forgotten_budget_has_no_series_left_in_the_exposition() {
        let mut registry = Registry::with_prefix("aigov");
        let metrics = Metrics::register(&mut registry);
        for budget in ["gone", "kept"] {
            let usd = Usd::parse("1.25").unwrap();
            metrics.budget("team", budget, &account(), Some(usd));
            metrics.spent(&format!("team/{budget}"), "model-a", usd);
            metrics.spent(&format!("team/{budget}"), "model-b", usd);
            metrics.refused(&format!("team/{budget}"), "throttled");
            metrics.refused(&format!("team/{budget}"), "exhausted");
        }
        assert!(exposition(&registry).contains("budget=\"gone\""));

        metrics.forget("team", "gone");
        let text = exposition(&registry);
        assert!(
            !text.contains("budget=\"gone\""),
            "series of the deleted budget remain:\n{text}"
        );
        for family in [
            "aigov_budget_spent_usd{",
            "aigov_budget_limit_usd{",
            "aigov_budget_forecast_usd{",
            "aigov_spent_usd_total{",
            "aigov_refused_requests_total{",
            "aigov_budget_tokens{",
            "aigov_budget_throttled_requests{",
            "aigov_budget_exhausted{",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(family) && l.contains("budget=\"kept\"")),
                "{family} lost the budget that still exists:\n{text}"
            );
        }
    }
}
