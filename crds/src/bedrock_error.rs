//! Bedrock runtime's error shapes, shared by the metering gateway (which must refuse in a way
//! every SDK understands) and the simulator (which must fail like Bedrock): a JSON
//! `{"message": ...}` body, the error code in `x-amzn-ErrorType`, and the status Bedrock uses.

/// The HTTP status Bedrock answers a named error with.
pub fn status_for(code: &str) -> u16 {
    match code {
        "ThrottlingException" | "ModelNotReadyException" => 429,
        "AccessDeniedException"
        | "MissingAuthenticationTokenException"
        | "InvalidSignatureException"
        | "UnrecognizedClientException" => 403,
        "ResourceNotFoundException" | "UnknownOperationException" => 404,
        "ModelTimeoutException" => 408,
        "ModelErrorException" => 424,
        "ServiceUnavailableException" => 503,
        "InternalServerException" => 500,
        // ValidationException, ServiceQuotaExceededException and anything unknown.
        _ => 400,
    }
}

/// The `x-amzn-ErrorType` header value for `code`.
pub fn error_type(code: &str) -> String {
    format!("{code}:http://internal.amazon.com/coral/com.amazon.bedrock/")
}

/// The JSON body of an error.
pub fn body(message: &str) -> String {
    serde_json::json!({ "message": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_429_and_access_denied_is_403() {
        assert_eq!(status_for("ThrottlingException"), 429);
        assert_eq!(status_for("AccessDeniedException"), 403);
        assert_eq!(status_for("SomethingNew"), 400);
    }

    #[test]
    fn the_body_escapes_the_message() {
        assert_eq!(body("a \"b\""), r#"{"message":"a \"b\""}"#);
    }
}
