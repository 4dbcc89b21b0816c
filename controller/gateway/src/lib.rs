//! The metering gateway: an endpoint compatible with bedrock-runtime and bedrock-mantle that
//! identifies the calling pod, admits the call against every AIBudget that selects it,
//! reserves its worst case, forwards it re-signed, and settles it with the usage Bedrock
//! reports.
//!
//! The modules follow the request, one step each, and [`Gateway::handle`] reads as that list:
//! [`route`] → [`identity`] (authentication shape, then the pod from [`cluster`]) → [`body`] →
//! [`metadata`] (validated as Bedrock does) → [`admission`] → [`ratelimit`] (the soft limit) →
//! [`reserve`] (the worst case, on [`slices`]) → [`forward`] → [`settle`] (relay, [`meter`] /
//! [`sse`] the usage, settle, or [`follow`] a job Bedrock finishes later); a bidirectional
//! speech session is relayed and metered as it goes by [`bidi`]. Calls Bedrock does not bill (CountTokens, reads of
//! jobs and stored responses) pass through and count as requests. Every refusal and failure is
//! one [`error::GatewayError`], rendered in the called API's shape in one place; every call
//! can be followed in the log ([`trace`]).
#![forbid(unsafe_code)]

pub mod admission;
pub mod app;
pub mod bidi;
pub mod body;
pub mod cluster;
pub mod error;
pub mod follow;
pub mod forward;
pub mod guardrail;
pub mod identity;
pub mod metadata;
pub mod meter;
pub mod metrics;
pub mod pod_warnings;
pub mod ratelimit;
pub mod reserve;
pub mod route;
pub mod server;
pub mod settle;
pub mod slices;
pub mod sse;
pub mod tier;
pub mod trace;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;

use aigov_api::request_metadata::RequestMetadata;
use aigov_ledger::clock::Clock;
use aigov_ledger::policy::{BudgetPolicy, Workload};
use aigov_ledger::proto::UsageRecord;
use aigov_runtime::prices::Prices;

use crate::admission::{Admitted, BudgetState, Refused};
use crate::cluster::ClusterView;
use crate::error::GatewayError;
use crate::forward::Upstream;
use crate::metrics::GatewayMetrics;
use crate::pod_warnings::PodWarnings;
use crate::route::{ErrorShape, Metering, Operation, Route};
use crate::settle::{Reading, Settle, Settlement};
use crate::slices::{Figures, Slices};
use crate::trace::CallTrace;

/// Errors a relayed body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body the gateway produces.
pub type ResponseBody = BoxBody<Bytes, BoxError>;

/// The header naming the model a call was downgraded from.
pub const DOWNGRADED_FROM_HEADER: &str = "x-aigov-downgraded-from";
/// The header naming the model billed after a downgrade.
pub const DOWNGRADED_TO_HEADER: &str = "x-aigov-downgraded-to";

/// What to do with a caller whose source IP matches no pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UnknownCallers {
    /// Refuse with 403 AccessDeniedException (the default).
    Refuse,
    /// Forward without metering against any budget (logged and counted).
    Forward,
}

/// The gateway's own settings.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest non-streaming response body read for its usage.
    pub max_response_bytes: usize,
    /// How long a client may take to send its body.
    pub body_timeout: Duration,
    /// How long a response (a stream included) may wait for its client to read on before the
    /// gateway cuts it (`--response-write-timeout`); a cut stream is charged as a hang-up.
    pub write_timeout: Duration,
    /// Callers that are not pods.
    pub unknown_callers: UnknownCallers,
    /// Context window assumed for models not in the catalog.
    pub fallback_context_window: u32,
    /// How often a job Bedrock finishes later (a background response, an async invocation)
    /// is polled.
    pub follow_interval: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_body_bytes: 20 << 20,
            max_response_bytes: 64 << 20,
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            unknown_callers: UnknownCallers::Refuse,
            fallback_context_window: 200_000,
            follow_interval: Duration::from_secs(5),
        }
    }
}

/// Everything a request needs.
pub struct Gateway {
    /// Settings.
    pub config: GatewayConfig,
    /// Pods and budgets.
    pub cluster: ClusterView,
    /// This replica's slices.
    pub slices: Arc<Slices>,
    /// Prices.
    pub prices: Prices,
    /// Bedrock.
    pub upstream: Upstream,
    /// Soft-limit rate caps.
    pub limiter: ratelimit::RateLimiter,
    /// Warning Events on throttled pods.
    pub pod_warnings: Option<PodWarnings>,
    /// Prometheus metrics.
    pub metrics: Arc<GatewayMetrics>,
    /// Time.
    pub clock: Clock,
    /// Prefix of the request IDs the gateway makes for its own refusals.
    pub id_prefix: String,
    next_id: AtomicU64,
}

impl Gateway {
    /// A gateway from its parts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: GatewayConfig,
        cluster: ClusterView,
        slices: Arc<Slices>,
        prices: Prices,
        upstream: Upstream,
        pod_warnings: Option<PodWarnings>,
        metrics: Arc<GatewayMetrics>,
        clock: Clock,
        id_prefix: String,
    ) -> Arc<Gateway> {
        Arc::new(Gateway {
            config,
            cluster,
            slices,
            prices,
            upstream,
            limiter: Default::default(),
            pod_warnings,
            metrics,
            clock,
            id_prefix,
            next_id: AtomicU64::new(1),
        })
    }

    fn request_id(&self) -> String {
        format!(
            "{}-{:012x}",
            self.id_prefix,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Answers one request from `peer`. Never panics on input; every refusal is in the shape
    /// of the API called ([`GatewayError::into_response`]) and counted under its outcome.
    pub async fn handle<B>(
        self: &Arc<Self>,
        peer: IpAddr,
        request: Request<B>,
    ) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let mut call = CallTrace::new(self.request_id(), peer);
        let shape = route::error_shape_of_path(request.uri().path());
        match self.serve(&mut call, request).await {
            Ok((response, outcome)) => {
                self.metrics.request(outcome);
                response
            }
            Err(error) => {
                let shape = call.operation.map_or(shape, Operation::error_shape);
                self.refuse(&call, error, shape)
            }
        }
    }

    /// Step 4, admission: the keys the budgets require, their model rules, downgrade and
    /// limits, each limited value the call carries, the soft limits' rates. Returns what to
    /// call and the states to reserve on (the budgets', then the values').
    fn admit<'p>(
        &self,
        call: &mut CallTrace,
        route: &Route,
        budgets: (&'p [Arc<BudgetPolicy>], &[Option<Figures>]),
        metadata: Option<&RequestMetadata>,
    ) -> Result<(Vec<BudgetState<'p>>, Admitted), GatewayError> {
        let (policies, figures) = budgets;
        let mut states = reserve::budget_states(policies, figures);
        admission::require_keys(&states, route.operation, metadata)
            .map_err(GatewayError::refused)?;
        let admitted = admission::decide(&states, route.operation, &route.model)
            .map_err(GatewayError::refused)?;
        call.admitted(&admitted);
        let values = reserve::value_states(&self.slices, policies, &call.metadata);
        admission::check_values(&values).map_err(GatewayError::refused)?;
        ratelimit::check_soft_limits(&self.limiter, &states, Instant::now())?;
        states.extend(values);
        Ok((states, admitted))
    }

    /// The request path, step by step; `call` learns what each step found.
    async fn serve<B>(
        self: &Arc<Self>,
        call: &mut CallTrace,
        request: Request<B>,
    ) -> Result<(Response<ResponseBody>, &'static str), GatewayError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let mut route = route::accept(request.method(), request.uri().path())?;
        call.routed(&route);
        identity::check_auth(request.headers())?;
        let workload = identity::identify(&self.cluster, call.peer, self.config.unknown_callers)?;
        call.workload = workload.clone();
        if route.operation.metering() == Metering::Session {
            // Its body is the session's input, which ends only with the session.
            return self
                .bidirectional(call, &route, workload.as_deref(), request)
                .await;
        }
        let query = request.uri().query().map(str::to_owned);
        let (parts, body) = request.into_parts();
        let (body, json) = self.read_body(&mut route, &parts, body).await?;
        call.routed(&route);
        let metadata = metadata::read(route.operation, &parts.headers, &json)?;
        call.metadata = metadata::callers(metadata.as_ref());
        call.service_tier = tier::read(route.operation, &parts.headers, &json)?;
        let (policies, figures) = self.budgets(workload.as_deref());
        call.budgets = policies.clone();
        if route.operation.metering() == Metering::Free {
            let request = Passed {
                route: &route,
                parts: &parts,
                query: query.as_deref(),
                body,
            };
            return self
                .pass_through(request, workload.as_deref(), &policies)
                .await;
        }
        let (states, admitted) =
            self.admit(call, &route, (&policies, &figures), metadata.as_ref())?;
        let worst = self.priced_worst_case(
            (route.operation, call.service_tier),
            &admitted.model,
            (&parts.headers, &body),
            &json,
        )?;
        let reservation = reserve::reserve(&self.slices, &states, worst.cost).await?;

        let operation = route.operation;
        self.metrics.overhead(call.forwarding());
        let outgoing = (body, json, &parts.headers);
        let (record, mut out) = self.outgoing(&route, &admitted, call, metadata.as_ref(), outgoing);
        let mut settlement =
            Settlement::new(self.clone(), reservation, worst, record, &admitted, call);
        // The trace the gateway asks for is taken back out of a whole body.
        settlement.hide_trace = guardrail::asks_for_trace(operation, &out.json, &mut out.headers);
        let (body, reading) = reading_of(operation, &out.json, out.body);
        let path = route::path_for(operation, &admitted.model).unwrap_or(route.path_and_query);
        let sent = self.upstream.send(
            operation.endpoint(),
            &parts.method,
            &path,
            query.as_deref(),
            &out.headers,
            body,
        );
        let upstream = match sent.await {
            Ok(r) => r,
            // Timed out: Bedrock may be working on it (and bill it). Otherwise it never got it.
            Err(e @ forward::ForwardError::Timeout(_)) => {
                return Err(settlement.cancel(Settle::Estimated { output_seen: None }, e.into()));
            }
            Err(e) => return Err(settlement.cancel(Settle::Release, e.into())),
        };
        let limits = settle::RelayLimits {
            max_response_bytes: self.config.max_response_bytes,
            write_timeout: self.config.write_timeout,
        };
        let mut response = settle::relay(limits, reading, &path, upstream, settlement).await?;
        mark_downgrade(&mut response, &admitted);
        Ok((response, admitted.outcome()))
    }

    /// The call's usage record (its usage filled in when it settles) and the request as it
    /// goes to Bedrock: the caller's metadata with the gateway's pairs
    /// ([`metadata::forwarded`]); a call whose caller's pairs left no room is counted and so
    /// marked. A caller forwarded unmetered (no pod) gets no pairs.
    fn outgoing(
        &self,
        route: &Route,
        admitted: &Admitted,
        call: &CallTrace,
        caller: Option<&aigov_api::request_metadata::RequestMetadata>,
        (body, json, headers): (Bytes, serde_json::Value, &http::HeaderMap),
    ) -> (UsageRecord, metadata::Forwarded) {
        let workload = call.workload.as_deref();
        let mut record = usage_record(route, admitted, workload);
        record.request_metadata = call.metadata.clone();
        record.service_tier = tier::on_record(call.service_tier);
        let Some(workload) = workload else {
            let out = metadata::Forwarded {
                body,
                json,
                headers: headers.clone(),
                stamped: true,
            };
            return (record, out);
        };
        let pod = (workload, call.budgets.as_slice());
        let out = metadata::forwarded(route.operation, caller, pod, (body, json, headers));
        if !out.stamped {
            self.metrics.metadata_unstamped();
            record.metadata_unstamped = true;
        }
        (record, out)
    }

    /// Reads the request's body (bounded in bytes and time) and, for an operation that has
    /// one, its JSON, which names the model of a mantle call.
    async fn read_body<B>(
        &self,
        route: &mut Route,
        parts: &http::request::Parts,
        body: B,
    ) -> Result<(Bytes, serde_json::Value), GatewayError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let body = body::read(body, self.config.max_body_bytes, self.config.body_timeout).await?;
        let json = match route.operation.has_json_body(&parts.method) {
            true => body::json_object(&body)?,
            false => serde_json::Value::Null,
        };
        route.model_from_body(&json).map_err(|e| match e {
            route::RouteError::BadModelId(id) => GatewayError::BadModelId(id),
            route::RouteError::UnknownOperation => GatewayError::UnknownOperation,
        })?;
        Ok((body, json))
    }

    /// Forwards a call Bedrock does not bill (CountTokens, reading a job or a stored response)
    /// and counts it as a request of every budget that selects the caller once Bedrock
    /// answered it.
    async fn pass_through(
        &self,
        passed: Passed<'_>,
        workload: Option<&Workload>,
        policies: &[Arc<BudgetPolicy>],
    ) -> Result<(Response<ResponseBody>, &'static str), GatewayError> {
        let route = passed.route;
        let upstream = self
            .upstream
            .send(
                route.operation.endpoint(),
                &passed.parts.method,
                &route.path_and_query,
                passed.query,
                &passed.parts.headers,
                passed.body,
            )
            .await?;
        let (mut parts, body) = upstream.into_parts();
        for name in forward::DROPPED_RESPONSE_HEADERS {
            parts.headers.remove(*name);
        }
        if parts.status.is_success() && !policies.is_empty() {
            let request_id = ["x-amzn-requestid", "x-request-id", "request-id"]
                .iter()
                .find_map(|h| parts.headers.get(*h).and_then(|v| v.to_str().ok()))
                .map_or_else(|| self.request_id(), str::to_owned);
            self.slices.record(UsageRecord {
                request_id,
                budgets: policies.iter().map(|p| p.key.clone()).collect(),
                model: route.model.clone(),
                occurred_at_ms: self.clock.now().as_millisecond(),
                pod_namespace: workload.map(|w| w.namespace.clone()).unwrap_or_default(),
                pod_name: workload.map(|w| w.name.clone()).unwrap_or_default(),
                workload: workload.map(|w| w.workload.clone()).unwrap_or_default(),
                operation: route.operation.name().to_owned(),
                ..UsageRecord::default()
            });
        }
        let body = body.map_err(BoxError::from).boxed();
        Ok((Response::from_parts(parts, body), "forwarded"))
    }

    /// The budgets that select `workload` (none for a caller forwarded unmetered), with the
    /// controller's latest figures for each.
    fn budgets(
        &self,
        workload: Option<&Workload>,
    ) -> (Vec<Arc<BudgetPolicy>>, Vec<Option<Figures>>) {
        let policies = workload
            .map(|w| self.cluster.budgets_for(w))
            .unwrap_or_default();
        let figures = self.slices.arrive(policies.iter().map(|p| p.key.as_str()));
        (policies, figures)
    }

    /// Answers a call the gateway refused or failed: counted, recorded against the refusing
    /// budget (with a Warning Event on the pod), logged, rendered.
    fn refuse(
        &self,
        call: &CallTrace,
        error: GatewayError,
        shape: ErrorShape,
    ) -> Response<ResponseBody> {
        let outcome = error.outcome();
        self.metrics.request(outcome);
        if let (Some(refused), Some(workload)) = (error.refusal(), &call.workload) {
            self.record_refusal(call, workload, refused);
        }
        let request_id = error.request_id(&call.request_id).to_owned();
        call.log(&request_id, outcome, error.status(), None);
        error.into_response(&call.request_id, shape)
    }

    /// A refused call counts as a request (and a throttle) of its budget and pod.
    fn record_refusal(&self, call: &CallTrace, workload: &Workload, refused: &Refused) {
        self.slices.record(UsageRecord {
            request_id: call.request_id.clone(),
            budgets: vec![refused.budget.clone()],
            model: call.model.clone().unwrap_or_default(),
            occurred_at_ms: self.clock.now().as_millisecond(),
            pod_namespace: workload.namespace.clone(),
            pod_name: workload.name.clone(),
            workload: workload.workload.clone(),
            refusal: refused.kind as i32,
            request_metadata: call.metadata.clone(),
            operation: call
                .operation
                .map(|o| o.name().to_owned())
                .unwrap_or_default(),
            refused_by: refused.budget.clone(),
            ..UsageRecord::default()
        });
        if let Some(warnings) = &self.pod_warnings {
            warnings.warn(workload, refused.kind, &refused.message);
        }
    }
}

/// A request passed through unmetered.
struct Passed<'a> {
    route: &'a Route,
    parts: &'a http::request::Parts,
    query: Option<&'a str>,
    body: Bytes,
}

/// The body to send and how to read the answer: a streaming Chat Completions call that did
/// not ask for its usage is sent asking for it ([`sse::ask_for_usage`]), and the usage chunk
/// is then kept from the caller.
fn reading_of(operation: Operation, json: &serde_json::Value, body: Bytes) -> (Bytes, Reading) {
    if operation.is_converse()
        && let Some(traced) = guardrail::ask_for_trace(json)
    {
        let body = Bytes::from(traced.to_string());
        return match operation.is_event_stream() {
            true => (body, Reading::EventStream(operation)),
            false => (body, Reading::Whole(operation)),
        };
    }
    let Some(api) = operation.mantle_api() else {
        return match operation.is_event_stream() {
            true => (body, Reading::EventStream(operation)),
            false => (body, Reading::Whole(operation)),
        };
    };
    if !aigov_api::mantle::is_stream(json) {
        return (body, Reading::Whole(operation));
    }
    let asked = (api == aigov_api::mantle::Api::ChatCompletions)
        .then(|| sse::ask_for_usage(json))
        .flatten();
    let strip_usage_chunk = asked.is_some();
    let body = asked.map_or(body, |v| Bytes::from(v.to_string()));
    (
        body,
        Reading::Sse {
            api,
            strip_usage_chunk,
        },
    )
}

/// The usage record of a forwarded call, its usage filled in when it settles.
fn usage_record(route: &Route, admitted: &Admitted, workload: Option<&Workload>) -> UsageRecord {
    UsageRecord {
        model: admitted.model.clone(),
        pod_namespace: workload.map(|w| w.namespace.clone()).unwrap_or_default(),
        pod_name: workload.map(|w| w.name.clone()).unwrap_or_default(),
        workload: workload.map(|w| w.workload.clone()).unwrap_or_default(),
        operation: route.operation.name().to_owned(),
        downgraded_from: admitted.downgraded_from.clone().unwrap_or_default(),
        ..UsageRecord::default()
    }
}

/// Tells the client its call went to a cheaper model ([`DOWNGRADED_FROM_HEADER`],
/// [`DOWNGRADED_TO_HEADER`]).
fn mark_downgrade(response: &mut Response<ResponseBody>, admitted: &Admitted) {
    let Some(from) = &admitted.downgraded_from else {
        return;
    };
    if let (Ok(f), Ok(t)) = (
        HeaderValue::from_str(from),
        HeaderValue::from_str(&admitted.model),
    ) {
        let headers = response.headers_mut();
        headers.insert(DOWNGRADED_FROM_HEADER, f);
        headers.insert(DOWNGRADED_TO_HEADER, t);
    }
}

/// What unit tests of several modules build on.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use prometheus_client::registry::Registry;

    use crate::forward::UpstreamConfig;
    use crate::slices::SliceConfig;

    /// A gateway with the caches in `cluster`, no controller, and a Bedrock nobody listens at;
    /// its metrics in the registry returned.
    pub fn gateway(
        unknown_callers: UnknownCallers,
        cluster: ClusterView,
    ) -> (Arc<Gateway>, Registry) {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut registry = Registry::default();
        let metrics = Arc::new(GatewayMetrics::register(&mut registry));
        let upstream = Upstream::new(
            UpstreamConfig {
                endpoint: "http://127.0.0.1:1".into(),
                mantle_endpoint: "http://127.0.0.1:1".into(),
                mantle_api_key: None,
                region: "us-east-1".into(),
                timeout: Duration::from_secs(5),
            },
            SharedCredentialsProvider::new(Credentials::new("AKID", "secret", None, None, "test")),
        )
        .unwrap();
        let slices = Slices::new(SliceConfig {
            gateway_id: "test".into(),
            endpoints: Vec::new(),
            interval: Duration::from_millis(250),
            ttl: Duration::from_secs(20),
            slice_fraction: rust_decimal::Decimal::new(5, 2),
            max_pending: 100,
            batch: 100,
        });
        let config = GatewayConfig {
            unknown_callers,
            ..GatewayConfig::default()
        };
        let gateway = Gateway::new(
            config,
            cluster,
            slices,
            Prices::default(),
            upstream,
            None,
            metrics,
            Clock::system(),
            "aigov-test".into(),
        );
        (gateway, registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use http_body_util::{BodyExt, Full};
    use prometheus_client::registry::Registry;

    const SIGNED: &str = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, \
                          SignedHeaders=host, Signature=abc";

    /// A gateway with no pods, no budgets, no controller, and a Bedrock nobody listens at.
    fn gateway(unknown_callers: UnknownCallers) -> (Arc<Gateway>, Registry) {
        // Listed, and nothing found: every caller is unknown.
        let cluster = ClusterView::synced_empty();
        gateway_seeing(unknown_callers, cluster)
    }

    /// Like [`gateway`], with the caches in `cluster`.
    fn gateway_seeing(
        unknown_callers: UnknownCallers,
        cluster: ClusterView,
    ) -> (Arc<Gateway>, Registry) {
        crate::testing::gateway(unknown_callers, cluster)
    }

    async fn call(
        gateway: &Arc<Gateway>,
        path: &str,
        authorization: Option<&str>,
        body: &'static str,
    ) -> (Response<ResponseBody>, String) {
        let mut request = Request::post(path);
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        let request = request
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let response = gateway.handle("10.9.8.7".parse().unwrap(), request).await;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        (
            Response::from_parts(parts, Full::new(bytes).map_err(|n| match n {}).boxed()),
            text,
        )
    }

    fn counted(registry: &Registry, outcome: &str) -> bool {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text.contains(&format!(
            "gateway_requests_total{{outcome=\"{outcome}\"}} 1"
        ))
    }

    #[tokio::test]
    async fn a_path_that_is_no_bedrock_operation_is_a_404_counted_as_unknown_operation() {
        let (gateway, registry) = gateway(UnknownCallers::Refuse);
        let (response, body) =
            call(&gateway, "/guardrail/g/version/1/list", Some(SIGNED), "{}").await;
        assert_eq!(response.status(), 404);
        assert!(body.contains("this is none of their operations"), "{body}");
        assert_eq!(
            response.headers()["x-amzn-requestid"],
            "aigov-test-000000000001"
        );
        assert!(counted(&registry, "unknown_operation"));
    }

    #[tokio::test]
    async fn hostile_mantle_requests_get_the_error_shape_of_the_api_called() {
        let (gateway, _) = gateway(UnknownCallers::Forward);
        let (response, body) = call(&gateway, "/v1/chat/completions", Some("Bearer k"), "[]").await;
        assert_eq!(response.status(), 400);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"]["type"], "invalid_request_error", "{body}");
        let (response, body) = call(
            &gateway,
            "/v1/chat/completions",
            Some("Bearer k"),
            r#"{"messages":[]}"#,
        )
        .await;
        assert_eq!(response.status(), 400, "no model: {body}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["code"],
            "model_not_found"
        );
        let (response, body) = call(&gateway, "/anthropic/v1/messages", None, "{}").await;
        assert_eq!(response.status(), 401);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (json["type"].as_str(), json["error"]["type"].as_str()),
            (Some("error"), Some("authentication_error"))
        );
        let (response, body) = call(&gateway, "/v1/embeddings", Some("Bearer k"), "{}").await;
        assert_eq!(response.status(), 404);
        assert!(body.contains("\"error\""), "{body}");
        assert_eq!(
            gateway.slices.pending(),
            0,
            "nothing recorded, nothing held"
        );
    }

    #[tokio::test]
    async fn a_bidirectional_session_whose_input_is_no_event_stream_is_invalid_and_holds_nothing() {
        let (gateway, registry) = gateway(UnknownCallers::Forward);
        let path = "/model/amazon.nova-sonic-v1:0/invoke-with-bidirectional-stream";
        let (response, body) = call(&gateway, path, Some(SIGNED), "").await;
        assert_eq!(response.status(), 400);
        assert!(body.contains("before its first event"), "{body}");
        assert!(counted(&registry, "invalid"));
        let (response, body) = call(&gateway, path, Some(SIGNED), "not an event stream").await;
        assert_eq!(response.status(), 400, "{body}");
        assert!(body.contains("not a valid event stream"), "{body}");
        assert_eq!(
            gateway.slices.pending(),
            0,
            "nothing recorded, nothing held"
        );
    }

    #[tokio::test]
    async fn an_unsigned_call_is_refused_before_the_caller_is_looked_up() {
        let (gateway, registry) = gateway(UnknownCallers::Refuse);
        let (response, _) = call(
            &gateway,
            "/model/amazon.nova-micro-v1:0/converse",
            None,
            "{}",
        )
        .await;
        assert_eq!(response.status(), 403);
        assert!(
            response.headers()["x-amzn-errortype"]
                .to_str()
                .unwrap()
                .starts_with("MissingAuthenticationTokenException:")
        );
        assert!(counted(&registry, "unauthenticated"));
    }

    #[tokio::test]
    async fn a_caller_that_is_no_pod_is_refused_naming_its_ip() {
        let (gateway, registry) = gateway(UnknownCallers::Refuse);
        let (response, body) = call(
            &gateway,
            "/model/amazon.nova-micro-v1:0/converse",
            Some(SIGNED),
            "{}",
        )
        .await;
        assert_eq!(response.status(), 403);
        assert!(body.contains("no running pod has IP 10.9.8.7"), "{body}");
        assert!(counted(&registry, "unknown_caller"));
    }

    #[tokio::test]
    async fn a_call_before_the_caches_synced_is_a_retryable_503_not_an_unknown_caller() {
        let (starting, registry) = gateway_seeing(UnknownCallers::Refuse, ClusterView::default());
        let (response, body) = call(
            &starting,
            "/model/amazon.nova-micro-v1:0/converse",
            Some(SIGNED),
            "{}",
        )
        .await;
        assert_eq!(response.status(), 503);
        assert!(
            response.headers()["x-amzn-errortype"]
                .to_str()
                .unwrap()
                .starts_with("ServiceUnavailableException:")
        );
        assert_eq!(response.headers()["retry-after"], "1");
        assert!(body.contains("is starting"), "{body}");
        assert!(counted(&registry, "not_ready"));
        assert_eq!(starting.slices.pending(), 0, "nothing recorded");
    }

    #[tokio::test]
    async fn a_body_that_is_no_json_object_is_invalid() {
        let (gateway, registry) = gateway(UnknownCallers::Forward);
        let (response, body) = call(
            &gateway,
            "/model/amazon.nova-micro-v1:0/converse",
            Some(SIGNED),
            "[]",
        )
        .await;
        assert_eq!(response.status(), 400);
        assert!(body.contains("must be a JSON object"));
        assert!(counted(&registry, "invalid"));
    }

    #[tokio::test]
    async fn an_unreachable_bedrock_is_a_503_counted_as_upstream_error() {
        let (gateway, registry) = gateway(UnknownCallers::Forward);
        let (response, body) = call(
            &gateway,
            "/model/amazon.nova-micro-v1:0/converse",
            Some(SIGNED),
            "{}",
        )
        .await;
        assert_eq!(response.status(), 503);
        assert!(body.contains("Bedrock is unreachable"), "{body}");
        assert!(counted(&registry, "upstream_error"));
        assert_eq!(
            gateway.slices.pending(),
            0,
            "nothing to record for an unmetered call"
        );
    }

    /// Everything written through `tracing` while `f` runs under `filter`.
    async fn logged<F: Future<Output = ()>>(filter: &str, f: F) -> String {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        f.await;
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_per_call_line_is_off_at_info_and_on_with_aigov_call_at_debug() {
        let (gateway, _) = gateway(UnknownCallers::Refuse);
        let path = "/model/amazon.nova-micro-v1:0/converse";
        let quiet = logged("info", async {
            call(&gateway, path, Some(SIGNED), "{}").await;
        })
        .await;
        assert!(!quiet.contains(trace::TARGET), "{quiet}");
        let line = logged("info,aigov::call=debug", async {
            call(&gateway, path, Some(SIGNED), "{}").await;
        })
        .await;
        for needle in [
            "aigov::call",
            "request_id=\"aigov-test-000000000002\"",
            "pod=unknown (10.9.8.7)",
            "model=\"amazon.nova-micro-v1:0\"",
            "operation=\"Converse\"",
            "outcome=\"unknown_caller\"",
            "status=403",
            "added=",
        ] {
            assert!(line.contains(needle), "{needle} in {line}");
        }
    }
}
