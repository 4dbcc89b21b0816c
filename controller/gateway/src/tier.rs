//! The service tier a call asks Bedrock for (Standard, Priority, Flex, Reserved), which sets
//! its per-token rates: read as Bedrock reads it, so that a call is reserved and settled at
//! its tier's rates ([`aigov_api::pricing::ServiceTier`]) and a tier Bedrock would refuse gets
//! the same ValidationException here, before anything is reserved.
//!
//! Converse and ConverseStream name it in the body (`"serviceTier": {"type": "priority"}`);
//! InvokeModel and InvokeModelWithResponseStream in the `X-Amzn-Bedrock-Service-Tier` header.
//! Other operations (mantle's OpenAI-compatible APIs among them) are priced at Standard.
//!
//! The tier priced is the one asked for: Bedrock may serve a Priority request at Standard when
//! Priority capacity runs out, which this over-counts (never under-counts).

use aigov_api::pricing::ServiceTier;
use http::{HeaderMap, HeaderName};

use crate::error::GatewayError;
use crate::route::Operation;

/// The header, as `http` names it (lower case).
const HEADER: HeaderName = HeaderName::from_static("x-amzn-bedrock-service-tier");

/// The tier `operation`'s request asks for, or the ValidationException Bedrock would answer.
pub fn read(
    operation: Operation,
    headers: &HeaderMap,
    json: &serde_json::Value,
) -> Result<ServiceTier, GatewayError> {
    let invalid = |e| GatewayError::InvalidServiceTier(e);
    match operation {
        Operation::Converse | Operation::ConverseStream => match json.get("serviceTier") {
            None | Some(serde_json::Value::Null) => Ok(ServiceTier::Standard),
            Some(tier) => match tier.get("type").and_then(|t| t.as_str()) {
                Some(name) => name.parse().map_err(invalid),
                None => Err(invalid(aigov_api::Error::UnknownServiceTier(
                    tier.to_string(),
                ))),
            },
        },
        Operation::InvokeModel | Operation::InvokeModelWithResponseStream => {
            let value = headers
                .get(HEADER)
                .map(|v| v.to_str().unwrap_or("(not text)"));
            ServiceTier::from_request(value).map_err(invalid)
        }
        _ => Ok(ServiceTier::Standard),
    }
}

/// The tier as a usage record carries it: empty for Standard (what older gateways send).
pub fn on_record(tier: ServiceTier) -> String {
    match tier {
        ServiceTier::Standard => String::new(),
        other => other.as_wire().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converse_names_its_tier_in_the_body_and_invoke_model_in_a_header() {
        let none = HeaderMap::new();
        let body = json!({"serviceTier": {"type": "priority"}});
        assert_eq!(
            read(Operation::Converse, &none, &body).unwrap(),
            ServiceTier::Priority
        );
        assert_eq!(
            read(Operation::ConverseStream, &none, &json!({})).unwrap(),
            ServiceTier::Standard
        );
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, "flex".parse().unwrap());
        assert_eq!(
            read(Operation::InvokeModel, &headers, &json!({})).unwrap(),
            ServiceTier::Flex
        );
        assert_eq!(
            read(Operation::InvokeModel, &none, &body).unwrap(),
            ServiceTier::Standard,
            "InvokeModel's body is the model's own: a serviceTier in it is not the tier"
        );
    }

    #[test]
    fn a_tier_bedrock_does_not_know_is_refused_naming_the_field() {
        let none = HeaderMap::new();
        for body in [
            json!({"serviceTier": {"type": "standard"}}),
            json!({"serviceTier": "priority"}),
        ] {
            let err = read(Operation::Converse, &none, &body).unwrap_err();
            assert!(
                err.to_string().contains("serviceTier.type"),
                "{body}: {err}"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, "PRIORITY".parse().unwrap());
        let err = read(
            Operation::InvokeModelWithResponseStream,
            &headers,
            &json!({}),
        );
        assert!(matches!(err, Err(GatewayError::InvalidServiceTier(_))));
    }

    #[test]
    fn a_record_carries_only_a_tier_other_than_standard() {
        assert_eq!(on_record(ServiceTier::Standard), "");
        assert_eq!(on_record(ServiceTier::Priority), "priority");
    }
}
