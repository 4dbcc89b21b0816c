//! `kubectl aigov`: reports on AIBudgets and Bedrock usage. Installed on PATH as
//! `kubectl-aigov`, kubectl runs it as `kubectl aigov ...`.
//!
//! `report` reads AIBudget status through the Kubernetes API (what `kubectl get aib` shows);
//! `top`, `compare`, `export` and `report --by` read the per-call usage records the controller
//! writes to CloudWatch Logs (the standard AWS credential chain, `AWS_ENDPOINT_URL` honoured).
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use aigov_api::period::time_zone;
use aigov_api::pricing::ServiceTier;
use aigov_api::{AIBudget, AIModelPrice, ClusterAIBudget};
use anyhow::{Context as _, bail};
use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, ResourceExt};
use kubectl_aigov::range::{self, TimeRange};
use kubectl_aigov::records::{ByKey, CallRecord, Scope};
use kubectl_aigov::table::Style;
use kubectl_aigov::{cloudwatch, compare, export, prices, reconcile, report, top};

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-aigov",
    bin_name = "kubectl aigov",
    version,
    about = "Who spent what on Bedrock, on which model, and where each AIBudget is heading"
)]
struct Cli {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

/// Where to look: the cluster (for AIBudgets) and the log group (for usage records).
#[derive(Args, Debug)]
struct Target {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, global = true)]
    all_namespaces: bool,
    /// Path to the kubeconfig (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// The CloudWatch Logs group the controller writes usage records to (its --emf-log-group).
    #[arg(
        long,
        global = true,
        env = "AIGOV_LOG_GROUP",
        default_value = "/aigov/usage"
    )]
    log_group: String,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value = "table")]
    output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned tables for a terminal.
    Table,
    /// JSON for scripts.
    Json,
    /// CSV (export only).
    Csv,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Per namespace and budget: spend, limit, forecast, top models and workloads, change
    /// against the last period.
    Report {
        /// Only this budget.
        budget: Option<String>,
        /// Instead: each budget's spend this period by the values of this request-metadata
        /// key (e.g. feature), from the usage records; calls without it show as (none).
        #[arg(long)]
        by: Option<String>,
    },
    /// Live spend rate by workload over a recent window.
    Top {
        /// How far back the rate is measured (e.g. 5m, 1h).
        #[arg(long, default_value = "5m")]
        window: String,
        /// Only calls charged to this budget.
        #[arg(long)]
        budget: Option<String>,
        /// Refresh until interrupted.
        #[arg(short, long)]
        watch: bool,
        /// Time between refreshes with --watch.
        #[arg(long, default_value = "5s")]
        interval: String,
        /// Rank the values of this request-metadata key (e.g. user) instead of workloads.
        #[arg(long)]
        by: Option<String>,
    },
    /// Two periods side by side, by model: spend, absolute and percentage change.
    Compare {
        /// The budget whose periods to compare (default ranges: its last period against the
        /// current one so far).
        budget: Option<String>,
        /// The first period, START..END (e.g. 2026-10-01..2026-11-01, -2h..-1h).
        #[arg(long, allow_hyphen_values = true)]
        a: Option<String>,
        /// The second period, START..END (e.g. 2026-11-01..now).
        #[arg(long, allow_hyphen_values = true)]
        b: Option<String>,
        /// Compare by the values of this request-metadata key (e.g. feature) instead of models.
        #[arg(long)]
        by: Option<String>,
    },
    /// The usage records of a time range, as CSV (default) or JSON.
    Export {
        /// Only records charged to this budget.
        #[arg(long)]
        budget: Option<String>,
        /// First instant (RFC 3339, a date, or -24h-style).
        #[arg(long, default_value = "-24h", allow_hyphen_values = true)]
        from: String,
        /// End, excluded.
        #[arg(long, default_value = "now", allow_hyphen_values = true)]
        to: String,
    },
    /// The price aigov charges for a model ID, inference profile or ARN, and where it comes
    /// from (the catalog, an AIModelPrice, or the fallback for a model nothing prices);
    /// without MODEL, the catalog and the cluster's AIModelPrices.
    Prices {
        /// A model reference as a client sends it (e.g. us.anthropic.claude-sonnet-4-5-20250929-v1:0).
        model: Option<String>,
        /// The service tier, as Bedrock spells it: default (Standard), priority, flex, reserved.
        #[arg(long, default_value = "default")]
        service_tier: String,
    },
    /// Bedrock's model invocation logs against the ledger: matched, drift, recovered, missing
    /// and unstamped calls and their money, and each call that is not plainly matched.
    Reconcile {
        /// The CloudWatch Logs group Bedrock's model invocation logging writes to.
        #[arg(long, env = "AIGOV_INVOCATION_LOG_GROUP")]
        invocation_log_group: String,
        /// Start of the range (RFC 3339, or relative like -24h).
        #[arg(long, default_value = "-24h", allow_hyphen_values = true)]
        from: String,
        /// End of the range.
        #[arg(long, default_value = "now", allow_hyphen_values = true)]
        to: String,
    },
    /// The plugin's version (and, with -o json, the AIBudget API version it reads).
    Version,
    /// A shell completion script for `kubectl-aigov` (the plugin's own name on PATH):
    /// `source <(kubectl-aigov completion bash)`; zsh and fish too.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let style = Style::detect();
    let now = Timestamp::now();
    let t = &cli.target;
    if t.output == Output::Csv && !matches!(cli.command, Command::Export { .. }) {
        bail!("-o csv is for export only; use -o table or -o json");
    }
    match &cli.command {
        Command::Version => print_version(t.output),
        Command::Completion { shell } => {
            let mut out = std::io::stdout();
            let mut command = Cli::command().bin_name("kubectl-aigov");
            clap_complete::generate(*shell, &mut command, "kubectl-aigov", &mut out);
        }
        Command::Prices {
            model,
            service_tier,
        } => {
            let tier = service_tier.parse::<ServiceTier>().map_err(|e| {
                anyhow::anyhow!("--service-tier: {e} (default, priority, flex or reserved)")
            })?;
            run_prices(t, style, (now, tier), model.as_deref()).await?
        }
        Command::Report {
            budget,
            by: Some(key),
        } => run_report_by(t, style, now, budget.as_deref(), &ByKey::parse(key)?).await?,
        Command::Report { budget, by: None } => {
            let (budgets, _) = budgets(t, budget.as_deref()).await?;
            // Caps span namespaces: shown over all of them, not for one budget.
            let caps = match (t.all_namespaces, budget) {
                (true, None) => cluster_budgets(t).await?,
                _ => Vec::new(),
            };
            let reports = report::reports(&budgets, &caps);
            match t.output {
                Output::Json => print_json(&reports),
                _ => print(&report::render(&reports, style)),
            }
        }
        Command::Top {
            window,
            budget,
            watch,
            interval,
            by,
        } => {
            let by = by.as_deref().map(ByKey::parse).transpose()?;
            run_top(t, style, (window, interval), (budget, by.as_ref()), *watch).await?
        }
        Command::Compare { budget, a, b, by } => {
            let by = by.as_deref().map(ByKey::parse).transpose()?;
            run_compare(t, style, now, budget, (a, b), by.as_ref()).await?
        }
        Command::Reconcile {
            invocation_log_group,
            from,
            to,
        } => {
            let range = TimeRange::between(
                range::instant(from, now, "--from")?,
                range::instant(to, now, "--to")?,
                "--from/--to",
            )?;
            run_reconcile(t, style, invocation_log_group, &range).await?
        }
        Command::Export { budget, from, to } => {
            let range = TimeRange::between(
                range::instant(from, now, "--from")?,
                range::instant(to, now, "--to")?,
                "--from/--to",
            )?;
            let scope = scope(t, budget.clone()).await?;
            let records: Vec<CallRecord> =
                cloudwatch::fetch(&logs().await, &t.log_group, &range).await?;
            let rows = export::select(&records, &scope, &range);
            match t.output {
                Output::Json => print_json(&rows),
                _ => print(&export::csv(&rows)?),
            }
        }
    }
    Ok(())
}

/// `prices`: one model's effective price, or the catalog and the cluster's AIModelPrices.
async fn run_prices(
    t: &Target,
    style: Style,
    (now, tier): (Timestamp, ServiceTier),
    model: Option<&str>,
) -> anyhow::Result<()> {
    let (client, _) = cluster(t).await?;
    let listed = Api::<AIModelPrice>::all(client)
        .list(&ListParams::default())
        .await
        .context("listing AIModelPrices (are the aigov CRDs installed?)")?
        .items;
    let (book, ignored) = prices::book(&listed);
    match (model, t.output) {
        (Some(model), Output::Json) => print_json(&prices::price_of(&book, model, tier, now)),
        (Some(model), _) => print(&prices::render_one(
            &prices::price_of(&book, model, tier, now),
            style,
        )),
        (None, Output::Json) => print_json(
            &aigov_api::catalog::entries()
                .iter()
                .map(|e| prices::price_of(&book, e.model_id, tier, now))
                .collect::<Vec<_>>(),
        ),
        (None, _) => print(&prices::render_all(&listed, &ignored, style)),
    }
    Ok(())
}

/// `version`: the plugin's version, and what it reads.
/// `reconcile`: the invocation logs of `range` beside the usage records written for them (looked
/// for ten minutes either side: the gateway times a call when it settles, Bedrock when it logs).
async fn run_reconcile(
    t: &Target,
    style: Style,
    invocation_group: &str,
    range: &TimeRange,
) -> anyhow::Result<()> {
    let (client, namespace) = cluster(t).await?;
    let listed = Api::<AIModelPrice>::all(client)
        .list(&ListParams::default())
        .await
        .context("listing AIModelPrices (are the aigov CRDs installed?)")?
        .items;
    let (book, _) = prices::book(&listed);
    let logs_client = logs().await;
    let logged = cloudwatch::fetch_invocations(&logs_client, invocation_group, range).await?;
    let slack = jiff::SignedDuration::from_mins(10);
    let around = TimeRange::between(range.from - slack, range.to + slack, "--from/--to")?;
    let records = cloudwatch::fetch(&logs_client, &t.log_group, &around).await?;
    let found = reconcile::reconcile(&logged, &records, namespace.as_deref(), &book);
    match t.output {
        Output::Json => print_json(&found),
        _ => print(&reconcile::render(&found, style)),
    }
    Ok(())
}

fn print_version(output: Output) {
    let version = env!("CARGO_PKG_VERSION");
    match output {
        Output::Json => print_json(&serde_json::json!({
            "version": version,
            "apiVersion": "aigov.dev/v1alpha1",
        })),
        _ => print(&format!(
            "kubectl-aigov {version} (reads aigov.dev/v1alpha1 AIBudgets)\n"
        )),
    }
}

/// `report --by KEY`: each budget's period so far, from its usage records, by value.
async fn run_report_by(
    t: &Target,
    style: Style,
    now: Timestamp,
    budget: Option<&str>,
    by: &ByKey,
) -> anyhow::Result<()> {
    let (found, _) = budgets(t, budget).await?;
    let mut ranged = Vec::new();
    for b in found {
        let (_, current) = budget_periods(&b, now)?;
        ranged.push((b, current));
    }
    let reports = match ranged.iter().map(|(_, r)| r.from).min() {
        Some(from) => {
            let range = TimeRange::between(
                from,
                now + jiff::SignedDuration::from_millis(1),
                "the periods",
            )?;
            let records = cloudwatch::fetch(&logs().await, &t.log_group, &range).await?;
            report::by_value(&ranged, &records, by)
        }
        None => Vec::new(),
    };
    match t.output {
        Output::Json => print_json(&reports),
        _ => print(&report::render_by(&reports, style)),
    }
    Ok(())
}

/// `top`: once, or again every `--interval` with `--watch`.
async fn run_top(
    t: &Target,
    style: Style,
    (window, interval): (&str, &str),
    (budget, by): (&Option<String>, Option<&ByKey>),
    watch: bool,
) -> anyhow::Result<()> {
    let window = duration(window, "--window")?;
    let interval = duration(interval, "--interval")?;
    let scope = scope(t, budget.clone()).await?;
    let logs = logs().await;
    loop {
        let now = Timestamp::now();
        let range = TimeRange::between(now - window, now, "--window")?;
        let records = cloudwatch::fetch(&logs, &t.log_group, &range).await?;
        let rates = match by {
            Some(by) => top::rates_by(&records, &scope, &range, by),
            None => top::rates(&records, &scope, &range),
        };
        match t.output {
            Output::Json => print_json(&rates),
            _ => {
                if watch && style.colour {
                    print("\x1b[2J\x1b[H");
                }
                print(&top::render(&rates, &range, style));
            }
        }
        if !watch {
            return Ok(());
        }
        tokio::time::sleep(Duration::try_from(interval)?).await;
        if !style.colour {
            print("\n");
        }
    }
}

/// `compare`: two periods given, or a budget's last period against its current one.
async fn run_compare(
    t: &Target,
    style: Style,
    now: Timestamp,
    budget: &Option<String>,
    (a, b): (&Option<String>, &Option<String>),
    by: Option<&ByKey>,
) -> anyhow::Result<()> {
    let (before, after, scope) = match (a, b, budget) {
        (Some(a), Some(b), _) => (
            TimeRange::parse(a, now, "--a")?,
            TimeRange::parse(b, now, "--b")?,
            scope(t, budget.clone()).await?,
        ),
        (None, None, Some(name)) => {
            let (found, namespace) = budgets(t, Some(name)).await?;
            if found[0].spec.period == aigov_api::period::Period::Credit {
                bail!(
                    "{name} is a Credit, which never resets: it has no last period to compare with; give both --a START..END and --b START..END"
                );
            }
            let (before, after) = budget_periods(&found[0], now)?;
            let scope = Scope {
                namespace: Some(namespace.unwrap_or_default()),
                budget: Some(name.clone()),
            };
            (before, after, scope)
        }
        _ => bail!(
            "compare needs two periods: name a budget (its last period against this one), or give both --a START..END and --b START..END"
        ),
    };
    let from = before.from.min(after.from);
    let to = before.to.max(after.to);
    let records = cloudwatch::fetch(&logs().await, &t.log_group, &TimeRange { from, to }).await?;
    let comparison = match by {
        Some(by) => compare::compare_by(&records, &scope, (before, after), by),
        None => compare::compare(&records, &scope, before, after),
    };
    match t.output {
        Output::Json => print_json(&comparison),
        _ => print(&compare::render(&comparison, style)),
    }
    Ok(())
}

/// The kube client and the namespace to use (None with -A).
async fn cluster(t: &Target) -> anyhow::Result<(kube::Client, Option<String>)> {
    let options = KubeConfigOptions {
        context: t.context.clone(),
        ..Default::default()
    };
    let config = match &t.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("--kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        None if t.context.is_some() => kube::Config::from_kubeconfig(&options).await?,
        None => kube::Config::infer()
            .await
            .context("no cluster: set KUBECONFIG or pass --kubeconfig")?,
    };
    let namespace = (!t.all_namespaces).then(|| {
        t.namespace
            .clone()
            .unwrap_or(config.default_namespace.clone())
    });
    Ok((kube::Client::try_from(config)?, namespace))
}

/// The AIBudgets in scope (exactly one when `name` is given) and the namespace looked in.
async fn budgets(
    t: &Target,
    name: Option<&str>,
) -> anyhow::Result<(Vec<AIBudget>, Option<String>)> {
    let (client, namespace) = cluster(t).await?;
    let api: Api<AIBudget> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    // A name is looked up by the API server, not by listing every budget here.
    let params = match name {
        Some(name)
            if name.is_empty()
                || !name.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
                }) =>
        {
            bail!("{name:?} is not an AIBudget name (lowercase letters, digits, '-' and '.')")
        }
        Some(name) => ListParams::default().fields(&format!("metadata.name={name}")),
        None => ListParams::default(),
    };
    let budgets = api
        .list(&params)
        .await
        .context("listing AIBudgets (are the aigov CRDs installed?)")?
        .items;
    match (name, budgets.len()) {
        (Some(name), 0) => bail!(
            "no AIBudget {name:?} in {}; list them with: kubectl get aib -A",
            namespace
                .as_deref()
                .map_or("any namespace".to_owned(), |ns| format!("namespace {ns:?}"))
        ),
        (Some(name), n) if n > 1 => {
            bail!("{n} AIBudgets are named {name:?} across namespaces; pass -n NAMESPACE")
        }
        _ => {}
    }
    let namespace = namespace.or_else(|| budgets.first().and_then(|b| b.namespace()));
    Ok((budgets, namespace))
}

/// Every ClusterAIBudget.
async fn cluster_budgets(t: &Target) -> anyhow::Result<Vec<ClusterAIBudget>> {
    let (client, _) = cluster(t).await?;
    let caps = Api::<ClusterAIBudget>::all(client)
        .list(&ListParams::default())
        .await
        .context("listing ClusterAIBudgets (are the aigov CRDs installed?)")?;
    Ok(caps.items)
}

/// Which records to look at: a namespace (none with -A) and maybe a budget. The namespace
/// comes from the kubeconfig when not given, without contacting the cluster.
async fn scope(t: &Target, budget: Option<String>) -> anyhow::Result<Scope> {
    let namespace = if t.all_namespaces {
        None
    } else if let Some(ns) = &t.namespace {
        Some(ns.clone())
    } else {
        Some(cluster(t).await?.1.unwrap_or_else(|| "default".to_owned()))
    };
    if budget.is_some() && namespace.is_none() {
        bail!("--budget names a budget in one namespace: pass -n NAMESPACE instead of -A");
    }
    Ok(Scope { namespace, budget })
}

/// The budget's last period and its current one up to now.
fn budget_periods(budget: &AIBudget, now: Timestamp) -> anyhow::Result<(TimeRange, TimeRange)> {
    let tz = time_zone(&budget.spec.time_zone)?;
    let calendar = budget.spec.calendar();
    let current = calendar.window_at(now, &tz)?;
    let last = calendar.window_at(current.start - jiff::SignedDuration::from_secs(1), &tz)?;
    Ok((
        TimeRange::between(last.start, last.end, "the last period")?,
        TimeRange::between(
            current.start,
            now.max(current.start + jiff::SignedDuration::from_millis(1)),
            "this period",
        )?,
    ))
}

fn duration(text: &str, flag: &str) -> anyhow::Result<jiff::SignedDuration> {
    let parsed: jiff::SignedDuration = text.parse().map_err(|e| {
        anyhow::anyhow!("{flag} {text:?} is not a duration such as 30s, 5m or 1h: {e}")
    })?;
    if parsed.is_zero() || parsed.is_negative() {
        bail!("{flag} {text:?}: the duration must be positive");
    }
    Ok(parsed)
}

async fn logs() -> aws_sdk_cloudwatchlogs::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    aws_sdk_cloudwatchlogs::Client::new(&config)
}

fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

fn print_json<T: serde::Serialize>(value: &T) {
    print(&format!(
        "{}\n",
        serde_json::to_string_pretty(value).unwrap_or_default()
    ));
}
