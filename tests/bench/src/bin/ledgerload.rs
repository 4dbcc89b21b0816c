//! The controller benchmark's usage stream: stands in for `--gateways` metering gateways and
//! sends usage records to the ledger over its real gRPC API at a steady rate, spread over the
//! `load-<n>/b-<m>` budgets. Prints one JSON line: records accepted per second, exchange
//! latency, and every budget's expected spend (to check statuses against).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aigov_ledger::proto::ledger_client::LedgerClient;
use aigov_ledger::proto::{ExchangeRequest, UsageRecord};
use clap::Parser;

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
    expected: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let budgets = cli.namespaces * cli.per_namespace;
    let ticks_per_second = 10;
    let per_exchange = (cli.rate / ticks_per_second / cli.gateways).max(1);
    let mut tasks = Vec::new();
    let start = Instant::now();
    for g in 0..cli.gateways {
        let mut client = LedgerClient::connect(cli.ledger.clone())
            .await?
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let seconds = cli.seconds;
        let (namespaces, per_namespace) = (cli.namespaces, cli.per_namespace);
        tasks.push(tokio::spawn(async move {
            let gateway = format!("bench-gateway-{g}-{}", std::process::id());
            let mut sequence = 0u64;
            let mut sent: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            let mut latencies = Vec::new();
            let mut interval =
                tokio::time::interval(Duration::from_millis(1000 / ticks_per_second as u64));
            let ticks = seconds * ticks_per_second as u64;
            for tick in 0..ticks {
                interval.tick().await;
                let mut records = Vec::with_capacity(per_exchange);
                for i in 0..per_exchange {
                    sequence += 1;
                    let b =
                        (sequence as usize * 7919 + g * 104_729 + i) % (namespaces * per_namespace);
                    let key = format!("load-{}/b-{}", b / per_namespace, b % per_namespace);
                    let (input, output) = (100 + (sequence % 50), 200 + (sequence % 300));
                    let e = sent.entry(key.clone()).or_default();
                    e.0 += input;
                    e.1 += output;
                    records.push(UsageRecord {
                        sequence,
                        request_id: format!("{gateway}-{sequence}"),
                        budgets: vec![key],
                        model: "anthropic.claude-3-haiku-20240307-v1:0".into(),
                        input_tokens: input,
                        output_tokens: output,
                        occurred_at_ms: std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_millis() as i64)
                            .unwrap_or_default(),
                        operation: "Converse".into(),
                        pod_namespace: "bench".into(),
                        pod_name: "loader".into(),
                        ..Default::default()
                    });
                }
                let begun = Instant::now();
                let request = ExchangeRequest {
                    gateway_id: gateway.clone(),
                    records,
                    holdings: Vec::new(),
                };
                if let Err(status) = client.exchange(request).await {
                    eprintln!("exchange {tick}: {status}");
                }
                latencies.push(begun.elapsed());
            }
            (sent, latencies, sequence)
        }));
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
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize].as_micros();
    std::fs::write(&cli.expected, serde_json::to_string(&expected)?)?;
    println!(
        "{}",
        serde_json::json!({
            "budgets": budgets, "records": records, "seconds": elapsed.as_secs_f64(),
            "records_per_second": (records as f64 / elapsed.as_secs_f64()).round(),
            "exchange_p50_us": pct(0.5), "exchange_p99_us": pct(0.99),
            "budgets_with_usage": expected.len(),
        })
    );
    Ok(())
}
