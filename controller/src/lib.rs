//! aigov-controller: the AIBudget reconciler and usage ledger (the controller role) and the
//! Bedrock metering gateway (the gateway role), in one library behind one binary.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod clock;
pub mod emf;
pub mod error;
pub mod events;
pub mod gateway;
pub mod leader;
pub mod ledger;
pub mod ledger_service;
pub mod metrics;
pub mod policy;
pub mod prices;
pub mod proto;
pub mod reconcile;
pub mod reports;
pub mod status;
pub mod watch;

pub use error::{Error, Result};
