//! A guardrail attached to an inference call is billed by Bedrock on top of the tokens, per
//! text unit of the prompt it evaluates and of the answer: on Converse it is named in the body
//! (`guardrailConfig`), on InvokeModel and its stream in headers
//! (`X-Amzn-Bedrock-GuardrailIdentifier`, `-GuardrailVersion`). Bedrock reports those units
//! only in the response's guardrail trace, so the gateway asks for the trace when the caller
//! did not (`guardrailConfig.trace: "enabled"`, or the header `X-Amzn-Bedrock-Trace: ENABLED`),
//! reads the units from it (the Converse body's `trace`, ConverseStream's `metadata` event,
//! InvokeModel's `amazon-bedrock-trace`, in its body or its stream's last chunk), and takes the
//! trace it added back out of a whole body (a stream keeps it). The worst case reserves the
//! prompt's characters and the output bound at [`OUTPUT_CHARS_PER_TOKEN`] characters a token,
//! under every paid policy.

use aigov_api::Usd;
use aigov_api::units;
use http::HeaderMap;
use serde_json::Value;

use crate::route::Operation;

/// The header naming an InvokeModel call's guardrail.
const IDENTIFIER_HEADER: &str = "x-amzn-bedrock-guardrailidentifier";
/// The header enabling an InvokeModel call's guardrail trace.
pub const TRACE_HEADER: &str = "x-amzn-bedrock-trace";

/// Characters an output token is assumed to carry at most, for the output side of a
/// guardrail's worst case. Tokenizers' longest tokens are runs of whitespace or punctuation of
/// a few dozen characters; answers average about four. This is a stated assumption, not a
/// bound Bedrock guarantees.
pub const OUTPUT_CHARS_PER_TOKEN: u64 = 32;

/// True when a Converse body attaches a guardrail.
pub fn configured(body: &Value) -> bool {
    body.pointer("/guardrailConfig/guardrailIdentifier")
        .is_some_and(Value::is_string)
}

/// True when an InvokeModel request's headers name a guardrail.
pub fn in_headers(headers: &HeaderMap) -> bool {
    headers
        .get(IDENTIFIER_HEADER)
        .is_some_and(|v| !v.is_empty())
}

/// True when an InvokeModel request names a guardrail but did not enable its trace: the
/// gateway sends `X-Amzn-Bedrock-Trace: ENABLED`.
pub fn header_trace_missing(headers: &HeaderMap) -> bool {
    let trace = headers.get(TRACE_HEADER).and_then(|v| v.to_str().ok());
    in_headers(headers) && !matches!(trace, Some("ENABLED" | "ENABLED_FULL"))
}

/// True when the gateway asks for a guardrail trace the caller did not ask for (and so takes it
/// back out of a whole body): for InvokeModel it sets the trace header in `headers` here; for
/// Converse the body is rewritten on the way out ([`ask_for_trace`]).
pub fn asks_for_trace(operation: Operation, json: &Value, headers: &mut HeaderMap) -> bool {
    match operation {
        Operation::Converse | Operation::ConverseStream => ask_for_trace(json).is_some(),
        Operation::InvokeModel | Operation::InvokeModelWithResponseStream
            if header_trace_missing(headers) =>
        {
            headers.insert(TRACE_HEADER, http::HeaderValue::from_static("ENABLED"));
            true
        }
        _ => false,
    }
}

/// The body with the guardrail trace enabled, when the caller had not enabled it.
pub fn ask_for_trace(body: &Value) -> Option<Value> {
    let trace = body
        .pointer("/guardrailConfig/trace")
        .and_then(Value::as_str);
    if !configured(body) || matches!(trace, Some("enabled" | "enabled_full")) {
        return None;
    }
    let mut body = body.clone();
    body.get_mut("guardrailConfig")?
        .as_object_mut()?
        .insert("trace".into(), Value::String("enabled".into()));
    Some(body)
}

/// A Converse or InvokeModel response body without the trace the gateway asked for
/// (`trace`, `amazon-bedrock-trace`).
pub fn strip_trace(operation: Operation, body: &[u8]) -> Option<Vec<u8>> {
    let key = match operation {
        Operation::Converse => "trace",
        _ => "amazon-bedrock-trace",
    };
    let mut value: Value = serde_json::from_slice(body).ok()?;
    value.as_object_mut()?.remove(key)?;
    serde_json::to_vec(&value).ok()
}

/// The most the guardrail of a call can cost, with `output_tokens` at most: a Converse body's
/// `system` and `messages`, or, for an InvokeModel call whose headers name a guardrail, every
/// string of its model-native body (the guardrail evaluates the prompt within it).
pub fn worst_case(
    operation: Operation,
    headers: &HeaderMap,
    body: &Value,
    output_tokens: u64,
) -> Option<Usd> {
    let prompt: Vec<&Value> = match operation {
        Operation::Converse | Operation::ConverseStream if configured(body) => {
            ["system", "messages"]
                .iter()
                .filter_map(|key| body.get(*key))
                .collect()
        }
        Operation::InvokeModel | Operation::InvokeModelWithResponseStream
            if in_headers(headers) =>
        {
            vec![body]
        }
        _ => return None,
    };
    fn walk(v: &Value, chars: &mut u64, blocks: &mut u64) {
        match v {
            Value::String(s) => {
                *chars += s.chars().count() as u64;
                *blocks += 1;
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, chars, blocks)),
            Value::Object(map) => map.values().for_each(|i| walk(i, chars, blocks)),
            _ => {}
        }
    }
    let (mut chars, mut blocks) = (0, 0);
    for v in prompt {
        walk(v, &mut chars, &mut blocks);
    }
    let output_chars = output_tokens.saturating_mul(OUTPUT_CHARS_PER_TOKEN);
    Some(
        units::guardrail_worst_case(chars, blocks, 0)
            + units::guardrail_worst_case(output_chars, 1, 0),
    )
}

/// The guardrail cost a trace reports: a Converse body's or ConverseStream metadata event's
/// `trace`, an InvokeModel body's or stream chunk's `amazon-bedrock-trace`.
pub fn traced_cost(payload: &[u8]) -> Option<Usd> {
    traced_cost_of(&serde_json::from_slice(payload).ok()?)
}

/// [`traced_cost`] of a parsed payload.
pub fn traced_cost_of(value: &Value) -> Option<Usd> {
    units::guardrail_usage_from_trace(value).map(|u| units::guardrail_cost(&u))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_trace_is_asked_for_only_when_the_caller_did_not() {
        let body = json!({"messages": [], "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"}});
        assert_eq!(
            ask_for_trace(&body).unwrap()["guardrailConfig"]["trace"],
            "enabled"
        );
        let traced =
            json!({"guardrailConfig": {"guardrailIdentifier": "g", "trace": "enabled_full"}});
        assert!(ask_for_trace(&traced).is_none());
        assert!(ask_for_trace(&json!({"messages": []})).is_none());
    }

    #[test]
    fn the_trace_added_is_taken_out_and_its_units_priced() {
        let body = br#"{"output":{},"usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2},"trace":{"guardrail":{"inputAssessment":{"g":{"invocationMetrics":{"usage":{"contentPolicyUnits":2}}}}}}}"#;
        assert_eq!(traced_cost(body), Some(Usd::parse("0.0003").unwrap()));
        let stripped = strip_trace(Operation::Converse, body).unwrap();
        assert!(!String::from_utf8(stripped).unwrap().contains("trace"));
    }

    #[test]
    fn the_worst_case_covers_the_prompt_and_the_output_bound() {
        let body = json!({"messages": [{"role": "user", "content": [{"text": "x".repeat(1500)}]}],
            "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"}});
        let none = HeaderMap::new();
        let worst = worst_case(Operation::Converse, &none, &body, 100).unwrap();
        // 2 units (+1 block, +1 for "user") of prompt and 4 (+1) of output, every paid policy.
        assert!(worst > units::guardrail_worst_case(1500, 1, 0));
        let bare = json!({"messages": []});
        assert!(worst_case(Operation::Converse, &none, &bare, 100).is_none());
    }

    #[test]
    fn an_invoke_model_guardrail_is_named_in_headers_and_its_trace_asked_for_once() {
        let mut headers = HeaderMap::new();
        let body = json!({"messages": [{"role": "user", "content": "x".repeat(1500)}]});
        let invoke = Operation::InvokeModel;
        assert!(
            worst_case(invoke, &headers, &body, 100).is_none(),
            "no guardrail"
        );
        assert!(!header_trace_missing(&headers));
        headers.insert(IDENTIFIER_HEADER, "gr-1".parse().unwrap());
        assert!(header_trace_missing(&headers));
        assert!(worst_case(invoke, &headers, &body, 100).unwrap() > Usd::ZERO);
        headers.insert(TRACE_HEADER, "ENABLED_FULL".parse().unwrap());
        assert!(
            !header_trace_missing(&headers),
            "the caller's trace is kept"
        );
        let answer = br#"{"content":[],"amazon-bedrock-guardrailAction":"NONE","amazon-bedrock-trace":{"guardrail":{"inputAssessment":{"g":{"invocationMetrics":{"usage":{"contentPolicyUnits":2}}}}}}}"#;
        assert_eq!(traced_cost(answer), Some(Usd::parse("0.0003").unwrap()));
        let stripped = String::from_utf8(strip_trace(invoke, answer).unwrap()).unwrap();
        assert!(!stripped.contains("amazon-bedrock-trace") && stripped.contains("guardrailAction"));
    }
}
