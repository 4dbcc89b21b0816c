//! AWS event-stream framing of the simulator's stream events.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use bytes::Bytes;

/// One event frame: `:event-type`, `:content-type` and `:message-type: event`.
pub fn event(event_type: &str, payload: &serde_json::Value) -> Bytes {
    frame(
        vec![
            Header::new(
                ":event-type",
                HeaderValue::String(event_type.to_owned().into()),
            ),
            Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
            Header::new(":message-type", HeaderValue::String("event".into())),
        ],
        payload.to_string(),
    )
}

/// An InvokeModelWithResponseStream `chunk` event carrying a model-native JSON chunk.
pub fn chunk(native: &serde_json::Value) -> Bytes {
    let encoded = base64::engine::general_purpose::STANDARD.encode(native.to_string());
    event(
        "chunk",
        &serde_json::json!({ "bytes": encoded, "p": "abcdefgh" }),
    )
}

/// An exception frame (`:message-type: exception`), as Bedrock sends mid-stream.
pub fn exception(member: &str, message: &str) -> Bytes {
    frame(
        vec![
            Header::new(
                ":exception-type",
                HeaderValue::String(member.to_owned().into()),
            ),
            Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
            Header::new(":message-type", HeaderValue::String("exception".into())),
        ],
        serde_json::json!({ "message": message }).to_string(),
    )
}

fn frame(headers: Vec<Header>, payload: String) -> Bytes {
    let message = Message::new_from_parts(headers, payload);
    let mut buffer = Vec::new();
    write_message_to(&message, &mut buffer).expect("a small message always frames");
    Bytes::from(buffer)
}
