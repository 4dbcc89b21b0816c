//! The gateway role assembled from its flags: the pod and budget caches, the slices exchanged
//! with the controller, the signed upstream, and the listener; started under a
//! [`Supervisor`] and stopped gracefully by [`RunningGateway::stop`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aigov_ledger::clock::Clock;
use aigov_runtime::cli::{duration, nonce};
use aigov_runtime::prices::Prices;
use aigov_runtime::probes::Readiness;
use aigov_runtime::supervise::Supervisor;
use aws_credential_types::provider::SharedCredentialsProvider;
use prometheus_client::registry::Registry;
use rust_decimal::Decimal;
use tokio::sync::oneshot;

use crate::cluster::ClusterView;
use crate::forward::{ForwardError, Upstream, UpstreamConfig};
use crate::metrics::GatewayMetrics;
use crate::pod_warnings::PodWarnings;
use crate::server::{self, Drained};
use crate::slices::{SliceConfig, Slices};
use crate::{Gateway, GatewayConfig, UnknownCallers};

/// How often a pod is warned about refusals of the same kind, at most.
pub const POD_WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// Unacknowledged records a replica keeps before it refuses new calls (its memory bound).
pub const MAX_PENDING_RECORDS: usize = 1_000_000;
/// Records sent in one exchange with the controller.
pub const RECORDS_PER_EXCHANGE: usize = 5_000;

/// The gateway's flags; each also reads an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct GatewayArgs {
    /// Where the gateway serves the Bedrock runtime API.
    #[arg(long, env = "AIGOV_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub gateway_listen: SocketAddr,
    /// The controller replicas' ledger URLs, comma-separated (the gateway finds the leader).
    #[arg(
        long,
        env = "AIGOV_CONTROLLER_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:7070"
    )]
    pub controller_endpoints: Vec<String>,
    /// Bedrock runtime endpoint (default: the region's public endpoint).
    #[arg(long, env = "AIGOV_BEDROCK_ENDPOINT")]
    pub bedrock_endpoint: Option<String>,
    /// bedrock-mantle endpoint, for the OpenAI Chat Completions and Responses and the
    /// Anthropic Messages APIs (default: the region's public endpoint).
    #[arg(long, env = "AIGOV_MANTLE_ENDPOINT")]
    pub mantle_endpoint: Option<String>,
    /// A Bedrock API key the gateway sends to bedrock-mantle instead of signing with its
    /// credentials (the caller's own key is never forwarded).
    #[arg(long, env = "AIGOV_MANTLE_API_KEY", hide_env_values = true)]
    pub mantle_api_key: Option<String>,
    /// How often a job Bedrock finishes later (a background response, an async invocation)
    /// is polled until it settles.
    #[arg(long, env = "AIGOV_FOLLOW_INTERVAL", default_value = "5s", value_parser = duration)]
    pub follow_interval: Duration,
    /// AWS region for Bedrock signing.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// How long to wait for Bedrock's response headers.
    #[arg(long, env = "AIGOV_UPSTREAM_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub upstream_timeout: Duration,
    /// Time between a gateway's routine ledger exchanges.
    #[arg(long, env = "AIGOV_EXCHANGE_INTERVAL", default_value = "250ms", value_parser = duration)]
    pub exchange_interval: Duration,
    /// How long a gateway may spend its slice without reaching the controller.
    #[arg(long, env = "AIGOV_SLICE_TTL", default_value = "20s", value_parser = duration)]
    pub slice_ttl: Duration,
    /// Slice a gateway asks for, as a fraction of the limit.
    #[arg(long, env = "AIGOV_SLICE_FRACTION", default_value = "0.05")]
    pub slice_fraction: Decimal,
    /// Callers whose IP matches no pod.
    #[arg(
        long,
        env = "AIGOV_UNKNOWN_CALLERS",
        value_enum,
        default_value = "refuse"
    )]
    pub unknown_callers: UnknownCallers,
    /// Largest request body the gateway accepts.
    #[arg(long, env = "AIGOV_MAX_BODY_BYTES", default_value_t = 20 << 20)]
    pub max_body_bytes: usize,
    /// How long a client may leave a response unread (no byte taken) before the gateway cuts
    /// it: a stream so cut is charged as a hang-up is (Bedrock's usage, read to its end, or
    /// the stated estimate) and its reservation returns at once; the connection is closed.
    #[arg(long, env = "AIGOV_RESPONSE_WRITE_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub response_write_timeout: Duration,
    /// On SIGTERM, how long calls and streams in flight may take to finish before they are
    /// cut (Kubernetes' default terminationGracePeriodSeconds is 30 s; this leaves time to
    /// hand the usage records over after it).
    #[arg(long, env = "AIGOV_SHUTDOWN_GRACE", default_value = "25s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// After the calls have finished, how long to wait for the controller to acknowledge every
    /// usage record before exiting anyway.
    #[arg(long, env = "AIGOV_SHUTDOWN_FLUSH", default_value = "4s", value_parser = duration)]
    pub shutdown_flush: Duration,
}

/// What the gateway shares with the rest of the process.
pub struct Shared {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// AWS settings (credentials for signing).
    pub aws: aws_config::SdkConfig,
    /// The price book (watched by the process).
    pub prices: Prices,
    /// Time.
    pub clock: Clock,
    /// This replica's identity.
    pub identity: String,
    /// Watch only this namespace.
    pub watch_namespace: Option<String>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("--gateway-listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The standard AWS credential chain found nothing to sign with.
    #[error("the gateway needs AWS credentials (the standard chain) to sign for Bedrock")]
    NoCredentials,
    /// The Bedrock endpoint is unusable.
    #[error("--bedrock-endpoint: {0}")]
    Upstream(#[from] ForwardError),
}

/// A started gateway.
pub struct RunningGateway {
    slices: Arc<Slices>,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Drained>,
    flush: Duration,
}

impl RunningGateway {
    /// Stops gracefully: stops accepting, lets calls in flight finish (up to the grace
    /// period), gives back every slice and hands over every usage record, waiting for the
    /// controller's acknowledgement (up to `--shutdown-flush`).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let drained = self.served.await.unwrap_or(Drained::GraceExpired);
        let unacknowledged = self.slices.leave(self.flush).await;
        if unacknowledged == 0 {
            tracing::info!(?drained, "gateway stopped: every usage record acknowledged");
        } else {
            tracing::error!(
                ?drained,
                unacknowledged,
                "gateway stopped with usage records the controller never acknowledged"
            );
        }
    }
}

/// Starts the gateway: caches, slices, upstream and listener, its tasks under `tasks`.
pub async fn start(
    args: &GatewayArgs,
    shared: &Shared,
    registry: &mut Registry,
    readiness: &Readiness,
    tasks: &mut Supervisor,
) -> Result<RunningGateway, StartError> {
    let cluster = ClusterView::default();
    tasks.spawn_forever(
        "gateway pod and budget watch",
        cluster
            .clone()
            .watch(shared.client.clone(), shared.watch_namespace.clone()),
    );
    let slices = Slices::new(slice_config(args, &shared.identity));
    GatewayMetrics::register_exchanges(registry, &slices.exchanges);
    tasks.spawn_forever("ledger exchange", slices.clone().run());
    let gateway = Gateway::new(
        GatewayConfig {
            max_body_bytes: args.max_body_bytes,
            unknown_callers: args.unknown_callers,
            write_timeout: args.response_write_timeout,
            follow_interval: args.follow_interval,
            ..GatewayConfig::default()
        },
        cluster.clone(),
        slices.clone(),
        shared.prices.clone(),
        upstream(args, &shared.aws)?,
        Some(PodWarnings::start(
            shared.client.clone(),
            &shared.identity,
            POD_WARNING_INTERVAL,
        )),
        Arc::new(GatewayMetrics::register(registry)),
        shared.clock.clone(),
        format!("aigov-{:08x}", nonce() as u32),
    );
    let listener = tokio::net::TcpListener::bind(args.gateway_listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: args.gateway_listen,
            source,
        })?;
    tracing::info!(listen = %args.gateway_listen, "gateway serving");
    let ready = readiness.condition("gateway caches synced and a leader granting");
    let slices_ready = slices.clone();
    tokio::spawn(async move {
        while !(cluster.synced() && slices_ready.ready()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ready.set(true);
    });
    let (stop, stopped) = oneshot::channel();
    let stopped = async move {
        let _ = stopped.await;
    };
    let served = tokio::spawn(server::serve(
        listener,
        gateway,
        stopped,
        args.shutdown_grace,
    ));
    Ok(RunningGateway {
        slices,
        stop,
        served,
        flush: args.shutdown_flush,
    })
}

fn slice_config(args: &GatewayArgs, identity: &str) -> SliceConfig {
    SliceConfig {
        gateway_id: format!("{identity}-{:x}", std::process::id() as u64 ^ nonce()),
        endpoints: args.controller_endpoints.clone(),
        interval: args.exchange_interval,
        ttl: args.slice_ttl,
        slice_fraction: args.slice_fraction,
        max_pending: MAX_PENDING_RECORDS,
        batch: RECORDS_PER_EXCHANGE,
    }
}

fn upstream(args: &GatewayArgs, aws: &aws_config::SdkConfig) -> Result<Upstream, StartError> {
    let credentials = aws
        .credentials_provider()
        .ok_or(StartError::NoCredentials)?;
    let endpoint = args
        .bedrock_endpoint
        .clone()
        .unwrap_or_else(|| format!("https://bedrock-runtime.{}.amazonaws.com", args.region));
    let mantle_endpoint = args
        .mantle_endpoint
        .clone()
        .unwrap_or_else(|| format!("https://bedrock-mantle.{}.api.aws", args.region));
    let config = UpstreamConfig {
        endpoint,
        mantle_endpoint,
        mantle_api_key: args.mantle_api_key.clone(),
        region: args.region.clone(),
        timeout: args.upstream_timeout,
    };
    Ok(Upstream::new(
        config,
        SharedCredentialsProvider::new(credentials),
    )?)
}
