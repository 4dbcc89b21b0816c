//! What `kubectl aigov` shows: who spent what, on which model, and where each budget is heading.
//! Pure shaping of AIBudget status and usage records into rows, and their rendering; the
//! binary (`src/main.rs`) does the I/O (the Kubernetes API, CloudWatch Logs).
//!
//! Two sources, each the authority for what it holds: AIBudget status for a budget's exact
//! spend, limit, forecast and breakdown by model and workload this period (and the summaries of
//! finished periods); the per-call usage records the controller writes to CloudWatch Logs as
//! EMF for anything over an arbitrary time range (rates, comparisons, exports).
#![forbid(unsafe_code)]

pub mod cloudwatch;
pub mod compare;
pub mod error;
pub mod export;
pub mod prices;
pub mod range;
pub mod reconcile;
pub mod records;
pub mod report;
pub mod table;
pub mod top;
