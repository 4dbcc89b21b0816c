//! The gateway's listener: HTTP/1.1 connections served by hyper until a stop is asked for,
//! then a graceful stop: no new connection is accepted, idle keep-alive connections are
//! closed, and calls (streams included) in flight run to their end within the grace period.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::Gateway;

/// How long the listener pauses after a failed `accept` (out of file descriptors, say).
pub const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long a client may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How a graceful stop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished within the grace period.
    Finished,
    /// The grace period ran out with connections still open (they are cut).
    GraceExpired,
}

/// Serves `gateway` on `listener` until `stop` resolves, then stops gracefully within `grace`.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    stop: impl Future<Output = ()>,
    grace: Duration,
) -> Drained {
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    tracing::warn!(error = %e, "gateway: accept failed");
                    tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let watched = graceful.watch(connection(stream, peer, gateway.clone()));
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(error = %e, %peer, "connection");
            }
        });
    }
    drop(listener);
    tracing::info!(
        ?grace,
        "gateway stopping: no new connections, finishing calls in flight"
    );
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => Drained::Finished,
        Err(_) => Drained::GraceExpired,
    }
}

/// One HTTP/1.1 connection from `peer`.
fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> {
    let service = service_fn(move |request| {
        let gateway = gateway.clone();
        async move { Ok::<_, Infallible>(gateway.handle(peer.ip(), request).await) }
    });
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(1 << 20)
        .serve_connection(TokioIo::new(stream), service)
}
