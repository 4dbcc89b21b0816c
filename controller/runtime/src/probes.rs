//! The probe endpoint: `/metrics` (Prometheus text exposition of one registry), `/healthz`
//! (200 while the process runs) and `/readyz` (200 once every readiness condition holds, 503
//! naming the ones that do not).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// How long the endpoint pauses after a failed `accept` (out of file descriptors, say) before
/// trying again, so a persistent failure does not spin a core.
pub const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Readiness made of named conditions: ready when every condition holds. A role registers
/// what it waits for (the gateway: caches synced; the controller: leading), so one process
/// running both roles is ready only when both are.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    conditions: Arc<Mutex<Conditions>>,
}

/// Each condition's name and whether it holds.
type Conditions = Vec<(&'static str, Arc<AtomicBool>)>;

/// One readiness condition; false until [`ReadyFlag::set`] says otherwise.
#[derive(Clone, Debug)]
pub struct ReadyFlag(Arc<AtomicBool>);

impl ReadyFlag {
    /// Sets whether this condition holds.
    pub fn set(&self, holds: bool) {
        self.0.store(holds, Ordering::Release);
    }
}

impl Readiness {
    /// Registers a condition named `name` (shown by `/readyz` while it does not hold).
    pub fn condition(&self, name: &'static str) -> ReadyFlag {
        let flag = Arc::new(AtomicBool::new(false));
        self.lock().push((name, flag.clone()));
        ReadyFlag(flag)
    }

    /// The conditions that do not hold; empty when ready. No condition at all is not ready.
    pub fn waiting_on(&self) -> Vec<&'static str> {
        let conditions = self.lock();
        if conditions.is_empty() {
            return vec!["nothing registered"];
        }
        conditions
            .iter()
            .filter(|(_, flag)| !flag.load(Ordering::Acquire))
            .map(|(name, _)| *name)
            .collect()
    }

    /// True when every condition holds.
    pub fn is_ready(&self) -> bool {
        self.waiting_on().is_empty()
    }

    /// Marks every condition as not holding: the process is stopping or a task failed.
    pub fn withdraw(&self) {
        for (_, flag) in self.lock().iter() {
            flag.store(false, Ordering::Release);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Conditions> {
        self.conditions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The answer to one probe request.
fn answer(path: &str, registry: &Registry, readiness: &Readiness) -> (StatusCode, String) {
    match path {
        "/metrics" => {
            let mut out = String::new();
            let _ = prometheus_client::encoding::text::encode(&mut out, registry);
            (StatusCode::OK, out)
        }
        "/healthz" => (StatusCode::OK, "ok\n".to_owned()),
        "/readyz" => match readiness.waiting_on() {
            waiting if waiting.is_empty() => (StatusCode::OK, "ready\n".to_owned()),
            waiting => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {}\n", waiting.join(", ")),
            ),
        },
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    }
}

/// Serves the probe endpoint on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, readiness: Readiness) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "probe endpoint: accept failed");
                tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                continue;
            }
        };
        let (registry, readiness) = (registry.clone(), readiness.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let (status, body) = answer(request.uri().path(), &registry, &readiness);
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_ready_only_when_every_condition_holds() {
        let readiness = Readiness::default();
        assert!(!readiness.is_ready(), "nothing registered is not ready");
        let synced = readiness.condition("caches synced");
        let leading = readiness.condition("leading");
        synced.set(true);
        assert_eq!(readiness.waiting_on(), vec!["leading"]);
        leading.set(true);
        assert!(readiness.is_ready());
        readiness.withdraw();
        assert_eq!(readiness.waiting_on(), vec!["caches synced", "leading"]);
    }

    #[test]
    fn readyz_names_what_it_waits_for() {
        let readiness = Readiness::default();
        let _synced = readiness.condition("caches synced");
        let (status, body) = answer("/readyz", &Registry::default(), &readiness);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "not ready: caches synced\n");
        assert_eq!(
            answer("/healthz", &Registry::default(), &readiness).0,
            StatusCode::OK
        );
    }
}
