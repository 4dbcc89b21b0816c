//! bedrock-mantle's APIs, as AWS serves them at `bedrock-mantle.{region}.api.aws`: OpenAI Chat
//! Completions (`/v1/chat/completions`, also under `/openai/v1`), OpenAI Responses
//! (`/v1/responses`, background responses read back with `GET /v1/responses/{id}`), and the
//! Anthropic Messages API (`/anthropic/v1/messages`, `/anthropic/v1/messages/count_tokens`).
//! Authentication is a Bedrock API key (`Authorization: Bearer`, or `x-api-key` on Messages)
//! or SigV4 with the signing name `bedrock-mantle`. Usage is where each API puts it: the body's
//! `usage`; a Chat Completions stream's last chunk, only when `stream_options.include_usage`
//! asked; a Responses stream's `response.completed` event; Messages' `message_start` (input)
//! and `message_delta` (output). Errors are in each API's shape.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aigov_api::mantle::{self, Api, ErrorKind};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Channel, Full, Limited};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};

use crate::directives;
use crate::families::Outcome;
use crate::prompt;
use crate::server::{Body, Served, Simulator};

/// A request that passed authentication and parsing.
struct Accepted {
    api: Api,
    count_tokens: bool,
    signed_for: String,
    verified: bool,
    access_key: String,
    text: String,
    json: Value,
    model: String,
    max_output_tokens: u32,
}

/// A background response: when it completes, and its final body.
pub struct Stored {
    done_at: Instant,
    completed: Value,
}

impl Stored {
    /// When it completes, and its final body.
    pub fn snapshot(&self) -> (Instant, Value) {
        (self.done_at, self.completed.clone())
    }
}

fn api_of(path: &str) -> Option<Api> {
    let path = path.strip_prefix("/openai").unwrap_or(path);
    match path {
        "/v1/chat/completions" => Some(Api::ChatCompletions),
        "/v1/responses" => Some(Api::Responses),
        "/anthropic/v1/messages" => Some(Api::Messages),
        _ => None,
    }
}

/// True for a path mantle serves.
pub fn is_mantle_path(path: &str) -> bool {
    path.starts_with("/v1/") || path.starts_with("/openai/v1/") || path.starts_with("/anthropic/")
}

fn error(api: Api, kind: ErrorKind, code: &str, message: &str, id: &str) -> Response<Body> {
    let body = match api {
        Api::Messages => mantle::anthropic_error_body(kind, message, id),
        _ => mantle::openai_error_body(kind, code, message),
    };
    Response::builder()
        .status(kind.status())
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .header("request-id", id)
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("valid response")
}

/// `bearer`, `x-api-key` or `service/region` of a SigV4 signature; `None` when unauthenticated.
fn credential(headers: &http::HeaderMap) -> Option<String> {
    if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        if auth.starts_with("Bearer ") {
            return Some("bearer".into());
        }
        let parsed = crate::sigv4::parse(auth)?;
        return Some(format!("{}/{}", parsed.service, parsed.region));
    }
    headers.get("x-api-key").map(|_| "x-api-key".into())
}

impl Simulator {
    /// Answers a request on one of mantle's paths.
    pub(crate) async fn mantle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let id = format!("req_{}", self.request_id());
        let path = req.uri().path().to_owned();
        if req.method() == Method::GET
            && let Some(resp_id) = path
                .strip_prefix("/openai")
                .unwrap_or(&path)
                .strip_prefix("/v1/responses/")
        {
            return self.stored_response(resp_id, &id);
        }
        match self.accept(req, &id).await {
            Ok(accepted) => self.answer(accepted, &id).await,
            Err(refused) => refused,
        }
    }

    /// Authenticates and reads a request: its API, credential, JSON body and model.
    async fn accept(&self, req: Request<Incoming>, id: &str) -> Result<Accepted, Response<Body>> {
        let id = id.to_owned();
        let path = req.uri().path().to_owned();
        let api = api_of(&path);
        let count_tokens = path == "/anthropic/v1/messages/count_tokens";
        let Some(api) = api.or(count_tokens.then_some(Api::Messages)) else {
            return Err(error(
                Api::ChatCompletions,
                ErrorKind::NotFound,
                "unknown_url",
                "Unknown request URL",
                &id,
            ));
        };
        let Some(signed_for) = credential(req.headers()) else {
            return Err(error(
                api,
                ErrorKind::Unauthenticated,
                "invalid_api_key",
                "Missing credentials",
                &id,
            ));
        };
        if signed_for.contains('/') && !signed_for.starts_with("bedrock-mantle/") {
            return Err(error(
                api,
                ErrorKind::Unauthenticated,
                "invalid_signature",
                "Credential should be scoped to correct service: 'bedrock-mantle'.",
                &id,
            ));
        }
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let headers = req.headers().clone();
        let body = match Limited::new(req.into_body(), 25 << 20).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Err(error(
                    api,
                    ErrorKind::Invalid,
                    "invalid_request",
                    "body too large",
                    &id,
                ));
            }
        };
        let sigv4 = signed_for.contains('/');
        let checked = match sigv4 {
            true => self.verify_signature("POST", &path_and_query, &headers, &body),
            false => Ok(false),
        };
        let verified = match checked {
            Ok(verified) => verified,
            Err(_) => {
                return Err(error(
                    api,
                    ErrorKind::Unauthenticated,
                    "invalid_signature",
                    "The request signature we calculated does not match the signature you provided.",
                    &id,
                ));
            }
        };
        let Ok(json) = serde_json::from_slice::<Value>(&body) else {
            return Err(error(
                api,
                ErrorKind::Invalid,
                "invalid_json",
                "We could not parse the JSON body of your request.",
                &id,
            ));
        };
        let model = json
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(entry) = aigov_api::model::resolve(&model).catalog else {
            return Err(error(
                api,
                ErrorKind::NotFound,
                "model_not_found",
                &format!("The model `{model}` does not exist or you do not have access to it."),
                &id,
            ));
        };
        let access_key = match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some(auth) => auth
                .strip_prefix("Bearer ")
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    crate::sigv4::parse(auth)
                        .map(|a| a.access_key.to_owned())
                        .unwrap_or_default()
                }),
            None => headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        };
        Ok(Accepted {
            api,
            count_tokens,
            signed_for,
            verified,
            access_key,
            text: String::from_utf8_lossy(&body).into_owned(),
            json,
            model,
            max_output_tokens: entry.max_output_tokens,
        })
    }

    /// Answers an accepted request as its API does.
    async fn answer(self: Arc<Self>, a: Accepted, id: &str) -> Response<Body> {
        let id = id.to_owned();
        let (api, json, model, signed_for) =
            (a.api, &a.json, a.model.clone(), a.signed_for.clone());
        let count_tokens = a.count_tokens;
        let shape = prompt::analyze(json, None);
        if count_tokens {
            let tokens = prompt::tokens_for_chars(shape.text_chars).max(1);
            return json_ok(&json!({"input_tokens": tokens}), &id);
        }
        let d = directives::parse(&a.text);
        let config = self.current_config();
        if let Some(code) = d.error.clone() {
            let kind = match code.as_str() {
                "ThrottlingException" => ErrorKind::RateLimited,
                "ValidationException" => ErrorKind::Invalid,
                _ => ErrorKind::Unavailable(500),
            };
            return error(api, kind, &code, &format!("Simulated {code}."), &id);
        }
        let asked = mantle::requested_output_tokens(api, json);
        let shape = prompt::PromptShape {
            max_tokens: asked,
            ..shape
        };
        let outcome = self.outcome_for(&model, &shape, &d, &config, a.max_output_tokens);
        let mut served = Served::new(&id, api_name(api), &model, &signed_for);
        served.signature_verified = a.verified;
        served.access_key = a.access_key;
        // Which credential reached Bedrock: the access key of a signature, or the API key itself.
        served.input_tokens = outcome.input_tokens;
        served.output_tokens = outcome.output_tokens;
        served.cache_read_tokens = outcome.cache_read;
        served.cache_write_tokens = outcome.cache_write;
        if api != Api::Messages {
            // OpenAI's usage has no cache writes: they are plain prompt tokens there.
            served.input_tokens += outcome.cache_write;
            served.cache_write_tokens = 0;
        }
        tokio::time::sleep(Duration::from_millis(outcome.latency_ms)).await;
        let stream = mantle::is_stream(json);
        if mantle::is_background(api, json) {
            served.usage_delivered = true;
            self.record_served(served);
            return self.background(json, &model, &outcome, &id);
        }
        if !stream {
            served.usage_delivered = true;
            self.record_served(served);
            return json_ok(&whole(api, &model, &outcome, &id, "completed"), &id);
        }
        let include_usage = json
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let events = events(api, &model, &outcome, &id, include_usage);
        let delay = d.chunk_delay_ms.unwrap_or(config.chunk_delay_ms);
        self.sse(served, events, d.truncate, delay, &id)
    }

    fn background(&self, json: &Value, model: &str, o: &Outcome, id: &str) -> Response<Body> {
        let job_ms = directives::parse(&json.to_string())
            .latency_ms
            .unwrap_or(300);
        let resp_id = format!("resp_{}", id.trim_start_matches("req_"));
        let mut completed = whole(Api::Responses, model, o, &resp_id, "completed");
        completed["background"] = json!(true);
        self.store_response(
            resp_id.clone(),
            Stored {
                done_at: Instant::now() + Duration::from_millis(job_ms),
                completed: completed.clone(),
            },
        );
        let mut queued = completed;
        queued["status"] = json!("queued");
        queued["usage"] = Value::Null;
        queued["output"] = json!([]);
        json_ok(&queued, id)
    }

    fn stored_response(&self, resp_id: &str, id: &str) -> Response<Body> {
        let resp_id = resp_id.trim_end_matches("/input_items");
        match self.load_response(resp_id) {
            Some(stored) if Instant::now() >= stored.0 => json_ok(&stored.1, id),
            Some(stored) => {
                let mut pending = stored.1;
                pending["status"] = json!("in_progress");
                pending["usage"] = Value::Null;
                json_ok(&pending, id)
            }
            None => error(
                Api::Responses,
                ErrorKind::NotFound,
                "not_found",
                &format!("Response with id '{resp_id}' not found."),
                id,
            ),
        }
    }

    fn sse(
        self: Arc<Self>,
        mut served: Served,
        mut events: Vec<String>,
        truncate: bool,
        delay_ms: u64,
        id: &str,
    ) -> Response<Body> {
        if truncate {
            // Cut before the usage-bearing event (the last one with data).
            let cut = events
                .iter()
                .rposition(|e| e.contains("usage"))
                .unwrap_or(events.len());
            events.truncate(cut);
        } else {
            served.usage_delivered = true;
        }
        let (mut sender, body) = Channel::<Bytes, std::convert::Infallible>::new(4);
        tokio::spawn(async move {
            for event in events {
                if sender.send(Frame::data(Bytes::from(event))).await.is_err() {
                    served.usage_delivered = false;
                    break;
                }
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
            }
            self.record_served(served);
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/event-stream; charset=utf-8")
            .header("cache-control", "no-cache")
            .header("x-request-id", id)
            .header("request-id", id)
            .body(body.boxed())
            .expect("valid response")
    }
}

fn api_name(api: Api) -> &'static str {
    match api {
        Api::ChatCompletions => "ChatCompletions",
        Api::Responses => "Responses",
        Api::Messages => "Messages",
    }
}

fn json_ok(value: &Value, id: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .header("request-id", id)
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .expect("valid response")
}

fn chat_usage(o: &Outcome) -> Value {
    let prompt = o.input_tokens + o.cache_read + o.cache_write;
    json!({"prompt_tokens": prompt, "completion_tokens": o.output_tokens,
           "total_tokens": prompt + o.output_tokens,
           "prompt_tokens_details": {"cached_tokens": o.cache_read}})
}

fn responses_usage(o: &Outcome) -> Value {
    let input = o.input_tokens + o.cache_read + o.cache_write;
    json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": o.cache_read},
           "output_tokens": o.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
           "total_tokens": input + o.output_tokens})
}

fn messages_usage(o: &Outcome, output: u64) -> Value {
    json!({"input_tokens": o.input_tokens, "cache_creation_input_tokens": o.cache_write,
           "cache_read_input_tokens": o.cache_read,
           "cache_creation": {"ephemeral_5m_input_tokens": o.cache_write, "ephemeral_1h_input_tokens": 0},
           "output_tokens": output})
}

fn stop(o: &Outcome, api: Api) -> &'static str {
    match (api, o.hit_max_tokens) {
        (Api::Messages, true) => "max_tokens",
        (Api::Messages, false) => "end_turn",
        (_, true) => "length",
        (_, false) => "stop",
    }
}

/// The whole (non-streaming) response body of `api`.
fn whole(api: Api, model: &str, o: &Outcome, id: &str, status: &str) -> Value {
    let text = o.words().concat();
    match api {
        Api::ChatCompletions => json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion",
            "created": 1_767_225_600, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": stop(o, api)}],
            "usage": chat_usage(o)}),
        Api::Responses => json!({"id": id, "object": "response", "created_at": 1_767_225_600,
            "status": status, "model": model, "background": false,
            "output": [{"type": "message", "id": format!("msg_{id}"), "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": responses_usage(o)}),
        Api::Messages => json!({"id": format!("msg_{id}"), "type": "message", "role": "assistant",
            "model": model, "content": [{"type": "text", "text": text}],
            "stop_reason": stop(o, api), "stop_sequence": null,
            "usage": messages_usage(o, o.output_tokens)}),
    }
}

fn sse_event(name: Option<&str>, data: &Value) -> String {
    match name {
        Some(n) => format!("event: {n}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// The events of a stream of `api`, usage where the API puts it.
fn events(api: Api, model: &str, o: &Outcome, id: &str, include_usage: bool) -> Vec<String> {
    match api {
        Api::ChatCompletions => chat_events(model, o, id, include_usage),
        Api::Responses => responses_events(model, o, id),
        Api::Messages => messages_events(model, o, id),
    }
}

/// Chat Completions chunks; the usage chunk (`choices: []`) only when `include_usage` asked.
fn chat_events(model: &str, o: &Outcome, id: &str, include_usage: bool) -> Vec<String> {
    let api = Api::ChatCompletions;
    let words = o.words();
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut c = json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion.chunk",
            "created": 1_767_225_600, "model": model, "choices": choices});
        if let Some(u) = usage {
            c["usage"] = u;
        }
        sse_event(None, &c)
    };
    let mut e = vec![chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        None,
    )];
    e.extend(words.iter().map(|w| {
        chunk(
            json!([{"index": 0, "delta": {"content": w}, "finish_reason": null}]),
            None,
        )
    }));
    e.push(chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": stop(o, api)}]),
        None,
    ));
    if include_usage {
        e.push(chunk(json!([]), Some(chat_usage(o))));
    }
    e.push("data: [DONE]\n\n".into());
    e
}

/// The Responses stream's events as the OpenAI SDK checks their order; usage in
/// `response.completed`.
fn responses_events(model: &str, o: &Outcome, id: &str) -> Vec<String> {
    let api = Api::Responses;
    let words = o.words();
    let mut created = whole(api, model, o, id, "in_progress");
    created["usage"] = Value::Null;
    created["output"] = json!([]);
    let done = whole(api, model, o, id, "completed");
    let item = done["output"][0].clone();
    let text = o.words().concat();
    let part = |t: &str| json!({"type": "output_text", "text": t, "annotations": []});
    let at = |n: usize| json!({"item_id": format!("msg_{id}"), "output_index": 0, "content_index": 0, "sequence_number": n});
    let with = |mut base: Value, kind: &str, extra: Value| {
        base["type"] = json!(kind);
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        sse_event(Some(kind), &base)
    };
    let mut pending = item.clone();
    pending["status"] = json!("in_progress");
    pending["content"] = json!([]);
    let mut e = vec![
        sse_event(
            Some("response.created"),
            &json!({"type": "response.created", "sequence_number": 0, "response": created}),
        ),
        sse_event(
            Some("response.in_progress"),
            &json!({"type": "response.in_progress", "sequence_number": 1, "response": created}),
        ),
        sse_event(
            Some("response.output_item.added"),
            &json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0, "item": pending}),
        ),
        with(
            at(3),
            "response.content_part.added",
            json!({"part": part("")}),
        ),
    ];
    let n = words.len();
    e.extend(words.iter().enumerate().map(|(i, w)| {
        with(
            at(4 + i),
            "response.output_text.delta",
            json!({"delta": w, "logprobs": []}),
        )
    }));
    e.push(with(
        at(4 + n),
        "response.output_text.done",
        json!({"text": text, "logprobs": []}),
    ));
    e.push(with(
        at(5 + n),
        "response.content_part.done",
        json!({"part": part(&text)}),
    ));
    e.push(sse_event(Some("response.output_item.done"), &json!({"type": "response.output_item.done", "sequence_number": 6 + n, "output_index": 0, "item": item})));
    e.push(sse_event(
        Some("response.completed"),
        &json!({"type": "response.completed", "sequence_number": 7 + n, "response": done}),
    ));
    e
}

/// The Messages stream: the input side of the usage in `message_start`, the output count in
/// `message_delta`.
fn messages_events(model: &str, o: &Outcome, id: &str) -> Vec<String> {
    let api = Api::Messages;
    let words = o.words();
    let mut start = whole(api, model, o, id, "");
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"] = messages_usage(o, 1);
    let mut e = vec![
        sse_event(
            Some("message_start"),
            &json!({"type": "message_start", "message": start}),
        ),
        sse_event(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        sse_event(Some("ping"), &json!({"type": "ping"})),
    ];
    e.extend(words.iter().map(|w| sse_event(Some("content_block_delta"),
        &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}))));
    e.push(sse_event(
        Some("content_block_stop"),
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    e.push(sse_event(Some("message_delta"), &json!({"type": "message_delta",
        "delta": {"stop_reason": stop(o, api), "stop_sequence": null}, "usage": {"output_tokens": o.output_tokens}})));
    e.push(sse_event(
        Some("message_stop"),
        &json!({"type": "message_stop"}),
    ));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Outcome {
        Outcome {
            input_tokens: 10,
            output_tokens: 3,
            cache_read: 4,
            cache_write: 2,
            latency_ms: 0,
            hit_max_tokens: false,
            word_bytes: 0,
        }
    }

    #[test]
    fn aigov_reads_back_the_usage_each_api_reports() {
        for api in [Api::ChatCompletions, Api::Responses, Api::Messages] {
            let body = whole(api, "m", &outcome(), "r", "completed").to_string();
            let u = mantle::body_usage(api, body.as_bytes()).unwrap();
            assert_eq!((u.output_tokens, u.cache_read_tokens), (3, 4), "{api:?}");
        }
    }

    #[test]
    fn a_chat_stream_has_usage_only_when_asked() {
        let without = events(Api::ChatCompletions, "m", &outcome(), "r", false).concat();
        assert!(!without.contains("usage"));
        let with = events(Api::ChatCompletions, "m", &outcome(), "r", true).concat();
        assert!(with.contains("\"completion_tokens\":3"));
    }
}
