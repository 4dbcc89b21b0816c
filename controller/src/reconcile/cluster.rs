//! ClusterAIBudgets, reconciled as the AIBudget each carries: a [`ClusterAIBudget`]'s spec is
//! an [`AIBudgetSpec`](aigov_api::AIBudgetSpec) plus the namespaces it covers, and its status
//! is an [`aigov_api::AIBudgetStatus`], so the one plan serves both kinds. Its [`view`] has no
//! namespace, which is what makes its key `/name` ([`aigov_ledger::key`]); only the writes
//! differ: its status goes to the cluster-scoped object and its Events regard it.
//!
//! Which namespaces it covers is the gateways' business (they admit against it); the
//! controller keeps its account, like any budget's, from the records charged to `/name`.

use aigov_api::{AIBudget, ClusterAIBudget};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::{Resource, ResourceExt};

/// The AIBudget a ClusterAIBudget is reconciled as ([`ClusterAIBudget::as_budget`]).
pub fn view(cap: &ClusterAIBudget) -> AIBudget {
    cap.as_budget()
}

/// What a budget's Events regard: the AIBudget, or, for a [`view`], its ClusterAIBudget
/// (`kubectl describe caib NAME` lists them).
pub fn regarding(budget: &AIBudget) -> ObjectReference {
    if budget.namespace().is_some() {
        return budget.object_ref(&());
    }
    ObjectReference {
        api_version: Some(ClusterAIBudget::api_version(&()).into_owned()),
        kind: Some(ClusterAIBudget::kind(&()).into_owned()),
        name: budget.metadata.name.clone(),
        uid: budget.metadata.uid.clone(),
        resource_version: budget.metadata.resource_version.clone(),
        ..ObjectReference::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap() -> ClusterAIBudget {
        let yaml = "apiVersion: aigov.dev/v1alpha1\nkind: ClusterAIBudget\nmetadata: {name: org, uid: u-1}\nspec:\n  limit: '1000'\n  namespaceSelector: {matchLabels: {org: research}}\n  period: Monthly\nstatus: {spent: '12.50'}\n";
        serde_yaml::from_str(yaml).expect("a ClusterAIBudget")
    }

    #[test]
    fn a_cluster_budget_is_viewed_as_a_namespace_less_aibudget_with_its_spec_and_status() {
        let view = view(&cap());
        assert_eq!(view.namespace(), None);
        assert_eq!(view.name_any(), "org");
        assert_eq!(view.spec.limit, cap().spec.budget.limit);
        assert_eq!(view.status.and_then(|s| s.spent).as_deref(), Some("12.50"));
    }

    #[test]
    fn events_of_a_cluster_budget_regard_the_cluster_budget() {
        let reference = regarding(&view(&cap()));
        assert_eq!(reference.kind.as_deref(), Some("ClusterAIBudget"));
        assert_eq!(reference.api_version.as_deref(), Some("aigov.dev/v1alpha1"));
        assert_eq!(reference.namespace, None);
        assert_eq!(reference.uid.as_deref(), Some("u-1"));
    }
}
