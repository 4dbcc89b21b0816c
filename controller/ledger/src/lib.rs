//! What the aigov gateway and controller share, and nothing that does I/O: the ledger protocol
//! ([`proto`]), the usage ledger itself ([`ledger`]: exact spend, exactly-once counting, the
//! slices granted to gateways), spend by request-metadata value ([`attribution`]), the soft-limit rate split across gateways ([`rates`]), headroom recalled from replicas that do not need it ([`headroom`]), budgets compiled for the data path ([`policy`]), the
//! usage-record format written to CloudWatch Logs and read back by `kubectl aigov`
//! ([`record`]), Bedrock's model invocation log records ([`invocation_log`]), and the
//! injectable [`clock`].
#![forbid(unsafe_code)]

pub mod attribution;
pub mod clock;
pub mod error;
pub mod headroom;
pub mod invocation_log;
pub mod key;
pub mod ledger;
pub mod outbox;
pub mod policy;
pub mod proto;
pub mod rates;
pub mod record;
pub mod slices;
pub mod value_limits;

pub use error::{Error, Result};
