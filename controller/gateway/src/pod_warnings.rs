//! Warning Events on pods whose calls were refused, at most one per pod and reason per
//! interval, published off the data path through [`aigov_runtime::events`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aigov_ledger::policy::Workload;
use aigov_ledger::proto::Refusal;
use aigov_runtime::events::{publish, recorder};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use tokio::sync::mpsc;

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
            Refusal::MetadataMissing => "MetadataMissing",
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
