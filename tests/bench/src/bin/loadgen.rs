//! An open-loop HTTP load generator for the gateway benchmark: sends Converse calls at a fixed
//! rate (a request every 1/rate seconds, whether or not earlier ones have answered, so a slow
//! server cannot slow the clock down and hide its latency), from a chosen source address, and
//! prints one JSON line of latency percentiles.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Command line.
#[derive(Parser, Debug)]
struct Cli {
    /// Base URL (the simulator, the gateway, or LiteLLM).
    #[arg(long)]
    url: String,
    /// Requests per second.
    #[arg(long)]
    rate: u32,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Source address of the connections (a pod IP for the gateway).
    #[arg(long)]
    source: Option<IpAddr>,
    /// `bedrock` (POST /model/{id}/converse) or `openai` (POST /chat/completions, LiteLLM).
    #[arg(long, default_value = "bedrock")]
    api: String,
    /// Bearer key for the OpenAI-style API.
    #[arg(long, default_value = "")]
    key: String,
    /// A label printed with the figures.
    #[arg(long, default_value = "")]
    label: String,
    /// Seconds of warm-up at the same rate, not measured.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Tags each Converse call with request metadata `feature=bench` and one of this many
    /// distinct `user` values in turn (0: no metadata).
    #[arg(long, default_value_t = 0)]
    users: u32,
}

/// The request bodies sent in turn: one, or one per distinct user.
fn bodies(api: &str, users: u32) -> Vec<Bytes> {
    let body = |user: Option<u32>| match api {
        "openai" => serde_json::json!({"model": "haiku", "max_tokens": 16,
            "messages": [{"role": "user", "content": "benchmark"}]}),
        _ => {
            let mut body = serde_json::json!({"messages": [{"role": "user", "content": [{"text": "benchmark"}]}],
                "inferenceConfig": {"maxTokens": 16}});
            if let Some(u) = user {
                body["requestMetadata"] =
                    serde_json::json!({"feature": "bench", "user": format!("u-{u:06}")});
            }
            body
        }
    };
    match users {
        0 => vec![Bytes::from(body(None).to_string())],
        n => (0..n)
            .map(|u| Bytes::from(body(Some(u)).to_string()))
            .collect(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_local_address(cli.source);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(connector);
    let path = match cli.api.as_str() {
        "openai" => "/chat/completions",
        _ => "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
    };
    let bodies = Arc::new(bodies(&cli.api, cli.users));
    let uri: http::Uri = format!("{}{}", cli.url.trim_end_matches('/'), path).parse()?;
    let auth = if cli.api == "openai" {
        format!("Bearer {}", cli.key)
    } else {
        "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00".to_owned()
    };
    let auth = Arc::new(auth);

    let run = |seconds: u64| {
        let (client, uri, bodies, auth) =
            (client.clone(), uri.clone(), bodies.clone(), auth.clone());
        let rate = cli.rate;
        async move {
            let total = rate as u64 * seconds;
            let interval = Duration::from_secs_f64(1.0 / rate as f64);
            let start = tokio::time::Instant::now();
            let mut tasks = Vec::with_capacity(total as usize);
            for i in 0..total {
                tokio::time::sleep_until(start + interval * i as u32).await;
                let scheduled = Instant::now();
                let request = http::Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .header("authorization", auth.as_str())
                    .header("x-amz-date", "20260101T000000Z")
                    .body(Full::new(bodies[i as usize % bodies.len()].clone()))
                    .expect("request");
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    match client.request(request).await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let _ = response.into_body().collect().await;
                            (scheduled.elapsed(), status)
                        }
                        Err(_) => (scheduled.elapsed(), 0),
                    }
                }));
            }
            let mut results = Vec::with_capacity(tasks.len());
            for t in tasks {
                results.push(t.await.expect("task"));
            }
            (results, start.elapsed())
        }
    };
    if cli.warmup > 0 {
        run(cli.warmup).await;
    }
    let (results, elapsed) = run(cli.seconds).await;
    let ok: Vec<Duration> = results
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(d, _)| *d)
        .collect();
    let errors = results.len() - ok.len();
    let mut micros: Vec<u64> = ok.iter().map(|d| d.as_micros() as u64).collect();
    micros.sort_unstable();
    let pct = |p: f64| {
        micros
            .get(((micros.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{}",
        serde_json::json!({
            "label": cli.label, "rate": cli.rate, "sent": results.len(), "ok": ok.len(), "errors": errors,
            "achieved_rps": (ok.len() as f64 / elapsed.as_secs_f64()).round(),
            "p50_us": pct(0.50), "p90_us": pct(0.90), "p99_us": pct(0.99), "max_us": micros.last().copied().unwrap_or(0),
        })
    );
    Ok(())
}
