//! InvokeModelWithBidirectionalStream: a speech session (Nova Sonic) relayed over HTTP/2 both
//! ways and metered as it goes.
//!
//! The request path is the usual one up to the reservation: the caller is identified, every
//! selecting budget must admit the model, the soft limit's rate applies. Then the session's
//! first event is read (its `sessionStart` sets `maxTokens`, which sizes a tranche,
//! [`plan`]) and the first tranche is reserved. The session is opened upstream re-signed as
//! the gateway ([`crate::forward::Upstream::open_stream`]); each event the client sends is
//! taken out of the client's signature envelope and signed again in the gateway's own chain
//! ([`envelope`]). Bedrock's answer is relayed message by message while its `usageEvent`s'
//! running totals are read, the reservation topped up ahead of them, and the session ended
//! when a budget cannot give the next tranche ([`session`]). The session is charged exactly
//! its last totals when it ends, however it ends.

pub mod envelope;
pub mod plan;
mod session;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aigov_api::Usd;
use aigov_api::model::resolve;
use aigov_api::pricing::InvocationMode;
use aigov_api::units::{SessionUsage, SpeechRate, speech_rate};
use aigov_ledger::policy::Workload;
use aws_smithy_types::event_stream::Message;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;

use crate::admission::{self, Admitted};
use crate::error::GatewayError;
use crate::reserve::{self, WorstCase};
use crate::route::{self, Route};
use crate::settle::{Settle, Settlement};
use crate::trace::CallTrace;
use crate::{BoxError, Gateway, ResponseBody, ratelimit};
use envelope::{EnvelopeError, Inbound, Reader};

/// The client's side of a session: its request body read as event-stream messages.
pub(crate) struct Input<B> {
    body: B,
    reader: Reader,
}

/// Why the client's input stopped before its end.
#[derive(Debug)]
pub(crate) enum InputError {
    /// Not an event stream.
    Malformed(EnvelopeError),
    /// The body broke off (the client reset the stream or hung up).
    Broken(String),
}

impl<B> Input<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    fn new(body: B) -> Input<B> {
        Input {
            body,
            reader: Reader::default(),
        }
    }

    /// The next message the client sent, envelope removed; `None` once the body ended.
    async fn next(&mut self) -> Result<Option<Inbound>, InputError> {
        loop {
            if let Some(message) = self.reader.message().map_err(InputError::Malformed)? {
                return envelope::unwrap(message)
                    .map(Some)
                    .map_err(InputError::Malformed);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.reader.push(&data);
                    }
                }
                Some(Err(e)) => return Err(InputError::Broken(e.into().to_string())),
                None if self.reader.holds_partial() => {
                    return Err(InputError::Malformed(EnvelopeError::Malformed(
                        "the input ended inside a message".into(),
                    )));
                }
                None => return Ok(None),
            }
        }
    }

    /// The session's first event, within `within`: the request is refused as invalid when
    /// the input is no event stream or ends first.
    async fn first(&mut self, within: Duration) -> Result<Message, GatewayError> {
        match tokio::time::timeout(within, self.next()).await {
            Err(_) => Err(GatewayError::BodyTimeout(within)),
            Ok(Ok(Some(Inbound::Event(message)))) => Ok(message),
            Ok(Ok(Some(Inbound::End) | None)) => Err(GatewayError::BodyUnreadable(
                "the session's input ended before its first event".into(),
            )),
            Ok(Err(InputError::Malformed(e))) => Err(GatewayError::BodyUnreadable(e.to_string())),
            Ok(Err(InputError::Broken(e))) => Err(GatewayError::BodyUnreadable(e)),
        }
    }
}

/// How a session's usage is priced: its model, its speech rates (if the gateway has them)
/// and the tranche it reserves by.
#[derive(Clone, Debug)]
pub(crate) struct Pricing {
    model: String,
    rate: Option<&'static SpeechRate>,
    /// One tranche's cost.
    tranche: Usd,
}

impl Gateway {
    /// Serves one bidirectional session (the steps of [`Gateway::serve`] for a body that is
    /// the session's input, then the relay).
    pub(crate) async fn bidirectional<B>(
        self: &Arc<Self>,
        call: &mut CallTrace,
        route: &Route,
        workload: Option<&Workload>,
        request: Request<B>,
    ) -> Result<(Response<ResponseBody>, &'static str), GatewayError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let (policies, figures) = self.budgets(workload);
        call.budgets = policies.clone();
        let states = reserve::budget_states(&policies, &figures);
        let decided = admission::decide(&states, route.operation, &route.model)
            .map_err(GatewayError::refused)?;
        let admitted = speech_model(decided, &route.model);
        call.admitted(&admitted);
        ratelimit::check_soft_limits(&self.limiter, &states, Instant::now())?;
        let (parts, body) = request.into_parts();
        let mut input = Input::new(body);
        let first = input.first(self.config.body_timeout).await?;
        let pricing = self.session_pricing(&admitted.model, envelope::chunk_event(&first).as_ref());
        let reservation = reserve::reserve(&self.slices, &states, pricing.tranche).await?;
        self.metrics.overhead(call.forwarding());
        let record = crate::usage_record(route, &admitted, workload);
        let worst = WorstCase {
            cost: pricing.tranche,
            input_tokens: 0,
            output_tokens: 0,
            // What a session whose usage never arrives is charged: everything it reserved.
            unit_cost: Some(pricing.tranche),
            guardrail: None,
        };
        let settlement = Settlement::new(self.clone(), reservation, worst, record, &admitted, call);
        let path = route::path_for(route.operation, &admitted.model)
            .unwrap_or_else(|| route.path_and_query.clone());
        let opened = session::Opened {
            gateway: self.clone(),
            policies,
            pricing,
            settlement,
        };
        let response = opened.relay(&path, &parts.headers, input, first).await?;
        Ok((response, admitted.outcome()))
    }

    /// How a session on `model` is priced, and its tranche sized from its first event.
    fn session_pricing(&self, model: &str, first_event: Option<&serde_json::Value>) -> Pricing {
        let billed = resolve(model);
        let price = self.prices.current().price(&billed, self.clock.now());
        let tokens = plan::tranche_tokens(first_event, price.max_output_tokens);
        let mut pricing = Pricing {
            model: model.to_owned(),
            rate: speech_rate(model),
            tranche: Usd::ZERO,
        };
        pricing.tranche = self.session_cost(&pricing, &plan::tranche_usage(tokens));
        pricing
    }

    /// What `totals` cost now, exactly as the session will be settled ([`plan::split`]).
    fn session_cost(&self, pricing: &Pricing, totals: &SessionUsage) -> Usd {
        let (usage, unit_cost) = plan::split(pricing.rate, totals);
        let tokens = self
            .prices
            .current()
            .cost(
                &resolve(&pricing.model),
                &usage,
                InvocationMode::OnDemand,
                self.clock.now(),
            )
            .amount;
        tokens + unit_cost.unwrap_or(Usd::ZERO)
    }
}

/// A downgrade only to another speech model: a text model cannot take a speech session.
fn speech_model(decided: Admitted, requested: &str) -> Admitted {
    match &decided.downgraded_from {
        Some(_) if speech_rate(&decided.model).is_none() => Admitted {
            model: requested.to_owned(),
            downgraded_from: None,
            downgraded_by: None,
        },
        _ => decided,
    }
}

/// How a session settles from what it saw: its last running totals; with none, the whole
/// reservation when Bedrock answered anything (or was not read to its end), and nothing when
/// it ended the session without a single event.
pub(crate) fn settle_from(
    pricing: &Pricing,
    totals: Option<SessionUsage>,
    output_seen: bool,
    upstream_ended: bool,
) -> Settle {
    match totals {
        Some(totals) => {
            let (usage, unit_cost) = plan::split(pricing.rate, &totals);
            Settle::Session { usage, unit_cost }
        }
        None if output_seen || !upstream_ended => Settle::Estimated { output_seen: None },
        None => Settle::Release,
    }
}
