//! The ledger's account keys, and the one place that reads them. A budget's key is what names
//! its account in the ledger protocol, its records (`budgets`) and its slices:
//!
//! - an `AIBudget`: `namespace/name`;
//! - a `ClusterAIBudget`: `/name` (an empty namespace, as Kubernetes writes a cluster-scoped
//!   object's, so that a key always splits at its first `/` into namespace and name).
//!
//! Namespace names cannot be empty, so the two never collide.

/// A budget's account key (see the module's doc).
pub type BudgetKey = String;

/// Which kind of budget a key names: the level it enforces at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// An `AIBudget`: the workloads it selects in its namespace.
    Namespace,
    /// A `ClusterAIBudget`: the workloads it selects in every namespace it selects.
    Cluster,
}

impl Level {
    /// The kind's name, as `kubectl` spells it.
    pub fn kind(self) -> &'static str {
        match self {
            Level::Namespace => "AIBudget",
            Level::Cluster => "ClusterAIBudget",
        }
    }
}

/// The key of the AIBudget `name` in `namespace`.
pub fn namespaced(namespace: &str, name: &str) -> BudgetKey {
    format!("{namespace}/{name}")
}

/// The key of the ClusterAIBudget `name`.
pub fn cluster(name: &str) -> BudgetKey {
    format!("/{name}")
}

/// The namespace (`None` for a ClusterAIBudget) and name a key names.
pub fn parts(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some(("", name)) => (None, name),
        Some((namespace, name)) => (Some(namespace), name),
        None => (None, key),
    }
}

/// The level a key's budget enforces at.
pub fn level(key: &str) -> Level {
    match parts(key).0 {
        Some(_) => Level::Namespace,
        None => Level::Cluster,
    }
}

/// The `Namespace` a ClusterAIBudget's usage records carry in CloudWatch (a dimension
/// value cannot be empty, and no namespace can be named this).
pub const CLUSTER_DIMENSION: &str = "(cluster)";

/// The `Namespace` and `Budget` dimensions of a budget's usage records in CloudWatch.
pub fn dimensions(key: &str) -> (&str, &str) {
    let (namespace, name) = parts(key);
    (namespace.unwrap_or(CLUSTER_DIMENSION), name)
}

/// The key of the budget whose usage records carry these `Namespace` and `Budget`
/// dimensions (the inverse of [`dimensions`]).
pub fn from_dimensions(namespace: &str, budget: &str) -> BudgetKey {
    match namespace {
        CLUSTER_DIMENSION => cluster(budget),
        namespace => namespaced(namespace, budget),
    }
}

/// How people are told of a budget: `AIBudget team/chat`, `ClusterAIBudget research`.
pub fn describe(key: &str) -> String {
    let name = match parts(key) {
        (Some(_), _) => key,
        (None, name) => name,
    };
    format!("{} {name}", level(key).kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_kind_namespace_and_name() {
        let budget = namespaced("team", "chat");
        assert_eq!(parts(&budget), (Some("team"), "chat"));
        assert_eq!(level(&budget), Level::Namespace);
        assert_eq!(describe(&budget), "AIBudget team/chat");
        let cap = cluster("research");
        assert_eq!(parts(&cap), (None, "research"));
        assert_eq!(level(&cap), Level::Cluster);
        assert_eq!(describe(&cap), "ClusterAIBudget research");
        assert_eq!(dimensions(&budget), ("team", "chat"));
        assert_eq!(dimensions(&cap), ("(cluster)", "research"));
        assert_eq!(from_dimensions("(cluster)", "research"), cap);
        assert_eq!(from_dimensions("team", "chat"), budget);
    }
}
