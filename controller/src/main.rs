//! `aigov-controller`: the AIBudget reconciler, the AIBudgetTemplate controller and the usage
//! ledger (leader-elected), and with `--role all` the metering gateway too, in one process
//! (they still talk gRPC, as separate processes would; the demo runs it so). Stops gracefully on SIGTERM or SIGINT: stops leading
//! (no grant), flushes usage records, waits for alert deliveries in flight to be recorded in
//! status (pending alerts stay there for the next leader), releases the Lease so a standby
//! leads at once, and (with `--role all`) stops the gateway as `aigov-gateway` does.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aigov_controller::ledger_service::{LedgerService, LedgerShared};
use aigov_controller::metrics::Metrics;
use aigov_controller::{alerts, emf, leader, outbox, reconcile, second_source, templates};
use aigov_gateway::app::{self as gateway_app, GatewayArgs};
use aigov_runtime::cli::{CommonArgs, duration, prepare_process};
use aigov_runtime::events;
use aigov_runtime::prices::Prices;
use aigov_runtime::probes::{self, Readiness};
use aigov_runtime::supervise::{self, Supervisor};
use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use prometheus_client::registry::Registry;

/// Which parts of aigov this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// The AIBudget reconciler and usage ledger.
    Controller,
    /// The controller and a metering gateway in one process (the demo, tests).
    All,
}

/// Command-line interface; every flag also reads an environment variable.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "aigov controller (AIBudget reconciler and usage ledger)"
)]
struct Cli {
    /// Which role to run.
    #[arg(long, value_enum, env = "AIGOV_ROLE", default_value = "controller")]
    role: Role,
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    controller: ControllerArgs,
    /// The gateway's flags, used with `--role all`.
    #[command(flatten)]
    gateway: GatewayArgs,
}

/// The controller's own flags.
#[derive(clap::Args, Debug)]
struct ControllerArgs {
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "aigov-system")]
    namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "AIGOV_LEASE_NAME", default_value = "aigov-controller")]
    lease_name: String,
    /// Lease duration: a new leader takes over this long after the old one stops renewing.
    #[arg(long, env = "AIGOV_LEASE_DURATION", default_value = "10s", value_parser = duration)]
    lease_duration: Duration,
    /// Where the controller serves the ledger (gRPC).
    #[arg(long, env = "AIGOV_LEDGER_LISTEN", default_value = "127.0.0.1:7070")]
    ledger_listen: SocketAddr,
    /// Status writes per budget are coalesced to at most one per this interval.
    #[arg(long, env = "AIGOV_STATUS_INTERVAL", default_value = "1s", value_parser = duration)]
    status_interval: Duration,
    /// When the controller takes back a silent gateway's slices (must exceed the slice TTL
    /// by more than the longest call).
    #[arg(long, env = "AIGOV_GATEWAY_EXPIRY", default_value = "90s", value_parser = duration)]
    gateway_expiry: Duration,
    /// A new leader grants nothing for this long, while gateways report what they hold.
    #[arg(long, env = "AIGOV_SETTLE", default_value = "2s", value_parser = duration)]
    settle: Duration,
    /// CloudWatch Logs group for per-request EMF usage records (unset: none are written).
    #[arg(long, env = "AIGOV_EMF_LOG_GROUP")]
    emf_log_group: Option<String>,
    /// The CloudWatch Logs group Bedrock's model invocation logging writes to: the leader
    /// reconciles it with the ledger and charges the calls no gateway reported (needs
    /// `--emf-log-group`, the ledger's journal it matches against). Unset: not read.
    #[arg(long, env = "AIGOV_INVOCATION_LOG_GROUP", requires = "emf_log_group")]
    invocation_log_group: Option<String>,
    /// How far behind the present the invocation logs are read: longer than a gateway keeps
    /// re-sending an unacknowledged record, and than Bedrock takes to deliver its records.
    #[arg(long, env = "AIGOV_INVOCATION_LOG_LAG", default_value = "5m", value_parser = duration)]
    invocation_log_lag: Duration,
    /// How often a window of the invocation logs is read.
    #[arg(long, env = "AIGOV_INVOCATION_LOG_INTERVAL", default_value = "30s", value_parser = duration)]
    invocation_log_interval: Duration,
    /// Where the first reading starts, back from the present less the lag.
    #[arg(long, env = "AIGOV_INVOCATION_LOG_LOOKBACK", default_value = "1h", value_parser = duration)]
    invocation_log_lookback: Duration,
    /// Send alerts (SNS, webhooks).
    #[arg(long, env = "AIGOV_ALERTS", default_value_t = true, action = clap::ArgAction::Set)]
    alerts: bool,
    /// How long an alert is retried after it was recorded before it is dropped (a Warning
    /// Event `AlertDropped`, counted in `aigov_alerts_dropped_total`).
    #[arg(long, env = "AIGOV_ALERT_RETRY_HORIZON", default_value = "24h", value_parser = duration)]
    alert_retry_horizon: Duration,
    /// The longest wait between two delivery attempts of a failing alert channel (the backoff
    /// starts at 1s and doubles).
    #[arg(long, env = "AIGOV_ALERT_RETRY_MAX_BACKOFF", default_value = "5m", value_parser = duration)]
    alert_retry_max_backoff: Duration,
    /// On SIGTERM, how long to wait for usage records and alerts to go out before exiting.
    #[arg(long, env = "AIGOV_SHUTDOWN_FLUSH", default_value = "5s", value_parser = duration)]
    controller_shutdown_flush: Duration,
}

/// What the process runs, for the graceful stop.
struct Running {
    shared: Arc<LedgerShared>,
    elector: Arc<leader::Elector>,
    emf: Option<emf::EmfWriter>,
    alerter: Option<alerts::Alerter>,
    gateway: Option<gateway_app::RunningGateway>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stop = prepare_process().context("installing the SIGTERM and SIGINT handlers")?;
    let cli = Cli::parse();
    let client = kube::Client::try_default()
        .await
        .context("a Kubernetes client (in-cluster or KUBECONFIG)")?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut registry = Registry::with_prefix("aigov");
    let readiness = Readiness::default();
    let mut tasks = Supervisor::default();
    let running = start(&cli, client, aws, &mut registry, &readiness, &mut tasks).await?;
    let listener = tokio::net::TcpListener::bind(cli.common.metrics_listen)
        .await
        .with_context(|| format!("--metrics-listen {}", cli.common.metrics_listen))?;
    tasks.spawn_forever(
        "probe endpoint",
        probes::serve(listener, Arc::new(registry), readiness.clone()),
    );
    supervise::until_stopped(&mut tasks, &readiness, stop).await?;
    stop_gracefully(running, cli.controller.controller_shutdown_flush).await;
    tasks.abort_all();
    Ok(())
}

/// Starts the controller role (and the gateway with `--role all`).
async fn start(
    cli: &Cli,
    client: kube::Client,
    aws: aws_config::SdkConfig,
    registry: &mut Registry,
    readiness: &Readiness,
    tasks: &mut Supervisor,
) -> anyhow::Result<Running> {
    let args = &cli.controller;
    let identity = cli.common.identity();
    let clock = cli.common.clock();
    let prices = Prices::default();
    let emf = emf_writer(args, &aws, &identity);
    let metrics = Arc::new(Metrics::register(registry));
    let (shared, changed) = LedgerShared::new(
        prices.clone(),
        args.settle,
        metrics.clone(),
        clock.clone(),
        emf.clone(),
    );
    let listener = tokio::net::TcpListener::bind(args.ledger_listen)
        .await
        .with_context(|| format!("--ledger-listen {}", args.ledger_listen))?;
    tasks.spawn("ledger gRPC server", serve_ledger(listener, shared.clone()));
    let alerter = args
        .alerts
        .then(|| alerter(args, &aws, &client, &clock, metrics, &shared));
    let ctx = reconcile::Context::new(
        client.clone(),
        shared.clone(),
        events::recorder(client.clone(), &identity),
        alerter.clone(),
        clock.clone(),
        reconcile::Intervals {
            status: args.status_interval,
            gateway_expiry: args.gateway_expiry,
        },
    );
    // Every replica prices with the AIModelPrices in force, leading or not: a standby's
    // gateway (`--role all`) reserves with them, and a new leader needs them at once.
    let ctx_prices = ctx.clone();
    let watch = prices
        .clone()
        .watch(client.clone(), move |p| ctx_prices.price_changed(p));
    tasks.spawn_forever("price watch", watch);
    let elector = Arc::new(leader::Elector::new(
        client.clone(),
        &args.namespace,
        &args.lease_name,
        &identity,
        args.lease_duration,
    ));
    let leadership = Leadership {
        elector: elector.clone(),
        leading: readiness.condition("leading"),
        watch_namespace: cli.common.watch_namespace.clone(),
        identity: identity.clone(),
    };
    tasks.spawn("leadership", leadership.lead(ctx, changed));
    if let Some(reader) = invocation_log_reader(cli, &aws, &client, &shared, emf.as_ref()) {
        tasks.spawn_forever("invocation log reader", reader.run());
    }
    let gateway = match cli.role {
        Role::Controller => None,
        Role::All => {
            let shared = gateway_app::Shared {
                client,
                aws,
                prices,
                clock,
                identity,
                watch_namespace: cli.common.watch_namespace.clone(),
            };
            Some(gateway_app::start(&cli.gateway, &shared, registry, readiness, tasks).await?)
        }
    };
    Ok(Running {
        shared,
        elector,
        emf,
        alerter,
        gateway,
    })
}

/// The alert delivery task (`--alerts`), retrying as `--alert-retry-*` say.
fn alerter(
    args: &ControllerArgs,
    aws: &aws_config::SdkConfig,
    client: &kube::Client,
    clock: &aigov_ledger::clock::Clock,
    metrics: Arc<Metrics>,
    shared: &LedgerShared,
) -> alerts::Alerter {
    alerts::Alerter::start(alerts::AlerterParts {
        sns: aws_sdk_sns::Client::new(aws),
        kube: client.clone(),
        retry: outbox::Retry {
            horizon: args.alert_retry_horizon,
            max_backoff: args.alert_retry_max_backoff,
        },
        clock: clock.clone(),
        metrics,
        changed: shared.changed.clone(),
        own_namespace: args.namespace.clone(),
    })
}

/// The EMF writer for `--emf-log-group`, one log stream per replica (its identity).
fn emf_writer(
    args: &ControllerArgs,
    aws: &aws_config::SdkConfig,
    identity: &str,
) -> Option<emf::EmfWriter> {
    let group = args.emf_log_group.clone()?;
    let client = aws_sdk_cloudwatchlogs::Client::new(aws);
    Some(emf::EmfWriter::start(client, group, identity.to_owned()))
}

/// The reader of Bedrock's invocation logs (`--invocation-log-group`), which runs while this
/// replica leads.
fn invocation_log_reader(
    cli: &Cli,
    aws: &aws_config::SdkConfig,
    client: &kube::Client,
    shared: &Arc<LedgerShared>,
    emf: Option<&emf::EmfWriter>,
) -> Option<second_source::Reader> {
    let args = &cli.controller;
    let options = second_source::Options {
        invocation_group: args.invocation_log_group.clone()?,
        emf_group: args.emf_log_group.clone()?,
        interval: args.invocation_log_interval,
        lag: args.invocation_log_lag,
        lookback: args.invocation_log_lookback,
        scope: cli.common.watch_namespace.clone(),
    };
    let leases = kube::Api::namespaced(client.clone(), &args.namespace);
    let name = format!("{}-invocation-logs", args.lease_name);
    Some(second_source::Reader {
        options,
        logs: aws_sdk_cloudwatchlogs::Client::new(aws),
        cursor: second_source::cursor::Cursor::new(leases, &name),
        shared: shared.clone(),
        emf: emf?.clone(),
        client: client.clone(),
    })
}

/// What leading needs besides the reconciler's context.
struct Leadership {
    elector: Arc<leader::Elector>,
    leading: probes::ReadyFlag,
    watch_namespace: Option<String>,
    identity: String,
}

impl Leadership {
    /// Waits for the lease, then leads (ledger grants and status writes) until the lease is
    /// lost, which ends the process so that a fresh one stands again.
    async fn lead(
        self,
        ctx: Arc<reconcile::Context>,
        changed: tokio::sync::mpsc::UnboundedReceiver<aigov_ledger::ledger::BudgetKey>,
    ) -> anyhow::Result<()> {
        tracing::info!(identity = %self.identity, "waiting for the leader lease");
        let (epoch, proven_until) = self.elector.acquire().await;
        tracing::info!(epoch, "leading: the ledger and status writes are ours");
        ctx.shared
            .start_leading(&self.identity, epoch, proven_until);
        let shared = ctx.shared.clone();
        // `leading` (in /readyz) follows the proof of leadership: false while a renewal is
        // overdue, true again once one succeeds.
        let (flag, proof) = (self.leading.clone(), shared.clone());
        let follow = tokio::spawn(async move {
            loop {
                flag.set(proof.leads());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        // Templates span namespaces: only a controller that watches them all keeps them.
        let templates = self.watch_namespace.is_none().then(|| {
            let leads = shared.clone();
            tokio::spawn(templates::run(
                ctx.client.clone(),
                ctx.recorder.clone(),
                ctx.clock.clone(),
                Box::new(move || leads.leads()),
            ))
        });
        let run = reconcile::run(ctx, changed, self.watch_namespace);
        let run = tokio::spawn(run);
        self.elector
            .hold(proven_until, |until| shared.lease_renewed(until))
            .await;
        shared.stop_leading();
        follow.abort();
        self.leading.set(false);
        run.abort();
        if let Some(templates) = templates {
            templates.abort();
        }
        anyhow::bail!("lost the leader lease (or could not renew it in time)")
    }
}

/// Serves the ledger's gRPC service on `listener`.
async fn serve_ledger(
    listener: tokio::net::TcpListener,
    shared: Arc<LedgerShared>,
) -> Result<(), tonic::transport::Error> {
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    });
    tonic::transport::Server::builder()
        .add_service(LedgerService::server(shared))
        .serve_with_incoming(incoming)
        .await
}

/// The graceful stop: the gateway first (its calls settle and its records reach this
/// ledger), then the controller stops leading, flushes what it owes, and releases the Lease.
async fn stop_gracefully(running: Running, flush: Duration) {
    if let Some(gateway) = running.gateway {
        gateway.stop().await;
    }
    let deadline = tokio::time::Instant::now() + flush;
    // Still leading: the deliveries in flight are recorded in status (a replica that no
    // longer leads writes none).
    if let Some(alerter) = &running.alerter {
        alerter.flush(deadline).await;
    }
    running.shared.stop_leading();
    if let Some(emf) = &running.emf {
        emf.flush(deadline).await;
    }
    // Bounded: a replica that stops because the API server stopped answering must still exit.
    let release = tokio::time::timeout(Duration::from_secs(2), running.elector.release());
    match release.await {
        Ok(Ok(())) => tracing::info!("leader lease released"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the leader lease could not be released; the standby waits it out")
        }
        Err(_) => tracing::warn!("the API server did not answer: the standby waits the lease out"),
    }
}
