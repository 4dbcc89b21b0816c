//! Every way the gateway answers a call itself, in one type: [`GatewayError`]. Each variant
//! renders in the error shape of the API the client called ([`ErrorShape`]): Bedrock's
//! (status, `x-amzn-ErrorType`, a JSON `{"message"}` body, the request ID) for bedrock-runtime,
//! OpenAI's `{"error": {...}}` for Chat Completions and Responses, Anthropic's
//! `{"type": "error", ...}` for Messages, so every SDK reads it as its typed error: a throttle is a retryable
//! 429 `ThrottlingException` with `Retry-After`, an exhausted budget or a forbidden model a
//! non-retryable 403 `AccessDeniedException` whose message says which AIBudget, how much, and
//! when it resets. Each variant also names its outcome, the label the gateway counts it under
//! in `aigov_gateway_requests_total`.
//!
//! The messages are part of the interface: people and end-to-end tests read them.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use aigov_ledger::ledger::BudgetKey;
use aigov_ledger::proto::Refusal;

use aigov_api::mantle::{ErrorKind, anthropic_error_body, openai_error_body};

use crate::ResponseBody;
use crate::admission::Refused;
use crate::forward::ForwardError;
use crate::route::ErrorShape;

/// The header that says the gateway (not Bedrock) answered, and which AIBudget refused.
pub const REFUSED_BY_HEADER: &str = "x-aigov-refused-by";

/// The `Retry-After` (seconds) of a call that arrives before the gateway's caches synced: a
/// first list of pods and budgets takes well under a second.
pub const NOT_READY_RETRY_AFTER: u64 = 1;

/// Why the gateway answered a call itself instead of relaying Bedrock's answer.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Not an operation of bedrock-runtime or bedrock-mantle (or the wrong method for it).
    #[error(
        "the aigov gateway serves the Bedrock runtime API (/model/..., /guardrail/..., \
         /async-invoke) and bedrock-mantle's (/v1/chat/completions, /v1/responses, \
         /anthropic/v1/messages); this is none of their operations"
    )]
    UnknownOperation,
    /// A model of an operation billed per unit of output that the gateway has no price for, so
    /// it cannot reserve the call's worst case.
    #[error(
        "the aigov gateway has no price for {operation} on model {model:?}, so it cannot reserve \
         the call's worst case; the call is refused"
    )]
    Unpriced {
        /// The operation.
        operation: &'static str,
        /// The model.
        model: String,
    },
    /// The model segment is not a plausible model ID.
    #[error("the model identifier {0:?} is not a Bedrock model ID, inference profile or ARN")]
    BadModelId(String),
    /// No `Authorization` header.
    #[error("missing Authentication Token: sign the request with SigV4 as the AWS SDKs do")]
    MissingAuthentication,
    /// An `Authorization` header that is neither SigV4 nor a Bearer key.
    #[error(
        "the Authorization header is not a SigV4 signature (AWS4-HMAC-SHA256 Credential=..., \
         SignedHeaders=..., Signature=...) or a Bearer API key"
    )]
    BadAuthorization,
    /// The gateway has not yet listed the cluster's pods and AIBudgets (it is starting): it
    /// cannot tell who calls or which budgets apply, so the call is refused as retryable
    /// (503 with `Retry-After`), never as an unknown caller (a non-retryable 403).
    #[error(
        "the aigov gateway is starting and has not yet read the cluster's pods and AIBudgets; \
         retry shortly"
    )]
    NotReady,
    /// The TCP peer is no running pod, and unknown callers are refused.
    #[error(
        "the aigov gateway serves cluster workloads only: no running pod has IP {0} \
         (unknown callers are refused by policy)"
    )]
    UnknownCaller(IpAddr),
    /// The request body exceeds `--max-body-bytes`.
    #[error("the request body is larger than the gateway accepts ({0} bytes)")]
    BodyTooLarge(usize),
    /// The request body broke off.
    #[error("the request body could not be read: {0}")]
    BodyUnreadable(String),
    /// The client took too long to send its body.
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    /// The body is JSON, but not an object.
    #[error("the request body must be a JSON object")]
    BodyNotAnObject,
    /// The body is not JSON.
    #[error("the request body is not valid JSON: {0}")]
    BodyNotJson(String),
    /// Request metadata Bedrock would refuse (too many pairs, a key or value too long or off
    /// its pattern, a value that is no string, a header that is no JSON object): Bedrock's own
    /// ValidationException, word for word.
    #[error("{0}")]
    InvalidMetadata(aigov_api::Error),
    /// A service tier Bedrock does not know: its ValidationException, naming the field.
    #[error("{0}")]
    InvalidServiceTier(aigov_api::Error),
    /// An AIBudget refused: model rules, exhaustion, the soft limit's rate, or no headroom
    /// for the worst case.
    #[error("{}", refused.message)]
    Refused {
        /// Which budget, why, and the message.
        refused: Refused,
        /// Seconds until a retry may succeed (throttles only; at least 1 is sent).
        retry_after: u64,
    },
    /// The controller cannot be reached and a fail-closed budget has nothing granted.
    #[error(
        "the aigov controller is unreachable and AIBudget {0} fails closed \
         (failMode: Closed) with no budget granted to this gateway; retry later"
    )]
    ControllerUnreachable(BudgetKey),
    /// Too many usage records await the controller's acknowledgement.
    #[error(
        "the aigov gateway holds too much unreported usage (the controller is not \
         acknowledging); retry later"
    )]
    Backlog,
    /// Forwarding failed before Bedrock answered.
    #[error("{0}")]
    Upstream(ForwardError),
    /// Bedrock answered success but its body could not be read; carries Bedrock's request ID.
    #[error("Bedrock's response could not be read: {reason}")]
    ResponseUnreadable {
        /// Bedrock's request ID (empty when it sent none).
        request_id: String,
        /// Why.
        reason: String,
    },
}

impl From<ForwardError> for GatewayError {
    fn from(e: ForwardError) -> Self {
        GatewayError::Upstream(e)
    }
}

impl GatewayError {
    /// A budget's refusal with no retry hint beyond the minimum.
    pub fn refused(refused: Refused) -> GatewayError {
        GatewayError::Refused {
            refused,
            retry_after: 0,
        }
    }

    /// The Bedrock error code (its HTTP status follows from it).
    pub fn code(&self) -> &'static str {
        use GatewayError::*;
        match self {
            UnknownOperation => "UnknownOperationException",
            Unpriced { .. } => "AccessDeniedException",
            BadModelId(_)
            | BodyTooLarge(_)
            | BodyUnreadable(_)
            | BodyTimeout(_)
            | BodyNotAnObject
            | BodyNotJson(_)
            | InvalidMetadata(_)
            | InvalidServiceTier(_) => "ValidationException",
            MissingAuthentication => "MissingAuthenticationTokenException",
            BadAuthorization => "IncompleteSignatureException",
            UnknownCaller(_) => "AccessDeniedException",
            Refused { refused, .. } if refused.kind == Refusal::Throttled => "ThrottlingException",
            Refused { refused, .. } if refused.kind == Refusal::MetadataMissing => {
                "ValidationException"
            }
            Refused { .. } => "AccessDeniedException",
            Upstream(ForwardError::Timeout(_)) => "ModelTimeoutException",
            NotReady
            | ControllerUnreachable(_)
            | Backlog
            | Upstream(_)
            | ResponseUnreadable { .. } => "ServiceUnavailableException",
        }
    }

    /// The outcome label the call is counted under.
    pub fn outcome(&self) -> &'static str {
        use GatewayError::*;
        match self {
            UnknownOperation => "unknown_operation",
            Unpriced { .. } => "unmetered",
            BadModelId(_)
            | BodyTooLarge(_)
            | BodyUnreadable(_)
            | BodyTimeout(_)
            | BodyNotAnObject
            | BodyNotJson(_)
            | InvalidMetadata(_)
            | InvalidServiceTier(_) => "invalid",
            MissingAuthentication | BadAuthorization => "unauthenticated",
            NotReady => "not_ready",
            UnknownCaller(_) => "unknown_caller",
            Refused { refused, .. } => match refused.kind {
                Refusal::Throttled => "throttled",
                Refusal::ModelForbidden => "model_forbidden",
                Refusal::MetadataMissing => "metadata_missing",
                _ => "exhausted",
            },
            ControllerUnreachable(_) | Backlog => "unavailable",
            Upstream(_) | ResponseUnreadable { .. } => "upstream_error",
        }
    }

    /// The HTTP status Bedrock uses for [`GatewayError::code`].
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(aigov_api::bedrock_error::status_for(self.code()))
            .unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// The AIBudget a refusal names in [`REFUSED_BY_HEADER`] (empty for an unknown caller,
    /// whom no budget refused); `None` when the header is not sent.
    pub fn refused_by(&self) -> Option<&str> {
        match self {
            GatewayError::Refused { refused, .. } => Some(&refused.budget),
            GatewayError::UnknownCaller(_) => Some(""),
            _ => None,
        }
    }

    /// The refusal to record against the budget and warn the pod about, if a budget refused.
    pub fn refusal(&self) -> Option<&Refused> {
        match self {
            GatewayError::Refused { refused, .. } => Some(refused),
            _ => None,
        }
    }

    /// Seconds a client should wait before retrying (`Retry-After`), for the answers that say
    /// "retry": throttles (at least 1) and a gateway still starting (1).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::Refused {
                refused,
                retry_after,
            } if refused.kind == Refusal::Throttled => Some((*retry_after).max(1)),
            GatewayError::NotReady => Some(NOT_READY_RETRY_AFTER),
            _ => None,
        }
    }

    /// The request ID the response carries: Bedrock's when Bedrock answered, else `ours`.
    pub fn request_id<'a>(&'a self, ours: &'a str) -> &'a str {
        match self {
            GatewayError::ResponseUnreadable { request_id, .. } => request_id,
            _ => ours,
        }
    }

    /// The response in `shape`, identified by `request_id` (the gateway's own ID for the
    /// call, unless Bedrock's is known).
    pub fn into_response(self, request_id: &str, shape: ErrorShape) -> Response<ResponseBody> {
        let id = self.request_id(request_id).to_owned();
        let mut response = match shape {
            ErrorShape::Bedrock => bedrock_error(self.code(), &self.to_string(), &id),
            ErrorShape::OpenAi => json_error(
                self.kind(),
                openai_error_body(self.kind(), self.openai_code(), &self.to_string()),
                "x-request-id",
                &id,
            ),
            ErrorShape::Anthropic => json_error(
                self.kind(),
                anthropic_error_body(self.kind(), &self.to_string(), &id),
                "request-id",
                &id,
            ),
        };
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after() {
            headers.insert("retry-after", HeaderValue::from(seconds));
        }
        if shape != ErrorShape::Bedrock && self.kind() == ErrorKind::PermissionDenied {
            // The OpenAI and Anthropic SDKs honour it: a refusal for good is not retried.
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if let Some(Ok(v)) = self.refused_by().map(HeaderValue::from_str) {
            headers.insert(REFUSED_BY_HEADER, v);
        }
        response
    }

    /// The kind of error, for the OpenAI and Anthropic shapes (their SDKs type errors by
    /// status).
    pub fn kind(&self) -> ErrorKind {
        if matches!(
            self,
            GatewayError::MissingAuthentication | GatewayError::BadAuthorization
        ) {
            return ErrorKind::Unauthenticated;
        }
        match self.status().as_u16() {
            400 => ErrorKind::Invalid,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            429 => ErrorKind::RateLimited,
            408 => ErrorKind::Unavailable(504),
            status => ErrorKind::Unavailable(status),
        }
    }

    /// The OpenAI `code` of the error.
    fn openai_code(&self) -> &'static str {
        use GatewayError::*;
        match self {
            Refused { refused, .. } => match refused.kind {
                Refusal::Throttled => "rate_limit_exceeded",
                Refusal::ModelForbidden => "model_not_allowed",
                Refusal::MetadataMissing => "invalid_request_error",
                _ => "budget_exhausted",
            },
            UnknownOperation => "unknown_url",
            Unpriced { .. } => "unmetered_operation",
            UnknownCaller(_) => "unknown_caller",
            MissingAuthentication | BadAuthorization => "invalid_api_key",
            BadModelId(_) => "model_not_found",
            _ => match self.kind() {
                ErrorKind::Invalid => "invalid_request",
                _ => "service_unavailable",
            },
        }
    }
}

/// An OpenAI- or Anthropic-shaped error: `kind`'s status, the JSON `body`, the request ID in
/// `id_header`.
fn json_error(
    kind: ErrorKind,
    body: String,
    id_header: &'static str,
    request_id: &str,
) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(id_header, v.clone());
        headers.insert("x-amzn-requestid", v);
    }
    response
}

/// A Bedrock-shaped error response: Bedrock's status for `code`, `x-amzn-ErrorType`,
/// `x-amzn-RequestId` and a JSON `{"message"}` body.
fn bedrock_error(code: &str, message: &str, request_id: &str) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(aigov_api::bedrock_error::body(message)))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::from_u16(aigov_api::bedrock_error::status_for(code))
        .unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    if let Ok(v) = HeaderValue::from_str(&aigov_api::bedrock_error::error_type(code)) {
        headers.insert("x-amzn-errortype", v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn refused(kind: Refusal) -> Refused {
        Refused {
            kind,
            budget: "team/b".into(),
            message: "AIBudget team/b has spent $1.00 of its $1.00 limit".into(),
        }
    }

    /// Status, `x-amzn-ErrorType`'s code, the body's message, and the outcome label.
    async fn rendered(error: GatewayError) -> (u16, String, String, &'static str, http::HeaderMap) {
        let outcome = error.outcome();
        let response = error.into_response("aigov-1-000000000001", ErrorShape::Bedrock);
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let error_type = headers["x-amzn-errortype"].to_str().unwrap();
        let code = error_type.split(':').next().unwrap().to_owned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let message = json["message"].as_str().unwrap().to_owned();
        (status, code, message, outcome, headers)
    }

    #[tokio::test]
    async fn every_variant_renders_as_bedrock_with_its_status_error_type_and_outcome() {
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let cases = [
            (
                GatewayError::UnknownOperation,
                404,
                "UnknownOperationException",
                "unknown_operation",
            ),
            (
                GatewayError::BadModelId("x y".into()),
                400,
                "ValidationException",
                "invalid",
            ),
            (
                GatewayError::MissingAuthentication,
                403,
                "MissingAuthenticationTokenException",
                "unauthenticated",
            ),
            (
                GatewayError::BadAuthorization,
                400,
                "IncompleteSignatureException",
                "unauthenticated",
            ),
            (
                GatewayError::NotReady,
                503,
                "ServiceUnavailableException",
                "not_ready",
            ),
            (
                GatewayError::UnknownCaller(ip),
                403,
                "AccessDeniedException",
                "unknown_caller",
            ),
            (
                GatewayError::BodyTooLarge(10),
                400,
                "ValidationException",
                "invalid",
            ),
            (
                GatewayError::BodyUnreadable("reset".into()),
                400,
                "ValidationException",
                "invalid",
            ),
            (
                GatewayError::BodyTimeout(Duration::from_secs(30)),
                400,
                "ValidationException",
                "invalid",
            ),
            (
                GatewayError::BodyNotAnObject,
                400,
                "ValidationException",
                "invalid",
            ),
            (
                GatewayError::BodyNotJson("eof".into()),
                400,
                "ValidationException",
                "invalid",
            ),
            (
                GatewayError::refused(refused(Refusal::Throttled)),
                429,
                "ThrottlingException",
                "throttled",
            ),
            (
                GatewayError::refused(refused(Refusal::Exhausted)),
                403,
                "AccessDeniedException",
                "exhausted",
            ),
            (
                GatewayError::refused(refused(Refusal::ModelForbidden)),
                403,
                "AccessDeniedException",
                "model_forbidden",
            ),
            (
                GatewayError::ControllerUnreachable("team/b".into()),
                503,
                "ServiceUnavailableException",
                "unavailable",
            ),
            (
                GatewayError::Backlog,
                503,
                "ServiceUnavailableException",
                "unavailable",
            ),
            (
                GatewayError::Upstream(ForwardError::Unreachable("refused".into())),
                503,
                "ServiceUnavailableException",
                "upstream_error",
            ),
            (
                GatewayError::Upstream(ForwardError::Timeout(Duration::from_secs(60))),
                408,
                "ModelTimeoutException",
                "upstream_error",
            ),
            (
                GatewayError::ResponseUnreadable {
                    request_id: "b-1".into(),
                    reason: "eof".into(),
                },
                503,
                "ServiceUnavailableException",
                "upstream_error",
            ),
        ];
        for (error, status, code, outcome) in cases {
            let what = format!("{error:?}");
            let (s, c, message, o, headers) = rendered(error).await;
            assert_eq!((s, c.as_str(), o), (status, code, outcome), "{what}");
            assert!(!message.is_empty(), "{what}");
            assert_eq!(headers["content-type"], "application/json", "{what}");
        }
    }

    #[tokio::test]
    async fn a_throttle_carries_retry_after_of_at_least_a_second_and_names_its_budget() {
        let error = GatewayError::Refused {
            refused: refused(Refusal::Throttled),
            retry_after: 0,
        };
        let (_, _, message, _, headers) = rendered(error).await;
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(headers[REFUSED_BY_HEADER], "team/b");
        assert_eq!(
            message,
            "AIBudget team/b has spent $1.00 of its $1.00 limit"
        );
        let error = GatewayError::Refused {
            refused: refused(Refusal::Throttled),
            retry_after: 7,
        };
        assert_eq!(rendered(error).await.4["retry-after"], "7");
    }

    #[tokio::test]
    async fn a_gateway_still_starting_says_retry_after_a_second_and_names_no_budget() {
        let (status, code, message, _, headers) = rendered(GatewayError::NotReady).await;
        assert_eq!(
            (status, code.as_str()),
            (503, "ServiceUnavailableException")
        );
        assert_eq!(headers["retry-after"], "1");
        assert!(headers.get(REFUSED_BY_HEADER).is_none());
        assert_eq!(
            message,
            "the aigov gateway is starting and has not yet read the cluster's pods and \
             AIBudgets; retry shortly"
        );
    }

    #[tokio::test]
    async fn an_access_denial_names_its_budget_but_has_no_retry_after() {
        let (_, _, _, _, headers) =
            rendered(GatewayError::refused(refused(Refusal::Exhausted))).await;
        assert_eq!(headers[REFUSED_BY_HEADER], "team/b");
        assert!(headers.get("retry-after").is_none());
    }

    #[tokio::test]
    async fn failures_that_are_not_a_budgets_refusal_name_no_budget() {
        for error in [GatewayError::Backlog, GatewayError::MissingAuthentication] {
            assert!(rendered(error).await.4.get(REFUSED_BY_HEADER).is_none());
        }
        let unknown = GatewayError::UnknownCaller("10.0.0.9".parse().unwrap());
        assert_eq!(
            rendered(unknown).await.4[REFUSED_BY_HEADER],
            "",
            "as before: empty"
        );
    }

    #[tokio::test]
    async fn a_refusal_carries_the_gateways_request_id_and_an_unreadable_response_bedrocks() {
        let (_, _, _, _, headers) = rendered(GatewayError::Backlog).await;
        assert_eq!(headers["x-amzn-requestid"], "aigov-1-000000000001");
        let unreadable = GatewayError::ResponseUnreadable {
            request_id: "bedrock-7".into(),
            reason: "connection reset".into(),
        };
        let (_, _, message, _, headers) = rendered(unreadable).await;
        assert_eq!(headers["x-amzn-requestid"], "bedrock-7");
        assert_eq!(
            message,
            "Bedrock's response could not be read: connection reset"
        );
    }

    async fn shaped(
        error: GatewayError,
        shape: ErrorShape,
    ) -> (u16, serde_json::Value, http::HeaderMap) {
        let response = error.into_response("aigov-1-000000000002", shape);
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap(), headers)
    }

    #[tokio::test]
    async fn openai_callers_get_openai_errors_with_the_status_their_sdk_types_by() {
        let (status, body, headers) = shaped(
            GatewayError::refused(refused(Refusal::Exhausted)),
            ErrorShape::OpenAi,
        )
        .await;
        assert_eq!(status, 403);
        assert_eq!(body["error"]["type"], "permission_error");
        assert_eq!(body["error"]["code"], "budget_exhausted");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("AIBudget team/b")
        );
        assert_eq!(headers["x-should-retry"], "false");
        assert_eq!(headers["x-request-id"], "aigov-1-000000000002");
        let (status, body, headers) = shaped(
            GatewayError::refused(refused(Refusal::Throttled)),
            ErrorShape::OpenAi,
        )
        .await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (429, &serde_json::json!("rate_limit_exceeded"))
        );
        assert_eq!(headers["retry-after"], "1");
        let (status, _, _) = shaped(GatewayError::MissingAuthentication, ErrorShape::OpenAi).await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn anthropic_callers_get_anthropic_errors() {
        let (status, body, headers) = shaped(
            GatewayError::refused(refused(Refusal::ModelForbidden)),
            ErrorShape::Anthropic,
        )
        .await;
        assert_eq!(status, 403);
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "permission_error");
        assert_eq!(body["request_id"], "aigov-1-000000000002");
        assert_eq!(headers["request-id"], "aigov-1-000000000002");
        let (status, body, _) = shaped(GatewayError::Backlog, ErrorShape::Anthropic).await;
        assert_eq!(
            (status, &body["error"]["type"]),
            (503, &serde_json::json!("api_error"))
        );
        let (status, body, _) = shaped(GatewayError::UnknownOperation, ErrorShape::Anthropic).await;
        assert_eq!(
            (status, &body["error"]["type"]),
            (404, &serde_json::json!("not_found_error"))
        );
    }

    #[test]
    fn the_messages_are_word_for_word_what_callers_and_tests_read() {
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(
            GatewayError::UnknownOperation.to_string(),
            "the aigov gateway serves the Bedrock runtime API (/model/..., /guardrail/..., \
             /async-invoke) and bedrock-mantle's (/v1/chat/completions, /v1/responses, \
             /anthropic/v1/messages); this is none of their operations"
        );
        assert_eq!(
            GatewayError::BadModelId("a b".into()).to_string(),
            "the model identifier \"a b\" is not a Bedrock model ID, inference profile or ARN"
        );
        assert_eq!(
            GatewayError::MissingAuthentication.to_string(),
            "missing Authentication Token: sign the request with SigV4 as the AWS SDKs do"
        );
        assert_eq!(
            GatewayError::BadAuthorization.to_string(),
            "the Authorization header is not a SigV4 signature (AWS4-HMAC-SHA256 Credential=..., \
             SignedHeaders=..., Signature=...) or a Bearer API key"
        );
        assert_eq!(
            GatewayError::UnknownCaller(ip).to_string(),
            "the aigov gateway serves cluster workloads only: no running pod has IP 10.0.0.9 \
             (unknown callers are refused by policy)"
        );
        assert_eq!(
            GatewayError::BodyTooLarge(20).to_string(),
            "the request body is larger than the gateway accepts (20 bytes)"
        );
        assert_eq!(
            GatewayError::BodyTimeout(Duration::from_secs(30)).to_string(),
            "the request body did not arrive within 30s"
        );
        assert_eq!(
            GatewayError::BodyNotAnObject.to_string(),
            "the request body must be a JSON object"
        );
        assert_eq!(
            GatewayError::ControllerUnreachable("ns/b".into()).to_string(),
            "the aigov controller is unreachable and AIBudget ns/b fails closed \
             (failMode: Closed) with no budget granted to this gateway; retry later"
        );
        assert_eq!(
            GatewayError::Backlog.to_string(),
            "the aigov gateway holds too much unreported usage (the controller is not \
             acknowledging); retry later"
        );
        assert_eq!(
            GatewayError::Upstream(ForwardError::Timeout(Duration::from_secs(60))).to_string(),
            "Bedrock did not answer within 60s"
        );
    }
}
