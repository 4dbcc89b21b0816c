//! Refusals in Bedrock's own error shapes, so every SDK reads them as its typed errors: a
//! throttle is a retryable 429 `ThrottlingException`, an exhausted budget or a forbidden model
//! a non-retryable 403 `AccessDeniedException` whose message says which AIBudget, how much, and
//! when it resets.

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, Full};

use crate::ResponseBody;

/// The header that says the gateway (not Bedrock) answered, and why.
pub const REFUSED_BY_HEADER: &str = "x-aigov-refused-by";

/// A Bedrock-shaped error response.
pub fn bedrock_error(code: &str, message: &str, request_id: &str) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(aigov_api::bedrock_error::body(message)))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = http::StatusCode::from_u16(aigov_api::bedrock_error::status_for(code))
        .unwrap_or(http::StatusCode::BAD_REQUEST);
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

/// A 429 with a `Retry-After` hint (seconds).
pub fn throttled(
    message: &str,
    request_id: &str,
    retry_after_secs: u64,
    budget: &str,
) -> Response<ResponseBody> {
    let mut response = bedrock_error("ThrottlingException", message, request_id);
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from(retry_after_secs.max(1)));
    mark(&mut response, budget);
    response
}

/// A 403 for an exhausted budget or a forbidden model.
pub fn denied(message: &str, request_id: &str, budget: &str) -> Response<ResponseBody> {
    let mut response = bedrock_error("AccessDeniedException", message, request_id);
    mark(&mut response, budget);
    response
}

fn mark(response: &mut Response<ResponseBody>, budget: &str) {
    if let Ok(v) = HeaderValue::from_str(budget) {
        response.headers_mut().insert(REFUSED_BY_HEADER, v);
    }
}
