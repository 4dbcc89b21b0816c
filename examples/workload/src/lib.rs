//! For the local demo and tests only: an HTTP client for the AWS SDK whose connections leave
//! from a chosen loopback address, standing in for a pod's IP (the gateway knows callers by
//! their IP). In a cluster a pod's connections come from its own IP and nothing here is needed.
#![forbid(unsafe_code)]

use std::net::IpAddr;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;

/// Plain-HTTP connections from `source` (the local gateway speaks HTTP on loopback).
#[derive(Clone, Debug)]
struct FromAddress {
    client: Client<TcpConnector, SdkBody>,
}

impl HttpConnector for FromAddress {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let response = client
                .request(request)
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

impl HttpClient for FromAddress {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// An SDK HTTP client whose connections come from `source`.
pub fn http_client_from(source: IpAddr) -> SharedHttpClient {
    SharedHttpClient::new(FromAddress {
        client: Client::builder(TokioExecutor::new()).build(tcp_from(source)),
    })
}

/// Like [`http_client_from`], speaking HTTP/2 with prior knowledge (h2c), as a bidirectional
/// stream (InvokeModelWithBidirectionalStream) needs: HTTP/1.1 cannot carry one to Bedrock.
pub fn http2_client_from(source: IpAddr) -> SharedHttpClient {
    SharedHttpClient::new(FromAddress {
        client: Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(tcp_from(source)),
    })
}

fn tcp_from(source: IpAddr) -> TcpConnector {
    let mut tcp = TcpConnector::new();
    tcp.set_local_address(Some(source));
    tcp.set_nodelay(true);
    tcp
}
