//! Drives the real OpenTofu (and `terraform`, when one is on PATH) against aigov's provider, which
//! they install offline from a filesystem mirror of the binary cargo built, as a user's CI would
//! from a private mirror.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{built_binary, local_env, unique};

/// The provider version the mirror offers (`tests/env/provider-mirror.sh`'s default).
pub const PROVIDER_VERSION: &str = "0.1.0";

/// A Terraform CLI.
#[derive(Clone, Debug)]
pub struct Cli {
    /// `tofu` or `terraform`.
    pub name: &'static str,
    /// Its path.
    pub path: PathBuf,
}

/// OpenTofu (from the local environment) and `terraform` when it is on PATH.
pub fn clis() -> Vec<Cli> {
    let tofu = std::env::var("AIGOV_TOFU").unwrap_or_else(|_| {
        panic!(
            "AIGOV_TOFU is not set: source the local environment's env.sh (tests/run-all.sh does)"
        )
    });
    let mut clis = vec![Cli {
        name: "tofu",
        path: tofu.into(),
    }];
    if let Some(terraform) = which("terraform") {
        clis.push(Cli {
            name: "terraform",
            path: terraform,
        });
    }
    clis
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// The CLI configuration that installs `aigov/aigov` from a mirror of the built provider, made
/// by the same script the README and the benchmark use. `AIGOV_PROVIDER_BINARY` installs another
/// build instead (an earlier one, to see a test fail without a fix).
fn cli_config() -> &'static Path {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("aigov-tf-mirror-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../env/provider-mirror.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(
                std::env::var_os("AIGOV_PROVIDER_BINARY")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| built_binary("terraform-provider-aigov")),
            )
            .arg(&root)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "provider-mirror.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// The provider block for the local environment: every AWS endpoint at moto, the local cluster.
pub fn provider_block(extra: &str) -> String {
    let env = local_env();
    let moto = &env.moto_endpoint;
    format!(
        r#"terraform {{
  required_providers {{
    aigov = {{ source = "aigov/aigov", version = "{PROVIDER_VERSION}" }}
  }}
}}

provider "aigov" {{
  region = "us-east-1"
  endpoints {{
    bedrock    = "{moto}"
    budgets    = "{moto}"
    cloudwatch = "{moto}"
    logs       = "{moto}"
    sns        = "{moto}"
    sts        = "{moto}"
  }}
  kubernetes {{
    config_path = "{kubeconfig}"
  }}
{extra}}}
"#,
        kubeconfig = env.kubeconfig.display()
    )
}

/// One working directory with one configuration, driven by one CLI.
pub struct Workspace {
    /// The CLI.
    pub cli: Cli,
    /// The directory.
    pub dir: PathBuf,
}

impl Workspace {
    /// A fresh working directory with `main.tf`, initialised (the provider installed).
    pub fn new(cli: &Cli, main_tf: &str) -> Workspace {
        let dir = std::env::temp_dir().join(unique(&format!("aigov-tf-{}", cli.name)));
        std::fs::create_dir_all(&dir).expect("working directory");
        let ws = Workspace {
            cli: cli.clone(),
            dir,
        };
        ws.write(main_tf);
        ws.ok(&["init", "-input=false"]);
        ws
    }

    /// Replaces `main.tf`.
    pub fn write(&self, main_tf: &str) {
        std::fs::write(self.dir.join("main.tf"), main_tf).expect("main.tf");
    }

    /// Runs the CLI with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.cli.path)
            .args(args)
            .arg("-no-color")
            .current_dir(&self.dir)
            .env("TF_CLI_CONFIG_FILE", cli_config())
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .expect("the CLI runs")
    }

    /// Runs the CLI with `args` and environment changes (`None` removes a variable), killing it
    /// after `limit`: `None` then, so a test of a hang fails instead of hanging with it. Output
    /// goes to files, not pipes, so a chatty CLI cannot block on a full pipe while we wait.
    pub fn run_with(
        &self,
        args: &[&str],
        env: &[(&str, Option<&str>)],
        limit: Duration,
    ) -> Option<Output> {
        let out_path = self.dir.join(format!("{}.stdout", unique("run")));
        let err_path = self.dir.join(format!("{}.stderr", unique("run")));
        let mut command = Command::new(&self.cli.path);
        command
            .args(args)
            .arg("-no-color")
            .current_dir(&self.dir)
            .env("TF_CLI_CONFIG_FILE", cli_config())
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .stdout(std::fs::File::create(&out_path).expect("stdout file"))
            .stderr(std::fs::File::create(&err_path).expect("stderr file"));
        for (name, value) in env {
            match value {
                Some(v) => command.env(name, v),
                None => command.env_remove(name),
            };
        }
        let mut child = command.spawn().expect("the CLI starts");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the CLI") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                // Our own child, by its handle: the CLI (its provider plugins exit with it).
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let read = |p: &Path| std::fs::read(p).unwrap_or_default();
        status.map(|status| Output {
            status,
            stdout: read(&out_path),
            stderr: read(&err_path),
        })
    }

    /// Runs the CLI and returns its stdout, panicking with everything it said if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{} {args:?} failed in {}:\n{}\n{}",
            self.cli.name,
            self.dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the CLI expecting it to fail; returns what it said.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "{} {args:?} succeeded:\n{said}",
            self.cli.name
        );
        said
    }

    /// `validate -json` must report an error whose text contains `says` on a snippet that
    /// contains `underlined` (the attribute's line), or the test fails showing what it got.
    pub fn assert_refused_on(&self, underlined: &str, says: &str) {
        let out = self.run(&["validate", "-json"]);
        let report: Value = serde_json::from_slice(&out.stdout).expect("validate -json");
        let diagnostics = report["diagnostics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let found = diagnostics.iter().any(|d| {
            d["severity"] == "error"
                && format!("{}{}", d["summary"], d["detail"]).contains(says)
                && d["snippet"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(underlined)
        });
        assert!(
            found,
            "{}: expected an error on `{underlined}` saying {says:?}; got {}",
            self.cli.name,
            serde_json::to_string_pretty(&diagnostics).unwrap()
        );
    }

    /// `apply -auto-approve`.
    pub fn apply(&self) -> String {
        self.ok(&["apply", "-auto-approve", "-input=false"])
    }

    /// The planned changes as `(address, actions)`, from `show -json` of a saved plan.
    pub fn plan_changes(&self) -> Vec<(String, Vec<String>)> {
        self.ok(&["plan", "-input=false", "-out=tfplan"]);
        let plan: Value =
            serde_json::from_str(&self.ok(&["show", "-json", "tfplan"])).expect("plan JSON");
        plan["resource_changes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let actions: Vec<String> = c["change"]["actions"]
                    .as_array()?
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect();
                (actions != ["no-op"] && actions != ["read"]).then(|| {
                    (
                        c["address"].as_str().unwrap_or_default().to_owned(),
                        actions,
                    )
                })
            })
            .collect()
    }

    /// Asserts the plan is empty (`plan -detailed-exitcode` exits 0), showing it otherwise.
    pub fn assert_no_changes(&self, context: &str) {
        let out = self.run(&["plan", "-input=false", "-detailed-exitcode"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{context}: {} planned changes (or failed):\n{}\n{}",
            self.cli.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The attribute values of a resource in the state.
    pub fn state_of(&self, address: &str) -> Value {
        let state: Value = serde_json::from_str(&self.ok(&["show", "-json"])).expect("state JSON");
        state["values"]["root_module"]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["address"] == address)
            .map(|r| r["values"].clone())
            .unwrap_or_else(|| panic!("{address} is not in the state"))
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
