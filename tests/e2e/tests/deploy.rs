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

#[test]
fn neither_role_may_write_a_budget_spec() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../controller/deploy/aigov.yaml");
    let text = std::fs::read_to_string(dir).expect("rbac manifest");
    for doc in text.split("\n---") {
        let value: serde_yaml::Value = serde_yaml::from_str(doc).expect("yaml");
        let Some(rules) = value.get("rules").and_then(|r| r.as_sequence()) else {
            continue;
        };
        for rule in rules {
            let resources: Vec<&str> = rule["resources"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter_map(|r| r.as_str())
                .collect();
            let verbs: Vec<&str> = rule["verbs"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_str())
                .collect();
            if resources.contains(&"aibudgets")
                || resources.contains(&"aimodelprices")
                || resources.contains(&"pods")
            {
                assert!(
                    verbs.iter().all(|v| ["get", "list", "watch"].contains(v)),
                    "{resources:?} {verbs:?}"
                );
            }
            assert!(
                !verbs.contains(&"*") && !resources.contains(&"*"),
                "no wildcards"
            );
        }
    }
}
