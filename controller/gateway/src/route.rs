//! Which Bedrock runtime operation a request is, and on which model.

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// The four metered Bedrock runtime operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `POST /model/{id}/converse`
    Converse,
    /// `POST /model/{id}/converse-stream`
    ConverseStream,
    /// `POST /model/{id}/invoke`
    InvokeModel,
    /// `POST /model/{id}/invoke-with-response-stream`
    InvokeModelWithResponseStream,
}

impl Operation {
    /// The operation's name as AWS writes it.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Converse => "Converse",
            Operation::ConverseStream => "ConverseStream",
            Operation::InvokeModel => "InvokeModel",
            Operation::InvokeModelWithResponseStream => "InvokeModelWithResponseStream",
        }
    }

    /// The last path segment.
    pub fn path_suffix(self) -> &'static str {
        match self {
            Operation::Converse => "converse",
            Operation::ConverseStream => "converse-stream",
            Operation::InvokeModel => "invoke",
            Operation::InvokeModelWithResponseStream => "invoke-with-response-stream",
        }
    }

    /// True for the Converse API (model-independent body), false for InvokeModel
    /// (model-native body).
    pub fn is_converse(self) -> bool {
        matches!(self, Operation::Converse | Operation::ConverseStream)
    }

    /// True when the response is an event stream.
    pub fn is_stream(self) -> bool {
        matches!(
            self,
            Operation::ConverseStream | Operation::InvokeModelWithResponseStream
        )
    }
}

/// A routed request: the operation and the decoded model ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The operation.
    pub operation: Operation,
    /// The model ID, inference-profile ID or ARN, percent-decoded.
    pub model: String,
}

/// Why a path is not a metered operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Not `/model/{id}/{operation}`, or an operation the gateway does not serve.
    UnknownOperation,
    /// The model segment does not decode to a plausible model ID.
    BadModelId(String),
}

/// The longest model ID or ARN accepted (Bedrock's own limit is 2048).
pub const MAX_MODEL_ID_LEN: usize = 2048;

/// Routes a request path (without the query).
pub fn route(path: &str) -> Result<Route, RouteError> {
    let rest = path
        .strip_prefix("/model/")
        .ok_or(RouteError::UnknownOperation)?;
    let (encoded, suffix) = rest.rsplit_once('/').ok_or(RouteError::UnknownOperation)?;
    let operation = match suffix {
        "converse" => Operation::Converse,
        "converse-stream" => Operation::ConverseStream,
        "invoke" => Operation::InvokeModel,
        "invoke-with-response-stream" => Operation::InvokeModelWithResponseStream,
        _ => return Err(RouteError::UnknownOperation),
    };
    // The model is one path segment: a raw '/' means something else (ARNs arrive encoded).
    if encoded.is_empty() || encoded.contains('/') {
        return Err(RouteError::UnknownOperation);
    }
    let model = percent_decode_str(encoded)
        .decode_utf8()
        .map_err(|_| RouteError::BadModelId(encoded.chars().take(80).collect()))?
        .into_owned();
    let plausible = model.len() <= MAX_MODEL_ID_LEN
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c));
    if !plausible {
        return Err(RouteError::BadModelId(model.chars().take(80).collect()));
    }
    Ok(Route { operation, model })
}

/// Routes a request by method and path: only a `POST` to one of the four operations is
/// served. A malformed model ID is reported as such whatever the method.
pub fn accept(method: &http::Method, path: &str) -> Result<Route, crate::error::GatewayError> {
    use crate::error::GatewayError;
    match route(path) {
        Ok(r) if *method == http::Method::POST => Ok(r),
        Ok(_) | Err(RouteError::UnknownOperation) => Err(GatewayError::UnknownOperation),
        Err(RouteError::BadModelId(id)) => Err(GatewayError::BadModelId(id)),
    }
}

/// The path for `operation` on `model`, with the model encoded as one segment.
pub fn path_for(operation: Operation, model: &str) -> String {
    format!(
        "/model/{}/{}",
        utf8_percent_encode(model, NON_ALPHANUMERIC),
        operation.path_suffix()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_arn_is_one_segment() {
        let r = route("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse").unwrap();
        assert_eq!(r.operation, Operation::Converse);
        assert_eq!(
            r.model,
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
        );
    }

    #[test]
    fn every_operation_routes_and_round_trips() {
        for op in [
            Operation::Converse,
            Operation::ConverseStream,
            Operation::InvokeModel,
            Operation::InvokeModelWithResponseStream,
        ] {
            let path = path_for(op, "us.amazon.nova-lite-v1:0");
            let r = route(&path).unwrap();
            assert_eq!(
                (r.operation, r.model.as_str()),
                (op, "us.amazon.nova-lite-v1:0")
            );
        }
    }

    #[test]
    fn other_paths_and_hostile_ids_are_refused() {
        assert_eq!(
            route("/guardrail/x/version/1/apply"),
            Err(RouteError::UnknownOperation)
        );
        assert_eq!(
            route("/model/a/b/converse"),
            Err(RouteError::UnknownOperation)
        );
        assert_eq!(route("/model//converse"), Err(RouteError::UnknownOperation));
        assert!(matches!(
            route("/model/%FF%FE/converse"),
            Err(RouteError::BadModelId(_))
        ));
        assert!(matches!(
            route("/model/a%20b/converse"),
            Err(RouteError::BadModelId(_))
        ));
        let long = "a".repeat(MAX_MODEL_ID_LEN + 1);
        assert!(matches!(
            route(&format!("/model/{long}/invoke")),
            Err(RouteError::BadModelId(_))
        ));
    }
}
