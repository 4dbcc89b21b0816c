//! The container images (`controller/image/`): built with buildah (Debian's package; vfs storage
//! and chroot isolation, so no daemon and no registry: `FROM scratch` and a root filesystem the
//! build context brings) from this build's binaries; each runs as the non-root user 65532 with
//! no shell; the gateway image, run with `buildah run` on the host network against the local
//! environment (the real kube-apiserver, a controller and the simulator), meters a real SDK call
//! exactly.
//!
//! podman cannot run containers on this machine (its runtime, crun, may not set
//! RLIMIT_NOFILE here, and with lowered limits refuses the hybrid cgroup layout), so the test
//! runs the image with buildah's chroot isolation, which needs neither.

use aigov_e2e::succeeded as ok;
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use aigov_e2e::aigov::{Aigov, Launcher, Options};
use aigov_e2e::bedrock::{HAIKU, client_from, converse, pod, pod_ip, served_cost};
use aigov_e2e::budgets::{budget, wait_status};
use aigov_e2e::{local_env, namespace, unique};

/// buildah's storage for this test run: its own root under the temporary directory.
fn storage() -> Vec<String> {
    let root = std::env::temp_dir().join("aigov-buildah");
    vec![
        "--storage-driver".into(),
        "vfs".into(),
        "--root".into(),
        root.join("storage").display().to_string(),
        "--runroot".into(),
        root.join("run").display().to_string(),
    ]
}

fn buildah(args: &[&str]) -> Output {
    Command::new("buildah")
        .args(storage())
        .args(args)
        .output()
        .expect("buildah runs (tests/env/tools.sh buildah installs it)")
}

/// Builds the image of `role` from the built binary; its tag.
fn build(role: &str) -> String {
    let tag = format!("localhost/aigov-{role}:{}", unique("test"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../controller/image/build.sh");
    let binary = aigov_e2e::built_binary(&format!("aigov-{role}"));
    let out = Command::new("bash")
        .arg(script)
        .args([role, &tag, &binary.display().to_string()])
        .env("BUILDAH_ARGS", storage().join(" "))
        .output()
        .expect("bash runs");
    ok(out, &format!("build.sh {role}"));
    tag
}

#[test]
fn both_images_build_from_scratch_and_run_as_a_non_root_user_without_a_shell() {
    for role in ["controller", "gateway"] {
        let tag = build(role);
        let inspect = ok(buildah(&["inspect", "--type", "image", &tag]), "inspect");
        let image: serde_json::Value = serde_json::from_str(&inspect).expect("json");
        let config = &image["OCIv1"]["config"];
        assert_eq!(config["User"], "65532:65532", "{role}: {config}");
        assert_eq!(
            config["Entrypoint"][0],
            format!("/usr/local/bin/aigov-{role}")
        );
        let container = ok(buildah(&["from", &tag]), "from").trim().to_owned();
        let help = buildah(&[
            "run",
            "--isolation",
            "chroot",
            &container,
            "--",
            &format!("/usr/local/bin/aigov-{role}"),
            "--help",
        ]);
        assert!(
            ok(help, "--help").contains("Usage"),
            "{role} runs in its image"
        );
        let shell = buildah(&[
            "run",
            "--isolation",
            "chroot",
            &container,
            "--",
            "/bin/sh",
            "-c",
            "true",
        ]);
        assert!(!shell.status.success(), "{role}: no shell in the image");
        let size = ok(
            buildah(&["images", "--format", "{{.Size}}", &tag]),
            "images",
        );
        eprintln!("{role} image: {}", size.trim());
        ok(buildah(&["rm", &container]), "rm");
        ok(buildah(&["rmi", &tag]), "rmi");
    }
}

/// A copy of the local environment's kubeconfig and its keys that the image's non-root user can
/// read (the originals are root's, mode 600), in a directory of its own; the kubeconfig's path.
fn readable_kubeconfig() -> PathBuf {
    let original = local_env().kubeconfig;
    let run_dir = original.parent().expect("the run directory").to_owned();
    let dir = std::env::temp_dir().join(unique("image-kube"));
    std::fs::create_dir_all(&dir).expect("a directory");
    let mut text = std::fs::read_to_string(&original).expect("the kubeconfig");
    for file in ["ca.crt", "admin.crt", "admin.key"] {
        let from = run_dir.join("pki").join(file);
        let to = dir.join(file);
        std::fs::copy(&from, &to).expect("a key file");
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        text = text.replace(&from.display().to_string(), &to.display().to_string());
    }
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).expect("kubeconfig");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A gateway launched in a working container of `tag`, on the host network, with `kube_dir`
/// (its kubeconfig and keys) mounted read-only where it is.
fn in_container(tag: &str, kube_dir: &Path) -> (Launcher, String) {
    let container = ok(buildah(&["from", tag]), "from").trim().to_owned();
    let mount = format!("{}:{}:ro", kube_dir.display(), kube_dir.display());
    let mut args = storage();
    args.extend(
        [
            "run",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "-v",
            &mount,
        ]
        .map(str::to_owned),
    );
    let launcher = Launcher {
        program: "buildah".into(),
        args,
        before_binary: vec![container.clone(), "--".into()],
        binary: "/usr/local/bin/aigov-gateway".into(),
    };
    (launcher, container)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_image_meters_a_real_call_against_the_local_environment() {
    let ns = namespace("image");
    budget(&ns, "team", "  limit: '1.00'\n");
    let ip = pod_ip();
    pod(&ns, "app", "default", &[], ip);
    let controller = Aigov::start(
        Options {
            role: "controller",
            extra: vec!["--settle".into(), "500ms".into()],
            ..Options::all(&ns)
        },
        true,
    );
    let tag = build("gateway");
    let kubeconfig = readable_kubeconfig();
    let (launcher, container) = in_container(&tag, kubeconfig.parent().expect("its directory"));
    let gateway = Aigov::start(
        Options {
            role: "gateway",
            controller_endpoints: vec![controller.ledger.clone()],
            launcher: Some(launcher),
            kubeconfig: Some(kubeconfig),
            ..Options::all(&ns)
        },
        true,
    );
    let client = client_from(ip, &gateway.gateway, true).await;
    let id = converse(&client, HAIKU, "from the image [sim:output_tokens=30]", 64)
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", gateway.log_text()));
    let (expected, count) = served_cost(&HashSet::from([id]));
    assert_eq!(count, 1);
    wait_status(&ns, "team", Duration::from_secs(20), |s| {
        s["spent"]
            .as_str()
            .and_then(|v| aigov_api::Usd::parse(v).ok())
            == Some(expected)
    });
    drop(gateway);
    ok(buildah(&["rm", &container]), "rm");
    ok(buildah(&["rmi", &tag]), "rmi");
}
