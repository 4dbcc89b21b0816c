//! Attribution by request metadata, end to end: the real aws-sdk-bedrockruntime (and boto3)
//! tag their calls (Converse `requestMetadata`, the InvokeModel header), the gateway reads and
//! forwards them with its own `aigov.` pairs (checked in the simulator's record of what it
//! received), the budget's `status.attribution` and `kubectl aigov report --by`, `top --by`,
//! `compare --by` and `export` agree with the simulator's served usage to the micro-dollar,
//! and metadata Bedrock would refuse gets Bedrock's own ValidationException with nothing
//! charged or held.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{HAIKU, client_from, pod, pod_ip, served, served_cost, user};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::{aws_config, kubectl_aigov, local_env, log_group, namespace};
use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::InferenceConfiguration;
use serde_json::Value;

type Pairs = BTreeMap<String, String>;

fn pairs(list: &[(&str, &str)]) -> Pairs {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn usd(v: &Value) -> Usd {
    Usd::parse(v.as_str().unwrap_or_else(|| panic!("{v} is not an amount"))).unwrap()
}

fn cli(log_group: &str, args: &[&str]) -> Output {
    kubectl_aigov(log_group, args)
        .output()
        .expect("kubectl-aigov runs")
}

fn cli_json(log_group: &str, args: &[&str]) -> Value {
    let out = cli(log_group, args);
    assert!(
        out.status.success(),
        "kubectl aigov {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// The four operations, each tagged as given (None: no metadata), returning the request ID.
struct Calls {
    client: aws_sdk_bedrockruntime::Client,
}

impl Calls {
    async fn converse(
        &self,
        text: &str,
        m: Option<&Pairs>,
    ) -> Result<String, aws_sdk_bedrockruntime::Error> {
        let out = self
            .client
            .converse()
            .model_id(HAIKU)
            .messages(user(text))
            .inference_config(InferenceConfiguration::builder().max_tokens(64).build())
            .set_request_metadata(m.map(|m| m.clone().into_iter().collect()))
            .send()
            .await?;
        Ok(out.request_id().unwrap_or_default().to_owned())
    }

    async fn converse_stream(&self, text: &str, m: Option<&Pairs>) -> String {
        let mut out = self
            .client
            .converse_stream()
            .model_id(HAIKU)
            .messages(user(text))
            .inference_config(InferenceConfiguration::builder().max_tokens(64).build())
            .set_request_metadata(m.map(|m| m.clone().into_iter().collect()))
            .send()
            .await
            .expect("converse-stream");
        while out.stream.recv().await.expect("event").is_some() {}
        out.request_id().unwrap_or_default().to_owned()
    }

    fn invoke_body(text: &str) -> Blob {
        let body = serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
            "messages": [{"role": "user", "content": text}]});
        Blob::new(body.to_string())
    }

    async fn invoke(
        &self,
        text: &str,
        header: Option<String>,
    ) -> Result<String, aws_sdk_bedrockruntime::Error> {
        let out = self
            .client
            .invoke_model()
            .model_id(HAIKU)
            .content_type("application/json")
            .body(Self::invoke_body(text))
            .set_request_metadata(header)
            .send()
            .await?;
        Ok(out.request_id().unwrap_or_default().to_owned())
    }

    async fn invoke_stream(&self, text: &str, header: Option<String>) -> String {
        let mut out = self
            .client
            .invoke_model_with_response_stream()
            .model_id(HAIKU)
            .content_type("application/json")
            .body(Self::invoke_body(text))
            .set_request_metadata(header)
            .send()
            .await
            .expect("invoke-with-response-stream");
        while out.body.recv().await.expect("chunk").is_some() {}
        out.request_id().unwrap_or_default().to_owned()
    }
}

/// What the simulator received as each call's metadata.
fn received(ids: &HashSet<String>) -> HashMap<String, Option<Pairs>> {
    served()
        .into_iter()
        .filter(|s| ids.contains(&s.request_id))
        .map(|s| (s.request_id, s.request_metadata))
        .collect()
}

/// The simulator's cost of each group of calls, by the name the test gives the group.
fn costs(groups: &[(&str, &[&String])]) -> BTreeMap<String, Usd> {
    groups
        .iter()
        .map(|(name, ids)| {
            let ids: HashSet<String> = ids.iter().map(|s| (*s).clone()).collect();
            let (cost, served) = served_cost(&ids);
            assert_eq!(
                served,
                ids.len(),
                "the simulator served every call of {name}"
            );
            ((*name).to_owned(), cost)
        })
        .collect()
}

/// A key's values in a status as value → (spent, requests).
fn values_of(status: &Value, key: &str) -> BTreeMap<String, (Usd, u64)> {
    status["attribution"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["key"] == key)
        .flat_map(|k| k["values"].as_array().cloned().unwrap_or_default())
        .map(|v| {
            (
                v["value"].as_str().unwrap().to_owned(),
                (usd(&v["spent"]), v["requests"].as_u64().unwrap()),
            )
        })
        .collect()
}

fn expected(
    costs: &BTreeMap<String, Usd>,
    rows: &[(&str, &[&str])],
) -> BTreeMap<String, (Usd, u64)> {
    rows.iter()
        .map(|(value, groups)| {
            let spent = groups
                .iter()
                .map(|g| costs[*g])
                .fold(Usd::ZERO, |a, b| a + b);
            ((*value).to_owned(), (spent, groups.len() as u64))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_metadata_reaches_bedrock_stamped_and_splits_spend_exactly_in_status_and_reports() {
    let ns = namespace("attr");
    let log_group = log_group("/aigov/attr").await;
    budget(
        &ns,
        "team",
        "  limit: '10.00'\n  period: Daily\n  attribution: {keys: [feature, user]}\n",
    );
    budget(&ns, "all", "  limit: '10.00'\n");
    let ip = pod_ip();
    pod(&ns, "chat-0", "default", &[("app", "chat")], ip);
    let mut options = Options::all(&ns);
    options.extra = vec!["--emf-log-group".into(), log_group.clone()];
    let aigov = Aigov::start(options, true);
    let calls = Calls {
        client: client_from(ip, &aigov.gateway, true).await,
    };

    let search_ann = pairs(&[("feature", "search"), ("user", "ann")]);
    let a = calls
        .converse("[sim:output_tokens=40]", Some(&search_ann))
        .await
        .expect("converse");
    let search_bob = pairs(&[("feature", "search"), ("user", "bob")]);
    let b = calls
        .converse_stream("[sim:output_tokens=30]", Some(&search_bob))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let switched = jiff::Timestamp::now().to_string();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let chat_ann = pairs(&[("feature", "chat"), ("user", "ann")]);
    let header = |p: &Pairs| Some(serde_json::to_string(p).unwrap());
    let c = calls
        .invoke("[sim:output_tokens=25]", header(&chat_ann))
        .await
        .expect("invoke");
    let chat = pairs(&[("feature", "chat")]);
    let d = calls
        .invoke_stream("[sim:output_tokens=35]", header(&chat))
        .await;
    let e = calls
        .converse("[sim:output_tokens=10]", None)
        .await
        .expect("untagged converse");
    let ids: HashSet<String> = [&a, &b, &c, &d, &e].into_iter().cloned().collect();

    // Forwarded as sent, plus the gateway's pairs; a call without metadata gets them alone.
    let got = received(&ids);
    for (id, sent) in [
        (&a, &search_ann),
        (&b, &search_bob),
        (&c, &chat_ann),
        (&d, &chat),
        (&e, &Pairs::new()),
    ] {
        let mut m = got[id]
            .clone()
            .unwrap_or_else(|| panic!("{id} reached Bedrock without metadata"));
        let budgets = m.remove("aigov.budgets").expect("aigov.budgets");
        let mut budgets: Vec<&str> = budgets.split(',').collect();
        budgets.sort();
        assert_eq!(budgets, [format!("{ns}/all"), format!("{ns}/team")]);
        assert_eq!(m.remove("aigov.namespace").as_deref(), Some(ns.as_str()));
        assert_eq!(m.remove("aigov.workload").as_deref(), Some("chat"));
        assert_eq!(&m, sent, "the caller's pairs, unchanged");
    }

    // status.attribution: each value's spend exact against what the simulator served.
    let cost = costs(&[
        ("a", &[&a]),
        ("b", &[&b]),
        ("c", &[&c]),
        ("d", &[&d]),
        ("e", &[&e]),
    ]);
    let total = cost.values().fold(Usd::ZERO, |x, y| x + *y);
    let by_feature = expected(
        &cost,
        &[
            ("search", &["a", "b"]),
            ("chat", &["c", "d"]),
            ("(none)", &["e"]),
        ],
    );
    let by_user = expected(
        &cost,
        &[
            ("ann", &["a", "c"]),
            ("bob", &["b"]),
            ("(none)", &["d", "e"]),
        ],
    );
    let status = wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["requests"] == 5
            && values_of(s, "feature") == by_feature
            && values_of(s, "user") == by_user
    });
    assert_eq!(usd(&status["spent"]), total);
    assert!(
        aigov_e2e::budgets::status(&ns, "all")["attribution"].is_null(),
        "a budget that declares no keys keeps no breakdown"
    );

    // The usage records carry every pair: export, report --by, top --by, compare --by.
    let deadline = Instant::now() + Duration::from_secs(20);
    let records = loop {
        let r = cli_json(
            &log_group,
            &[
                "export", "-n", &ns, "--budget", "team", "--from", "-10m", "-o", "json",
            ],
        );
        if r.as_array().unwrap().len() >= 5 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 5, "{records:#?}");
    for r in records {
        let id = r["request_id"].as_str().unwrap();
        let sent: Pairs = serde_json::from_value(r["metadata"].clone()).unwrap();
        let want = [
            (&a, &search_ann),
            (&b, &search_bob),
            (&c, &chat_ann),
            (&d, &chat),
            (&e, &Pairs::new()),
        ]
        .into_iter()
        .find(|(i, _)| i.as_str() == id)
        .map(|(_, p)| p.clone())
        .expect("one of ours");
        assert_eq!(sent, want, "{r:#}");
    }
    let csv = String::from_utf8(
        cli(
            &log_group,
            &["export", "-n", &ns, "--budget", "team", "--from", "-10m"],
        )
        .stdout,
    )
    .unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",request_id,meta.feature,meta.user"),
        "{csv}"
    );
    assert!(
        csv.lines().any(|l| l.ends_with(&format!(",{c},chat,ann"))),
        "{csv}"
    );
    assert!(
        csv.lines().any(|l| l.ends_with(&format!(",{e},,"))),
        "{csv}"
    );

    // The records of the budget that declares [feature, user] are metrics per key; the other
    // budget's records of the same calls are not.
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws_config().await);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut keyed: BTreeMap<(String, String), Value> = BTreeMap::new();
    while keyed.len() < 10 && Instant::now() < deadline {
        let raw = logs
            .filter_log_events()
            .log_group_name(&log_group)
            .send()
            .await
            .expect("the usage records");
        for message in raw.events().iter().filter_map(|e| e.message()) {
            let doc: Value = serde_json::from_str(message).expect("EMF JSON");
            let id = doc["RequestId"].as_str().unwrap_or_default().to_owned();
            let budget = doc["Budget"].as_str().unwrap_or_default().to_owned();
            let sets = doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"].clone();
            keyed.insert((budget, id), sets);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let plain = serde_json::json!([["Namespace", "Budget", "Model"], ["Namespace", "Budget"]]);
    let with = |keys: &[&str]| {
        let mut sets = plain.as_array().unwrap().clone();
        sets.extend(
            keys.iter()
                .map(|k| serde_json::json!(["Namespace", "Budget", k])),
        );
        Value::Array(sets)
    };
    for (id, keys) in [
        (&a, &["meta.feature", "meta.user"][..]),
        (&b, &["meta.feature", "meta.user"]),
        (&c, &["meta.feature", "meta.user"]),
        (&d, &["meta.feature"]),
        (&e, &[]),
    ] {
        let team = keyed.get(&("team".to_owned(), id.clone()));
        assert_eq!(team, Some(&with(keys)), "{id} in team: {keyed:#?}");
        let all = keyed.get(&("all".to_owned(), id.clone()));
        assert_eq!(all, Some(&plain), "{id} in all declares no key");
    }

    let report = cli_json(
        &log_group,
        &["report", "-n", &ns, "team", "--by", "feature", "-o", "json"],
    );
    let rows: BTreeMap<String, (Usd, u64)> = report[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                (usd(&v["spent"]), v["requests"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(rows, by_feature, "{report:#}");
    assert_eq!(usd(&report[0]["spent"]), total);

    let top = cli_json(
        &log_group,
        &[
            "top", "-n", &ns, "--window", "10m", "--by", "user", "-o", "json",
        ],
    );
    let rows: BTreeMap<String, (Usd, u64)> = top
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v["key"], "user");
            (
                v["value"].as_str().unwrap().to_owned(),
                (usd(&v["spent"]), v["requests"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        rows, by_user,
        "each call once across its two budgets: {top:#}"
    );

    let (before, after) = (format!("-10m..{switched}"), format!("{switched}..now"));
    let c_json = cli_json(
        &log_group,
        &[
            "compare", "-n", &ns, "team", "--a", &before, "--b", &after, "--by", "feature", "-o",
            "json",
        ],
    );
    let row = |value: &str| {
        c_json["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["value"] == value)
            .unwrap_or_else(|| panic!("{value} missing from {c_json:#}"))
            .clone()
    };
    assert_eq!(c_json["by"], "feature");
    assert_eq!(
        (usd(&row("search")["before"]), usd(&row("search")["after"])),
        (cost["a"] + cost["b"], Usd::ZERO)
    );
    assert_eq!(
        (usd(&row("chat")["before"]), usd(&row("chat")["after"])),
        (Usd::ZERO, cost["c"] + cost["d"])
    );
    assert_eq!(usd(&row("(none)")["after"]), cost["e"]);
    let table = String::from_utf8(
        cli(
            &log_group,
            &["report", "-n", &ns, "team", "--by", "feature"],
        )
        .stdout,
    )
    .unwrap();
    assert!(
        table.contains("FEATURE") && table.lines().any(|l| l.starts_with("  search")),
        "{table}"
    );
    let e =
        String::from_utf8(cli(&log_group, &["top", "-n", &ns, "--by", "fea*ture"]).stderr).unwrap();
    assert!(e.contains("not a request-metadata key"), "{e}");
    drop(aigov);
}

/// The ValidationException of a failed call: its message and request ID.
fn validation(e: aws_sdk_bedrockruntime::Error) -> (String, String) {
    use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
    match e {
        aws_sdk_bedrockruntime::Error::ValidationException(v) => (
            v.message().unwrap_or_default().to_owned(),
            v.meta().request_id().unwrap_or_default().to_owned(),
        ),
        other => panic!("expected ValidationException, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_bedrock_would_refuse_gets_its_validation_exception_and_nothing_is_charged() {
    let ns = namespace("attr-bad");
    budget(
        &ns,
        "team",
        "  limit: '5.00'\n  attribution: {keys: [feature]}\n",
    );
    let ip = pod_ip();
    pod(&ns, "app-0", "default", &[("app", "app")], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let via_gateway = Calls {
        client: client_from(ip, &aigov.gateway, false).await,
    };
    let direct = Calls {
        client: client_from(ip, &local_env().bedrock_sim_endpoint, false).await,
    };
    let seventeen: Pairs = (0..17)
        .map(|i| (format!("k{i:02}"), "v".to_owned()))
        .collect();
    let long_key = pairs(&[(&"k".repeat(257), "v")]);
    let bad_value = pairs(&[("feature", "naïve")]);
    let mut answered_by_gateway = Vec::new();
    for (what, m, needle) in [
        (
            "17 pairs",
            &seventeen,
            "between 1 and 16 pairs, not 17".to_owned(),
        ),
        (
            "a 257-character key",
            &long_key,
            format!("key {:?}...", "k".repeat(64)),
        ),
        (
            "a value off the pattern",
            &bad_value,
            "the value of key \"feature\" must match".to_owned(),
        ),
    ] {
        let (ours, id) = validation(via_gateway.converse("x", Some(m)).await.expect_err(what));
        let (bedrocks, _) = validation(direct.converse("x", Some(m)).await.expect_err(what));
        assert_eq!(
            ours, bedrocks,
            "{what}: the gateway answers as Bedrock does"
        );
        assert!(ours.contains(&needle), "{what}: {needle:?} in {ours:?}");
        answered_by_gateway.push(id);
    }
    for (what, header, needle) in [
        ("no JSON", "{oops", "must be a JSON object"),
        (
            "a number",
            r#"{"feature": 7}"#,
            "the value of key \"feature\" must be a string",
        ),
        (
            "a bad key",
            r#"{"fea*ture": "x"}"#,
            "key \"fea*ture\" must match",
        ),
    ] {
        let (ours, id) = validation(
            via_gateway
                .invoke("x", Some(header.into()))
                .await
                .expect_err(what),
        );
        let (bedrocks, _) = validation(
            direct
                .invoke("x", Some(header.into()))
                .await
                .expect_err(what),
        );
        assert_eq!(
            ours, bedrocks,
            "{what}: the gateway answers as Bedrock does"
        );
        assert!(
            ours.contains(needle) && ours.contains("X-Amzn-Bedrock-Request-Metadata"),
            "{what}: {ours}"
        );
        answered_by_gateway.push(id);
    }
    // The gateway refused them itself, before reserving: none reached Bedrock.
    let served_ids: HashSet<String> = served().into_iter().map(|s| s.request_id).collect();
    for id in &answered_by_gateway {
        assert!(
            id.starts_with("aigov-") && !served_ids.contains(id),
            "{id} is the gateway's own answer"
        );
    }

    // Fifteen pairs leave no room for the gateway's three: forwarded as they are, counted.
    let fifteen: Pairs = (0..15)
        .map(|i| (format!("k{i:02}"), "v".to_owned()))
        .collect();
    let full = via_gateway
        .converse("[sim:output_tokens=5]", Some(&fifteen))
        .await
        .expect("15 pairs");
    let got = received(&HashSet::from([full.clone()]));
    assert_eq!(got[&full].as_ref(), Some(&fifteen));
    let (_, metrics) = aigov.get("/metrics").expect("metrics");
    assert!(
        metrics.contains("aigov_gateway_metadata_unstamped_total 1"),
        "{metrics}"
    );

    // Nothing of the refused calls was charged, counted or left held: only the good call.
    let (cost, _) = served_cost(&HashSet::from([full]));
    wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["requests"] == 1 && s["spent"].as_str().and_then(|v| Usd::parse(v).ok()) == Some(cost)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = aigov_e2e::budgets::status(&ns, "team");
    assert_eq!(
        (s["requests"].as_u64(), s["throttledRequests"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(usd(&s["spent"]), cost, "the refused calls cost nothing");
    assert_eq!(
        values_of(&s, "feature"),
        BTreeMap::from([("(none)".to_owned(), (cost, 1))])
    );
}

#[test]
fn kubectl_explain_says_metadata_subdivides_spend_and_never_selects_a_budget() {
    let out = aigov_e2e::kubectl_ok(&["explain", "aibudget.spec.attribution.keys"], None);
    let text = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "which budgets apply to a call is decided by the calling pod alone, never by its metadata",
        "the top 10 values",
        "(other)",
        "(none)",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
}

#[test]
fn boto3_tags_converse_and_invoke_and_gets_bedrocks_validation_exception() {
    let ns = namespace("attr-boto3");
    budget(
        &ns,
        "team",
        "  limit: '5.00'\n  attribution: {keys: [feature, user]}\n",
    );
    let ip = pod_ip();
    pod(&ns, "py-0", "default", &[("app", "py")], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway_boto3.py");
    let boto3 = |mode: &str| {
        let out = Command::new(local_env().python)
            .arg(&script)
            .args([aigov.gateway.as_str(), &ip.to_string(), mode])
            .output()
            .expect("python runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "boto3 {mode}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let ids: Vec<String> =
        serde_json::from_str(boto3("tagged").lines().last().unwrap()).expect("request IDs");
    let got = received(&ids.iter().cloned().collect());
    let converse = got[&ids[0]].clone().expect("converse metadata");
    assert_eq!(
        (converse["feature"].as_str(), converse["user"].as_str()),
        ("boto3", "py")
    );
    assert_eq!(converse["aigov.workload"], "py");
    let invoke = got[&ids[1]].clone().expect("invoke metadata");
    assert_eq!(
        (
            invoke["feature"].as_str(),
            invoke["aigov.namespace"].as_str()
        ),
        ("boto3-invoke", ns.as_str())
    );
    let cost = costs(&[("converse", &[&ids[0]]), ("invoke", &[&ids[1]])]);
    wait_status(&ns, "team", Duration::from_secs(20), |s| {
        values_of(s, "feature")
            == BTreeMap::from([
                ("boto3".to_owned(), (cost["converse"], 1)),
                ("boto3-invoke".to_owned(), (cost["invoke"], 1)),
            ])
            && values_of(s, "user")
                == BTreeMap::from([
                    ("py".to_owned(), (cost["converse"], 1)),
                    ("(none)".to_owned(), (cost["invoke"], 1)),
                ])
    });
    let invalid = boto3("expect-invalid");
    assert!(
        invalid.contains("between 1 and 16 pairs, not 17"),
        "{invalid}"
    );
    drop(aigov);
}
