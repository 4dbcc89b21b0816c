//! The one error type of the aigov-controller library.

/// What can go wrong in the controller and the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a call.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// An AIBudget or AIModelPrice that passed the API server's validation still could not be
    /// interpreted (a time zone unknown to this build, say).
    #[error("{0}")]
    Api(#[from] aigov_api::Error),
    /// The controller's ledger could not be reached or refused the call.
    #[error("ledger: {0}")]
    Ledger(#[from] tonic::Status),
    /// Connecting to the ledger failed.
    #[error("ledger transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// An object lacks a field the controller needs (namespace, name).
    #[error("{0} has no {1}")]
    Missing(String, &'static str),
    /// A configuration value is wrong; the message names the flag.
    #[error("configuration: {0}")]
    Config(String),
    /// Usage records could not be read from CloudWatch Logs; the message says what to fix.
    #[error("usage records: {0}")]
    UsageRecords(String),
    /// Serialising a status or a patch failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
