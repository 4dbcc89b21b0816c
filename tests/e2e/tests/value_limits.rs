//! Limits per value of request metadata (`spec.limitPerValue`, `spec.attribution.require`),
//! end to end with the real aws-sdk-bedrockruntime: 1,000 users with a cent a day each, on two
//! gateway replicas with 64 concurrent clients (two per user at a time, one on each replica),
//! and no user's settled spend passes its cent; every call the simulator served is charged
//! once, to the right user; refusals name the user. A call without a required key gets a
//! ValidationException naming it, and a restarted controller enforces each user's limit from
//! where the last one left off (`status.valueLedger`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{
    HAIKU, client_from, pod, pod_ip, served, served_cost, served_costs, user, worker_pods,
};
use aigov_e2e::budgets::{budget, status, wait_status};
use aigov_e2e::namespace;
use aigov_e2e::promises::Witness;
use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::InferenceConfiguration;

const USERS: usize = 1_000;
const CLIENTS: usize = 64;
const PODS: usize = 8;
/// Claude 3 Haiku (the test finds its own calls by request ID).
const MODEL: &str = HAIKU;
/// A call the simulator answers for about $0.003 of Claude 3 Haiku while it reserves its
/// 3,000-token bound ($0.00375 plus its input): a user is refused once less than that is left.
const TEXT: &str = "[sim:output_tokens=3000] hello";
const MAX_TOKENS: i32 = 3_000;

fn usd(s: &str) -> Usd {
    Usd::parse(s).unwrap()
}

/// One Converse call tagged with `user` (None: untagged).
async fn converse_as(
    client: &aws_sdk_bedrockruntime::Client,
    model: &str,
    who: Option<&str>,
) -> Result<String, aws_sdk_bedrockruntime::Error> {
    let metadata = who.map(|u| HashMap::from([("user".to_owned(), u.to_owned())]));
    let out = client
        .converse()
        .model_id(model)
        .messages(user(TEXT))
        .inference_config(
            InferenceConfiguration::builder()
                .max_tokens(MAX_TOKENS)
                .build(),
        )
        .set_request_metadata(metadata)
        .send()
        .await?;
    Ok(out.request_id().unwrap_or_default().to_owned())
}

#[derive(Debug, Default)]
struct Tally {
    /// Request ID → the user it was made as.
    served: HashMap<String, String>,
    /// Users whose calls ended on their own 403, and the message.
    refused: HashMap<String, String>,
    throttled: usize,
    errors: Vec<String>,
}

/// Calls as each of `users` in turn until that user's 403 (retrying 429s), for a minute at most.
async fn drive(
    client: aws_sdk_bedrockruntime::Client,
    users: Vec<String>,
    tally: Arc<Mutex<Tally>>,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    for who in users {
        while Instant::now() < deadline {
            match converse_as(&client, MODEL, Some(&who)).await {
                Ok(id) => {
                    tally.lock().unwrap().served.insert(id, who.clone());
                }
                Err(aws_sdk_bedrockruntime::Error::AccessDeniedException(e)) => {
                    let message = e.message().unwrap_or_default().to_owned();
                    tally.lock().unwrap().refused.insert(who.clone(), message);
                    break;
                }
                Err(aws_sdk_bedrockruntime::Error::ThrottlingException(e)) => {
                    {
                        let mut t = tally.lock().unwrap();
                        t.throttled += 1;
                        if t.throttled % 2000 == 1 {
                            eprintln!("429 for {who}: {}", e.message().unwrap_or_default());
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    tally.lock().unwrap().errors.push(format!("{e:?}"));
                    break;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_users_with_a_cent_each_on_two_gateways_never_pass_their_cent() {
    let ns = namespace("per-user");
    let witness = Witness::new(&ns).await;
    let spec = format!(
        "  limit: '15.00'\n  period: Daily\n  limitPerValue: [{{key: user, limit: '0.01'}}]\n{}",
        Witness::alerting(&[50])
    );
    budget(&ns, "chat-daily", &spec);
    let ips = worker_pods(&ns, PODS);
    let (_controller, gateways) =
        Aigov::controller_and_gateways(&ns, 2, &witness.controller_flags());
    let started = Instant::now();

    let tally: Arc<Mutex<Tally>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        // Clients 2i and 2i+1 share users, one on each replica, at the same time.
        let users: Vec<String> = (c / 2..USERS)
            .step_by(CLIENTS / 2)
            .map(|u| format!("u-{u:04}"))
            .collect();
        let client = client_from(ips[c % PODS], &gateways[c % 2].gateway, false).await;
        tasks.push(tokio::spawn(drive(client, users, tally.clone())));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    eprintln!(
        "per-user limits: {} calls served, {} 429s, {} users refused, in {:.1?}",
        tally.served.len(),
        tally.throttled,
        tally.refused.len(),
        started.elapsed()
    );
    assert!(
        tally.errors.is_empty(),
        "unexpected errors: {:?}",
        tally.errors
    );
    assert_eq!(tally.refused.len(), USERS, "every user ends on its own 403");
    for (who, message) in &tally.refused {
        let named = format!("user {who} in AIBudget {ns}/chat-daily");
        assert!(message.contains(&named), "{named:?} in {message:?}");
        assert!(message.contains("$0.01 daily limit"), "{message}");
    }

    // Each user's spend from what the simulator served: within its cent, and too close to it
    // for another call.
    let by_request: HashMap<String, BTreeMap<String, String>> = served()
        .into_iter()
        .filter(|s| tally.served.contains_key(&s.request_id))
        .map(|s| (s.request_id, s.request_metadata.unwrap_or_default()))
        .collect();
    assert_eq!(
        by_request.len(),
        tally.served.len(),
        "every answered call was served"
    );
    let mut per_user: HashMap<&str, HashSet<String>> = HashMap::new();
    for (id, who) in &tally.served {
        assert_eq!(
            by_request[id].get("user"),
            Some(who),
            "{id} reached Bedrock as {who}"
        );
        per_user.entry(who).or_default().insert(id.clone());
    }
    let all: HashSet<String> = tally.served.keys().cloned().collect();
    let costs = served_costs(&all);
    let worst = usd("0.0038");
    let mut spent_by_user = BTreeMap::new();
    for (who, ids) in &per_user {
        let spent = ids.iter().fold(Usd::ZERO, |a, id| a + costs[id]);
        assert!(spent <= usd("0.01"), "{who} spent {spent}, past its $0.01");
        assert!(
            usd("0.01") - spent < worst,
            "{who} was refused with {spent} spent"
        );
        spent_by_user.insert((*who).to_owned(), spent);
    }
    let total = costs.values().fold(Usd::ZERO, |a, b| a + *b);

    let s = wait_status(&ns, "chat-daily", Duration::from_secs(30), |s| {
        s["spent"].as_str().and_then(|v| Usd::parse(v).ok()) == Some(total)
    });
    let ledger = &s["valueLedger"][0];
    assert_eq!(ledger["key"], "user");
    assert_eq!(ledger["complete"], true);
    let listed = ledger["spent"].as_object().expect("spent by user");
    assert_eq!(listed.len(), per_user.len());
    for (who, spent) in &spent_by_user {
        assert_eq!(usd(listed[who].as_str().unwrap()), *spent, "{who}'s ledger");
    }
    let shown = &s["valueLimits"][0];
    assert_eq!(
        (shown["key"].as_str(), shown["limit"].as_str()),
        (Some("user"), Some("0.01"))
    );
    assert_eq!(shown["values"], per_user.len() as u64);
    assert_eq!(shown["top"].as_array().map(Vec::len), Some(10));
    let kept = witness.assert_kept(&[("chat-daily", &all)]).await;
    eprintln!(
        "{} calls, {} usage records, {} alerts, each once",
        kept.calls, kept.records, kept.alerts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_required_key_is_enforced_and_a_restarted_controller_keeps_each_users_spend() {
    let ns = namespace("per-user-req");
    budget(
        &ns,
        "team",
        "  limit: '5.00'\n  limitPerValue: [{key: user, limit: '0.006'}]\n  attribution: {keys: [user], require: [user]}\n",
    );
    let ip = pod_ip();
    pod(&ns, "app-0", "default", &[("app", "app")], ip);
    let mut aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;

    // Without the key, on Converse and on InvokeModel: refused before anything is reserved.
    let untagged = converse_as(&client, HAIKU, None)
        .await
        .expect_err("untagged");
    let aws_sdk_bedrockruntime::Error::ValidationException(e) = &untagged else {
        panic!("expected ValidationException, got {untagged:?}");
    };
    let message = e.message().unwrap_or_default();
    assert!(message.contains("requires the key 'user'"), "{message}");
    let body = serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 16,
        "messages": [{"role": "user", "content": "x"}]});
    let invoked = client
        .invoke_model()
        .model_id(HAIKU)
        .content_type("application/json")
        .body(Blob::new(body.to_string()))
        .send()
        .await
        .expect_err("untagged InvokeModel");
    assert!(
        format!("{invoked:?}").contains("requires the key 'user'"),
        "{invoked:?}"
    );

    // u-1 spends its half cent (one call), then is refused; u-2 is not.
    let mut ids = HashSet::new();
    let refusal = loop {
        match converse_as(&client, HAIKU, Some("u-1")).await {
            Ok(id) => assert!(ids.insert(id)),
            Err(e) => break format!("{e:?}"),
        }
        assert!(ids.len() < 5, "u-1 is refused within its limit");
    };
    assert!(refusal.contains("user u-1 in AIBudget"), "{refusal}");
    let (spent, _) = served_cost(&ids);
    let s = wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["valueLedger"][0]["spent"]["u-1"]
            .as_str()
            .and_then(|v| Usd::parse(v).ok())
            == Some(spent)
    });
    assert_eq!(
        s["requests"].as_u64(),
        Some(ids.len() as u64 + 3),
        "two untagged, one refused"
    );

    // A new process restores u-1's spend from status: still refused, u-2 still served.
    aigov.kill();
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;
    let again = converse_as(&client, HAIKU, Some("u-1"))
        .await
        .expect_err("u-1 is spent");
    assert!(
        format!("{again:?}").contains("user u-1 in AIBudget"),
        "{again:?}"
    );
    let other = converse_as(&client, HAIKU, Some("u-2"))
        .await
        .expect("u-2 has its own limit");
    ids.insert(other);
    let (total, _) = served_cost(&ids);
    wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["spent"].as_str().and_then(|v| Usd::parse(v).ok()) == Some(total)
    });
    let s = status(&ns, "team");
    assert!(
        usd(s["valueLedger"][0]["spent"]["u-1"].as_str().unwrap()) <= usd("0.006"),
        "{s}"
    );
}
