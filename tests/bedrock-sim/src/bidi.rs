//! InvokeModelWithBidirectionalStream (Nova Sonic) over HTTP/2: the request's SigV4 signature
//! (payload hash of an empty body, as the SDKs sign it) and every input message's chained
//! signature are checked (for the keys whose secrets the simulator knows), the inner Nova Sonic
//! events are read, and each user turn (`contentEnd` of a USER content) is answered with a
//! completion: a text transcript and audio, with a `usageEvent` of cumulative totals after
//! the input and after every audio chunk.
//!
//! Tokens are deterministic: text input at four characters a token, speech input at
//! [`AUDIO_BYTES_PER_TOKEN`] bytes of decoded audio a token (50 a second of 16 kHz 16-bit mono
//! LPCM), text output one token a word of the transcript, speech output the
//! `[sim:output_tokens=N]` of the turn's text (else the configured default), capped by the
//! session's `maxTokens`, in chunks of [`AUDIO_CHUNK_TOKENS`]. `[sim:error=X]` answers the
//! turn with exception `X` (camel-cased as the event stream names its members),
//! `[sim:chunk_delay_ms=N]` paces the chunks. The served call is recorded when the session
//! ends, with the totals it last reported.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aigov_api::units::{SessionUsage, speech_cost, speech_rate};
use aws_credential_types::Credentials;
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder, read_message_from};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Channel};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::directives;
use crate::server::{Body, Served, Simulator};
use crate::stream;

/// Bytes of decoded input audio per speech token.
pub const AUDIO_BYTES_PER_TOKEN: u64 = 640;
/// Speech tokens per `audioOutput` chunk.
pub const AUDIO_CHUNK_TOKENS: u64 = 256;
/// A session's output bound per response when `sessionStart` sets none.
pub const DEFAULT_MAX_TOKENS: u64 = 1024;
/// The transcript each turn answers with.
const ANSWER: &str = "This is the simulated spoken answer.";

/// How the input's message signatures are checked.
struct Chain {
    credentials: Credentials,
    region: String,
    service: String,
    running: String,
}

impl Chain {
    /// Checks that `outer`'s `:chunk-signature` is the next link of the chain.
    fn check(&mut self, outer: &Message) -> bool {
        let mut signature = None;
        let mut date = None;
        for h in outer.headers() {
            match (h.name().as_str(), h.value()) {
                (":chunk-signature", HeaderValue::ByteArray(b)) => signature = Some(hex(b)),
                (":date", HeaderValue::Timestamp(t)) => date = SystemTime::try_from(*t).ok(),
                _ => {}
            }
        }
        let (Some(signature), Some(date)) = (signature, date) else {
            return false;
        };
        let identity = self.credentials.clone().into();
        let Ok(params) = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(date)
            .settings(())
            .build()
        else {
            return false;
        };
        let signed = match outer.payload().is_empty() {
            true => aws_sigv4::event_stream::sign_empty_message(&self.running, &params),
            false => match read_message_from(&outer.payload()[..]) {
                Ok(inner) => aws_sigv4::event_stream::sign_message(&inner, &self.running, &params),
                Err(_) => return false,
            },
        };
        let Ok(expected) = signed.map(|s| s.into_parts().1) else {
            return false;
        };
        self.running = expected.clone();
        expected == signature
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One session's state.
struct Session {
    served: Served,
    max_tokens: u64,
    totals: SessionUsage,
    ids: (String, String),
    content: Content,
    default_output_tokens: u64,
    chunk_delay: Duration,
    output: http_body_util::channel::Sender<Bytes>,
    completions: u64,
}

/// The content being received.
#[derive(Default)]
struct Content {
    role: String,
    text: String,
    audio_bytes: u64,
}

impl Simulator {
    /// Serves `POST /model/{id}/invoke-with-bidirectional-stream`.
    pub(crate) async fn bidirectional(
        self: Arc<Self>,
        req: Request<Incoming>,
        mut served: Served,
    ) -> Response<Body> {
        let headers = req.headers().clone();
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        if served.signed_for.is_empty() {
            return self.refuse_served(
                served,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            );
        }
        match self.verify_signature("POST", &path, &headers, b"") {
            Ok(verified) => served.signature_verified = verified,
            Err(_) => {
                return self.refuse_served(served, "InvalidSignatureException",
                    "The request signature we calculated does not match the signature you provided.");
            }
        }
        if speech_rate(&served.model_id).is_none() {
            return self.refuse_served(
                served,
                "ValidationException",
                "The provided model doesn't support bidirectional streaming.",
            );
        }
        let config = self.current_config();
        if let Some(code) = self.next_queued_error() {
            return self.refuse_served(served, &code, &format!("Simulated {code}."));
        }
        let chain = served
            .signature_verified
            .then(|| self.chain_for(&headers))
            .flatten();
        let (output, body) = Channel::<Bytes>::new(8);
        let request_id = served.request_id.clone();
        let session = Session {
            served,
            max_tokens: DEFAULT_MAX_TOKENS,
            totals: SessionUsage::default(),
            ids: (String::new(), String::new()),
            content: Content::default(),
            default_output_tokens: config.default_output_tokens,
            chunk_delay: Duration::from_millis(config.chunk_delay_ms),
            output,
            completions: 0,
        };
        let sim = self.clone();
        tokio::spawn(async move {
            let served = session.run(req.into_body(), chain).await;
            sim.record_served(served);
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/vnd.amazon.eventstream")
            .header("x-amzn-requestid", request_id)
            .body(body.boxed())
            .expect("valid response")
    }

    /// The chain the input's signatures must follow: seeded with the request's signature,
    /// signed with the secret of the key that signed it.
    fn chain_for(&self, headers: &http::HeaderMap) -> Option<Chain> {
        let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        let parsed = crate::sigv4::parse(auth)?;
        let secret = self.secret_of(parsed.access_key)?;
        Some(Chain {
            credentials: Credentials::new(parsed.access_key, secret, None, None, "sim"),
            region: parsed.region.to_owned(),
            service: parsed.service.to_owned(),
            running: parsed.signature.to_owned(),
        })
    }
}

impl Session {
    /// Reads the input to its end (or until it breaks or fails its signature), answering as
    /// it goes; returns the served call with the totals last reported.
    async fn run(mut self, mut input: Incoming, mut chain: Option<Chain>) -> Served {
        let mut buffer = BytesMut::new();
        let mut decoder = MessageFrameDecoder::new();
        'read: loop {
            match decoder.decode_frame(&mut buffer) {
                Ok(DecodedFrame::Complete(outer)) => {
                    if chain.as_mut().is_some_and(|c| !c.check(&outer)) {
                        self.fail("InvalidSignatureException", "validationException",
                            "The request signature we calculated does not match the signature you provided.").await;
                        break 'read;
                    }
                    if outer.payload().is_empty() {
                        break 'read; // the signed end of the input
                    }
                    let Ok(inner) = read_message_from(&outer.payload()[..]) else {
                        self.fail(
                            "ValidationException",
                            "validationException",
                            "Malformed input event.",
                        )
                        .await;
                        break 'read;
                    };
                    if !self.on_event(&inner).await {
                        break 'read;
                    }
                    continue;
                }
                Ok(DecodedFrame::Incomplete) => {}
                Err(_) => {
                    self.fail(
                        "ValidationException",
                        "validationException",
                        "Malformed event stream.",
                    )
                    .await;
                    break 'read;
                }
            }
            match input.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buffer.extend_from_slice(&data);
                    }
                }
                _ => break 'read,
            }
        }
        self.served.input_tokens = self.totals.text_input;
        self.served.output_tokens = self.totals.text_output;
        self.served.speech_input_tokens = self.totals.speech_input;
        self.served.speech_output_tokens = self.totals.speech_output;
        if let Some(rate) = speech_rate(&self.served.model_id) {
            self.served.unit_cost = speech_cost(rate, &self.totals).to_api_string();
        }
        self.served
    }

    /// Sends an exception and records the error.
    async fn fail(&mut self, code: &str, member: &str, message: &str) {
        self.served.error = Some(code.to_owned());
        let _ = self
            .output
            .send_data(stream::exception(member, message))
            .await;
    }

    /// Handles one Nova Sonic input event; false once the session is over.
    async fn on_event(&mut self, inner: &Message) -> bool {
        let Some(event) = chunk_json(inner) else {
            self.fail(
                "ValidationException",
                "validationException",
                "Unsupported input event.",
            )
            .await;
            return false;
        };
        let Some((name, body)) = event
            .get("event")
            .and_then(Value::as_object)
            .and_then(|m| m.iter().next())
        else {
            return true;
        };
        match name.as_str() {
            "sessionStart" => {
                if let Some(m) = body
                    .pointer("/inferenceConfiguration/maxTokens")
                    .and_then(Value::as_u64)
                {
                    self.max_tokens = m;
                }
            }
            "promptStart" => self.ids.0 = str_of(body, "promptName"),
            "contentStart" => {
                self.content = Content {
                    role: str_of(body, "role"),
                    ..Content::default()
                };
            }
            "textInput" => self.content.text.push_str(&str_of(body, "content")),
            "audioInput" => {
                let audio = base64::engine::general_purpose::STANDARD
                    .decode(str_of(body, "content"))
                    .map_or(0, |a| a.len() as u64);
                self.content.audio_bytes += audio;
            }
            "contentEnd" => return self.content_end().await,
            "sessionEnd" => return false,
            _ => {}
        }
        true
    }

    /// A content block ended: its input is counted, and a user's turn is answered.
    async fn content_end(&mut self) -> bool {
        let content = std::mem::take(&mut self.content);
        self.totals.text_input += crate::prompt::tokens_for_chars(content.text.chars().count());
        self.totals.speech_input += content.audio_bytes.div_ceil(AUDIO_BYTES_PER_TOKEN);
        if !self.send(&self.usage_event()).await {
            return false;
        }
        if content.role != "USER" {
            return true;
        }
        let d = directives::parse(&content.text);
        if let Some(code) = d.error {
            let member = lower_first(&code);
            self.fail(&code, &member, &format!("Simulated {code}."))
                .await;
            return false;
        }
        let delay = d
            .chunk_delay_ms
            .map_or(self.chunk_delay, Duration::from_millis);
        let speech = d
            .output_tokens
            .unwrap_or(self.default_output_tokens)
            .min(self.max_tokens);
        self.answer(speech, delay).await
    }

    /// One completion: the transcript, then the audio in chunks, each followed by its usage.
    async fn answer(&mut self, speech_tokens: u64, delay: Duration) -> bool {
        self.completions += 1;
        self.ids.1 = format!("completion-{}", self.completions);
        let ids = self.id_fields();
        let mut events = vec![
            json!({"event": {"completionStart": ids.clone()}}),
            json!({"event": {"contentStart": merge(&ids, json!({"contentId": "text", "type": "TEXT", "role": "ASSISTANT"}))}}),
            json!({"event": {"textOutput": merge(&ids, json!({"contentId": "text", "role": "ASSISTANT", "content": ANSWER}))}}),
            json!({"event": {"contentEnd": merge(&ids, json!({"contentId": "text", "type": "TEXT", "stopReason": "END_TURN"}))}}),
            json!({"event": {"contentStart": merge(&ids, json!({"contentId": "audio", "type": "AUDIO", "role": "ASSISTANT"}))}}),
        ];
        self.totals.text_output += ANSWER.split_whitespace().count() as u64;
        for event in events.drain(..) {
            if !self.send(&event).await {
                return false;
            }
        }
        let mut left = speech_tokens;
        while left > 0 {
            let chunk = left.min(AUDIO_CHUNK_TOKENS);
            left -= chunk;
            tokio::time::sleep(delay).await;
            let audio =
                base64::engine::general_purpose::STANDARD.encode(vec![0u8; (chunk * 2) as usize]);
            let event = json!({"event": {"audioOutput": merge(&ids, json!({"contentId": "audio", "content": audio}))}});
            self.totals.speech_output += chunk;
            if !self.send(&event).await || !self.send(&self.usage_event()).await {
                return false;
            }
        }
        let end = [
            json!({"event": {"contentEnd": merge(&ids, json!({"contentId": "audio", "type": "AUDIO", "stopReason": "END_TURN"}))}}),
            json!({"event": {"completionEnd": merge(&ids, json!({"stopReason": "END_TURN"}))}}),
        ];
        for event in end {
            if !self.send(&event).await {
                return false;
            }
        }
        true
    }

    fn id_fields(&self) -> Value {
        json!({"sessionId": self.served.request_id, "promptName": self.ids.0, "completionId": self.ids.1})
    }

    /// A `usageEvent` with the running totals (and this session's ids).
    fn usage_event(&self) -> Value {
        let t = &self.totals;
        let zero = json!({"speechTokens": 0, "textTokens": 0});
        json!({"event": {"usageEvent": merge(&self.id_fields(), json!({
            "details": {
                "delta": {"input": zero, "output": zero},
                "total": {
                    "input": {"speechTokens": t.speech_input, "textTokens": t.text_input},
                    "output": {"speechTokens": t.speech_output, "textTokens": t.text_output},
                },
            },
            "totalInputTokens": t.speech_input + t.text_input,
            "totalOutputTokens": t.speech_output + t.text_output,
            "totalTokens": t.speech_input + t.text_input + t.speech_output + t.text_output,
        }))}})
    }

    /// Sends one output event; false when the caller is gone. Only what was sent counts.
    async fn send(&mut self, event: &Value) -> bool {
        let sent = self.output.send_data(stream::chunk(event)).await.is_ok();
        if sent && event.pointer("/event/usageEvent").is_some() {
            self.served.usage_delivered = true;
        }
        sent
    }
}

/// The JSON event a `chunk` carries.
fn chunk_json(message: &Message) -> Option<Value> {
    let part: Value = serde_json::from_slice(message.payload()).ok()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(part.get("bytes")?.as_str()?)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn merge(a: &Value, b: Value) -> Value {
    let mut out = a.clone();
    if let (Some(o), Value::Object(b)) = (out.as_object_mut(), b) {
        o.extend(b);
    }
    out
}

/// `ThrottlingException` → `throttlingException`: how the event stream names its members.
fn lower_first(code: &str) -> String {
    let mut chars = code.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::Header;
    use std::time::UNIX_EPOCH;

    fn signed(inner: Option<&Message>, previous: &str, secret: &str) -> (Message, String) {
        let identity = Credentials::new("AKID", secret, None, None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("bedrock")
            .time(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
            .settings(())
            .build()
            .unwrap();
        let out = match inner {
            Some(m) => aws_sigv4::event_stream::sign_message(m, previous, &params),
            None => aws_sigv4::event_stream::sign_empty_message(previous, &params),
        };
        out.unwrap().into_parts()
    }

    fn chain(secret: &str) -> Chain {
        Chain {
            credentials: Credentials::new("AKID", secret, None, None, "sim"),
            region: "us-east-1".into(),
            service: "bedrock".into(),
            running: "seed".into(),
        }
    }

    #[test]
    fn each_message_must_carry_the_next_signature_of_the_chain_seeded_by_the_request() {
        let inner = Message::new(&b"{}"[..]).add_header(Header::new(
            ":event-type",
            HeaderValue::String("chunk".into()),
        ));
        let (first, s1) = signed(Some(&inner), "seed", "secret");
        let (second, s2) = signed(Some(&inner), &s1, "secret");
        let (end, _) = signed(None, &s2, "secret");
        let mut checked = chain("secret");
        assert!(checked.check(&first) && checked.check(&second) && checked.check(&end));
        // Out of order, another seed, or another key: refused.
        assert!(!chain("secret").check(&second));
        assert!(!chain("other").check(&first));
        let mut bytes = Vec::new();
        write_message_to(&first, &mut bytes).unwrap();
        assert!(!bytes.is_empty());
    }

    #[test]
    fn the_exception_members_are_the_error_codes_camel_cased() {
        assert_eq!(lower_first("ThrottlingException"), "throttlingException");
        assert_eq!(lower_first(""), "");
    }
}
