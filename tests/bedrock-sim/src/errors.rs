//! Bedrock's error shapes: a JSON `{"message": ...}` body, the error code in
//! `x-amzn-ErrorType`, and the status code Bedrock uses for it.

use bytes::Bytes;
use http::{Response, StatusCode};

/// The HTTP status Bedrock answers a named error with.
pub fn status_for(code: &str) -> StatusCode {
    StatusCode::from_u16(aigov_api::bedrock_error::status_for(code)).expect("a valid status")
}

/// A complete Bedrock error response.
pub fn response(code: &str, message: &str, request_id: &str) -> Response<Bytes> {
    let body = aigov_api::bedrock_error::body(message);
    Response::builder()
        .status(status_for(code))
        .header("content-type", "application/json")
        .header("x-amzn-RequestId", request_id)
        .header(
            "x-amzn-ErrorType",
            aigov_api::bedrock_error::error_type(code),
        )
        .body(Bytes::from(body))
        .expect("static headers are valid")
}

/// The event-stream member name of an exception (`ThrottlingException` → `throttlingException`).
pub fn stream_member(code: &str) -> String {
    let mut chars = code.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}
