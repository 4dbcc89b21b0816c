//! Who is calling: the request must carry the shape of AWS authentication, and the caller is
//! the pod whose IP is the TCP peer address ([`ClusterView::workload`]). The gateway cannot
//! verify a signature made for its own host and does not try; identity never comes from a
//! header.

use std::net::IpAddr;
use std::sync::Arc;

use aigov_ledger::policy::Workload;

use crate::UnknownCallers;
use crate::cluster::ClusterView;
use crate::error::GatewayError;

/// The client must have signed (SigV4) or sent a Bedrock API key (`Authorization: Bearer`, or
/// Anthropic's `x-api-key` on the Messages API), as every SDK does; anything else is refused
/// the way Bedrock refuses it. The credential itself is never checked nor forwarded.
pub fn check_auth(headers: &http::HeaderMap) -> Result<(), GatewayError> {
    let Some(value) = headers.get("authorization") else {
        let api_key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|k| !k.trim().is_empty());
        return if api_key {
            Ok(())
        } else {
            Err(GatewayError::MissingAuthentication)
        };
    };
    let text = value.to_str().unwrap_or_default();
    let sigv4 = text.starts_with("AWS4-HMAC-SHA256 ")
        && text.contains("Credential=")
        && text.contains("Signature=");
    let bearer = text
        .strip_prefix("Bearer ")
        .is_some_and(|t| !t.trim().is_empty());
    if sigv4 || bearer {
        Ok(())
    } else {
        Err(GatewayError::BadAuthorization)
    }
}

/// The pod calling from `peer`; `None` for a caller that is no pod but is forwarded unmetered
/// by policy (`--unknown-callers forward`). Before the caches hold a first full list, no
/// address can be said to be no pod's (nor a budget to select none), so the call is asked to
/// retry ([`GatewayError::NotReady`]) instead of being refused or forwarded unmetered.
pub fn identify(
    cluster: &ClusterView,
    peer: IpAddr,
    unknown: UnknownCallers,
) -> Result<Option<Arc<Workload>>, GatewayError> {
    if !cluster.synced() {
        return Err(GatewayError::NotReady);
    }
    match cluster.workload(peer) {
        Some(w) => Ok(Some(w)),
        None if unknown == UnknownCallers::Forward => Ok(None),
        None => Err(GatewayError::UnknownCaller(peer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: Option<&str>) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        if let Some(a) = authorization {
            headers.insert("authorization", a.parse().unwrap());
        }
        headers
    }

    #[test]
    fn a_sigv4_signature_or_a_bearer_key_passes_without_being_verified() {
        let sigv4 = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, \
                     SignedHeaders=host, Signature=abc";
        assert!(check_auth(&headers(Some(sigv4))).is_ok());
        assert!(check_auth(&headers(Some("Bearer key"))).is_ok());
    }

    #[test]
    fn no_authorization_or_another_scheme_is_refused_as_bedrock_would() {
        assert!(matches!(
            check_auth(&headers(None)),
            Err(GatewayError::MissingAuthentication)
        ));
        for other in [
            "Basic dXNlcg==",
            "Bearer  ",
            "AWS4-HMAC-SHA256 Credential=x",
        ] {
            assert!(matches!(
                check_auth(&headers(Some(other))),
                Err(GatewayError::BadAuthorization)
            ));
        }
    }

    #[test]
    fn before_the_caches_synced_every_caller_is_asked_to_retry_even_under_forward() {
        let cluster = ClusterView::default();
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        for policy in [UnknownCallers::Refuse, UnknownCallers::Forward] {
            assert!(matches!(
                identify(&cluster, peer, policy),
                Err(GatewayError::NotReady)
            ));
        }
        cluster.set_pods(&[]);
        assert!(
            matches!(
                identify(&cluster, peer, UnknownCallers::Refuse),
                Err(GatewayError::NotReady)
            ),
            "the budgets are not listed yet"
        );
        cluster.set_budgets(&[]);
        cluster.set_namespaces(&[]);
        cluster.set_cluster_budgets(&[]);
        assert!(matches!(
            identify(&cluster, peer, UnknownCallers::Refuse),
            Err(GatewayError::UnknownCaller(_))
        ));
    }

    #[test]
    fn an_address_of_no_pod_is_refused_unless_unknown_callers_are_forwarded() {
        let cluster = ClusterView::synced_empty();
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(matches!(
            identify(&cluster, peer, UnknownCallers::Refuse),
            Err(GatewayError::UnknownCaller(ip)) if ip == peer
        ));
        assert!(matches!(
            identify(&cluster, peer, UnknownCallers::Forward),
            Ok(None)
        ));
    }
}
