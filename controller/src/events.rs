//! Kubernetes Events (events.k8s.io) through kube-rs's deduplicating recorder: on AIBudgets
//! from the controller, and Warning Events on throttled pods from the gateway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use crate::policy::Workload;
use crate::proto::Refusal;

/// The `reportingController` of aigov's Events.
pub const REPORTER: &str = "aigov.dev/controller";

/// A recorder for aigov's Events.
pub fn recorder(client: Client, instance: &str) -> Recorder {
    Recorder::new(
        client,
        Reporter {
            controller: REPORTER.to_owned(),
            instance: Some(instance.to_owned()),
        },
    )
}

/// Publishes an Event, logging (never failing) when the API server refuses it: Events are
/// for people, never on the path of a decision. Repeats of the same reason are folded into
/// one Event series by the recorder.
pub async fn publish(
    recorder: &Recorder,
    regarding: &ObjectReference,
    warning: bool,
    reason: &str,
    note: String,
) {
    publish_action(recorder, regarding, warning, reason, reason, note).await;
}

/// Like `publish`, with a distinct `action`: Events that differ in action are never folded
/// together (each threshold gets its own Event).
pub async fn publish_action(
    recorder: &Recorder,
    regarding: &ObjectReference,
    warning: bool,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, regarding).await {
        tracing::warn!(reason, error = %e, "event not recorded");
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// When each (namespace, pod, reason) was last warned about.
type LastWarned = HashMap<(String, String, &'static str), Instant>;

/// Warning Events on pods whose calls were refused, at most one per pod and reason per
/// interval, sent off the data path.
#[derive(Clone)]
pub struct PodWarnings {
    sender: mpsc::Sender<(ObjectReference, &'static str, String)>,
    last: std::sync::Arc<Mutex<LastWarned>>,
    interval: Duration,
}

impl PodWarnings {
    /// Starts the publisher.
    pub fn start(client: Client, instance: &str, interval: Duration) -> PodWarnings {
        let (sender, mut receiver) = mpsc::channel::<(ObjectReference, &'static str, String)>(1024);
        let recorder = recorder(client, instance);
        tokio::spawn(async move {
            while let Some((pod, reason, note)) = receiver.recv().await {
                publish(&recorder, &pod, true, reason, note).await;
            }
        });
        PodWarnings {
            sender,
            last: Default::default(),
            interval,
        }
    }

    /// Notes a refused call from `workload`; publishes unless one was published lately.
    pub fn warn(&self, workload: &Workload, refusal: Refusal, message: &str) {
        let reason = match refusal {
            Refusal::Throttled => "Throttled",
            Refusal::Exhausted => "BudgetExhausted",
            Refusal::ModelForbidden => "ModelForbidden",
            Refusal::None => return,
        };
        let key = (workload.namespace.clone(), workload.name.clone(), reason);
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if last
                .get(&key)
                .is_some_and(|t| now.duration_since(*t) < self.interval)
            {
                return;
            }
            last.insert(key, now);
        }
        let pod = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(workload.namespace.clone()),
            name: Some(workload.name.clone()),
            ..Default::default()
        };
        let _ = self.sender.try_send((pod, reason, message.to_owned()));
    }
}
