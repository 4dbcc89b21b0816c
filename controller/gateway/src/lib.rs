//! The metering gateway: a Bedrock-runtime-compatible endpoint that identifies the calling
//! pod, admits the call against every AIBudget that selects it, reserves its worst case,
//! forwards it re-signed, and settles it with the usage Bedrock reports.
//!
//! The modules follow the request: `route` → `cluster` (identity) → `admission` →
//! `slices` (reservation) → `forward` → `meter` (usage) → settlement (here).

pub mod admission;
pub mod app;
pub mod cluster;
pub mod errors;
pub mod forward;
pub mod meter;
pub mod metrics;
pub mod pod_warnings;
pub mod ratelimit;
pub mod route;
pub mod server;
pub mod slices;

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_api::model::resolve;
use aigov_api::pricing::{InvocationMode, Usage};
use aigov_api::usage::{input_token_bound, output_token_bound, worst_case_cost};
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::metrics::GatewayMetrics;
use crate::pod_warnings::PodWarnings;
use aigov_ledger::clock::Clock;
use aigov_ledger::policy::Workload;
use aigov_ledger::proto::{Refusal, UsageRecord};
use aigov_runtime::prices::Prices;

use admission::{BudgetState, Refused};
use cluster::ClusterView;
use errors::{bedrock_error, denied, throttled};
use forward::{DROPPED_RESPONSE_HEADERS, ForwardError, Upstream};
use route::{Operation, RouteError};
use slices::{Claim, Reservation, Shortfall, Slices};

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
    /// Callers that are not pods.
    pub unknown_callers: UnknownCallers,
    /// Context window assumed for models not in the catalog.
    pub fallback_context_window: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_body_bytes: 20 << 20,
            max_response_bytes: 64 << 20,
            body_timeout: Duration::from_secs(30),
            unknown_callers: UnknownCallers::Refuse,
            fallback_context_window: 200_000,
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

    /// Answers one request from `peer`. Never panics on input; every refusal is Bedrock-shaped.
    pub async fn handle(
        self: &Arc<Self>,
        peer: IpAddr,
        request: Request<Incoming>,
    ) -> Response<ResponseBody> {
        let started = Instant::now();
        let (response, outcome) = self.handle_inner(peer, request, started).await;
        self.metrics.request(outcome);
        response
    }

    async fn handle_inner(
        self: &Arc<Self>,
        peer: IpAddr,
        request: Request<Incoming>,
        started: Instant,
    ) -> (Response<ResponseBody>, &'static str) {
        let request_id = self.request_id();
        let route = match route::route(request.uri().path()) {
            Ok(r) if request.method() == http::Method::POST => r,
            Ok(_) | Err(RouteError::UnknownOperation) => {
                return (
                    bedrock_error(
                        "UnknownOperationException",
                        "the aigov gateway serves POST /model/{modelId}/converse, converse-stream, invoke and \
                         invoke-with-response-stream; other Bedrock operations are not metered and are refused",
                        &request_id,
                    ),
                    "unknown_operation",
                );
            }
            Err(RouteError::BadModelId(id)) => {
                return (
                    bedrock_error(
                        "ValidationException",
                        &format!(
                            "the model identifier {id:?} is not a Bedrock model ID, inference profile or ARN"
                        ),
                        &request_id,
                    ),
                    "invalid",
                );
            }
        };
        if let Err((code, message)) = check_auth(request.headers()) {
            return (bedrock_error(code, message, &request_id), "unauthenticated");
        }
        let workload = match self.cluster.workload(peer) {
            Some(w) => Some(w),
            None if self.config.unknown_callers == UnknownCallers::Forward => None,
            None => {
                return (
                    denied(
                        &format!(
                            "the aigov gateway serves cluster workloads only: no running pod has IP {peer} \
                             (unknown callers are refused by policy)"
                        ),
                        &request_id,
                        "",
                    ),
                    "unknown_caller",
                );
            }
        };
        let query = request.uri().query().map(str::to_owned);
        let (parts, body) = request.into_parts();
        let body = match self.read_body(body, &request_id).await {
            Ok(b) => b,
            Err(response) => return (response, "invalid"),
        };
        let json: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) => {
                return (
                    bedrock_error(
                        "ValidationException",
                        "the request body must be a JSON object",
                        &request_id,
                    ),
                    "invalid",
                );
            }
            Err(e) => {
                return (
                    bedrock_error(
                        "ValidationException",
                        &format!("the request body is not valid JSON: {e}"),
                        &request_id,
                    ),
                    "invalid",
                );
            }
        };
        let policies = workload
            .as_deref()
            .map(|w| self.cluster.budgets_for(w))
            .unwrap_or_default();
        let figures: Vec<_> = policies
            .iter()
            .map(|p| self.slices.figures(&p.key))
            .collect();
        let states: Vec<BudgetState<'_>> = policies
            .iter()
            .zip(&figures)
            .map(|(p, f)| BudgetState {
                policy: p,
                spent: f.as_ref().map_or(Usd::ZERO, |f| f.spent),
                limit: f.as_ref().map_or(p.limit, |f| f.limit),
                resets: f.as_ref().map(|f| f.period_end.clone()),
            })
            .collect();
        let admitted = match admission::decide(&states, route.operation, &route.model) {
            Ok(a) => a,
            Err(refused) => {
                return self.refuse(refused, workload.as_deref(), &route, &request_id, 0);
            }
        };
        for state in &states {
            if let Some(rpm) = state.policy.soft_rate(state.spent, state.limit)
                && let Err(wait) = self.limiter.check(&state.policy.key, rpm, Instant::now())
            {
                let refused = Refused {
                    kind: Refusal::Throttled,
                    budget: state.policy.key.clone(),
                    message: format!(
                        "AIBudget {} is past its soft limit ({} of {}): at most {rpm} requests per minute",
                        state.policy.key,
                        state.spent.display_cents(),
                        state.limit.display_cents()
                    ),
                };
                return self.refuse(refused, workload.as_deref(), &route, &request_id, wait);
            }
        }

        let billed = resolve(&admitted.model);
        let now = self.clock.now();
        let price = self.prices.current().price(&billed, now);
        let context = billed
            .catalog
            .map_or(self.config.fallback_context_window, |e| e.context_window);
        let asked = admission::requested_output_tokens(route.operation, &billed, &json);
        let worst = worst_case_cost(
            &price,
            input_token_bound(body.len(), context),
            output_token_bound(asked, price.max_output_tokens),
        );
        let claims: Vec<Claim> = states
            .iter()
            .map(|s| Claim {
                key: s.policy.key.clone(),
                limit: s.limit,
                fail_open: s.policy.fail_mode == aigov_api::budget::FailMode::Open,
            })
            .collect();
        let reservation = if claims.is_empty() {
            Reservation::default()
        } else {
            match self.slices.reserve(&claims, worst).await {
                Ok(r) => r,
                Err(Shortfall::Budget(key)) => {
                    let state = states
                        .iter()
                        .find(|s| s.policy.key == key)
                        .expect("claimed");
                    let fresh = self.slices.figures(&key);
                    let state = BudgetState {
                        spent: fresh.as_ref().map_or(state.spent, |f| f.spent),
                        limit: fresh.as_ref().map_or(state.limit, |f| f.limit),
                        ..state.clone()
                    };
                    let refused = admission::shortfall(&state, worst);
                    return self.refuse(refused, workload.as_deref(), &route, &request_id, 1);
                }
                Err(Shortfall::Unreachable(key)) => {
                    return (
                        bedrock_error(
                            "ServiceUnavailableException",
                            &format!(
                                "the aigov controller is unreachable and AIBudget {key} fails closed \
                                 (failMode: Closed) with no budget granted to this gateway; retry later"
                            ),
                            &request_id,
                        ),
                        "unavailable",
                    );
                }
                Err(Shortfall::Backlog) => {
                    return (
                        bedrock_error(
                            "ServiceUnavailableException",
                            "the aigov gateway holds too much unreported usage (the controller is not \
                             acknowledging); retry later",
                            &request_id,
                        ),
                        "unavailable",
                    );
                }
            }
        };

        let record = UsageRecord {
            model: admitted.model.clone(),
            pod_namespace: workload
                .as_ref()
                .map(|w| w.namespace.clone())
                .unwrap_or_default(),
            pod_name: workload
                .as_ref()
                .map(|w| w.name.clone())
                .unwrap_or_default(),
            workload: workload
                .as_ref()
                .map(|w| w.workload.clone())
                .unwrap_or_default(),
            operation: route.operation.name().to_owned(),
            downgraded_from: admitted.downgraded_from.clone().unwrap_or_default(),
            ..UsageRecord::default()
        };
        let settlement = Settlement {
            gateway: self.clone(),
            reservation: Some(reservation),
            record,
            model: admitted.model.clone(),
            request_id: None,
        };
        self.metrics.overhead(started.elapsed());
        let upstream = self
            .upstream
            .send(
                route.operation,
                &admitted.model,
                query.as_deref(),
                &parts.headers,
                body,
            )
            .await;
        let response = match upstream {
            Ok(r) => r,
            Err(e) => {
                drop(settlement);
                let code = match e {
                    ForwardError::Timeout(_) => "ModelTimeoutException",
                    _ => "ServiceUnavailableException",
                };
                return (
                    bedrock_error(code, &e.to_string(), &request_id),
                    "upstream_error",
                );
            }
        };
        let mut response = self.relay(route.operation, response, settlement).await;
        if let Some(from) = &admitted.downgraded_from {
            let headers = response.headers_mut();
            if let (Ok(f), Ok(t)) = (
                HeaderValue::from_str(from),
                HeaderValue::from_str(&admitted.model),
            ) {
                headers.insert(DOWNGRADED_FROM_HEADER, f);
                headers.insert(DOWNGRADED_TO_HEADER, t);
            }
        }
        (
            response,
            if admitted.downgraded_from.is_some() {
                "downgraded"
            } else {
                "forwarded"
            },
        )
    }

    async fn read_body(
        &self,
        body: Incoming,
        request_id: &str,
    ) -> Result<Bytes, Response<ResponseBody>> {
        let limit = self.config.max_body_bytes;
        match tokio::time::timeout(
            self.config.body_timeout,
            Limited::new(body, limit).collect(),
        )
        .await
        {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(bedrock_error(
                "ValidationException",
                &format!("the request body is larger than the gateway accepts ({limit} bytes)"),
                request_id,
            )),
            Ok(Err(e)) => Err(bedrock_error(
                "ValidationException",
                &format!("the request body could not be read: {e}"),
                request_id,
            )),
            Err(_) => Err(bedrock_error(
                "ValidationException",
                &format!(
                    "the request body did not arrive within {:?}",
                    self.config.body_timeout
                ),
                request_id,
            )),
        }
    }

    fn refuse(
        &self,
        refused: Refused,
        workload: Option<&Workload>,
        route: &route::Route,
        request_id: &str,
        retry_after: u64,
    ) -> (Response<ResponseBody>, &'static str) {
        if let Some(w) = workload {
            self.slices.record(UsageRecord {
                request_id: request_id.to_owned(),
                budgets: vec![refused.budget.clone()],
                model: route.model.clone(),
                occurred_at_ms: self.clock.now().as_millisecond(),
                pod_namespace: w.namespace.clone(),
                pod_name: w.name.clone(),
                workload: w.workload.clone(),
                refusal: refused.kind as i32,
                operation: route.operation.name().to_owned(),
                refused_by: refused.budget.clone(),
                ..UsageRecord::default()
            });
            if let Some(warnings) = &self.pod_warnings {
                warnings.warn(w, refused.kind, &refused.message);
            }
        }
        match refused.kind {
            Refusal::Throttled => (
                throttled(&refused.message, request_id, retry_after, &refused.budget),
                "throttled",
            ),
            Refusal::ModelForbidden => (
                denied(&refused.message, request_id, &refused.budget),
                "model_forbidden",
            ),
            _ => (
                denied(&refused.message, request_id, &refused.budget),
                "exhausted",
            ),
        }
    }

    async fn relay(
        self: &Arc<Self>,
        operation: Operation,
        response: Response<Incoming>,
        mut settlement: Settlement,
    ) -> Response<ResponseBody> {
        let (mut parts, body) = response.into_parts();
        for name in DROPPED_RESPONSE_HEADERS {
            parts.headers.remove(*name);
        }
        settlement.request_id = parts
            .headers
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !parts.status.is_success() {
            // Bedrock's own error: passed through; Bedrock charges nothing for it.
            settlement.finish(None);
            return Response::from_parts(parts, body.map_err(BoxError::from).boxed());
        }
        if operation.is_stream() {
            let metered = MeteredBody {
                inner: body,
                meter: meter::StreamMeter::new(operation),
                settlement: Some(settlement),
            };
            return Response::from_parts(parts, metered.boxed());
        }
        let limit = self.config.max_response_bytes;
        match Limited::new(body, limit).collect().await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                settlement.finish(meter::response_usage(operation, &parts.headers, &bytes));
                Response::from_parts(
                    parts,
                    Full::new(bytes).map_err(|never| match never {}).boxed(),
                )
            }
            Err(e) => {
                settlement.finish(None);
                bedrock_error(
                    "ServiceUnavailableException",
                    &format!("Bedrock's response could not be read: {e}"),
                    settlement_id(&parts.headers).as_deref().unwrap_or(""),
                )
            }
        }
    }
}

fn settlement_id(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The client must have signed (SigV4) or sent a Bedrock API key; the gateway does not
/// verify the signature (it was made for the gateway's host), identity comes from the pod.
/// Returns the Bedrock error code and message of a refusal.
fn check_auth(headers: &http::HeaderMap) -> Result<(), (&'static str, &'static str)> {
    let Some(value) = headers.get("authorization") else {
        return Err((
            "MissingAuthenticationTokenException",
            "missing Authentication Token: sign the request with SigV4 as the AWS SDKs do",
        ));
    };
    let text = value.to_str().unwrap_or_default();
    let sigv4 = text.starts_with("AWS4-HMAC-SHA256 ")
        && text.contains("Credential=")
        && text.contains("Signature=");
    let bearer = text
        .strip_prefix("Bearer ")
        .is_some_and(|t| !t.trim().is_empty());
    if sigv4 || bearer {
        Ok(())
    } else {
        Err((
            "IncompleteSignatureException",
            "the Authorization header is not a SigV4 signature (AWS4-HMAC-SHA256 Credential=..., \
             SignedHeaders=..., Signature=...) or a Bearer API key",
        ))
    }
}

/// A call's reservation until it settles: on `finish` with the usage Bedrock reported, or on
/// drop (a client that went away, a broken stream) with whatever usage was seen, never more.
struct Settlement {
    gateway: Arc<Gateway>,
    reservation: Option<Reservation>,
    record: UsageRecord,
    model: String,
    request_id: Option<String>,
}

impl Settlement {
    fn finish(&mut self, usage: Option<Usage>) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let Some(usage) = usage else {
            // Nothing reported: Bedrock charges nothing we can see; release in full.
            self.gateway.slices.release(reservation);
            return;
        };
        if reservation.is_empty() {
            // No budget selects the caller (or it is forwarded unmetered): nothing to settle.
            return;
        }
        let now = self.gateway.clock.now();
        let cost = self
            .gateway
            .prices
            .current()
            .cost(&resolve(&self.model), &usage, InvocationMode::OnDemand, now)
            .amount;
        let mut record = std::mem::take(&mut self.record);
        record.request_id = self
            .request_id
            .take()
            .unwrap_or_else(|| self.gateway.request_id());
        record.input_tokens = usage.input_tokens;
        record.output_tokens = usage.output_tokens;
        record.cache_read_tokens = usage.cache_read_tokens;
        record.cache_write_tokens = usage.cache_write_tokens;
        record.cache_write_1h_tokens = usage.cache_write_1h_tokens;
        record.occurred_at_ms = now.as_millisecond();
        self.gateway.slices.settle(reservation, cost, record);
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// A streaming response relayed frame by frame, its usage read on the way.
struct MeteredBody {
    inner: Incoming,
    meter: meter::StreamMeter,
    settlement: Option<Settlement>,
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.meter.feed(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(mut s) = this.settlement.take() {
                    s.finish(this.meter.usage());
                }
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                if let Some(mut s) = this.settlement.take() {
                    s.finish(this.meter.usage());
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        // The client went away mid-stream: charge what Bedrock reported so far, if anything.
        if let Some(mut s) = self.settlement.take() {
            s.finish(self.meter.usage());
        }
    }
}
