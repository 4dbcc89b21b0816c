//! Speech sessions (InvokeModelWithBidirectionalStream, Nova Sonic) from the real
//! aws-sdk-bedrockruntime client over HTTP/2 with prior knowledge: open one, send content
//! blocks, read answers, close it.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_sdk_bedrockruntime::error::SdkError;
use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::operation::invoke_model_with_bidirectional_stream::InvokeModelWithBidirectionalStreamError;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::primitives::event_stream::EventStreamSender;
use aws_sdk_bedrockruntime::types::error::{
    InvokeModelWithBidirectionalStreamInputError, InvokeModelWithBidirectionalStreamOutputError,
};
use aws_sdk_bedrockruntime::types::{
    BidirectionalInputPayloadPart, InvokeModelWithBidirectionalStreamInput,
    InvokeModelWithBidirectionalStreamOutput,
};
use base64::Engine;
use futures::channel::mpsc;
use serde_json::{Value, json};

/// Nova Sonic.
pub const SONIC: &str = "amazon.nova-sonic-v1:0";

type Input =
    Result<InvokeModelWithBidirectionalStreamInput, InvokeModelWithBidirectionalStreamInputError>;

/// An error the session's output ended with.
pub type OutputError = SdkError<
    InvokeModelWithBidirectionalStreamOutputError,
    aws_smithy_types::event_stream::RawMessage,
>;

/// A Bedrock runtime client from `source` speaking HTTP/2 with prior knowledge to `endpoint`.
pub async fn speech_client(
    source: std::net::IpAddr,
    endpoint: &str,
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
        .http_client(aigov_example_workload::http2_client_from(source))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_bedrockruntime::Client::new(&config)
}

/// An open session: its input sender and output receiver.
pub struct Session {
    /// The session's input.
    pub input: mpsc::UnboundedSender<Input>,
    /// The session's output.
    pub output: aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver<
        InvokeModelWithBidirectionalStreamOutput,
        InvokeModelWithBidirectionalStreamOutputError,
    >,
    /// Bedrock's request ID (the simulator's record).
    pub request_id: String,
}

fn chunk(event: &Value) -> Input {
    Ok(InvokeModelWithBidirectionalStreamInput::Chunk(
        BidirectionalInputPayloadPart::builder()
            .bytes(Blob::new(event.to_string().into_bytes()))
            .build(),
    ))
}

/// Opens a session on `model` with `maxTokens` and a system prompt; the refusal if the
/// gateway refuses it.
pub async fn try_open(
    client: &aws_sdk_bedrockruntime::Client,
    model: &str,
    max_tokens: u64,
) -> Result<Session, SdkError<InvokeModelWithBidirectionalStreamError>> {
    let (input, rx) = mpsc::unbounded::<Input>();
    let start = [
        json!({"event": {"sessionStart": {"inferenceConfiguration": {"maxTokens": max_tokens, "topP": 0.9, "temperature": 0.7}}}}),
        json!({"event": {"promptStart": {"promptName": "p", "textOutputConfiguration": {"mediaType": "text/plain"},
            "audioOutputConfiguration": {"mediaType": "audio/lpcm", "sampleRateHertz": 24000, "sampleSizeBits": 16, "channelCount": 1, "voiceId": "matthew", "encoding": "base64", "audioType": "SPEECH"}}}}),
    ];
    for event in &start {
        input.unbounded_send(chunk(event)).unwrap();
    }
    content(
        &input,
        "system",
        "SYSTEM",
        "TEXT",
        "You are a helpful assistant.",
    );
    let sent = tokio::time::timeout(
        Duration::from_secs(20),
        client
            .invoke_model_with_bidirectional_stream()
            .model_id(model)
            .body(EventStreamSender::from(rx))
            .send(),
    )
    .await
    .expect("the session opens, or is refused, at once")?;
    let request_id = sent.request_id().expect("Bedrock's request ID").to_owned();
    Ok(Session {
        input,
        output: sent.body,
        request_id,
    })
}

/// Opens a session on Nova Sonic, which the gateway must relay.
pub async fn open(client: &aws_sdk_bedrockruntime::Client, max_tokens: u64) -> Session {
    try_open(client, SONIC, max_tokens)
        .await
        .expect("the gateway relays the session")
}

/// Sends one content block (text, or audio as base64 of `payload`'s bytes).
pub fn content(
    input: &mpsc::UnboundedSender<Input>,
    name: &str,
    role: &str,
    kind: &str,
    payload: &str,
) {
    let ids = json!({"promptName": "p", "contentName": name});
    let mut start = ids.clone();
    start["type"] = kind.into();
    start["role"] = role.into();
    start["interactive"] = true.into();
    let body = match kind {
        "AUDIO" => {
            start["audioInputConfiguration"] = json!({"mediaType": "audio/lpcm", "sampleRateHertz": 16000, "sampleSizeBits": 16, "channelCount": 1, "audioType": "SPEECH", "encoding": "base64"});
            let audio = base64::engine::general_purpose::STANDARD.encode(payload.as_bytes());
            json!({"event": {"audioInput": merge(&ids, json!({"content": audio}))}})
        }
        _ => {
            start["textInputConfiguration"] = json!({"mediaType": "text/plain"});
            json!({"event": {"textInput": merge(&ids, json!({"content": payload}))}})
        }
    };
    for event in [
        json!({"event": {"contentStart": start}}),
        body,
        json!({"event": {"contentEnd": ids}}),
    ] {
        // A session already ended (its budget could not give the next tranche) drops what is
        // sent; its output stream says why.
        let _ = input.unbounded_send(chunk(&event));
    }
}

fn merge(a: &Value, b: Value) -> Value {
    let mut out = a.clone();
    if let (Some(o), Value::Object(b)) = (out.as_object_mut(), b) {
        o.extend(b);
    }
    out
}

/// Reads output events until `completions` completions ended: the event names seen, or
/// the error the stream ended with.
pub async fn read_turns(
    session: &mut Session,
    completions: usize,
) -> Result<
    Vec<String>,
    SdkError<
        InvokeModelWithBidirectionalStreamOutputError,
        aws_smithy_types::event_stream::RawMessage,
    >,
> {
    let mut names = Vec::new();
    let mut ended = 0;
    while ended < completions {
        let event = tokio::time::timeout(Duration::from_secs(30), session.output.recv())
            .await
            .expect("output within 30 s")?;
        let Some(InvokeModelWithBidirectionalStreamOutput::Chunk(part)) = event else {
            panic!("the output ended after {names:?}");
        };
        let json: Value =
            serde_json::from_slice(part.bytes().expect("bytes").as_ref()).expect("a JSON event");
        let name = json["event"]
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .unwrap_or_default();
        ended += usize::from(name == "completionEnd");
        names.push(name);
    }
    Ok(names)
}

/// Ends the session as a client does and reads the output to its end.
pub async fn close(mut session: Session) {
    for event in [
        json!({"event": {"promptEnd": {"promptName": "p"}}}),
        json!({"event": {"sessionEnd": {}}}),
    ] {
        // Ended already: its output stream says why.
        let _ = session.input.unbounded_send(chunk(&event));
    }
    session.input.close_channel();
    while let Some(_event) = tokio::time::timeout(Duration::from_secs(30), session.output.recv())
        .await
        .expect("the output ends")
        .expect("no error")
    {}
}
