//! Supervised background tasks: every long-running task of a process is spawned here under a
//! name, so that one that fails, panics or ends when it should run for ever is noticed at once
//! (the process withdraws readiness, logs the task and the reason, and exits) instead of
//! leaving a process that looks alive and does half its job.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;

use tokio::task::{Id, JoinSet};

use crate::probes::Readiness;
use crate::shutdown::StopSignal;

/// A supervised task that stopped.
#[derive(Debug, thiserror::Error)]
#[error("task {task} stopped: {reason}")]
pub struct TaskFailed {
    /// The task's name.
    pub task: &'static str,
    /// Why: its error, its panic, or that it ended.
    pub reason: String,
}

/// The tasks of one process.
#[derive(Default)]
pub struct Supervisor {
    tasks: JoinSet<Result<(), String>>,
    names: HashMap<Id, &'static str>,
}

impl Supervisor {
    /// Spawns `task`, which runs until the process stops; returning at all (even `Ok`) is a
    /// failure of the process.
    pub fn spawn<F, E>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        let handle = self.tasks.spawn(async move {
            match task.await {
                Ok(()) => Err("it ended".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        });
        self.names.insert(handle.id(), name);
    }

    /// Spawns a task that returns nothing and runs until the process stops.
    pub fn spawn_forever<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, async move {
            task.await;
            Ok::<(), std::convert::Infallible>(())
        });
    }

    /// Waits for the first task to stop and says which and why. With no task, waits for ever.
    pub async fn failed(&mut self) -> TaskFailed {
        let Some(joined) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, reason) = match joined {
            Ok((id, Err(reason))) => (id, reason),
            Ok((id, Ok(()))) => (id, "it ended".to_owned()),
            Err(e) if e.is_panic() => (e.id(), panic_text(e.into_panic())),
            Err(e) => (e.id(), "it was cancelled".to_owned()),
        };
        TaskFailed {
            task: self.names.remove(&id).unwrap_or("unnamed"),
            reason,
        }
    }

    /// Stops every task (at the end of a graceful stop).
    pub fn abort_all(&mut self) {
        self.tasks.abort_all();
    }
}

/// Runs until a task fails or `stop` resolves. Either way readiness is withdrawn at once (the
/// Service stops routing here); a failure is logged with the task and its reason and returned,
/// a stop signal is returned for the role's graceful stop.
pub async fn until_stopped(
    tasks: &mut Supervisor,
    readiness: &Readiness,
    stop: impl Future<Output = StopSignal>,
) -> Result<StopSignal, TaskFailed> {
    let ended = tokio::select! {
        failed = tasks.failed() => Err(failed),
        signal = stop => Ok(signal),
    };
    readiness.withdraw();
    match &ended {
        Err(failed) => {
            tracing::error!(task = failed.task, reason = %failed.reason, "a background task failed; exiting")
        }
        Ok(signal) => tracing::info!(%signal, "stopping gracefully"),
    }
    ended
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    format!("panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_fails_is_reported_with_its_name_and_error() {
        let mut tasks = Supervisor::default();
        tasks.spawn_forever("runs", std::future::pending());
        tasks.spawn("fails", async { Err::<(), _>("the API server refused") });
        let failed = tasks.failed().await;
        assert_eq!(failed.task, "fails");
        assert_eq!(failed.reason, "the API server refused");
    }

    #[tokio::test]
    async fn a_failed_task_or_a_stop_signal_ends_the_wait_and_withdraws_readiness() {
        let readiness = Readiness::default();
        let ready = readiness.condition("up");
        ready.set(true);
        let mut tasks = Supervisor::default();
        tasks.spawn_forever("runs", std::future::pending());
        let stopped = until_stopped(&mut tasks, &readiness, async { StopSignal::Terminate });
        assert_eq!(stopped.await.unwrap(), StopSignal::Terminate);
        assert!(!readiness.is_ready());
        ready.set(true);
        tasks.spawn("fails", async { Err::<(), _>("lost the lease") });
        let failed = until_stopped(&mut tasks, &readiness, std::future::pending()).await;
        assert_eq!(failed.unwrap_err().task, "fails");
        assert!(!readiness.is_ready());
    }

    #[tokio::test]
    async fn a_task_that_ends_or_panics_counts_as_failed() {
        let mut tasks = Supervisor::default();
        tasks.spawn_forever("ends", async {});
        assert_eq!(tasks.failed().await.reason, "it ended");
        tasks.spawn_forever("panics", async { panic!("bad state") });
        let failed = tasks.failed().await;
        assert_eq!(
            (failed.task, failed.reason.as_str()),
            ("panics", "panicked: bad state")
        );
    }
}
