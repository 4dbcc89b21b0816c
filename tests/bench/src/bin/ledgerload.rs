//! The controller benchmarks' usage stream: stands in for `--gateways` metering gateways and
//! sends usage records to the ledger over its real gRPC API at a steady rate, spread over the
//! `load-<n>/b-<m>` budgets (and, with `--cluster-budgets C`, the ClusterAIBudget `cap-<n % C>`
//! covering namespace `load-<n>`, as a gateway charges a call to every level that selects it).
//! Prints one JSON line: records accepted per second, exchange latency, and every budget's
//! expected spend (to check statuses against; a cap's key is `/cap-<c>`).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aigov_ledger::key;
use aigov_ledger::proto::ledger_client::LedgerClient;
use aigov_ledger::proto::{ExchangeRequest, UsageRecord};
use clap::Parser;
use tonic::transport::Channel;

/// Command line.
#[derive(Parser, Debug)]
struct Cli {
    /// The ledger's URL.
    #[arg(long)]
    ledger: String,
    /// Namespaces `load-0..N`.
    #[arg(long)]
    namespaces: usize,
    /// Budgets `b-0..M` per namespace.
    #[arg(long)]
    per_namespace: usize,
    /// ClusterAIBudgets `cap-0..C`: `cap-c` covers every namespace `load-n` with `n % C == c`,
    /// so each record is charged to its namespace's budget and to one cap. 0: no caps.
    #[arg(long, default_value_t = 0)]
    cluster_budgets: usize,
    /// Usage records per second in all.
    #[arg(long)]
    rate: usize,
    /// Seconds to send.
    #[arg(long)]
    seconds: u64,
    /// Simulated gateways.
    #[arg(long, default_value_t = 4)]
    gateways: usize,
    /// Where to write the expected spend per budget (JSON).
    #[arg(long)]
    expected: PathBuf,
    /// Seconds of call time (the records' `occurred_at_ms`) each second of load covers: the
    /// first record is stamped now, and with 60 every later one a minute of call time further
    /// per second sent. The ledger forgets request IDs by call time, so this makes its horizon
    /// pass within a short run (at `rate / scale` calls per second of call time).
    #[arg(long, default_value_t = 1.0)]
    call_time_scale: f64,
    /// Request IDs shaped like Bedrock's (a UUID, 36 characters) instead of the shorter
    /// `<gateway>-<sequence>`: the ledger keeps these, so their size is what it remembers.
    #[arg(long)]
    uuid_request_ids: bool,
    /// A file rewritten four times a second with the number of records the ledger has
    /// accepted so far, for a script sampling the controller alongside.
    #[arg(long)]
    progress: Option<PathBuf>,
}

/// What every simulated gateway sends, shared by their tasks.
struct Plan {
    seconds: u64,
    per_exchange: usize,
    namespaces: usize,
    per_namespace: usize,
    cluster_budgets: usize,
    uuid_request_ids: bool,
    clock: CallClock,
    /// Records the ledger accepted (their exchange answered OK), across gateways.
    accepted: AtomicU64,
}

/// The records' clock: starts at the wall clock's now and runs `scale` times as fast.
struct CallClock {
    wall_start_ms: i64,
    start: Instant,
    scale: f64,
}

impl CallClock {
    fn new(scale: f64) -> CallClock {
        let wall_start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        CallClock {
            wall_start_ms,
            start: Instant::now(),
            scale,
        }
    }

    fn now_ms(&self) -> i64 {
        self.wall_start_ms + (self.start.elapsed().as_secs_f64() * 1000.0 * self.scale) as i64
    }
}

/// What one simulated gateway sent: tokens per budget, exchange latencies, records.
type Sent = (BTreeMap<String, (u64, u64)>, Vec<Duration>, u64);

const TICKS_PER_SECOND: usize = 10;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let budgets = cli.namespaces * cli.per_namespace;
    let plan = Arc::new(Plan {
        seconds: cli.seconds,
        per_exchange: (cli.rate / TICKS_PER_SECOND / cli.gateways).max(1),
        namespaces: cli.namespaces,
        per_namespace: cli.per_namespace,
        cluster_budgets: cli.cluster_budgets,
        uuid_request_ids: cli.uuid_request_ids,
        clock: CallClock::new(cli.call_time_scale),
        accepted: AtomicU64::new(0),
    });
    let reporter = cli
        .progress
        .clone()
        .map(|path| tokio::spawn(report_progress(path, plan.clone())));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for g in 0..cli.gateways {
        let client = LedgerClient::connect(cli.ledger.clone())
            .await?
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        tasks.push(tokio::spawn(gateway(g, client, plan.clone())));
    }
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut latencies = Vec::new();
    let mut records = 0;
    for t in tasks {
        let (sent, l, n) = t.await?;
        for (k, (i, o)) in sent {
            let e = expected.entry(k).or_default();
            e.0 += i;
            e.1 += o;
        }
        latencies.extend(l);
        records += n;
    }
    let elapsed = start.elapsed();
    if let (Some(reporter), Some(path)) = (reporter, &cli.progress) {
        reporter.abort();
        write_progress(path, plan.accepted.load(Ordering::Relaxed))?;
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize].as_micros();
    std::fs::write(&cli.expected, serde_json::to_string(&expected)?)?;
    println!(
        "{}",
        serde_json::json!({
            "budgets": budgets, "records": records, "seconds": elapsed.as_secs_f64(),
            "records_per_second": (records as f64 / elapsed.as_secs_f64()).round(),
            "accepted": plan.accepted.load(Ordering::Relaxed),
            "exchange_p50_us": pct(0.5), "exchange_p99_us": pct(0.99),
            "budgets_with_usage": expected.len(),
        })
    );
    Ok(())
}

impl Plan {
    /// The keys a call of budget number `b` is charged to: its AIBudget's and, with caps, the
    /// cap covering its namespace.
    fn keys(&self, b: usize) -> Vec<String> {
        let namespace = b / self.per_namespace;
        let mut keys = vec![key::namespaced(
            &format!("load-{namespace}"),
            &format!("b-{}", b % self.per_namespace),
        )];
        if self.cluster_budgets > 0 {
            keys.push(key::cluster(&format!(
                "cap-{}",
                namespace % self.cluster_budgets
            )));
        }
        keys
    }
}

/// One simulated gateway: an exchange of `per_exchange` records every tick for `seconds`.
async fn gateway(g: usize, mut client: LedgerClient<Channel>, plan: Arc<Plan>) -> Sent {
    let gateway = format!("bench-gateway-{g}-{}", std::process::id());
    let mut sequence = 0u64;
    let mut sent: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut latencies = Vec::new();
    let mut interval = tokio::time::interval(Duration::from_millis(1000 / TICKS_PER_SECOND as u64));
    let budgets = plan.namespaces * plan.per_namespace;
    for tick in 0..plan.seconds * TICKS_PER_SECOND as u64 {
        interval.tick().await;
        let mut records = Vec::with_capacity(plan.per_exchange);
        for i in 0..plan.per_exchange {
            sequence += 1;
            let b = (sequence as usize * 7919 + g * 104_729 + i) % budgets;
            let keys = plan.keys(b);
            let (input, output) = (100 + (sequence % 50), 200 + (sequence % 300));
            for key in &keys {
                let e = sent.entry(key.clone()).or_default();
                e.0 += input;
                e.1 += output;
            }
            let request_id = if plan.uuid_request_ids {
                uuid_shaped(g, sequence)
            } else {
                format!("{gateway}-{sequence}")
            };
            records.push(UsageRecord {
                sequence,
                request_id,
                budgets: keys,
                model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
                input_tokens: input,
                output_tokens: output,
                occurred_at_ms: plan.clock.now_ms(),
                operation: "Converse".into(),
                pod_namespace: "bench".into(),
                pod_name: "loader".into(),
                ..Default::default()
            });
        }
        let count = records.len() as u64;
        let begun = Instant::now();
        let request = ExchangeRequest {
            gateway_id: gateway.clone(),
            records,
            holdings: Vec::new(),
        };
        match client.exchange(request).await {
            Ok(_) => {
                plan.accepted.fetch_add(count, Ordering::Relaxed);
            }
            Err(status) => eprintln!("exchange {tick}: {status}"),
        }
        latencies.push(begun.elapsed());
    }
    (sent, latencies, sequence)
}

/// A request ID in the shape Bedrock answers with (`x-amzn-RequestId`, a version-4-looking
/// UUID), unique per load generator process, gateway and sequence (all 64 bits of it).
fn uuid_shaped(g: usize, sequence: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        std::process::id(),
        g as u16,
        (sequence >> 60) & 0xf,
        (sequence >> 48) & 0xfff,
        sequence & 0xffff_ffff_ffff,
    )
}

/// Rewrites `path` with the records accepted so far, four times a second, until aborted.
async fn report_progress(path: PathBuf, plan: Arc<Plan>) {
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    loop {
        interval.tick().await;
        if let Err(e) = write_progress(&path, plan.accepted.load(Ordering::Relaxed)) {
            eprintln!("progress {}: {e}", path.display());
        }
    }
}

/// Replaces `path` with `accepted` whole (write aside, rename), so a reader never sees half.
fn write_progress(path: &Path, accepted: u64) -> std::io::Result<()> {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, format!("{accepted}\n"))?;
    std::fs::rename(&aside, path)
}
