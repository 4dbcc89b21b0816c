//! Reading the request body: bounded in size (`--max-body-bytes`) and in time (a client that
//! trickles its body holds a connection, not the gateway), then parsed as the JSON object
//! every metered operation sends. The body's length also bounds the call's input tokens
//! (see [`aigov_api::usage::input_token_bound`]).

use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use crate::BoxError;
use crate::error::GatewayError;

/// The whole body, at most `limit` bytes, within `timeout`.
pub async fn read<B>(body: B, limit: usize, timeout: Duration) -> Result<Bytes, GatewayError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::BodyTooLarge(limit))
        }
        Ok(Err(e)) => Err(GatewayError::BodyUnreadable(e.to_string())),
        Err(_) => Err(GatewayError::BodyTimeout(timeout)),
    }
}

/// The body as a JSON object (the worst case reads `maxTokens` out of it).
pub fn json_object(body: &[u8]) -> Result<serde_json::Value, GatewayError> {
    match serde_json::from_slice(body) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(GatewayError::BodyNotAnObject),
        Err(e) => Err(GatewayError::BodyNotJson(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let body = Full::new(Bytes::from_static(b"{\"a\":1}"));
        let read = read(body, 7, Duration::from_secs(1)).await.unwrap();
        assert_eq!(&read[..], b"{\"a\":1}");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_naming_the_limit() {
        let body = Full::new(Bytes::from_static(b"{\"a\":12}"));
        let refused = read(body, 7, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(refused, GatewayError::BodyTooLarge(7)));
    }

    #[test]
    fn only_a_json_object_is_a_request_body() {
        assert!(json_object(b"{}").is_ok());
        assert!(matches!(
            json_object(b"[1]"),
            Err(GatewayError::BodyNotAnObject)
        ));
        assert!(matches!(
            json_object(b"{"),
            Err(GatewayError::BodyNotJson(_))
        ));
    }
}
