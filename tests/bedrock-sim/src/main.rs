//! `aigov-bedrock-sim`: serves the Bedrock runtime simulator on a loopback address.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;

/// Command-line interface.
#[derive(Parser, Debug)]
#[command(about = "A wire-faithful Amazon Bedrock runtime simulator")]
struct Cli {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:18080")]
    listen: std::net::SocketAddr,
    /// Delay before each answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Output tokens reported when the request does not say.
    #[arg(long, default_value_t = 16)]
    default_output_tokens: u64,
    /// `ACCESS_KEY=SECRET` whose SigV4 signatures are checked (repeatable).
    #[arg(long = "sigv4-secret", value_parser = key_secret)]
    sigv4_secrets: Vec<(String, String)>,
    /// AWS endpoint (moto) to write Bedrock's model invocation logs through: the account's
    /// logging configuration is read there, callers are identified with its STS, and records go
    /// to its CloudWatch Logs. Without it, nothing is logged.
    #[arg(long)]
    aws_endpoint: Option<String>,
    /// Region of the simulated Bedrock, for the invocation logs.
    #[arg(long, default_value = "us-east-1")]
    aws_region: String,
}

fn key_secret(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, s)| (k.to_owned(), s.to_owned()))
        .ok_or_else(|| format!("{text:?}: expected ACCESS_KEY=SECRET"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.listen.ip().is_loopback(),
        "the simulator listens on loopback addresses only"
    );
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let config = aigov_bedrock_sim::Config {
        latency_ms: cli.latency_ms,
        default_output_tokens: cli.default_output_tokens,
        ..aigov_bedrock_sim::Config::default()
    };
    let invocation_logs = match &cli.aws_endpoint {
        Some(endpoint) => Some(
            aigov_bedrock_sim::invocation_logs::InvocationLogs::start(endpoint, &cli.aws_region)
                .await,
        ),
        None => None,
    };
    let handle = aigov_bedrock_sim::server::serve_with(
        listener,
        config,
        cli.sigv4_secrets.into_iter().collect(),
        invocation_logs,
    )
    .await?;
    eprintln!("aigov-bedrock-sim listening on http://{}", handle.addr);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
