//! The four promises every fault test checks at its end (issue 21), against the simulator's
//! served calls:
//!
//! 1. **spend exact**: each budget's `status.spent` is the catalog cost of the calls it charged;
//! 2. **usage records exactly once**: CloudWatch Logs holds one EMF record per charged call and
//!    budget, none twice, none for a call not charged;
//! 3. **alerts exactly once**: every threshold crossed this period has its alert delivered
//!    (nothing left pending), and no alert reached the channel twice;
//! 4. **nothing held**: no call's worst case is still reserved on any gateway replica, and no
//!    silent replica's holdings are waiting to be returned.
//!
//! A test makes a [`Witness`] for its namespace, starts its controllers with
//! [`Witness::controller_flags`], gives its budgets [`Witness::alerting`], and ends with
//! [`Witness::assert_kept`].

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aigov_api::Usd;

use crate::bedrock::served_cost;
use crate::budgets::{status, wait_status};
use crate::webhook::{Posted, Receiver};
use crate::{aws_config, kubectl_ok, log_group};

/// The name of the Secret holding the webhook URL the witnessed budgets alert.
const SECRET: &str = "witness-alerts";

/// Watches one test's usage records and alerts.
pub struct Witness {
    namespace: String,
    /// The log group the controllers write usage records to.
    pub group: String,
    port: u16,
    hook: Option<Receiver>,
    /// The one case the alert guarantee sends an alert twice (`docs/architecture.md`,
    /// Alerts): a leader whose channel accepted it but that could not write the status
    /// recording so (cut off from the API server); the next leader sends it again under the
    /// same ID, which the receiver can drop.
    resend_allowed: bool,
}

/// What the promises were checked over, for the test's summary line.
#[derive(Clone, Debug, Default)]
pub struct Kept {
    /// Charged calls, all budgets.
    pub calls: usize,
    /// Usage records read.
    pub records: usize,
    /// Alerts delivered.
    pub alerts: usize,
}

impl Witness {
    /// A witness for `ns`: a fresh log group, and a webhook receiver listening at once.
    pub async fn new(ns: &str) -> Witness {
        let mut witness = Witness::refusing(ns, crate::aigov::free_port()).await;
        witness.listen().await;
        witness
    }

    /// This witness accepts an alert sent a second time under the same ID, as the guarantee
    /// allows for a leader cut off from the API server after its channel accepted the alert.
    pub fn allowing_resend_after_cut_off(mut self) -> Witness {
        self.resend_allowed = true;
        self
    }

    /// A witness whose webhook, on `127.0.0.1:port`, refuses connections until
    /// [`Witness::listen`].
    pub async fn refusing(ns: &str, port: u16) -> Witness {
        let url = format!("http://127.0.0.1:{port}/hooks/aigov");
        kubectl_ok(
            &[
                "create",
                "secret",
                "generic",
                SECRET,
                "-n",
                ns,
                &format!("--from-literal=url={url}"),
            ],
            None,
        );
        Witness {
            namespace: ns.to_owned(),
            group: log_group("/aigov/witness").await,
            port,
            hook: None,
            resend_allowed: false,
        }
    }

    /// Starts the webhook receiver (the channel comes back).
    pub async fn listen(&mut self) {
        self.hook = Some(Receiver::start_on(self.port).await);
    }

    /// What the webhook received so far.
    pub fn posted(&self) -> Vec<Posted> {
        self.hook.as_ref().map(Receiver::posted).unwrap_or_default()
    }

    /// The flags every controller of the test runs with.
    pub fn controller_flags(&self) -> Vec<String> {
        vec!["--emf-log-group".into(), self.group.clone()]
    }

    /// Spec lines (indented two spaces) for `thresholds` alerted to the witness's webhook.
    pub fn alerting(thresholds: &[u32]) -> String {
        let list: Vec<String> = thresholds.iter().map(u32::to_string).collect();
        format!(
            "  thresholds: [{}]\n  alerts: {{webhookSecretRef: {{name: {SECRET}, key: url}}, cooldown: 1s}}\n",
            list.join(", ")
        )
    }

    /// Asserts the four promises for `charged`: each budget with the request IDs of the calls
    /// it charged. At least one threshold must have been crossed among them (the alert check
    /// must be able to fail).
    pub async fn assert_kept(&self, charged: &[(&str, &HashSet<String>)]) -> Kept {
        for (budget, ids) in charged {
            assert_spend_exact(&self.namespace, budget, ids);
        }
        for (budget, _) in charged {
            assert_nothing_held(&self.namespace, budget);
        }
        let records = self.assert_records_once(charged).await;
        let alerts = self.assert_alerts_once(charged).await;
        Kept {
            calls: charged.iter().map(|(_, ids)| ids.len()).sum(),
            records,
            alerts,
        }
    }

    /// Every charged call has one usage record per budget, and nothing else is recorded.
    async fn assert_records_once(&self, charged: &[(&str, &HashSet<String>)]) -> usize {
        let complete = |records: &[(String, String)]| {
            charged.iter().all(|(budget, ids)| {
                let written: HashSet<&str> = records
                    .iter()
                    .filter(|(_, b)| b == budget)
                    .map(|(id, _)| id.as_str())
                    .collect();
                ids.iter().all(|id| written.contains(id.as_str()))
            })
        };
        let deadline = Instant::now() + Duration::from_secs(45);
        while !complete(&usage_records(&self.group).await) {
            assert!(
                Instant::now() < deadline,
                "usage records missing after 45 s"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // A duplicate would come from a later flush: give one the time to show.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let records = usage_records(&self.group).await;
        let mut seen = HashSet::new();
        let twice: Vec<_> = records.iter().filter(|r| !seen.insert(*r)).collect();
        assert!(twice.is_empty(), "usage records written twice: {twice:?}");
        for (budget, ids) in charged {
            let written: HashSet<String> = records
                .iter()
                .filter(|(_, b)| b == budget)
                .map(|(id, _)| id.clone())
                .collect();
            let extra: Vec<_> = written.difference(ids).collect();
            assert!(
                extra.is_empty(),
                "{budget}: records of calls not charged: {extra:?}"
            );
        }
        records.len()
    }

    /// Every threshold crossed has its alert delivered, and every alert reached the channel
    /// exactly once.
    async fn assert_alerts_once(&self, charged: &[(&str, &HashSet<String>)]) -> usize {
        let mut delivered: HashMap<String, String> = HashMap::new();
        let mut crossed_any = false;
        for (budget, _) in charged {
            let s = wait_status(&self.namespace, budget, Duration::from_secs(90), |s| {
                s["alerts"]["pending"]
                    .as_array()
                    .is_none_or(|p| p.is_empty())
            });
            let ids: Vec<String> = s["alerts"]["delivered"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["id"].as_str().map(str::to_owned))
                .collect();
            for threshold in s["thresholdsCrossed"].as_array().into_iter().flatten() {
                crossed_any = true;
                let kind = format!("threshold{threshold}-");
                let of_kind = ids.iter().filter(|id| id.starts_with(&kind)).count();
                assert_eq!(of_kind, 1, "{budget}: the {threshold}% alert: {s:#}");
            }
            delivered.extend(ids.into_iter().map(|id| (id, (*budget).to_owned())));
        }
        assert!(
            crossed_any,
            "no threshold was crossed: the alert check cannot fail"
        );
        // A duplicate would come from a later attempt: give one the time to show.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut times: HashMap<String, usize> = HashMap::new();
        for posted in self.posted() {
            for id in posted.ids.split(',').filter(|id| !id.is_empty()) {
                *times.entry(id.to_owned()).or_default() += 1;
            }
        }
        let most = if self.resend_allowed { 2 } else { 1 };
        for (id, budget) in &delivered {
            let n = times.get(id).copied().unwrap_or(0);
            assert!(
                (1..=most).contains(&n),
                "{budget}: alert {id} reached the channel {n} times"
            );
        }
        let unknown: Vec<_> = times
            .keys()
            .filter(|id| !delivered.contains_key(*id))
            .collect();
        assert!(
            unknown.is_empty(),
            "alerts no status shows as delivered: {unknown:?}"
        );
        delivered.len()
    }
}

fn spent(s: &serde_json::Value) -> Usd {
    Usd::parse(s["spent"].as_str().unwrap_or("0")).unwrap_or(Usd::ZERO)
}

/// The budget's spend is the catalog cost of the calls it charged.
fn assert_spend_exact(ns: &str, budget: &str, ids: &HashSet<String>) {
    let (expected, served) = served_cost(ids);
    assert_eq!(
        served,
        ids.len(),
        "{budget}: the simulator served every charged call"
    );
    let s = wait_status(ns, budget, Duration::from_secs(45), |s| {
        spent(s) == expected
    });
    assert_eq!(spent(&s), expected, "{budget}: spend exact");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        spent(&status(ns, budget)),
        expected,
        "{budget}: and nothing more later"
    );
}

/// No gateway replica reserves anything for calls in flight, and none is silent with holdings
/// still to return.
fn assert_nothing_held(ns: &str, budget: &str) {
    wait_status(ns, budget, Duration::from_secs(60), |s| {
        s["holdings"].as_array().into_iter().flatten().all(|h| {
            let in_flight = h["inFlight"].as_str().and_then(|v| Usd::parse(v).ok());
            in_flight.is_some_and(|v| v.is_zero()) && h["silentSince"].is_null()
        })
    });
}

/// Every usage record in `group`, as (request ID, budget) pairs with repeats kept.
pub async fn usage_records(group: &str) -> Vec<(String, String)> {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws_config().await);
    let mut pages = logs
        .filter_log_events()
        .log_group_name(group)
        .into_paginator()
        .send();
    let mut records = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.expect("FilterLogEvents");
        for message in page.events().iter().filter_map(|e| e.message()) {
            let v: serde_json::Value = serde_json::from_str(message).expect("EMF JSON");
            let id = v["RequestId"].as_str().unwrap_or_default().to_owned();
            records.push((id, v["Budget"].as_str().unwrap_or_default().to_owned()));
        }
    }
    records
}
