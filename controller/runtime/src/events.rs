//! Kubernetes Events (events.k8s.io) through kube-rs's deduplicating recorder: on AIBudgets
//! from the controller, and Warning Events on throttled pods from the gateway
//! (`aigov_gateway::pod_warnings`).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

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
