//! go-plugin's side of the process: the magic-cookie check, protocol negotiation, the listener
//! (AutoMTLS, or plaintext in `--debug` mode), the handshake line Terraform reads from stdout, and
//! the services go-plugin expects beside the provider (health, stdio, controller, broker).

use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::Server;
use tonic::{Request, Response, Status, Streaming};

use crate::Error;
use crate::proto::plugin as gp;
use crate::proto::tfplugin6::provider_server::ProviderServer;
use crate::server::AigovProvider;
use crate::tls::AutoMtls;

/// The magic cookie Terraform and OpenTofu set for their providers.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
/// Its value.
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// The plugin protocol version served.
pub const PROTOCOL_VERSION: u32 = 6;
/// Message size limit both ways: large schemas and states exceed gRPC's 4 MiB default.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// The provider addresses printed for `TF_REATTACH_PROVIDERS`.
pub const ADDRESSES: [&str; 2] = [
    "registry.terraform.io/aigov/aigov",
    "registry.opentofu.org/aigov/aigov",
];

/// True when Terraform or OpenTofu started this process.
pub fn started_by_terraform() -> bool {
    std::env::var(MAGIC_COOKIE_KEY).is_ok_and(|v| v == MAGIC_COOKIE_VALUE)
}

/// Checks that the client speaks protocol 6 (`PLUGIN_PROTOCOL_VERSIONS` lists what it supports).
pub fn negotiate() -> Result<(), Error> {
    match std::env::var("PLUGIN_PROTOCOL_VERSIONS") {
        Ok(list)
            if !list
                .split(',')
                .any(|v| v.trim() == PROTOCOL_VERSION.to_string()) =>
        {
            Err(Error::Transport(format!(
                "this provider speaks plugin protocol {PROTOCOL_VERSION}; the client offers {list} (use Terraform 1.0+ or OpenTofu)"
            )))
        }
        _ => Ok(()),
    }
}

/// Serves the provider until Terraform shuts it down. `debug` serves plaintext and prints a
/// `TF_REATTACH_PROVIDERS` value instead of the handshake line.
pub async fn serve(debug: bool) -> Result<(), Error> {
    let listener = bind().await?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Transport(e.to_string()))?;
    let tls = match std::env::var("PLUGIN_CLIENT_CERT") {
        Ok(pem) if !debug => Some(AutoMtls::new(&pem)?),
        _ => None,
    };
    if debug {
        print_reattach(addr);
    } else {
        ignore_interrupts()?;
        let announced_cert = tls
            .as_ref()
            .map(|t| {
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(t.server_cert.as_ref())
            })
            .unwrap_or_default();
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "1|{PROTOCOL_VERSION}|tcp|{addr}|grpc|{announced_cert}"
        )
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::Transport(format!("writing the handshake: {e}")))?;
    }

    let shutdown = Arc::new(Notify::new());
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let provider = ProviderServer::new(AigovProvider::default())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let router = Server::builder()
        .add_service(provider)
        .add_service(health)
        .add_service(gp::grpc_stdio_server::GrpcStdioServer::new(Stdio))
        .add_service(gp::grpc_controller_server::GrpcControllerServer::new(
            Controller {
                shutdown: shutdown.clone(),
            },
        ))
        .add_service(gp::grpc_broker_server::GrpcBrokerServer::new(Broker));
    let stopped = async move { shutdown.notified().await };
    let served = match tls {
        Some(tls) => {
            let (incoming_tx, incoming_rx) = mpsc::channel(16);
            tokio::spawn(accept_tls(listener, tls.config.into(), incoming_tx));
            router
                .serve_with_incoming_shutdown(ReceiverStream::new(incoming_rx), stopped)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped)
                .await
        }
    };
    served.map_err(|e| Error::Transport(e.to_string()))
}

/// A loopback listener, within `PLUGIN_MIN_PORT`..`PLUGIN_MAX_PORT` when the client sets them.
async fn bind() -> Result<TcpListener, Error> {
    let port = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u16>().ok());
    let failed = |e: std::io::Error| Error::Transport(format!("listening on 127.0.0.1: {e}"));
    match (port("PLUGIN_MIN_PORT"), port("PLUGIN_MAX_PORT")) {
        (Some(min), Some(max)) if min <= max && min > 0 => {
            for p in min..=max {
                if let Ok(l) = TcpListener::bind(("127.0.0.1", p)).await {
                    return Ok(l);
                }
            }
            Err(Error::Transport(format!(
                "no free port between {min} and {max}"
            )))
        }
        _ => TcpListener::bind("127.0.0.1:0").await.map_err(failed),
    }
}

/// Accepts connections, completing each TLS handshake on its own task so a slow or hostile
/// client cannot hold up the others; a connection without Terraform's certificate is dropped.
async fn accept_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    incoming: mpsc::Sender<Result<TlsStream<TcpStream>, std::io::Error>>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let incoming = incoming.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor.accept(tcp).await {
                Ok(tls) => {
                    let _ = incoming.send(Ok(tls)).await;
                }
                Err(e) => tracing::warn!("refused a plugin connection: {e}"),
            }
        });
    }
}

/// Terraform stops providers with StopProvider and then Shutdown; an interrupt from the terminal
/// (Ctrl-C reaches the whole process group) must not kill the provider mid-apply.
fn ignore_interrupts() -> Result<(), Error> {
    let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::Transport(format!("installing the SIGINT handler: {e}")))?;
    tokio::spawn(async move { while interrupts.recv().await.is_some() {} });
    Ok(())
}

fn print_reattach(addr: SocketAddr) {
    let entry = serde_json::json!({
        "Protocol": "grpc",
        "ProtocolVersion": PROTOCOL_VERSION,
        "Pid": std::process::id(),
        "Test": true,
        "Addr": {"Network": "tcp", "String": addr.to_string()},
    });
    let all: serde_json::Map<String, serde_json::Value> = ADDRESSES
        .iter()
        .map(|a| ((*a).to_owned(), entry.clone()))
        .collect();
    println!(
        "Provider started. To attach Terraform or OpenTofu, set TF_REATTACH_PROVIDERS in their environment:\n\n\tTF_REATTACH_PROVIDERS='{}'\n\nStop the provider with Ctrl-C.",
        serde_json::Value::Object(all)
    );
}

/// go-plugin's stdio service: the provider logs to stderr, which go-plugin already captures, so
/// the stream stays open and carries nothing.
struct Stdio;

#[tonic::async_trait]
impl gp::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = Pin<Box<dyn Stream<Item = Result<gp::StdioData, Status>> + Send>>;

    async fn stream_stdio(
        &self,
        _: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}

/// go-plugin's controller service: `Shutdown` ends the server gracefully.
struct Controller {
    shutdown: Arc<Notify>,
}

#[tonic::async_trait]
impl gp::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<gp::Empty>) -> Result<Response<gp::Empty>, Status> {
        self.shutdown.notify_one();
        Ok(Response::new(gp::Empty {}))
    }
}

/// go-plugin's broker: providers open no extra connections, so the stream only stays open.
struct Broker;

#[tonic::async_trait]
impl gp::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = Pin<Box<dyn Stream<Item = Result<gp::ConnInfo, Status>> + Send>>;

    async fn start_stream(
        &self,
        request: Request<Streaming<gp::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut inbound = request.into_inner();
        tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}
