//! What a whole response settles with, and following work Bedrock finishes after answering:
//! a Responses call run in the background (`background: true`, answered `queued`) and an
//! asynchronous invocation (StartAsyncInvoke, answered with its `invocationArn`). Such a call
//! keeps its worst case reserved while a task of its own polls the job's state with the
//! gateway's credentials (`GET /v1/responses/{id}`, `GET /async-invoke/{arn}`) every
//! `--follow-interval`, and settles once: with the usage of the completed response, with the
//! price of the seconds of output of a completed job, with nothing for a job that failed
//! (Bedrock bills none), and with the reserved worst case when the job is still unfinished
//! after [`FOLLOW_WITHIN`] or the gateway stops first (never free, never twice).

use std::time::{Duration, Instant};

use aigov_api::mantle::{self, Api};
use aigov_api::units;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::meter;
use crate::route::{Endpoint, Metering, Operation};
use crate::settle::{Settle, Settlement};

/// How long a job is followed before it is charged its reserved worst case.
pub const FOLLOW_WITHIN: Duration = Duration::from_secs(24 * 3600);
/// What is encoded of an ID put in a path: all but the unreserved characters (RFC 3986), so
/// `resp_...` stays as it is and an ARN's `:` and `/` are encoded, as the SDKs send them.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The largest job-state body read.
const MAX_STATE_BYTES: usize = 16 << 20;

/// A job Bedrock finishes later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Job {
    /// A background response: its ID and the path prefix it was created under (`/v1` or
    /// `/openai/v1`).
    Response {
        /// `resp_...`.
        id: String,
        /// Where to read it.
        prefix: String,
    },
    /// An asynchronous invocation.
    AsyncInvoke {
        /// Its ARN.
        arn: String,
    },
}

/// What to do once a whole response has been read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Settle now.
    Settle(Settle),
    /// Follow the job until it ends.
    Poll(Job),
}

/// How the call of `operation` (sent to `path`) settles on its whole response `body`.
pub fn after(operation: Operation, path: &str, headers: &http::HeaderMap, body: &[u8]) -> Next {
    let estimate = Settle::Estimated { output_seen: None };
    match operation.metering() {
        Metering::GuardrailUnits if operation == Operation::ApplyGuardrail => {
            match units::guardrail_usage_from_body(body) {
                Ok(usage) => Next::Settle(Settle::Units(units::guardrail_cost(&usage))),
                Err(_) => Next::Settle(estimate),
            }
        }
        Metering::GuardrailUnits => match units::guardrail_checks_cost(body) {
            Ok(cost) => Next::Settle(Settle::Units(cost)),
            Err(_) => Next::Settle(estimate),
        },
        Metering::AsyncOutput => match json_field(body, "invocationArn") {
            Some(arn) => Next::Poll(Job::AsyncInvoke { arn }),
            None => Next::Settle(estimate),
        },
        _ if operation == Operation::Responses && pending_response(body) => {
            match json_field(body, "id") {
                Some(id) => Next::Poll(Job::Response {
                    id,
                    prefix: path.strip_suffix("/responses").unwrap_or("/v1").to_owned(),
                }),
                None => Next::Settle(estimate),
            }
        }
        _ => Next::Settle(
            meter::response_usage(operation, headers, body).map_or(estimate, Settle::Reported),
        ),
    }
}

/// A Responses body whose status is not final (a background response just queued).
fn pending_response(body: &[u8]) -> bool {
    json_field(body, "status").is_some_and(|s| !mantle::is_terminal_status(&s))
}

fn json_field(body: &[u8], field: &str) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get(field)?
        .as_str()
        .map(str::to_owned)
}

/// What one poll of a job's state says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Polled {
    /// Not finished yet (or the poll failed: try again).
    Pending,
    /// Finished: settle so.
    Done(Settle),
}

/// Reads a background response's state.
pub fn response_state(body: &[u8]) -> Polled {
    match json_field(body, "status") {
        Some(status) if mantle::is_terminal_status(&status) => {
            Polled::Done(mantle::body_usage(Api::Responses, body).map_or(
                // Failed or cancelled before it used anything Bedrock reports.
                Settle::Estimated {
                    output_seen: Some(0),
                },
                Settle::Reported,
            ))
        }
        _ => Polled::Pending,
    }
}

/// Reads an async invocation's state (GetAsyncInvoke): a completed job costs what was
/// reserved for the seconds it asked for, a failed one nothing.
pub fn async_state(body: &[u8], reserved: aigov_api::Usd) -> Polled {
    match json_field(body, "status").as_deref() {
        Some("Completed") => Polled::Done(Settle::Units(reserved)),
        Some("Failed") => Polled::Done(Settle::Release),
        _ => Polled::Pending,
    }
}

/// Follows `job` in a task of its own and settles `settlement` when it ends.
pub fn spawn(job: Job, settlement: Settlement) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return; // dropped: the reserved worst case is charged
    };
    runtime.spawn(follow(job, settlement));
}

async fn follow(job: Job, mut settlement: Settlement) {
    let gateway = settlement.gateway().clone();
    let interval = gateway.config.follow_interval;
    let reserved = settlement.reserved();
    let (path, endpoint) = match &job {
        Job::Response { id, prefix } => (
            format!(
                "{prefix}/responses/{}",
                utf8_percent_encode(id, PATH_SEGMENT)
            ),
            Endpoint::Mantle,
        ),
        Job::AsyncInvoke { arn } => (
            format!("/async-invoke/{}", utf8_percent_encode(arn, PATH_SEGMENT)),
            Endpoint::Runtime,
        ),
    };
    let started = Instant::now();
    tracing::debug!(?job, %path, ?interval, "following a job Bedrock finishes later");
    while started.elapsed() < FOLLOW_WITHIN {
        tokio::time::sleep(interval).await;
        let sent = gateway
            .upstream
            .send(
                endpoint,
                &http::Method::GET,
                &path,
                None,
                &http::HeaderMap::new(),
                Bytes::new(),
            )
            .await;
        let response = match sent {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                tracing::debug!(?job, status = %response.status(), "job poll answered an error; polling on");
                continue;
            }
            Err(e) => {
                tracing::debug!(?job, error = %e, "job poll failed; polling on");
                continue;
            }
        };
        let Ok(body) = Limited::new(response.into_body(), MAX_STATE_BYTES)
            .collect()
            .await
        else {
            continue;
        };
        let body = body.to_bytes();
        let polled = match job {
            Job::Response { .. } => response_state(&body),
            Job::AsyncInvoke { .. } => async_state(&body, reserved),
        };
        tracing::debug!(?job, ?polled, "job polled");
        if let Polled::Done(how) = polled {
            settlement.finish(how);
            return;
        }
    }
    tracing::warn!(
        ?job,
        "a job Bedrock runs was not finished in time: charged its reserved worst case"
    );
    settlement.finish(Settle::Estimated { output_seen: None });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_background_response_is_followed_and_a_completed_one_settles_at_once() {
        let queued = br#"{"id":"resp_1","object":"response","status":"queued","background":true,"usage":null}"#;
        assert_eq!(
            after(
                Operation::Responses,
                "/openai/v1/responses",
                &http::HeaderMap::new(),
                queued
            ),
            Next::Poll(Job::Response {
                id: "resp_1".into(),
                prefix: "/openai/v1".into()
            })
        );
        let done =
            br#"{"id":"resp_2","status":"completed","usage":{"input_tokens":3,"output_tokens":4}}"#;
        let Next::Settle(Settle::Reported(u)) = after(
            Operation::Responses,
            "/v1/responses",
            &http::HeaderMap::new(),
            done,
        ) else {
            panic!("settled at once");
        };
        assert_eq!(u.output_tokens, 4);
    }

    #[test]
    fn a_polled_job_settles_only_when_it_is_over() {
        assert_eq!(
            response_state(br#"{"status":"in_progress"}"#),
            Polled::Pending
        );
        assert!(matches!(
            response_state(
                br#"{"status":"completed","usage":{"input_tokens":1,"output_tokens":2}}"#
            ),
            Polled::Done(Settle::Reported(_))
        ));
        let reserved = aigov_api::Usd::parse("0.48").unwrap();
        assert_eq!(
            async_state(br#"{"status":"InProgress"}"#, reserved),
            Polled::Pending
        );
        assert_eq!(
            async_state(br#"{"status":"Completed"}"#, reserved),
            Polled::Done(Settle::Units(reserved))
        );
        assert_eq!(
            async_state(br#"{"status":"Failed"}"#, reserved),
            Polled::Done(Settle::Release)
        );
        assert_eq!(async_state(b"garbage", reserved), Polled::Pending);
    }

    #[test]
    fn apply_guardrail_settles_with_its_units_and_an_async_start_is_followed() {
        let body = br#"{"usage":{"topicPolicyUnits":0,"contentPolicyUnits":2,"wordPolicyUnits":0,"sensitiveInformationPolicyUnits":0,"sensitiveInformationPolicyFreeUnits":0,"contextualGroundingPolicyUnits":0},"action":"NONE","outputs":[],"assessments":[]}"#;
        assert_eq!(
            after(
                Operation::ApplyGuardrail,
                "/guardrail/g/version/1/apply",
                &http::HeaderMap::new(),
                body
            ),
            Next::Settle(Settle::Units(aigov_api::Usd::parse("0.0003").unwrap()))
        );
        let started = br#"{"invocationArn":"arn:aws:bedrock:us-east-1:1:async-invoke/abc"}"#;
        assert_eq!(
            after(
                Operation::StartAsyncInvoke,
                "/async-invoke",
                &http::HeaderMap::new(),
                started
            ),
            Next::Poll(Job::AsyncInvoke {
                arn: "arn:aws:bedrock:us-east-1:1:async-invoke/abc".into()
            })
        );
    }
}
