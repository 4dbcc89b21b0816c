//! What the gateway knows of the cluster, kept current by watches: pods by IP (identity),
//! AIBudgets by namespace, and ClusterAIBudgets by the namespaces they cover, which needs the
//! namespaces' labels (admission). Reads are lock-and-clone of an `Arc`, so the data path
//! never waits on the API server.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use aigov_api::{AIBudget, ClusterAIBudget};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{Api, Client, ResourceExt};

use aigov_ledger::policy::{BudgetPolicy, Workload};

/// Pods by IP, and which IP each pod (by `namespace/name`) holds.
#[derive(Default)]
struct PodIndex {
    by_ip: HashMap<IpAddr, Arc<Workload>>,
    ip_of: HashMap<String, IpAddr>,
}

/// Budgets by namespace (what requests read), and by key with the generation compiled.
#[derive(Default)]
struct BudgetIndex {
    by_namespace: HashMap<String, Arc<Vec<Arc<BudgetPolicy>>>>,
    compiled: HashMap<String, (Option<i64>, Arc<BudgetPolicy>)>,
}

/// Namespaces' labels, the ClusterAIBudgets compiled, and which of them cover each namespace
/// (what requests read; rebuilt for one namespace when its labels change, for all when a
/// cluster budget changes, which is rare).
#[derive(Default)]
struct ClusterBudgetIndex {
    namespaces: HashMap<String, BTreeMap<String, String>>,
    compiled: HashMap<String, (Option<i64>, Arc<BudgetPolicy>)>,
    by_namespace: HashMap<String, Arc<Vec<Arc<BudgetPolicy>>>>,
}

/// The pod and budget caches.
#[derive(Clone, Default)]
pub struct ClusterView {
    pods: Arc<RwLock<PodIndex>>,
    budgets: Arc<RwLock<BudgetIndex>>,
    cluster_budgets: Arc<RwLock<ClusterBudgetIndex>>,
    /// Whether each watch (pods, AIBudgets, namespaces, ClusterAIBudgets) listed everything.
    synced: Arc<[AtomicBool; 4]>,
}

/// The watches [`ClusterView::synced`] waits for, by their place in `synced`.
#[derive(Clone, Copy)]
enum Watched {
    Pods = 0,
    Budgets = 1,
    Namespaces = 2,
    ClusterBudgets = 3,
}

impl ClusterView {
    /// The running pod with IP `ip`, if any.
    pub fn workload(&self, ip: IpAddr) -> Option<Arc<Workload>> {
        read(&self.pods).by_ip.get(&ip).cloned()
    }

    /// Every budget that selects `workload`: its namespace's AIBudgets, then the
    /// ClusterAIBudgets that cover its namespace, each by its own selector.
    pub fn budgets_for(&self, workload: &Workload) -> Vec<Arc<BudgetPolicy>> {
        let namespaced = read(&self.budgets)
            .by_namespace
            .get(&workload.namespace)
            .cloned();
        let cluster = read(&self.cluster_budgets)
            .by_namespace
            .get(&workload.namespace)
            .cloned();
        [namespaced, cluster]
            .into_iter()
            .flatten()
            .flat_map(|list| {
                list.iter()
                    .filter(|b| b.selects(workload))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// True once every cache holds a full list (until then the gateway answers every call
    /// with a retryable 503 and is not ready: a call judged without the ClusterAIBudgets
    /// could pass a cap).
    pub fn synced(&self) -> bool {
        self.synced.iter().all(|s| s.load(Ordering::Acquire))
    }

    fn mark_synced(&self, watched: Watched) {
        self.synced[watched as usize].store(true, Ordering::Release);
    }

    /// A view whose caches all listed nothing (tests of the layers above).
    #[cfg(test)]
    pub fn synced_empty() -> ClusterView {
        let view = ClusterView::default();
        view.set_pods(&[]);
        view.set_budgets(&[]);
        view.set_namespaces(&[]);
        view.set_cluster_budgets(&[]);
        view
    }

    /// Replaces every pod (a relist, after which the pod cache counts as synced; tests may
    /// call it directly).
    pub fn set_pods(&self, pods: &[Pod]) {
        *write(&self.pods) = PodIndex::default();
        for pod in pods {
            self.apply_pod(pod);
        }
        self.mark_synced(Watched::Pods);
    }

    /// Adds or updates one pod.
    pub fn apply_pod(&self, pod: &Pod) {
        let key = object_key(pod);
        let mut index = write(&self.pods);
        if let Some(old) = index.ip_of.remove(&key) {
            index.by_ip.remove(&old);
        }
        if let Some((ip, workload)) = pod_entry(pod) {
            index.by_ip.insert(ip, workload);
            index.ip_of.insert(key, ip);
        }
    }

    /// Forgets one pod.
    pub fn delete_pod(&self, pod: &Pod) {
        let mut index = write(&self.pods);
        if let Some(old) = index.ip_of.remove(&object_key(pod)) {
            index.by_ip.remove(&old);
        }
    }

    /// Replaces every budget (a relist, after which the budget cache counts as synced).
    pub fn set_budgets(&self, budgets: &[AIBudget]) {
        *write(&self.budgets) = BudgetIndex::default();
        for budget in budgets {
            self.apply_budget(budget);
        }
        self.mark_synced(Watched::Budgets);
    }

    /// Adds or updates one budget; a change that leaves the spec's generation alone (a status
    /// write, an annotation) compiles nothing.
    pub fn apply_budget(&self, budget: &AIBudget) {
        let key = object_key(budget);
        let generation = budget.metadata.generation;
        if is_compiled(&read(&self.budgets).compiled, &key, generation) {
            return;
        }
        match BudgetPolicy::from_budget(budget) {
            Ok(policy) => {
                let policy = Arc::new(policy);
                let mut index = write(&self.budgets);
                index
                    .compiled
                    .insert(key.clone(), (generation, policy.clone()));
                let namespace = policy.namespace.clone();
                index.rebuild_namespace(&namespace);
            }
            Err(e) => tracing::warn!(budget = key, error = %e, "AIBudget ignored"),
        }
    }

    /// Forgets one budget.
    pub fn delete_budget(&self, budget: &AIBudget) {
        let mut index = write(&self.budgets);
        if let Some((_, policy)) = index.compiled.remove(&object_key(budget)) {
            index.rebuild_namespace(&policy.namespace);
        }
    }

    /// Replaces every namespace's labels (a relist).
    pub fn set_namespaces(&self, namespaces: &[Namespace]) {
        let mut index = write(&self.cluster_budgets);
        index.namespaces = namespaces
            .iter()
            .map(|n| (n.name_any(), n.labels().clone()))
            .collect();
        index.rebuild_all();
        drop(index);
        self.mark_synced(Watched::Namespaces);
    }

    /// Adds or updates one namespace's labels.
    pub fn apply_namespace(&self, namespace: &Namespace) {
        let name = namespace.name_any();
        let mut index = write(&self.cluster_budgets);
        if index.namespaces.get(&name) == Some(namespace.labels()) {
            return;
        }
        index
            .namespaces
            .insert(name.clone(), namespace.labels().clone());
        index.rebuild_namespace(&name);
    }

    /// Forgets one namespace.
    pub fn delete_namespace(&self, namespace: &Namespace) {
        let name = namespace.name_any();
        let mut index = write(&self.cluster_budgets);
        index.namespaces.remove(&name);
        index.by_namespace.remove(&name);
    }

    /// Replaces every ClusterAIBudget (a relist).
    pub fn set_cluster_budgets(&self, budgets: &[ClusterAIBudget]) {
        write(&self.cluster_budgets).compiled.clear();
        for budget in budgets {
            self.apply_cluster_budget(budget);
        }
        write(&self.cluster_budgets).rebuild_all();
        self.mark_synced(Watched::ClusterBudgets);
    }

    /// Adds or updates one ClusterAIBudget; a change that leaves its generation alone
    /// compiles nothing.
    pub fn apply_cluster_budget(&self, budget: &ClusterAIBudget) {
        let name = budget.name_any();
        let generation = budget.metadata.generation;
        if is_compiled(&read(&self.cluster_budgets).compiled, &name, generation) {
            return;
        }
        match BudgetPolicy::from_cluster_budget(budget) {
            Ok(policy) => {
                let mut index = write(&self.cluster_budgets);
                index.compiled.insert(name, (generation, Arc::new(policy)));
                index.rebuild_all();
            }
            Err(e) => tracing::warn!(budget = name, error = %e, "ClusterAIBudget ignored"),
        }
    }

    /// Forgets one ClusterAIBudget.
    pub fn delete_cluster_budget(&self, budget: &ClusterAIBudget) {
        let mut index = write(&self.cluster_budgets);
        if index.compiled.remove(&budget.name_any()).is_some() {
            index.rebuild_all();
        }
    }

    /// Watches pods and AIBudgets (in `namespace`, else all) until the process ends, and, when
    /// every namespace is watched, namespaces and ClusterAIBudgets. A gateway scoped to one
    /// namespace (`--watch-namespace`) enforces no ClusterAIBudget, as its controller
    /// reconciles none: a cap over namespaces needs a cluster-wide install.
    pub async fn watch(self, client: Client, namespace: Option<String>) {
        let (pod_api, budget_api) = match &namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let pods = {
            let (apply, delete, reset) = (self.clone(), self.clone(), self.clone());
            aigov_runtime::watch::follow::<Pod>(
                pod_api,
                move |p| apply.apply_pod(p),
                move |p| delete.delete_pod(p),
                move |all| reset.set_pods(all),
            )
        };
        let budgets = {
            let (apply, delete, reset) = (self.clone(), self.clone(), self.clone());
            aigov_runtime::watch::follow::<AIBudget>(
                budget_api,
                move |b| apply.apply_budget(b),
                move |b| delete.delete_budget(b),
                move |all| reset.set_budgets(all),
            )
        };
        match namespace {
            Some(_) => {
                self.set_namespaces(&[]);
                self.set_cluster_budgets(&[]);
                tokio::join!(pods, budgets);
            }
            None => {
                tokio::join!(pods, budgets, self.watch_cluster_budgets(client));
            }
        }
    }

    /// Watches namespaces (their labels) and ClusterAIBudgets until the process ends.
    async fn watch_cluster_budgets(&self, client: Client) {
        let namespaces = {
            let (apply, delete, reset) = (self.clone(), self.clone(), self.clone());
            aigov_runtime::watch::follow::<Namespace>(
                Api::all(client.clone()),
                move |n| apply.apply_namespace(n),
                move |n| delete.delete_namespace(n),
                move |all| reset.set_namespaces(all),
            )
        };
        let cluster_budgets = {
            let (apply, delete, reset) = (self.clone(), self.clone(), self.clone());
            aigov_runtime::watch::follow::<ClusterAIBudget>(
                Api::all(client),
                move |b| apply.apply_cluster_budget(b),
                move |b| delete.delete_cluster_budget(b),
                move |all| reset.set_cluster_budgets(all),
            )
        };
        tokio::join!(namespaces, cluster_budgets);
    }
}

impl ClusterBudgetIndex {
    /// Which cluster budgets cover `namespace` now.
    fn rebuild_namespace(&mut self, namespace: &str) {
        let Some(labels) = self.namespaces.get(namespace) else {
            self.by_namespace.remove(namespace);
            return;
        };
        let mut list: Vec<Arc<BudgetPolicy>> = self
            .compiled
            .values()
            .filter(|(_, p)| p.covers_namespace(labels))
            .map(|(_, p)| p.clone())
            .collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        if list.is_empty() {
            self.by_namespace.remove(namespace);
        } else {
            self.by_namespace
                .insert(namespace.to_owned(), Arc::new(list));
        }
    }

    fn rebuild_all(&mut self) {
        let names: Vec<String> = self.namespaces.keys().cloned().collect();
        self.by_namespace.clear();
        for name in names {
            self.rebuild_namespace(&name);
        }
    }
}

/// Whether `compiled` holds `key` compiled at `generation` already.
fn is_compiled(
    compiled: &HashMap<String, (Option<i64>, Arc<BudgetPolicy>)>,
    key: &str,
    generation: Option<i64>,
) -> bool {
    compiled
        .get(key)
        .is_some_and(|(g, _)| generation.is_some() && *g == generation)
}

impl BudgetIndex {
    /// Rebuilds the (small) list of one namespace from the compiled budgets.
    fn rebuild_namespace(&mut self, namespace: &str) {
        let mut list: Vec<Arc<BudgetPolicy>> = self
            .compiled
            .values()
            .filter(|(_, p)| p.namespace == namespace)
            .map(|(_, p)| p.clone())
            .collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        if list.is_empty() {
            self.by_namespace.remove(namespace);
        } else {
            self.by_namespace
                .insert(namespace.to_owned(), Arc::new(list));
        }
    }
}

fn object_key<K: kube::Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// A pod's entry: its IP, for pods that are not finished (a finished pod's IP may be reused).
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
        workload: workload_name(pod),
    };
    Some((ip, Arc::new(workload)))
}

/// The name reports give a pod's calls, stable across its restarts and replicas: the
/// `app.kubernetes.io/name` label, else `app`, else its controller (a ReplicaSet stands for
/// its Deployment: the `pod-template-hash` suffix is dropped), else the pod's own name.
pub fn workload_name(pod: &Pod) -> String {
    let labels = pod.labels();
    if let Some(name) = ["app.kubernetes.io/name", "app"]
        .iter()
        .find_map(|key| labels.get(*key).filter(|v| !v.is_empty()))
    {
        return name.clone();
    }
    let owner = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true));
    match owner {
        Some(owner) if owner.kind == "ReplicaSet" => labels
            .get("pod-template-hash")
            .and_then(|hash| owner.name.strip_suffix(&format!("-{hash}")))
            .unwrap_or(&owner.name)
            .to_owned(),
        Some(owner) => owner.name.clone(),
        None => pod.name_any(),
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

    fn named(metadata: serde_json::Value) -> String {
        workload_name(&serde_json::from_value(serde_json::json!({ "metadata": metadata })).unwrap())
    }

    #[test]
    fn a_workload_is_named_by_its_app_label_then_its_controller_then_the_pod() {
        assert_eq!(
            named(
                serde_json::json!({"name": "p", "labels": {"app.kubernetes.io/name": "chat", "app": "x"}})
            ),
            "chat"
        );
        assert_eq!(
            named(serde_json::json!({"name": "p", "labels": {"app": "chat"}})),
            "chat"
        );
        let owned = |kind: &str, owner: &str| {
            serde_json::json!({
                "name": "chat-7d9f8-abcde",
                "labels": {"pod-template-hash": "7d9f8"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "u", "controller": true}]
            })
        };
        assert_eq!(named(owned("ReplicaSet", "chat-7d9f8")), "chat");
        assert_eq!(named(owned("StatefulSet", "ledger")), "ledger");
        assert_eq!(
            named(serde_json::json!({"name": "notebook-0"})),
            "notebook-0"
        );
    }

    fn labelled_namespace(name: &str, labels: serde_json::Value) -> Namespace {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels}}))
            .unwrap()
    }

    #[test]
    fn a_workload_is_held_to_its_namespace_s_budgets_and_the_cluster_budgets_covering_it() {
        let view = ClusterView::synced_empty();
        view.set_namespaces(&[
            labelled_namespace("alpha", serde_json::json!({"unit": "research"})),
            labelled_namespace("beta", serde_json::json!({})),
        ]);
        let budget: AIBudget = serde_yaml::from_str(
            "apiVersion: aigov.dev/v1alpha1\nkind: AIBudget\nmetadata: {name: team, namespace: alpha, generation: 1}\nspec: {limit: '0.50'}\n",
        )
        .unwrap();
        let cap: ClusterAIBudget = serde_yaml::from_str(
            "apiVersion: aigov.dev/v1alpha1\nkind: ClusterAIBudget\nmetadata: {name: research, generation: 1}\nspec: {limit: '1.00', namespaceSelector: {matchLabels: {unit: research}}}\n",
        )
        .unwrap();
        view.apply_budget(&budget);
        view.apply_cluster_budget(&cap);
        let keys = |ns: &str| {
            let workload = Workload {
                namespace: ns.into(),
                ..Workload::default()
            };
            let budgets = view.budgets_for(&workload);
            budgets.iter().map(|b| b.key.clone()).collect::<Vec<_>>()
        };
        assert_eq!(keys("alpha"), ["alpha/team", "/research"]);
        assert!(keys("beta").is_empty());
        // beta joins research: its calls are capped from the label on.
        view.apply_namespace(&labelled_namespace(
            "beta",
            serde_json::json!({"unit": "research"}),
        ));
        assert_eq!(keys("beta"), ["/research"]);
        view.delete_cluster_budget(&cap);
        assert_eq!(keys("alpha"), ["alpha/team"]);
        assert!(keys("beta").is_empty());
    }

    #[test]
    fn the_view_is_not_synced_until_every_watch_listed_everything() {
        let view = ClusterView::default();
        view.set_pods(&[]);
        view.set_budgets(&[]);
        view.set_namespaces(&[]);
        assert!(!view.synced(), "ClusterAIBudgets not listed yet");
        view.set_cluster_budgets(&[]);
        assert!(view.synced());
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
