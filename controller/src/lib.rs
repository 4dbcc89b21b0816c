//! aigov-controller: the AIBudget reconciler, the AIBudgetTemplate controller, the usage ledger's gRPC service, alerts, Events,
//! EMF usage records and leader election. The pure ledger it serves is `aigov-ledger`; the
//! gateway it grants slices to is `aigov-gateway`.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod emf;
pub mod error;
pub mod leader;
pub mod ledger_service;
pub mod metrics;
pub mod outbox;
pub mod reconcile;
pub mod second_source;
pub mod status;
pub mod templates;

pub use error::{Error, Result};
