//! A Slack-compatible webhook receiver on loopback that keeps every body posted to it, with
//! the alert IDs aigov sends in `X-Aigov-Alert-Ids`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// A running receiver.
pub struct Receiver {
    /// Its URL.
    pub url: String,
    bodies: Arc<Mutex<Vec<Posted>>>,
    task: tokio::task::JoinHandle<()>,
}

/// One POST the receiver answered.
#[derive(Clone, Debug)]
pub struct Posted {
    /// The `X-Aigov-Alert-Ids` header (comma-separated), empty if absent.
    pub ids: String,
    /// The body.
    pub body: String,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Receiver {
    /// Starts a receiver on a free port (inside a tokio runtime).
    pub async fn start() -> Receiver {
        Receiver::start_on(0).await
    }

    /// Starts a receiver on `127.0.0.1:port` (a channel that was refusing connections comes
    /// back).
    pub async fn start_on(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        let url = format!(
            "http://{}/hooks/aigov",
            listener.local_addr().expect("addr")
        );
        let bodies: Arc<Mutex<Vec<Posted>>> = Arc::default();
        let kept = bodies.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let kept = kept.clone();
                            async move {
                                let ids = request
                                    .headers()
                                    .get("x-aigov-alert-ids")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                let body = request
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let body = String::from_utf8_lossy(&body).into_owned();
                                let at = std::time::Instant::now();
                                kept.lock().expect("lock").push(Posted { ids, body, at });
                                Ok::<_, Infallible>(http::Response::new(Full::new(
                                    Bytes::from_static(b"ok"),
                                )))
                            }
                        });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { url, bodies, task }
    }

    /// Every body received so far.
    pub fn bodies(&self) -> Vec<String> {
        self.posted().into_iter().map(|p| p.body).collect()
    }

    /// Every POST received so far.
    pub fn posted(&self) -> Vec<Posted> {
        self.bodies.lock().expect("lock").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
