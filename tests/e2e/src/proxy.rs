//! A loopback TCP proxy for fault tests: put it between an aigov process and a real server (the
//! kube-apiserver, the ledger) and make that server look frozen or gone, without touching it.
//!
//! It forwards raw bytes, so TLS passes through end to end (the client still verifies the
//! server's certificate, which must cover 127.0.0.1: the local environment's apiserver
//! certificate does). [`Proxy::freeze`] stops forwarding in both directions and stops reading,
//! keeping every connection open and accepting new ones that get nothing, as a server that hangs
//! does (kernel buffers fill, then writers block); [`Proxy::cut`] closes every connection and
//! closes new ones at once, as a server that went away or a partition with resets;
//! [`Proxy::restore`] forwards again (frozen connections resume where they stopped, bytes
//! held during the freeze included). The proxy runs on a thread and runtime of its own, so a
//! test that blocks its own runtime (a `std::thread::sleep`) does not freeze it by accident.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with bytes and connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Forward,
    /// Forward nothing, read nothing, close nothing.
    Frozen,
    /// Close every connection, and each new one as soon as it is accepted.
    Cut,
    /// The proxy is stopping.
    Stopped,
}

/// A running proxy from a loopback port to `upstream`; stopped when dropped.
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    open: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        std_listener.set_nonblocking(true).expect("non-blocking");
        let addr = std_listener.local_addr().expect("its address");
        let (mode, watched) = watch::channel(Mode::Forward);
        let open = Arc::new(AtomicUsize::new(0));
        let counted = open.clone();
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the proxy's runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("a tokio listener");
                    accept_loop(listener, upstream, watched, counted).await;
                });
            })
            .expect("the proxy's thread");
        Proxy {
            addr,
            upstream,
            mode,
            open,
            thread: Some(thread),
        }
    }

    /// Where clients connect (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Connections open through the proxy now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Stops forwarding both ways, keeping connections open (a server that hangs).
    pub fn freeze(&self) {
        self.set(Mode::Frozen);
    }

    /// Closes every connection and each new one (a server gone, a partition with resets).
    pub fn cut(&self) {
        self.set(Mode::Cut);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.set(Mode::Forward);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Stopped);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    open: Arc<AtomicUsize>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = until(&mut mode, |m| *m == Mode::Stopped) => return,
        };
        let Ok((client, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if *mode.borrow() == Mode::Cut {
            drop(client);
            continue;
        }
        let (mode, open) = (mode.clone(), open.clone());
        tokio::spawn(async move {
            open.fetch_add(1, Ordering::SeqCst);
            connection(client, upstream, mode).await;
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// One client connection: waits while frozen, then connects upstream and pumps both ways until
/// both sides are done or the proxy cuts.
async fn connection(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    if !forwarding(&mut mode).await {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, mode.clone()),
        pump(server_read, client_write, mode),
    );
}

/// Waits until the proxy forwards: true, or false when it cuts or stops.
async fn forwarding(mode: &mut watch::Receiver<Mode>) -> bool {
    let now = mode.wait_for(|m| *m != Mode::Frozen).await.map(|m| *m);
    matches!(now, Ok(Mode::Forward))
}

/// Resolves once the mode is one `wanted` accepts (or the proxy is gone).
async fn until(mode: &mut watch::Receiver<Mode>, wanted: impl FnMut(&Mode) -> bool) {
    let _ = mode.wait_for(wanted).await.map(|m| *m);
}

/// Copies `from` to `to` while the proxy forwards; holds still while it is frozen (reading
/// nothing, so the sender's buffers fill); returns when `from` ends or the proxy cuts.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if !forwarding(&mut mode).await {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            },
            // Frozen or cut while waiting for bytes: look again.
            () = until(&mut mode, |m| *m != Mode::Forward) => continue,
        };
        // Bytes read just as a freeze began are held until it ends.
        if !forwarding(&mut mode).await {
            return;
        }
        tokio::select! {
            written = to.write_all(&buf[..n]) => if written.is_err() { return },
            () = until(&mut mode, |m| matches!(m, Mode::Cut | Mode::Stopped)) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};

    /// A loopback echo server (blocking, a thread per connection): what it reads, it writes.
    fn echo_server() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn connect(proxy: &Proxy) -> std::net::TcpStream {
        let stream = std::net::TcpStream::connect(proxy.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        stream
    }

    /// Sends `text` and reads the echo, or the error kind that ended the read.
    fn round_trip(stream: &mut std::net::TcpStream, text: &[u8]) -> Result<Vec<u8>, ErrorKind> {
        stream.write_all(text).map_err(|e| e.kind())?;
        let mut got = vec![0u8; text.len()];
        let mut n = 0;
        while n < got.len() {
            match stream.read(&mut got[n..]) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof),
                Ok(k) => n += k,
                Err(e) => return Err(e.kind()),
            }
        }
        Ok(got)
    }

    fn timed_out(kind: ErrorKind) -> bool {
        matches!(kind, ErrorKind::WouldBlock | ErrorKind::TimedOut)
    }

    #[test]
    fn bytes_pass_both_ways_while_forwarding() {
        let proxy = Proxy::start(echo_server());
        let mut stream = connect(&proxy);
        assert_eq!(
            round_trip(&mut stream, b"hello").as_deref(),
            Ok(&b"hello"[..])
        );
        assert_eq!(proxy.open_connections(), 1);
    }

    #[test]
    fn a_frozen_proxy_keeps_connections_open_forwards_nothing_and_resumes_on_restore() {
        let proxy = Proxy::start(echo_server());
        let mut stream = connect(&proxy);
        assert_eq!(round_trip(&mut stream, b"one").as_deref(), Ok(&b"one"[..]));
        proxy.freeze();
        std::thread::sleep(Duration::from_millis(50));
        let frozen = round_trip(&mut stream, b"two");
        assert!(
            frozen.as_ref().is_err_and(|k| timed_out(*k)),
            "nothing comes back while frozen: {frozen:?}"
        );
        // A new connection is accepted, and gets nothing either.
        let mut late = connect(&proxy);
        let nothing = round_trip(&mut late, b"late");
        assert!(
            nothing.as_ref().is_err_and(|k| timed_out(*k)),
            "{nothing:?}"
        );
        proxy.restore();
        // What was sent during the freeze arrives now, on both connections.
        let mut held = [0u8; 3];
        stream.read_exact(&mut held).expect("the held bytes");
        assert_eq!(&held, b"two");
        let mut held = [0u8; 4];
        late.read_exact(&mut held).expect("the held bytes");
        assert_eq!(&held, b"late");
        assert_eq!(
            round_trip(&mut stream, b"three").as_deref(),
            Ok(&b"three"[..])
        );
    }

    #[test]
    fn a_cut_proxy_closes_every_connection_and_each_new_one_until_restored() {
        let proxy = Proxy::start(echo_server());
        let mut stream = connect(&proxy);
        assert_eq!(round_trip(&mut stream, b"one").as_deref(), Ok(&b"one"[..]));
        proxy.cut();
        let cut = round_trip(&mut stream, b"two");
        assert!(
            cut.as_ref().is_err_and(|k| !timed_out(*k)),
            "the open connection is closed, not silent: {cut:?}"
        );
        let mut refused = connect(&proxy);
        let closed = round_trip(&mut refused, b"x");
        assert!(closed.as_ref().is_err_and(|k| !timed_out(*k)), "{closed:?}");
        proxy.restore();
        let mut fresh = connect(&proxy);
        assert_eq!(round_trip(&mut fresh, b"back").as_deref(), Ok(&b"back"[..]));
    }

    #[test]
    fn a_frozen_proxy_that_is_cut_closes_its_held_connections() {
        let proxy = Proxy::start(echo_server());
        let mut stream = connect(&proxy);
        assert_eq!(round_trip(&mut stream, b"one").as_deref(), Ok(&b"one"[..]));
        proxy.freeze();
        std::thread::sleep(Duration::from_millis(50));
        proxy.cut();
        let cut = round_trip(&mut stream, b"two");
        assert!(cut.as_ref().is_err_and(|k| !timed_out(*k)), "{cut:?}");
    }
}
