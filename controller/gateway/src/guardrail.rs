//! A guardrail attached to a Converse call (`guardrailConfig`) is billed by Bedrock on top of
//! the tokens, per text unit of the prompt it evaluates and of the answer. Bedrock reports
//! those units only in the response's guardrail trace, so the gateway asks for the trace
//! (`guardrailConfig.trace: "enabled"`) when the caller did not, reads the units from it (the
//! Converse body's `trace`, ConverseStream's `metadata` event), and takes the trace it added
//! back out of a Converse body (a stream's metadata event keeps it). The worst case reserves
//! the prompt's characters and the output bound at [`OUTPUT_CHARS_PER_TOKEN`] characters a
//! token, under every paid policy.

use aigov_api::Usd;
use aigov_api::units;
use serde_json::Value;

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

/// A Converse response body without the `trace` the gateway asked for.
pub fn strip_trace(body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    value.as_object_mut()?.remove("trace")?;
    serde_json::to_vec(&value).ok()
}

/// The most the guardrail of a Converse `body` can cost, with `output_tokens` at most.
pub fn worst_case(body: &Value, output_tokens: u64) -> Option<Usd> {
    if !configured(body) {
        return None;
    }
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
    for key in ["system", "messages"] {
        if let Some(v) = body.get(key) {
            walk(v, &mut chars, &mut blocks);
        }
    }
    let output_chars = output_tokens.saturating_mul(OUTPUT_CHARS_PER_TOKEN);
    Some(
        units::guardrail_worst_case(chars, blocks, 0)
            + units::guardrail_worst_case(output_chars, 1, 0),
    )
}

/// The guardrail cost a Converse body's or ConverseStream metadata event's `trace` reports.
pub fn traced_cost(payload: &[u8]) -> Option<Usd> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    units::guardrail_usage_from_trace(&value).map(|u| units::guardrail_cost(&u))
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
        let stripped = strip_trace(body).unwrap();
        assert!(!String::from_utf8(stripped).unwrap().contains("trace"));
    }

    #[test]
    fn the_worst_case_covers_the_prompt_and_the_output_bound() {
        let body = json!({"messages": [{"role": "user", "content": [{"text": "x".repeat(1500)}]}],
            "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"}});
        let worst = worst_case(&body, 100).unwrap();
        // 2 units (+1 block, +1 for "user") of prompt and 4 (+1) of output, every paid policy.
        assert!(worst > units::guardrail_worst_case(1500, 1, 0));
        assert!(worst_case(&json!({"messages": []}), 100).is_none());
    }
}
