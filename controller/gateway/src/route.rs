//! Which Bedrock operation a request is, on which model, and where it goes: every operation of
//! bedrock-runtime's REST API (as its Smithy model lists them) and the three APIs of
//! bedrock-mantle (OpenAI Chat Completions and Responses, Anthropic Messages), on one listener.
//! The runtime's paths (`/model/...`, `/guardrail/...`, `/async-invoke...`) and mantle's
//! (`/v1/...`, `/openai/v1/...`, `/anthropic/v1/...`) never overlap, so a client reaches the
//! gateway by setting its usual base URL to the gateway's address (with the API's own prefix).

use aigov_api::mantle::Api;
use http::Method;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Every operation the gateway serves.
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
    /// `POST /model/{id}/invoke-with-bidirectional-stream` (HTTP/2, both ways)
    InvokeModelWithBidirectionalStream,
    /// `POST /model/{id}/count-tokens` (free)
    CountTokens,
    /// `POST /guardrail/{id}/version/{version}/apply`
    ApplyGuardrail,
    /// `POST /guardrail-checks/invoke`
    InvokeGuardrailChecks,
    /// `POST /async-invoke`
    StartAsyncInvoke,
    /// `GET /async-invoke/{invocationArn}`
    GetAsyncInvoke,
    /// `GET /async-invoke`
    ListAsyncInvokes,
    /// mantle `POST /v1/chat/completions`
    ChatCompletions,
    /// mantle `POST /v1/responses`
    Responses,
    /// mantle `GET`/`DELETE /v1/responses/{id}`, `.../input_items`, `POST .../cancel`,
    /// `/v1/conversations...`, `GET /v1/models`: stored state and listings, not billed
    ResponsesState,
    /// mantle `POST /anthropic/v1/messages`
    Messages,
    /// mantle `POST /anthropic/v1/messages/count_tokens` (free)
    MessagesCountTokens,
}

/// How an operation is charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metering {
    /// Per token: worst case reserved, settled with the usage reported.
    Tokens,
    /// Per guardrail text unit: worst case from the text's length, settled with `usage`.
    GuardrailUnits,
    /// Per second of output of an asynchronous job: reserved from the request, charged when
    /// the job completes.
    AsyncOutput,
    /// Not billed by Bedrock: passed through, counted as a request of every budget.
    Free,
    /// Per token of a bidirectional (speech) session: reserved in tranches as it goes, charged
    /// its running totals ([`crate::bidi`]).
    Session,
}

/// Which Bedrock endpoint serves an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `bedrock-runtime.{region}.amazonaws.com`, signing name `bedrock`.
    Runtime,
    /// `bedrock-mantle.{region}.api.aws`, signing name `bedrock-mantle`.
    Mantle,
}

/// The shape an operation's errors take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorShape {
    /// Bedrock's: `x-amzn-ErrorType`, `{"message"}`.
    Bedrock,
    /// OpenAI's `{"error": {...}}`.
    OpenAi,
    /// Anthropic's `{"type": "error", "error": {...}}`.
    Anthropic,
}

impl Operation {
    /// The operation's name as AWS (or the API) writes it; reports and EMF carry it.
    pub fn name(self) -> &'static str {
        use Operation::*;
        match self {
            Converse => "Converse",
            ConverseStream => "ConverseStream",
            InvokeModel => "InvokeModel",
            InvokeModelWithResponseStream => "InvokeModelWithResponseStream",
            InvokeModelWithBidirectionalStream => "InvokeModelWithBidirectionalStream",
            CountTokens => "CountTokens",
            ApplyGuardrail => "ApplyGuardrail",
            InvokeGuardrailChecks => "InvokeGuardrailChecks",
            StartAsyncInvoke => "StartAsyncInvoke",
            GetAsyncInvoke => "GetAsyncInvoke",
            ListAsyncInvokes => "ListAsyncInvokes",
            ChatCompletions => "ChatCompletions",
            Responses => "Responses",
            ResponsesState => "ResponsesState",
            Messages => "Messages",
            MessagesCountTokens => "MessagesCountTokens",
        }
    }

    /// The last path segment of the `/model/{id}/...` operations.
    pub fn path_suffix(self) -> Option<&'static str> {
        use Operation::*;
        Some(match self {
            Converse => "converse",
            ConverseStream => "converse-stream",
            InvokeModel => "invoke",
            InvokeModelWithResponseStream => "invoke-with-response-stream",
            InvokeModelWithBidirectionalStream => "invoke-with-bidirectional-stream",
            CountTokens => "count-tokens",
            _ => return None,
        })
    }

    /// True for the Converse API (model-independent body).
    pub fn is_converse(self) -> bool {
        matches!(self, Operation::Converse | Operation::ConverseStream)
    }

    /// True when the response is an AWS event stream.
    pub fn is_event_stream(self) -> bool {
        matches!(
            self,
            Operation::ConverseStream | Operation::InvokeModelWithResponseStream
        )
    }

    /// The mantle API of the operation, if it is one.
    pub fn mantle_api(self) -> Option<Api> {
        match self {
            Operation::ChatCompletions => Some(Api::ChatCompletions),
            Operation::Responses => Some(Api::Responses),
            Operation::Messages => Some(Api::Messages),
            _ => None,
        }
    }

    /// How the operation is charged.
    pub fn metering(self) -> Metering {
        use Operation::*;
        match self {
            Converse
            | ConverseStream
            | InvokeModel
            | InvokeModelWithResponseStream
            | ChatCompletions
            | Responses
            | Messages => Metering::Tokens,
            ApplyGuardrail | InvokeGuardrailChecks => Metering::GuardrailUnits,
            StartAsyncInvoke => Metering::AsyncOutput,
            CountTokens | MessagesCountTokens | GetAsyncInvoke | ListAsyncInvokes
            | ResponsesState => Metering::Free,
            InvokeModelWithBidirectionalStream => Metering::Session,
        }
    }

    /// The endpoint that serves it.
    pub fn endpoint(self) -> Endpoint {
        use Operation::*;
        match self {
            ChatCompletions | Responses | ResponsesState | Messages | MessagesCountTokens => {
                Endpoint::Mantle
            }
            _ => Endpoint::Runtime,
        }
    }

    /// The error shape its clients read.
    pub fn error_shape(self) -> ErrorShape {
        use Operation::*;
        match self {
            ChatCompletions | Responses | ResponsesState => ErrorShape::OpenAi,
            Messages | MessagesCountTokens => ErrorShape::Anthropic,
            _ => ErrorShape::Bedrock,
        }
    }

    /// True when the request body is a JSON object the gateway reads (the GETs and DELETEs
    /// have none).
    pub fn has_json_body(self, method: &Method) -> bool {
        *method == Method::POST && self != Operation::InvokeModelWithBidirectionalStream
    }
}

/// A routed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The operation.
    pub operation: Operation,
    /// The model ID, inference-profile ID or ARN from the path, percent-decoded; for the
    /// guardrail operations the guardrail; empty where the model is in the body (mantle,
    /// StartAsyncInvoke) until [`Route::model_from_body`] fills it in.
    pub model: String,
    /// The path (and query) to send upstream, as the client sent it.
    pub path_and_query: String,
}

/// Why a path is not an operation the gateway serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Not a Bedrock runtime or mantle operation (or the wrong method for it).
    UnknownOperation,
    /// The model segment does not decode to a plausible model ID.
    BadModelId(String),
}

/// The longest model ID or ARN accepted (Bedrock's own limit is 2048).
pub const MAX_MODEL_ID_LEN: usize = 2048;

/// Routes a request by method and path (without the query).
pub fn route(method: &Method, path: &str) -> Result<Route, RouteError> {
    let (operation, model) = match path.strip_prefix("/model/") {
        Some(rest) => model_operation(rest)?,
        None => other_operation(method, path)?,
    };
    let wanted = match operation {
        Operation::GetAsyncInvoke | Operation::ListAsyncInvokes => Method::GET,
        Operation::ResponsesState => method.clone(),
        _ => Method::POST,
    };
    if *method != wanted {
        return Err(RouteError::UnknownOperation);
    }
    Ok(Route {
        operation,
        model,
        path_and_query: path.to_owned(),
    })
}

/// `/model/{id}/{operation}`: the model is one percent-encoded path segment.
fn model_operation(rest: &str) -> Result<(Operation, String), RouteError> {
    let (encoded, suffix) = rest.rsplit_once('/').ok_or(RouteError::UnknownOperation)?;
    let operation = match suffix {
        "converse" => Operation::Converse,
        "converse-stream" => Operation::ConverseStream,
        "invoke" => Operation::InvokeModel,
        "invoke-with-response-stream" => Operation::InvokeModelWithResponseStream,
        "invoke-with-bidirectional-stream" => Operation::InvokeModelWithBidirectionalStream,
        "count-tokens" => Operation::CountTokens,
        _ => return Err(RouteError::UnknownOperation),
    };
    // A raw '/' means something else (ARNs arrive encoded).
    if encoded.is_empty() || encoded.contains('/') {
        return Err(RouteError::UnknownOperation);
    }
    Ok((operation, decode_id(encoded)?))
}

/// A percent-encoded model or guardrail identifier, checked for plausibility.
fn decode_id(encoded: &str) -> Result<String, RouteError> {
    let id = percent_decode_str(encoded)
        .decode_utf8()
        .map_err(|_| RouteError::BadModelId(encoded.chars().take(80).collect()))?
        .into_owned();
    if plausible_id(&id) {
        Ok(id)
    } else {
        Err(RouteError::BadModelId(id.chars().take(80).collect()))
    }
}

/// A model ID, profile ID or ARN: at most [`MAX_MODEL_ID_LEN`] of `[A-Za-z0-9._:/-]`.
pub fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_MODEL_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c))
}

/// The guardrail, async-invoke and mantle paths.
fn other_operation(method: &Method, path: &str) -> Result<(Operation, String), RouteError> {
    if let Some(rest) = path.strip_prefix("/guardrail/") {
        let mut parts = rest.split('/');
        return match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some(id), Some("version"), Some(v), Some("apply"), None) if !v.is_empty() => {
                Ok((Operation::ApplyGuardrail, decode_id(id)?))
            }
            _ => Err(RouteError::UnknownOperation),
        };
    }
    let mantle = path
        .strip_prefix("/openai")
        .filter(|p| p.starts_with("/v1/"))
        .unwrap_or(path);
    let operation = match (path, mantle) {
        ("/guardrail-checks/invoke", _) => Operation::InvokeGuardrailChecks,
        ("/async-invoke", _) if *method == Method::GET => Operation::ListAsyncInvokes,
        ("/async-invoke", _) => Operation::StartAsyncInvoke,
        (p, _) if p.starts_with("/async-invoke/") && p.len() > "/async-invoke/".len() => {
            Operation::GetAsyncInvoke
        }
        ("/anthropic/v1/messages", _) => Operation::Messages,
        ("/anthropic/v1/messages/count_tokens", _) => Operation::MessagesCountTokens,
        (_, "/v1/chat/completions") => Operation::ChatCompletions,
        (_, "/v1/responses") if *method == Method::POST => Operation::Responses,
        (_, m) if responses_state(method, m) => Operation::ResponsesState,
        _ => return Err(RouteError::UnknownOperation),
    };
    Ok((operation, String::new()))
}

/// Reads of stored responses and conversations, their deletion and cancellation, and the
/// model list: billed nothing.
fn responses_state(method: &Method, path: &str) -> bool {
    let read = *method == Method::GET || *method == Method::DELETE;
    match path.strip_prefix("/v1/responses/") {
        Some(rest) if !rest.is_empty() => {
            read || (*method == Method::POST && rest.ends_with("/cancel"))
        }
        _ => {
            (path == "/v1/models" || path.starts_with("/v1/models/")) && *method == Method::GET
                || (path == "/v1/conversations" || path.starts_with("/v1/conversations/"))
        }
    }
}

impl Route {
    /// Fills in the model named in the body (mantle's `model`, StartAsyncInvoke's `modelId`);
    /// a request without one is invalid.
    pub fn model_from_body(&mut self, body: &serde_json::Value) -> Result<(), RouteError> {
        let field = match self.operation {
            Operation::StartAsyncInvoke => "modelId",
            Operation::ChatCompletions
            | Operation::Responses
            | Operation::Messages
            | Operation::MessagesCountTokens => "model",
            _ => return Ok(()),
        };
        match body.get(field).and_then(|v| v.as_str()) {
            Some(model) if plausible_id(model) => {
                self.model = model.to_owned();
                Ok(())
            }
            Some(model) => Err(RouteError::BadModelId(model.chars().take(80).collect())),
            None if self.operation == Operation::Responses => {
                // A Responses call may name only a stored prompt; Bedrock answers it.
                Ok(())
            }
            None => Err(RouteError::BadModelId(String::new())),
        }
    }
}

/// Routes a request by method and path. A malformed model ID is reported as such whatever
/// the method.
pub fn accept(method: &Method, path: &str) -> Result<Route, crate::error::GatewayError> {
    use crate::error::GatewayError;
    route(method, path).map_err(|e| match e {
        RouteError::UnknownOperation => GatewayError::UnknownOperation,
        RouteError::BadModelId(id) => GatewayError::BadModelId(id),
    })
}

/// The error shape of a path that did not route: what its client would read.
pub fn error_shape_of_path(path: &str) -> ErrorShape {
    if path.starts_with("/anthropic/") {
        ErrorShape::Anthropic
    } else if path.starts_with("/v1/") || path.starts_with("/openai/") {
        ErrorShape::OpenAi
    } else {
        ErrorShape::Bedrock
    }
}

/// The path for a `/model/{id}/...` operation on `model`, with the model encoded as one
/// segment (a downgrade changes the model).
pub fn path_for(operation: Operation, model: &str) -> Option<String> {
    operation.path_suffix().map(|suffix| {
        format!(
            "/model/{}/{suffix}",
            utf8_percent_encode(model, NON_ALPHANUMERIC)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str) -> Result<Route, RouteError> {
        route(&Method::POST, path)
    }

    #[test]
    fn an_encoded_arn_is_one_segment() {
        let r = post("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse").unwrap();
        assert_eq!(r.operation, Operation::Converse);
        assert_eq!(
            r.model,
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
        );
    }

    #[test]
    fn every_model_operation_routes_and_round_trips() {
        for op in [
            Operation::Converse,
            Operation::ConverseStream,
            Operation::InvokeModel,
            Operation::InvokeModelWithResponseStream,
            Operation::InvokeModelWithBidirectionalStream,
            Operation::CountTokens,
        ] {
            let path = path_for(op, "us.amazon.nova-lite-v1:0").unwrap();
            let r = post(&path).unwrap();
            assert_eq!(
                (r.operation, r.model.as_str()),
                (op, "us.amazon.nova-lite-v1:0")
            );
        }
    }

    #[test]
    fn every_runtime_operation_in_the_smithy_model_routes() {
        let cases = [
            (
                Method::POST,
                "/guardrail/gr-1/version/DRAFT/apply",
                Operation::ApplyGuardrail,
            ),
            (
                Method::POST,
                "/guardrail-checks/invoke",
                Operation::InvokeGuardrailChecks,
            ),
            (Method::POST, "/async-invoke", Operation::StartAsyncInvoke),
            (Method::GET, "/async-invoke", Operation::ListAsyncInvokes),
            (
                Method::GET,
                "/async-invoke/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aasync-invoke%2Fx",
                Operation::GetAsyncInvoke,
            ),
        ];
        for (method, path, op) in cases {
            assert_eq!(route(&method, path).unwrap().operation, op, "{path}");
        }
        assert_eq!(
            post("/guardrail/gr-1/version/DRAFT/apply").unwrap().model,
            "gr-1"
        );
        assert_eq!(
            route(&Method::GET, "/async-invoke/").unwrap_err(),
            RouteError::UnknownOperation
        );
    }

    #[test]
    fn the_mantle_apis_route_under_v1_openai_v1_and_anthropic_v1() {
        let cases = [
            (
                Method::POST,
                "/v1/chat/completions",
                Operation::ChatCompletions,
            ),
            (
                Method::POST,
                "/openai/v1/chat/completions",
                Operation::ChatCompletions,
            ),
            (Method::POST, "/v1/responses", Operation::Responses),
            (Method::POST, "/openai/v1/responses", Operation::Responses),
            (
                Method::GET,
                "/v1/responses/resp_1",
                Operation::ResponsesState,
            ),
            (
                Method::DELETE,
                "/v1/responses/resp_1",
                Operation::ResponsesState,
            ),
            (
                Method::POST,
                "/v1/responses/resp_1/cancel",
                Operation::ResponsesState,
            ),
            (
                Method::GET,
                "/v1/responses/resp_1/input_items",
                Operation::ResponsesState,
            ),
            (Method::GET, "/v1/models", Operation::ResponsesState),
            (Method::POST, "/anthropic/v1/messages", Operation::Messages),
            (
                Method::POST,
                "/anthropic/v1/messages/count_tokens",
                Operation::MessagesCountTokens,
            ),
        ];
        for (method, path, op) in cases {
            let r = route(&method, path).unwrap();
            assert_eq!(r.operation, op, "{method} {path}");
            assert_eq!(r.path_and_query, path);
        }
        assert_eq!(Operation::Messages.endpoint(), Endpoint::Mantle);
        assert_eq!(Operation::CountTokens.metering(), Metering::Free);
    }

    #[test]
    fn the_model_of_a_mantle_call_comes_from_its_body() {
        let mut r = post("/v1/chat/completions").unwrap();
        r.model_from_body(&serde_json::json!({"model": "openai.gpt-oss-120b"}))
            .unwrap();
        assert_eq!(r.model, "openai.gpt-oss-120b");
        let mut r = post("/anthropic/v1/messages").unwrap();
        assert!(
            r.model_from_body(&serde_json::json!({"max_tokens": 1}))
                .is_err()
        );
        assert!(
            r.model_from_body(&serde_json::json!({"model": "a b"}))
                .is_err()
        );
    }

    #[test]
    fn other_paths_methods_and_hostile_ids_are_refused() {
        assert_eq!(
            post("/guardrail/x/version/1/apply/more"),
            Err(RouteError::UnknownOperation)
        );
        assert_eq!(
            post("/model/a/b/converse"),
            Err(RouteError::UnknownOperation)
        );
        assert_eq!(post("/model//converse"), Err(RouteError::UnknownOperation));
        assert_eq!(post("/v1/embeddings"), Err(RouteError::UnknownOperation));
        assert_eq!(
            route(&Method::GET, "/model/amazon.nova-micro-v1:0/converse"),
            Err(RouteError::UnknownOperation)
        );
        assert_eq!(
            route(&Method::GET, "/v1/chat/completions"),
            Err(RouteError::UnknownOperation)
        );
        assert!(matches!(
            post("/model/%FF%FE/converse"),
            Err(RouteError::BadModelId(_))
        ));
        assert!(matches!(
            post("/model/a%20b/converse"),
            Err(RouteError::BadModelId(_))
        ));
        let long = "a".repeat(MAX_MODEL_ID_LEN + 1);
        assert!(matches!(
            post(&format!("/model/{long}/invoke")),
            Err(RouteError::BadModelId(_))
        ));
    }
}
