//! Helpers for aigov's end-to-end tests, which run against the real local environment that
//! `tests/env/up.sh` starts (kube-apiserver + etcd, moto, the Bedrock simulator).
//!
//! The tests never start a fake in its place: when the environment is not up they fail and
//! say how to start it.
#![forbid(unsafe_code)]

pub mod aigov;
pub mod bedrock;
pub mod budgets;
pub mod mantle;
pub mod prometheus;
pub mod promises;
pub mod proxy;
pub mod quickstart;
pub mod speech;
pub mod terraform;
pub mod webhook;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where the local environment's servers and tools are, from `$AIGOV_RUN/env.sh`.
#[derive(Clone, Debug)]
pub struct LocalEnv {
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// kubectl built at the apiserver's version.
    pub kubectl: PathBuf,
    /// The extended moto server.
    pub moto_endpoint: String,
    /// The Python with boto3 (moto's venv).
    pub python: PathBuf,
    /// The Bedrock runtime simulator.
    pub bedrock_sim_endpoint: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the local environment. Run `tests/run-all.sh`, or \
             `tests/env/up.sh && source ${{AIGOV_RUN:-/tmp/aigov-env}}/env.sh` before `cargo test`."
        )
    })
}

/// The local environment, or a panic that says how to start it.
pub fn local_env() -> LocalEnv {
    LocalEnv {
        kubeconfig: var("KUBECONFIG").into(),
        kubectl: var("AIGOV_KUBECTL").into(),
        moto_endpoint: var("AIGOV_MOTO_ENDPOINT"),
        python: var("AIGOV_MOTO_PYTHON").into(),
        bedrock_sim_endpoint: var("AIGOV_BEDROCK_SIM_ENDPOINT"),
    }
}

/// A name no other test (or earlier run) uses: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A binary of this workspace that cargo built beside the test executables (`target/debug/NAME`).
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/debug");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (tests/run-all.sh does)",
        bin.display()
    );
    bin
}

/// Runs a future to completion from a plain `#[test]` (the CLI-driven tests are synchronous).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// Runs kubectl with `args`, feeding `stdin` if given.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let env = local_env();
    let mut child = Command::new(&env.kubectl)
        .args(args)
        .env("KUBECONFIG", &env.kubeconfig)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input.as_bytes())
            .expect("kubectl reads stdin");
    }
    child.wait_with_output().expect("kubectl finishes")
}

/// Runs kubectl and returns its stdout, panicking with its stderr if it fails.
pub fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates a fresh namespace for one test and returns its name.
pub fn namespace(prefix: &str) -> String {
    let name = unique(prefix);
    kubectl_ok(&["create", "namespace", &name], None);
    name
}

/// A kube client for the local apiserver (from `KUBECONFIG`).
pub async fn kube_client() -> kube::Client {
    local_env();
    kube::Client::try_default()
        .await
        .expect("a kube client from KUBECONFIG")
}

/// AWS SDK configuration pointed at the local moto, with test credentials.
pub async fn aws_config() -> aws_config::SdkConfig {
    let env = local_env();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(env.moto_endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "aigov-e2e",
        ))
        .load()
        .await
}

/// `kubectl-aigov` as kubectl would run it (no terminal: no colour), on the local cluster and
/// reading usage records from `log_group` in moto.
pub fn kubectl_aigov(log_group: &str, args: &[&str]) -> Command {
    let env = local_env();
    let mut command = Command::new(built_binary("kubectl-aigov"));
    command
        .args(args)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("AWS_ENDPOINT_URL", &env.moto_endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AIGOV_LOG_GROUP", log_group);
    command
}

/// A new CloudWatch Logs group in moto named `prefix-<unique>`, for a controller's EMF records.
pub async fn log_group(prefix: &str) -> String {
    let name = unique(prefix);
    aws_sdk_cloudwatchlogs::Client::new(&aws_config().await)
        .create_log_group()
        .log_group_name(&name)
        .send()
        .await
        .expect("log group");
    name
}

/// A plain HTTP GET on loopback: `(status, body)`, or `None` if nothing answers.
pub fn http_get(authority: &str, path: &str) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let mut response = agent.get(format!("http://{authority}{path}")).call().ok()?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().ok()?;
    Some((status, body))
}

/// The local environment's kubeconfig, parsed.
fn kubeconfig_yaml() -> serde_yaml::Value {
    let text = std::fs::read_to_string(local_env().kubeconfig).expect("the kubeconfig");
    serde_yaml::from_str(&text).expect("kubeconfig YAML")
}

/// The kube-apiserver's address (`127.0.0.1:PORT`), from the local environment's kubeconfig.
pub fn apiserver_addr() -> SocketAddr {
    let config = kubeconfig_yaml();
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("a cluster server URL");
    let authority = server.trim_start_matches("https://").trim_end_matches('/');
    authority.parse().expect("the apiserver at IP:PORT")
}

/// A copy of the local environment's kubeconfig whose clusters are reached at `addr` (a
/// [`proxy::Proxy`] in front of the apiserver), for `aigov::Options::kubeconfig`. TLS passes
/// through the proxy, and the apiserver's certificate covers 127.0.0.1, so the copy verifies
/// as the original does; `tls-server-name` names the original host all the same, so a proxy
/// on another address would verify too.
pub fn kubeconfig_via(addr: SocketAddr) -> PathBuf {
    let mut config = kubeconfig_yaml();
    let clusters = config["clusters"]
        .as_sequence_mut()
        .expect("kubeconfig clusters");
    for cluster in clusters {
        let cluster = &mut cluster["cluster"];
        let original = cluster["server"].as_str().unwrap_or_default().to_owned();
        let host = original
            .trim_start_matches("https://")
            .rsplit_once(':')
            .map(|(host, _)| host.to_owned())
            .unwrap_or_default();
        cluster["server"] = format!("https://{addr}").into();
        cluster["tls-server-name"] = host.into();
    }
    let path = std::env::temp_dir().join(format!("{}.kubeconfig", unique("via-proxy")));
    let text = serde_yaml::to_string(&config).expect("kubeconfig YAML");
    std::fs::write(&path, text).expect("the kubeconfig copy");
    path
}

/// The stdout of a command that must have succeeded; panics naming `what` with everything it
/// said otherwise.
pub fn succeeded(out: std::process::Output, what: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
