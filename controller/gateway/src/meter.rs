//! Reading the real usage out of Bedrock's responses, as they pass: the Converse body's
//! `usage`, InvokeModel's token headers, ConverseStream's final `metadata` event, and the last
//! InvokeModelWithResponseStream chunk's `amazon-bedrock-invocationMetrics`. Streams are fed
//! frame by frame; only an incomplete frame is ever held.

use aigov_api::pricing::Usage;
use aigov_api::usage;
use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::{HeaderValue, Message};
use base64::Engine;
use bytes::BytesMut;

use crate::route::Operation;
use crate::settle::Reading;
use crate::sse::SseMeter;

/// The largest event-stream message the meter decodes (Bedrock's messages are far smaller).
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// Watches an event stream go by and keeps the usage it reports.
#[derive(Debug)]
pub struct StreamMeter {
    operation: Operation,
    buffer: BytesMut,
    usage: Option<Usage>,
    /// The guardrail cost the `metadata` event's trace reported.
    guardrail: Option<aigov_api::Usd>,
    broken: bool,
    /// Bytes of generated text seen in content events: an upper bound on the output tokens
    /// that went by (no tokenizer makes more tokens than bytes), for the estimate of a stream
    /// that ends without usage.
    output_seen: u64,
}

impl StreamMeter {
    /// A meter for one streaming response.
    pub fn new(operation: Operation) -> StreamMeter {
        StreamMeter {
            operation,
            buffer: BytesMut::new(),
            usage: None,
            guardrail: None,
            broken: false,
            output_seen: 0,
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        self.buffer.extend_from_slice(bytes);
        // Each message starts with its total length (big-endian u32), CRCs checked on decode.
        while self.buffer.len() >= 4 {
            let total = u32::from_be_bytes([
                self.buffer[0],
                self.buffer[1],
                self.buffer[2],
                self.buffer[3],
            ]) as usize;
            if !(16..=MAX_FRAME_BYTES).contains(&total) {
                self.break_off();
                return;
            }
            if self.buffer.len() < total {
                return;
            }
            let frame = self.buffer.split_to(total);
            match read_message_from(&frame[..]) {
                Ok(message) => self.observe(&message),
                Err(_) => {
                    self.break_off();
                    return;
                }
            }
        }
    }

    fn break_off(&mut self) {
        self.broken = true;
        self.buffer = BytesMut::new();
    }

    fn observe(&mut self, message: &Message) {
        let event_type = message.headers().iter().find_map(|h| {
            (h.name().as_str() == ":event-type")
                .then(|| match h.value() {
                    HeaderValue::String(s) => Some(s.as_str().to_owned()),
                    _ => None,
                })
                .flatten()
        });
        let payload = message.payload();
        let found = match (self.operation, event_type.as_deref()) {
            (Operation::ConverseStream, Some("metadata")) => {
                self.guardrail = crate::guardrail::traced_cost(payload);
                usage::from_converse_stream_metadata(payload).ok()
            }
            (Operation::ConverseStream, Some("contentBlockDelta")) => {
                let delta = serde_json::from_slice::<serde_json::Value>(payload)
                    .ok()
                    .and_then(|v| v.get("delta").map(text_bytes));
                // An undecodable delta counts whole: still an upper bound.
                self.add_output(delta.unwrap_or(payload.len() as u64));
                None
            }
            (Operation::InvokeModelWithResponseStream, Some("chunk")) => {
                let chunk = read_chunk(payload);
                self.add_output(chunk.text.unwrap_or(payload.len() as u64));
                if chunk.guardrail.is_some() {
                    self.guardrail = chunk.guardrail;
                }
                chunk.usage
            }
            _ => None,
        };
        if found.is_some() {
            self.usage = found;
        }
    }

    /// The usage the stream reported, if it got that far.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// An upper bound on the output tokens that went by: the bytes of generated text.
    pub fn output_seen(&self) -> u64 {
        self.output_seen
    }

    fn add_output(&mut self, bytes: u64) {
        self.output_seen = self.output_seen.saturating_add(bytes);
    }

    /// Bytes held for an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The guardrail cost the stream's trace reported, if any.
    pub fn guardrail_cost(&self) -> Option<aigov_api::Usd> {
        self.guardrail
    }
}

/// What one InvokeModelWithResponseStream chunk tells.
#[derive(Default)]
struct ChunkRead {
    /// Its usage (the last chunk has it).
    usage: Option<Usage>,
    /// The bytes of text in its model-native JSON (every string in it: an upper bound on its
    /// output tokens).
    text: Option<u64>,
    /// The guardrail cost its `amazon-bedrock-trace` reports (the last chunk's, when the
    /// request's headers named a guardrail).
    guardrail: Option<aigov_api::Usd>,
}

fn read_chunk(payload: &[u8]) -> ChunkRead {
    #[derive(serde::Deserialize)]
    struct Chunk {
        bytes: String,
    }
    let Some(native) = serde_json::from_slice::<Chunk>(payload).ok().and_then(|c| {
        base64::engine::general_purpose::STANDARD
            .decode(c.bytes)
            .ok()
    }) else {
        return ChunkRead::default();
    };
    let value = serde_json::from_slice::<serde_json::Value>(&native).ok();
    ChunkRead {
        usage: usage::from_stream_chunk(&native).ok().flatten(),
        text: value.as_ref().map(text_bytes),
        guardrail: value.as_ref().and_then(crate::guardrail::traced_cost_of),
    }
}

/// The bytes of every string in `value`.
fn text_bytes(value: &serde_json::Value) -> u64 {
    match value {
        serde_json::Value::String(s) => s.len() as u64,
        serde_json::Value::Array(items) => items.iter().map(text_bytes).sum(),
        serde_json::Value::Object(map) => map.values().map(text_bytes).sum(),
        _ => 0,
    }
}

/// Usage from a complete (non-streaming) response: the Converse body, InvokeModel's headers,
/// a mantle API's body.
pub fn response_usage(
    operation: Operation,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Option<Usage> {
    match operation {
        Operation::Converse => usage::from_converse_body(body).ok(),
        Operation::InvokeModel => {
            usage::from_invoke_headers(|name| headers.get(name).and_then(|v| v.to_str().ok())).ok()
        }
        other => other
            .mantle_api()
            .and_then(|api| aigov_api::mantle::body_usage(api, body).ok()),
    }
}

/// The meter of a streaming response: AWS event stream or server-sent events.
#[derive(Debug)]
pub enum Meter {
    /// ConverseStream, InvokeModelWithResponseStream.
    Events(StreamMeter),
    /// Chat Completions, Responses, Messages.
    Sse(SseMeter),
}

impl Meter {
    /// The meter for a streaming `reading`.
    pub fn for_reading(reading: Reading) -> Meter {
        match reading {
            Reading::Sse {
                api,
                strip_usage_chunk,
            } => Meter::Sse(SseMeter::new(api, strip_usage_chunk)),
            Reading::EventStream(operation) | Reading::Whole(operation) => {
                Meter::Events(StreamMeter::new(operation))
            }
        }
    }

    /// Feeds the next bytes; returns what to forward now.
    pub fn feed(&mut self, data: bytes::Bytes) -> bytes::Bytes {
        match self {
            Meter::Events(m) => {
                m.feed(&data);
                data
            }
            Meter::Sse(m) => m.feed(&data),
        }
    }

    /// What is left to forward when the stream ends.
    pub fn finish(&mut self) -> bytes::Bytes {
        match self {
            Meter::Events(_) => bytes::Bytes::new(),
            Meter::Sse(m) => m.finish(),
        }
    }

    /// The usage reported, once it was.
    pub fn usage(&self) -> Option<Usage> {
        match self {
            Meter::Events(m) => m.usage(),
            Meter::Sse(m) => m.usage(),
        }
    }

    /// The guardrail cost the stream's trace reported (ConverseStream), if any.
    pub fn guardrail_cost(&self) -> Option<aigov_api::Usd> {
        match self {
            Meter::Events(m) => m.guardrail_cost(),
            Meter::Sse(_) => None,
        }
    }

    /// True when an abandoned stream has been read far enough: an event stream once its
    /// usage arrived (the `metadata` event and the last chunk are its last), an SSE stream
    /// once its last event went by.
    pub fn finished(&self) -> bool {
        match self {
            Meter::Events(m) => m.usage().is_some(),
            Meter::Sse(m) => m.ended(),
        }
    }

    /// The output seen at most, in tokens.
    pub fn output_seen(&self) -> u64 {
        match self {
            Meter::Events(m) => m.output_seen(),
            Meter::Sse(m) => m.output_seen(),
        }
    }
}

/// Feeds `data` to every usage parser, as the fuzz target and the robustness test do: the
/// stream meters whole and split at every 7th byte, the Converse body, the stream chunk, and
/// InvokeModel headers. Must never panic, and a meter never holds more than one frame.
pub fn exercise(data: &[u8]) {
    for operation in [
        Operation::ConverseStream,
        Operation::InvokeModelWithResponseStream,
    ] {
        let mut whole = StreamMeter::new(operation);
        whole.feed(data);
        let mut split = StreamMeter::new(operation);
        for piece in data.chunks(7) {
            split.feed(piece);
        }
        assert_eq!(
            whole.usage(),
            split.usage(),
            "framing must not depend on how bytes arrive"
        );
        assert!(split.buffered() <= MAX_FRAME_BYTES);
    }
    let _ = usage::from_converse_body(data);
    let _ = usage::from_converse_stream_metadata(data);
    let _ = usage::from_stream_chunk(data);
    let _ = read_chunk(data);
    let _ = serde_json::from_slice::<serde_json::Value>(data).map(|v| text_bytes(&v));
    let text = String::from_utf8_lossy(data);
    let _ = usage::from_invoke_headers(|_| Some(text.as_ref()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::Header;
    use bytes::Bytes;

    fn event(kind: &str, payload: &str) -> Vec<u8> {
        let message = Message::new(Bytes::from(payload.to_owned()))
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(kind.to_owned().into()),
            ))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ));
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    }

    #[test]
    fn converse_stream_usage_comes_from_metadata_even_byte_by_byte() {
        let mut stream = event("messageStart", r#"{"role":"assistant"}"#);
        stream.extend(event(
            "metadata",
            r#"{"usage":{"inputTokens":10,"outputTokens":20,"totalTokens":30,"cacheReadInputTokens":5},"metrics":{"latencyMs":1}}"#,
        ));
        let mut meter = StreamMeter::new(Operation::ConverseStream);
        for b in &stream {
            meter.feed(std::slice::from_ref(b));
        }
        let usage = meter.usage().unwrap();
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens
            ),
            (10, 20, 5)
        );
        assert_eq!(meter.buffered(), 0);
    }

    #[test]
    fn the_output_seen_is_the_bytes_of_generated_text_in_content_events() {
        let mut meter = StreamMeter::new(Operation::ConverseStream);
        for word in ["w0 ", "w1 ", "héllo"] {
            meter.feed(&event(
                "contentBlockDelta",
                &format!(r#"{{"contentBlockIndex":0,"delta":{{"text":"{word}"}}}}"#),
            ));
        }
        meter.feed(&event("messageStop", r#"{"stopReason":"end_turn"}"#));
        assert_eq!(meter.output_seen(), 3 + 3 + 6, "bytes, not characters");
        assert!(meter.usage().is_none());
        let native = r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"abc"}}"#;
        let encoded = base64::engine::general_purpose::STANDARD.encode(native);
        let mut meter = StreamMeter::new(Operation::InvokeModelWithResponseStream);
        meter.feed(&event("chunk", &format!(r#"{{"bytes":"{encoded}"}}"#)));
        assert_eq!(
            meter.output_seen(),
            ("content_block_delta".len() + "text_delta".len() + 3) as u64,
            "every string of the native chunk counts: an upper bound"
        );
    }

    #[test]
    fn invoke_stream_usage_comes_from_the_last_chunk() {
        let native = r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":7,"outputTokenCount":9,"invocationLatency":1,"firstByteLatency":1}}"#;
        let encoded = base64::engine::general_purpose::STANDARD.encode(native);
        let mut meter = StreamMeter::new(Operation::InvokeModelWithResponseStream);
        meter.feed(&event("chunk", &format!(r#"{{"bytes":"{encoded}"}}"#)));
        let usage = meter.usage().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (7, 9));
    }

    #[test]
    fn mutated_streams_and_random_bytes_never_panic() {
        let mut stream = event("messageStart", r#"{"role":"assistant"}"#);
        stream.extend(event(
            "metadata",
            r#"{"usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}"#,
        ));
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5_000 {
            let mut bytes = stream.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
            bytes.truncate((next() as usize) % (bytes.len() + 1));
            exercise(&bytes);
            let random: Vec<u8> = (0..(next() % 64)).map(|_| next() as u8).collect();
            exercise(&random);
        }
    }

    #[test]
    fn garbage_breaks_the_meter_without_holding_memory() {
        let mut meter = StreamMeter::new(Operation::ConverseStream);
        meter.feed(&[0xff; 64]);
        meter.feed(&[0x00; 1 << 16]);
        assert!(meter.usage().is_none());
        assert_eq!(meter.buffered(), 0);
    }
}
