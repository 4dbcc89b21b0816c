//! Amazon Bedrock model invocation logging, as Bedrock writes it to CloudWatch Logs, so aigov's
//! controller can reconcile its ledger against the records (matched, recovered and bypass calls,
//! joined on `requestId`).
//!
//! # The record
//!
//! One JSON object per invocation, in the log group of the account's logging configuration
//! (`GetModelInvocationLoggingConfiguration` → `loggingConfig.cloudWatchConfig.logGroupName`),
//! stream `aws/bedrock/modelinvocations`:
//!
//! ```json
//! {"schemaType": "ModelInvocationLog", "schemaVersion": "1.0",
//!  "timestamp": "2025-04-09T23:00:17Z", "accountId": "123456789012",
//!  "identity": {"arn": "arn:aws:sts::123456789012:assumed-role/app/session"},
//!  "region": "us-east-1", "requestId": "915a6a04-...", "operation": "Converse",
//!  "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
//!  "input": {"inputContentType": "application/json", "inputBodyJson": {...},
//!            "inputTokenCount": 35, "cacheReadInputTokenCount": 0, "cacheWriteInputTokenCount": 0},
//!  "output": {"outputContentType": "application/json", "outputBodyJson": {...},
//!             "outputTokenCount": 446},
//!  "requestMetadata": {"traceId": "..."}}
//! ```
//!
//! Sources: the operations that log, the configuration and the CloudWatch destination are in
//! <https://docs.aws.amazon.com/bedrock/latest/userguide/model-invocation-logging.html>; the
//! record's fields and types (including `cacheReadInputTokenCount`/`cacheWriteInputTokenCount`,
//! `errorCode`, `status`, `inferenceRegion`) in Panther's schema for these logs,
//! <https://docs.panther.com/data-onboarding/supported-logs/aws/bedrock-model-invocation>; a real
//! Converse record (the example above, trimmed) in a public talk's slides,
//! <https://d1eu30co0ohy4w.cloudfront.net/licux/awsroguwohuo-yong-sitallmapurinoopsjian-tao>; the
//! stream name in the IAM policy the Bedrock documentation gives the delivery role
//! (`...:log-stream:aws/bedrock/modelinvocations`, also in the Terraform AWS provider's tests).
//!
//! # What the simulator logs, and why
//!
//! * Only the four runtime operations, as Bedrock does, and only calls it answered with 200 and
//!   no error. Bedrock also logs failed invocations (`errorCode`); aigov's reconciliation does not
//!   need them, so they are not modelled.
//! * A stream cut before its usage-bearing event (the `[sim:truncate]` directive, or a client
//!   that hung up) *is* logged, with the tokens the model produced: Bedrock writes the record on
//!   its side once the invocation ends, whatever reached the client, and these are exactly the
//!   calls reconciliation "recovers". A stream that ended in an exception event is not.
//! * Bodies (`inputBodyJson`, `outputBodyJson`) only when `textDataDeliveryEnabled`, as Bedrock;
//!   streamed outputs carry no `outputBodyJson` here (the simulator does not reassemble them).
//!   Large-body delivery to S3 is not modelled.
//! * `identity.arn`/`accountId`: STS `GetCallerIdentity` signed with the caller's access key ID
//!   (moto identifies callers by key ID and does not check secrets). An API key (bearer) call is
//!   attributed to `arn:aws:iam::{account}:user/BedrockAPIKey` in the simulator's own account:
//!   real long-term API keys belong to an IAM user, which the simulator cannot know.
//! * The configuration is read from moto's Bedrock control plane with a short cache
//!   ([`aws::CONFIG_TTL`]), when a call is served; records are written off the request path in
//!   batches; a failed write is logged and retried, never failing a call.

mod aws;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::server::Served;

/// The log stream Bedrock writes invocation records to, in the configured group.
pub const LOG_STREAM: &str = "aws/bedrock/modelinvocations";

/// The operations Bedrock writes invocation logs for.
const LOGGED_OPERATIONS: [&str; 4] = [
    "Converse",
    "ConverseStream",
    "InvokeModel",
    "InvokeModelWithResponseStream",
];

/// One served invocation, waiting for its record to be written.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// What the simulator served.
    pub served: Served,
    /// When it was served.
    pub at: jiff::Timestamp,
    /// The request body, when it was JSON.
    pub input_body: Option<Value>,
    /// The response body of a non-streaming call.
    pub output_body: Option<Value>,
}

/// Who signed a call, as Bedrock puts it in the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The principal's ARN (`identity.arn`).
    pub arn: String,
    /// Its account (`accountId`).
    pub account: String,
}

/// The handle the server queues invocations on; cheap to clone.
#[derive(Clone, Debug)]
pub struct InvocationLogs {
    queue: mpsc::UnboundedSender<Invocation>,
}

impl InvocationLogs {
    /// Starts the background writer against the AWS endpoint (moto) in `region`.
    pub async fn start(endpoint: &str, region: &str) -> InvocationLogs {
        let (queue, received) = mpsc::unbounded_channel();
        let writer = aws::Writer::new(endpoint, region).await;
        tokio::spawn(writer.run(received));
        InvocationLogs { queue }
    }

    /// Queues a served call if Bedrock would log it; never blocks or fails the call.
    pub fn submit(&self, invocation: Invocation) {
        if is_logged(&invocation.served) {
            let _ = self.queue.send(invocation);
        }
    }
}

/// Whether Bedrock writes a record for this call (see the module documentation).
pub fn is_logged(served: &Served) -> bool {
    LOGGED_OPERATIONS.contains(&served.operation.as_str())
        && served.status == 200
        && served.error.is_none()
}

/// The record Bedrock writes for `call`, signed by `identity`, with bodies if `text` delivery is on.
pub fn record(call: &Invocation, identity: &Identity, region: &str, text: bool) -> Value {
    let s = &call.served;
    let mut input = json!({
        "inputContentType": "application/json",
        "inputTokenCount": s.input_tokens,
        "cacheReadInputTokenCount": s.cache_read_tokens,
        "cacheWriteInputTokenCount": s.cache_write_tokens,
    });
    let mut output = json!({
        "outputContentType": "application/json",
        "outputTokenCount": s.output_tokens,
    });
    if text {
        if let Some(body) = &call.input_body {
            input["inputBodyJson"] = body.clone();
        }
        if let Some(body) = &call.output_body {
            output["outputBodyJson"] = body.clone();
        }
    }
    let mut record = json!({
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": call.at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "accountId": identity.account,
        "identity": {"arn": identity.arn},
        "region": region,
        "requestId": s.request_id,
        "operation": s.operation,
        "modelId": s.model_id,
        "input": input,
        "output": output,
    });
    if let Some(metadata) = &s.request_metadata {
        record["requestMetadata"] = metadata_json(metadata);
    }
    record
}

fn metadata_json(metadata: &BTreeMap<String, String>) -> Value {
    Value::Object(
        metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// The identity an API-key (bearer) call is attributed to, in `account`.
pub fn api_key_identity(account: &str) -> Identity {
    Identity {
        arn: format!("arn:aws:iam::{account}:user/BedrockAPIKey"),
        account: account.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Invocation {
        let mut served = Served::new(
            "req-1",
            "Converse",
            "anthropic.claude-x",
            "bedrock/us-east-1",
        );
        served.input_tokens = 35;
        served.output_tokens = 446;
        served.cache_read_tokens = 3;
        served.request_metadata = Some(BTreeMap::from([("team".into(), "a".into())]));
        Invocation {
            served,
            at: "2025-04-09T23:00:17.123Z".parse().expect("timestamp"),
            input_body: Some(json!({"messages": []})),
            output_body: Some(json!({"stopReason": "end_turn"})),
        }
    }

    fn who() -> Identity {
        Identity {
            arn: "arn:aws:iam::123456789012:user/app".into(),
            account: "123456789012".into(),
        }
    }

    #[test]
    fn record_has_bedrocks_fields() {
        let r = record(&call(), &who(), "us-east-1", true);
        assert_eq!(r["schemaType"], "ModelInvocationLog");
        assert_eq!(r["schemaVersion"], "1.0");
        assert_eq!(r["timestamp"], "2025-04-09T23:00:17Z");
        assert_eq!(r["accountId"], "123456789012");
        assert_eq!(r["identity"]["arn"], "arn:aws:iam::123456789012:user/app");
        assert_eq!(r["requestId"], "req-1");
        assert_eq!(r["input"]["inputTokenCount"], 35);
        assert_eq!(r["input"]["cacheReadInputTokenCount"], 3);
        assert_eq!(r["output"]["outputTokenCount"], 446);
        assert_eq!(r["requestMetadata"], json!({"team": "a"}));
        assert_eq!(r["input"]["inputBodyJson"], json!({"messages": []}));
    }

    #[test]
    fn bodies_only_with_text_delivery() {
        let r = record(&call(), &who(), "us-east-1", false);
        assert!(r["input"].get("inputBodyJson").is_none());
        assert!(r["output"].get("outputBodyJson").is_none());
    }

    #[test]
    fn only_successful_runtime_calls_are_logged() {
        let ok = call().served;
        assert!(is_logged(&ok));
        let mut failed = ok.clone();
        failed.status = 429;
        failed.error = Some("ThrottlingException".into());
        assert!(!is_logged(&failed));
        let mut other = ok;
        other.operation = "ApplyGuardrail".into();
        assert!(!is_logged(&other));
    }
}
