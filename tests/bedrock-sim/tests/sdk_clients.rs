//! The real `aws-sdk-bedrockruntime` client against the simulator: all four operations,
//! streaming, cache tokens, errors as the SDK's own typed errors, and the SDK's retry.

use aigov_bedrock_sim::Config;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ConversationRole, ConverseStreamOutput,
    InferenceConfiguration, Message, ResponseStream, SystemContentBlock,
};
use aws_smithy_types::retry::RetryConfig;
use serde_json::{Value, json};

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

async fn start() -> (Client, std::sync::Arc<aigov_bedrock_sim::Simulator>) {
    start_with(Default::default(), "secret").await
}

/// A simulator checking the signatures of `secrets` (key → secret), and a client signing as
/// AKIDTEST with `secret`.
async fn start_with(
    secrets: std::collections::HashMap<String, String>,
    secret: &str,
) -> (Client, std::sync::Arc<aigov_bedrock_sim::Simulator>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = aigov_bedrock_sim::server::serve_verifying(listener, Config::default(), secrets)
        .await
        .unwrap();
    let conf = aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://{}", handle.addr))
        .credentials_provider(Credentials::new("AKIDTEST", secret, None, None, "test"))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(std::time::Duration::from_millis(1)),
        )
        .build();
    (Client::from_conf(conf), handle.simulator)
}

fn user(text: &str) -> Message {
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(text.into()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn converse_reports_usage_and_text() {
    let (client, sim) = start().await;
    let out = client
        .converse()
        .model_id(format!("us.{HAIKU}"))
        .messages(user("Say hello [sim:output_tokens=5]"))
        .inference_config(InferenceConfiguration::builder().max_tokens(100).build())
        .send()
        .await
        .unwrap();
    let usage = out.usage().unwrap();
    assert_eq!(usage.output_tokens(), 5);
    assert_eq!(usage.input_tokens(), 8); // 31 characters of prompt text
    let served = sim.served();
    assert_eq!(served.len(), 1);
    assert_eq!(served[0].model_id, format!("us.{HAIKU}"));
    assert_eq!(served[0].signed_for, "bedrock/us-east-1");
    assert_eq!(out.stop_reason().as_str(), "end_turn");
}

#[tokio::test]
async fn max_tokens_caps_the_output_and_says_so() {
    let (client, _) = start().await;
    let out = client
        .converse()
        .model_id(HAIKU)
        .messages(user("long answer [sim:output_tokens=500]"))
        .inference_config(InferenceConfiguration::builder().max_tokens(7).build())
        .send()
        .await
        .unwrap();
    assert_eq!(out.usage().unwrap().output_tokens(), 7);
    assert_eq!(out.stop_reason().as_str(), "max_tokens");
}

#[tokio::test]
async fn a_cache_point_writes_once_then_reads() {
    let (client, _) = start().await;
    let call = || {
        client
            .converse()
            .model_id("anthropic.claude-sonnet-4-20250514-v1:0")
            .system(SystemContentBlock::Text(
                "A long shared system prompt of forty chars".into(),
            ))
            .system(SystemContentBlock::CachePoint(
                CachePointBlock::builder()
                    .r#type(CachePointType::Default)
                    .build()
                    .unwrap(),
            ))
            .messages(user("question"))
            .send()
    };
    let first = call().await.unwrap();
    let second = call().await.unwrap();
    let (u1, u2) = (first.usage().unwrap(), second.usage().unwrap());
    assert_eq!(
        (u1.cache_write_input_tokens(), u1.cache_read_input_tokens()),
        (Some(11), Some(0))
    );
    assert_eq!(
        (u2.cache_write_input_tokens(), u2.cache_read_input_tokens()),
        (Some(0), Some(11))
    );
    assert_eq!(u2.input_tokens(), 2);
}

#[tokio::test]
async fn converse_stream_delivers_usage_only_in_the_final_metadata_event() {
    let (client, sim) = start().await;
    let mut out = client
        .converse_stream()
        .model_id("amazon.nova-micro-v1:0")
        .messages(user("stream please [sim:output_tokens=4]"))
        .send()
        .await
        .unwrap();
    let mut kinds = Vec::new();
    let mut text = String::new();
    let mut usage = None;
    while let Some(event) = out.stream.recv().await.unwrap() {
        match event {
            ConverseStreamOutput::MessageStart(_) => kinds.push("start"),
            ConverseStreamOutput::ContentBlockDelta(d) => {
                kinds.push("delta");
                text.push_str(d.delta().unwrap().as_text().unwrap());
            }
            ConverseStreamOutput::ContentBlockStop(_) => kinds.push("stop-block"),
            ConverseStreamOutput::MessageStop(_) => kinds.push("stop"),
            ConverseStreamOutput::Metadata(m) => {
                kinds.push("metadata");
                usage = m.usage().cloned();
            }
            _ => kinds.push("other"),
        }
    }
    assert_eq!(
        kinds,
        [
            "start",
            "delta",
            "delta",
            "delta",
            "delta",
            "stop-block",
            "stop",
            "metadata"
        ]
    );
    assert_eq!(text, "w0 w1 w2 w3 ");
    assert_eq!(usage.unwrap().output_tokens(), 4);
    assert!(sim.served()[0].usage_delivered);
}

#[tokio::test]
async fn invoke_model_speaks_the_model_native_body() {
    let (client, sim) = start().await;
    let body = json!({
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
        "messages": [{"role": "user", "content": "native body [sim:output_tokens=3]"}]
    });
    let out = client
        .invoke_model()
        .model_id(format!(
            "arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"
        ))
        .content_type("application/json")
        .body(Blob::new(body.to_string()))
        .send()
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["usage"]["output_tokens"], 3);
    assert_eq!(answer["content"][0]["text"], "w0 w1 w2 ");
    // The ARN's slash and colons were percent-encoded by the SDK and decoded by the simulator.
    assert_eq!(
        sim.served()[0].model_id,
        format!("arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}")
    );
}

#[tokio::test]
async fn invoke_model_with_response_stream_ends_with_invocation_metrics() {
    let (client, _) = start().await;
    let body = json!({"prompt": "llama [sim:output_tokens=2]", "max_gen_len": 64});
    let mut out = client
        .invoke_model_with_response_stream()
        .model_id("meta.llama3-1-8b-instruct-v1:0")
        .body(Blob::new(body.to_string()))
        .send()
        .await
        .unwrap();
    let mut chunks = Vec::new();
    while let Some(event) = out.body.recv().await.unwrap() {
        if let ResponseStream::Chunk(part) = event {
            chunks.push(serde_json::from_slice::<Value>(part.bytes().unwrap().as_ref()).unwrap());
        }
    }
    assert_eq!(chunks.len(), 3);
    let metrics = &chunks.last().unwrap()["amazon-bedrock-invocationMetrics"];
    assert_eq!(metrics["outputTokenCount"], 2);
    assert_eq!(metrics["inputTokenCount"], 7);
    assert!(
        chunks[..2]
            .iter()
            .all(|c| c.get("amazon-bedrock-invocationMetrics").is_none())
    );
}

#[tokio::test]
async fn throttling_is_the_sdks_typed_throttling_exception() {
    let (client, _) = start().await;
    let err = client
        .converse()
        .model_id(HAIKU)
        .messages(user("[sim:error=ThrottlingException]"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_throttling_exception(), "{err:?}");
}

#[tokio::test]
async fn the_sdk_retries_a_queued_throttle_and_succeeds() {
    let (client, sim) = start().await;
    sim.configure(Config {
        errors: vec!["ThrottlingException".into()],
        ..Config::default()
    });
    let out = client
        .converse()
        .model_id(HAIKU)
        .messages(user("retry me"))
        .send()
        .await
        .unwrap();
    assert!(out.usage().is_some());
    let served = sim.served();
    assert_eq!(served.len(), 2);
    assert_eq!(served[0].status, 429);
    assert_eq!(served[1].status, 200);
}

#[tokio::test]
async fn unknown_models_and_bad_bodies_are_validation_exceptions() {
    let (client, _) = start().await;
    let err = client
        .converse()
        .model_id("acme.nope-v1")
        .messages(user("hi"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    let err = client
        .invoke_model()
        .model_id(HAIKU)
        .body(Blob::new(r#"{"messages": []}"#))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    assert!(
        err.to_string().contains("anthropic_version")
            || format!("{err:?}").contains("anthropic_version")
    );
}

#[tokio::test]
async fn a_mid_stream_exception_reaches_the_sdk_as_its_typed_stream_error() {
    let (client, sim) = start().await;
    let mut out = client
        .converse_stream()
        .model_id(HAIKU)
        .messages(user(
            "[sim:output_tokens=6][sim:stream_error=ThrottlingException]",
        ))
        .send()
        .await
        .unwrap();
    let mut events = 0;
    let err = loop {
        match out.stream.recv().await {
            Ok(Some(_)) => events += 1,
            Ok(None) => panic!("the stream ended without its exception"),
            Err(e) => break e,
        }
    };
    assert!(events > 0, "some events arrive before the exception");
    assert!(err.into_service_error().is_throttling_exception());
    let served = &sim.served()[0];
    assert!(!served.usage_delivered);
    assert_eq!(served.error.as_deref(), Some("ThrottlingException"));
}

#[tokio::test]
async fn a_truncated_stream_ends_without_its_usage() {
    let (client, sim) = start().await;
    let mut out = client
        .converse_stream()
        .model_id(HAIKU)
        .messages(user("[sim:output_tokens=3][sim:truncate]"))
        .send()
        .await
        .unwrap();
    let mut saw_metadata = false;
    let mut events = 0;
    while let Some(event) = out.stream.recv().await.unwrap() {
        events += 1;
        saw_metadata |= matches!(event, ConverseStreamOutput::Metadata(_));
    }
    assert_eq!(events, 6, "start, 3 deltas, block stop, message stop");
    assert!(!saw_metadata);
    assert!(!sim.served()[0].usage_delivered);
}

#[tokio::test]
async fn simulated_latency_is_reported_in_the_response_metrics() {
    let (client, _) = start().await;
    let out = client
        .converse()
        .model_id(HAIKU)
        .messages(user("[sim:latency_ms=40]"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.metrics().unwrap().latency_ms(), 40);
}

#[tokio::test]
async fn sigv4_signatures_of_known_keys_are_verified_and_a_wrong_secret_is_refused() {
    let secrets: std::collections::HashMap<String, String> =
        [("AKIDTEST".to_owned(), "right".to_owned())].into();
    let (good, sim) = start_with(secrets.clone(), "right").await;
    good.converse()
        .model_id(format!("us.{HAIKU}"))
        .messages(user("hi"))
        .send()
        .await
        .unwrap();
    let body = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}]});
    good.invoke_model()
        .model_id(
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
        )
        .body(Blob::new(body.to_string()))
        .send()
        .await
        .unwrap();
    assert!(
        sim.served().iter().all(|s| s.signature_verified),
        "{:?}",
        sim.served()
    );

    let (bad, _) = start_with(secrets, "wrong").await;
    let err = bad
        .converse()
        .model_id(HAIKU)
        .messages(user("hi"))
        .send()
        .await
        .unwrap_err();
    let service = err.into_service_error();
    assert_eq!(
        aws_sdk_bedrockruntime::error::ProvideErrorMetadata::code(&service),
        Some("InvalidSignatureException")
    );
}
