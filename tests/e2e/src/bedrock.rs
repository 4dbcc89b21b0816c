//! Real Bedrock clients for gateway tests: `aws-sdk-bedrockruntime` whose connections leave
//! from a chosen loopback address (standing in for a pod IP), pods that carry those IPs in the
//! real kube-apiserver, and the simulator's record of what it served.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use aigov_bedrock_sim::server::Served;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::operation::RequestId as _;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::InferenceConfiguration;

use crate::{kubectl_ok, local_env};

/// A Bedrock runtime client pointed at `endpoint` whose calls come from `source`, with the
/// workload's own (test) credentials. `retries` false turns the SDK's retries off, so a
/// throttle reaches the test as the typed error.
pub async fn client_from(
    source: IpAddr,
    endpoint: &str,
    retries: bool,
) -> aws_sdk_bedrockruntime::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_bedrockruntime::config::Credentials::new(
            "workload-key",
            "workload-secret",
            None,
            None,
            "aigov-e2e",
        ))
        .http_client(aigov_example_workload::http_client_from(source))
        .retry_config(if retries {
            RetryConfig::standard().with_max_attempts(8)
        } else {
            RetryConfig::disabled()
        })
        .load()
        .await;
    aws_sdk_bedrockruntime::Client::new(&config)
}

/// A loopback address no other test process uses: 127.<pid-derived>.<n>.<n>.
pub fn pod_ip() -> IpAddr {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!("127.{}.{}.{}", 20 + pid % 200, (pid / 200) % 250, n)
        .parse()
        .expect("an IPv4 address")
}

/// `count` running pods `worker-0`, `worker-1`, ... labelled `app=worker` in `namespace`, each
/// at its own fresh address; their addresses, in order.
pub fn worker_pods(namespace: &str, count: usize) -> Vec<IpAddr> {
    (0..count)
        .map(|i| {
            let ip = pod_ip();
            pod(
                namespace,
                &format!("worker-{i}"),
                "default",
                &[("app", "worker")],
                ip,
            );
            ip
        })
        .collect()
}

/// Creates a running pod `name` in `namespace` with service account `sa`, labels, and `ip`
/// (set on its status as the kubelet would).
pub fn pod(namespace: &str, name: &str, sa: &str, labels: &[(&str, &str)], ip: IpAddr) {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"serviceAccountName": sa, "automountServiceAccountToken": false,
                 "containers": [{"name": "app", "image": "example.invalid/app:1"}]}
    });
    kubectl_ok(&["apply", "-f", "-"], Some(&manifest.to_string()));
    let status = serde_json::json!({"status": {"phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}]}});
    kubectl_ok(
        &[
            "patch",
            "pod",
            "-n",
            namespace,
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ],
        None,
    );
}

/// Every request the shared simulator has served.
pub fn served() -> Vec<Served> {
    let env = local_env();
    let authority = env
        .bedrock_sim_endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let (status, body) =
        crate::http_get(authority, "/_sim/requests").expect("the simulator answers");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("served requests as JSON")
}

/// Claude 3 Haiku, the cheap model most tests call.
pub const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

/// The exact catalog cost of what the simulator served under these request IDs, and how
/// many it served.
pub fn served_cost(ids: &std::collections::HashSet<String>) -> (aigov_api::Usd, usize) {
    served_cost_with(ids, &cluster_price_book())
}

/// The catalog plus every AIModelPrice in the cluster, as aigov prices with it.
pub fn cluster_price_book() -> aigov_api::pricing::PriceBook {
    let out = kubectl_ok(&["get", "aimp", "-o", "json"], None);
    let list: serde_json::Value = serde_json::from_str(&out).expect("json");
    let overrides = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            serde_json::from_value::<aigov_api::AIModelPrice>(item.clone())
                .expect("an AIModelPrice")
                .to_override()
                .expect("a valid price")
        })
        .collect();
    aigov_api::pricing::PriceBook::default().with_overrides(overrides)
}

/// Like `served_cost`, priced by `book`.
pub fn served_cost_with(
    ids: &std::collections::HashSet<String>,
    book: &aigov_api::pricing::PriceBook,
) -> (aigov_api::Usd, usize) {
    let costs = served_costs_with(ids, book);
    let total = costs.values().fold(aigov_api::Usd::ZERO, |a, b| a + *b);
    (total, costs.len())
}

/// The exact catalog cost of each call the simulator served under these request IDs, from one
/// read of its record.
pub fn served_costs(
    ids: &std::collections::HashSet<String>,
) -> std::collections::HashMap<String, aigov_api::Usd> {
    served_costs_with(ids, &cluster_price_book())
}

fn served_costs_with(
    ids: &std::collections::HashSet<String>,
    book: &aigov_api::pricing::PriceBook,
) -> std::collections::HashMap<String, aigov_api::Usd> {
    let mut costs = std::collections::HashMap::new();
    for s in served().into_iter().filter(|s| ids.contains(&s.request_id)) {
        let usage = aigov_api::pricing::Usage {
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cache_read_tokens: s.cache_read_tokens,
            cache_write_tokens: s.cache_write_tokens,
            cache_write_1h_tokens: 0,
        };
        let model = aigov_api::model::resolve(&s.model_id);
        let mut cost = book
            .cost(
                &model,
                &usage,
                aigov_api::pricing::InvocationMode::OnDemand,
                jiff::Timestamp::now(),
            )
            .amount;
        if !s.unit_cost.is_empty() {
            cost += aigov_api::Usd::parse(&s.unit_cost).expect("the simulator's unit cost");
        }
        costs.insert(s.request_id, cost);
    }
    costs
}

/// A user message.
pub fn user(text: &str) -> aws_sdk_bedrockruntime::types::Message {
    aws_sdk_bedrockruntime::types::Message::builder()
        .role(aws_sdk_bedrockruntime::types::ConversationRole::User)
        .content(aws_sdk_bedrockruntime::types::ContentBlock::Text(
            text.to_owned(),
        ))
        .build()
        .expect("message")
}

/// One Converse call; returns Bedrock's request ID.
pub async fn converse(
    client: &aws_sdk_bedrockruntime::Client,
    model: &str,
    text: &str,
    max_tokens: i32,
) -> Result<String, aws_sdk_bedrockruntime::Error> {
    use aws_sdk_bedrockruntime::operation::RequestId;
    let out = client
        .converse()
        .model_id(model)
        .messages(user(text))
        .inference_config(
            aws_sdk_bedrockruntime::types::InferenceConfiguration::builder()
                .max_tokens(max_tokens)
                .build(),
        )
        .send()
        .await?;
    Ok(out.request_id().unwrap_or_default().to_owned())
}

/// One bedrock-runtime call to `model` of kind `n % 4` (Converse, ConverseStream, InvokeModel,
/// InvokeModelWithResponseStream), asking for `output` tokens; `Ok(Some(id))` when Bedrock answered, `Ok(None)` when
/// refused for good (403: the budget cannot take it), `Err` on anything else.
pub async fn runtime_call(
    client: &aws_sdk_bedrockruntime::Client,
    model: &str,
    n: usize,
    output: u32,
) -> Result<Option<String>, String> {
    let text = format!("call {n} [sim:output_tokens={output}]");
    let max_tokens = 1000;
    let refused = |e: &aws_sdk_bedrockruntime::Error| {
        matches!(e, aws_sdk_bedrockruntime::Error::AccessDeniedException(_))
    };
    let claude_body =
        serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}]})
        .to_string();
    let result: Result<String, aws_sdk_bedrockruntime::Error> = match n % 4 {
        0 => client
            .converse()
            .model_id(model)
            .messages(user(&text))
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(max_tokens)
                    .build(),
            )
            .send()
            .await
            .map(|o| o.request_id().unwrap_or_default().to_owned())
            .map_err(Into::into),
        1 => match client
            .converse_stream()
            .model_id(model)
            .messages(user(&text))
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(max_tokens)
                    .build(),
            )
            .send()
            .await
        {
            Ok(mut out) => {
                let id = out.request_id().unwrap_or_default().to_owned();
                while let Some(_event) = out.stream.recv().await.map_err(|e| format!("{e:?}"))? {}
                Ok(id)
            }
            Err(e) => Err(e.into()),
        },
        2 => client
            .invoke_model()
            .model_id(model)
            .content_type("application/json")
            .body(Blob::new(claude_body))
            .send()
            .await
            .map(|o| o.request_id().unwrap_or_default().to_owned())
            .map_err(Into::into),
        _ => match client
            .invoke_model_with_response_stream()
            .model_id(model)
            .content_type("application/json")
            .body(Blob::new(claude_body))
            .send()
            .await
        {
            Ok(mut out) => {
                let id = out.request_id().unwrap_or_default().to_owned();
                while let Some(_event) = out.body.recv().await.map_err(|e| format!("{e:?}"))? {}
                Ok(id)
            }
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(id) => Ok(Some(id)),
        Err(e) if refused(&e) => Ok(None),
        Err(aws_sdk_bedrockruntime::Error::ThrottlingException(_)) => Err("throttled".into()),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Points the account's Bedrock model invocation logging at `group` (with the text of prompts
/// and completions when `text`), or turns it off. One configuration per account and region, so
/// a test that sets it is the only one in its binary to do so. Returns once the simulator
/// follows it: it reads the configuration again at most once a second
/// (`invocation_logs::aws::CONFIG_TTL`), so a call served just before may have left it holding
/// the previous one.
pub async fn log_invocations_to(group: Option<&str>, text: bool) {
    configure_invocation_logging(group, text).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
}

async fn configure_invocation_logging(group: Option<&str>, text: bool) {
    use aws_sdk_bedrock::types::{CloudWatchConfig, LoggingConfig};
    let control = aws_sdk_bedrock::Client::new(&crate::aws_config().await);
    let Some(group) = group else {
        control
            .delete_model_invocation_logging_configuration()
            .send()
            .await
            .expect("delete logging configuration");
        return;
    };
    let cloudwatch = CloudWatchConfig::builder()
        .log_group_name(group)
        .role_arn("arn:aws:iam::123456789012:role/bedrock-invocation-logs")
        .build()
        .expect("cloudwatch config");
    let config = LoggingConfig::builder()
        .cloud_watch_config(cloudwatch)
        .text_data_delivery_enabled(text)
        .build();
    control
        .put_model_invocation_logging_configuration()
        .logging_config(config)
        .send()
        .await
        .expect("put logging configuration");
}
