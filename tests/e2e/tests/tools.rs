//! The environment's tools are the pinned builds, and they work.

use aigov_e2e::{kubectl_ok, local_env};

fn version_of(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kubectl_and_the_apiserver_are_the_pinned_kubernetes_release() {
    local_env();
    let pinned = std::env::var("AIGOV_KUBE_VERSION").expect("set by env.sh");
    let version: serde_json::Value =
        serde_json::from_str(&kubectl_ok(&["version", "-o", "json"], None)).unwrap();
    assert_eq!(version["clientVersion"]["gitVersion"], pinned.as_str());
    assert_eq!(version["serverVersion"]["gitVersion"], pinned.as_str());
}

#[test]
fn opentofu_is_the_pinned_release() {
    local_env();
    let tofu = std::env::var("AIGOV_TOFU").expect("set by env.sh");
    let pinned = std::env::var("AIGOV_TOFU_VERSION").expect("set by env.sh");
    let out = version_of(&tofu, &["version", "-json"]);
    let version: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        format!("v{}", version["terraform_version"].as_str().unwrap()),
        pinned
    );
}
