//! Forwarding to Bedrock: the client's headers pass through, its credentials (a signature made
//! for the gateway's host, a Bedrock API key in `Authorization: Bearer`, Anthropic's
//! `x-api-key`) are dropped, and the request is authenticated again as the gateway: SigV4 with
//! its own credentials from the standard chain (signing name `bedrock` for bedrock-runtime,
//! `bedrock-mantle` for bedrock-mantle), or, for mantle, a Bedrock API key the gateway holds
//! (`--mantle-api-key`). A caller's credential never reaches Bedrock.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::route::Endpoint;

/// Where and how to reach Bedrock.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// `https://bedrock-runtime.<region>.amazonaws.com`, or the simulator.
    pub endpoint: String,
    /// `https://bedrock-mantle.<region>.api.aws`, or the simulator.
    pub mantle_endpoint: String,
    /// A Bedrock API key to send to mantle instead of signing (`Authorization: Bearer`).
    pub mantle_api_key: Option<String>,
    /// The signing region.
    pub region: String,
    /// How long to wait for Bedrock's response headers.
    pub timeout: Duration,
}

/// Why forwarding failed before Bedrock answered.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The gateway has no usable credentials.
    #[error("the gateway has no AWS credentials: {0}")]
    Credentials(String),
    /// Signing failed.
    #[error("signing: {0}")]
    Signing(String),
    /// Bedrock could not be reached.
    #[error("Bedrock is unreachable: {0}")]
    Unreachable(String),
    /// Bedrock did not answer in time.
    #[error("Bedrock did not answer within {0:?}")]
    Timeout(Duration),
}

/// Headers that belong to one hop or to the client's signature, never forwarded.
const DROPPED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "x-api-key",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// Response headers of one hop only.
pub const DROPPED_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The upstream client.
pub struct Upstream {
    config: UpstreamConfig,
    base: Uri,
    mantle: Uri,
    credentials: SharedCredentialsProvider,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// HTTP/2 only, for bidirectional streams (which HTTP/1.1 cannot carry to Bedrock).
    stream_client: Client<hyper_rustls::HttpsConnector<HttpConnector>, StreamBody>,
}

/// The body of a request whose input streams: a bidirectional session's signed events.
pub type StreamBody = http_body_util::combinators::BoxBody<Bytes, crate::BoxError>;

/// Bedrock's answer to a stream being opened, awaited while its first events are sent.
pub type UpstreamAnswer = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<Incoming>, ForwardError>> + Send>,
>;

/// What the gateway's event signatures chain from: the signature of the re-signed request
/// that opened the stream, and the credentials and scope that made it.
#[derive(Clone, Debug)]
pub struct StreamSeed {
    /// The request's SigV4 signature (hex): the first event's "previous signature".
    pub signature: String,
    /// The credentials that signed it.
    pub credentials: Credentials,
    /// The signing region.
    pub region: String,
    /// The signing name (`bedrock`).
    pub signing_name: &'static str,
}

impl Upstream {
    /// A client for `config`, signing with `credentials`.
    pub fn new(
        config: UpstreamConfig,
        credentials: SharedCredentialsProvider,
    ) -> Result<Upstream, ForwardError> {
        let base: Uri = config.endpoint.parse().map_err(|e| {
            ForwardError::Unreachable(format!("bad endpoint {:?}: {e}", config.endpoint))
        })?;
        let mantle: Uri = config.mantle_endpoint.parse().map_err(|e| {
            ForwardError::Unreachable(format!("bad endpoint {:?}: {e}", config.mantle_endpoint))
        })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http.clone());
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(https);
        let h2 = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http2()
            .wrap_connector(http);
        let stream_client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(h2);
        Ok(Upstream {
            config,
            base,
            mantle,
            credentials,
            client,
            stream_client,
        })
    }

    /// Sends `method path_and_query` (with `query`) to `endpoint`, authenticated as the
    /// gateway, and returns Bedrock's response head and streaming body.
    pub async fn send(
        &self,
        endpoint: Endpoint,
        method: &http::Method,
        path: &str,
        query: Option<&str>,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response<Incoming>, ForwardError> {
        let path_and_query = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        let mut request = self.request_to(
            endpoint,
            method,
            &path_and_query,
            client_headers,
            Full::new(body.clone()),
        )?;
        match (endpoint, &self.config.mantle_api_key) {
            (Endpoint::Mantle, Some(key)) => {
                let value = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|e| ForwardError::Signing(e.to_string()))?;
                request.headers_mut().insert("authorization", value);
            }
            (Endpoint::Mantle, None) => {
                self.sign(&mut request, SignableBody::Bytes(&body), "bedrock-mantle")
                    .await?;
            }
            (Endpoint::Runtime, _) => {
                self.sign(&mut request, SignableBody::Bytes(&body), "bedrock")
                    .await?;
            }
        }
        match tokio::time::timeout(self.config.timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(ForwardError::Unreachable(e.to_string())),
            Err(_) => Err(ForwardError::Timeout(self.config.timeout)),
        }
    }

    /// The request to `path_and_query` on `endpoint`: the client's headers without the
    /// hop-by-hop ones and its credentials, and the upstream's host.
    fn request_to<B>(
        &self,
        endpoint: Endpoint,
        method: &http::Method,
        path_and_query: &str,
        client_headers: &HeaderMap,
        body: B,
    ) -> Result<Request<B>, ForwardError> {
        let base = match endpoint {
            Endpoint::Runtime => &self.base,
            Endpoint::Mantle => &self.mantle,
        };
        let authority = base
            .authority()
            .ok_or_else(|| ForwardError::Unreachable("endpoint has no host".into()))?;
        let uri = format!(
            "{}://{}{}",
            base.scheme_str().unwrap_or("https"),
            authority,
            path_and_query
        );
        let mut request = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .body(body)
            .map_err(|e| ForwardError::Signing(e.to_string()))?;
        let headers = request.headers_mut();
        for (name, value) in client_headers {
            if !DROPPED_REQUEST_HEADERS.contains(&name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(
            "host",
            HeaderValue::from_str(authority.as_str())
                .map_err(|e| ForwardError::Signing(e.to_string()))?,
        );
        Ok(request)
    }

    /// Opens a bidirectional stream (InvokeModelWithBidirectionalStream) to bedrock-runtime
    /// over HTTP/2 (ALPN `h2` over TLS; prior knowledge on a plain-HTTP endpoint such as the
    /// simulator), signed as the SDKs sign it: the payload hash of an empty body, since each
    /// event carries its own signature chained from this request's ([`StreamSeed`]). Returns
    /// the seed at once and Bedrock's answer as a future, because Bedrock may wait for the
    /// first events before it answers: the caller sends them through `body` meanwhile.
    pub async fn open_stream(
        &self,
        path: &str,
        client_headers: &HeaderMap,
        body: StreamBody,
    ) -> Result<(StreamSeed, UpstreamAnswer), ForwardError> {
        let mut request = self.request_to(
            Endpoint::Runtime,
            &http::Method::POST,
            path,
            client_headers,
            body,
        )?;
        let (signature, credentials) = self
            .sign(&mut request, SignableBody::Bytes(&[]), "bedrock")
            .await?;
        let seed = StreamSeed {
            signature,
            credentials,
            region: self.config.region.clone(),
            signing_name: "bedrock",
        };
        let sent = self.stream_client.request(request);
        let timeout = self.config.timeout;
        let answer = Box::pin(async move {
            match tokio::time::timeout(timeout, sent).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(e)) => Err(ForwardError::Unreachable(e.to_string())),
                Err(_) => Err(ForwardError::Timeout(timeout)),
            }
        });
        Ok((seed, answer))
    }

    /// Signs `request` (whose payload is `body`) as the gateway; returns the signature, which
    /// seeds an event stream's chain, and the credentials that made it.
    async fn sign<B>(
        &self,
        request: &mut Request<B>,
        body: SignableBody<'_>,
        signing_name: &str,
    ) -> Result<(String, Credentials), ForwardError> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| ForwardError::Credentials(e.to_string()))?;
        let identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name(signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| ForwardError::Signing(e.to_string()))?
            .into();
        let header_pairs: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
            .collect();
        let uri = request.uri().to_string();
        let method = request.method().as_str().to_owned();
        let signable = SignableRequest::new(&method, &uri, header_pairs.into_iter(), body)
            .map_err(|e| ForwardError::Signing(e.to_string()))?;
        let (instructions, signature) = sign(signable, &params)
            .map_err(|e| ForwardError::Signing(e.to_string()))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok((signature, credentials))
    }
}
