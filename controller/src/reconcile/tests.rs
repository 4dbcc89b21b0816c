//! Reconciles against a mock API server (a `tower` service behind [`kube::Client::new`], as
//! kube-rs tests reconcilers): status patches that fail, Events that arrive, and the ledger in
//! between.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aigov_api::AIBudget;
use aigov_api::pricing::PriceBook;
use aigov_ledger::clock::Clock;
use aigov_ledger::proto::UsageRecord;
use aigov_runtime::prices::Prices;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use jiff::Timestamp;
use kube::Client;
use serde_json::{Value, json};

use super::{Context, Intervals, reconcile};
use crate::ledger_service::LedgerShared;
use crate::metrics::Metrics;

/// The tests here run one at a time: the span test installs a thread's default subscriber,
/// and `tracing` caches per call site whether anyone listens, which a reconcile on another
/// thread at the same moment can spoil.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A clock tests set, through the clock file [`Clock::from_file`] reads.
struct TestClock {
    file: PathBuf,
}

impl TestClock {
    fn at(time: &str) -> TestClock {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "aigov-reconcile-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let clock = TestClock {
            file: dir.join("clock"),
        };
        clock.set(time);
        clock
    }

    fn set(&self, time: &str) {
        std::fs::write(&self.file, format!("{time} {}", Timestamp::now())).unwrap();
    }

    fn clock(&self) -> Clock {
        Clock::from_file(self.file.clone())
    }
}

impl Drop for TestClock {
    fn drop(&mut self) {
        if let Some(dir) = self.file.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One request the mock API server saw.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    body: Value,
}

/// The API server: keeps the one AIBudget, answers status patches (failing as many as
/// asked first, with a 500) and Event writes.
#[derive(Clone)]
struct MockApi {
    budget: Arc<Mutex<AIBudget>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    failing_patches: Arc<AtomicUsize>,
}

impl MockApi {
    fn new(budget: AIBudget) -> MockApi {
        MockApi {
            budget: Arc::new(Mutex::new(budget)),
            seen: Arc::default(),
            failing_patches: Arc::default(),
        }
    }

    fn client(&self) -> Client {
        let api = self.clone();
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let api = api.clone();
            async move { Ok::<_, std::convert::Infallible>(api.answer(request).await) }
        });
        Client::new(service, "default")
    }

    async fn answer(&self, request: Request<kube::client::Body>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().to_owned();
        self.seen.lock().unwrap().push(Seen {
            method: parts.method.clone(),
            path: path.clone(),
            body: body.clone(),
        });
        if parts.method == Method::PATCH && path.ends_with("/aibudgets/chat/status") {
            let failing =
                self.failing_patches
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if failing.is_ok() {
                return respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": "etcdserver: request timed out", "reason": "InternalError", "code": 500}),
                );
            }
            let mut budget = self.budget.lock().unwrap();
            budget.status = Some(serde_json::from_value(body["status"].clone()).unwrap());
            return respond(StatusCode::OK, serde_json::to_value(&*budget).unwrap());
        }
        if path.contains("/events") {
            return respond(StatusCode::CREATED, body);
        }
        respond(
            StatusCode::NOT_FOUND,
            json!({"kind": "Status", "code": 404}),
        )
    }

    /// The budget as the watch cache would have it.
    fn budget(&self) -> Arc<AIBudget> {
        Arc::new(self.budget.lock().unwrap().clone())
    }

    fn events(&self, reason: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == Method::POST && s.path.contains("/events"))
            .filter(|s| s.body["reason"] == reason)
            .map(|s| s.body["note"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn status_patches(&self) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|s| s.path.ends_with("/status")).count()
    }
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn budget() -> AIBudget {
    let spec = serde_yaml::from_str("limit: '100'\nthresholds: [50, 80, 100]\n").unwrap();
    let mut budget = AIBudget::new("chat", spec);
    budget.metadata.namespace = Some("team".into());
    budget.metadata.generation = Some(1);
    budget.metadata.uid = Some("6c1f4d0e-0000-4000-8000-000000000001".into());
    budget
}

/// A context over the mock API server, writing every change at once (no coalescing).
fn context(api: &MockApi, clock: &TestClock) -> Arc<Context> {
    let client = api.client();
    let (shared, _changed) = LedgerShared::new(
        Prices::default(),
        Duration::ZERO,
        Arc::new(Metrics::default()),
        clock.clock(),
        None,
    );
    // Leading, with a proof of leadership that outlasts the test.
    let an_hour = std::time::Instant::now() + Duration::from_secs(3600);
    shared.start_leading("test", 1, an_hour);
    let recorder = aigov_runtime::events::recorder(client.clone(), "test");
    Context::new(
        client,
        shared,
        recorder,
        None,
        clock.clock(),
        Intervals {
            status: Duration::ZERO,
            gateway_expiry: Duration::from_secs(90),
        },
    )
}

/// A context over the mock API server with alerts on (an alert task delivering through it).
fn context_with_alerts(api: &MockApi, clock: &TestClock) -> Arc<Context> {
    let plain = context(api, clock);
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::Config::builder()
            .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
            .region(aws_sdk_sns::config::Region::new("us-east-1"))
            .build(),
    );
    let alerter = crate::alerts::Alerter::start(crate::alerts::AlerterParts {
        sns,
        kube: plain.client.clone(),
        retry: crate::outbox::Retry::default(),
        clock: clock.clock(),
        metrics: plain.shared.metrics.clone(),
        changed: plain.shared.changed.clone(),
        own_namespace: "aigov-system".into(),
    });
    let recorder = aigov_runtime::events::recorder(plain.client.clone(), "test");
    Context::new(
        plain.client.clone(),
        plain.shared.clone(),
        recorder,
        Some(alerter),
        clock.clock(),
        Intervals {
            status: Duration::ZERO,
            gateway_expiry: Duration::from_secs(90),
        },
    )
}

#[tokio::test]
async fn every_status_patch_that_records_a_threshold_crossed_carries_its_alert() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let clock = TestClock::at("2026-11-15T00:00:00Z");
    let mut alerting = budget();
    alerting.spec.limit = "2".into();
    alerting.spec.alerts = Some(
        serde_yaml::from_str("webhookSecretRef: {name: slack, key: url}\ncooldown: 1s\n").unwrap(),
    );
    let api = MockApi::new(alerting);
    let ctx = context_with_alerts(&api, &clock);
    reconcile(api.budget(), ctx.clone()).await.unwrap();
    ctx.shared
        .ledger()
        .apply("g1", &a_dollar_call(1), &PriceBook::default());
    // The write recording 50% fails, then the retry succeeds.
    api.failing_patches.store(1, Ordering::SeqCst);
    assert!(reconcile(api.budget(), ctx.clone()).await.is_err());
    reconcile(api.budget(), ctx.clone()).await.unwrap();
    let patches: Vec<Value> = api
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path.ends_with("/status"))
        .map(|s| s.body["status"].clone())
        .filter(|status| status["thresholdsCrossed"] == json!([50]))
        .collect();
    assert_eq!(patches.len(), 2, "the failed write and its retry");
    for status in &patches {
        let pending = status["alerts"]["pending"]
            .as_array()
            .expect("pending alerts");
        assert_eq!(pending.len(), 1, "{status:#}");
        assert!(
            pending[0]["id"]
                .as_str()
                .unwrap()
                .starts_with("threshold50-")
        );
        assert_eq!(pending[0]["channel"]["webhookSecretRef"]["name"], "slack");
    }
    let written = api.budget().status.clone().unwrap();
    assert_eq!(written.alerts.unwrap().pending.len(), 1, "queued in status");
}

/// One call from gateway `g1` costing $1.00 (800,000 Claude 3 Haiku output tokens).
fn a_dollar_call(sequence: u64) -> UsageRecord {
    UsageRecord {
        sequence,
        request_id: format!("r{sequence}"),
        budgets: vec!["team/chat".into()],
        model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
        output_tokens: 800_000,
        occurred_at_ms: 1_763_000_000_000,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_status_patch_that_fails_at_a_rollover_loses_neither_the_summary_nor_the_event() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let clock = TestClock::at("2026-11-15T00:00:00Z");
    let api = MockApi::new(budget());
    let ctx = context(&api, &clock);
    reconcile(api.budget(), ctx.clone()).await.unwrap();
    ctx.shared
        .ledger()
        .apply("g1", &a_dollar_call(1), &PriceBook::default());

    // The period ends; the first status patch of the new one fails.
    clock.set("2026-12-01T00:00:05Z");
    api.failing_patches.store(1, Ordering::SeqCst);
    assert!(reconcile(api.budget(), ctx.clone()).await.is_err());
    assert!(api.events("PeriodRolledOver").is_empty());
    {
        let mut ledger = ctx.shared.ledger();
        let account = ledger.account("team/chat").unwrap();
        assert_eq!(
            (
                account.window.start.to_string(),
                account.spent.to_api_string()
            ),
            ("2026-11-01T00:00:00Z".to_owned(), "1.00".to_owned()),
            "the ledger has not moved"
        );
        assert_eq!(
            ledger.acknowledge("g1", false),
            0,
            "the record is in no status"
        );
    }

    // The retry writes the finished period's summary and announces it.
    reconcile(api.budget(), ctx.clone()).await.unwrap();
    let status = api.budget().status.clone().unwrap();
    assert_eq!(status.period_start.as_deref(), Some("2026-12-01T00:00:00Z"));
    let summary = &status.history[0];
    assert_eq!(
        (
            summary.start.as_str(),
            summary.spent.as_str(),
            summary.requests
        ),
        ("2026-11-01T00:00:00Z", "1.00", 1)
    );
    assert_eq!(
        api.events("PeriodRolledOver"),
        [
            "period 2026-11-01T00:00:00Z to 2026-12-01T00:00:00Z closed at 1.00 of 100.00 (1 requests, 0 refused); the new period runs to 2027-01-01T00:00:00Z"
        ]
    );
    let mut ledger = ctx.shared.ledger();
    let account = ledger.account("team/chat").unwrap();
    assert_eq!(
        (account.window.start.to_string(), account.spent),
        ("2026-12-01T00:00:00Z".to_owned(), aigov_api::Usd::ZERO)
    );
    assert_eq!(
        ledger.acknowledge("g1", false),
        1,
        "persisted with the summary"
    );
}

#[tokio::test]
async fn a_budget_with_a_time_zone_this_build_does_not_know_is_not_ready_with_one_warning() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let clock = TestClock::at("2026-11-15T00:00:00Z");
    let mut local = budget();
    local.spec.time_zone = "Local".into();
    let api = MockApi::new(local);
    let ctx = context(&api, &clock);
    reconcile(api.budget(), ctx.clone()).await.unwrap();
    let status = api.budget().status.clone().expect("a status is written");
    let ready = &status.conditions[0];
    assert_eq!(
        (
            ready.type_.as_str(),
            ready.status.as_str(),
            ready.reason.as_str()
        ),
        ("Ready", "False", "InvalidSpec")
    );
    assert!(
        ready
            .message
            .starts_with("spec.timeZone: unknown time zone \"Local\"")
    );
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(api.events("InvalidSpec").len(), 1);
    // Reconciled again unchanged: nothing rewritten, nothing repeated, no account opened.
    reconcile(api.budget(), ctx.clone()).await.unwrap();
    assert_eq!(
        (api.status_patches(), api.events("InvalidSpec").len()),
        (1, 1)
    );
    assert!(ctx.shared.ledger().account("team/chat").is_none());
}

#[tokio::test]
async fn a_budget_opened_by_a_failed_reconcile_stays_unopened_and_its_waiting_records_unacknowledged()
 {
    let _serial = ONE_AT_A_TIME.lock().await;
    let clock = TestClock::at("2026-11-15T00:00:00Z");
    let api = MockApi::new(budget());
    let ctx = context(&api, &clock);
    // A record arrives before the reconciler has opened the account.
    ctx.shared
        .ledger()
        .apply("g1", &a_dollar_call(1), &PriceBook::default());
    api.failing_patches.store(1, Ordering::SeqCst);
    assert!(reconcile(api.budget(), ctx.clone()).await.is_err());
    assert!(ctx.shared.ledger().account("team/chat").is_none());
    assert_eq!(ctx.shared.ledger().acknowledge("g1", false), 0);

    reconcile(api.budget(), ctx.clone()).await.unwrap();
    assert_eq!(api.status_patches(), 2);
    let status = api.budget().status.clone().unwrap();
    assert_eq!(
        (status.spent.as_deref(), status.requests),
        (Some("1.00"), 1)
    );
    assert_eq!(ctx.shared.ledger().acknowledge("g1", false), 1);
}

#[tokio::test]
async fn a_reconcile_runs_in_a_span_naming_the_budget_and_its_outcome() {
    let _serial = ONE_AT_A_TIME.lock().await;
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,kube_runtime=warn,aigov_controller::reconcile=debug",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let clock = TestClock::at("2026-11-15T00:00:00Z");
    let api = MockApi::new(budget());
    let ctx = context(&api, &clock);
    reconcile(api.budget(), ctx.clone()).await.unwrap();
    reconcile(api.budget(), ctx.clone()).await.unwrap();
    let logged = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("reconciled"))
        .collect();
    assert_eq!(lines.len(), 2, "{logged}");
    assert!(
        lines[0].contains("reconcile{budget=team/chat outcome=\"written\"}"),
        "{logged}"
    );
    assert!(
        lines[1].contains("reconcile{budget=team/chat outcome=\"requeue\"}"),
        "{logged}"
    );
}
