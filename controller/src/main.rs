//! `aigov-controller`: one binary, several roles. The reconciler and the metering gateway
//! land in their own issues; today the binary reports what it knows.
#![forbid(unsafe_code)]

use clap::{Parser, ValueEnum};

/// Which parts of aigov this process runs.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Role {
    /// The AIBudget reconciler and usage ledger.
    Controller,
    /// The Bedrock metering gateway.
    Gateway,
    /// Both in one process.
    All,
}

/// Command-line interface.
#[derive(Parser, Debug)]
#[command(version, about = "aigov controller and metering gateway")]
struct Cli {
    /// Which role to run.
    #[arg(long, value_enum, env = "AIGOV_ROLE", default_value = "all")]
    role: Role,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let models = aigov_api::catalog::entries().len();
    anyhow::bail!(
        "role {:?} is not implemented yet ({models} models in the price catalog)",
        cli.role
    )
}
