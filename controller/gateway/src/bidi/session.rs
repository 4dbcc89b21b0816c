//! A session in flight (I/O): the client's events pumped upstream re-signed, Bedrock's
//! answer relayed message by message and metered, the reservation topped up ahead of use,
//! and the session settled exactly once, however it ends.
//!
//! - **Client hang-up** (its stream reset, its connection gone, or its response unread for
//!   `--response-write-timeout`): the gateway ends the session's input upstream and reads
//!   Bedrock's answer to its end (at most [`DRAIN_WITHIN`] and `--max-response-bytes`) for
//!   the last totals.
//! - **Budget**: when a top-up is refused the client gets an exception message —
//!   `throttlingException` when the budget only has no free headroom right now (it may
//!   have some soon: a retry is right), `validationException` when the budget cannot give
//!   another tranche this period (non-retryable, like the 403 that opens no new session),
//!   `serviceUnavailableException` when the controller is unreachable — each naming the
//!   budget; the session's input is ended upstream and the rest of Bedrock's answer read for
//!   its totals. Those are the members of the operation's event-stream error union that
//!   every SDK decodes into a typed error (AccessDeniedException is not one of them).
//! - **Bedrock ends or breaks the stream**, or **the gateway stops** (the task is dropped):
//!   the last totals are charged ([`super::settle_from`]).

use std::sync::Arc;
use std::time::SystemTime;

use aigov_api::Usd;
use aigov_api::units::{SessionUsage, session_usage_from_event};
use aigov_ledger::policy::BudgetPolicy;
use aws_smithy_types::event_stream::Message;
use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body::Body;
use http_body_util::BodyExt;
use http_body_util::channel::{Channel, Sender};
use hyper::body::Incoming;
use rust_decimal::Decimal;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::envelope::{self, Inbound, Reader, Signer};
use super::{Input, InputError, Pricing, plan, settle_from};
use crate::admission::BudgetState;
use crate::error::GatewayError;
use crate::forward::{DROPPED_RESPONSE_HEADERS, ForwardError};
use crate::reserve;
use crate::settle::{DRAIN_WITHIN, Settle, Settlement, StreamCut};
use crate::{BoxError, Gateway, ResponseBody};

/// Messages queued toward Bedrock or the client before the sender waits.
const QUEUE: usize = 8;

/// A session admitted and reserved, about to be opened upstream.
pub(crate) struct Opened {
    pub(crate) gateway: Arc<Gateway>,
    pub(crate) policies: Vec<Arc<BudgetPolicy>>,
    pub(crate) pricing: Pricing,
    pub(crate) settlement: Settlement,
}

/// What the pump tells the relay about the client's input.
#[derive(Debug)]
enum Note {
    /// The client's input broke off: it went away.
    HungUp,
    /// The client's input is no event stream, or could not be signed again.
    Malformed(String),
}

impl Opened {
    /// Opens the session upstream, starts pumping the client's input (from `first`), and
    /// answers with Bedrock's response head and a body relayed by a task of its own.
    pub(crate) async fn relay<B>(
        self,
        path: &str,
        headers: &HeaderMap,
        input: Input<B>,
        first: Message,
    ) -> Result<Response<ResponseBody>, GatewayError>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let Opened {
            gateway,
            policies,
            pricing,
            mut settlement,
        } = self;
        let (to_bedrock, upstream_body) = Channel::<Bytes, BoxError>::new(QUEUE);
        let opened = gateway
            .upstream
            .open_stream(path, headers, upstream_body.boxed())
            .await;
        let (seed, answer) = match opened {
            Ok(opened) => opened,
            Err(e) => return Err(settlement.cancel(Settle::Release, e.into())),
        };
        let (stop, stopped) = oneshot::channel();
        let (notes, noted) = mpsc::unbounded_channel();
        tokio::spawn(pump(
            input,
            first,
            Signer::new(seed),
            to_bedrock,
            stopped,
            notes,
        ));
        let response = match answer.await {
            Ok(response) => response,
            // Timed out: Bedrock may be working on it (and bill it). Otherwise it never got it.
            Err(e @ ForwardError::Timeout(_)) => {
                return Err(settlement.cancel(Settle::Estimated { output_seen: None }, e.into()));
            }
            Err(e) => return Err(settlement.cancel(Settle::Release, e.into())),
        };
        let (mut parts, body) = response.into_parts();
        for name in DROPPED_RESPONSE_HEADERS {
            parts.headers.remove(*name);
        }
        settlement.set_bedrock_id(
            parts
                .headers
                .get("x-amzn-requestid")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        );
        if !parts.status.is_success() {
            // Bedrock refused the session: it charges nothing, and the pump stops with `stop`.
            settlement.finish(Settle::Release);
            return Ok(Response::from_parts(
                parts,
                body.map_err(BoxError::from).boxed(),
            ));
        }
        parts.headers.remove(http::header::CONTENT_LENGTH);
        let (to_client, client_body) = Channel::<Bytes, BoxError>::new(QUEUE);
        let metered = Metered {
            gateway,
            policies,
            pricing,
            settlement,
            totals: None,
            output_seen: false,
            upstream_ended: false,
        };
        let relayed = Relayed {
            to_client: Some(to_client),
            stop: Some(stop),
            noted: Some(noted),
            ending_since: None,
            read_since_end: 0,
        };
        tokio::spawn(metered.run(body, relayed));
        Ok(Response::from_parts(parts, client_body.boxed()))
    }
}

/// Sends the client's events to Bedrock in the gateway's signature chain until the client's
/// input ends, breaks, or the session is stopped (`stopped`, or its sender dropped); then
/// ends the input upstream with the chain's empty message.
async fn pump<B>(
    mut input: Input<B>,
    first: Message,
    mut signer: Signer,
    mut to_bedrock: Sender<Bytes, BoxError>,
    mut stopped: oneshot::Receiver<()>,
    notes: mpsc::UnboundedSender<Note>,
) where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let mut next = Some(first);
    loop {
        if let Some(event) = next.take() {
            let sent = match signer.wrap(&event, SystemTime::now()) {
                Ok(bytes) => to_bedrock.send_data(bytes).await,
                Err(e) => {
                    let _ = notes.send(Note::Malformed(e.to_string()));
                    break;
                }
            };
            if sent.is_err() {
                return; // Bedrock's side is gone.
            }
        }
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            read = input.next() => match read {
                Ok(Some(Inbound::Event(event))) => next = Some(event),
                Ok(Some(Inbound::End) | None) => break,
                Err(InputError::Broken(_)) => {
                    let _ = notes.send(Note::HungUp);
                    break;
                }
                Err(InputError::Malformed(e)) => {
                    let _ = notes.send(Note::Malformed(e.to_string()));
                    break;
                }
            },
        }
    }
    tracing::debug!("a session's input is over: ending it upstream");
    if let Ok(end) = signer.wrap_end(SystemTime::now()) {
        let _ = to_bedrock.send_data(end).await;
    }
}

/// The relay's side of a session: the client (until it goes or the session is ended for
/// it), the pump's stop and notes.
struct Relayed {
    to_client: Option<Sender<Bytes, BoxError>>,
    stop: Option<oneshot::Sender<()>>,
    noted: Option<mpsc::UnboundedReceiver<Note>>,
    /// Since when Bedrock's answer has been read only for its totals (the client is gone or
    /// the session was ended): bounded by [`DRAIN_WITHIN`] and `--max-response-bytes`.
    ending_since: Option<Instant>,
    read_since_end: usize,
}

impl Relayed {
    /// Stops relaying to the client and ends the session's input; the rest of Bedrock's
    /// answer is read for its totals only.
    fn end(&mut self) {
        self.to_client = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.ending_since.get_or_insert_with(Instant::now);
    }

    /// Ends the session for the client with an exception message first.
    async fn end_with(&mut self, member: &str, message: &str, within: std::time::Duration) {
        if let (Some(client), Ok(bytes)) = (
            self.to_client.as_mut(),
            envelope::exception(member, message),
        ) {
            let _ = tokio::time::timeout(within, client.send_data(bytes)).await;
        }
        self.end();
    }
}

/// A session's reservation and what it has seen; settles on drop with the last totals.
struct Metered {
    gateway: Arc<Gateway>,
    policies: Vec<Arc<BudgetPolicy>>,
    pricing: Pricing,
    settlement: Settlement,
    totals: Option<SessionUsage>,
    output_seen: bool,
    upstream_ended: bool,
}

impl Drop for Metered {
    fn drop(&mut self) {
        let how = settle_from(
            &self.pricing,
            self.totals,
            self.output_seen,
            self.upstream_ended,
        );
        self.settlement.finish(how);
    }
}

/// What to do with Bedrock's next frame.
enum Step {
    Frame(Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>),
    Note(Option<Note>),
    GiveUp,
}

impl Metered {
    /// Relays and meters Bedrock's answer until it ends (or is given up), then settles.
    async fn run(mut self, mut body: Incoming, mut relayed: Relayed) {
        let write_timeout = self.gateway.config.write_timeout;
        let max_bytes = self.gateway.config.max_response_bytes;
        let mut reader = Reader::default();
        loop {
            let give_up_at = relayed.ending_since.map(|at| at + DRAIN_WITHIN);
            let step = tokio::select! {
                note = recv(&mut relayed.noted) => Step::Note(note),
                frame = body.frame() => Step::Frame(frame),
                _ = sleep_until(give_up_at) => Step::GiveUp,
            };
            let data = match step {
                Step::Note(None) => {
                    relayed.noted = None;
                    continue;
                }
                Step::Note(Some(Note::HungUp)) => {
                    tracing::debug!(
                        "a session's client went away: reading Bedrock's answer to its end"
                    );
                    relayed.end();
                    continue;
                }
                Step::Note(Some(Note::Malformed(why))) => {
                    let message =
                        format!("the session's input was refused by the aigov gateway: {why}");
                    relayed
                        .end_with("validationException", &message, write_timeout)
                        .await;
                    continue;
                }
                Step::GiveUp => break,
                Step::Frame(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                Step::Frame(Some(Err(e))) => {
                    // Bedrock's stream broke: the client reads the break, not a clean end.
                    if let Some(client) = relayed.to_client.take() {
                        client.abort(e.into());
                    }
                    break;
                }
                Step::Frame(None) => {
                    tracing::debug!(
                        ending = relayed.ending_since.is_some(),
                        "Bedrock ended a session"
                    );
                    self.upstream_ended = true;
                    break;
                }
            };
            if relayed.ending_since.is_some() {
                relayed.read_since_end = relayed.read_since_end.saturating_add(data.len());
                if relayed.read_since_end > max_bytes {
                    break;
                }
            }
            reader.push(&data);
            if !self.pass_on(&mut reader, &mut relayed).await {
                break;
            }
            if relayed.ending_since.is_none()
                && let Err((member, message)) = self.top_up().await
            {
                relayed.end_with(member, &message, write_timeout).await;
            }
        }
        // Dropping `self` settles; dropping the client's sender ends its body.
    }

    /// Reads every complete message, meters it, and hands it to the client (while there is
    /// one); false when Bedrock's answer is no event stream.
    async fn pass_on(&mut self, reader: &mut Reader, relayed: &mut Relayed) -> bool {
        let write_timeout = self.gateway.config.write_timeout;
        loop {
            let message = match reader.message() {
                Ok(Some(message)) => message,
                Ok(None) => return true,
                Err(_) => return false,
            };
            self.observe(&message);
            let (Some(client), Ok(bytes)) =
                (relayed.to_client.as_mut(), envelope::encode(&message))
            else {
                continue;
            };
            match tokio::time::timeout(write_timeout, client.send_data(bytes)).await {
                Ok(Ok(())) => {}
                // The client is gone.
                Ok(Err(_)) => {
                    tracing::debug!(
                        "a session's client is gone: reading Bedrock's answer to its end"
                    );
                    relayed.end();
                }
                Err(_) => {
                    // Left unread past the write timeout: cut, and charged as a hang-up.
                    tracing::warn!(
                        ?write_timeout,
                        "a session's client left it unread past the write timeout: cut"
                    );
                    self.gateway.metrics.stalled_stream();
                    if let Some(client) = relayed.to_client.take() {
                        client.abort(StreamCut.into());
                    }
                    relayed.end();
                }
            }
        }
    }

    /// Keeps what a message from Bedrock tells: output, and the running totals.
    fn observe(&mut self, message: &Message) {
        let Some(event) = envelope::chunk_event(message) else {
            return;
        };
        self.output_seen = true;
        if let Some(seen) = session_usage_from_event(&event) {
            self.totals = Some(self.totals.map_or(seen, |t| t.max(seen)));
        }
    }

    /// Tops the reservation up until a whole tranche is ahead of the running totals' cost
    /// ([`plan::tranches_needed`]), from the budgets' slices as any call reserves; when a
    /// budget refuses, the exception that ends the session and its message.
    async fn top_up(&mut self) -> Result<(), (&'static str, String)> {
        let Some(totals) = self.totals else {
            return Ok(());
        };
        let used = self.gateway.session_cost(&self.pricing, &totals);
        let held = self.settlement.reserved();
        let tranches = plan::tranches_needed(held, used, self.pricing.tranche);
        if tranches == 0 {
            return Ok(());
        }
        let more = self.pricing.tranche.scaled(Decimal::from(tranches));
        let slices = &self.gateway.slices;
        let figures: Vec<_> = self
            .policies
            .iter()
            .map(|p| slices.figures(&p.key))
            .collect();
        let states = reserve::budget_states(&self.policies, &figures);
        match reserve::reserve(slices, &states, more).await {
            Ok(reservation) => {
                self.settlement.grow(reservation, more);
                Ok(())
            }
            Err(refused) => Err(ending(&refused, &states, used, held + more)),
        }
    }
}

/// The exception that ends a session whose top-up was `refused` (judged on the budgets'
/// `states`), having `used` so far and needing `wanted` reserved: `validationException` when
/// the budget cannot hold that this period whatever else returns (retrying cannot help until
/// it resets), `throttlingException` when other calls hold the headroom for now,
/// `serviceUnavailableException` when the controller cannot be reached.
fn ending(
    refused: &GatewayError,
    states: &[BudgetState<'_>],
    used: Usd,
    wanted: Usd,
) -> (&'static str, String) {
    let budget = match refused {
        GatewayError::Refused { refused, .. } => {
            states.iter().find(|s| s.policy.key == refused.budget)
        }
        _ => None,
    };
    if let Some(state) = budget {
        let left = state.limit.saturating_sub(state.spent);
        if plan::ends_for_good(left, wanted) {
            let (spent, limit) = Usd::display_pair(state.spent, state.limit);
            let resets = state
                .resets
                .as_deref()
                .unwrap_or("at the end of the period");
            return (
                "validationException",
                format!(
                    "{} cannot cover this session any longer: it has spent {spent} of \
                     its {limit} limit this period and this session has used {} more; the \
                     aigov gateway ended the session, which is charged what it used. The \
                     budget resets {resets}.",
                    state.policy.describe(),
                    used.display()
                ),
            );
        }
    }
    let member = match refused.code() {
        "ThrottlingException" => "throttlingException",
        "ServiceUnavailableException" => "serviceUnavailableException",
        _ => "validationException",
    };
    (
        member,
        format!("the aigov gateway ended this session: {refused}"),
    )
}

async fn recv(noted: &mut Option<mpsc::UnboundedReceiver<Note>>) -> Option<Note> {
    match noted {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
