//! `aigov-gateway`: the metering gateway, one replica of the data path. Stops gracefully on
//! SIGTERM or SIGINT (see [`aigov_gateway::app::RunningGateway::stop`]); exits non-zero when
//! one of its background tasks fails.
#![forbid(unsafe_code)]

use std::sync::Arc;

use aigov_gateway::app::{self, GatewayArgs};
use aigov_runtime::cli::{CommonArgs, prepare_process};
use aigov_runtime::prices::Prices;
use aigov_runtime::probes::{self, Readiness};
use aigov_runtime::supervise::{self, Supervisor};
use anyhow::Context as _;
use clap::Parser;
use prometheus_client::registry::Registry;

/// Command-line interface; every flag also reads an environment variable.
#[derive(Parser, Debug)]
#[command(version, about = "aigov metering gateway (Bedrock runtime API)")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stop = prepare_process().context("installing the SIGTERM and SIGINT handlers")?;
    let cli = Cli::parse();
    let client = kube::Client::try_default()
        .await
        .context("a Kubernetes client (in-cluster or KUBECONFIG)")?;
    let shared = app::Shared {
        client: client.clone(),
        aws: aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
        prices: Prices::default(),
        clock: cli.common.clock(),
        identity: cli.common.identity(),
        watch_namespace: cli.common.watch_namespace.clone(),
    };
    let mut registry = Registry::with_prefix("aigov");
    let readiness = Readiness::default();
    let mut tasks = Supervisor::default();
    tasks.spawn_forever("price watch", shared.prices.clone().watch(client, |_| {}));
    let gateway = app::start(&cli.gateway, &shared, &mut registry, &readiness, &mut tasks).await?;
    let probes_listener = tokio::net::TcpListener::bind(cli.common.metrics_listen)
        .await
        .with_context(|| format!("--metrics-listen {}", cli.common.metrics_listen))?;
    tasks.spawn_forever(
        "probe endpoint",
        probes::serve(probes_listener, Arc::new(registry), readiness.clone()),
    );
    supervise::until_stopped(&mut tasks, &readiness, stop).await?;
    gateway.stop().await;
    Ok(())
}
