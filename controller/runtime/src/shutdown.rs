//! Stopping on SIGTERM (what a kubelet sends on every rolling update) and SIGINT (Ctrl-C), so
//! each role can stop gracefully: finish what is in flight, hand over what it holds, then exit.

/// The signal that asked the process to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM: the kubelet (or `kill`) stops the pod.
    Terminate,
    /// SIGINT: Ctrl-C.
    Interrupt,
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopSignal::Terminate => "SIGTERM",
            StopSignal::Interrupt => "SIGINT",
        })
    }
}

/// Resolves when SIGTERM or SIGINT arrives. Installing the handlers at once (call this early
/// and keep the future) means a signal that arrives during start-up is not lost.
pub fn stop_signal() -> std::io::Result<impl Future<Output = StopSignal>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => StopSignal::Terminate,
            _ = interrupt.recv() => StopSignal::Interrupt,
        }
    })
}
