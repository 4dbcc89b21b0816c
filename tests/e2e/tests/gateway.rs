//! The metering gateway with real clients: `aws-sdk-bedrockruntime` calls from pod IPs (loopback
//! addresses that pods in the real kube-apiserver carry) through the real `aigov-controller`
//! binary to the Bedrock simulator; spend checked against the simulator's own record.

use std::collections::HashSet;
use std::time::Duration;

use aigov_api::Usd;
use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{client_from, pod, pod_ip, served};
use aigov_e2e::{kubectl_ok, namespace};
use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::InferenceConfiguration;

use aigov_e2e::bedrock::{HAIKU, converse, served_cost, user};
use aigov_e2e::budgets::{budget, micro_floor, set_limit, wait_event, wait_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sdk_clients_work_through_the_gateway_and_every_call_is_charged_exactly() {
    let ns = namespace("gw-sdk");
    budget(&ns, "chat", "  limit: '10.00'\n");
    let ip = pod_ip();
    pod(&ns, "chat-0", "default", &[("app", "chat")], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, true).await;
    let mut ids = HashSet::new();

    ids.insert(
        converse(&client, HAIKU, "hello [sim:output_tokens=40]", 100)
            .await
            .expect("converse"),
    );

    let mut stream = client
        .converse_stream()
        .model_id(format!("us.{HAIKU}"))
        .messages(user(
            "stream please [sim:output_tokens=30] [sim:cache_read=12]",
        ))
        .inference_config(InferenceConfiguration::builder().max_tokens(64).build())
        .send()
        .await
        .expect("converse-stream");
    ids.insert(stream.request_id().unwrap_or_default().to_owned());
    let mut saw_usage = false;
    while let Some(event) = stream.stream.recv().await.expect("stream event") {
        if let aws_sdk_bedrockruntime::types::ConverseStreamOutput::Metadata(m) = event {
            saw_usage = m.usage().is_some();
        }
    }
    assert!(saw_usage, "the client still receives the metadata event");

    let body = serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
        "messages": [{"role": "user", "content": "invoke [sim:output_tokens=25]"}]});
    let out = client
        .invoke_model()
        .model_id(HAIKU)
        .content_type("application/json")
        .body(Blob::new(body.to_string()))
        .send()
        .await
        .expect("invoke");
    ids.insert(out.request_id().unwrap_or_default().to_owned());

    let mut out = client
        .invoke_model_with_response_stream()
        .model_id(HAIKU)
        .content_type("application/json")
        .body(Blob::new(body.to_string()))
        .send()
        .await
        .expect("invoke-with-response-stream");
    ids.insert(out.request_id().unwrap_or_default().to_owned());
    let mut chunks = 0;
    while let Some(_event) = out.body.recv().await.expect("chunk") {
        chunks += 1;
    }
    assert!(chunks > 1);

    let served_here: Vec<_> = served()
        .into_iter()
        .filter(|s| ids.contains(&s.request_id))
        .collect();
    assert_eq!(
        served_here.len(),
        4,
        "the simulator served all four calls: {served_here:?}"
    );
    for s in &served_here {
        assert_eq!(
            s.access_key, "aigov-gateway",
            "re-signed with the gateway's own credentials"
        );
        assert_eq!(s.signed_for, "bedrock/us-east-1");
        assert!(
            s.signature_verified,
            "the simulator verified the gateway's SigV4 signature: {s:?}"
        );
    }
    let (expected, _) = served_cost(&ids);
    assert!(expected > Usd::ZERO);
    let s = wait_status(&ns, "chat", Duration::from_secs(20), |s| {
        s["spent"].as_str() == Some(expected.to_api_string().as_str()) && s["requests"] == 4
    });
    assert_eq!(s["tokens"]["cacheRead"], 12);
    assert_eq!(s["phase"], "Active");
    let describe = kubectl_ok(&["describe", "aib", "-n", &ns, "chat"], None);
    assert!(describe.contains(&expected.to_api_string()), "{describe}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spent_budget_refuses_with_access_denied_naming_budget_spend_limit_and_reset() {
    let ns = namespace("gw-exhaust");
    budget(&ns, "team", "  limit: '5.00'\n");
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;
    converse(&client, HAIKU, "spend [sim:output_tokens=400]", 500)
        .await
        .expect("first call");
    let s = wait_status(&ns, "team", Duration::from_secs(20), |s| s["requests"] == 1);
    let spent = s["spent"].as_str().expect("spent").to_owned();
    // Someone lowers the limit to what is already spent: the budget is exhausted.
    set_limit(&ns, "team", Usd::parse(&spent).unwrap());
    wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["phase"] == "Throttled"
    });
    tokio::time::sleep(Duration::from_millis(600)).await; // the gateway's next exchange
    let err = converse(&client, HAIKU, "more", 100)
        .await
        .expect_err("refused");
    let aws_sdk_bedrockruntime::Error::AccessDeniedException(denied) = err else {
        panic!("expected AccessDeniedException, got {err:?}");
    };
    let message = denied.message().unwrap_or_default().to_owned();
    // A sub-cent spend and limit are shown as they are (not "$0.00 of its $0.00 limit").
    let spent_usd = Usd::parse(&spent).unwrap();
    let (shown_spent, shown_limit) = Usd::display_pair(spent_usd, micro_floor(spent_usd));
    assert_ne!(shown_limit, "$0.00", "the limit is not zero");
    for needle in [
        format!("AIBudget {ns}/team"),
        format!("has spent {shown_spent} of its {shown_limit} limit"),
        "resets at".to_owned(),
    ] {
        assert!(message.contains(&needle), "{needle:?} in {message:?}");
    }
    let s = wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["throttledRequests"] == 1
    });
    assert_eq!(
        s["spent"].as_str(),
        Some(spent.as_str()),
        "a refused call costs nothing"
    );
    let describe = kubectl_ok(&["describe", "aib", "-n", &ns, "team"], None);
    assert!(describe.contains("BudgetExhausted"), "{describe}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_soft_limit_calls_are_throttled_with_a_throttling_exception() {
    let ns = namespace("gw-soft");
    budget(
        &ns,
        "team",
        "  limit: '1.00'\n  enforcement: {action: Throttle, softLimitPercent: 1, softLimitRequestsPerMinute: 1}\n",
    );
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;
    // Sonnet 3.5 output at $15/1M: 1,000 tokens are $0.015, past the 1% soft limit.
    let sonnet = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    converse(&client, sonnet, "spend [sim:output_tokens=1000]", 1000)
        .await
        .expect("first call");
    wait_status(&ns, "team", Duration::from_secs(20), |s| s["requests"] == 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut throttled = None;
    for _ in 0..3 {
        match converse(&client, sonnet, "again", 10).await {
            Ok(_) => continue,
            Err(e) => {
                throttled = Some(e);
                break;
            }
        }
    }
    let err = throttled.expect("the soft limit throttles within three calls at 1/min");
    assert!(
        matches!(err, aws_sdk_bedrockruntime::Error::ThrottlingException(_)),
        "{err:?}"
    );
    let s = wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["throttledRequests"].as_u64() >= Some(1)
    });
    let throttling = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Throttling")
        .unwrap()
        .clone();
    assert_eq!(
        (throttling["status"].as_str(), throttling["reason"].as_str()),
        (Some("True"), Some("SoftLimit"))
    );
    // The throttled pod gets a Warning Event of its own, and the budget one with the count.
    wait_event(&ns, "app", "Throttled", "requests per minute");
    wait_event(&ns, "team", "Throttled", "the last from pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forbidden_model_is_refused_and_a_downgrade_is_announced_in_a_header() {
    let ns = namespace("gw-models");
    budget(
        &ns,
        "team",
        &format!(
            "  limit: '10.00'\n  models: {{deny: ['*opus*']}}\n  enforcement:\n    action: Downgrade\n    softLimitPercent: 1\n    softLimitRequestsPerMinute: 1000\n    downgrade: [{{from: '*sonnet*', to: '{HAIKU}'}}]\n"
        ),
    );
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;
    let err = converse(
        &client,
        "us.anthropic.claude-opus-4-20250514-v1:0",
        "hi",
        10,
    )
    .await
    .expect_err("denied");
    let aws_sdk_bedrockruntime::Error::AccessDeniedException(denied) = err else {
        panic!("expected AccessDeniedException, got {err:?}");
    };
    assert!(denied.message().unwrap_or_default().contains("*opus*"));

    // Spend past 1% ($0.10) with Sonnet, then Sonnet calls are rewritten to Haiku.
    let sonnet = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    converse(&client, sonnet, "spend [sim:output_tokens=8000]", 8000)
        .await
        .expect("sonnet call");
    wait_status(&ns, "team", Duration::from_secs(20), |s| s["requests"] == 2);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let id = converse(&client, sonnet, "now cheaper", 10)
        .await
        .expect("downgraded call");
    let billed = served()
        .into_iter()
        .find(|s| s.request_id == id)
        .expect("served");
    assert_eq!(
        billed.model_id, HAIKU,
        "Bedrock was called with the cheaper model"
    );
    let s = wait_status(&ns, "team", Duration::from_secs(20), |s| s["requests"] == 3);
    assert!(
        s["topModels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["model"] == HAIKU)
    );
    // The budget says so, and so does every downgraded answer.
    wait_event(
        &ns,
        "team",
        "Downgraded",
        &format!("from {sonnet} to {HAIKU}"),
    );
    let port = aigov
        .gateway
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let body = br#"{"messages":[{"role":"user","content":[{"text":"raw"}]}],"inferenceConfig":{"maxTokens":10}}"#;
    let auth = "AWS4-HMAC-SHA256 Credential=workload/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00";
    let (status, headers, _) = raw_post(
        ip,
        port,
        &format!("/model/{sonnet}/converse"),
        body,
        Some(auth),
    )
    .await;
    assert_eq!(status, 200, "{headers}");
    assert!(
        headers.contains(&format!("x-aigov-downgraded-from: {sonnet}")),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("x-aigov-downgraded-to: {HAIKU}")),
        "{headers}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_callers_and_hostile_requests_get_bedrock_errors_and_the_gateway_survives() {
    let ns = namespace("gw-hostile");
    budget(&ns, "team", "  limit: '10.00'\n");
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);

    // A caller whose IP is no pod's.
    let stranger = client_from(pod_ip(), &aigov.gateway, false).await;
    let err = converse(&stranger, HAIKU, "hi", 10)
        .await
        .expect_err("refused");
    let aws_sdk_bedrockruntime::Error::AccessDeniedException(denied) = err else {
        panic!("expected AccessDeniedException, got {err:?}");
    };
    assert!(
        denied
            .message()
            .unwrap_or_default()
            .contains("no running pod has IP")
    );

    // Raw hostile requests from the pod's address.
    let port = aigov
        .gateway
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let auth = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=abc";
    let cases: Vec<(String, Vec<u8>, &str, u16)> = vec![
        (
            "/model/anthropic.claude-3-haiku-20240307-v1:0/converse".into(),
            b"{not json".to_vec(),
            "ValidationException",
            400,
        ),
        (
            "/model/anthropic.claude-3-haiku-20240307-v1:0/converse".into(),
            b"[1,2]".to_vec(),
            "ValidationException",
            400,
        ),
        (
            "/model/%FF%FE/converse".into(),
            b"{}".to_vec(),
            "ValidationException",
            400,
        ),
        (
            "/model/a%20b%3Cscript%3E/invoke".into(),
            b"{}".to_vec(),
            "ValidationException",
            400,
        ),
        (
            "/guardrail/g/version/1/list".into(),
            b"{}".to_vec(),
            "UnknownOperationException",
            404,
        ),
        // A real operation now: Bedrock's own ValidationException (no content), relayed.
        (
            "/guardrail/g/version/1/apply".into(),
            b"{}".to_vec(),
            "ValidationException",
            400,
        ),
        (
            "/model/anthropic.claude-3-haiku-20240307-v1:0/converse".into(),
            vec![b'{'; 21 << 20],
            "ValidationException",
            400,
        ),
    ];
    for (path, body, code, status) in cases {
        let (got_status, headers, _) = raw_post(ip, port, &path, &body, Some(auth)).await;
        assert_eq!(got_status, status, "{path}");
        assert!(
            headers.contains(&format!("x-amzn-errortype: {}", code.to_ascii_lowercase())),
            "{path}: {headers}"
        );
    }
    let (status, headers, _) = raw_post(
        ip,
        port,
        "/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
        b"{}",
        None,
    )
    .await;
    assert_eq!(status, 403);
    assert!(headers.contains("missingauthenticationtokenexception"));
    let (status, headers, _) = raw_post(
        ip,
        port,
        "/model/anthropic.claude-3-haiku-20240307-v1:0/converse",
        b"{}",
        Some("garbage"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(headers.contains("incompletesignatureexception"));

    // An upstream error is passed through and costs nothing; a truncated stream is charged
    // the stated estimate (tests/hangup.rs checks its figures), never nothing.
    let client = client_from(ip, &aigov.gateway, false).await;
    let err = converse(&client, HAIKU, "fail [sim:error=ModelErrorException]", 10)
        .await
        .expect_err("upstream error");
    assert!(
        matches!(err, aws_sdk_bedrockruntime::Error::ModelErrorException(_)),
        "{err:?}"
    );
    let truncated = client
        .converse_stream()
        .model_id(HAIKU)
        .messages(user("cut [sim:truncate]"))
        .send()
        .await;
    if let Ok(mut s) = truncated {
        while let Ok(Some(_)) = s.stream.recv().await {}
    }

    // Still alive, still metering, nothing leaked: a real call goes through, and it and the
    // truncated stream are the two calls charged (both Haiku: the spend is the price of the
    // tokens counted, more than the real call alone).
    let id = converse(&client, HAIKU, "fine [sim:output_tokens=10]", 20)
        .await
        .expect("a normal call after all that");
    let (expected, _) = served_cost(&HashSet::from([id]));
    let s = wait_status(&ns, "team", Duration::from_secs(20), |s| s["requests"] == 2);
    let tokens = aigov_api::pricing::Usage {
        input_tokens: s["tokens"]["input"].as_u64().unwrap(),
        output_tokens: s["tokens"]["output"].as_u64().unwrap(),
        ..Default::default()
    };
    let priced = aigov_e2e::bedrock::cluster_price_book()
        .cost(
            &aigov_api::model::resolve(HAIKU),
            &tokens,
            aigov_api::pricing::InvocationMode::OnDemand,
            jiff::Timestamp::now(),
        )
        .amount;
    assert_eq!(s["spent"].as_str(), Some(priced.to_api_string().as_str()));
    assert!(priced > expected, "the truncated stream was charged too");
    assert_eq!(
        s["reserved"]
            .as_str()
            .map(|r| Usd::parse(r).unwrap() <= Usd::parse("10").unwrap()),
        Some(true)
    );
    let metrics = aigov.get("/metrics").expect("metrics").1;
    assert!(
        metrics.contains("aigov_gateway_requests_total{outcome=\"invalid\"}"),
        "{metrics}"
    );
}

/// A raw HTTP/1.1 POST from `source`: `(status, lower-cased headers, body)`. A body over
/// 20 MiB is declared in full but sent only past the gateway's limit, as a hostile client would.
async fn raw_post(
    source: std::net::IpAddr,
    port: u16,
    path: &str,
    body: &[u8],
    auth: Option<&str>,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(source, 0)).unwrap();
    let mut stream = socket
        .connect(std::net::SocketAddr::new(
            "127.0.0.1".parse().unwrap(),
            port,
        ))
        .await
        .unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let sent = body.len().min((20 << 20) + 4096);
    let _ = stream.write_all(&body[..sent]).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}
