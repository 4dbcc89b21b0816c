//! Checks SigV4 signatures like Bedrock does, for the access keys the simulator was told the
//! secrets of (`--sigv4-secret KEY=SECRET`): the canonical request is rebuilt from what arrived
//! (method, path as sent, the signed headers, the body) and signed again; a different signature
//! is `InvalidSignatureException`. Keys it does not know are not checked (it cannot know every
//! secret), which the tests that matter avoid.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// The parts of a SigV4 `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// Access key ID.
    pub access_key: &'a str,
    /// `YYYYMMDD`.
    pub date: &'a str,
    /// Region of the scope.
    pub region: &'a str,
    /// Service of the scope.
    pub service: &'a str,
    /// Lower-case header names, `;`-separated.
    pub signed_headers: &'a str,
    /// Hex signature.
    pub signature: &'a str,
}

/// Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
pub fn parse(header: &str) -> Option<Authorization<'_>> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let field = |name: &str| {
        rest.split(',').find_map(|p| {
            p.trim()
                .strip_prefix(name)
                .and_then(|v| v.strip_prefix('='))
        })
    };
    let mut scope = field("Credential")?.split('/');
    Some(Authorization {
        access_key: scope.next()?,
        date: scope.next()?,
        region: scope.next()?,
        service: scope.next()?,
        signed_headers: field("SignedHeaders")?,
        signature: field("Signature")?,
    })
}

/// Why a signature was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The signature does not match the request.
    Mismatch,
    /// A header the signature needs is missing or malformed.
    Malformed(&'static str),
}

/// Verifies a request signed by a key in `secrets`; `Ok(false)` when the key is unknown.
pub fn verify(
    secrets: &HashMap<String, String>,
    method: &str,
    path_and_query: &str,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<bool, Refusal> {
    let Some(header) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(false);
    };
    let Some(auth) = parse(header) else {
        return Err(Refusal::Malformed("Authorization"));
    };
    let Some(secret) = secrets.get(auth.access_key) else {
        return Ok(false);
    };
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(Refusal::Malformed("X-Amz-Date"))?;
    let time = parse_amz_date(amz_date).ok_or(Refusal::Malformed("X-Amz-Date"))?;
    let token = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok());
    let identity = Credentials::new(
        auth.access_key,
        secret,
        token.map(str::to_owned),
        None,
        "sim",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.excluded_headers = Some(Vec::new());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(auth.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|_| Refusal::Malformed("Credential"))?
        .into();
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    let mut pairs = Vec::new();
    for name in &signed {
        // The signer adds these itself from the identity and the time.
        if matches!(*name, "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        let value = headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .ok_or(Refusal::Malformed("SignedHeaders"))?;
        pairs.push((*name, value));
    }
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let uri = format!("http://{host}{path_and_query}");
    let request = SignableRequest::new(method, &uri, pairs.into_iter(), SignableBody::Bytes(body))
        .map_err(|_| Refusal::Malformed("request"))?;
    let (_, signature) = sign(request, &params)
        .map_err(|_| Refusal::Mismatch)?
        .into_parts();
    if signature == auth.signature {
        Ok(true)
    } else {
        Err(Refusal::Mismatch)
    }
}

/// `20260101T000000Z` (SigV4's basic format) as a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    let at: jiff::Timestamp = rfc3339.parse().ok()?;
    Some(
        SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(at.as_second()).ok()?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorization_header_is_read_into_its_parts() {
        let a = parse("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc").unwrap();
        assert_eq!(
            (
                a.access_key,
                a.region,
                a.service,
                a.signed_headers,
                a.signature
            ),
            ("AKID", "us-east-1", "bedrock", "host;x-amz-date", "abc")
        );
    }

    #[test]
    fn amz_dates_are_utc() {
        let t = parse_amz_date("20260101T000001Z").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            1_767_225_601
        );
        assert!(parse_amz_date("2026-01-01").is_none());
    }
}
