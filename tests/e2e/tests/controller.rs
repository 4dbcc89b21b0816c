//! The controller against the real kube-apiserver and moto: thresholds, conditions and Events
//! read back with kubectl, SNS alerts seen through an SQS subscription in moto, webhook
//! deliveries seen by a local receiver, EMF records in a moto log group, period rollover with an
//! injected clock, escalation and extension by annotation, price overrides, and restart and
//! leader failover without loss or double counting.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options, free_port};
use aigov_e2e::bedrock::{
    HAIKU, client_from, converse, pod, pod_ip, served_cost, served_cost_with,
};
use aigov_e2e::budgets::{budget, condition, events, set_limit, wait_status};
use aigov_e2e::promises::Witness;
use aigov_e2e::webhook::Receiver;
use aigov_e2e::{aws_config, kubectl_aigov, kubectl_ok, log_group, namespace, unique};
use rust_decimal::Decimal;

/// An SNS topic with an SQS queue subscribed, in moto: `(topic ARN, queue URL)`.
async fn topic_with_queue(name: &str) -> (String, String) {
    let config = aws_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic = sns
        .create_topic()
        .name(name)
        .send()
        .await
        .expect("topic")
        .topic_arn
        .expect("arn");
    let queue = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    let queue_arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("queue ARN")
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .expect("subscribe");
    (topic, queue)
}

/// Every message delivered to the queue so far.
async fn queue_messages(queue: &str) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(&aws_config().await);
    let mut all = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        let batch: Vec<String> = out
            .messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_owned))
            .collect();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn spent(s: &serde_json::Value) -> Usd {
    Usd::parse(s["spent"].as_str().unwrap_or("0")).expect("spent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_moves_through_50_80_100_with_status_events_sns_webhook_and_emf() {
    let ns = namespace("ctl-thresholds");
    let (topic, queue) = topic_with_queue(&unique("team-alerts")).await;
    let hook = Receiver::start().await;
    kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "slack",
            "-n",
            &ns,
            &format!("--from-literal=url={}", hook.url),
        ],
        None,
    );
    let log_group = log_group("/aigov/usage").await;
    budget(
        &ns,
        "chat",
        &format!(
            "  limit: '10.00'\n  thresholds: [50, 80, 100]\n  alerts: {{snsTopicArn: '{topic}', webhookSecretRef: {{name: slack, key: url}}, cooldown: 1s}}\n"
        ),
    );
    let ip = pod_ip();
    pod(&ns, "chat-0", "default", &[], ip);
    let mut options = Options::all(&ns);
    options.extra = vec![
        "--emf-log-group".into(),
        log_group.clone(),
        "--status-interval".into(),
        "200ms".into(),
    ];
    let aigov = Aigov::start(options, true);
    let client = client_from(ip, &aigov.gateway, true).await;

    // One call tells what each identical call costs; the limit becomes ten of them.
    let prompt = "steady [sim:output_tokens=2000]";
    converse(&client, HAIKU, prompt, 2000)
        .await
        .expect("call 1");
    let one = spent(&wait_status(&ns, "chat", Duration::from_secs(20), |s| {
        s["requests"] == 1
    }));
    set_limit(&ns, "chat", one.scaled(Decimal::TEN));
    for n in 2..=5 {
        converse(&client, HAIKU, prompt, 2000)
            .await
            .unwrap_or_else(|e| panic!("call {n}: {e:?}"));
    }
    let s = wait_status(&ns, "chat", Duration::from_secs(20), |s| s["requests"] == 5);
    assert_eq!(s["phase"], "Warning");
    assert_eq!(s["percentUsed"], "50.0");
    assert_eq!(condition(&s, "ThresholdCrossed")["reason"], "Threshold50");
    for n in 6..=8 {
        converse(&client, HAIKU, prompt, 2000)
            .await
            .unwrap_or_else(|e| panic!("call {n}: {e:?}"));
    }
    let s = wait_status(&ns, "chat", Duration::from_secs(20), |s| s["requests"] == 8);
    assert_eq!(condition(&s, "ThresholdCrossed")["reason"], "Threshold80");
    assert_eq!(s["thresholdsCrossed"], serde_json::json!([50, 80]));
    // The limit is lowered to what is spent: 100%.
    set_limit(&ns, "chat", spent(&s));
    let s = wait_status(&ns, "chat", Duration::from_secs(20), |s| {
        s["phase"] == "Throttled"
    });
    assert_eq!(condition(&s, "BudgetExhausted")["status"], "True");
    assert_eq!(condition(&s, "Throttling")["reason"], "LimitReached");

    let describe = kubectl_ok(&["describe", "aib", "-n", &ns, "chat"], None);
    for needle in [
        "ThresholdCrossed",
        "BudgetExhausted",
        "50% threshold crossed",
        "80% threshold crossed",
        "Phase:",
    ] {
        assert!(
            describe.contains(needle),
            "{needle:?} in kubectl describe:\n{describe}"
        );
    }
    let reasons: Vec<String> = events(&ns, "chat").into_iter().map(|(r, _)| r).collect();
    assert_eq!(
        reasons.iter().filter(|r| *r == "ThresholdCrossed").count(),
        3,
        "{reasons:?}"
    );

    // Alerts: once per threshold, on SNS (seen in moto through SQS) and on the webhook.
    let mut sns_messages = Vec::new();
    wait_for(
        "SNS alerts for 50, 80 and 100%",
        Duration::from_secs(20),
        async || {
            sns_messages.extend(queue_messages(&queue).await);
            ["50%", "80%", "100%"].iter().all(|t| {
                sns_messages
                    .iter()
                    .any(|m| m.contains(&format!("{t} threshold crossed")))
            })
        },
    )
    .await;
    for t in ["50%", "80%", "100%"] {
        let n = sns_messages
            .iter()
            .map(|m| m.matches(&format!("{t} threshold crossed")).count())
            .sum::<usize>();
        assert_eq!(n, 1, "{t} alerted once: {sns_messages:?}");
    }
    wait_for("webhook alerts", Duration::from_secs(20), async || {
        let bodies = hook.bodies().join("\n");
        ["50%", "80%", "100%"]
            .iter()
            .all(|t| bodies.contains(&format!("{t} threshold crossed")))
    })
    .await;
    assert!(hook.bodies().iter().all(|b| {
        serde_json::from_str::<serde_json::Value>(b).is_ok_and(|v| v["text"].is_string())
    }));

    // EMF records in the moto log group: one per call, with the budget as a dimension.
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws_config().await);
    let mut records = Vec::new();
    wait_for("EMF records", Duration::from_secs(20), async || {
        records = logs
            .filter_log_events()
            .log_group_name(&log_group)
            .send()
            .await
            .map(|o| {
                o.events()
                    .iter()
                    .filter_map(|e| e.message().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        records.len() >= 8
    })
    .await;
    let first: serde_json::Value = serde_json::from_str(&records[0]).expect("EMF JSON");
    assert_eq!(first["Budget"], "chat");
    assert_eq!(first["Namespace"], ns.as_str());
    assert_eq!(
        first["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["Namespace", "Budget", "Model"], ["Namespace", "Budget"]])
    );
    let total: Usd = records
        .iter()
        .map(|r| {
            Usd::parse(
                serde_json::from_str::<serde_json::Value>(r).unwrap()["CostUSDExact"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap()
        })
        .sum();
    assert_eq!(total, spent(&s), "EMF costs add up to the budget's spend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn escalation_fires_after_its_delay_stops_on_acknowledgement_and_an_extension_reopens_the_budget()
 {
    let ns = namespace("ctl-escalate");
    let (team, _team_queue) = topic_with_queue(&unique("team")).await;
    let (oncall, oncall_queue) = topic_with_queue(&unique("oncall")).await;
    budget(
        &ns,
        "research",
        &format!(
            "  limit: '10.00'\n  enforcement: {{action: Escalate}}\n  alerts: {{snsTopicArn: '{team}', cooldown: 1s}}\n  escalation:\n  - {{after: 2s, snsTopicArn: '{oncall}'}}\n"
        ),
    );
    let ip = pod_ip();
    pod(&ns, "job", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;
    converse(&client, HAIKU, "spend [sim:output_tokens=500]", 500)
        .await
        .expect("call");
    let s = wait_status(&ns, "research", Duration::from_secs(20), |s| {
        s["requests"] == 1
    });
    set_limit(&ns, "research", spent(&s));

    let s = wait_status(&ns, "research", Duration::from_secs(30), |s| {
        condition(s, "Escalated")["status"] == "True"
    });
    assert_eq!(s["phase"], "Escalated");
    assert_eq!(s["escalation"]["stepsNotified"], 1);
    let mut oncall_messages = Vec::new();
    wait_for(
        "the on-call escalation",
        Duration::from_secs(20),
        async || {
            oncall_messages.extend(queue_messages(&oncall_queue).await);
            oncall_messages
                .iter()
                .any(|m| m.contains("escalation step 1"))
        },
    )
    .await;
    assert!(
        events(&ns, "research")
            .iter()
            .any(|(r, _)| r == "Escalated")
    );

    kubectl_ok(
        &[
            "annotate",
            "aib",
            "-n",
            &ns,
            "research",
            "aigov.dev/acknowledged=alice",
        ],
        None,
    );
    let s = wait_status(&ns, "research", Duration::from_secs(20), |s| {
        condition(s, "Escalated")["reason"] == "Acknowledged"
    });
    assert_eq!(s["escalation"]["acknowledgedBy"], "alice");

    // A temporary extension raises the effective limit for this period; calls go through again.
    let before = spent(&s);
    kubectl_ok(
        &[
            "annotate",
            "aib",
            "-n",
            &ns,
            "research",
            "aigov.dev/extension=1.00 incident-42",
        ],
        None,
    );
    let s = wait_status(&ns, "research", Duration::from_secs(20), |s| {
        s["extension"]["amount"] == "1.00"
    });
    assert_eq!(
        Usd::parse(s["effectiveLimit"].as_str().unwrap()).unwrap(),
        aigov_e2e::budgets::micro_floor(before) + Usd::parse("1").unwrap()
    );
    assert_eq!(s["extension"]["reason"], "incident-42");
    assert_eq!(condition(&s, "BudgetExhausted")["status"], "False");
    assert!(
        events(&ns, "research")
            .iter()
            .any(|(r, n)| r == "ExtensionGranted" && n.contains("incident-42"))
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    converse(&client, HAIKU, "after the extension", 100)
        .await
        .expect("admitted under the extension");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_period_rollover_archives_the_period_and_starts_at_zero() {
    let ns = namespace("ctl-rollover");
    budget(
        &ns,
        "daily",
        "  limit: '5.00'\n  period: Daily\n  timeZone: Europe/Berlin\n",
    );
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let clock = std::env::temp_dir().join(unique("clock"));
    let now = jiff::Timestamp::now();
    std::fs::write(&clock, format!("{now} {now}")).unwrap();
    let mut options = Options::all(&ns);
    options.extra = vec!["--clock-file".into(), clock.display().to_string()];
    let aigov = Aigov::start(options, true);
    let client = client_from(ip, &aigov.gateway, false).await;
    converse(&client, HAIKU, "today [sim:output_tokens=100]", 100)
        .await
        .expect("call");
    let s = wait_status(&ns, "daily", Duration::from_secs(20), |s| {
        s["requests"] == 1
    });
    let today = spent(&s);
    let end: jiff::Timestamp = s["periodEnd"].as_str().unwrap().parse().unwrap();

    // Time moves past midnight in Berlin; any change to the budget has it reconciled.
    let target = end + jiff::SignedDuration::from_secs(5);
    std::fs::write(&clock, format!("{target} {}", jiff::Timestamp::now())).unwrap();
    kubectl_ok(
        &[
            "annotate",
            "aib",
            "-n",
            &ns,
            "daily",
            "example.com/touched=1",
        ],
        None,
    );
    let s = wait_status(&ns, "daily", Duration::from_secs(20), |s| {
        s["history"].as_array().is_some_and(|h| !h.is_empty())
    });
    assert_eq!(s["spent"], "0.00");
    assert_eq!(s["requests"], 0);
    assert_eq!(s["periodStart"].as_str(), Some(end.to_string().as_str()));
    assert_eq!(
        Usd::parse(s["history"][0]["spent"].as_str().unwrap()).unwrap(),
        today
    );
    assert_eq!(s["history"][0]["requests"], 1);
    assert!(
        events(&ns, "daily")
            .iter()
            .any(|(r, _)| r == "PeriodRolledOver")
    );

    // kubectl aigov report: the finished period, and this one against it.
    let out = kubectl_aigov(
        "/aigov/unused",
        &["report", "-n", &ns, "daily", "-o", "json"],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = &report[0]["lastPeriod"];
    assert_eq!(Usd::parse(last["spent"].as_str().unwrap()).unwrap(), today);
    assert_eq!(last["start"], s["history"][0]["start"]);
    let change: Decimal = report[0]["changePercent"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no change against the last period: {report:#}"));
    assert_eq!(change, Decimal::from(-100), "nothing spent yet this period");
    let _ = std::fs::remove_file(&clock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_price_override_prices_later_calls_and_is_announced_on_affected_budgets() {
    let ns = namespace("ctl-price");
    let model = "mistral.mistral-large-2402-v1:0";
    kubectl_ok(
        &[
            "delete",
            "aimp",
            "-l",
            "aigov-e2e=price-override",
            "--ignore-not-found",
        ],
        None,
    );
    budget(&ns, "team", "  limit: '50.00'\n");
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;
    let first = converse(&client, model, "before [sim:output_tokens=1000]", 1000)
        .await
        .expect("call at catalog price");
    let (catalog_cost, _) = served_cost(&HashSet::from([first]));
    wait_status(&ns, "team", Duration::from_secs(20), |s| {
        spent(s) == catalog_cost
    });

    let name = unique("negotiated");
    kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: aigov.dev/v1alpha1\nkind: AIModelPrice\nmetadata: {{name: {name}, labels: {{aigov-e2e: price-override}}}}\nspec: {{model: '{model}', input: '1.00', output: '2.00'}}\n"
        )),
    );
    let override_price: aigov_api::AIModelPrice =
        serde_json::from_str(&kubectl_ok(&["get", "aimp", &name, "-o", "json"], None)).unwrap();
    let book = aigov_api::pricing::PriceBook::default()
        .with_overrides(vec![override_price.to_override().unwrap()]);
    wait_for(
        "the PriceChanged Event",
        Duration::from_secs(20),
        async || {
            events(&ns, "team")
                .iter()
                .any(|(r, n)| r == "PriceChanged" && n.contains(&name))
        },
    )
    .await;
    let second = converse(&client, model, "after [sim:output_tokens=1000]", 1000)
        .await
        .expect("call at the override");
    let second = HashSet::from([second]);
    let (override_cost, _) = served_cost_with(&second, &book);
    assert_ne!(
        override_cost,
        served_cost_with(&second, &aigov_api::pricing::PriceBook::default()).0,
        "the override prices differently from the catalog"
    );
    wait_status(&ns, "team", Duration::from_secs(20), |s| {
        spent(s) == catalog_cost + override_cost
    });
    kubectl_ok(&["delete", "aimp", &name], None);
}

/// Calls through `client` one after another until `stop`, keeping every answered call's ID;
/// a call that fails while no leader grants is retried by the SDK or left out (it was not
/// served).
fn call_until(
    client: aws_sdk_bedrockruntime::Client,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<HashSet<String>> {
    tokio::spawn(async move {
        let mut ids = HashSet::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(id) = converse(&client, HAIKU, "work [sim:output_tokens=50]", 64).await {
                ids.insert(id);
            }
        }
        ids
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_and_leader_failover_lose_nothing_and_count_nothing_twice() {
    let ns = namespace("ctl-failover");
    let witness = Witness::new(&ns).await;
    // About $0.00007 a call: the thresholds are crossed after roughly 280, 570, 1,140 and
    // 1,710 calls, around and between the kills.
    let spec = format!("  limit: '2.00'\n{}", Witness::alerting(&[1, 2, 4, 6]));
    budget(&ns, "team", &spec);
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let lease = unique("lease");
    let ports = [free_port(), free_port(), free_port()];
    let endpoints: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let mut flags = vec!["--lease-duration", "4s", "--settle", "1s"];
    let witness_flags = witness.controller_flags();
    flags.extend(witness_flags.iter().map(String::as_str));
    let controller = |i: usize| Options::controller_replica(&ns, &lease, i, ports[i], &flags);
    let mut replicas = [
        Some(Aigov::start(controller(0), false)),
        Some(Aigov::start(controller(1), false)),
    ];
    let mut gw = Options::all(&ns);
    gw.role = "gateway";
    gw.controller_endpoints = endpoints.clone();
    let gateway = Aigov::start(gw, true);
    let client = client_from(ip, &gateway.gateway, true).await;

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
    // Calls go on through both kills: records are in flight at every instant.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let caller = call_until(client, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Kill the leader; the other replica must take over within 15 seconds.
    let leader = holder();
    let index = (0..2)
        .find(|i| leader.starts_with(&format!("controller-{i}-")))
        .expect("a replica leads");
    replicas[index].as_mut().unwrap().kill();
    let killed_at = Instant::now();
    while holder() == leader {
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "no takeover within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let takeover = killed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Restart: kill the new leader too and start a fresh replica in its place.
    let survivor = 1 - index;
    replicas[survivor].as_mut().unwrap().kill();
    replicas[index] = Some(Aigov::start(controller(2), false));
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let ids = caller.await.expect("caller");

    assert!(
        ids.len() >= 10,
        "calls went on through the kills: {}",
        ids.len()
    );
    let kept = witness.assert_kept(&[("team", &ids)]).await;
    eprintln!(
        "leader takeover after {takeover:?}; {} calls, {} usage records, {} alerts, each once",
        kept.calls, kept.records, kept.alerts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_controller_fail_closed_stops_and_fail_open_continues_and_reconciles_later() {
    let ns = namespace("ctl-failmode");
    budget(
        &ns,
        "open",
        "  limit: '10.00'\n  selector: {serviceAccounts: [open]}\n  enforcement: {failMode: Open}\n",
    );
    budget(
        &ns,
        "closed",
        "  limit: '10.00'\n  selector: {serviceAccounts: [closed]}\n  enforcement: {failMode: Closed}\n",
    );
    let (open_ip, closed_ip) = (pod_ip(), pod_ip());
    pod(&ns, "open-app", "open", &[], open_ip);
    pod(&ns, "closed-app", "closed", &[], closed_ip);
    let lease = unique("lease");
    let ledger_port = free_port();
    let controller = |name: &str| {
        let mut o = Options::all(&ns);
        o.role = "controller";
        o.identity = unique(name);
        o.lease = lease.clone();
        o.ledger_port = Some(ledger_port);
        o.extra = vec![
            "--lease-duration".into(),
            "3s".into(),
            "--settle".into(),
            "500ms".into(),
        ];
        o
    };
    let mut first = Aigov::start(controller("first"), false);
    let mut gw = Options::all(&ns);
    gw.role = "gateway";
    gw.controller_endpoints = vec![format!("http://127.0.0.1:{ledger_port}")];
    gw.extra = vec!["--slice-ttl".into(), "2s".into()];
    let gateway = Aigov::start(gw, true);
    let open = client_from(open_ip, &gateway.gateway, false).await;
    let closed = client_from(closed_ip, &gateway.gateway, false).await;
    let mut open_ids = HashSet::new();
    open_ids.insert(
        converse(&open, HAIKU, "before [sim:output_tokens=20]", 32)
            .await
            .expect("open, controller up"),
    );
    converse(&closed, HAIKU, "before", 32)
        .await
        .expect("closed, controller up");

    first.kill();
    tokio::time::sleep(Duration::from_secs(3)).await; // past the slice TTL
    let err = converse(&closed, HAIKU, "during", 32)
        .await
        .expect_err("fail closed");
    assert!(
        matches!(
            err,
            aws_sdk_bedrockruntime::Error::ServiceUnavailableException(_)
        ),
        "{err:?}"
    );
    open_ids.insert(
        converse(&open, HAIKU, "during [sim:output_tokens=30]", 32)
            .await
            .expect("fail open admits"),
    );

    let _second = Aigov::start(controller("second"), false);
    let (expected, _) = served_cost(&open_ids);
    let s = wait_status(&ns, "open", Duration::from_secs(30), |s| s["requests"] == 2);
    assert_eq!(
        spent(&s),
        expected,
        "usage admitted while the controller was away is reconciled, once"
    );
    assert!(
        condition(&s, "Ready")["message"]
            .as_str()
            .unwrap_or_default()
            .contains("failMode Open")
    );
}
