//! The gateway's listener: HTTP/1.1 and h2c (HTTP/2 over cleartext with prior knowledge, as
//! the AWS SDK for JavaScript v3 speaks to an `http://` endpoint by default) on the same port,
//! served by hyper until a stop is asked for, then a graceful stop: no new connection is
//! accepted, idle connections are closed (HTTP/2 ones with a GOAWAY), and calls (streams
//! included) in flight run to their end within the grace period.
//!
//! The protocol is told from the connection's first bytes, peeked under the header read
//! timeout, rather than by hyper-util's `auto::Builder`: its version sniffing waits for those
//! bytes with no deadline, so a client that connects and says nothing would hold a connection
//! open for ever, where HTTP/1.1 alone closed it after [`HEADER_READ_TIMEOUT`].
//!
//! Holding is bounded both ways: an HTTP/1.1 connection waits at most [`HEADER_READ_TIMEOUT`]
//! for the next request's headers (idle keep-alive included, hyper's timer starts again after
//! each response), and a write to any connection that makes no progress for the gateway's
//! write timeout (`--response-write-timeout`: a client that stopped reading a response, streamed
//! or whole) fails the connection, which cuts every call on it. A stream stalled alone on an
//! HTTP/2 connection (its flow-control window shut) is cut by the stream's own stall watch in
//! [`crate::settle`]. An idle HTTP/2 connection holds no call and is only pinged.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_io_timeout::TimeoutStream;

use crate::Gateway;

/// How long the listener pauses after a failed `accept` (out of file descriptors, say).
pub const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long a client may take to send a request's headers (and, on a new connection, the
/// bytes that say which protocol it speaks).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an HTTP/2 connection is pinged, so a peer that vanished is noticed.
pub const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long an HTTP/2 ping may go unanswered before the connection is closed.
pub const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// The HTTP/2 connection preface a prior-knowledge client opens with (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long to wait before peeking again at a connection that sent part of the preface.
const PREFACE_REPEEK_PAUSE: Duration = Duration::from_millis(5);

/// How a graceful stop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished within the grace period.
    Finished,
    /// The grace period ran out with connections still open (they are cut).
    GraceExpired,
}

/// The protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.x.
    Http1,
    /// HTTP/2 over cleartext with prior knowledge.
    H2c,
}

/// Serves `gateway` on `listener` until `stop` resolves, then stops gracefully within `grace`.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    stop: impl Future<Output = ()>,
    grace: Duration,
) -> Drained {
    let graceful = GracefulShutdown::new();
    // Tells connections still being sniffed (not yet watched by `graceful`) to give up.
    let (stopping, stopped) = watch::channel(false);
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
        // Subscribed now, so the stop counts this connection even while it is sniffed.
        let watcher = graceful.watcher();
        tokio::spawn(accepted(
            stream,
            peer,
            gateway.clone(),
            watcher,
            stopped.clone(),
        ));
    }
    drop(listener);
    let _ = stopping.send(true);
    tracing::info!(
        ?grace,
        "gateway stopping: no new connections, finishing calls in flight"
    );
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => Drained::Finished,
        Err(_) => Drained::GraceExpired,
    }
}

/// Tells the protocol of a connection from `peer`, then serves it under `watcher`; a client
/// that does not say within [`HEADER_READ_TIMEOUT`], or a stop asked for first, closes it.
async fn accepted(
    stream: TcpStream,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
    watcher: Watcher,
    mut stopped: watch::Receiver<bool>,
) {
    let protocol = tokio::select! {
        sniffed = tokio::time::timeout(HEADER_READ_TIMEOUT, sniff(&stream)) => match sniffed {
            Ok(Ok(Some(protocol))) => protocol,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, %peer, "connection");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "connection: no request within the header read timeout");
                return;
            }
        },
        _ = stopped.wait_for(|stopping| *stopping) => return,
    };
    tracing::debug!(%peer, ?protocol, "connection");
    let served = match protocol {
        Protocol::Http1 => watcher.watch(http1_connection(stream, peer, gateway)).await,
        Protocol::H2c => watcher.watch(h2_connection(stream, peer, gateway)).await,
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, %peer, "connection");
    }
}

/// The protocol the client opened with, from the bytes waiting on `stream` (peeked, so the
/// connection's server reads them again); `None` when it closed before saying.
async fn sniff(stream: &TcpStream) -> std::io::Result<Option<Protocol>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        match classify(&buf[..n]) {
            Some(protocol) => return Ok(Some(protocol)),
            None if n == 0 => return Ok(None),
            // Part of the preface: peeking again at once would spin on the same bytes.
            None => tokio::time::sleep(PREFACE_REPEEK_PAUSE).await,
        }
    }
}

/// The protocol `start` (a connection's first bytes) opens, or `None` while `start` is empty
/// or a strict beginning of the HTTP/2 preface.
pub fn classify(start: &[u8]) -> Option<Protocol> {
    let n = start.len().min(H2_PREFACE.len());
    if start[..n] != H2_PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == H2_PREFACE.len() {
        Some(Protocol::H2c)
    } else {
        None
    }
}

/// The gateway as a hyper service for calls from `peer` (a macro: the service's type is
/// unnameable, and both protocols' builders take it by value).
macro_rules! service {
    ($peer:expr, $gateway:expr) => {{
        let (peer, gateway): (SocketAddr, Arc<Gateway>) = ($peer, $gateway);
        service_fn(move |request| {
            let gateway = gateway.clone();
            async move { Ok::<_, Infallible>(gateway.handle(peer.ip(), request).await) }
        })
    }};
}

/// A connection whose writes must progress: one that stays blocked for `timeout` (the client
/// reads nothing) fails with `TimedOut`, and hyper closes the connection.
type Bounded = TokioIo<Pin<Box<TimeoutStream<TcpStream>>>>;

fn bounded_writes(stream: TcpStream, timeout: Duration) -> Bounded {
    let mut io = TimeoutStream::new(stream);
    io.set_write_timeout(Some(timeout));
    TokioIo::new(Box::pin(io))
}

/// One HTTP/1.1 connection from `peer`: headers within [`HEADER_READ_TIMEOUT`] (idle
/// keep-alive included), at most 1 MiB buffered, writes bounded by the write timeout.
fn http1_connection(
    stream: TcpStream,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> {
    let io = bounded_writes(stream, gateway.config.write_timeout);
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(1 << 20)
        .serve_connection(io, service!(peer, gateway))
}

/// One h2c connection from `peer`, with hyper's HTTP/2 limits (16 KiB of headers, 200
/// concurrent streams, bounded reset streams), pings that close it when the peer is gone, and
/// writes bounded by the write timeout.
fn h2_connection(
    stream: TcpStream,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
) -> impl hyper_util::server::graceful::GracefulConnection<Error = hyper::Error> {
    let io = bounded_writes(stream, gateway.config.write_timeout);
    http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
        .serve_connection(io, service!(peer, gateway))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_h2_preface_is_h2c_and_anything_else_is_http1() {
        assert_eq!(classify(H2_PREFACE), Some(Protocol::H2c));
        let mut more = H2_PREFACE.to_vec();
        more.extend_from_slice(b"\0\0\0\x04");
        assert_eq!(classify(&more), Some(Protocol::H2c));
        assert_eq!(
            classify(b"POST /model/x/converse HTTP/1.1\r\n"),
            Some(Protocol::Http1)
        );
        // "PRI" is a method name too: only the whole preface is HTTP/2.
        assert_eq!(classify(b"PRI / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"P"), None);
        assert_eq!(classify(&H2_PREFACE[..23]), None);
        assert_eq!(classify(b""), None);
    }

    /// A connected pair: the client's end and the server's.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"));
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.expect("connect"), accepted.expect("accept").0)
    }

    #[tokio::test]
    async fn sniffing_waits_for_the_whole_preface_and_consumes_nothing() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, mut server) = pair().await;
        // Silence is no answer: the caller's header read timeout is what ends it.
        let silent = tokio::time::timeout(Duration::from_millis(100), sniff(&server)).await;
        assert!(silent.is_err(), "{silent:?}");
        client.write_all(&H2_PREFACE[..10]).await.expect("write");
        let partial = tokio::time::timeout(Duration::from_millis(100), sniff(&server)).await;
        assert!(partial.is_err(), "{partial:?}");
        client.write_all(&H2_PREFACE[10..]).await.expect("write");
        assert_eq!(sniff(&server).await.expect("peek"), Some(Protocol::H2c));
        let mut read = [0u8; 24];
        server
            .read_exact(&mut read)
            .await
            .expect("the preface is still there");
        assert_eq!(&read, H2_PREFACE);

        let (mut client, server) = pair().await;
        client
            .write_all(b"GET /ping HTTP/1.1\r\n")
            .await
            .expect("write");
        assert_eq!(sniff(&server).await.expect("peek"), Some(Protocol::Http1));
        let (client, server) = pair().await;
        drop(client);
        assert_eq!(sniff(&server).await.expect("peek"), None);
    }

    #[tokio::test]
    async fn a_write_to_a_client_that_reads_nothing_fails_after_the_write_timeout() {
        use tokio::io::AsyncWriteExt;
        let (_client, server) = pair().await;
        let timeout = Duration::from_millis(200);
        let mut io = bounded_writes(server, timeout).into_inner();
        let chunk = vec![0u8; 1 << 20];
        let started = tokio::time::Instant::now();
        // The client reads nothing: the socket's buffers fill, then a write blocks.
        let error = loop {
            if let Err(e) = io.write_all(&chunk).await {
                break e;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never blocked");
        };
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
        assert!(started.elapsed() >= timeout);
    }

    /// A gateway with no pods, no budgets and no controller: every call is refused, which is
    /// all a listener test needs (an answer).
    fn gateway() -> Arc<Gateway> {
        let cluster = crate::cluster::ClusterView::synced_empty();
        crate::testing::gateway(crate::UnknownCallers::Refuse, cluster).0
    }

    /// A call the gateway answers with a 404 (no such operation), over `version`.
    fn request(version: http::Version) -> http::Request<String> {
        http::Request::post("http://gateway/no-such-operation")
            .version(version)
            .body(String::from("{}"))
            .expect("request")
    }

    #[tokio::test]
    async fn http1_and_h2c_share_the_port_and_a_stop_closes_idle_and_silent_connections() {
        use hyper::client::conn::{http1 as client1, http2 as client2};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve(
            listener,
            gateway(),
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(10),
        ));
        let io = || async { TokioIo::new(TcpStream::connect(addr).await.expect("connect")) };

        let (mut h2, h2_conn) = client2::handshake(TokioExecutor::new(), io().await)
            .await
            .expect("h2c prior knowledge");
        let h2_conn = tokio::spawn(h2_conn);
        let (mut h1, h1_conn) = client1::handshake(io().await).await.expect("http/1.1");
        let h1_conn = tokio::spawn(h1_conn);
        let answer = h2.send_request(request(http::Version::HTTP_2)).await;
        assert_eq!(answer.expect("an h2 answer").status(), 404);
        let answer = h1.send_request(request(http::Version::HTTP_11)).await;
        assert_eq!(answer.expect("an http/1.1 answer").status(), 404);
        // Connected, never a byte: a stop does not wait for it.
        let _silent = TcpStream::connect(addr).await.expect("connect");

        let started = tokio::time::Instant::now();
        stop.send(()).expect("serving");
        assert_eq!(served.await.expect("served"), Drained::Finished);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // The idle connections were closed by the gateway (HTTP/2 with a GOAWAY).
        h2_conn.await.expect("joined").expect("h2 closed cleanly");
        h1_conn
            .await
            .expect("joined")
            .expect("http/1.1 closed cleanly");
    }
}
