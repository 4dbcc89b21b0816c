//! Bedrock's request metadata on the four inference operations: read and validated as Bedrock
//! validates it ([`aigov_api::request_metadata`]), so a call Bedrock would refuse gets the same
//! ValidationException here before anything is reserved; then forwarded as the caller sent it
//! plus the gateway's own pairs (`aigov.namespace`, `aigov.workload`, `aigov.budgets`), so
//! Bedrock's model invocation logs carry aigov's attribution too.
//!
//! Converse and ConverseStream carry it in the body's `requestMetadata`; InvokeModel and
//! InvokeModelWithResponseStream in the `X-Amzn-Bedrock-Request-Metadata` header. Other
//! operations' metadata (mantle has none) is neither read nor changed.
//!
//! Metadata only subdivides the spend of the budgets the calling pod selects: it is read after
//! the pod is identified and never consulted when choosing budgets.

use aigov_api::request_metadata::{
    self, RequestMetadata, Stamped, callers_pairs, joined_within_limit, stamp,
};
use aigov_ledger::policy::{BudgetPolicy, Workload};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;

use crate::error::GatewayError;
use crate::route::Operation;

/// The header, as `http` names it (lower case).
const HEADER: HeaderName = HeaderName::from_static("x-amzn-bedrock-request-metadata");

/// Where an operation carries its metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carrier {
    Body,
    Header,
}

fn carrier(operation: Operation) -> Option<Carrier> {
    match operation {
        Operation::Converse | Operation::ConverseStream => Some(Carrier::Body),
        Operation::InvokeModel | Operation::InvokeModelWithResponseStream => Some(Carrier::Header),
        _ => None,
    }
}

/// Whether `operation` carries Bedrock's request metadata at all (the four inference calls).
pub fn carries_metadata(operation: Operation) -> bool {
    carrier(operation).is_some()
}

/// The metadata the caller sent (None: none, or an operation without metadata), or the
/// ValidationException Bedrock would answer.
pub fn read(
    operation: Operation,
    headers: &HeaderMap,
    json: &serde_json::Value,
) -> Result<Option<RequestMetadata>, GatewayError> {
    let read = match carrier(operation) {
        None => return Ok(None),
        Some(Carrier::Body) => request_metadata::from_body(json),
        Some(Carrier::Header) => {
            request_metadata::from_header(headers.get(HEADER).map(HeaderValue::as_bytes))
        }
    };
    read.map_err(GatewayError::InvalidMetadata)
}

/// The caller's own pairs of what [`read`] found (none under the gateway's prefix).
pub fn callers(metadata: Option<&RequestMetadata>) -> RequestMetadata {
    metadata.map(callers_pairs).unwrap_or_default()
}

/// The gateway's pairs for a call of `workload` charged to `budgets`.
fn ours(workload: &Workload, budgets: &[Arc<BudgetPolicy>]) -> [(&'static str, String); 3] {
    let keys: Vec<String> = budgets.iter().map(|b| b.key.clone()).collect();
    [
        ("namespace", workload.namespace.clone()),
        ("workload", workload.workload.clone()),
        ("budgets", joined_within_limit(&keys)),
    ]
}

/// What is forwarded, and whether the gateway's pairs fit.
pub struct Forwarded {
    /// The body to send (the caller's, or with `requestMetadata` stamped).
    pub body: Bytes,
    /// Its JSON (changed likewise).
    pub json: serde_json::Value,
    /// The headers to send (the caller's, or with the header stamped).
    pub headers: HeaderMap,
    /// False when the caller's pairs left no room for the gateway's.
    pub stamped: bool,
}

/// The request as it goes to Bedrock: the caller's metadata with the gateway's pairs added
/// where the operation carries it. A call without metadata gets the gateway's pairs alone.
pub fn forwarded(
    operation: Operation,
    caller: Option<&RequestMetadata>,
    (workload, budgets): (&Workload, &[Arc<BudgetPolicy>]),
    (body, json, headers): (Bytes, serde_json::Value, &HeaderMap),
) -> Forwarded {
    let mut out = Forwarded {
        body,
        json,
        headers: headers.clone(),
        stamped: true,
    };
    let Some(carrier) = carrier(operation) else {
        return out;
    };
    let Stamped { metadata, stamped } = stamp(
        &caller.cloned().unwrap_or_default(),
        &ours(workload, budgets),
    );
    out.stamped = stamped;
    if !stamped && caller.is_some_and(|c| callers_pairs(c).len() == c.len()) {
        return out; // the caller's pairs exactly as they came
    }
    let value = serde_json::Value::from(serde_json::Map::from_iter(
        metadata.into_iter().map(|(k, v)| (k, v.into())),
    ));
    match carrier {
        Carrier::Body => {
            if let Some(object) = out.json.as_object_mut() {
                object.insert(request_metadata::BODY_FIELD.to_owned(), value);
                out.body = Bytes::from(out.json.to_string());
            }
        }
        Carrier::Header => {
            if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
                out.headers.insert(HEADER, v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workload() -> Workload {
        Workload {
            namespace: "team".into(),
            name: "chat-0".into(),
            workload: "chat".into(),
            ..Workload::default()
        }
    }

    #[test]
    fn converse_metadata_is_read_from_the_body_and_invoke_metadata_from_the_header() {
        let body = json!({"requestMetadata": {"feature": "search"}});
        let m = read(Operation::Converse, &HeaderMap::new(), &body)
            .unwrap()
            .unwrap();
        assert_eq!(m["feature"], "search");
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_static(r#"{"user":"u-1"}"#));
        let m = read(
            Operation::InvokeModelWithResponseStream,
            &headers,
            &json!({}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(m["user"], "u-1");
        assert_eq!(
            read(Operation::InvokeModel, &HeaderMap::new(), &body).unwrap(),
            None
        );
        assert_eq!(
            read(Operation::ChatCompletions, &headers, &body).unwrap(),
            None
        );
        headers.insert(HEADER, HeaderValue::from_static("{oops"));
        let e = read(Operation::InvokeModel, &headers, &json!({})).unwrap_err();
        assert_eq!(e.code(), "ValidationException");
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn the_gateways_pairs_join_the_callers_in_the_body_and_in_the_header() {
        let body = json!({"messages": [], "requestMetadata": {"feature": "search"}});
        let caller = read(Operation::Converse, &HeaderMap::new(), &body).unwrap();
        let out = forwarded(
            Operation::Converse,
            caller.as_ref(),
            (&workload(), &[]),
            (Bytes::from(body.to_string()), body, &HeaderMap::new()),
        );
        assert!(out.stamped);
        let sent: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(
            sent["requestMetadata"],
            json!({"feature": "search", "aigov.namespace": "team", "aigov.workload": "chat", "aigov.budgets": ""})
        );
        let out = forwarded(
            Operation::InvokeModel,
            None,
            (&workload(), &[]),
            (Bytes::from_static(b"{}"), json!({}), &HeaderMap::new()),
        );
        let header: serde_json::Value =
            serde_json::from_slice(out.headers[HEADER].as_bytes()).unwrap();
        assert_eq!(header["aigov.workload"], "chat");
        assert_eq!(out.body, Bytes::from_static(b"{}"), "the body is untouched");
    }

    #[test]
    fn a_caller_with_no_room_left_is_forwarded_byte_for_byte_and_marked_unstamped() {
        let pairs: serde_json::Map<String, serde_json::Value> =
            (0..15).map(|i| (format!("k{i}"), json!("v"))).collect();
        let body = json!({"messages": [], "requestMetadata": pairs});
        let raw = Bytes::from(format!("{body}  "));
        let caller = read(Operation::ConverseStream, &HeaderMap::new(), &body).unwrap();
        let out = forwarded(
            Operation::ConverseStream,
            caller.as_ref(),
            (&workload(), &[]),
            (raw.clone(), body, &HeaderMap::new()),
        );
        assert!(!out.stamped);
        assert_eq!(out.body, raw);
    }
}
