//! Metering the server-sent-event streams of bedrock-mantle's APIs as they pass: each complete
//! event is read for usage ([`aigov_api::mantle::event_usage`]) and forwarded; only an
//! incomplete event is held. When the gateway itself asked a Chat Completions stream for its
//! usage (`stream_options.include_usage`, which the caller had not set), the usage chunk is
//! read and not forwarded, so the caller sees the stream it asked for.

use aigov_api::mantle::{Api, EventUsage, event_usage};
use aigov_api::pricing::Usage;
use bytes::{Bytes, BytesMut};

/// The largest event held while it is incomplete (Bedrock's are far smaller); past it the
/// stream is relayed unread and charged the estimate.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// Watches one SSE stream go by.
#[derive(Debug)]
pub struct SseMeter {
    api: Api,
    buffer: BytesMut,
    usage: Option<Usage>,
    so_far: Usage,
    strip_usage_chunk: bool,
    broken: bool,
    output_seen: u64,
    /// The stream's last event went by (`[DONE]`, `message_stop`, a terminal Responses event).
    ended: bool,
}

impl SseMeter {
    /// A meter for a stream of `api`; `strip_usage_chunk` when the gateway added
    /// `include_usage` to a Chat Completions request.
    pub fn new(api: Api, strip_usage_chunk: bool) -> SseMeter {
        SseMeter {
            api,
            buffer: BytesMut::new(),
            usage: None,
            so_far: Usage::default(),
            strip_usage_chunk,
            broken: false,
            output_seen: 0,
            ended: false,
        }
    }

    /// Feeds the next bytes; returns what to forward to the client now (complete events).
    pub fn feed(&mut self, bytes: &[u8]) -> Bytes {
        if self.broken {
            return Bytes::copy_from_slice(bytes);
        }
        self.buffer.extend_from_slice(bytes);
        let mut out = BytesMut::new();
        while let Some(end) = event_end(&self.buffer) {
            let event = self.buffer.split_to(end);
            if self.observe(&event) {
                out.extend_from_slice(&event);
            }
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            self.broken = true;
            out.extend_from_slice(&std::mem::take(&mut self.buffer));
        }
        out.freeze()
    }

    /// What is still held when the stream ends (an event without its blank line).
    pub fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.buffer);
        if !rest.is_empty() && self.observe(&rest) {
            return rest.freeze();
        }
        Bytes::new()
    }

    /// Reads one complete event; false when it is not to be forwarded.
    fn observe(&mut self, event: &[u8]) -> bool {
        let data = event_data(event);
        if data == b"[DONE]" || is_last_event(&data) {
            self.ended = true;
        }
        if data.is_empty() || data == b"[DONE]" {
            return true;
        }
        self.output_seen = self.output_seen.saturating_add(text_bytes(&data));
        match event_usage(self.api, &data, self.so_far) {
            EventUsage::Final(u) => {
                self.usage = Some(u);
                !(self.strip_usage_chunk && is_usage_only_chunk(&data))
            }
            EventUsage::Partial(u) => {
                self.so_far = u;
                // The output count arrives with `message_delta`: only then is it final.
                if is_message_delta(&data) {
                    self.usage = Some(u);
                }
                true
            }
            EventUsage::None => true,
        }
    }

    /// The usage the stream reported, once it did.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// True once the stream's last event went by: a stream abandoned by its client is read
    /// to here (Messages' `message_stop` follows the `message_delta` that has the usage).
    pub fn ended(&self) -> bool {
        self.ended || self.broken
    }

    /// An upper bound on the output tokens that went by: the bytes of every string in the
    /// events' data.
    pub fn output_seen(&self) -> u64 {
        self.output_seen
    }

    /// Bytes held for an incomplete event.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

/// Where the first complete event in `buffer` ends (after its blank line).
fn event_end(buffer: &[u8]) -> Option<usize> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The event's `data:` lines joined by newlines, as the SSE specification reads them.
fn event_data(event: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(value) = line.strip_prefix(b"data:") {
            if !data.is_empty() {
                data.push(b'\n');
            }
            data.extend_from_slice(value.strip_prefix(b" ").unwrap_or(value));
        }
    }
    data
}

/// A Chat Completions chunk that carries only usage (`choices: []`).
fn is_usage_only_chunk(data: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| {
            v.get("choices")
                .and_then(|c| c.as_array())
                .map(Vec::is_empty)
        })
        .unwrap_or(false)
}

/// Messages' `message_stop`, or a Responses stream's terminal event.
fn is_last_event(data: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    matches!(
        value.get("type").and_then(|t| t.as_str()),
        Some("message_stop" | "response.completed" | "response.incomplete" | "response.failed")
    )
}

fn is_message_delta(data: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .is_some_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("message_delta"))
}

/// The bytes of every string in a JSON document (the whole document when it is not JSON).
fn text_bytes(data: &[u8]) -> u64 {
    fn walk(v: &serde_json::Value) -> u64 {
        match v {
            serde_json::Value::String(s) => s.len() as u64,
            serde_json::Value::Array(items) => items.iter().map(walk).sum(),
            serde_json::Value::Object(map) => map.values().map(walk).sum(),
            _ => 0,
        }
    }
    serde_json::from_slice(data).map_or(data.len() as u64, |v| walk(&v))
}

/// Adds `stream_options.include_usage: true` to a streaming Chat Completions request that did
/// not ask for its usage (so the stream reports it); returns the body to send and whether the
/// gateway added it (then the usage chunk is not shown to the caller).
pub fn ask_for_usage(body: &serde_json::Value) -> Option<serde_json::Value> {
    let asked = body
        .pointer("/stream_options/include_usage")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if asked || !aigov_api::mantle::is_stream(body) {
        return None;
    }
    let mut body = body.clone();
    let object = body.as_object_mut()?;
    let options = object
        .entry("stream_options")
        .or_insert_with(|| serde_json::json!({}));
    if !options.is_object() {
        *options = serde_json::json!({});
    }
    options
        .as_object_mut()?
        .insert("include_usage".into(), serde_json::Value::Bool(true));
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat_stream() -> String {
        let mut s = String::new();
        for w in ["a", "b"] {
            s += &format!(
                "data: {}\n\n",
                json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": w}}]})
            );
        }
        s += &format!(
            "data: {}\n\n",
            json!({"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})
        );
        s + "data: [DONE]\n\n"
    }

    #[test]
    fn a_chat_stream_is_metered_byte_by_byte_and_forwarded_whole() {
        let stream = chat_stream();
        let mut meter = SseMeter::new(Api::ChatCompletions, false);
        let mut out = Vec::new();
        for b in stream.as_bytes() {
            out.extend_from_slice(&meter.feed(std::slice::from_ref(b)));
        }
        out.extend_from_slice(&meter.finish());
        assert_eq!(String::from_utf8(out).unwrap(), stream);
        let u = meter.usage().unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (9, 2));
        assert_eq!(meter.buffered(), 0);
    }

    #[test]
    fn the_usage_chunk_the_gateway_asked_for_is_read_but_not_forwarded() {
        let stream = chat_stream();
        let mut meter = SseMeter::new(Api::ChatCompletions, true);
        let mut out = Vec::new();
        for piece in stream.as_bytes().chunks(13) {
            out.extend_from_slice(&meter.feed(piece));
        }
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("usage"), "{out}");
        assert!(out.contains("\"content\":\"b\"") && out.ends_with("data: [DONE]\n\n"));
        assert_eq!(meter.usage().unwrap().output_tokens, 2);
    }

    #[test]
    fn a_messages_stream_is_final_at_message_delta() {
        let stream = "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":7,\"output_tokens\":1}}}\r\n\r\nevent: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"hey\"}}\r\n\r\n";
        let mut meter = SseMeter::new(Api::Messages, false);
        meter.feed(stream.as_bytes());
        assert!(meter.usage().is_none(), "no output count yet");
        meter.feed(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":3}}\n\n");
        let u = meter.usage().unwrap();
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.output_tokens),
            (5, 7, 3)
        );
        assert!(!meter.ended(), "message_stop is still to come");
        meter.feed(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        assert!(meter.ended());
    }

    #[test]
    fn include_usage_is_added_only_to_streams_that_did_not_ask() {
        let added = ask_for_usage(&json!({"model": "m", "stream": true})).unwrap();
        assert_eq!(added["stream_options"]["include_usage"], true);
        let kept = ask_for_usage(
            &json!({"stream": true, "stream_options": {"include_usage": false, "x": 1}}),
        )
        .unwrap();
        assert_eq!(
            kept["stream_options"],
            json!({"include_usage": true, "x": 1})
        );
        assert!(
            ask_for_usage(&json!({"stream": true, "stream_options": {"include_usage": true}}))
                .is_none()
        );
        assert!(ask_for_usage(&json!({"stream": false})).is_none());
    }

    #[test]
    fn garbage_never_panics_and_holds_at_most_one_event() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2_000 {
            let mut meter = SseMeter::new(Api::Messages, true);
            let bytes: Vec<u8> = (0..(seed % 200))
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    [b'\n', b'd', b'a', b't', b':', b'{', b'}', b' '][(seed % 8) as usize]
                })
                .collect();
            meter.feed(&bytes);
            meter.finish();
            assert!(meter.buffered() <= MAX_EVENT_BYTES);
        }
    }
}
