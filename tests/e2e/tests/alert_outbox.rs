//! Alerts are delivered at least once and never lost, through the user's interface: a real
//! webhook receiver (a hyper server in the test) on a loopback port where at first nothing
//! listens, real SDK calls through the gateway crossing a threshold, the budget's status,
//! conditions and Events read with kubectl, and the controller's `/metrics`. Also a leader
//! killed while its alert is pending (the new leader delivers it, once), and an SNS topic
//! that does not exist yet (moto) receiving its alert once it does.
//!
//! `AIGOV_ALERT_REFUSED_SECS` sets how long the webhook refuses connections (default 60, the
//! issue's fault case); that case ends checking the four promises ([`Witness::assert_kept`]).

use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options, free_port};
use aigov_e2e::bedrock::{HAIKU, client_from, converse, pod, pod_ip};
use aigov_e2e::budgets::{budget, condition, events, set_limit, status, wait_status};
use aigov_e2e::promises::Witness;
use aigov_e2e::webhook::{Posted, Receiver};
use aigov_e2e::{aws_config, kubectl_ok, namespace, unique};
use rust_decimal::Decimal;

const PROMPT: &str = "steady [sim:output_tokens=2000]";
/// Retries at most this far apart in these tests (the default is 5m).
const MAX_BACKOFF: &str = "4s";

fn spent(s: &serde_json::Value) -> Usd {
    Usd::parse(s["spent"].as_str().unwrap_or("0")).expect("spent")
}

fn refused_for() -> Duration {
    let secs = std::env::var("AIGOV_ALERT_REFUSED_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// A Secret `slack` in `ns` whose `url` is a webhook on `127.0.0.1:port`.
fn webhook_secret(ns: &str, port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/hooks/aigov");
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "slack",
            "-n",
            ns,
            &format!("--from-literal=url={url}"),
        ],
        None,
    );
    url
}

/// Crosses the budget's 50% threshold with two real calls through `gateway`: the first tells
/// what a call costs, the limit becomes three of them, the second passes 50%. Returns the
/// calls' request IDs.
async fn cross_half(ns: &str, name: &str, gateway: &str) -> std::collections::HashSet<String> {
    let ip = pod_ip();
    pod(ns, &format!("{name}-app"), "default", &[], ip);
    let client = client_from(ip, gateway, true).await;
    let first = converse(&client, HAIKU, PROMPT, 2000)
        .await
        .expect("call 1");
    let one = spent(&wait_status(ns, name, Duration::from_secs(20), |s| {
        s["requests"] == 1
    }));
    set_limit(ns, name, one.scaled(Decimal::from(3)));
    wait_status(ns, name, Duration::from_secs(20), |s| {
        s["effectiveLimit"].as_str() != Some("10.00")
    });
    let second = converse(&client, HAIKU, PROMPT, 2000)
        .await
        .expect("call 2");
    [first, second].into()
}

/// Waits until the budget's outbox holds one alert that failed at least once, with
/// `AlertDeliveryFailing` True; returns the status.
fn wait_failing(ns: &str, name: &str) -> serde_json::Value {
    wait_status(ns, name, Duration::from_secs(30), |s| {
        condition(s, "AlertDeliveryFailing")["status"] == "True"
            && s["alerts"]["pending"][0]["attempts"].as_u64() >= Some(1)
    })
}

/// The IDs of the alerts pending in a status.
fn pending_ids(s: &serde_json::Value) -> Vec<String> {
    s["alerts"]["pending"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until the receiver got something, then a little longer for a duplicate to show.
async fn wait_posted(posted: impl Fn() -> Vec<Posted>, within: Duration) -> Vec<Posted> {
    let deadline = Instant::now() + within;
    while posted().is_empty() {
        assert!(Instant::now() < deadline, "the alert never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    posted()
}

/// Asserts that the status shows the delivery: nothing pending, the condition False, the ID
/// remembered as delivered.
fn assert_delivered(ns: &str, name: &str, id: &str) -> serde_json::Value {
    let s = wait_status(ns, name, Duration::from_secs(20), |s| {
        pending_ids(s).is_empty() && condition(s, "AlertDeliveryFailing")["status"] == "False"
    });
    assert_eq!(
        condition(&s, "AlertDeliveryFailing")["reason"],
        "Delivered",
        "{s:#}"
    );
    assert_eq!(s["alerts"]["delivered"][0]["id"], id, "{s:#}");
    s
}

fn assert_no_url(text: &str, url: &str) {
    let authority = url.trim_start_matches("http://").split('/').next().unwrap();
    assert!(
        !text.contains(authority),
        "the webhook URL (a secret) was shown: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_channel_refusing_connections_for_60_s_gets_the_alert_exactly_once_when_it_comes_back()
 {
    let ns = namespace("alert-refused");
    let port = free_port();
    let mut witness = Witness::refusing(&ns, port).await;
    let url = format!("http://127.0.0.1:{port}/hooks/aigov");
    let channel = "webhook (Secret witness-alerts, key url)";
    let spec = format!("  limit: '10.00'\n{}", Witness::alerting(&[50]));
    budget(&ns, "team", &spec);
    let mut options = Options::all(&ns);
    options.extra = [
        "--status-interval",
        "200ms",
        "--alert-retry-max-backoff",
        MAX_BACKOFF,
    ]
    .map(str::to_owned)
    .to_vec();
    options.extra.extend(witness.controller_flags());
    let aigov = Aigov::start(options, true);
    let calls = cross_half(&ns, "team", &aigov.gateway).await;

    // Refused: the alert waits in status, the condition and a Warning Event say why.
    let s = wait_failing(&ns, "team");
    let refused_since = Instant::now();
    let [id] = pending_ids(&s).try_into().expect("one alert pending");
    assert!(id.starts_with("threshold50-"), "{id}");
    assert_eq!(s["thresholdsCrossed"], serde_json::json!([50]));
    let failing = condition(&s, "AlertDeliveryFailing");
    let message = failing["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{channel}: 1 alert(s) pending since"))
            && message.contains("Connection refused"),
        "{message}"
    );
    assert_no_url(message, &url);
    let (_, note) = events(&ns, "team")
        .into_iter()
        .find(|(r, _)| r == "AlertDeliveryFailing")
        .expect("an AlertDeliveryFailing Event");
    assert!(note.contains(channel), "{note}");
    assert_no_url(&note, &url);
    let describe = kubectl_ok(&["describe", "aib", "-n", &ns, "team"], None);
    assert!(describe.contains("AlertDeliveryFailing"), "{describe}");
    assert_no_url(&describe, &url);

    // Still pending, and still failing, while the channel refuses.
    tokio::time::sleep(refused_for().saturating_sub(refused_since.elapsed())).await;
    let s = status(&ns, "team");
    assert_eq!(
        pending_ids(&s),
        std::slice::from_ref(&id),
        "kept while refused: {s:#}"
    );
    assert_eq!(condition(&s, "AlertDeliveryFailing")["status"], "True");
    let attempts = s["alerts"]["pending"][0]["attempts"].as_u64().unwrap();
    assert!(attempts >= 5, "retried with backoff: {attempts} attempts");

    // The channel comes back: the alert arrives once, with its ID.
    witness.listen().await;
    let posted = wait_posted(|| witness.posted(), Duration::from_secs(20)).await;
    assert_eq!(posted.len(), 1, "delivered exactly once: {posted:?}");
    assert_eq!(posted[0].ids, id);
    assert!(
        posted[0].body.contains("50% threshold crossed"),
        "{posted:?}"
    );
    let s = assert_delivered(&ns, "team", &id);
    assert!(s["alerts"]["delivered"][0]["attempts"].as_u64() > Some(attempts));
    assert!(
        events(&ns, "team")
            .iter()
            .any(|(r, n)| r == "AlertDelivered" && n.contains("1 alert(s) delivered to webhook")),
        "{:?}",
        events(&ns, "team")
    );
    let (_, metrics) = aigov.get("/metrics").expect("metrics");
    for line in [
        "aigov_alert_deliveries_total{channel=\"webhook\",result=\"delivered\"} 1",
        &format!("aigov_alerts_pending{{namespace=\"{ns}\",budget=\"team\"}} 0"),
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(
        metrics.contains("aigov_alert_deliveries_total{channel=\"webhook\",result=\"failed\"}")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(witness.posted().len(), 1, "and never again");
    witness.assert_kept(&[("team", &calls)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_killed_while_its_alert_is_pending_is_succeeded_by_one_that_delivers_it_once() {
    let ns = namespace("alert-failover");
    let port = free_port();
    webhook_secret(&ns, port);
    budget(
        &ns,
        "team",
        "  limit: '10.00'\n  thresholds: [50]\n  alerts: {webhookSecretRef: {name: slack, key: url}, cooldown: 1s}\n",
    );
    let lease = unique("lease");
    let ports = [free_port(), free_port()];
    let flags = [
        "--lease-duration",
        "4s",
        "--settle",
        "500ms",
        "--status-interval",
        "200ms",
        "--alert-retry-max-backoff",
        MAX_BACKOFF,
    ];
    let controller = |i: usize| Options::controller_replica(&ns, &lease, i, ports[i], &flags);
    let mut replicas = [
        Aigov::start(controller(0), false),
        Aigov::start(controller(1), false),
    ];
    let mut gw = Options::all(&ns);
    gw.role = "gateway";
    gw.controller_endpoints = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let gateway = Aigov::start(gw, true);
    cross_half(&ns, "team", &gateway.gateway).await;
    let s = wait_failing(&ns, "team");
    let [id] = pending_ids(&s).try_into().expect("one alert pending");

    // SIGKILL the leader while its alert is pending, then let the channel come back.
    let holder = || {
        kubectl_ok(
            &[
                "get",
                "lease",
                "-n",
                &ns,
                &lease,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            None,
        )
    };
    let leader = holder();
    let index = (0..2)
        .find(|i| leader.starts_with(&format!("controller-{i}-")))
        .expect("a replica leads");
    replicas[index].kill();
    let hook = Receiver::start_on(port).await;
    let killed = Instant::now();
    while holder() == leader {
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "no takeover within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let posted = wait_posted(|| hook.posted(), Duration::from_secs(30)).await;
    assert_eq!(posted.len(), 1, "delivered exactly once: {posted:?}");
    assert_eq!(posted[0].ids, id);
    assert_delivered(&ns, "team", &id);
    let survivor = &replicas[1 - index];
    assert!(
        survivor.log_text().contains("alert delivered"),
        "the new leader delivered it:\n{}",
        survivor.log_text()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook.posted().len(), 1, "and never again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sns_topic_created_after_its_alert_failed_receives_it_once() {
    let ns = namespace("alert-sns");
    let config = aws_config().await;
    let name = unique("late-topic");
    let arn = format!("arn:aws:sns:us-east-1:123456789012:{name}");
    budget(
        &ns,
        "team",
        &format!(
            "  limit: '10.00'\n  thresholds: [50]\n  alerts: {{snsTopicArn: '{arn}', cooldown: 1s}}\n"
        ),
    );
    let mut options = Options::all(&ns);
    options.extra = [
        "--status-interval",
        "200ms",
        "--alert-retry-max-backoff",
        MAX_BACKOFF,
    ]
    .map(str::to_owned)
    .to_vec();
    let aigov = Aigov::start(options, true);
    cross_half(&ns, "team", &aigov.gateway).await;
    let s = wait_failing(&ns, "team");
    let [id] = pending_ids(&s).try_into().expect("one alert pending");
    let message = condition(&s, "AlertDeliveryFailing")["message"].clone();
    assert!(
        message
            .as_str()
            .unwrap()
            .starts_with(&format!("SNS topic {arn}: 1 alert(s) pending")),
        "{message}"
    );

    // The topic appears (with a queue subscribed to read it); the alert reaches it once.
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let created = sns.create_topic().name(&name).send().await.expect("topic");
    assert_eq!(created.topic_arn(), Some(arn.as_str()));
    let queue = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
    sns.subscribe()
        .topic_arn(&arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .expect("subscribe");
    assert_delivered(&ns, "team", &id);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        if out.messages().is_empty() {
            break;
        }
        for m in out.messages() {
            let ids = m
                .message_attributes()
                .and_then(|a| a.get("aigov.alert-ids"))
                .and_then(|v| v.string_value())
                .unwrap_or_default()
                .to_owned();
            bodies.push((ids, m.body().unwrap_or_default().to_owned()));
        }
    }
    assert_eq!(bodies.len(), 1, "delivered exactly once: {bodies:?}");
    assert_eq!(bodies[0].0, id);
    assert!(bodies[0].1.contains("50% threshold crossed"), "{bodies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_undeliverable_for_the_whole_retry_horizon_is_dropped_visibly() {
    let ns = namespace("alert-horizon");
    let url = webhook_secret(&ns, free_port());
    budget(
        &ns,
        "team",
        "  limit: '10.00'\n  thresholds: [50]\n  alerts: {webhookSecretRef: {name: slack, key: url}, cooldown: 1s}\n",
    );
    let mut options = Options::all(&ns);
    options.extra = [
        "--status-interval",
        "200ms",
        "--alert-retry-max-backoff",
        MAX_BACKOFF,
        "--alert-retry-horizon",
        "12s",
    ]
    .map(str::to_owned)
    .to_vec();
    let aigov = Aigov::start(options, true);
    cross_half(&ns, "team", &aigov.gateway).await;
    wait_failing(&ns, "team");

    let s = wait_status(&ns, "team", Duration::from_secs(30), |s| {
        pending_ids(s).is_empty() && condition(s, "AlertDeliveryFailing")["reason"] == "Dropped"
    });
    assert_eq!(condition(&s, "AlertDeliveryFailing")["status"], "False");
    assert_eq!(
        s["thresholdsCrossed"],
        serde_json::json!([50]),
        "still recorded as crossed"
    );
    let (_, note) = events(&ns, "team")
        .into_iter()
        .find(|(r, _)| r == "AlertDropped")
        .expect("an AlertDropped Event");
    assert!(
        note.contains("to webhook (Secret slack, key url)")
            && note.contains("not delivered within the retry horizon (12s)")
            && note.contains("Connection refused"),
        "{note}"
    );
    assert_no_url(&note, &url);
    let (_, metrics) = aigov.get("/metrics").expect("metrics");
    let line = "aigov_alerts_dropped_total{reason=\"horizon\"} 1";
    assert!(metrics.contains(line), "{line} in:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_held_by_the_cooldown_is_sent_by_the_next_leader_when_the_cooldown_ends() {
    let ns = namespace("alert-cooldown");
    let hook = Receiver::start().await;
    let port: u16 = hook
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    webhook_secret(&ns, port);
    let cooldown = Duration::from_secs(20);
    budget(
        &ns,
        "team",
        "  limit: '10.00'\n  thresholds: [25, 50]\n  alerts: {webhookSecretRef: {name: slack, key: url}, cooldown: 20s}\n",
    );
    let lease = unique("lease");
    let ports = [free_port(), free_port()];
    let flags = [
        "--lease-duration",
        "4s",
        "--settle",
        "500ms",
        "--status-interval",
        "200ms",
    ];
    let controller = |i: usize| Options::controller_replica(&ns, &lease, i, ports[i], &flags);
    let mut replicas = [
        Aigov::start(controller(0), false),
        Aigov::start(controller(1), false),
    ];
    let mut gw = Options::all(&ns);
    gw.role = "gateway";
    gw.controller_endpoints = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let gateway = Aigov::start(gw, true);

    // 25% goes at once; 50% right after is held by the cooldown.
    let ip = pod_ip();
    pod(&ns, "team-app", "default", &[], ip);
    let client = client_from(ip, &gateway.gateway, true).await;
    converse(&client, HAIKU, PROMPT, 2000)
        .await
        .expect("call 1");
    let one = spent(&wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["requests"] == 1
    }));
    set_limit(&ns, "team", one.scaled(Decimal::from(4)));
    let first = wait_posted(|| hook.posted(), Duration::from_secs(20)).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].body.contains("25% threshold crossed"));
    converse(&client, HAIKU, PROMPT, 2000)
        .await
        .expect("call 2");
    let s = wait_status(&ns, "team", Duration::from_secs(20), |s| {
        pending_ids(s).len() == 1
    });
    let [held] = pending_ids(&s).try_into().unwrap();
    assert!(held.starts_with("threshold50-"), "{held}");

    // The leader dies holding it; the next one keeps the cooldown it finds in status.
    let holder = || {
        kubectl_ok(
            &[
                "get",
                "lease",
                "-n",
                &ns,
                &lease,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            None,
        )
    };
    let leader = holder();
    let index = (0..2)
        .find(|i| leader.starts_with(&format!("controller-{i}-")))
        .expect("a replica leads");
    replicas[index].kill();
    let deadline = first[0].at + cooldown + Duration::from_secs(20);
    while hook.posted().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the held alert never arrived: {:?}",
            status(&ns, "team")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let posted = hook.posted();
    assert_eq!(posted.len(), 2, "each alert once: {posted:?}");
    assert_eq!(posted[1].ids, held);
    let gap = posted[1].at.duration_since(posted[0].at);
    assert!(
        gap >= cooldown - Duration::from_millis(500),
        "sent {gap:?} after the last alert, inside the {cooldown:?} cooldown"
    );
    let survivor = &replicas[1 - index];
    assert!(
        survivor.log_text().contains(&held),
        "the new leader delivered it:\n{}",
        survivor.log_text()
    );
    assert_delivered(&ns, "team", &held);
    eprintln!("held alert sent by the next leader {gap:?} after the previous one");
}
