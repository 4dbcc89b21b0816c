//! Relaying Bedrock's answer and settling the call's reservation with the usage it reports.
//!
//! A [`Settlement`] holds the reservation from the moment the call is forwarded. It settles
//! exactly once ([`Settle`]): with the real cost when usage is read (the rest of the worst case
//! returns to the slice); in full release only when Bedrock never accepted the call (it was
//! unreachable, or answered with an error status, for which it charges nothing); and with the
//! stated estimate otherwise — Bedrock accepted the call and may bill it, so no call it
//! accepted is ever free. Streams are relayed frame by frame by [`MeteredBody`] while
//! [`meter::StreamMeter`] reads their usage; a client that hangs up mid-stream does not end the
//! metering: the rest of Bedrock's stream is read (bounded in time and bytes) by a task of its
//! own until Bedrock reports the usage. A client that stops reading is treated the same way
//! once it has left the stream unread for `--response-write-timeout` ([`MeteredBody`]'s stall
//! watch): the stream is cut and the call settles as a hang-up does, so a stalled reader
//! cannot pin its worst-case reservation.
//!
//! **The estimate** (a call Bedrock accepted but whose usage never arrived: a stream cut short,
//! a stream abandoned and not read to its end within [`DRAIN_WITHIN`] or `--max-response-bytes`,
//! a response without readable usage): the request's input bound (body bytes, capped by the
//! context window) as input tokens, plus as output tokens the output seen (an upper bound: the
//! bytes of text in the content events that passed) or, when the rest of the answer was never
//! seen, the whole output bound. Both are capped by the worst case that was reserved, so the
//! estimate never exceeds the reservation, and never is zero. The usage record says so
//! (`usage_estimated`).

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use aigov_api::Usd;
use aigov_api::model::resolve;
use aigov_api::pricing::{InvocationMode, Usage};
use aigov_ledger::ledger::service_tier;
use aigov_ledger::proto::UsageRecord;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::admission::Admitted;
use crate::error::GatewayError;
use crate::forward::DROPPED_RESPONSE_HEADERS;
use crate::meter;
use crate::reserve::WorstCase;
use crate::route::Operation;
use crate::slices::Reservation;
use crate::trace::CallTrace;
use crate::{BoxError, Gateway, ResponseBody};
use tokio::time::Instant;

/// How long the rest of a stream whose client went away is read for its usage. Bedrock's
/// longest answers (64K output tokens) stream for minutes; past this the call is charged the
/// estimate with its whole output bound.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(600);

/// How a call settles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Bedrock reported this usage: charge it exactly.
    Reported(Usage),
    /// Bedrock accepted the call but its usage never arrived: charge the estimate, with the
    /// output seen (`Some`, an upper bound in tokens) or the whole output bound (`None`, the
    /// rest of the answer was never seen).
    Estimated {
        /// Output tokens seen at most, when the whole answer went by.
        output_seen: Option<u64>,
    },
    /// Bedrock reported units priced per unit, not per token (guardrail text units, seconds
    /// of an async job's output): charge this exact cost.
    Units(Usd),
    /// Bedrock never accepted the call (unreachable, or an error status): nothing is charged.
    Release,
    /// A bidirectional session's running totals: `usage` priced as tokens plus `unit_cost`
    /// (its speech tokens), charged exactly, even past what was reserved ([`crate::bidi`]).
    Session {
        /// The tokens priced by the price book.
        usage: Usage,
        /// What the rest costs at its own rates.
        unit_cost: Option<Usd>,
    },
}

/// A call's reservation until it settles: on [`Settlement::finish`], or on drop (a client that
/// went away before Bedrock answered, a panic) with the estimate.
pub struct Settlement {
    gateway: Arc<Gateway>,
    reservation: Option<Reservation>,
    record: UsageRecord,
    model: String,
    /// The token bounds the reservation was made for, the estimate's ceiling.
    worst: WorstCase,
    /// Bedrock's request ID, once it answered.
    bedrock_id: Option<String>,
    status: StatusCode,
    /// The call's log line, written when it settles; `None` once written or when the caller
    /// reports the call itself.
    trace: Option<CallTrace>,
    outcome: &'static str,
    /// The guardrail cost Bedrock's trace reported, once read.
    pub(crate) guardrail_seen: Option<Usd>,
    /// The gateway asked for the guardrail trace: take it out of a Converse body.
    pub(crate) hide_trace: bool,
}

impl Settlement {
    /// Holds `reservation` (made for `worst`) for a call admitted as `admitted` (billed on its
    /// model), to be recorded as `record` and logged with what `trace` learnt.
    pub fn new(
        gateway: Arc<Gateway>,
        reservation: Reservation,
        worst: WorstCase,
        record: UsageRecord,
        admitted: &Admitted,
        trace: &CallTrace,
    ) -> Settlement {
        Settlement {
            gateway,
            reservation: Some(reservation),
            record,
            model: admitted.model.clone(),
            worst,
            bedrock_id: None,
            status: StatusCode::OK,
            trace: CallTrace::enabled().then(|| trace.clone()),
            outcome: admitted.outcome(),
            guardrail_seen: None,
            hide_trace: false,
        }
    }

    /// The gateway the call went through.
    pub(crate) fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// What was reserved for the call.
    pub(crate) fn reserved(&self) -> Usd {
        self.worst.cost
    }

    /// Adds `more` (a top-up of `cost`) to what the call holds: it settles as one. A call
    /// already settled gives the top-up straight back.
    pub(crate) fn grow(&mut self, more: Reservation, cost: Usd) {
        match self.reservation.as_mut() {
            Some(held) => {
                held.absorb(more);
                self.worst.cost += cost;
                self.worst.unit_cost = self.worst.unit_cost.map(|c| c + cost);
            }
            None => self.gateway.slices.release(more),
        }
    }

    /// Bedrock's request ID, once it answered.
    pub(crate) fn set_bedrock_id(&mut self, id: Option<String>) {
        self.bedrock_id = id;
    }

    /// Settles as `how` says and writes the call's line.
    pub fn finish(&mut self, how: Settle) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let cost = self.settle(reservation, how);
        if let Some(trace) = self.trace.take() {
            let id = self.bedrock_id.as_deref().unwrap_or(&trace.request_id);
            trace.log(id, self.outcome, self.status, cost);
        }
    }

    /// Settles as `how` says without a line: the call failed with `error`, which the caller
    /// reports (and which is returned for it).
    pub fn cancel(mut self, how: Settle, error: GatewayError) -> GatewayError {
        self.trace = None;
        self.finish(how);
        error
    }

    /// The usage an estimate charges: the input bound, and the output seen or the output
    /// bound, neither beyond what the reservation was made for.
    pub fn estimate(worst: &WorstCase, output_seen: Option<u64>) -> Usage {
        Usage {
            input_tokens: worst.input_tokens,
            output_tokens: output_seen.map_or(worst.output_tokens, |o| o.min(worst.output_tokens)),
            ..Usage::default()
        }
    }

    /// Draws the cost of the usage `how` gives (nothing on a release, or when no budget is
    /// charged).
    fn settle(&mut self, reservation: Reservation, how: Settle) -> Option<Usd> {
        let unit_priced = self.worst.unit_cost.is_some();
        // A guardrail on a Converse call: what its trace reported, else what was reserved.
        let guardrail = self
            .worst
            .guardrail
            .map(|reserved| self.guardrail_seen.unwrap_or(reserved).min(reserved));
        let (usage, unit_cost, estimated) = match how {
            Settle::Reported(usage) => (usage, guardrail, false),
            // A unit-priced call whose units never arrived is charged what was reserved.
            Settle::Estimated { .. } if unit_priced => {
                (Usage::default(), self.worst.unit_cost, true)
            }
            Settle::Estimated { output_seen } => {
                (Self::estimate(&self.worst, output_seen), guardrail, true)
            }
            Settle::Units(cost) => (Usage::default(), Some(cost.min(self.worst.cost)), false),
            Settle::Session { usage, unit_cost } => (usage, unit_cost, false),
            Settle::Release => {
                self.gateway.slices.release(reservation);
                return None;
            }
        };
        if reservation.is_empty() {
            // No budget selects the caller (or it is forwarded unmetered): nothing to settle.
            return None;
        }
        let gateway = &self.gateway;
        let now = gateway.clock.now();
        let token_cost = gateway
            .prices
            .current()
            .cost_in(
                &resolve(&self.model),
                &usage,
                InvocationMode::OnDemand,
                service_tier(&self.record),
                now,
            )
            .amount;
        let cost = token_cost + unit_cost.unwrap_or(Usd::ZERO);
        let mut record = std::mem::take(&mut self.record);
        record.request_id = self
            .bedrock_id
            .clone()
            .unwrap_or_else(|| gateway.request_id());
        record.input_tokens = usage.input_tokens;
        record.output_tokens = usage.output_tokens;
        record.cache_read_tokens = usage.cache_read_tokens;
        record.cache_write_tokens = usage.cache_write_tokens;
        record.cache_write_1h_tokens = usage.cache_write_1h_tokens;
        record.unit_cost = unit_cost.map(|c| c.to_api_string()).unwrap_or_default();
        record.usage_estimated = estimated;
        record.occurred_at_ms = now.as_millisecond();
        if estimated {
            tracing::warn!(
                request_id = %record.request_id,
                model = %self.model,
                input_tokens = usage.input_tokens,
                output_tokens = usage.output_tokens,
                "Bedrock reported no usage for a call it accepted: charged the estimate"
            );
        }
        gateway.slices.settle(reservation, cost, record);
        Some(cost)
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        // Dropped unsettled: the client went away while Bedrock worked on the call (or a
        // panic unwinds). Bedrock bills what it accepted; the answer was never seen.
        self.finish(Settle::Estimated { output_seen: None });
    }
}

/// How a response is read for what the call costs.
#[derive(Clone, Copy, Debug)]
pub enum Reading {
    /// An AWS event stream (ConverseStream, InvokeModelWithResponseStream).
    EventStream(Operation),
    /// A server-sent-event stream of a mantle API; `strip_usage_chunk` when the gateway asked
    /// for the usage the caller did not.
    Sse {
        /// The API.
        api: aigov_api::mantle::Api,
        /// Whether to hide the usage chunk.
        strip_usage_chunk: bool,
    },
    /// A whole body.
    Whole(Operation),
}

/// How much of Bedrock's answer the gateway reads, and how long a client may leave it unread.
#[derive(Clone, Copy, Debug)]
pub struct RelayLimits {
    /// The most bytes read for usage: a whole response, or the rest of an abandoned stream.
    pub max_response_bytes: usize,
    /// How long a stream may wait for its client to take the next part before it is cut and
    /// settled as a hang-up (`--response-write-timeout`).
    pub write_timeout: Duration,
}

/// Relays Bedrock's answer to a forwarded call: its own errors pass through (released, Bedrock
/// charges nothing for them), streams are metered as they pass, and a whole response is read
/// (up to `--max-response-bytes`) for its usage before it is returned. A whole response that
/// starts work Bedrock finishes later (a background response, an async invocation) leaves
/// the call reserved until a poll of its state ([`crate::follow`]) settles it.
pub async fn relay(
    limits: RelayLimits,
    reading: Reading,
    path: &str,
    response: Response<Incoming>,
    mut settlement: Settlement,
) -> Result<Response<ResponseBody>, GatewayError> {
    let max_response_bytes = limits.max_response_bytes;
    let (mut parts, body) = response.into_parts();
    for name in DROPPED_RESPONSE_HEADERS {
        parts.headers.remove(*name);
    }
    settlement.bedrock_id = ["x-amzn-requestid", "x-request-id", "request-id"]
        .iter()
        .find_map(|h| parts.headers.get(*h).and_then(|v| v.to_str().ok()))
        .map(str::to_owned);
    settlement.status = parts.status;
    if !parts.status.is_success() {
        settlement.finish(Settle::Release);
        return Ok(Response::from_parts(
            parts,
            body.map_err(BoxError::from).boxed(),
        ));
    }
    let operation = match reading {
        Reading::Whole(operation) => operation,
        streaming => {
            let meter = meter::Meter::for_reading(streaming);
            if matches!(
                streaming,
                Reading::Sse {
                    strip_usage_chunk: true,
                    ..
                }
            ) {
                parts.headers.remove(http::header::CONTENT_LENGTH);
            }
            let metered = MeteredBody::new(body, meter, settlement, limits);
            return Ok(Response::from_parts(parts, metered.boxed()));
        }
    };
    match Limited::new(body, max_response_bytes).collect().await {
        Ok(collected) => {
            let mut bytes = collected.to_bytes();
            if settlement.worst.guardrail.is_some() {
                settlement.guardrail_seen = crate::guardrail::traced_cost(&bytes);
                if settlement.hide_trace
                    && let Some(stripped) = crate::guardrail::strip_trace(operation, &bytes)
                {
                    bytes = Bytes::from(stripped);
                    parts.headers.remove(http::header::CONTENT_LENGTH);
                }
            }
            match crate::follow::after(operation, path, &parts.headers, &bytes) {
                crate::follow::Next::Settle(how) => settlement.finish(how),
                crate::follow::Next::Poll(job) => crate::follow::spawn(job, settlement),
            }
            let body = Full::new(bytes).map_err(|never| match never {}).boxed();
            Ok(Response::from_parts(parts, body))
        }
        Err(e) => {
            let request_id = settlement.bedrock_id.clone().unwrap_or_default();
            let error = GatewayError::ResponseUnreadable {
                request_id,
                reason: e.to_string(),
            };
            Err(settlement.cancel(Settle::Estimated { output_seen: None }, error))
        }
    }
}

/// What a stream still being metered holds: Bedrock's body, the meter, the reservation.
struct Relay<B> {
    inner: B,
    meter: meter::Meter,
    settlement: Settlement,
}

impl<B> Relay<B> {
    /// Settles a stream that ended (or broke) here: its usage, else the estimate with the
    /// output that went by.
    fn ended(mut self) {
        self.settlement.guardrail_seen = self.meter.guardrail_cost();
        let how = self.meter.usage().map_or(
            Settle::Estimated {
                output_seen: Some(self.meter.output_seen()),
            },
            Settle::Reported,
        );
        self.settlement.finish(how);
    }

    /// Settles a stream its client left (hung up, or stalled past the write timeout): with
    /// the usage when it already went by, else once the rest of Bedrock's stream has been read
    /// for it ([`drain`], at most `max_bytes`), since Bedrock goes on and bills.
    fn abandon(mut self, max_bytes: usize)
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
    {
        if let Some(usage) = self.meter.usage() {
            self.settlement.guardrail_seen = self.meter.guardrail_cost();
            self.settlement.finish(Settle::Reported(usage));
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(drain(self, max_bytes, DRAIN_WITHIN));
            }
            Err(_) => self
                .settlement
                .finish(Settle::Estimated { output_seen: None }),
        }
    }
}

/// What a stream being relayed shares with its stall watch ([`watch_stall`]).
struct Relayed<B> {
    /// The stream, until it ends, breaks, is left by its client or is cut.
    relay: Option<Relay<B>>,
    /// Since when a part handed to the client's connection waits for it to take the next
    /// (`None` while the gateway waits for Bedrock, or before the first part).
    handed_at: Option<Instant>,
    /// True once the stall watch cut the stream: the client gets an error, not the rest.
    cut: bool,
}

/// What the stall watch does when it wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallCheck {
    /// The client took nothing for the write timeout: cut the stream.
    Cut,
    /// Look again at this instant.
    WakeAt(Instant),
}

/// The stall watch's decision at `now`, for a stream whose last part was handed to the client
/// at `handed_at` (`None`: not waiting for the client), with `timeout` allowed (pure).
pub fn stall_check(handed_at: Option<Instant>, now: Instant, timeout: Duration) -> StallCheck {
    match handed_at {
        Some(at) if now >= at + timeout => StallCheck::Cut,
        Some(at) => StallCheck::WakeAt(at + timeout),
        None => StallCheck::WakeAt(now + timeout),
    }
}

/// Watches a relayed stream for a client that stopped reading: once a part has waited
/// `timeout` for the client's connection to take it, the stream is cut (the client's next read
/// is an error) and the call settled as a hang-up; ends when the stream does.
async fn watch_stall<B>(relayed: Arc<Mutex<Relayed<B>>>, timeout: Duration, max_bytes: usize)
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    loop {
        let wake = {
            let mut shared = lock(&relayed);
            if shared.relay.is_none() {
                return;
            }
            match stall_check(shared.handed_at, Instant::now(), timeout) {
                StallCheck::WakeAt(at) => at,
                StallCheck::Cut => {
                    shared.cut = true;
                    let Some(relay) = shared.relay.take() else {
                        return;
                    };
                    drop(shared);
                    relay.settlement.gateway.metrics.stalled_stream();
                    tracing::warn!(
                        ?timeout,
                        "a client left its stream unread past the write timeout: cut, and \
                         charged as a hang-up"
                    );
                    relay.abandon(max_bytes);
                    return;
                }
            }
        };
        tokio::time::sleep_until(wake).await;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A streaming response relayed frame by frame, its usage read on the way; the call settles
/// when the stream ends or breaks, and when the client goes away first, once the rest of the
/// stream has been read ([`drain`]).
pub struct MeteredBody<B = Incoming>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    relayed: Arc<Mutex<Relayed<B>>>,
    max_bytes: usize,
    write_timeout: Duration,
    /// The stall watch, stopped when the body is dropped.
    watch: Option<tokio::task::AbortHandle>,
}

impl<B> MeteredBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    /// Meters `inner` with `meter`, settling `settlement`; at most
    /// `limits.max_response_bytes` are read after the client went away, and a client that
    /// takes nothing for `limits.write_timeout` is cut.
    pub fn new(
        inner: B,
        meter: meter::Meter,
        settlement: Settlement,
        limits: RelayLimits,
    ) -> MeteredBody<B> {
        let relayed = Arc::new(Mutex::new(Relayed {
            relay: Some(Relay {
                inner,
                meter,
                settlement,
            }),
            handed_at: None,
            cut: false,
        }));
        let max_bytes = limits.max_response_bytes;
        let watch = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let watched = watch_stall(relayed.clone(), limits.write_timeout, max_bytes);
            runtime.spawn(watched).abort_handle()
        });
        MeteredBody {
            relayed,
            max_bytes,
            write_timeout: limits.write_timeout,
            watch,
        }
    }
}

/// The error a client that stalled past the write timeout reads (its stream was cut).
#[derive(Debug, thiserror::Error)]
#[error("the client left the stream unread past the gateway's write timeout: cut")]
pub struct StreamCut;

impl<B> Body for MeteredBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut shared = lock(&self.relayed);
        // Asked for more: the client's connection took what it was handed.
        shared.handed_at = None;
        if std::mem::take(&mut shared.cut) {
            return Poll::Ready(Some(Err(StreamCut.into())));
        }
        loop {
            let Some(relay) = shared.relay.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(&mut relay.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let forward = relay.meter.feed(data);
                        // An SSE meter holds an incomplete event back: nothing to send yet.
                        if !forward.is_empty() {
                            shared.handed_at = Some(Instant::now());
                            return Poll::Ready(Some(Ok(Frame::data(forward))));
                        }
                    }
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                Poll::Ready(Some(Err(e))) => {
                    if let Some(relay) = shared.relay.take() {
                        relay.ended();
                    }
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(None) => {
                    let Some(mut relay) = shared.relay.take() else {
                        return Poll::Ready(None);
                    };
                    let rest = relay.meter.finish();
                    relay.ended();
                    return Poll::Ready((!rest.is_empty()).then(|| Ok(Frame::data(rest))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let shared = lock(&self.relayed);
        !shared.cut
            && shared
                .relay
                .as_ref()
                .is_none_or(|r| r.inner.is_end_stream())
    }
}

impl<B> Drop for MeteredBody<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    fn drop(&mut self) {
        if let Some(watch) = self.watch.take() {
            watch.abort();
        }
        // The client went away before Bedrock's usage: Bedrock goes on (and bills), so read
        // the rest of its stream for the usage instead of forgetting the call.
        let (relay, handed_at) = {
            let mut shared = lock(&self.relayed);
            (shared.relay.take(), shared.handed_at)
        };
        let Some(relay) = relay else {
            return;
        };
        // Its connection may have been closed by the write timeout a moment before the stall
        // watch woke: the same stall, counted once.
        if stall_check(handed_at, Instant::now(), self.write_timeout) == StallCheck::Cut {
            relay.settlement.gateway.metrics.stalled_stream();
        }
        relay.abandon(self.max_bytes);
    }
}

/// Reads the rest of an abandoned stream through its meter, for at most `within` and
/// `max_bytes`, and settles: with the usage Bedrock reported; with the estimate and the output
/// seen when the stream ended without it; with the whole output bound when it was given up.
async fn drain<B>(mut relay: Relay<B>, max_bytes: usize, within: Duration)
where
    B: Body<Data = Bytes> + Unpin,
{
    let read = tokio::time::timeout(
        within,
        read_for_usage(&mut relay.inner, &mut relay.meter, max_bytes),
    )
    .await;
    match read {
        Ok(true) => relay.ended(),
        Ok(false) | Err(_) => {
            relay.settlement.guardrail_seen = relay.meter.guardrail_cost();
            let how = relay
                .meter
                .usage()
                .map_or(Settle::Estimated { output_seen: None }, Settle::Reported);
            relay.settlement.finish(how);
        }
    }
}

/// Feeds `body` to `meter` until the meter is [finished](meter::Meter::finished) or the body
/// ends or breaks (true), or more than `max_bytes` went by without usage (false: given up).
async fn read_for_usage<B>(body: &mut B, meter: &mut meter::Meter, max_bytes: usize) -> bool
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut read = 0usize;
    while !meter.finished() {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read = read.saturating_add(data.len());
                    meter.feed(data);
                }
                if read > max_bytes {
                    return false;
                }
            }
            Some(Err(_)) | None => {
                meter.finish();
                return true;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::channel::{Channel, Sender};

    use crate::cluster::ClusterView;
    use crate::trace::CallTrace;

    /// A metered ConverseStream over a channel standing in for Bedrock's body, cut after
    /// `write_timeout`; the sender, and the gateway's metrics.
    fn metered(
        write_timeout: Duration,
    ) -> (
        MeteredBody<Channel<Bytes, std::io::Error>>,
        Sender<Bytes, std::io::Error>,
        prometheus_client::registry::Registry,
    ) {
        let (gateway, registry) =
            crate::testing::gateway(crate::UnknownCallers::Forward, ClusterView::default());
        let admitted = Admitted {
            model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
            downgraded_from: None,
            downgraded_by: None,
        };
        let worst = WorstCase {
            cost: Usd::ZERO,
            input_tokens: 10,
            output_tokens: 10,
            unit_cost: None,
            guardrail: None,
        };
        let trace = CallTrace::new("test-1".into(), "10.0.0.1".parse().unwrap());
        // No budget selects the caller: an empty reservation, enough for the stall watch.
        let settlement = Settlement::new(
            gateway,
            Reservation::default(),
            worst,
            UsageRecord::default(),
            &admitted,
            &trace,
        );
        let (sender, bedrock) = Channel::new(4);
        let limits = RelayLimits {
            max_response_bytes: 1 << 20,
            write_timeout,
        };
        let meter = meter::Meter::for_reading(Reading::EventStream(Operation::ConverseStream));
        let body = MeteredBody::new(bedrock, meter, settlement, limits);
        (body, sender, registry)
    }

    fn stalled(registry: &prometheus_client::registry::Registry) -> bool {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text.contains("gateway_stalled_streams_total 1")
    }

    #[tokio::test]
    async fn a_stream_whose_client_takes_nothing_for_the_write_timeout_is_cut_and_counted() {
        let (mut body, mut bedrock, registry) = metered(Duration::from_millis(200));
        bedrock
            .send_data(Bytes::from_static(b"part"))
            .await
            .unwrap();
        bedrock
            .send_data(Bytes::from_static(b"more"))
            .await
            .unwrap();
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().unwrap(), "part");
        // The client's connection takes nothing more.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(stalled(&registry), "the stall watch cut it");
        let next = body.frame().await.expect("an answer");
        assert!(
            next.is_err_and(|e| e.is::<StreamCut>()),
            "the client reads the cut, not the rest"
        );
        assert!(body.frame().await.is_none(), "then the stream is over");
    }

    #[tokio::test]
    async fn a_stream_waiting_for_bedrock_is_never_cut_however_long_it_waits() {
        let (mut body, mut bedrock, registry) = metered(Duration::from_millis(100));
        bedrock
            .send_data(Bytes::from_static(b"part"))
            .await
            .unwrap();
        assert!(body.frame().await.is_some());
        // The client asks for more at once; Bedrock is slow (5 timeouts).
        let waited = tokio::time::timeout(Duration::from_millis(500), body.frame()).await;
        assert!(waited.is_err(), "nothing from Bedrock yet");
        assert!(!stalled(&registry));
        bedrock
            .send_data(Bytes::from_static(b"late"))
            .await
            .unwrap();
        let late = body.frame().await.expect("a frame").expect("data");
        assert_eq!(late.into_data().unwrap(), "late");
    }

    #[test]
    fn a_stream_is_cut_only_when_a_part_waited_the_whole_write_timeout_for_its_client() {
        let now = Instant::now();
        let timeout = Duration::from_secs(30);
        // Waiting for Bedrock (nothing handed over) is never a stall: look again later.
        assert_eq!(
            stall_check(None, now, timeout),
            StallCheck::WakeAt(now + timeout)
        );
        let handed = now - Duration::from_secs(10);
        assert_eq!(
            stall_check(Some(handed), now, timeout),
            StallCheck::WakeAt(handed + timeout)
        );
        assert_eq!(
            stall_check(Some(now - timeout), now, timeout),
            StallCheck::Cut
        );
        assert_eq!(
            stall_check(Some(now - Duration::from_secs(31)), now, timeout),
            StallCheck::Cut
        );
    }
}
