//! `aigov-controller`: one binary, three roles. `controller` runs the AIBudget reconciler and
//! the usage ledger (leader-elected); `gateway` runs the Bedrock metering gateway; `all` runs
//! both in one process (they still talk over gRPC, as separate processes would).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aigov_controller::clock::Clock;
use aigov_controller::gateway::cluster::ClusterView;
use aigov_controller::gateway::forward::{Upstream, UpstreamConfig};
use aigov_controller::gateway::slices::{SliceConfig, Slices};
use aigov_controller::gateway::{self, Gateway, GatewayConfig, UnknownCallers};
use aigov_controller::ledger_service::{LedgerService, LedgerShared};
use aigov_controller::metrics::Metrics;
use aigov_controller::prices::Prices;
use aigov_controller::{alerts, emf, events, leader, reconcile};
use anyhow::Context as _;
use aws_credential_types::provider::SharedCredentialsProvider;
use clap::{Parser, ValueEnum};
use rust_decimal::Decimal;

/// Which parts of aigov this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// The AIBudget reconciler and usage ledger.
    Controller,
    /// The Bedrock metering gateway.
    Gateway,
    /// Both in one process.
    All,
}

/// Command-line interface; every flag also reads an environment variable.
#[derive(Parser, Debug)]
#[command(version, about = "aigov controller and metering gateway")]
struct Cli {
    /// Which role to run.
    #[arg(long, value_enum, env = "AIGOV_ROLE", default_value = "all")]
    role: Role,
    /// This replica's name (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "aigov-system")]
    namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "AIGOV_LEASE_NAME", default_value = "aigov-controller")]
    lease_name: String,
    /// Lease duration: a new leader takes over this long after the old one stops renewing.
    #[arg(long, env = "AIGOV_LEASE_DURATION", default_value = "10s", value_parser = humantime_like)]
    lease_duration: Duration,
    /// Where the controller serves the ledger (gRPC).
    #[arg(long, env = "AIGOV_LEDGER_LISTEN", default_value = "127.0.0.1:7070")]
    ledger_listen: SocketAddr,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "AIGOV_METRICS_LISTEN", default_value = "127.0.0.1:9090")]
    metrics_listen: SocketAddr,
    /// Where the gateway serves the Bedrock runtime API.
    #[arg(long, env = "AIGOV_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    gateway_listen: SocketAddr,
    /// The controller replicas' ledger URLs, comma-separated (the gateway finds the leader).
    #[arg(
        long,
        env = "AIGOV_CONTROLLER_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:7070"
    )]
    controller_endpoints: Vec<String>,
    /// Bedrock runtime endpoint (default: the region's public endpoint).
    #[arg(long, env = "AIGOV_BEDROCK_ENDPOINT")]
    bedrock_endpoint: Option<String>,
    /// AWS region for Bedrock signing.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// How long to wait for Bedrock's response headers.
    #[arg(long, env = "AIGOV_UPSTREAM_TIMEOUT", default_value = "60s", value_parser = humantime_like)]
    upstream_timeout: Duration,
    /// Status writes per budget are coalesced to at most one per this interval.
    #[arg(long, env = "AIGOV_STATUS_INTERVAL", default_value = "1s", value_parser = humantime_like)]
    status_interval: Duration,
    /// Time between a gateway's routine ledger exchanges.
    #[arg(long, env = "AIGOV_EXCHANGE_INTERVAL", default_value = "250ms", value_parser = humantime_like)]
    exchange_interval: Duration,
    /// How long a gateway may spend its slice without reaching the controller.
    #[arg(long, env = "AIGOV_SLICE_TTL", default_value = "20s", value_parser = humantime_like)]
    slice_ttl: Duration,
    /// When the controller takes back a silent gateway's slices (must exceed the slice TTL
    /// by more than the longest call).
    #[arg(long, env = "AIGOV_GATEWAY_EXPIRY", default_value = "90s", value_parser = humantime_like)]
    gateway_expiry: Duration,
    /// A new leader grants nothing for this long, while gateways report what they hold.
    #[arg(long, env = "AIGOV_SETTLE", default_value = "2s", value_parser = humantime_like)]
    settle: Duration,
    /// Slice a gateway asks for, as a fraction of the limit.
    #[arg(long, env = "AIGOV_SLICE_FRACTION", default_value = "0.05")]
    slice_fraction: Decimal,
    /// Callers whose IP matches no pod.
    #[arg(
        long,
        env = "AIGOV_UNKNOWN_CALLERS",
        value_enum,
        default_value = "refuse"
    )]
    unknown_callers: UnknownCallers,
    /// Largest request body the gateway accepts.
    #[arg(long, env = "AIGOV_MAX_BODY_BYTES", default_value_t = 20 << 20)]
    max_body_bytes: usize,
    /// CloudWatch Logs group for per-request EMF usage records (unset: none are written).
    #[arg(long, env = "AIGOV_EMF_LOG_GROUP")]
    emf_log_group: Option<String>,
    /// Send alerts (SNS, webhooks).
    #[arg(long, env = "AIGOV_ALERTS", default_value_t = true, action = clap::ArgAction::Set)]
    alerts: bool,
    /// Watch only this namespace (budgets, pods, the lease namespace is separate); unset: all.
    #[arg(long, env = "AIGOV_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Testing only: a file holding "<target time> <written at>" shifts this process's clock.
    #[arg(long, env = "AIGOV_CLOCK_FILE")]
    clock_file: Option<PathBuf>,
}

/// Parses `250ms`, `2s`, `1m30s`, `1h` (jiff's friendly duration format).
fn humantime_like(text: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration such as 250ms, 2s or 1m30s: {e}"))?;
    Duration::try_from(parsed)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?}: a duration must be positive"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_runtime=warn,tower=warn,hyper=warn".into()),
        )
        .init();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let identity = cli
        .identity
        .clone()
        .unwrap_or_else(|| format!("aigov-{}", std::process::id()));
    let clock = cli
        .clock_file
        .clone()
        .map_or_else(Clock::system, Clock::from_file);
    let client = kube::Client::try_default()
        .await
        .context("a Kubernetes client (in-cluster or KUBECONFIG)")?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let metrics = Arc::new(Metrics::default());
    let prices = Prices::default();

    let metrics_listener = tokio::net::TcpListener::bind(cli.metrics_listen)
        .await
        .with_context(|| format!("--metrics-listen {}", cli.metrics_listen))?;
    tokio::spawn(metrics.clone().serve(metrics_listener));

    let mut tasks = tokio::task::JoinSet::new();
    let runs_controller = matches!(cli.role, Role::Controller | Role::All);
    let runs_gateway = matches!(cli.role, Role::Gateway | Role::All);

    if runs_controller {
        let emf_writer = cli.emf_log_group.clone().map(|group| {
            emf::EmfWriter::start(
                aws_sdk_cloudwatchlogs::Client::new(&aws),
                group,
                identity.clone(),
            )
        });
        let (shared, changed) = LedgerShared::new(
            prices.clone(),
            cli.settle,
            metrics.clone(),
            clock.clone(),
            emf_writer,
        );
        let listener = tokio::net::TcpListener::bind(cli.ledger_listen)
            .await
            .with_context(|| format!("--ledger-listen {}", cli.ledger_listen))?;
        let server = LedgerService::server(shared.clone());
        tasks.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(tokio_stream_from(listener))
                .await
                .context("ledger gRPC server")
        });
        let alerter = cli
            .alerts
            .then(|| alerts::Alerter::start(aws_sdk_sns::Client::new(&aws), client.clone()));
        let ctx = reconcile::Context::new(
            client.clone(),
            shared.clone(),
            events::recorder(client.clone(), &identity),
            alerter,
            clock.clone(),
            cli.status_interval,
        );
        let elector = leader::Elector::new(
            client.clone(),
            &cli.namespace,
            &cli.lease_name,
            &identity,
            cli.lease_duration,
        );
        let metrics_c = metrics.clone();
        let prices_c = prices.clone();
        let client_c = client.clone();
        let gateway_expiry = cli.gateway_expiry;
        let gateway_too = runs_gateway;
        let watch_namespace = cli.watch_namespace.clone();
        let identity_c = identity.clone();
        tasks.spawn(async move {
            let identity = identity_c;
            tracing::info!(%identity, "waiting for the leader lease");
            elector.acquire().await;
            tracing::info!("leading: the ledger and status writes are ours");
            let ctx_prices = ctx.clone();
            tokio::spawn(prices_c.watch(client_c, move |p| ctx_prices.price_changed(p)));
            shared.start_leading(&identity);
            if !gateway_too {
                metrics_c.ready.store(true, Ordering::Release);
            }
            let run = tokio::spawn(reconcile::run(
                ctx,
                changed,
                gateway_expiry,
                watch_namespace,
            ));
            elector.hold().await;
            run.abort();
            anyhow::bail!("lost the leader lease; exiting so that a fresh process stands again")
        });
    } else {
        tokio::spawn(prices.clone().watch(client.clone(), |_| {}));
    }

    if runs_gateway {
        let cluster = ClusterView::default();
        tokio::spawn(
            cluster
                .clone()
                .watch(client.clone(), cli.watch_namespace.clone()),
        );
        let slices = Slices::new(SliceConfig {
            gateway_id: format!("{identity}-{:x}", std::process::id() as u64 ^ nonce()),
            endpoints: cli.controller_endpoints.clone(),
            interval: cli.exchange_interval,
            ttl: cli.slice_ttl,
            slice_fraction: cli.slice_fraction,
            max_pending: 1_000_000,
            batch: 5_000,
        });
        tokio::spawn(slices.clone().run());
        let slices_ready = slices.clone();
        let credentials = aws
            .credentials_provider()
            .context("the gateway needs AWS credentials (standard chain) to sign for Bedrock")?;
        let endpoint = cli
            .bedrock_endpoint
            .clone()
            .unwrap_or_else(|| format!("https://bedrock-runtime.{}.amazonaws.com", cli.region));
        let upstream = Upstream::new(
            UpstreamConfig {
                endpoint,
                region: cli.region.clone(),
                timeout: cli.upstream_timeout,
            },
            SharedCredentialsProvider::new(credentials),
        )?;
        let gateway = Gateway::new(
            GatewayConfig {
                max_body_bytes: cli.max_body_bytes,
                unknown_callers: cli.unknown_callers,
                ..GatewayConfig::default()
            },
            cluster.clone(),
            slices,
            prices.clone(),
            upstream,
            Some(events::PodWarnings::start(
                client.clone(),
                &identity,
                Duration::from_secs(60),
            )),
            metrics.clone(),
            clock.clone(),
            format!("aigov-{:08x}", nonce() as u32),
        );
        let listener = tokio::net::TcpListener::bind(cli.gateway_listen)
            .await
            .with_context(|| format!("--gateway-listen {}", cli.gateway_listen))?;
        tracing::info!(listen = %cli.gateway_listen, "gateway serving");
        let metrics_g = metrics.clone();
        tokio::spawn(async move {
            while !(cluster.synced() && slices_ready.ready()) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            metrics_g.ready.store(true, Ordering::Release);
        });
        tasks.spawn(async move {
            gateway::serve(listener, gateway).await;
            Ok(())
        });
    }

    tokio::select! {
        Some(done) = tasks.join_next() => {
            done.context("task panicked")??;
            Ok(())
        }
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

fn nonce() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    })
}
