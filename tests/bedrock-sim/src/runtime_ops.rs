//! The bedrock-runtime operations beyond inference, as the Smithy model of
//! `aws-sdk-bedrockruntime` shapes them: CountTokens (`POST /model/{id}/count-tokens`,
//! `{"inputTokens"}`, billed nothing), ApplyGuardrail (`POST /guardrail/{id}/version/{v}/apply`,
//! `usage` in text units per policy type: this simulator's guardrails have content filters,
//! denied topics, word filters and PII filters), and the async invocations
//! (`POST /async-invoke` answers `{"invocationArn"}`, `GET /async-invoke/{arn}` the job's
//! state, `GET /async-invoke` the list). A job completes `[sim:latency_ms=N]` after it starts
//! (300 ms by default), or fails with `[sim:job_fail]` in its prompt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aigov_api::units::{self, GuardrailUsage};
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use crate::directives;
use crate::prompt;
use crate::server::{Body, Served, Simulator};

/// An async invocation.
#[derive(Clone, Debug)]
pub struct Job {
    arn: String,
    model_arn: String,
    done_at: Instant,
    fails: bool,
    submitted: String,
    output: Value,
}

impl Job {
    fn status(&self) -> &'static str {
        match (Instant::now() >= self.done_at, self.fails) {
            (false, _) => "InProgress",
            (true, false) => "Completed",
            (true, true) => "Failed",
        }
    }

    fn shape(&self) -> Value {
        let mut v = json!({"invocationArn": self.arn, "modelArn": self.model_arn,
            "status": self.status(), "submitTime": self.submitted, "outputDataConfig": self.output});
        if self.status() == "Failed" {
            v["failureMessage"] = json!("Simulated failure.");
        }
        if self.status() != "InProgress" {
            v["endTime"] = json!(self.submitted);
        }
        v
    }
}

fn ok(value: &Value, request_id: &str) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/json")
        .header("x-amzn-RequestId", request_id)
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .expect("valid response")
}

async fn read_json(req: Request<Incoming>) -> Option<Value> {
    let body = Limited::new(req.into_body(), 25 << 20)
        .collect()
        .await
        .ok()?;
    serde_json::from_slice(&body.to_bytes()).ok()
}

fn signed(req: &Request<Incoming>) -> Option<String> {
    let auth = req.headers().get("authorization")?.to_str().ok()?;
    if auth.starts_with("Bearer ") {
        return Some("bearer".into());
    }
    let p = crate::sigv4::parse(auth)?;
    Some(format!("{}/{}", p.service, p.region))
}

/// Characters and blocks of text in `value` (every string).
fn text(value: &Value, chars: &mut u64, blocks: &mut u64) {
    match value {
        Value::String(s) => {
            *chars += s.chars().count() as u64;
            *blocks += 1;
        }
        Value::Array(items) => items.iter().for_each(|i| text(i, chars, blocks)),
        Value::Object(map) => map.values().for_each(|i| text(i, chars, blocks)),
        _ => {}
    }
}

/// What a guardrail on an inference call is billed, and the trace Bedrock returns when the
/// request asks for it (Converse: `guardrailConfig.trace` `enabled` or `enabled_full`;
/// InvokeModel: the `X-Amzn-Bedrock-Trace` header `ENABLED` or `ENABLED_FULL`).
pub struct ConverseGuardrail {
    /// Input and output assessments' units, priced.
    pub cost: aigov_api::Usd,
    /// `trace.guardrail`, when asked for.
    pub trace: Option<Value>,
}

/// The guardrail of a Converse request with `guardrailConfig`, or of an InvokeModel request
/// with the `X-Amzn-Bedrock-GuardrailIdentifier` header (InvokeModel's body is the model's
/// own: the guardrail is named in headers).
pub fn inference_guardrail(
    converse: bool,
    body: &Value,
    headers: &http::HeaderMap,
    input_chars: usize,
    o: &crate::families::Outcome,
) -> Option<ConverseGuardrail> {
    if converse {
        let config = body.get("guardrailConfig")?;
        let id = config.get("guardrailIdentifier")?.as_str()?;
        let traced = matches!(
            config.get("trace").and_then(Value::as_str),
            Some("enabled" | "enabled_full")
        );
        return Some(guardrail_of(id, traced, input_chars, o));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let id = header("x-amzn-bedrock-guardrailidentifier").filter(|id| !id.is_empty())?;
    let traced = matches!(
        header("x-amzn-bedrock-trace"),
        Some("ENABLED" | "ENABLED_FULL")
    );
    Some(guardrail_of(id, traced, input_chars, o))
}

/// InvokeModel's refusal of a guardrail named without its version, as Bedrock words it.
pub fn invoke_guardrail_error(headers: &http::HeaderMap) -> Option<&'static str> {
    let present = |name: &str| headers.get(name).is_some_and(|v| !v.is_empty());
    (present("x-amzn-bedrock-guardrailidentifier") && !present("x-amzn-bedrock-guardrailversion"))
        .then_some("Guardrail version is required when a guardrail identifier is specified.")
}

/// This simulator's guardrails evaluate the prompt's text and the answer's with content,
/// topic, word and PII policies.
fn guardrail_of(
    id: &str,
    traced: bool,
    input_chars: usize,
    o: &crate::families::Outcome,
) -> ConverseGuardrail {
    let id = id.to_owned();
    let usage_of = |chars: u64| {
        let units = chars.div_ceil(units::TEXT_UNIT_CHARS).max(1);
        GuardrailUsage {
            content_policy_units: units,
            topic_policy_units: units,
            word_policy_units: units,
            sensitive_information_policy_units: units,
            ..GuardrailUsage::default()
        }
    };
    let input = usage_of(input_chars as u64);
    let output = usage_of(o.words().concat().chars().count() as u64);
    let cost = units::guardrail_cost(&input) + units::guardrail_cost(&output);
    let shape = |u: &GuardrailUsage| {
        json!({"invocationMetrics": {"guardrailProcessingLatency": 1,
        "usage": {"topicPolicyUnits": u.topic_policy_units, "contentPolicyUnits": u.content_policy_units,
                  "wordPolicyUnits": u.word_policy_units,
                  "sensitiveInformationPolicyUnits": u.sensitive_information_policy_units,
                  "sensitiveInformationPolicyFreeUnits": 0, "contextualGroundingPolicyUnits": 0}}})
    };
    let trace = traced.then(|| {
        json!({"guardrail": {
        "inputAssessment": {id.clone(): shape(&input)},
        "outputAssessments": {id: [shape(&output)]}}})
    });
    ConverseGuardrail { cost, trace }
}

/// An InvokeModel answer (a whole body, or a stream's last chunk) with what its guardrail
/// adds: `amazon-bedrock-guardrailAction`, and `amazon-bedrock-trace` when asked for.
pub fn with_invoke_guardrail(mut answer: Value, guardrail: &ConverseGuardrail) -> Value {
    if let Some(map) = answer.as_object_mut() {
        map.insert("amazon-bedrock-guardrailAction".into(), json!("NONE"));
        if let Some(trace) = &guardrail.trace {
            map.insert("amazon-bedrock-trace".into(), trace.clone());
        }
    }
    answer
}

impl Simulator {
    pub(crate) async fn count_tokens(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let id = self.request_id();
        let rest = req.uri().path().trim_start_matches("/model/").to_owned();
        let model = percent_decode_str(rest.trim_end_matches("/count-tokens"))
            .decode_utf8_lossy()
            .into_owned();
        let mut served = Served::new(
            &id,
            "CountTokens",
            &model,
            &signed(&req).unwrap_or_default(),
        );
        if served.signed_for.is_empty() {
            return self.refuse_served(
                served,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            );
        }
        let Some(json) = read_json(req).await else {
            return self.refuse_served(served, "ValidationException", "Malformed input request.");
        };
        let input = json.pointer("/input/converse").cloned().or_else(|| {
            json.pointer("/input/invokeModel/body")
                .and_then(Value::as_str)
                .and_then(|b| serde_json::from_str(b).ok())
        });
        let Some(input) = input else {
            return self.refuse_served(served, "ValidationException",
                "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must not be null");
        };
        let tokens = prompt::tokens_for_chars(prompt::analyze(&input, None).text_chars).max(1);
        served.usage_delivered = true;
        // Counting is free: nothing is billed, whatever the count.
        self.record_served(served);
        ok(&json!({"inputTokens": tokens}), &id)
    }

    pub(crate) async fn apply_guardrail(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let id = self.request_id();
        let guardrail = req
            .uri()
            .path()
            .split('/')
            .nth(2)
            .unwrap_or_default()
            .to_owned();
        let mut served = Served::new(
            &id,
            "ApplyGuardrail",
            &guardrail,
            &signed(&req).unwrap_or_default(),
        );
        if served.signed_for.is_empty() {
            return self.refuse_served(
                served,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            );
        }
        let Some(json) = read_json(req).await else {
            return self.refuse_served(served, "ValidationException", "Malformed input request.");
        };
        let (Some(source), Some(content)) = (
            json.get("source"),
            json.get("content").filter(|c| c.is_array()),
        ) else {
            return self.refuse_served(
                served,
                "ValidationException",
                "2 validation errors detected: 'source' and 'content' must not be null",
            );
        };
        let (mut chars, mut blocks) = (0, 0);
        text(content, &mut chars, &mut blocks);
        let units = chars.div_ceil(units::TEXT_UNIT_CHARS).max(1);
        let usage = GuardrailUsage {
            content_policy_units: units,
            topic_policy_units: units,
            word_policy_units: units,
            sensitive_information_policy_units: units,
            ..GuardrailUsage::default()
        };
        served.unit_cost = units::guardrail_cost(&usage).to_api_string();
        served.usage_delivered = true;
        self.record_served(served);
        let blocked = content.to_string().contains("[sim:guardrail_block]");
        ok(
            &json!({
                "usage": {"topicPolicyUnits": units, "contentPolicyUnits": units, "wordPolicyUnits": units,
                          "sensitiveInformationPolicyUnits": units, "sensitiveInformationPolicyFreeUnits": 0,
                          "contextualGroundingPolicyUnits": 0},
                "action": if blocked { "GUARDRAIL_INTERVENED" } else { "NONE" },
                "outputs": if blocked { json!([{"text": "Sorry, I can't help with that."}]) } else { json!([]) },
                "assessments": [{"invocationMetrics": {"guardrailProcessingLatency": 1,
                    "usage": {"topicPolicyUnits": units, "contentPolicyUnits": units, "wordPolicyUnits": units,
                              "sensitiveInformationPolicyUnits": units, "sensitiveInformationPolicyFreeUnits": 0,
                              "contextualGroundingPolicyUnits": 0},
                    "guardrailCoverage": {"textCharacters": {"guarded": chars, "total": chars}}}}],
                "guardrailCoverage": {"textCharacters": {"guarded": chars, "total": chars}},
                "source": source,
            }),
            &id,
        )
    }

    /// InvokeGuardrailChecks (`POST /guardrail-checks/invoke`): each check requested evaluates
    /// every message's text and reports its text units in `usage`; scores are 0 (nothing
    /// found) unless the text holds `[sim:guardrail_block]`.
    pub(crate) async fn guardrail_checks(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let id = self.request_id();
        let signer = signed(&req).unwrap_or_default();
        let mut served = Served::new(&id, "InvokeGuardrailChecks", "", &signer);
        if served.signed_for.is_empty() {
            return self.refuse_served(
                served,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            );
        }
        let Some(json) = read_json(req).await else {
            return self.refuse_served(served, "ValidationException", "Malformed input request.");
        };
        let checks = ["contentFilter", "promptAttack", "sensitiveInformation"]
            .into_iter()
            .filter(|c| json.pointer(&format!("/checks/{c}")).is_some())
            .collect::<Vec<_>>();
        let messages = json.get("messages").and_then(Value::as_array);
        let (Some(messages), false) = (messages.filter(|m| !m.is_empty()), checks.is_empty())
        else {
            return self.refuse_served(served, "ValidationException",
                "1 validation error detected: 'messages' must hold at least one message and 'checks' at least one check");
        };
        let (mut chars, mut blocks) = (0, 0);
        messages
            .iter()
            .filter_map(|m| m.get("content"))
            .for_each(|c| text(c, &mut chars, &mut blocks));
        let units = units::text_units(chars, blocks.max(1));
        let found = json.to_string().contains("[sim:guardrail_block]");
        let score = if found { 1.0 } else { 0.0 };
        let mut results = serde_json::Map::new();
        let mut usage = serde_json::Map::new();
        for check in checks {
            let result = match check {
                "sensitiveInformation" => json!({"results": [], "truncated": false}),
                _ => json!({"results": [{"category": "VIOLENCE", "severity": score}]}),
            };
            results.insert(check.into(), result);
            usage.insert(check.into(), json!({"textUnits": units}));
        }
        let answer = json!({"results": results, "usage": usage});
        let body = answer.to_string();
        served.unit_cost = units::guardrail_checks_cost(body.as_bytes())
            .expect("the simulator's own usage")
            .to_api_string();
        served.usage_delivered = true;
        self.record_served(served);
        ok(&answer, &id)
    }

    pub(crate) async fn async_invoke(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let id = self.request_id();
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let served = Served::new(
            &id,
            "StartAsyncInvoke",
            "",
            &signed(&req).unwrap_or_default(),
        );
        if served.signed_for.is_empty() {
            return self.refuse_served(
                served,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            );
        }
        if method == Method::GET {
            return self.read_jobs(&path, &id);
        }
        if method != Method::POST || path != "/async-invoke" {
            return self.refuse_served(
                served,
                "UnknownOperationException",
                "The requested operation is not recognized by the service.",
            );
        }
        let Some(json) = read_json(req).await else {
            return self.refuse_served(served, "ValidationException", "Malformed input request.");
        };
        self.start_job(served, &json, &id)
    }

    fn start_job(&self, mut served: Served, json: &Value, id: &str) -> Response<Body> {
        let model = json
            .get("modelId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        served.model_id = model.clone();
        let (Some(input), Some(output)) = (json.get("modelInput"), json.get("outputDataConfig"))
        else {
            return self.refuse_served(served, "ValidationException",
                "Value null at 'modelInput' and 'outputDataConfig' failed to satisfy constraint: Member must not be null");
        };
        let Some(rate) = units::async_rate(&model) else {
            return self.refuse_served(
                served,
                "ValidationException",
                "The provided model identifier is invalid.",
            );
        };
        let seconds = units::requested_seconds(input).unwrap_or(rate.max_seconds);
        let d = directives::parse(&input.to_string());
        let fails = input.to_string().contains("[sim:job_fail]");
        let job = Job {
            arn: format!(
                "arn:aws:bedrock:us-east-1:123456789012:async-invoke/{}",
                id.rsplit('-').next().unwrap_or(id)
            ),
            model_arn: format!(
                "arn:aws:bedrock:us-east-1::foundation-model/{}",
                rate.model_id
            ),
            done_at: Instant::now() + Duration::from_millis(d.latency_ms.unwrap_or(300)),
            fails,
            submitted: jiff::Timestamp::now().to_string(),
            output: output.clone(),
        };
        // Billed only when the job completes; the simulator states what it would bill.
        served.unit_cost = if fails {
            String::new()
        } else {
            units::async_cost(rate, seconds).to_api_string()
        };
        served.usage_delivered = !fails;
        self.record_served(served);
        let arn = job.arn.clone();
        self.jobs().push(job);
        ok(&json!({"invocationArn": arn}), id)
    }

    fn read_jobs(&self, path: &str, id: &str) -> Response<Body> {
        let jobs = self.jobs().clone();
        match path.strip_prefix("/async-invoke/") {
            Some(arn) => {
                let arn = percent_decode_str(arn).decode_utf8_lossy().into_owned();
                match jobs.iter().find(|j| j.arn == arn) {
                    Some(job) => ok(&job.shape(), id),
                    None => crate::server::full_error(
                        "ResourceNotFoundException",
                        "The specified invocation ARN was not found.",
                        id,
                    ),
                }
            }
            None => ok(
                &json!({"asyncInvokeSummaries": jobs.iter().map(Job::shape).collect::<Vec<_>>()}),
                id,
            ),
        }
    }
}
