//! The simulator's HTTP server: routing, request analysis, the four operations, and the
//! `/_sim/*` control endpoints.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aigov_api::catalog::ModelFamily;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Channel, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::directives::{self, Directives};
use crate::families::{self, Outcome};
use crate::prompt::{self, PromptShape};
use crate::{errors, stream};

/// The largest request body accepted (Bedrock's own limit is in this range).
const MAX_BODY: usize = 25 * 1024 * 1024;

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// Settings changeable at run time with `POST /_sim/config`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Config {
    /// Delay before each answer.
    pub latency_ms: u64,
    /// Delay between stream events.
    pub chunk_delay_ms: u64,
    /// Output tokens when neither a directive nor the request's bound says otherwise.
    pub default_output_tokens: u64,
    /// Errors to answer the next requests with, first first (e.g. `["ThrottlingException"]`).
    pub errors: Vec<String>,
    /// The model an application inference profile ARN stands for.
    pub application_profile_model: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            latency_ms: 0,
            chunk_delay_ms: 0,
            default_output_tokens: 16,
            errors: Vec::new(),
            application_profile_model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
        }
    }
}

/// One request the simulator answered, for tests that count what was served.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Served {
    /// The `x-amzn-RequestId` it answered with.
    pub request_id: String,
    /// `Converse`, `ConverseStream`, `InvokeModel` or `InvokeModelWithResponseStream`.
    pub operation: String,
    /// The model ID as decoded from the path.
    pub model_id: String,
    /// HTTP status of the answer.
    pub status: u16,
    /// The error code, if it answered with one.
    pub error: Option<String>,
    /// Uncached input tokens reported.
    pub input_tokens: u64,
    /// Output tokens reported.
    pub output_tokens: u64,
    /// Cache-read tokens reported.
    pub cache_read_tokens: u64,
    /// Cache-write tokens reported.
    pub cache_write_tokens: u64,
    /// False when a stream was cut before its usage-bearing event.
    pub usage_delivered: bool,
    /// The SigV4 credential scope's service and region (`bedrock/us-east-1`).
    pub signed_for: String,
    /// The access key ID that signed the request (empty for an API key or no signature).
    #[serde(default)]
    pub access_key: String,
    /// True when the simulator knew the key's secret and the signature checked out.
    #[serde(default)]
    pub signature_verified: bool,
    /// What the call cost beyond its tokens, priced at the catalog's unit rates from the
    /// units reported (guardrail text units, seconds of an async job's output); empty if none.
    #[serde(default)]
    pub unit_cost: String,
    /// The request metadata it received (Converse `requestMetadata`, the InvokeModel
    /// `X-Amzn-Bedrock-Request-Metadata` header), as validated; None when the call had none.
    #[serde(default)]
    pub request_metadata: Option<BTreeMap<String, String>>,
    /// Speech input tokens reported (a bidirectional session; priced in `unit_cost`).
    #[serde(default)]
    pub speech_input_tokens: u64,
    /// Speech output tokens reported (a bidirectional session; priced in `unit_cost`).
    #[serde(default)]
    pub speech_output_tokens: u64,
}

impl Served {
    /// A request about to be answered.
    pub fn new(request_id: &str, operation: &str, model_id: &str, signed_for: &str) -> Served {
        Served {
            request_id: request_id.to_owned(),
            operation: operation.to_owned(),
            model_id: model_id.to_owned(),
            status: 200,
            error: None,
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            usage_delivered: false,
            signed_for: signed_for.to_owned(),
            access_key: String::new(),
            signature_verified: false,
            unit_cost: String::new(),
            request_metadata: None,
            speech_input_tokens: 0,
            speech_output_tokens: 0,
        }
    }
}

/// The simulator's shared state.
#[derive(Default)]
pub struct Simulator {
    config: Mutex<Config>,
    /// Secrets of access keys whose SigV4 signatures are checked (others are not). Fixed at
    /// start, unlike the run-time `Config`, and never shown.
    sigv4_secrets: std::collections::HashMap<String, String>,
    served: Mutex<Vec<Served>>,
    cached_prefixes: Mutex<HashSet<(String, String)>>,
    responses: Mutex<std::collections::HashMap<String, crate::mantle::Stored>>,
    jobs: Mutex<Vec<crate::runtime_ops::Job>>,
    next_id: AtomicU64,
    /// Where served calls go for Bedrock's model invocation logs, when enabled.
    invocation_logs: Option<crate::invocation_logs::InvocationLogs>,
}

/// A running simulator.
pub struct Handle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state, to inspect from in-process tests.
    pub simulator: Arc<Simulator>,
}

/// Serves the simulator on `listener` until the process ends.
pub async fn serve(listener: TcpListener, config: Config) -> std::io::Result<Handle> {
    serve_verifying(listener, config, Default::default()).await
}

/// Like `serve`, checking the SigV4 signatures of the keys in `sigv4_secrets` (key → secret).
pub async fn serve_verifying(
    listener: TcpListener,
    config: Config,
    sigv4_secrets: std::collections::HashMap<String, String>,
) -> std::io::Result<Handle> {
    serve_with(listener, config, sigv4_secrets, None).await
}

/// Like `serve_verifying`, also writing Bedrock's model invocation logs through
/// `invocation_logs` (see [`crate::invocation_logs`]).
pub async fn serve_with(
    listener: TcpListener,
    config: Config,
    sigv4_secrets: std::collections::HashMap<String, String>,
    invocation_logs: Option<crate::invocation_logs::InvocationLogs>,
) -> std::io::Result<Handle> {
    let addr = listener.local_addr()?;
    let simulator = Arc::new(Simulator {
        config: Mutex::new(config),
        sigv4_secrets,
        invocation_logs,
        ..Simulator::default()
    });
    let shared = simulator.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let sim = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let sim = sim.clone();
                    async move { Ok::<_, Infallible>(sim.handle(req).await) }
                });
                // HTTP/1.1, and HTTP/2 with prior knowledge (h2c), which the bidirectional
                // stream needs.
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    Ok(Handle { addr, simulator })
}

/// A Bedrock error response.
pub(crate) fn full_error(code: &str, message: &str, request_id: &str) -> Response<Body> {
    full(errors::response(code, message, request_id))
}

fn full(response: Response<Bytes>) -> Response<Body> {
    response.map(|b| Full::new(b).boxed())
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    full(
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Bytes::from(value.to_string()))
            .expect("valid response"),
    )
}

/// The four runtime operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Converse,
    ConverseStream,
    InvokeModel,
    InvokeModelWithResponseStream,
}

impl Operation {
    fn from_path(action: &str) -> Option<Self> {
        Some(match action {
            "converse" => Operation::Converse,
            "converse-stream" => Operation::ConverseStream,
            "invoke" => Operation::InvokeModel,
            "invoke-with-response-stream" => Operation::InvokeModelWithResponseStream,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Operation::Converse => "Converse",
            Operation::ConverseStream => "ConverseStream",
            Operation::InvokeModel => "InvokeModel",
            Operation::InvokeModelWithResponseStream => "InvokeModelWithResponseStream",
        }
    }

    fn is_converse(self) -> bool {
        matches!(self, Operation::Converse | Operation::ConverseStream)
    }

    fn streams(self) -> bool {
        matches!(
            self,
            Operation::ConverseStream | Operation::InvokeModelWithResponseStream
        )
    }
}

impl Simulator {
    /// Every request served so far.
    pub fn served(&self) -> Vec<Served> {
        self.served.lock().expect("lock").clone()
    }

    /// Replaces the run-time settings (what `POST /_sim/config` does).
    pub fn configure(&self, config: Config) {
        *self.config.lock().expect("lock") = config;
    }

    /// Answers with a Bedrock error and records the refusal.
    fn refuse(&self, mut served: Served, code: &str, message: &str) -> Response<Body> {
        served.status = errors::status_for(code).as_u16();
        served.error = Some(code.to_owned());
        let response = full(errors::response(code, message, &served.request_id));
        self.record(served);
        response
    }

    fn record(&self, served: Served) {
        self.served.lock().expect("lock").push(served);
    }

    pub(crate) fn record_served(&self, served: Served) {
        self.record(served);
    }

    /// Records a runtime call and queues it for the invocation logs (which keep only what
    /// Bedrock would log).
    fn record_invocation(&self, served: Served, input: Option<Value>, output: Option<Value>) {
        if let Some(logs) = &self.invocation_logs {
            logs.submit(crate::invocation_logs::Invocation {
                served: served.clone(),
                at: jiff::Timestamp::now(),
                input_body: input,
                output_body: output,
            });
        }
        self.record(served);
    }

    /// Checks a SigV4 signature as Bedrock does (for the keys whose secrets it was given).
    pub(crate) fn verify_signature(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<bool, crate::sigv4::Refusal> {
        crate::sigv4::verify(&self.sigv4_secrets, method, path_and_query, headers, body)
    }

    /// The next queued error of `POST /_sim/config`, taken.
    pub(crate) fn next_queued_error(&self) -> Option<String> {
        let mut c = self.config.lock().expect("lock");
        (!c.errors.is_empty()).then(|| c.errors.remove(0))
    }

    /// The secret of an access key whose signatures are checked.
    pub(crate) fn secret_of(&self, access_key: &str) -> Option<String> {
        self.sigv4_secrets.get(access_key).cloned()
    }

    /// A `/model/{id}/...` request about to be answered as `operation`: its ID, model (from
    /// the path) and signer.
    pub(crate) fn served_for(&self, req: &Request<Incoming>, operation: &str) -> Served {
        let rest = req.uri().path().trim_start_matches("/model/");
        let raw_model = rest.split_once('/').map_or(rest, |(m, _)| m);
        let model_id = percent_decode_str(raw_model)
            .decode_utf8_lossy()
            .into_owned();
        let scope = credential_scope(req.headers()).unwrap_or_default();
        let mut served = Served::new(&self.request_id(), operation, &model_id, &scope);
        served.access_key = access_key(req.headers()).unwrap_or_default();
        served
    }

    pub(crate) fn current_config(&self) -> Config {
        self.config.lock().expect("lock").clone()
    }

    pub(crate) fn store_response(&self, id: String, stored: crate::mantle::Stored) {
        self.responses.lock().expect("lock").insert(id, stored);
    }

    pub(crate) fn load_response(&self, id: &str) -> Option<(std::time::Instant, Value)> {
        self.responses
            .lock()
            .expect("lock")
            .get(id)
            .map(|s| s.snapshot())
    }

    pub(crate) fn jobs(&self) -> std::sync::MutexGuard<'_, Vec<crate::runtime_ops::Job>> {
        self.jobs.lock().expect("lock")
    }

    pub(crate) fn refuse_served(
        &self,
        served: Served,
        code: &str,
        message: &str,
    ) -> Response<Body> {
        self.refuse(served, code, message)
    }

    pub(crate) fn outcome_for(
        &self,
        model_id: &str,
        shape: &PromptShape,
        d: &Directives,
        config: &Config,
        model_max: u32,
    ) -> Outcome {
        self.outcome(model_id, shape, d, config, model_max)
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/_sim/health") => json_response(StatusCode::OK, &json!({"ok": true})),
            (&Method::GET, "/_sim/requests") => json_response(
                StatusCode::OK,
                &serde_json::to_value(self.served()).expect("serializable"),
            ),
            (&Method::GET, "/_sim/config") => {
                let config = self.config.lock().expect("lock").clone();
                json_response(
                    StatusCode::OK,
                    &serde_json::to_value(config).expect("serializable"),
                )
            }
            (&Method::POST, "/_sim/reset") => {
                self.configure(Config::default());
                self.served.lock().expect("lock").clear();
                self.cached_prefixes.lock().expect("lock").clear();
                self.responses.lock().expect("lock").clear();
                self.jobs.lock().expect("lock").clear();
                json_response(StatusCode::OK, &json!({"reset": true}))
            }
            (&Method::POST, "/_sim/config") => {
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                match serde_json::from_slice::<Config>(&body) {
                    Ok(config) => {
                        self.configure(config);
                        json_response(StatusCode::OK, &json!({"configured": true}))
                    }
                    Err(e) => {
                        json_response(StatusCode::BAD_REQUEST, &json!({"message": e.to_string()}))
                    }
                }
            }
            (&Method::POST, p) if p.ends_with("/count-tokens") && p.starts_with("/model/") => {
                self.count_tokens(req).await
            }
            (&Method::POST, p)
                if p.starts_with("/model/") && p.ends_with("/invoke-with-bidirectional-stream") =>
            {
                let served = self.served_for(&req, "InvokeModelWithBidirectionalStream");
                self.bidirectional(req, served).await
            }
            (&Method::POST, p) if p.starts_with("/model/") => self.invoke(req).await,
            (&Method::POST, p) if p.starts_with("/guardrail/") && p.ends_with("/apply") => {
                self.apply_guardrail(req).await
            }
            (&Method::POST, "/guardrail-checks/invoke") => self.guardrail_checks(req).await,
            (_, p) if p == "/async-invoke" || p.starts_with("/async-invoke/") => {
                self.async_invoke(req).await
            }
            (_, p) if crate::mantle::is_mantle_path(p) => self.mantle(req).await,
            _ => {
                let id = self.request_id();
                full(errors::response(
                    "UnknownOperationException",
                    "The requested operation is not recognized by the service.",
                    &id,
                ))
            }
        }
    }

    pub(crate) fn request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("5151a1e0-0000-4000-8000-{n:012x}")
    }

    async fn invoke(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let request_id = self.request_id();
        let rest = req.uri().path().trim_start_matches("/model/").to_owned();
        let (raw_model, action) = rest.split_once('/').unwrap_or((&rest, ""));
        let model_id = percent_decode_str(raw_model)
            .decode_utf8_lossy()
            .into_owned();
        let signed_for = credential_scope(req.headers());
        let mut served = Served::new(&request_id, "", &model_id, "");
        served.signed_for = signed_for.clone().unwrap_or_default();
        served.access_key = access_key(req.headers()).unwrap_or_default();
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let request_headers = req.headers().clone();
        let Some(operation) = Operation::from_path(action) else {
            return full(errors::response(
                "UnknownOperationException",
                "The requested operation is not recognized by the service.",
                &request_id,
            ));
        };
        served.operation = operation.name().to_owned();
        if signed_for.is_none() {
            return self.refuse(
                served,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            );
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return self.refuse(
                    served,
                    "ValidationException",
                    "Input is too long for requested model.",
                );
            }
        };
        let (config, queued_error) = {
            let mut c = self.config.lock().expect("lock");
            let queued = (!c.errors.is_empty()).then(|| c.errors.remove(0));
            (c.clone(), queued)
        };
        match crate::sigv4::verify(
            &self.sigv4_secrets,
            "POST",
            &path_and_query,
            &request_headers,
            &body,
        ) {
            Ok(verified) => served.signature_verified = verified,
            Err(crate::sigv4::Refusal::Mismatch) => {
                return self.refuse(
                    served,
                    "InvalidSignatureException",
                    "The request signature we calculated does not match the signature you provided.",
                );
            }
            Err(crate::sigv4::Refusal::Malformed(what)) => {
                return self.refuse(
                    served,
                    "IncompleteSignatureException",
                    &format!("The request signature is incomplete: {what}."),
                );
            }
        }
        // Bedrock's validation of the request metadata, the same reader the gateway uses.
        let header = request_headers
            .get(aigov_api::request_metadata::HEADER)
            .map(|v| v.as_bytes());
        if !operation.is_converse() {
            match aigov_api::request_metadata::from_header(header) {
                Ok(m) => served.request_metadata = m,
                Err(e) => return self.refuse(served, "ValidationException", &e.to_string()),
            }
        }
        let text = String::from_utf8_lossy(&body);
        let directives = directives::parse(&text);
        if let Some(code) = directives.error.clone().or(queued_error) {
            tokio::time::sleep(Duration::from_millis(
                directives.latency_ms.unwrap_or(config.latency_ms),
            ))
            .await;
            return self.refuse(served, &code, &format!("Simulated {code}."));
        }
        let resolved = aigov_api::model::resolve(&model_id);
        let catalog = resolved.catalog.or_else(|| match resolved.routing {
            aigov_api::model::Routing::ApplicationProfile => {
                aigov_api::catalog::lookup(&config.application_profile_model)
            }
            _ => None,
        });
        let Some(entry) = catalog else {
            return self.refuse(
                served,
                "ValidationException",
                "The provided model identifier is invalid.",
            );
        };
        let Ok(json) = serde_json::from_slice::<Value>(&body) else {
            return self.refuse(
                served,
                "ValidationException",
                "Malformed input request, please reformat your input and try again.",
            );
        };
        let converse = operation.is_converse();
        if converse {
            match aigov_api::request_metadata::from_body(&json) {
                Ok(m) => served.request_metadata = m,
                Err(e) => return self.refuse(served, "ValidationException", &e.to_string()),
            }
        }
        if converse && !json.get("messages").is_some_and(Value::is_array) {
            return self.refuse(served, "ValidationException",
                "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null");
        }
        if !converse && let Err(message) = families::validate(entry.family, &json) {
            return self.refuse(served, "ValidationException", &message);
        }
        if !converse
            && let Some(message) = crate::runtime_ops::invoke_guardrail_error(&request_headers)
        {
            return self.refuse(served, "ValidationException", message);
        }
        let shape = prompt::analyze(&json, (!converse).then_some(entry.family));
        let outcome = self.outcome(
            &model_id,
            &shape,
            &directives,
            &config,
            entry.max_output_tokens,
        );
        served.input_tokens = outcome.input_tokens;
        served.output_tokens = outcome.output_tokens;
        served.cache_read_tokens = outcome.cache_read;
        served.cache_write_tokens = outcome.cache_write;
        tokio::time::sleep(Duration::from_millis(outcome.latency_ms)).await;
        // A guardrail is billed whether or not its trace is asked for.
        let guardrail = crate::runtime_ops::inference_guardrail(
            converse,
            &json,
            &request_headers,
            shape.text_chars,
            &outcome,
        );
        if let Some(g) = &guardrail {
            served.unit_cost = g.cost.to_api_string();
        }
        let trace = guardrail.as_ref().and_then(|g| g.trace.clone());
        let invoked = Invoked {
            family: entry.family,
            model_id: entry.model_id,
            request_id: &request_id,
            outcome: &outcome,
            guardrail: guardrail.as_ref(),
        };
        if !operation.streams() {
            served.usage_delivered = true;
            let response = match operation {
                Operation::Converse => converse_response(&request_id, &outcome, trace),
                _ => invoke_response(&invoked),
            };
            let output = serde_json::from_slice(response.body()).ok();
            self.record_invocation(served, Some(json), output);
            return full(response);
        }
        let events = match operation {
            Operation::ConverseStream => converse_stream_events(&outcome, trace),
            _ => invoke_stream_chunks(&invoked),
        };
        self.stream_response(
            served,
            operation,
            events,
            &directives,
            directives.chunk_delay_ms.unwrap_or(config.chunk_delay_ms),
            json,
        )
    }

    fn outcome(
        &self,
        model_id: &str,
        shape: &PromptShape,
        d: &Directives,
        config: &Config,
        model_max: u32,
    ) -> Outcome {
        let total_input = prompt::tokens_for_chars(shape.text_chars).max(1);
        let (mut cache_read, mut cache_write) = (0, 0);
        if let Some(prefix) = &shape.cached_prefix {
            let tokens = prompt::tokens_for_chars(prefix.chars().count());
            let first_time = self
                .cached_prefixes
                .lock()
                .expect("lock")
                .insert((model_id.to_owned(), prefix.clone()));
            if first_time {
                cache_write = tokens
            } else {
                cache_read = tokens
            }
        }
        let bound = shape.max_tokens.unwrap_or(u64::from(model_max));
        let wanted = d.output_tokens.unwrap_or(config.default_output_tokens);
        Outcome {
            input_tokens: d
                .input_tokens
                .unwrap_or(total_input.saturating_sub(cache_read + cache_write)),
            output_tokens: wanted.min(bound),
            cache_read: d.cache_read.unwrap_or(cache_read),
            cache_write: d.cache_write.unwrap_or(cache_write),
            latency_ms: d.latency_ms.unwrap_or(config.latency_ms),
            hit_max_tokens: wanted > bound,
            word_bytes: d.word_bytes.unwrap_or(0),
        }
    }

    fn stream_response(
        self: Arc<Self>,
        mut served: Served,
        operation: Operation,
        mut events: Vec<Bytes>,
        d: &Directives,
        delay_ms: u64,
        input: Value,
    ) -> Response<Body> {
        // The usage-bearing event is the last one; truncation drops it, a stream error replaces
        // the second half of the stream with an exception event.
        if d.truncate {
            events.pop();
        } else if let Some(code) = &d.stream_error {
            events.truncate(events.len() / 2);
            events.push(stream::exception(
                &errors::stream_member(code),
                &format!("Simulated {code}."),
            ));
            served.error = Some(code.clone());
        } else {
            served.usage_delivered = true;
        }
        let (mut sender, body) = Channel::<Bytes, Infallible>::new(4);
        let request_id = served.request_id.clone();
        let sim = self.clone();
        tokio::spawn(async move {
            let mut delivered_all = true;
            for event in events {
                if sender.send(Frame::data(event)).await.is_err() {
                    delivered_all = false;
                    break;
                }
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
            }
            if !delivered_all {
                served.usage_delivered = false;
            }
            sim.record_invocation(served, Some(input), None);
        });
        let mut builder = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/vnd.amazon.eventstream")
            .header("x-amzn-RequestId", &request_id);
        if operation == Operation::InvokeModelWithResponseStream {
            builder = builder.header("x-amzn-bedrock-content-type", "application/json");
        }
        builder.body(body.boxed()).expect("valid response")
    }
}

/// `service/region` from a SigV4 `Authorization` header, or `bearer` for an API key;
/// `None` when the request is not authenticated at all.
fn credential_scope(headers: &http::HeaderMap) -> Option<String> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    if auth.starts_with("Bearer ") {
        return Some("bearer".into());
    }
    let parsed = crate::sigv4::parse(auth)?;
    Some(format!("{}/{}", parsed.service, parsed.region))
}

/// The access key ID that signed a request.
fn access_key(headers: &http::HeaderMap) -> Option<String> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    crate::sigv4::parse(auth).map(|a| a.access_key.to_owned())
}

fn converse_usage(o: &Outcome) -> Value {
    json!({
        "inputTokens": o.input_tokens,
        "outputTokens": o.output_tokens,
        "totalTokens": o.input_tokens + o.output_tokens + o.cache_read + o.cache_write,
        "cacheReadInputTokens": o.cache_read,
        "cacheWriteInputTokens": o.cache_write,
    })
}

fn stop_reason(o: &Outcome) -> &'static str {
    if o.hit_max_tokens {
        "max_tokens"
    } else {
        "end_turn"
    }
}

fn converse_response(request_id: &str, o: &Outcome, trace: Option<Value>) -> Response<Bytes> {
    let mut body = json!({
        "output": {"message": {"role": "assistant", "content": [{"text": o.words().concat()}]}},
        "stopReason": stop_reason(o),
        "usage": converse_usage(o),
        "metrics": {"latencyMs": o.latency_ms},
    });
    if let Some(trace) = trace {
        body["trace"] = trace;
    }
    Response::builder()
        .header("content-type", "application/json")
        .header("x-amzn-RequestId", request_id)
        .body(Bytes::from(body.to_string()))
        .expect("valid response")
}

/// What an InvokeModel answer is made of.
struct Invoked<'a> {
    family: ModelFamily,
    model_id: &'a str,
    request_id: &'a str,
    outcome: &'a Outcome,
    guardrail: Option<&'a crate::runtime_ops::ConverseGuardrail>,
}

/// InvokeModelWithResponseStream's chunks; a guardrail's action and trace ride on the last.
fn invoke_stream_chunks(i: &Invoked<'_>) -> Vec<Bytes> {
    let mut chunks = families::chunks(i.family, i.model_id, i.request_id, i.outcome);
    if let Some(g) = i.guardrail
        && let Some(last) = chunks.pop()
    {
        chunks.push(crate::runtime_ops::with_invoke_guardrail(last, g));
    }
    chunks.iter().map(stream::chunk).collect()
}

fn invoke_response(i: &Invoked<'_>) -> Response<Bytes> {
    let (request_id, o) = (i.request_id, i.outcome);
    let mut body = families::response(i.family, i.model_id, request_id, o);
    if let Some(g) = i.guardrail {
        body = crate::runtime_ops::with_invoke_guardrail(body, g);
    }
    Response::builder()
        .header("content-type", "application/json")
        .header("x-amzn-RequestId", request_id)
        .header(
            "X-Amzn-Bedrock-Invocation-Latency",
            o.latency_ms.to_string(),
        )
        .header(
            "X-Amzn-Bedrock-Input-Token-Count",
            o.input_tokens.to_string(),
        )
        .header(
            "X-Amzn-Bedrock-Output-Token-Count",
            o.output_tokens.to_string(),
        )
        .header(
            "X-Amzn-Bedrock-Cache-Read-Input-Token-Count",
            o.cache_read.to_string(),
        )
        .header(
            "X-Amzn-Bedrock-Cache-Write-Input-Token-Count",
            o.cache_write.to_string(),
        )
        .body(Bytes::from(body.to_string()))
        .expect("valid response")
}

/// ConverseStream's events; usage comes only in the final `metadata` event.
fn converse_stream_events(o: &Outcome, trace: Option<Value>) -> Vec<Bytes> {
    let mut events = vec![stream::event("messageStart", &json!({"role": "assistant"}))];
    events.extend(o.words().iter().map(|w| {
        stream::event(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": w}}),
        )
    }));
    events.push(stream::event(
        "contentBlockStop",
        &json!({"contentBlockIndex": 0}),
    ));
    events.push(stream::event(
        "messageStop",
        &json!({"stopReason": stop_reason(o)}),
    ));
    let mut metadata = json!({"usage": converse_usage(o), "metrics": {"latencyMs": o.latency_ms}});
    if let Some(trace) = trace {
        metadata["trace"] = trace;
    }
    events.push(stream::event("metadata", &metadata));
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_scope_names_service_and_region() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKID/20261124/us-west-2/bedrock/aws4_request, SignedHeaders=host, Signature=abc".parse().unwrap(),
        );
        assert_eq!(
            credential_scope(&headers).as_deref(),
            Some("bedrock/us-west-2")
        );
        headers.insert(http::header::AUTHORIZATION, "garbage".parse().unwrap());
        assert_eq!(credential_scope(&headers), None);
        assert_eq!(credential_scope(&http::HeaderMap::new()), None);
    }
}
