//! `terraform-provider-aigov`: started by Terraform or OpenTofu. Run by hand it says it is a
//! plugin and exits 1, as go-plugin providers do; `--debug` serves for `TF_REATTACH_PROVIDERS`.
#![forbid(unsafe_code)]

use aigov_provider::plugin;

fn main() -> anyhow::Result<()> {
    let debug = std::env::args()
        .skip(1)
        .any(|a| a == "--debug" || a == "-debug");
    if !debug && !plugin::started_by_terraform() {
        eprintln!(
            "This binary is a plugin. These are not meant to be executed directly.\n\
             Please execute the program that consumes these plugins, which will\n\
             load any plugins automatically.\n\
             (To debug it, run it with --debug and follow what it prints.)"
        );
        std::process::exit(1);
    }
    // Logs go to stderr, which Terraform captures into its own log (TF_LOG).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TF_LOG_PROVIDER_AIGOV")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(false)
        .init();
    plugin::negotiate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(plugin::serve(debug))?;
    Ok(())
}
