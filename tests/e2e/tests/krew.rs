//! `kubectl aigov` installs the way kubectl plugins install: the release script
//! (`controller/kubectl-aigov/krew/release.sh`) packages the built binary and writes its krew
//! manifest; krew (built from the Go module proxy) installs it from that manifest and archive
//! into a fresh `KREW_ROOT` whose default index is a local git repository holding the manifest
//! (a private index, as a platform team would host one; krew's own index needs the network);
//! `krew info` reads it from the index; the real kubectl then runs `kubectl aigov version` from
//! krew's path; `krew uninstall` removes it. Its shell completions are generated for bash, zsh
//! and fish. The release holds linux arm64 too (cross-compiled with Debian's
//! gcc-aarch64-linux-gnu): the manifest names its archive with its SHA-256, and the binary in it
//! is an aarch64 ELF. The commands are the quickstart's (`docs/quickstart.md`), run as written
//! (`kubectl krew` is krew on PATH as a kubectl plugin, as krew installs itself).

use aigov_e2e::quickstart;
use aigov_e2e::succeeded as ok;
use std::path::{Path, PathBuf};
use std::process::Command;

fn krew() -> PathBuf {
    std::env::var("AIGOV_KREW")
        .expect("AIGOV_KREW is not set: run tests/env/up.sh (tools.sh krew) and source env.sh")
        .into()
}

/// A krew index at `root/index/default`: a git repository with the manifest in `plugins/`.
fn local_index(root: &Path, manifest: &Path) {
    let index = root.join("index/default");
    std::fs::create_dir_all(index.join("plugins")).expect("index");
    std::fs::copy(manifest, index.join("plugins/aigov.yaml")).expect("manifest");
    for args in [
        &["init", "-q"][..],
        &["add", "-A"][..],
        &["commit", "-qm", "aigov"][..],
    ] {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=aigov",
                "-c",
                "user.email=aigov@example.invalid",
            ])
            .args(args)
            .current_dir(&index)
            .output()
            .expect("git runs");
        ok(out, "git");
    }
}

/// Runs the quickstart's release command in `root` (its release builds standing for this
/// build's): the manifest's path.
fn release(root: &Path) -> PathBuf {
    let command = quickstart::command("bash controller/kubectl-aigov/krew/release.sh");
    let out = quickstart::bash(
        &quickstart::with_built_paths(&command),
        quickstart::workdir(root),
        &[],
        &[],
    );
    root.join(ok(out, "release.sh").trim())
}

/// The ELF header's machine (`e_machine`) of the file `path`: 62 is x86-64, 183 is AArch64.
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).expect("the binary");
    assert_eq!(
        &bytes[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        path.display()
    );
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
fn krew_installs_the_plugin_from_its_manifest_and_kubectl_runs_it_from_krews_path() {
    let root = std::env::temp_dir().join(aigov_e2e::unique("krew"));
    std::fs::create_dir_all(&root).expect("scratch dir");
    let dist = root.join("dist");
    let manifest = release(&root);
    let text = std::fs::read_to_string(&manifest).expect("the manifest");
    assert!(
        text.contains("kind: Plugin") && text.contains("name: aigov"),
        "{text}"
    );
    // Both platforms' archives hold their machine's binary, named in the manifest with their
    // digests.
    let plugin: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
    for (arch, machine) in [("amd64", 62), ("arm64", 183)] {
        let archive = dist.join(format!("kubectl-aigov_v0.1.0_linux_{arch}.tar.gz"));
        let sha = ok(
            Command::new("sha256sum")
                .arg(&archive)
                .output()
                .expect("sha256sum"),
            "sha256sum",
        );
        let sha = sha.split_whitespace().next().expect("a digest");
        let platform = plugin["spec"]["platforms"]
            .as_sequence()
            .expect("platforms")
            .iter()
            .find(|p| p["selector"]["matchLabels"]["arch"] == arch)
            .unwrap_or_else(|| panic!("no linux/{arch} platform: {text}"));
        assert_eq!(platform["selector"]["matchLabels"]["os"], "linux");
        assert_eq!(platform["sha256"], sha, "linux/{arch}");
        let unpacked = root.join(format!("unpacked-{arch}"));
        std::fs::create_dir_all(&unpacked).expect("dir");
        ok(
            Command::new("tar")
                .arg("-xzf")
                .arg(&archive)
                .arg("-C")
                .arg(&unpacked)
                .output()
                .expect("tar runs"),
            "tar",
        );
        assert_eq!(
            elf_machine(&unpacked.join("kubectl-aigov")),
            machine,
            "{arch}"
        );
    }
    let archive = dist.join("kubectl-aigov_v0.1.0_linux_amd64.tar.gz");
    let krew_root = root.join("krew");
    local_index(&krew_root, &manifest);
    let krew_cmd = |args: &[&str]| {
        Command::new(krew())
            .args(args)
            .env("KREW_ROOT", &krew_root)
            .output()
            .expect("krew runs")
    };
    // The quickstart's `kubectl krew install`, in the directory `dist/` is in.
    let shims = root.join("shims");
    quickstart::shim(&shims, "kubectl-krew", &krew());
    let on_path = |script: &str, what: &str| {
        ok(
            quickstart::bash(
                script,
                &root,
                &[&krew_root.join("bin"), &shims],
                &[("KREW_ROOT", krew_root.as_os_str())],
            ),
            what,
        )
    };
    on_path(
        &quickstart::command("kubectl krew install"),
        "kubectl krew install",
    );
    let listed = ok(krew_cmd(&["list"]), "krew list");
    assert!(
        listed.lines().any(|l| l.trim().ends_with("aigov")),
        "{listed}"
    );
    let info = ok(krew_cmd(&["info", "aigov"]), "krew info");
    let sha = ok(
        Command::new("sha256sum")
            .arg(&archive)
            .output()
            .expect("sha256sum"),
        "sha256sum",
    );
    let sha = sha.split_whitespace().next().expect("a digest");
    assert!(
        info.contains("VERSION: v0.1.0") && info.contains(&format!("SHA256: {sha}")),
        "{info}"
    );

    let path = format!(
        "{}:{}",
        krew_root.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let version = on_path(
        &quickstart::command("kubectl aigov version"),
        "kubectl aigov version",
    );
    assert_eq!(
        version.trim(),
        format!(
            "kubectl-aigov {} (reads aigov.dev/v1alpha1 AIBudgets)",
            env!("CARGO_PKG_VERSION")
        )
    );
    let plugins = ok(
        Command::new("kubectl")
            .args(["plugin", "list", "--name-only"])
            .env("PATH", &path)
            .output()
            .expect("kubectl runs"),
        "kubectl plugin list",
    );
    assert!(plugins.contains("kubectl-aigov"), "{plugins}");

    ok(krew_cmd(&["uninstall", "aigov"]), "krew uninstall");
    assert!(!krew_root.join("bin/kubectl-aigov").exists(), "removed");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish_naming_every_subcommand() {
    let binary = aigov_e2e::built_binary("kubectl-aigov");
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(
            Command::new(&binary)
                .args(["completion", shell])
                .output()
                .expect("kubectl-aigov runs"),
            shell,
        );
        for subcommand in ["report", "top", "compare", "export", "version"] {
            assert!(script.contains(subcommand), "{shell}: no {subcommand}");
        }
    }
    let bash = Command::new(&binary)
        .args(["completion", "bash"])
        .output()
        .expect("runs");
    let bash = String::from_utf8_lossy(&bash.stdout).into_owned();
    assert!(
        bash.lines()
            .any(|l| l.trim().starts_with("complete -F") && l.trim().ends_with(" kubectl-aigov")),
        "completes the kubectl-aigov command:\n{bash}"
    );
    // The quickstart's line registers the completion in bash.
    let line = quickstart::command("source <(kubectl-aigov completion bash)");
    let registered = ok(
        quickstart::bash(
            &format!("{line}\ncomplete -p kubectl-aigov"),
            &quickstart::repo(),
            &[binary.parent().expect("target/debug")],
            &[],
        ),
        "source <(kubectl-aigov completion bash)",
    );
    assert!(
        registered.starts_with("complete ")
            && registered.contains(" -F ")
            && registered.trim().ends_with(" kubectl-aigov"),
        "{registered}"
    );
    let bad = Command::new(&binary)
        .args(["completion", "tcsh"])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values: bash"));
}
