//! `terraform-provider-aigov`: Bedrock cost policy as code. The Terraform plugin protocol (6) on
//! tonic + prost, a typed value layer for Terraform's msgpack/JSON values, and the resources
//! (`aigov_budget`, `aigov_alert_channel`, `aigov_log_group`, `aigov_invocation_logging`,
//! `aigov_alarm`, `aigov_pricing_override`, `aigov_cluster_budget`, `aigov_budget_template`) and data source (`aigov_model_price`).
#![forbid(unsafe_code)]

pub mod config;
pub mod diag;
pub mod docs;
pub mod error;
pub mod plan;
pub mod plugin;
pub mod proto;
pub mod resources;
pub mod schema;
pub mod server;
pub mod tls;
pub mod validate;
pub mod value;

pub use error::Error;
