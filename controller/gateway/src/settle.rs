//! Relaying Bedrock's answer and settling the call's reservation with the usage it reports.
//!
//! A [`Settlement`] holds the reservation from the moment the call is forwarded. It settles
//! exactly once: with the real cost when usage is read (the rest of the worst case returns to
//! the slice), in full release when Bedrock reports none (its own errors, a broken or
//! abandoned stream without usage; Bedrock charges nothing we can see), and on drop otherwise,
//! so no path (a client that goes away, a panic unwinding) leaks a reservation. Streams are
//! relayed frame by frame by [`MeteredBody`] while [`meter::StreamMeter`] reads their usage.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aigov_api::Usd;
use aigov_api::model::resolve;
use aigov_api::pricing::{InvocationMode, Usage};
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
use crate::route::Operation;
use crate::slices::Reservation;
use crate::trace::CallTrace;
use crate::{BoxError, Gateway, ResponseBody};

/// A call's reservation until it settles: on [`Settlement::finish`] with the usage Bedrock
/// reported, or on drop (a client that went away, a broken stream) with none.
pub struct Settlement {
    gateway: Arc<Gateway>,
    reservation: Option<Reservation>,
    record: UsageRecord,
    model: String,
    /// Bedrock's request ID, once it answered.
    bedrock_id: Option<String>,
    status: StatusCode,
    /// The call's log line, written when it settles; `None` once written or when the caller
    /// reports the call itself.
    trace: Option<CallTrace>,
    outcome: &'static str,
}

impl Settlement {
    /// Holds `reservation` for a call admitted as `admitted` (billed on its model), to be
    /// recorded as `record` and logged with what `trace` learnt.
    pub fn new(
        gateway: Arc<Gateway>,
        reservation: Reservation,
        record: UsageRecord,
        admitted: &Admitted,
        trace: &CallTrace,
    ) -> Settlement {
        Settlement {
            gateway,
            reservation: Some(reservation),
            record,
            model: admitted.model.clone(),
            bedrock_id: None,
            status: StatusCode::OK,
            trace: CallTrace::enabled().then(|| trace.clone()),
            outcome: admitted.outcome(),
        }
    }

    /// Settles with `usage` (or releases in full without it) and writes the call's line.
    pub fn finish(&mut self, usage: Option<Usage>) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let cost = self.settle(reservation, usage);
        if let Some(trace) = self.trace.take() {
            let id = self.bedrock_id.as_deref().unwrap_or(&trace.request_id);
            trace.log(id, self.outcome, self.status, cost);
        }
    }

    /// Releases the reservation in full without a line: the call failed with `error`, which
    /// the caller reports (and which is returned for it).
    pub fn cancel(mut self, error: GatewayError) -> GatewayError {
        self.trace = None;
        self.finish(None);
        error
    }

    /// Draws the cost of `usage` (nothing when there is none, or no budget is charged).
    fn settle(&mut self, reservation: Reservation, usage: Option<Usage>) -> Option<Usd> {
        let Some(usage) = usage else {
            self.gateway.slices.release(reservation);
            return None;
        };
        if reservation.is_empty() {
            // No budget selects the caller (or it is forwarded unmetered): nothing to settle.
            return None;
        }
        let gateway = &self.gateway;
        let now = gateway.clock.now();
        let cost = gateway
            .prices
            .current()
            .cost(&resolve(&self.model), &usage, InvocationMode::OnDemand, now)
            .amount;
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
        record.occurred_at_ms = now.as_millisecond();
        gateway.slices.settle(reservation, cost, record);
        Some(cost)
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// Relays Bedrock's answer to a forwarded call: its own errors pass through (released, Bedrock
/// charges nothing for them), streams are metered as they pass, and a whole response is read
/// (up to `--max-response-bytes`) for its usage before it is returned.
pub async fn relay(
    max_response_bytes: usize,
    operation: Operation,
    response: Response<Incoming>,
    mut settlement: Settlement,
) -> Result<Response<ResponseBody>, GatewayError> {
    let (mut parts, body) = response.into_parts();
    for name in DROPPED_RESPONSE_HEADERS {
        parts.headers.remove(*name);
    }
    settlement.bedrock_id = parts
        .headers
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    settlement.status = parts.status;
    if !parts.status.is_success() {
        settlement.finish(None);
        return Ok(Response::from_parts(
            parts,
            body.map_err(BoxError::from).boxed(),
        ));
    }
    if operation.is_stream() {
        let metered = MeteredBody {
            inner: body,
            meter: meter::StreamMeter::new(operation),
            settlement: Some(settlement),
        };
        return Ok(Response::from_parts(parts, metered.boxed()));
    }
    match Limited::new(body, max_response_bytes).collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            settlement.finish(meter::response_usage(operation, &parts.headers, &bytes));
            let body = Full::new(bytes).map_err(|never| match never {}).boxed();
            Ok(Response::from_parts(parts, body))
        }
        Err(e) => {
            let request_id = settlement.bedrock_id.clone().unwrap_or_default();
            Err(settlement.cancel(GatewayError::ResponseUnreadable {
                request_id,
                reason: e.to_string(),
            }))
        }
    }
}

/// A streaming response relayed frame by frame, its usage read on the way; the call settles
/// when the stream ends, breaks, or is dropped.
pub struct MeteredBody {
    inner: Incoming,
    meter: meter::StreamMeter,
    settlement: Option<Settlement>,
}

impl MeteredBody {
    fn settle(&mut self) {
        if let Some(mut s) = self.settlement.take() {
            s.finish(self.meter.usage());
        }
    }
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
                this.settle();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.settle();
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
        self.settle();
    }
}
