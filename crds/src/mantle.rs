//! The bedrock-mantle APIs: where each reports its usage, the output bound a request sets,
//! and the error shape each API's SDKs read. Pure functions over JSON; the gateway feeds them
//! what it relays and the simulator uses them to answer as Bedrock does.
//!
//! - **Chat Completions** (`/v1/chat/completions`): `usage.prompt_tokens` (cached ones
//!   included, `usage.prompt_tokens_details.cached_tokens` of them read from the cache),
//!   `usage.completion_tokens`; in a stream, only in the last chunk and only when the request
//!   set `stream_options.include_usage`.
//! - **Responses** (`/v1/responses`): `usage.input_tokens` (of them
//!   `usage.input_tokens_details.cached_tokens` cached), `usage.output_tokens`; in a stream, in
//!   the `response` of the terminal event (`response.completed`, `response.incomplete`,
//!   `response.failed`).
//! - **Messages** (`/anthropic/v1/messages`): `usage.input_tokens` (uncached),
//!   `cache_read_input_tokens`, `cache_creation_input_tokens` (split by TTL in
//!   `cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`),
//!   `output_tokens`; in a stream, the input side in `message_start`, and the cumulative
//!   output count in `message_delta`.

use serde::Deserialize;
use serde_json::Value;

use crate::Error;
use crate::pricing::Usage;

fn malformed(what: &str, error: impl std::fmt::Display) -> Error {
    Error::MalformedUsage(format!("{what}: {error}"))
}

#[derive(Deserialize, Default)]
struct Cached {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(Deserialize)]
struct ChatUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<Cached>,
}

/// Usage from a Chat Completions `usage` object. OpenAI counts cached tokens inside
/// `prompt_tokens`; they are split out so each kind is priced at its own rate.
pub fn chat_usage(usage: &Value) -> Result<Usage, Error> {
    let u: ChatUsage = serde_json::from_value(usage.clone())
        .map_err(|e| malformed("Chat Completions usage", e))?;
    let cached = u.prompt_tokens_details.unwrap_or_default().cached_tokens;
    Ok(Usage {
        input_tokens: u.prompt_tokens.saturating_sub(cached),
        output_tokens: u.completion_tokens,
        cache_read_tokens: cached.min(u.prompt_tokens),
        ..Usage::default()
    })
}

#[derive(Deserialize)]
struct ResponsesUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<Cached>,
}

/// Usage from a Responses API `usage` object (cached tokens are inside `input_tokens`).
pub fn responses_usage(usage: &Value) -> Result<Usage, Error> {
    let u: ResponsesUsage =
        serde_json::from_value(usage.clone()).map_err(|e| malformed("Responses usage", e))?;
    let cached = u.input_tokens_details.unwrap_or_default().cached_tokens;
    Ok(Usage {
        input_tokens: u.input_tokens.saturating_sub(cached),
        output_tokens: u.output_tokens,
        cache_read_tokens: cached.min(u.input_tokens),
        ..Usage::default()
    })
}

#[derive(Deserialize, Default)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    ephemeral_1h_input_tokens: u64,
}

#[derive(Deserialize, Default)]
struct MessagesUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation: Option<CacheCreation>,
}

impl MessagesUsage {
    /// Overlays what `self` reports on `usage` (a `message_delta` repeats or omits fields).
    fn apply(self, usage: &mut Usage) {
        if let Some(n) = self.input_tokens {
            usage.input_tokens = n;
        }
        if let Some(n) = self.output_tokens {
            usage.output_tokens = n;
        }
        if let Some(n) = self.cache_read_input_tokens {
            usage.cache_read_tokens = n;
        }
        match (self.cache_creation, self.cache_creation_input_tokens) {
            (Some(c), _) if c.ephemeral_5m_input_tokens + c.ephemeral_1h_input_tokens > 0 => {
                usage.cache_write_tokens = c.ephemeral_5m_input_tokens;
                usage.cache_write_1h_tokens = c.ephemeral_1h_input_tokens;
            }
            (_, Some(n)) => {
                usage.cache_write_tokens = n;
                usage.cache_write_1h_tokens = 0;
            }
            _ => {}
        }
    }
}

/// Usage from an Anthropic Messages `usage` object (a response body's, or `message_start`'s).
pub fn messages_usage(usage: &Value) -> Result<Usage, Error> {
    let u: MessagesUsage =
        serde_json::from_value(usage.clone()).map_err(|e| malformed("Messages usage", e))?;
    if u.input_tokens.is_none() || u.output_tokens.is_none() {
        return Err(malformed(
            "Messages usage",
            "input_tokens and output_tokens are required",
        ));
    }
    let mut out = Usage::default();
    u.apply(&mut out);
    Ok(out)
}

/// The usage a whole (non-streaming) response of `api` reports.
pub fn body_usage(api: Api, body: &[u8]) -> Result<Usage, Error> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed("body", e))?;
    let usage = value
        .get("usage")
        .filter(|u| !u.is_null())
        .ok_or_else(|| malformed("body", "no usage"))?;
    match api {
        Api::ChatCompletions => chat_usage(usage),
        Api::Responses => responses_usage(usage),
        Api::Messages => messages_usage(usage),
    }
}

/// The three APIs bedrock-mantle serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI Chat Completions.
    ChatCompletions,
    /// OpenAI Responses.
    Responses,
    /// Anthropic Messages.
    Messages,
}

/// What one server-sent event of a stream of `api` says about usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventUsage {
    /// Nothing about usage.
    None,
    /// The final usage (Chat Completions' usage chunk, a Responses terminal event).
    Final(Usage),
    /// Messages' `message_start` (the input side) or `message_delta` (the output so far):
    /// overlaid on what came before.
    Partial(Usage),
}

/// Reads the `data` of one server-sent event of a stream of `api`, overlaying a Messages event
/// on `so_far` (the usage accumulated from the stream's earlier events).
pub fn event_usage(api: Api, data: &[u8], so_far: Usage) -> EventUsage {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return EventUsage::None;
    };
    match api {
        Api::ChatCompletions => match value.get("usage") {
            Some(u) if !u.is_null() => chat_usage(u).map_or(EventUsage::None, EventUsage::Final),
            _ => EventUsage::None,
        },
        Api::Responses => match value.get("type").and_then(Value::as_str) {
            Some("response.completed" | "response.incomplete" | "response.failed") => value
                .pointer("/response/usage")
                .filter(|u| !u.is_null())
                .and_then(|u| responses_usage(u).ok())
                .map_or(EventUsage::None, EventUsage::Final),
            _ => EventUsage::None,
        },
        Api::Messages => {
            let usage = match value.get("type").and_then(Value::as_str) {
                Some("message_start") => value.pointer("/message/usage"),
                Some("message_delta") => value.get("usage"),
                _ => None,
            };
            match usage.and_then(|u| serde_json::from_value::<MessagesUsage>(u.clone()).ok()) {
                Some(u) => {
                    let mut out = so_far;
                    u.apply(&mut out);
                    EventUsage::Partial(out)
                }
                None => EventUsage::None,
            }
        }
    }
}

/// The output bound a request body of `api` sets: `max_completion_tokens` (or the older
/// `max_tokens`) for Chat Completions, `max_output_tokens` for Responses, `max_tokens` for
/// Messages.
pub fn requested_output_tokens(api: Api, body: &Value) -> Option<u64> {
    let field = |name: &str| body.get(name).and_then(Value::as_u64);
    match api {
        Api::ChatCompletions => field("max_completion_tokens").or_else(|| field("max_tokens")),
        Api::Responses => field("max_output_tokens"),
        Api::Messages => field("max_tokens"),
    }
}

/// True when the request's input is more than its body: a Responses call continuing a stored
/// conversation (`previous_response_id`, `conversation`) or a stored prompt (`prompt`), whose
/// earlier turns Bedrock adds to the input it bills. Its input bound is then the whole
/// context window.
pub fn input_beyond_body(api: Api, body: &Value) -> bool {
    api == Api::Responses
        && ["previous_response_id", "conversation", "prompt"]
            .iter()
            .any(|k| body.get(*k).is_some_and(|v| !v.is_null()))
}

/// True when the request asks for a stream.
pub fn is_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

/// True for a Responses request run in the background (answered at once with a `queued`
/// response, completed later).
pub fn is_background(api: Api, body: &Value) -> bool {
    api == Api::Responses
        && body
            .get("background")
            .and_then(Value::as_bool)
            .unwrap_or(false)
}

/// A background response's status is final (its usage, if any, is known).
pub fn is_terminal_status(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "incomplete" | "cancelled")
}

/// The kinds of errors the gateway answers in the OpenAI and Anthropic shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad request (400).
    Invalid,
    /// No or malformed credentials (401).
    Unauthenticated,
    /// Refused for good: budget exhausted, model forbidden, caller not allowed (403).
    PermissionDenied,
    /// Not a known path (404).
    NotFound,
    /// Retry later (429).
    RateLimited,
    /// The gateway or Bedrock failed (500, 502, 503, 504).
    Unavailable(u16),
}

impl ErrorKind {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Invalid => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RateLimited => 429,
            ErrorKind::Unavailable(status) => status,
        }
    }

    /// The Anthropic error `type` for this kind.
    pub fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid_request_error",
            ErrorKind::Unauthenticated => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Unavailable(529) => "overloaded_error",
            ErrorKind::Unavailable(_) => "api_error",
        }
    }

    /// The OpenAI error `type` for this kind.
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::Invalid | ErrorKind::NotFound => "invalid_request_error",
            ErrorKind::Unauthenticated => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Unavailable(_) => "api_error",
        }
    }
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
pub fn openai_error_body(kind: ErrorKind, code: &str, message: &str) -> String {
    serde_json::json!({"error": {"message": message, "type": kind.openai_type(),
        "param": null, "code": code}})
    .to_string()
}

/// Anthropic's error body: `{"type": "error", "error": {"type", "message"}, "request_id"}`.
pub fn anthropic_error_body(kind: ErrorKind, message: &str, request_id: &str) -> String {
    serde_json::json!({"type": "error", "error": {"type": kind.anthropic_type(),
        "message": message}, "request_id": request_id})
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_completions_cached_tokens_are_split_out_of_prompt_tokens() {
        let usage = json!({"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
            "prompt_tokens_details": {"cached_tokens": 60}});
        let u = chat_usage(&usage).unwrap();
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.output_tokens),
            (40, 60, 7)
        );
        let plain = chat_usage(&json!({"prompt_tokens": 5, "completion_tokens": 1})).unwrap();
        assert_eq!((plain.input_tokens, plain.cache_read_tokens), (5, 0));
        assert!(chat_usage(&json!({"prompt_tokens": 5})).is_err());
    }

    #[test]
    fn a_chat_stream_reports_usage_only_in_its_usage_chunk() {
        let chunk = br#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#;
        assert_eq!(
            event_usage(Api::ChatCompletions, chunk, Usage::default()),
            EventUsage::None
        );
        let last = br#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let EventUsage::Final(u) = event_usage(Api::ChatCompletions, last, Usage::default()) else {
            panic!("final usage expected");
        };
        assert_eq!((u.input_tokens, u.output_tokens), (3, 2));
    }

    #[test]
    fn the_responses_usage_comes_from_the_terminal_event() {
        let created =
            br#"{"type":"response.created","response":{"status":"in_progress","usage":null}}"#;
        assert_eq!(
            event_usage(Api::Responses, created, Usage::default()),
            EventUsage::None
        );
        let done = br#"{"type":"response.completed","sequence_number":9,"response":{"status":"completed","usage":{"input_tokens":11,"input_tokens_details":{"cached_tokens":1},"output_tokens":4,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":15}}}"#;
        let EventUsage::Final(u) = event_usage(Api::Responses, done, Usage::default()) else {
            panic!("final usage expected");
        };
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.output_tokens),
            (10, 1, 4)
        );
    }

    #[test]
    fn messages_usage_builds_up_from_message_start_and_message_delta() {
        let start = br#"{"type":"message_start","message":{"usage":{"input_tokens":20,"cache_creation_input_tokens":8,"cache_read_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":5,"ephemeral_1h_input_tokens":3},"output_tokens":1}}}"#;
        let EventUsage::Partial(u) = event_usage(Api::Messages, start, Usage::default()) else {
            panic!("partial usage expected");
        };
        assert_eq!(
            (
                u.input_tokens,
                u.cache_read_tokens,
                u.cache_write_tokens,
                u.cache_write_1h_tokens
            ),
            (20, 30, 5, 3)
        );
        let delta = br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":42}}"#;
        let EventUsage::Partial(u) = event_usage(Api::Messages, delta, u) else {
            panic!("partial usage expected");
        };
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cache_write_tokens),
            (20, 42, 5)
        );
    }

    #[test]
    fn a_messages_body_without_a_ttl_split_counts_its_cache_writes_as_5_minute_ones() {
        let body = br#"{"type":"message","usage":{"input_tokens":3,"output_tokens":4,"cache_creation_input_tokens":9,"cache_read_input_tokens":0}}"#;
        let u = body_usage(Api::Messages, body).unwrap();
        assert_eq!((u.cache_write_tokens, u.cache_write_1h_tokens), (9, 0));
        assert!(body_usage(Api::Messages, br#"{"usage":null}"#).is_err());
        assert!(body_usage(Api::Responses, b"not json").is_err());
    }

    #[test]
    fn each_api_names_its_own_output_bound_and_stored_state_widens_the_input() {
        let chat = json!({"max_tokens": 10, "max_completion_tokens": 20});
        assert_eq!(
            requested_output_tokens(Api::ChatCompletions, &chat),
            Some(20)
        );
        let old = json!({"max_tokens": 10});
        assert_eq!(
            requested_output_tokens(Api::ChatCompletions, &old),
            Some(10)
        );
        let responses = json!({"max_output_tokens": 30, "previous_response_id": "resp_1"});
        assert_eq!(
            requested_output_tokens(Api::Responses, &responses),
            Some(30)
        );
        assert!(input_beyond_body(Api::Responses, &responses));
        assert!(!input_beyond_body(Api::Responses, &json!({"input": "hi"})));
        assert!(!input_beyond_body(Api::ChatCompletions, &responses));
    }

    #[test]
    fn error_bodies_have_each_apis_shape() {
        let openai: Value = serde_json::from_str(&openai_error_body(
            ErrorKind::RateLimited,
            "rate_limit_exceeded",
            "slow",
        ))
        .unwrap();
        assert_eq!(openai["error"]["type"], "rate_limit_error");
        assert_eq!(openai["error"]["code"], "rate_limit_exceeded");
        let anthropic: Value = serde_json::from_str(&anthropic_error_body(
            ErrorKind::PermissionDenied,
            "no",
            "r-1",
        ))
        .unwrap();
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "permission_error");
        assert_eq!(
            ErrorKind::Unavailable(529).anthropic_type(),
            "overloaded_error"
        );
    }
}
