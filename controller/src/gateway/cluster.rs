//! What the gateway knows of the cluster, kept current by watches: pods by IP (identity) and
//! AIBudgets by namespace (admission). Reads are lock-and-clone of an `Arc`, so the data path
//! never waits on the API server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use aigov_api::AIBudget;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};

use crate::policy::{BudgetPolicy, Workload};

type PodIndex = HashMap<IpAddr, Arc<Workload>>;
type BudgetIndex = HashMap<String, Vec<Arc<BudgetPolicy>>>;

/// The pod and budget caches.
#[derive(Clone, Default)]
pub struct ClusterView {
    pods: Arc<RwLock<PodIndex>>,
    budgets: Arc<RwLock<BudgetIndex>>,
    pods_synced: Arc<std::sync::atomic::AtomicBool>,
    budgets_synced: Arc<std::sync::atomic::AtomicBool>,
}

impl ClusterView {
    /// The running pod with IP `ip`, if any.
    pub fn workload(&self, ip: IpAddr) -> Option<Arc<Workload>> {
        read(&self.pods).get(&ip).cloned()
    }

    /// Every budget that selects `workload`.
    pub fn budgets_for(&self, workload: &Workload) -> Vec<Arc<BudgetPolicy>> {
        read(&self.budgets)
            .get(&workload.namespace)
            .map(|list| {
                list.iter()
                    .filter(|b| b.selects(workload))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True once both caches hold a full list.
    pub fn synced(&self) -> bool {
        use std::sync::atomic::Ordering::Acquire;
        self.pods_synced.load(Acquire) && self.budgets_synced.load(Acquire)
    }

    /// Replaces the pod index (used by the watch; tests may call it directly).
    pub fn set_pods(&self, pods: &[Pod]) {
        let index = pods.iter().filter_map(pod_entry).collect();
        *self.pods.write().unwrap_or_else(|e| e.into_inner()) = index;
    }

    /// Replaces the budget index.
    pub fn set_budgets(&self, budgets: &[AIBudget]) {
        let mut index: BudgetIndex = HashMap::new();
        for budget in budgets {
            match BudgetPolicy::from_budget(budget) {
                Ok(policy) => index
                    .entry(policy.namespace.clone())
                    .or_default()
                    .push(Arc::new(policy)),
                Err(e) => {
                    tracing::warn!(budget = budget.name_any(), error = %e, "AIBudget ignored")
                }
            }
        }
        *self.budgets.write().unwrap_or_else(|e| e.into_inner()) = index;
    }

    /// Watches pods and AIBudgets (in `namespace`, else all) until the process ends.
    pub async fn watch(self, client: Client, namespace: Option<String>) {
        let (pod_api, budget_api) = match &namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client, ns),
            ),
            None => (Api::all(client.clone()), Api::all(client)),
        };
        let pods = watch_all::<Pod>(pod_api, {
            let view = self.clone();
            move |all| {
                view.set_pods(all);
                view.pods_synced
                    .store(true, std::sync::atomic::Ordering::Release);
            }
        });
        let budgets = watch_all::<AIBudget>(budget_api, {
            let view = self.clone();
            move |all| {
                view.set_budgets(all);
                view.budgets_synced
                    .store(true, std::sync::atomic::Ordering::Release);
            }
        });
        tokio::join!(pods, budgets);
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// A pod's entry: its IPs, for pods that are not finished (a finished pod's IP may be reused).
fn pod_entry(pod: &Pod) -> Option<(IpAddr, Arc<Workload>)> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ip: IpAddr = status.pod_ip.as_deref()?.parse().ok()?;
    let workload = Workload {
        namespace: pod.namespace()?,
        name: pod.name_any(),
        service_account: pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".to_owned()),
        labels: pod.labels().clone(),
    };
    Some((ip, Arc::new(workload)))
}

/// Keeps a full copy of every object of a kind, calling `publish` with all of them after each
/// change. Pods and budgets change rarely next to the request rate, so a rebuild is cheap.
async fn watch_all<K>(api: Api<K>, publish: impl Fn(&[K]))
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let mut objects: HashMap<String, K> = HashMap::new();
    let mut initial: Option<HashMap<String, K>> = None;
    let key = |o: &K| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
    let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
    while let Some(event) = events.next().await {
        let changed = match event {
            Ok(Event::Init) => {
                initial = Some(HashMap::new());
                false
            }
            Ok(Event::InitApply(o)) => {
                if let Some(init) = initial.as_mut() {
                    init.insert(key(&o), o);
                }
                false
            }
            Ok(Event::InitDone) => {
                objects = initial.take().unwrap_or_default();
                true
            }
            Ok(Event::Apply(o)) => {
                objects.insert(key(&o), o);
                true
            }
            Ok(Event::Delete(o)) => {
                objects.remove(&key(&o));
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "watch");
                false
            }
        };
        if changed {
            let all: Vec<K> = objects.values().cloned().collect();
            publish(&all);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, ip: &str, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "chat"}},
            "spec": {"containers": [], "serviceAccountName": "chat"},
            "status": {"podIP": ip, "phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn a_pod_is_found_by_its_ip_and_a_finished_one_is_not() {
        let view = ClusterView::default();
        view.set_pods(&[
            pod("team", "a", "127.0.0.10", "Running"),
            pod("team", "b", "127.0.0.11", "Succeeded"),
        ]);
        let w = view.workload("127.0.0.10".parse().unwrap()).unwrap();
        assert_eq!(
            (
                w.namespace.as_str(),
                w.name.as_str(),
                w.service_account.as_str()
            ),
            ("team", "a", "chat")
        );
        assert!(view.workload("127.0.0.11".parse().unwrap()).is_none());
    }
}
