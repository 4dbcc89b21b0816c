//! The deployment manifests under controller/deploy/ are valid for the real kube-apiserver
//! (server-side dry run), the CRDs included, and grant exactly the verbs each role needs.

use aigov_e2e::kubectl_ok;

#[test]
fn the_deployment_manifests_pass_a_server_side_dry_run() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../controller/deploy");
    // Namespaced objects are dry-run against an existing namespace.
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: aigov-system}\n";
    kubectl_ok(&["apply", "-f", "-"], Some(ns));
    let out = kubectl_ok(
        &[
            "apply",
            "--dry-run=server",
            "-f",
            &dir.display().to_string(),
        ],
        None,
    );
    for object in [
        "namespace/aigov-system",
        "serviceaccount/aigov-controller",
        "clusterrole.rbac.authorization.k8s.io/aigov-gateway",
        "deployment.apps/aigov-controller",
        "service/aigov-gateway",
    ] {
        assert!(out.contains(object), "{object} in:\n{out}");
    }
}

/// Each role's written resources. Only the controller writes AIBudgets, and only the ones an
/// AIBudgetTemplate keeps (the templates e2e test shows it never overwrites a hand-made one);
/// nobody writes prices, pods, cluster budgets or templates, and there are no wildcards.
#[test]
fn only_the_controller_writes_budgets_and_only_aibudgets() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../controller/deploy/aigov.yaml");
    let text = std::fs::read_to_string(dir).expect("rbac manifest");
    let mut controller_writes_aibudgets = false;
    for doc in text.split("\n---") {
        let value: serde_yaml::Value = serde_yaml::from_str(doc).expect("yaml");
        let Some(rules) = value.get("rules").and_then(|r| r.as_sequence()) else {
            continue;
        };
        let role = value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for rule in rules {
            let resources = strings(&rule["resources"]);
            let verbs = strings(&rule["verbs"]);
            let writes = verbs
                .iter()
                .any(|v| !["get", "list", "watch"].contains(&v.as_str()));
            let read_only = [
                "aimodelprices",
                "pods",
                "clusteraibudgets",
                "aibudgettemplates",
            ];
            if resources.iter().any(|r| read_only.contains(&r.as_str())) {
                assert!(!writes, "{role}: {resources:?} {verbs:?}");
            }
            if resources.iter().any(|r| r == "aibudgets") && writes {
                assert_eq!(role, "aigov-controller", "{resources:?} {verbs:?}");
                assert_eq!(resources, ["aibudgets"], "a rule of its own, commented");
                controller_writes_aibudgets = true;
            }
            assert!(
                !verbs.iter().any(|v| v == "*") && !resources.iter().any(|r| r == "*"),
                "{role}: no wildcards"
            );
        }
    }
    assert!(controller_writes_aibudgets, "the templates need it");
}

fn strings(value: &serde_yaml::Value) -> Vec<String> {
    let items = value.as_sequence().expect("a list");
    items
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}
