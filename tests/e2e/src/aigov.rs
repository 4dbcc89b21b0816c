//! Runs the real aigov binaries as child processes for a test, on free loopback ports, and
//! stops them by PID when the test ends: `aigov-controller` for the roles `controller` and
//! `all` (controller and gateway in one process), `aigov-gateway` for the role `gateway`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::local_env;

/// The binary that runs `role`, as cargo built it beside the test executables
/// (`target/debug/aigov-controller` or `target/debug/aigov-gateway`).
pub fn binary(role: &str) -> PathBuf {
    let (variable, name) = match role {
        "gateway" => ("AIGOV_GATEWAY_BIN", "aigov-gateway"),
        _ => ("AIGOV_CONTROLLER_BIN", "aigov-controller"),
    };
    if let Ok(path) = std::env::var(variable) {
        return path.into();
    }
    crate::built_binary(name)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One running aigov process.
pub struct Aigov {
    child: Option<Child>,
    /// The gateway's URL (`http://127.0.0.1:PORT`).
    pub gateway: String,
    /// The ledger's URL.
    pub ledger: String,
    /// The metrics port.
    pub metrics_port: u16,
    /// The log file.
    pub log: PathBuf,
}

/// What to start.
#[derive(Clone, Debug)]
pub struct Options {
    /// `controller`, `gateway` or `all`.
    pub role: &'static str,
    /// The replica's identity.
    pub identity: String,
    /// Namespace watched (and where the lease lives).
    pub namespace: String,
    /// The lease's name (unique per test so tests do not contend).
    pub lease: String,
    /// Ledger endpoints for a gateway (defaults to its own).
    pub controller_endpoints: Vec<String>,
    /// A fixed ledger port (for a replica that must answer at a known address).
    pub ledger_port: Option<u16>,
    /// Extra flags.
    pub extra: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Watch only `namespace` (default true).
    pub scoped: bool,
    /// The kubeconfig the process uses (default: the local environment's); e.g.
    /// [`crate::kubeconfig_via`] a [`crate::proxy::Proxy`] in front of the apiserver.
    pub kubeconfig: Option<PathBuf>,
    /// Run the binary through this (a container) rather than directly.
    pub launcher: Option<Launcher>,
}

impl Options {
    /// An `all`-role process scoped to `namespace`.
    pub fn all(namespace: &str) -> Options {
        Options {
            role: "all",
            identity: crate::unique("aigov"),
            namespace: namespace.to_owned(),
            lease: crate::unique("lease"),
            controller_endpoints: Vec::new(),
            ledger_port: None,
            extra: Vec::new(),
            env: Vec::new(),
            scoped: true,
            kubeconfig: None,
            launcher: None,
        }
    }
}

impl Options {
    /// Replica `i` of a set of controllers elected on `lease` in `namespace`, its ledger on
    /// `ledger_port`, with `extra` flags.
    pub fn controller_replica(
        namespace: &str,
        lease: &str,
        i: usize,
        ledger_port: u16,
        extra: &[&str],
    ) -> Options {
        Options {
            role: "controller",
            identity: format!("controller-{i}-{}", crate::unique("c")),
            lease: lease.to_owned(),
            ledger_port: Some(ledger_port),
            extra: extra.iter().map(|f| (*f).to_owned()).collect(),
            ..Options::all(namespace)
        }
    }
}

impl Aigov {
    /// A controller (settling in for 500 ms, with `controller_flags` besides) and `gateways`
    /// gateway replicas on its ledger, scoped to `namespace`, the gateways ready: the set-up of
    /// the multi-replica tests.
    pub fn controller_and_gateways(
        namespace: &str,
        gateways: usize,
        controller_flags: &[String],
    ) -> (Aigov, Vec<Aigov>) {
        Self::deployment(namespace, gateways, controller_flags, true)
    }

    /// As [`Aigov::controller_and_gateways`], but every process watches every namespace (a
    /// cluster-wide install, which ClusterAIBudgets need); `namespace` only holds the Lease.
    pub fn cluster_wide(namespace: &str, gateways: usize) -> (Aigov, Vec<Aigov>) {
        Self::deployment(namespace, gateways, &[], false)
    }

    fn deployment(
        namespace: &str,
        gateways: usize,
        controller_flags: &[String],
        scoped: bool,
    ) -> (Aigov, Vec<Aigov>) {
        let mut extra = vec!["--settle".to_owned(), "500ms".to_owned()];
        extra.extend_from_slice(controller_flags);
        let controller = Options {
            role: "controller",
            extra,
            scoped,
            ..Options::all(namespace)
        };
        let controller = Aigov::start(controller, false);
        let replicas = (0..gateways)
            .map(|_| {
                let gateway = Options {
                    role: "gateway",
                    controller_endpoints: vec![controller.ledger.clone()],
                    scoped,
                    ..Options::all(namespace)
                };
                Aigov::start(gateway, true)
            })
            .collect();
        (controller, replicas)
    }

    /// Starts the process and waits until `/readyz` answers 200 (or `wait_ready` is false).
    pub fn start(options: Options, wait_ready: bool) -> Aigov {
        let ports = Ports {
            gateway: free_port(),
            ledger: options.ledger_port.unwrap_or_else(free_port),
            metrics: free_port(),
        };
        let ledger = format!("http://127.0.0.1:{}", ports.ledger);
        let (flags, env) = command_line(&options, &ports, &ledger);
        let log = std::env::temp_dir().join(format!("{}.log", options.identity));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = match &options.launcher {
            None => {
                let mut command = Command::new(binary(options.role));
                command
                    .args(&flags)
                    .envs(env)
                    .env_remove("AWS_SESSION_TOKEN");
                command.env_remove("AWS_PROFILE");
                command
            }
            Some(launcher) => launcher.command(&flags, &env),
        };
        command
            .stdout(Stdio::from(log_file.try_clone().expect("log")))
            .stderr(Stdio::from(log_file));
        let child = command.spawn().expect("the aigov binary starts");
        let aigov = Aigov {
            child: Some(child),
            gateway: format!("http://127.0.0.1:{}", ports.gateway),
            ledger,
            metrics_port: ports.metrics,
            log,
        };
        if wait_ready {
            aigov.wait_ready(Duration::from_secs(30));
        }
        aigov
    }

    /// Waits until `/readyz` says ready, or panics with the process's log.
    pub fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.get("/readyz").is_some_and(|(status, _)| status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("aigov never became ready:\n{}", self.log_text());
    }

    /// GETs a path on the metrics port: `(status, body)`.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        crate::http_get(&format!("127.0.0.1:{}", self.metrics_port), path)
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process (SIGKILL: a crash, not a goodbye) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the process to stop as a kubelet does (SIGTERM), without waiting.
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success(), "kill -TERM {}", child.id());
        }
    }

    /// Waits up to `within` for the process to exit; its exit status, or None if it still runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut()?.try_wait().ok().flatten() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

/// The loopback ports of one process.
struct Ports {
    gateway: u16,
    ledger: u16,
    metrics: u16,
}

/// The flags and environment that start `options` on `ports` (the same whether the binary runs
/// directly or in a container).
fn command_line(
    options: &Options,
    ports: &Ports,
    ledger: &str,
) -> (Vec<String>, Vec<(String, String)>) {
    let env = local_env();
    let endpoints = if options.controller_endpoints.is_empty() {
        vec![ledger.to_owned()]
    } else {
        options.controller_endpoints.clone()
    };
    let mut flags: Vec<String> = Vec::new();
    let mut flag = |name: &str, value: &str| flags.extend([name.to_owned(), value.to_owned()]);
    if options.role != "gateway" {
        flag("--role", options.role);
        flag("--namespace", &options.namespace);
        flag("--lease-name", &options.lease);
        flag("--ledger-listen", &format!("127.0.0.1:{}", ports.ledger));
    }
    flag("--identity", &options.identity);
    flag("--gateway-listen", &format!("127.0.0.1:{}", ports.gateway));
    flag("--metrics-listen", &format!("127.0.0.1:{}", ports.metrics));
    flag("--controller-endpoints", &endpoints.join(","));
    flag("--bedrock-endpoint", &env.bedrock_sim_endpoint);
    flag("--mantle-endpoint", &env.bedrock_sim_endpoint);
    flag("--follow-interval", "100ms");
    if options.scoped {
        flag("--watch-namespace", &options.namespace);
    }
    flags.extend(options.extra.iter().cloned());
    let kubeconfig = options.kubeconfig.as_ref().unwrap_or(&env.kubeconfig);
    let log = std::env::var("AIGOV_TEST_LOG").unwrap_or_else(|_| "info,kube_runtime=warn".into());
    let mut vars: Vec<(String, String)> = [
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("AWS_ACCESS_KEY_ID", "aigov-gateway".into()),
        ("AWS_SECRET_ACCESS_KEY", "gateway-secret".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", env.moto_endpoint.clone()),
        ("RUST_LOG", log),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    vars.extend(options.env.iter().cloned());
    (flags, vars)
}

/// Runs the binary inside something else, such as a container: `program args... --env K=V...
/// before_binary... binary flags...` (`buildah run ... CONTAINER -- /usr/local/bin/aigov-gateway`).
#[derive(Clone, Debug)]
pub struct Launcher {
    /// The program (`buildah`).
    pub program: String,
    /// Its arguments before the environment.
    pub args: Vec<String>,
    /// Its arguments after the environment and before the binary (`CONTAINER --`).
    pub before_binary: Vec<String>,
    /// The binary's path where it runs.
    pub binary: String,
}

impl Launcher {
    fn command(&self, flags: &[String], env: &[(String, String)]) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (k, v) in env {
            command.args(["--env", &format!("{k}={v}")]);
        }
        command
            .args(&self.before_binary)
            .arg(&self.binary)
            .args(flags);
        command
    }
}

impl Drop for Aigov {
    fn drop(&mut self) {
        self.kill();
    }
}
