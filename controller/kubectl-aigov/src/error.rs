//! The one error type of the `kubectl-aigov` library.

/// What can go wrong building a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag's value is wrong; the message names the flag and what it accepts.
    #[error("{0}")]
    Flag(String),
    /// Usage records could not be read from CloudWatch Logs; the message says what to fix.
    #[error("usage records: {0}")]
    UsageRecords(String),
    /// Writing CSV failed.
    #[error("csv: {0}")]
    Csv(String),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
