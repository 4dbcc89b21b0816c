//! The simulator writes Bedrock's model invocation logs as Bedrock does (see
//! `aigov_bedrock_sim::invocation_logs`): once the account's logging configuration names a
//! CloudWatch Logs group, one `ModelInvocationLog` record per served call, keyed by the request
//! ID the client saw and attributed to the principal that signed it; without a configuration,
//! nothing. The controller's reconciliation relies on exactly this.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aigov_bedrock_sim::invocation_logs::LOG_STREAM;
use aigov_e2e::bedrock::log_invocations_to;
use aigov_e2e::{aws_config, bedrock, local_env, log_group, unique};
use aws_sdk_bedrockruntime::operation::RequestId as _;
use aws_sdk_bedrockruntime::primitives::Blob;
use serde_json::{Value, json};

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
/// Longer than the simulator's configuration cache and flush interval together.
const SETTLE: Duration = Duration::from_millis(2500);

/// A runtime client signing with temporary credentials of an assumed role in moto; the role's
/// assumed-role ARN is what Bedrock logs as `identity.arn`.
async fn assumed_role_client() -> (aws_sdk_bedrockruntime::Client, String) {
    let role = unique("invoker");
    let sts = aws_sdk_sts::Client::new(&aws_config().await);
    let out = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::123456789012:role/{role}"))
        .role_session_name("app")
        .send()
        .await
        .expect("assume role");
    let c = out.credentials().expect("credentials");
    let arn = out
        .assumed_role_user()
        .expect("assumed role")
        .arn()
        .to_owned();
    let creds = aws_sdk_bedrockruntime::config::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "assumed-role",
    );
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(local_env().bedrock_sim_endpoint)
        .credentials_provider(creds)
        .load()
        .await;
    (aws_sdk_bedrockruntime::Client::new(&config), arn)
}

async fn converse(client: &aws_sdk_bedrockruntime::Client, team: &str) -> String {
    let out = client
        .converse()
        .model_id(HAIKU)
        .messages(bedrock::user("log me [sim:output_tokens=7]"))
        .request_metadata("team", team)
        .send()
        .await
        .expect("converse");
    out.request_id().expect("request id").to_owned()
}

async fn invoke(client: &aws_sdk_bedrockruntime::Client, team: &str) -> String {
    let body = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
        "messages": [{"role": "user", "content": "log me too [sim:output_tokens=9]"}]});
    let out = client
        .invoke_model()
        .model_id(HAIKU)
        .content_type("application/json")
        .body(Blob::new(body.to_string()))
        .request_metadata(json!({ "team": team }).to_string())
        .send()
        .await
        .expect("invoke");
    out.request_id().expect("request id").to_owned()
}

/// The records in `group`'s invocation stream, by request ID.
async fn records(group: &str) -> HashMap<String, Value> {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws_config().await);
    let out = logs
        .filter_log_events()
        .log_group_name(group)
        .log_stream_names(LOG_STREAM)
        .send()
        .await;
    let Ok(out) = out else {
        return HashMap::new(); // the stream is not there yet
    };
    out.events()
        .iter()
        .map(|e| serde_json::from_str::<Value>(e.message().unwrap_or_default()).expect("JSON"))
        .map(|r| (r["requestId"].as_str().unwrap_or_default().to_owned(), r))
        .collect()
}

async fn wait_for_records(group: &str, count: usize) -> HashMap<String, Value> {
    let start = Instant::now();
    loop {
        let found = records(group).await;
        if found.len() >= count || start.elapsed() > Duration::from_secs(20) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn served_calls_are_logged_as_bedrock_logs_them_only_while_logging_is_configured() {
    let (client, arn) = assumed_role_client().await;
    log_invocations_to(None, true).await;
    let before = converse(&client, "before").await;
    tokio::time::sleep(SETTLE).await;

    let group = log_group("bedrock-invocations").await;
    log_invocations_to(Some(&group), true).await;
    tokio::time::sleep(SETTLE).await;
    let conversed = converse(&client, "converse-team").await;
    let invoked = invoke(&client, "invoke-team").await;
    let found = wait_for_records(&group, 2).await;

    log_invocations_to(None, true).await;
    tokio::time::sleep(SETTLE).await;
    let after = converse(&client, "after").await;
    tokio::time::sleep(SETTLE).await;
    let finally = records(&group).await;

    assert_eq!(found.len(), 2, "one record per call: {found:#?}");
    let c = &found[&conversed];
    assert_eq!(c["schemaType"], "ModelInvocationLog");
    assert_eq!(c["schemaVersion"], "1.0");
    assert_eq!(c["operation"], "Converse");
    assert_eq!(c["modelId"], HAIKU);
    assert_eq!(c["region"], "us-east-1");
    assert_eq!(c["accountId"], "123456789012");
    assert_eq!(c["identity"]["arn"], arn.as_str());
    assert_eq!(c["output"]["outputTokenCount"], 7);
    assert_eq!(c["requestMetadata"], json!({"team": "converse-team"}));
    let i = &found[&invoked];
    assert_eq!(i["operation"], "InvokeModel");
    assert_eq!(i["modelId"], HAIKU);
    assert_eq!(i["identity"]["arn"], arn.as_str());
    assert_eq!(i["output"]["outputTokenCount"], 9);
    assert_eq!(i["requestMetadata"], json!({"team": "invoke-team"}));
    // The token counts are the ones the client was told.
    let served: HashMap<_, _> = bedrock::served()
        .into_iter()
        .map(|s| (s.request_id.clone(), s))
        .collect();
    for (id, record) in [(&conversed, c), (&invoked, i)] {
        let s = &served[id];
        assert_eq!(record["input"]["inputTokenCount"], s.input_tokens);
        assert_eq!(
            record["input"]["cacheReadInputTokenCount"],
            s.cache_read_tokens
        );
        assert_eq!(
            record["input"]["cacheWriteInputTokenCount"],
            s.cache_write_tokens
        );
        assert_eq!(record["output"]["outputTokenCount"], s.output_tokens);
        assert!(
            record["input"]["inputBodyJson"].is_object(),
            "text delivery is on"
        );
    }
    // Without a configuration, nothing is written.
    assert!(!finally.contains_key(&before) && !finally.contains_key(&after));
    assert_eq!(finally.len(), 2);
}
