//! InvokeModelWithBidirectionalStream (speech sessions over HTTP/2) cannot be metered by the
//! gateway, which does not relay bidirectional streams: the real `aws-sdk-bedrockruntime`
//! client opening a session through the gateway is refused at once, before its never-ending
//! input is read, with its typed `AccessDeniedException` saying why, and nothing is charged.

use std::time::Duration;

use aigov_e2e::aigov::{Aigov, Options};
use aigov_e2e::bedrock::{client_from, pod, pod_ip};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::namespace;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::primitives::event_stream::EventStreamSender;
use aws_sdk_bedrockruntime::types::{
    BidirectionalInputPayloadPart, InvokeModelWithBidirectionalStreamInput,
};
use futures::StreamExt;

#[tokio::test]
async fn a_bidirectional_stream_is_refused_at_once_saying_it_cannot_be_metered() {
    let ns = namespace("gw-bidi");
    budget(&ns, "team", "  limit: '1.00'\n");
    let ip = pod_ip();
    pod(&ns, "speech", "default", &[], ip);
    let aigov = Aigov::start(Options::all(&ns), true);
    let client = client_from(ip, &aigov.gateway, false).await;
    let event = br#"{"event":{"sessionStart":{"inferenceConfiguration":{"maxTokens":1024}}}}"#;
    let first = InvokeModelWithBidirectionalStreamInput::Chunk(
        BidirectionalInputPayloadPart::builder()
            .bytes(Blob::new(&event[..]))
            .build(),
    );
    // A live session: the input stays open after its first event.
    let input = futures::stream::iter([Ok(first)]).chain(futures::stream::pending());
    let sent = tokio::time::timeout(
        Duration::from_secs(20),
        client
            .invoke_model_with_bidirectional_stream()
            .model_id("amazon.nova-sonic-v1:0")
            .body(EventStreamSender::from(input))
            .send(),
    )
    .await
    .expect("refused at once, not after the input ends");
    let error = sent.expect_err("the gateway refuses it");
    let error = aws_sdk_bedrockruntime::Error::from(error);
    match &error {
        aws_sdk_bedrockruntime::Error::AccessDeniedException(e) => {
            let message = e.message().unwrap_or_default();
            assert!(
                message.contains("InvokeModelWithBidirectionalStream")
                    && message.contains("cannot be metered"),
                "{message}"
            );
        }
        other => panic!("expected AccessDeniedException, got {other:?}"),
    }
    let status = wait_status(&ns, "team", Duration::from_secs(10), |s| {
        s["phase"] == "Active"
    });
    let spent = status["spent"].as_str().unwrap_or("0");
    assert_eq!(
        aigov_api::Usd::parse(spent).unwrap(),
        aigov_api::Usd::ZERO,
        "nothing charged: {status}"
    );
}
