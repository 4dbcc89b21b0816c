//! Command-line settings every aigov process has, flattened into each binary's own flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use aigov_ledger::clock::Clock;

/// Flags shared by the gateway and the controller; each also reads an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct CommonArgs {
    /// This replica's name (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "AIGOV_METRICS_LISTEN", default_value = "127.0.0.1:9090")]
    pub metrics_listen: SocketAddr,
    /// Watch only this namespace (budgets, pods; the lease namespace is separate); unset: all.
    #[arg(long, env = "AIGOV_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Testing only: a file holding "<target time> <written at>" shifts this process's clock.
    #[arg(long, env = "AIGOV_CLOCK_FILE")]
    pub clock_file: Option<PathBuf>,
}

impl CommonArgs {
    /// This replica's identity: `--identity`, or one made from the process ID.
    pub fn identity(&self) -> String {
        self.identity
            .clone()
            .unwrap_or_else(|| format!("aigov-{}", std::process::id()))
    }

    /// The clock: the system's, or shifted by `--clock-file`.
    pub fn clock(&self) -> Clock {
        self.clock_file
            .clone()
            .map_or_else(Clock::system, Clock::from_file)
    }
}

/// Parses `250ms`, `2s`, `1m30s`, `1h` (jiff's friendly duration format); zero is refused.
pub fn duration(text: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration such as 250ms, 2s or 1m30s: {e}"))?;
    Duration::try_from(parsed)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?}: a duration must be positive"))
}

/// A process-unique value for identities and request-ID prefixes (nanoseconds since the epoch).
pub fn nonce() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

/// What every aigov process does first: logging, the TLS crypto provider (aws-lc-rs, which
/// kube and the AWS SDK share), and the SIGTERM/SIGINT handlers, installed before anything
/// else so a stop asked for during start-up is not lost. Returns the stop signal to wait on.
pub fn prepare_process() -> std::io::Result<impl Future<Output = crate::shutdown::StopSignal>> {
    init_tracing();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    crate::shutdown::stop_signal()
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info, quiet libraries).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_runtime=warn,tower=warn,hyper=warn".into()),
        )
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them_and_zero_is_refused() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(duration("0s").unwrap_err().contains("must be positive"));
        assert!(duration("soon").unwrap_err().contains("not a duration"));
    }
}
