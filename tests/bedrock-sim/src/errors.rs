//! Bedrock's error shapes: a JSON `{"message": ...}` body, the error code in
//! `x-amzn-ErrorType`, and the status code Bedrock uses for it.

use bytes::Bytes;
use http::{Response, StatusCode};

/// The HTTP status Bedrock answers a named error with.
pub fn status_for(code: &str) -> StatusCode {
    match code {
        "ThrottlingException" | "ModelNotReadyException" => StatusCode::TOO_MANY_REQUESTS,
        "AccessDeniedException"
        | "MissingAuthenticationTokenException"
        | "UnrecognizedClientException" => StatusCode::FORBIDDEN,
        "ResourceNotFoundException" | "UnknownOperationException" => StatusCode::NOT_FOUND,
        "ModelTimeoutException" => StatusCode::REQUEST_TIMEOUT,
        "ModelErrorException" => StatusCode::FAILED_DEPENDENCY,
        "ServiceUnavailableException" => StatusCode::SERVICE_UNAVAILABLE,
        "InternalServerException" => StatusCode::INTERNAL_SERVER_ERROR,
        // ValidationException, ServiceQuotaExceededException and anything unknown.
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A complete Bedrock error response.
pub fn response(code: &str, message: &str, request_id: &str) -> Response<Bytes> {
    let body = serde_json::json!({ "message": message }).to_string();
    Response::builder()
        .status(status_for(code))
        .header("content-type", "application/json")
        .header("x-amzn-RequestId", request_id)
        .header(
            "x-amzn-ErrorType",
            format!("{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
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
