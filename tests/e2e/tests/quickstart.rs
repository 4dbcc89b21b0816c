//! `docs/quickstart.md` shows no command that no test runs: every command of its `sh` blocks is
//! claimed below by the file that runs it. Most are taken from the quickstart by
//! `quickstart::command` and run as written (the claim is that call, found in the test's
//! source); the others name the line of the script or test that runs them, and say how it
//! differs. A command added to the quickstart without a claim fails here. No environment needed.

use aigov_e2e::quickstart;

/// (the command's first words, the file that runs it, text that file must hold, how it differs).
const CLAIMS: &[(&str, &str, &str, &str)] = &[
    (
        "bash tests/demo.sh",
        "tests/run-all.sh",
        "bash tests/demo.sh >",
        "as written",
    ),
    (
        "helm install aigov controller/deploy/chart/aigov",
        "tests/e2e/tests/helm.rs",
        "",
        "as written, as a release and namespace of its own",
    ),
    (
        "bash controller/kubectl-aigov/krew/release.sh",
        "tests/e2e/tests/krew.rs",
        "",
        "as written, with the dev profile's builds",
    ),
    (
        "kubectl krew install",
        "tests/e2e/tests/krew.rs",
        "",
        "as written",
    ),
    (
        "kubectl aigov version",
        "tests/e2e/tests/krew.rs",
        "",
        "as written",
    ),
    (
        "source <(kubectl-aigov completion bash)",
        "tests/e2e/tests/krew.rs",
        "",
        "as written",
    ),
    (
        "bash provider/release.sh",
        "tests/e2e/tests/provider_release.rs",
        "",
        "as written, with the dev profile's builds",
    ),
    (
        "tofu init",
        "tests/e2e/tests/provider_release.rs",
        r#"run(&["init", "-input=false"])"#,
        "with -input=false -no-color, for each of tofu and terraform",
    ),
    (
        "terraform init",
        "tests/e2e/tests/provider_release.rs",
        r#"run(&["init", "-input=false"])"#,
        "with -input=false -no-color, for each of tofu and terraform",
    ),
    (
        "promtool check rules examples/prometheus/aigov-rules.yaml",
        "tests/e2e/tests/prometheus.rs",
        r#"&["check", "rules", "aigov-rules.yaml"]"#,
        "in examples/prometheus",
    ),
    (
        "cd examples/prometheus && promtool test rules aigov-rules.test.yaml",
        "tests/e2e/tests/prometheus.rs",
        r#"&["test", "rules", "aigov-rules.test.yaml"]"#,
        "in examples/prometheus",
    ),
    (
        "cargo build --release -p kubectl-aigov --target aarch64-unknown-linux-gnu",
        "tests/run-all.sh",
        r#"cargo build --target "$AIGOV_ARM64_TARGET" -p terraform-provider-aigov -p kubectl-aigov"#,
        "the dev profile (AIGOV_ARM64_TARGET is aarch64-unknown-linux-gnu)",
    ),
    (
        "cargo build --release -p terraform-provider-aigov --target aarch64-unknown-linux-gnu",
        "tests/run-all.sh",
        r#"cargo build --target "$AIGOV_ARM64_TARGET" -p terraform-provider-aigov -p kubectl-aigov"#,
        "the dev profile",
    ),
    (
        "cargo build --release -p kubectl-aigov",
        "tests/run-all.sh",
        "cargo build --workspace --bins",
        "the dev profile, every binary",
    ),
    (
        "cargo build --release -p terraform-provider-aigov",
        "tests/run-all.sh",
        "cargo build --workspace --bins",
        "the dev profile, every binary",
    ),
    (
        "cargo build --release -p aigov-controller -p aigov-gateway",
        "tests/run-all.sh",
        "cargo build --workspace --bins",
        "the dev profile, every binary",
    ),
    (
        "bash controller/image/build.sh controller",
        "tests/e2e/tests/images.rs",
        "controller/image/build.sh",
        "with a local tag and the dev profile's binary",
    ),
    (
        "bash controller/image/build.sh gateway",
        "tests/e2e/tests/images.rs",
        "controller/image/build.sh",
        "with a local tag and the dev profile's binary",
    ),
];

/// The commands of section 1's "To explore" block: the demo and `tests/e2e/tests/reports.rs`
/// run these subcommands with other arguments; they are there to be typed by hand after the
/// demo, not run as written. Listed so that a new one fails until it is claimed or added here.
const EXPLORE: &[&str] = &[
    "source /tmp/aigov-env/env.sh",
    "kubectl aigov report -A",
    "kubectl aigov top -A --watch",
    "kubectl aigov compare -n team-research research-daily",
    "kubectl aigov export -A --from -1h",
    "kubectl annotate aib -n team-research research-daily aigov.dev/extension=\"2.00 deadline\"",
    "bash tests/env/down.sh",
];

#[test]
fn every_quickstart_command_is_claimed_by_the_test_that_runs_it() {
    let repo = quickstart::repo();
    let mut unclaimed = Vec::new();
    for command in quickstart::commands() {
        if EXPLORE.contains(&command.as_str()) {
            continue;
        }
        // The longest claimed prefix: `cargo build ... --target` before `cargo build ...`.
        let claim = CLAIMS
            .iter()
            .filter(|(prefix, ..)| command == *prefix || command.starts_with(&format!("{prefix} ")))
            .max_by_key(|(prefix, ..)| prefix.len());
        let Some((prefix, file, needle, _how)) = claim else {
            unclaimed.push(command);
            continue;
        };
        let source =
            std::fs::read_to_string(repo.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let needle = if needle.is_empty() {
            format!("quickstart::command({prefix:?})")
        } else {
            needle.to_string()
        };
        let found = source.contains(&needle)
            // rustfmt may break the call over lines.
            || source.replace(['\n', ' '], "").contains(&needle.replace(' ', ""));
        assert!(
            found,
            "`{command}` is claimed by {file}, which does not hold {needle}"
        );
    }
    assert!(
        unclaimed.is_empty(),
        "docs/quickstart.md shows commands no test runs (claim them in tests/e2e/tests/quickstart.rs): {unclaimed:#?}"
    );
}

#[test]
fn every_claim_and_exploration_is_still_in_the_quickstart() {
    let commands = quickstart::commands();
    for (prefix, ..) in CLAIMS {
        assert!(
            commands
                .iter()
                .any(|c| c == prefix || c.starts_with(&format!("{prefix} "))),
            "the quickstart no longer shows `{prefix}`: drop its claim"
        );
    }
    for explore in EXPLORE {
        assert!(
            commands.iter().any(|c| c == explore),
            "the quickstart no longer shows `{explore}`"
        );
    }
}

#[test]
fn the_quickstart_shows_the_provider_mirror_configuration() {
    let config = quickstart::block("hcl", "network_mirror");
    assert!(config.contains("provider_installation"), "{config}");
}
