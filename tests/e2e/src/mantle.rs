//! bedrock-mantle calls on the wire, from a chosen loopback address (a pod's IP), for the tests
//! that drive many concurrent calls from Rust (no OpenAI or Anthropic SDK exists in Rust): the
//! request bodies and headers the OpenAI and Anthropic SDKs send, the response read to its end
//! as a client would. The single-client tests use the real SDKs (tests/e2e/gateway_mantle.py).

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A mantle API call of the kinds the SDKs make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// Chat Completions, streaming, without `stream_options` (the gateway must ask for usage).
    ChatStream,
    /// Responses, whole.
    Responses,
    /// Messages, streaming.
    MessagesStream,
}

/// What the gateway answered.
#[derive(Debug)]
pub enum Answer {
    /// Bedrock answered: its request ID (`x-request-id` / `request-id`).
    Served(String),
    /// Refused with this status and body.
    Refused(u16, String),
}

/// An HTTP client whose connections leave from `source`.
pub fn client_from(source: IpAddr) -> Client<HttpConnector, Full<Bytes>> {
    let mut tcp = HttpConnector::new();
    tcp.set_local_address(Some(source));
    tcp.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(tcp)
}

/// Sends `call` and returns the response as it starts, its body unread (a client that may
/// hang up part way).
pub async fn open(
    client: &Client<HttpConnector, Full<Bytes>>,
    gateway: &str,
    call: Call,
    model: &str,
    text: &str,
    max_tokens: u32,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let request = request(gateway, call, model, text, max_tokens)?;
    client.request(request).await.map_err(|e| format!("{e:?}"))
}

/// The request the SDKs send for `call`.
fn request(
    gateway: &str,
    call: Call,
    model: &str,
    text: &str,
    max_tokens: u32,
) -> Result<http::Request<Full<Bytes>>, String> {
    let (path, body) = match call {
        Call::ChatStream => (
            "/v1/chat/completions",
            serde_json::json!({"model": model, "stream": true, "max_completion_tokens": max_tokens,
                "messages": [{"role": "user", "content": text}]}),
        ),
        Call::Responses => (
            "/v1/responses",
            serde_json::json!({"model": model, "input": text, "max_output_tokens": max_tokens}),
        ),
        Call::MessagesStream => (
            "/anthropic/v1/messages",
            serde_json::json!({"model": model, "stream": true, "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": text}]}),
        ),
    };
    http::Request::post(format!("{gateway}{path}"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer workload-bedrock-api-key")
        .header("anthropic-version", "2023-06-01")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())
}

/// Sends `call` on `model` with `text` asking for at most `max_tokens`, to `gateway`, and reads
/// the answer to its end.
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    gateway: &str,
    call: Call,
    model: &str,
    text: &str,
    max_tokens: u32,
) -> Result<Answer, String> {
    let request = request(gateway, call, model, text, max_tokens)?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    let id = ["x-request-id", "request-id"]
        .iter()
        .find_map(|h| response.headers().get(*h).and_then(|v| v.to_str().ok()))
        .unwrap_or_default()
        .to_owned();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if status != 200 {
        return Ok(Answer::Refused(status, text));
    }
    if call == Call::ChatStream && text.contains("\"usage\"") {
        return Err(format!(
            "the caller saw a usage chunk it did not ask for: {text}"
        ));
    }
    Ok(Answer::Served(id))
}
