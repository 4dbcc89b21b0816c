//! The one error type of `aigov-ledger`.

/// What can go wrong compiling a budget for the data path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AIBudget that passed the API server's validation still could not be interpreted
    /// (a time zone unknown to this build, say).
    #[error("{0}")]
    Api(#[from] aigov_api::Error),
    /// An object lacks a field the ledger needs (namespace, name).
    #[error("{0} has no {1}")]
    Missing(String, &'static str),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
