//! What Bedrock bills by units other than tokens: Guardrails by text units per policy type
//! (ApplyGuardrail, and a guardrail on Converse), and asynchronous invocations by their output
//! (Nova Reel by the second of video), and speech sessions by their speech tokens (Nova Sonic
//! on InvokeModelWithBidirectionalStream, whose text tokens are the catalog's). Prices are transcribed from the Amazon Bedrock pricing
//! page ([`crate::catalog::PRICING_SOURCE`]), each with the date it took effect.
//!
//! A text unit is up to 1,000 characters of text (Bedrock counts each content block apart);
//! each policy a guardrail has is billed on every unit it evaluates.

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::Error;
use crate::money::Usd;

/// Characters in one guardrail text unit.
pub const TEXT_UNIT_CHARS: u64 = 1_000;

/// A guardrail policy's price, USD per 1,000 text units (or per image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardrailRate {
    /// The `usage` field of ApplyGuardrail that counts this policy's units.
    pub usage_field: &'static str,
    /// USD per 1,000 units.
    pub per_thousand: &'static str,
    /// When the figure took effect.
    pub since: &'static str,
}

/// Guardrail prices per policy type. Word filters and the custom-regex part of sensitive
/// information filters are free (`wordPolicyUnits`, `sensitiveInformationPolicyFreeUnits`).
pub const GUARDRAIL_RATES: &[GuardrailRate] = &[
    GuardrailRate {
        usage_field: "contentPolicyUnits",
        per_thousand: "0.15",
        since: "2024-12-01",
    },
    GuardrailRate {
        usage_field: "topicPolicyUnits",
        per_thousand: "0.15",
        since: "2024-12-01",
    },
    GuardrailRate {
        usage_field: "sensitiveInformationPolicyUnits",
        per_thousand: "0.10",
        since: "2024-12-01",
    },
    GuardrailRate {
        usage_field: "contextualGroundingPolicyUnits",
        per_thousand: "0.10",
        since: "2024-07-10",
    },
    GuardrailRate {
        usage_field: "automatedReasoningPolicyUnits",
        per_thousand: "0.17",
        since: "2025-08-06",
    },
    // Image content filters are billed per image.
    GuardrailRate {
        usage_field: "contentPolicyImageUnits",
        per_thousand: "0.75",
        since: "2024-12-04",
    },
];

/// ApplyGuardrail's `usage` (also a Converse trace's `invocationMetrics.usage`): units
/// evaluated per policy type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailUsage {
    /// Denied topics.
    #[serde(default)]
    pub topic_policy_units: u64,
    /// Content filters (text).
    #[serde(default)]
    pub content_policy_units: u64,
    /// Word filters (free).
    #[serde(default)]
    pub word_policy_units: u64,
    /// Sensitive information filters (PII entities).
    #[serde(default)]
    pub sensitive_information_policy_units: u64,
    /// Sensitive information filters (regex; free).
    #[serde(default)]
    pub sensitive_information_policy_free_units: u64,
    /// Contextual grounding checks.
    #[serde(default)]
    pub contextual_grounding_policy_units: u64,
    /// Content filters (images).
    #[serde(default)]
    pub content_policy_image_units: u64,
    /// Automated Reasoning checks (units summed over the policies evaluated).
    #[serde(default)]
    pub automated_reasoning_policy_units: u64,
}

impl GuardrailUsage {
    fn units(&self, field: &str) -> u64 {
        match field {
            "contentPolicyUnits" => self.content_policy_units,
            "topicPolicyUnits" => self.topic_policy_units,
            "sensitiveInformationPolicyUnits" => self.sensitive_information_policy_units,
            "contextualGroundingPolicyUnits" => self.contextual_grounding_policy_units,
            "automatedReasoningPolicyUnits" => self.automated_reasoning_policy_units,
            "contentPolicyImageUnits" => self.content_policy_image_units,
            _ => 0,
        }
    }

    /// Adds another assessment's units (a Converse trace has one per input and output).
    pub fn add(&mut self, o: &GuardrailUsage) {
        self.topic_policy_units += o.topic_policy_units;
        self.content_policy_units += o.content_policy_units;
        self.word_policy_units += o.word_policy_units;
        self.sensitive_information_policy_units += o.sensitive_information_policy_units;
        self.sensitive_information_policy_free_units += o.sensitive_information_policy_free_units;
        self.contextual_grounding_policy_units += o.contextual_grounding_policy_units;
        self.content_policy_image_units += o.content_policy_image_units;
        self.automated_reasoning_policy_units += o.automated_reasoning_policy_units;
    }
}

fn usd(text: &str) -> Usd {
    Usd::parse(text).unwrap_or_else(|e| panic!("unit price {text:?} is malformed: {e}"))
}

/// What `usage` costs: each policy's units at its rate.
pub fn guardrail_cost(usage: &GuardrailUsage) -> Usd {
    GUARDRAIL_RATES.iter().fold(Usd::ZERO, |total, rate| {
        total + at_rate(rate, usage.units(rate.usage_field))
    })
}

/// `units` at `rate`'s price per 1,000.
fn at_rate(rate: &GuardrailRate, units: u64) -> Usd {
    let units = i64::try_from(units).unwrap_or(i64::MAX);
    usd(rate.per_thousand).scaled(Decimal::new(units, 3))
}

/// ApplyGuardrail's response `usage`.
pub fn guardrail_usage_from_body(body: &[u8]) -> Result<GuardrailUsage, Error> {
    #[derive(Deserialize)]
    struct Body {
        usage: GuardrailUsage,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| b.usage)
        .map_err(|e| Error::MalformedUsage(format!("ApplyGuardrail body: {e}")))
}

/// InvokeGuardrailChecks' checks, each priced at the guardrail policy it runs: content
/// filters and prompt attacks are content-filter categories, sensitive information is the PII
/// filter. AWS's pricing page lists guardrail policies, not these checks; the mapping is our
/// reading of the user guide ("text units" as Bedrock pricing defines them), unverified
/// against a bill.
pub const GUARDRAIL_CHECK_POLICIES: &[(&str, &str)] = &[
    ("contentFilter", "contentPolicyUnits"),
    ("promptAttack", "contentPolicyUnits"),
    ("sensitiveInformation", "sensitiveInformationPolicyUnits"),
];

/// What an InvokeGuardrailChecks response's `usage` (`{"contentFilter": {"textUnits": N},
/// ...}`, only the checks requested) costs.
pub fn guardrail_checks_cost(body: &[u8]) -> Result<Usd, Error> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::MalformedUsage(format!("InvokeGuardrailChecks body: {e}")))?;
    let usage = value
        .get("usage")
        .and_then(|u| u.as_object())
        .ok_or_else(|| Error::MalformedUsage("InvokeGuardrailChecks body: no usage".into()))?;
    let mut total = Usd::ZERO;
    for (check, units) in usage {
        let units = units
            .get("textUnits")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| {
                Error::MalformedUsage(format!("InvokeGuardrailChecks usage.{check}.textUnits"))
            })?;
        let policy = GUARDRAIL_CHECK_POLICIES
            .iter()
            .find(|(c, _)| c == check)
            .map(|(_, policy)| *policy)
            .ok_or_else(|| {
                Error::MalformedUsage(format!("InvokeGuardrailChecks: unknown check {check}"))
            })?;
        let rate = GUARDRAIL_RATES
            .iter()
            .find(|r| r.usage_field == policy)
            .expect("every check's policy has a rate");
        total += at_rate(rate, units);
    }
    Ok(total)
}

/// The guardrail units of an inference response's guardrail trace (present when the request
/// enabled it): Converse's `trace.guardrail`, InvokeModel's `amazon-bedrock-trace.guardrail`
/// (the same assessment shape); every input and output assessment's `invocationMetrics.usage`.
pub fn guardrail_usage_from_trace(body: &serde_json::Value) -> Option<GuardrailUsage> {
    let trace = body
        .pointer("/trace/guardrail")
        .or_else(|| body.pointer("/amazon-bedrock-trace/guardrail"))?;
    let mut total = GuardrailUsage::default();
    let mut found = false;
    let mut add = |assessment: &serde_json::Value| {
        if let Some(u) = assessment.pointer("/invocationMetrics/usage")
            && let Ok(u) = serde_json::from_value::<GuardrailUsage>(u.clone())
        {
            total.add(&u);
            found = true;
        }
    };
    if let Some(map) = trace.get("inputAssessment").and_then(|v| v.as_object()) {
        map.values().for_each(&mut add);
    }
    if let Some(map) = trace.get("outputAssessments").and_then(|v| v.as_object()) {
        map.values()
            .filter_map(|v| v.as_array())
            .flatten()
            .for_each(&mut add);
    }
    found.then_some(total)
}

/// The most a guardrail can cost on `text_chars` characters in `blocks` content blocks:
/// every unit evaluated by every paid text policy, plus `images` images.
pub fn guardrail_worst_case(text_chars: u64, blocks: u64, images: u64) -> Usd {
    let units = text_units(text_chars, blocks);
    let all = GuardrailUsage {
        topic_policy_units: units,
        content_policy_units: units,
        sensitive_information_policy_units: units,
        contextual_grounding_policy_units: units,
        // Automated Reasoning bills per policy; a guardrail has at most two.
        automated_reasoning_policy_units: units * 2,
        content_policy_image_units: images,
        ..GuardrailUsage::default()
    };
    guardrail_cost(&all)
}

/// Text units of `chars` characters split over `blocks` content blocks, each rounded up.
pub fn text_units(chars: u64, blocks: u64) -> u64 {
    chars.div_ceil(TEXT_UNIT_CHARS) + blocks
}

/// An asynchronously invoked model billed by the second of its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncRate {
    /// The foundation-model ID.
    pub model_id: &'static str,
    /// USD per second of output video.
    pub per_second: &'static str,
    /// The longest job a request may ask for, in seconds (the worst case when the request
    /// does not say).
    pub max_seconds: u64,
    /// When the figure took effect.
    pub since: &'static str,
}

/// Async-invoked models and their prices: Nova Reel at 720p, 24 fps.
pub const ASYNC_RATES: &[AsyncRate] = &[
    AsyncRate {
        model_id: "amazon.nova-reel-v1:0",
        per_second: "0.08",
        max_seconds: 6,
        since: "2024-12-03",
    },
    AsyncRate {
        model_id: "amazon.nova-reel-v1:1",
        per_second: "0.08",
        max_seconds: 120,
        since: "2025-04-07",
    },
];

/// The rate of an async-invoked model (cross-region prefixes and ARNs resolved).
pub fn async_rate(model: &str) -> Option<&'static AsyncRate> {
    let resolved = crate::model::resolve(model);
    let id = resolved.model_id.as_deref()?;
    ASYNC_RATES.iter().find(|r| r.model_id == id)
}

/// The seconds of output a StartAsyncInvoke `modelInput` asks for: Nova Reel's
/// `videoGenerationConfig.durationSeconds` (6 for a single shot, which must not say otherwise;
/// 6 per shot for `MULTI_SHOT_AUTOMATED` and `MULTI_SHOT_MANUAL` without it).
pub fn requested_seconds(model_input: &serde_json::Value) -> Option<u64> {
    let config = model_input.get("videoGenerationConfig");
    if let Some(s) = config
        .and_then(|c| c.get("durationSeconds"))
        .and_then(|v| v.as_u64())
    {
        return Some(s);
    }
    match model_input.get("taskType").and_then(|v| v.as_str()) {
        Some("TEXT_VIDEO") => Some(6),
        Some("MULTI_SHOT_MANUAL") => model_input
            .pointer("/multiShotManualParams/shots")
            .and_then(|v| v.as_array())
            .map(|shots| 6 * shots.len() as u64),
        _ => None,
    }
}

/// What `seconds` of output of `rate` cost.
pub fn async_cost(rate: &AsyncRate, seconds: u64) -> Usd {
    usd(rate.per_second).scaled(Decimal::from(seconds))
}

/// A speech model's prices for speech tokens, USD per 1M tokens (its text tokens are priced by
/// its catalog entry, so an `AIModelPrice` can override those but not these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpeechRate {
    /// The foundation-model ID.
    pub model_id: &'static str,
    /// USD per 1M speech input tokens.
    pub input: &'static str,
    /// USD per 1M speech output tokens.
    pub output: &'static str,
    /// When the figure took effect.
    pub since: &'static str,
}

/// Speech-token prices. UNVERIFIED against AWS's own pricing page (it renders its prices
/// client-side, so no stored copy carries the figures): Nova Sonic's $0.0034 / $0.0136 per
/// 1,000 speech tokens are the launch figures (April 2025) quoted alike by several independent
/// write-ups. Nova 2 Sonic (`amazon.nova-2-sonic-v1:0`) is not listed: no figure for it could
/// be checked, so its sessions are priced like any model without speech rates (every token at
/// its token price: the fallback, or an `AIModelPrice`).
pub const SPEECH_RATES: &[SpeechRate] = &[SpeechRate {
    model_id: "amazon.nova-sonic-v1:0",
    input: "3.40",
    output: "13.60",
    since: "2025-04-08",
}];

/// The speech rates of `model` (cross-region prefixes and ARNs resolved), if it has any.
pub fn speech_rate(model: &str) -> Option<&'static SpeechRate> {
    let resolved = crate::model::resolve(model);
    let id = resolved.model_id.as_deref()?;
    SPEECH_RATES.iter().find(|r| r.model_id == id)
}

/// A bidirectional session's tokens as its `usageEvent`s count them (`details.total`: running
/// totals since the session started), speech and text apart because they are priced apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionUsage {
    /// Speech input tokens.
    pub speech_input: u64,
    /// Text input tokens (system prompts, `textInput`, tool results).
    pub text_input: u64,
    /// Speech output tokens.
    pub speech_output: u64,
    /// Text output tokens (transcripts, tool use).
    pub text_output: u64,
}

impl SessionUsage {
    /// The larger of each count: totals only grow, so a late or repeated event never lowers
    /// what is charged.
    pub fn max(self, o: SessionUsage) -> SessionUsage {
        SessionUsage {
            speech_input: self.speech_input.max(o.speech_input),
            text_input: self.text_input.max(o.text_input),
            speech_output: self.speech_output.max(o.speech_output),
            text_output: self.text_output.max(o.text_output),
        }
    }
}

/// What a session's speech tokens cost at `rate` (its text tokens are priced apart).
pub fn speech_cost(rate: &SpeechRate, usage: &SessionUsage) -> Usd {
    Usd::per_million_tokens(usd(rate.input), usage.speech_input)
        + Usd::per_million_tokens(usd(rate.output), usage.speech_output)
}

/// The running totals of a Nova Sonic output event, when it is a `usageEvent`:
/// `{"event":{"usageEvent":{"details":{"total":{"input":{"speechTokens","textTokens"},
/// "output":{...}}}, "totalInputTokens", ...}}}`. An event without the breakdown but with
/// `totalInputTokens`/`totalOutputTokens` counts them as speech (the dearer kind), so a
/// shortened event is never cheaper than the truth.
pub fn session_usage_from_event(event: &serde_json::Value) -> Option<SessionUsage> {
    let usage = event.pointer("/event/usageEvent")?;
    let count = |path: &str| usage.pointer(path).and_then(serde_json::Value::as_u64);
    if usage.pointer("/details/total").is_some() {
        return Some(SessionUsage {
            speech_input: count("/details/total/input/speechTokens").unwrap_or(0),
            text_input: count("/details/total/input/textTokens").unwrap_or(0),
            speech_output: count("/details/total/output/speechTokens").unwrap_or(0),
            text_output: count("/details/total/output/textTokens").unwrap_or(0),
        });
    }
    let input = count("/totalInputTokens");
    let output = count("/totalOutputTokens");
    (input.is_some() || output.is_some()).then(|| SessionUsage {
        speech_input: input.unwrap_or(0),
        speech_output: output.unwrap_or(0),
        ..SessionUsage::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guardrail_units_are_priced_per_policy_and_the_free_ones_cost_nothing() {
        let usage = GuardrailUsage {
            content_policy_units: 3,
            topic_policy_units: 3,
            sensitive_information_policy_units: 2,
            word_policy_units: 50,
            sensitive_information_policy_free_units: 50,
            ..GuardrailUsage::default()
        };
        // 3 x 0.15/1000 + 3 x 0.15/1000 + 2 x 0.10/1000
        assert_eq!(guardrail_cost(&usage), Usd::parse("0.0011").unwrap());
        assert_eq!(guardrail_cost(&GuardrailUsage::default()), Usd::ZERO);
    }

    #[test]
    fn the_worst_case_prices_every_paid_policy_on_every_unit() {
        let usage = GuardrailUsage {
            content_policy_units: 2,
            topic_policy_units: 2,
            sensitive_information_policy_units: 2,
            contextual_grounding_policy_units: 2,
            automated_reasoning_policy_units: 2,
            ..GuardrailUsage::default()
        };
        assert!(guardrail_worst_case(1_500, 1, 0) >= guardrail_cost(&usage));
        assert_eq!(
            text_units(1_500, 1),
            3,
            "rounded up per block: an upper bound"
        );
    }

    #[test]
    fn apply_guardrail_and_converse_trace_usage_are_read() {
        let body = br#"{"usage":{"topicPolicyUnits":1,"contentPolicyUnits":1,"wordPolicyUnits":1,"sensitiveInformationPolicyUnits":0,"sensitiveInformationPolicyFreeUnits":0,"contextualGroundingPolicyUnits":0},"action":"NONE","outputs":[],"assessments":[]}"#;
        assert_eq!(
            guardrail_usage_from_body(body)
                .unwrap()
                .content_policy_units,
            1
        );
        assert!(guardrail_usage_from_body(b"{}").is_err());
        let converse = json!({"trace": {"guardrail": {
            "inputAssessment": {"g1": {"invocationMetrics": {"usage": {"contentPolicyUnits": 2}}}},
            "outputAssessments": {"g1": [{"invocationMetrics": {"usage": {"contentPolicyUnits": 1}}}]}}}});
        assert_eq!(
            guardrail_usage_from_trace(&converse)
                .unwrap()
                .content_policy_units,
            3
        );
        assert!(guardrail_usage_from_trace(&json!({"output": {}})).is_none());
    }

    #[test]
    fn guardrail_checks_are_priced_at_the_policies_they_run_and_bad_usage_is_named() {
        let body = br#"{"results":{},"usage":{"contentFilter":{"textUnits":2},"promptAttack":{"textUnits":2},"sensitiveInformation":{"textUnits":3}}}"#;
        // 4 content-filter units at $0.15 per 1,000, 3 PII units at $0.10 per 1,000.
        assert_eq!(
            guardrail_checks_cost(body).unwrap(),
            Usd::parse("0.0009").unwrap()
        );
        let odd = br#"{"usage":{"contentFilter":{"textUnits":"two"}}}"#;
        let error = guardrail_checks_cost(odd).unwrap_err().to_string();
        assert!(error.contains("usage.contentFilter.textUnits"), "{error}");
        let unknown = br#"{"usage":{"toxicity":{"textUnits":1}}}"#;
        assert!(guardrail_checks_cost(unknown).is_err());
    }

    #[test]
    fn an_invoke_model_guardrail_trace_is_read_like_a_converse_one() {
        let trace = serde_json::json!({"guardrail": {
            "inputAssessment": {"g": {"invocationMetrics": {"usage": {"contentPolicyUnits": 1}}}},
            "outputAssessments": {"g": [{"invocationMetrics": {"usage": {"contentPolicyUnits": 1}}}]}}});
        let invoke = serde_json::json!({"amazon-bedrock-trace": trace.clone()});
        let converse = serde_json::json!({"trace": trace});
        let read = guardrail_usage_from_trace(&invoke).unwrap();
        assert_eq!(read.content_policy_units, 2);
        assert_eq!(Some(read), guardrail_usage_from_trace(&converse));
    }

    #[test]
    fn nova_reel_is_priced_by_the_second_it_asks_for() {
        let rate = async_rate("us.amazon.nova-reel-v1:1").unwrap();
        let input = json!({"taskType": "MULTI_SHOT_AUTOMATED", "videoGenerationConfig": {"durationSeconds": 12}});
        assert_eq!(requested_seconds(&input), Some(12));
        assert_eq!(async_cost(rate, 12), Usd::parse("0.96").unwrap());
        assert_eq!(
            requested_seconds(&json!({"taskType": "TEXT_VIDEO"})),
            Some(6)
        );
        assert!(async_rate("anthropic.claude-3-haiku-20240307-v1:0").is_none());
    }

    #[test]
    fn nova_sonic_speech_tokens_are_priced_per_million_at_their_own_rates() {
        let rate = speech_rate("us.amazon.nova-sonic-v1:0").expect("a speech model");
        let usage = SessionUsage {
            speech_input: 1_000,
            text_input: 5_000,
            speech_output: 2_000,
            text_output: 7_000,
        };
        // 1000 x 3.40/1M + 2000 x 13.60/1M; text tokens are the catalog's, not counted here.
        assert_eq!(speech_cost(rate, &usage), Usd::parse("0.0306").unwrap());
        assert!(speech_rate("amazon.nova-lite-v1:0").is_none());
    }

    #[test]
    fn a_usage_event_gives_its_running_totals_speech_and_text_apart() {
        let event = json!({"event": {"usageEvent": {
            "completionId": "c", "promptName": "p", "sessionId": "s",
            "details": {
                "delta": {"input": {"speechTokens": 1, "textTokens": 1}, "output": {"speechTokens": 1, "textTokens": 1}},
                "total": {"input": {"speechTokens": 40, "textTokens": 12}, "output": {"speechTokens": 300, "textTokens": 25}}
            },
            "totalInputTokens": 52, "totalOutputTokens": 325, "totalTokens": 377
        }}});
        assert_eq!(
            session_usage_from_event(&event),
            Some(SessionUsage {
                speech_input: 40,
                text_input: 12,
                speech_output: 300,
                text_output: 25
            })
        );
        let bare =
            json!({"event": {"usageEvent": {"totalInputTokens": 5, "totalOutputTokens": 9}}});
        let read = session_usage_from_event(&bare).unwrap();
        assert_eq!(
            (read.speech_input, read.speech_output),
            (5, 9),
            "counted as speech"
        );
        assert_eq!(
            session_usage_from_event(&json!({"event": {"textOutput": {}}})),
            None
        );
    }

    #[test]
    fn session_totals_never_go_down() {
        let a = SessionUsage {
            speech_input: 5,
            text_input: 1,
            speech_output: 9,
            text_output: 0,
        };
        let b = SessionUsage {
            speech_input: 3,
            text_input: 4,
            speech_output: 9,
            text_output: 2,
        };
        assert_eq!(
            a.max(b),
            SessionUsage {
                speech_input: 5,
                text_input: 4,
                speech_output: 9,
                text_output: 2
            }
        );
    }
}
