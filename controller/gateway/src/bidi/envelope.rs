//! The event-stream messages of a bidirectional session, both ways (pure).
//!
//! Each message a client sends is an *outer* message signed for the gateway's host (headers
//! `:date` and `:chunk-signature`, its payload the encoded *inner* message); the chain starts
//! from the signature of the request that opened the stream, and an outer message with an
//! empty payload ends the input. The inner message is a `chunk` event whose JSON payload
//! `{"bytes": "<base64>"}` carries one Nova Sonic event (`sessionStart`, `audioInput`, ...).
//! Bedrock answers with `chunk` events of the same shape and with exception messages.
//!
//! The gateway cannot check the caller's signatures (they are made with the caller's secret
//! for the gateway's host), so it takes the inner message out ([`unwrap`]) and signs it again
//! in its own chain ([`Signer`]), seeded with the signature of the request it sent upstream.

use std::time::SystemTime;

use aws_sigv4::event_stream::{sign_empty_message, sign_message};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::{
    DecodedFrame, MessageFrameDecoder, read_message_from, write_message_to,
};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use bytes::{Bytes, BytesMut};

use crate::forward::StreamSeed;
use crate::meter::MAX_FRAME_BYTES;

/// Why a session's messages cannot be relayed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not an event-stream message (bad prelude, CRC, headers), or too large.
    #[error("the input is not a valid event stream: {0}")]
    Malformed(String),
    /// Signing with the gateway's credentials failed.
    #[error("signing an event: {0}")]
    Signing(String),
}

/// Reads messages from a byte stream as it arrives, holding only an incomplete message.
#[derive(Debug, Default)]
pub struct Reader {
    buffer: BytesMut,
    decoder: MessageFrameDecoder,
}

impl Reader {
    /// Adds the next bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, if one has arrived; an error once the stream is not an
    /// event stream (after which nothing more is read).
    pub fn message(&mut self) -> Result<Option<Message>, EnvelopeError> {
        if self.buffer.len() > MAX_FRAME_BYTES {
            return Err(EnvelopeError::Malformed(format!(
                "a message larger than {MAX_FRAME_BYTES} bytes"
            )));
        }
        match self.decoder.decode_frame(&mut self.buffer) {
            Ok(DecodedFrame::Complete(message)) => Ok(Some(message)),
            Ok(DecodedFrame::Incomplete) => Ok(None),
            Err(e) => Err(EnvelopeError::Malformed(e.to_string())),
        }
    }

    /// True when part of a message is held.
    pub fn holds_partial(&self) -> bool {
        !self.buffer.is_empty()
    }
}

/// What one message from the client carries.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    /// An event to relay (the inner message of a signed one, or an unsigned message itself).
    Event(Message),
    /// The signed empty message: the client's input is over.
    End,
}

/// Takes the client's signature envelope off `outer`.
pub fn unwrap(outer: Message) -> Result<Inbound, EnvelopeError> {
    if !has_header(&outer, ":chunk-signature") {
        return Ok(Inbound::Event(outer));
    }
    if outer.payload().is_empty() {
        return Ok(Inbound::End);
    }
    read_message_from(&outer.payload()[..])
        .map(Inbound::Event)
        .map_err(|e| EnvelopeError::Malformed(format!("a signed message's payload: {e}")))
}

/// The gateway's event signature chain for one stream.
#[derive(Debug)]
pub struct Signer {
    seed: StreamSeed,
    /// The last signature made (the request's, before the first event).
    running: String,
}

impl Signer {
    /// A chain seeded with the signature of the request that opened the stream.
    pub fn new(seed: StreamSeed) -> Signer {
        let running = seed.signature.clone();
        Signer { seed, running }
    }

    /// `inner` signed as the next message of the chain at `time`, encoded.
    pub fn wrap(&mut self, inner: &Message, time: SystemTime) -> Result<Bytes, EnvelopeError> {
        self.sign(Some(inner), time)
    }

    /// The signed empty message that ends the input, encoded.
    pub fn wrap_end(&mut self, time: SystemTime) -> Result<Bytes, EnvelopeError> {
        self.sign(None, time)
    }

    fn sign(&mut self, inner: Option<&Message>, time: SystemTime) -> Result<Bytes, EnvelopeError> {
        let identity = self.seed.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.seed.region)
            .name(self.seed.signing_name)
            .time(time)
            .settings(())
            .build()
            .map_err(|e| EnvelopeError::Signing(e.to_string()))?;
        let signed = match inner {
            Some(m) => sign_message(m, &self.running, &params),
            None => sign_empty_message(&self.running, &params),
        };
        let (outer, signature) = signed
            .map_err(|e| EnvelopeError::Signing(e.to_string()))?
            .into_parts();
        self.running = signature;
        encode(&outer)
    }
}

/// A message as bytes on the wire.
pub fn encode(message: &Message) -> Result<Bytes, EnvelopeError> {
    let mut buffer = Vec::new();
    write_message_to(message, &mut buffer).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    Ok(Bytes::from(buffer))
}

/// True when `message` has a header `name` (of any type).
pub fn has_header(message: &Message, name: &str) -> bool {
    message.headers().iter().any(|h| h.name().as_str() == name)
}

/// The string value of header `name`.
pub fn header<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message.headers().iter().find_map(|h| match h.value() {
        HeaderValue::String(s) if h.name().as_str() == name => Some(s.as_str()),
        _ => None,
    })
}

/// The Nova Sonic event a `chunk` message carries (`{"bytes": base64 of the event's JSON}`),
/// if it is one.
pub fn chunk_event(message: &Message) -> Option<serde_json::Value> {
    if header(message, ":message-type") != Some("event")
        || header(message, ":event-type") != Some("chunk")
    {
        return None;
    }
    let part: serde_json::Value = serde_json::from_slice(message.payload()).ok()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(part.get("bytes")?.as_str()?)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// True for an exception message (`:message-type: exception`).
pub fn is_exception(message: &Message) -> bool {
    header(message, ":message-type") == Some("exception")
}

/// An exception message in the shape Bedrock sends mid-stream (`:exception-type` names the
/// member of the operation's error union, the payload is `{"message"}`).
pub fn exception(member: &str, message: &str) -> Result<Bytes, EnvelopeError> {
    let payload = serde_json::json!({ "message": message }).to_string();
    encode(&Message::new_from_parts(
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
        payload,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use std::time::{Duration, UNIX_EPOCH};

    fn seed(signature: &str) -> StreamSeed {
        StreamSeed {
            signature: signature.into(),
            credentials: Credentials::new("AKID", "secret", None, None, "test"),
            region: "us-east-1".into(),
            signing_name: "bedrock",
        }
    }

    /// A `chunk` event carrying `event`, as the SDK marshals it.
    pub(crate) fn chunk(event: &serde_json::Value) -> Message {
        let bytes = base64::engine::general_purpose::STANDARD.encode(event.to_string());
        Message::new_from_parts(
            vec![
                Header::new(":message-type", HeaderValue::String("event".into())),
                Header::new(":event-type", HeaderValue::String("chunk".into())),
                Header::new(
                    ":content-type",
                    HeaderValue::String("application/json".into()),
                ),
            ],
            serde_json::json!({ "bytes": bytes }).to_string(),
        )
    }

    fn only(mut messages: Vec<Message>) -> Message {
        assert_eq!(messages.len(), 1, "one message");
        messages.pop().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Vec<Message> {
        let mut reader = Reader::default();
        reader.push(bytes);
        std::iter::from_fn(|| reader.message().unwrap()).collect()
    }

    #[test]
    fn a_message_signed_by_the_client_is_unwrapped_and_signed_again_in_the_gateways_chain() {
        let at = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let inner = chunk(&serde_json::json!({"event": {"sessionStart": {}}}));
        // The client's chain (its own key and seed).
        let mut client = Signer::new(StreamSeed {
            credentials: Credentials::new("CLIENT", "other", None, None, "c"),
            ..seed("client-seed")
        });
        let sent = client.wrap(&inner, at).unwrap();
        let outer = only(read_all(&sent));
        assert!(has_header(&outer, ":chunk-signature") && has_header(&outer, ":date"));
        assert_eq!(unwrap(outer).unwrap(), Inbound::Event(inner.clone()));
        // The gateway's chain: the same inner message under the signature a fresh chain from
        // the gateway's seed makes, and each message chained to the one before.
        let mut gateway = Signer::new(seed("gateway-seed"));
        let first = gateway.wrap(&inner, at).unwrap();
        let second = gateway.wrap(&inner, at).unwrap();
        let expected = {
            let identity = seed("").credentials.into();
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region("us-east-1")
                .name("bedrock")
                .time(at)
                .settings(())
                .build()
                .unwrap();
            let (m, s) = sign_message(&inner, "gateway-seed", &params)
                .unwrap()
                .into_parts();
            let (m2, _) = sign_message(&inner, &s, &params).unwrap().into_parts();
            (encode(&m).unwrap(), encode(&m2).unwrap())
        };
        assert_eq!((first, second), expected);
        assert_ne!(
            sent, expected.0,
            "the client's signature is not what goes upstream"
        );
    }

    #[test]
    fn the_signed_empty_message_ends_the_input_and_an_unsigned_message_is_its_own_event() {
        let at = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let end = Signer::new(seed("s")).wrap_end(at).unwrap();
        let outer = only(read_all(&end));
        assert_eq!(unwrap(outer).unwrap(), Inbound::End);
        let plain = chunk(&serde_json::json!({"event": {"sessionEnd": {}}}));
        assert_eq!(unwrap(plain.clone()).unwrap(), Inbound::Event(plain));
    }

    #[test]
    fn messages_split_anywhere_are_read_whole_and_garbage_is_an_error() {
        let a = encode(&chunk(
            &serde_json::json!({"event": {"textInput": {"content": "hi"}}}),
        ))
        .unwrap();
        let b = encode(&chunk(&serde_json::json!({"event": {"sessionEnd": {}}}))).unwrap();
        let all = [a.as_ref(), b.as_ref()].concat();
        for cut in 0..all.len() {
            let mut reader = Reader::default();
            let mut got = Vec::new();
            for part in [&all[..cut], &all[cut..]] {
                reader.push(part);
                while let Some(m) = reader.message().unwrap() {
                    got.push(chunk_event(&m).unwrap());
                }
            }
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert!(!reader.holds_partial());
        }
        let mut reader = Reader::default();
        reader.push(&[
            0, 0, 0, 20, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ]);
        assert!(matches!(reader.message(), Err(EnvelopeError::Malformed(_))));
    }

    #[test]
    fn an_exception_message_reads_back_as_one() {
        let bytes = exception("validationException", "AIBudget ns/team ...").unwrap();
        let m = only(read_all(&bytes));
        assert!(is_exception(&m));
        assert_eq!(header(&m, ":exception-type"), Some("validationException"));
        assert!(chunk_event(&m).is_none());
    }
}
