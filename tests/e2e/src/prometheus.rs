//! A real Prometheus (Debian's package, unpacked by `tests/env/tools.sh prometheus`) for a
//! test: scrapes the given aigov processes every second, evaluates rule files every second,
//! answers queries through its HTTP API, and is stopped by PID when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where Prometheus and promtool are (`$AIGOV_PROMETHEUS_DIR/bin`, set by env.sh).
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var("AIGOV_PROMETHEUS_DIR").expect(
        "AIGOV_PROMETHEUS_DIR is not set: run tests/env/up.sh (tools.sh prometheus) and source env.sh",
    );
    let path = Path::new(&dir).join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run tests/env/tools.sh prometheus",
        path.display()
    );
    path
}

/// Runs promtool with `args` in `dir`.
pub fn promtool(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin("promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs")
}

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    /// `127.0.0.1:PORT` of its HTTP API.
    pub addr: String,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `jobs` (job name, `127.0.0.1:PORT` of a `/metrics`) every
    /// second and evaluating `rules` (rule files) every second.
    pub fn start(jobs: &[(&str, String)], rules: &[PathBuf]) -> Prometheus {
        let dir = std::env::temp_dir().join(crate::unique("prometheus"));
        std::fs::create_dir_all(&dir).expect("a directory");
        let mut config =
            String::from("global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files:\n");
        for rule in rules {
            config += &format!("  - {}\n", rule.display());
        }
        config += "scrape_configs:\n";
        for (job, target) in jobs {
            config +=
                &format!("  - job_name: {job}\n    static_configs: [{{targets: ['{target}']}}]\n");
        }
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        let addr = format!("127.0.0.1:{}", crate::aigov::free_port());
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new(bin("prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("prometheus starts");
        Prometheus { child, addr, dir }
    }

    /// GETs `path` with `params` from the HTTP API; the JSON answer's `data`.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Option<serde_json::Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut request = agent.get(format!("http://{}{path}", self.addr));
        for (k, v) in params {
            request = request.query(*k, *v);
        }
        let mut response = request.call().ok()?;
        let body: serde_json::Value =
            serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
        assert_eq!(body["status"], "success", "{path} {params:?}: {body}");
        Some(body["data"].clone())
    }

    /// The series an instant query returns (`data.result`).
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        self.api("/api/v1/query", &[("query", expr)])
            .and_then(|d| d["result"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits until every scrape target is up.
    pub fn wait_targets_up(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let targets = self.api("/api/v1/targets", &[]);
            let active = targets
                .as_ref()
                .and_then(|t| t["activeTargets"].as_array().cloned())
                .unwrap_or_default();
            if !active.is_empty() && active.iter().all(|t| t["health"] == "up") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "targets not up: {targets:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(self.dir.join("data"));
    }
}
