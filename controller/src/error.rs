//! The one error type of the aigov-controller library.

/// What can go wrong in the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a call.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// An AIBudget or AIModelPrice that passed the API server's validation still could not be
    /// interpreted (a time zone unknown to this build, say).
    #[error("{0}")]
    Api(#[from] aigov_api::Error),
    /// A budget could not be compiled into its policy.
    #[error("{0}")]
    Policy(#[from] aigov_ledger::Error),
    /// A call to the API server did not answer in time.
    #[error("the Kubernetes API server did not answer in time ({0})")]
    Timeout(&'static str),
    /// This replica cannot prove it still leads: it writes no status.
    #[error("not the leader (or its Lease renewal is overdue): status not written")]
    NotLeading,
    /// Serialising a status or a patch failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
