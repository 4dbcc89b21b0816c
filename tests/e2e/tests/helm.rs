//! The Helm chart (`controller/deploy/chart/aigov`) with Helm built from the Go module proxy:
//! `helm lint` passes; bad values are refused naming the key; `helm template` is accepted by
//! the real kube-apiserver (server-side dry run) and equals the committed rendering
//! (`controller/deploy/aigov.yaml`, for `kubectl apply` users); `helm install` into the local
//! kube-apiserver creates every object; `helm upgrade` with changed values changes what they
//! name and nothing else; `helm uninstall` removes the release and leaves the CRDs, as its
//! notes say. The PrometheusRule renders the recommended rules file unchanged. The install is
//! the quickstart's `helm install` (`docs/quickstart.md`) run as written, in a namespace and
//! release of its own: its region and IRSA annotations land where they should.

use aigov_e2e::succeeded as ok;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aigov_e2e::{kubectl_ok, local_env, quickstart, unique};

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../controller/deploy/chart/aigov")
}

fn helm_binary() -> PathBuf {
    std::env::var("AIGOV_HELM")
        .expect("AIGOV_HELM is not set: run tests/env/up.sh (tools.sh helm) and source env.sh")
        .into()
}

/// Helm's environment: the local kube-apiserver and homes of its own.
fn helm_env() -> Vec<(&'static str, std::ffi::OsString)> {
    let tmp = std::env::temp_dir();
    vec![
        ("KUBECONFIG", local_env().kubeconfig.into_os_string()),
        ("HELM_CACHE_HOME", tmp.join("aigov-helm/cache").into()),
        ("HELM_CONFIG_HOME", tmp.join("aigov-helm/config").into()),
        ("HELM_DATA_HOME", tmp.join("aigov-helm/data").into()),
    ]
}

fn helm(args: &[&str]) -> Output {
    Command::new(helm_binary())
        .args(args)
        .envs(helm_env())
        .output()
        .expect("helm runs")
}

/// `helm template` of the chart as release `aigov` in `aigov-system`, with `args`.
fn template(args: &[&str]) -> String {
    let chart = chart().display().to_string();
    let mut all = vec!["template", "aigov", chart.as_str(), "-n", "aigov-system"];
    all.extend_from_slice(args);
    ok(helm(&all), "helm template")
}

/// Each rendered object by `kind/name`.
fn objects(rendered: &str) -> BTreeMap<String, serde_yaml::Value> {
    rendered
        .split("\n---")
        .filter_map(|doc| serde_yaml::from_str::<serde_yaml::Value>(doc).ok())
        .filter(|v| v.get("kind").is_some())
        .map(|v| {
            let key = format!(
                "{}/{}",
                v["kind"].as_str().unwrap_or_default(),
                v["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, v)
        })
        .collect()
}

#[test]
fn the_chart_lints_and_refuses_bad_values_naming_the_key() {
    let chart = chart().display().to_string();
    ok(helm(&["lint", "--strict", &chart]), "helm lint");
    for (set, named) in [
        ("gateway.replicas=0", "gateway"),
        ("gateway.unknownCallers=allow", "unknownCallers"),
        ("controller.gatewayExpiry=ninety", "gatewayExpiry"),
        ("aws.region=Mars", "region"),
        ("gateway.sliceFractoin=0.1", "sliceFractoin"),
    ] {
        let out = helm(&["template", "aigov", &chart, "--set", set]);
        let error = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{set} was accepted");
        assert!(
            error.contains("values don't meet the specifications of the schema")
                && error.contains(named),
            "{set}: {error}"
        );
    }
}

#[test]
fn the_committed_rendering_is_the_charts_and_the_api_server_accepts_it() {
    let rendered = template(&[]);
    let committed_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../controller/deploy/aigov.yaml");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == rendered,
        "controller/deploy/aigov.yaml is out of date: run `bash controller/deploy/render.sh` and commit it"
    );
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: aigov-system}\n";
    kubectl_ok(&["apply", "-f", "-"], Some(ns));
    let out = kubectl_ok(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered));
    for object in [
        "serviceaccount/aigov-controller",
        "clusterrole.rbac.authorization.k8s.io/aigov-gateway",
        "deployment.apps/aigov-controller",
        "deployment.apps/aigov-gateway",
        "service/aigov-gateway",
        "poddisruptionbudget.policy/aigov-gateway",
    ] {
        assert!(out.contains(object), "{object} in:\n{out}");
    }
    for (key, object) in objects(&rendered) {
        if !key.starts_with("Deployment/") {
            continue;
        }
        let pod = &object["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{key}");
        let container = &pod["containers"][0];
        assert_eq!(
            container["securityContext"]["readOnlyRootFilesystem"], true,
            "{key}"
        );
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"], false,
            "{key}"
        );
        assert!(
            pod["terminationGracePeriodSeconds"].as_u64() >= Some(15),
            "{key}"
        );
        assert!(
            container["readinessProbe"]["httpGet"]["path"] == "/readyz",
            "{key}"
        );
    }
}

#[test]
fn the_prometheus_rule_renders_the_recommended_rules_unchanged() {
    let rendered = template(&[
        "--set",
        "prometheusRule.enabled=true,serviceMonitor.enabled=true",
    ]);
    let objects = objects(&rendered);
    let rule = &objects["PrometheusRule/aigov"]["spec"];
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/prometheus/aigov-rules.yaml");
    let expected: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(file).expect("rules")).expect("yaml");
    assert_eq!(
        rule, &expected,
        "the chart's rules drifted from examples/prometheus"
    );
    for job in ["aigov-controller", "aigov-gateway"] {
        let monitor = &objects[&format!("ServiceMonitor/{job}")];
        assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    }
}

/// What an object of the release looks like in the cluster (`kubectl get -o json`).
fn live(ns: &str, kind: &str, name: &str) -> serde_json::Value {
    let out = kubectl_ok(&["get", kind, "-n", ns, name, "-o", "json"], None);
    serde_json::from_str(&out).expect("json")
}

#[test]
fn install_creates_every_object_upgrade_changes_only_what_changed_and_uninstall_keeps_the_crds() {
    let ns = unique("helm");
    let release = unique("rel");
    let chart = chart().display().to_string();
    // The quickstart's command, in the repository's root, as release `release` in `ns`.
    let install = quickstart::command("helm install aigov controller/deploy/chart/aigov");
    let install = install
        .replacen(
            "helm install aigov ",
            &format!("helm install {release} "),
            1,
        )
        .replace(" -n aigov-system ", &format!(" -n {ns} "));
    assert!(
        install.contains(&ns) && install.contains(&release),
        "{install}"
    );
    let shims = std::env::temp_dir().join(unique("helm-shim"));
    quickstart::shim(&shims, "helm", &helm_binary());
    let env = helm_env();
    let env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let notes = ok(
        quickstart::bash(&install, &quickstart::repo(), &[&shims], &env),
        "the quickstart's helm install",
    );
    let _ = std::fs::remove_dir_all(&shims);
    assert!(notes.contains("`helm uninstall` leaves them"), "{notes}");
    for (kind, name) in [
        ("deployment", "aigov-controller"),
        ("deployment", "aigov-gateway"),
        ("service", "aigov-gateway"),
        ("serviceaccount", "aigov-gateway"),
        ("poddisruptionbudget", "aigov-controller"),
        ("role", "aigov-controller-lease"),
    ] {
        live(&ns, kind, name);
    }
    for component in ["controller", "gateway"] {
        let account = live(&ns, "serviceaccount", &format!("aigov-{component}"));
        assert_eq!(
            account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
            format!("arn:aws:iam::123456789012:role/aigov-{component}"),
            "{account}"
        );
    }
    let before = live(&ns, "deployment", "aigov-gateway");
    let region = |d: &serde_json::Value| {
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .and_then(|e| e.iter().find(|v| v["name"] == "AWS_REGION").cloned())
            .unwrap_or_default()
    };
    assert_eq!(region(&before)["value"], "eu-west-1", "{before}");
    let controller_before = live(&ns, "deployment", "aigov-controller");

    let mut upgrade = vec!["upgrade", &release, &chart, "-n", &ns, "--reuse-values"];
    upgrade.extend_from_slice(&["--set", "gateway.replicas=3,gateway.sliceTtl=30s"]);
    ok(helm(&upgrade), "helm upgrade");
    let after = live(&ns, "deployment", "aigov-gateway");
    assert_eq!(after["spec"]["replicas"], 3);
    let env = |d: &serde_json::Value, name: &str| {
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .and_then(|e| e.iter().find(|v| v["name"] == name).cloned())
            .unwrap_or_default()
    };
    assert_eq!(env(&after, "AIGOV_SLICE_TTL")["value"], "30s");
    assert_eq!(env(&before, "AIGOV_SLICE_TTL")["value"], "20s");
    let controller_after = live(&ns, "deployment", "aigov-controller");
    assert_eq!(
        controller_before["spec"], controller_after["spec"],
        "the controller's Deployment is untouched"
    );
    assert_eq!(
        controller_before["metadata"]["generation"],
        controller_after["metadata"]["generation"]
    );

    let gone = ok(helm(&["uninstall", &release, "-n", &ns]), "helm uninstall");
    assert!(gone.contains("uninstalled"), "{gone}");
    let left = kubectl_ok(&["get", "deployments", "-n", &ns, "-o", "name"], None);
    assert!(left.trim().is_empty(), "{left}");
    let crds = kubectl_ok(&["get", "crd", "-o", "name"], None);
    assert!(
        crds.contains("aibudgets.aigov.dev"),
        "the CRDs stay: {crds}"
    );
}
