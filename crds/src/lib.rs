//! aigov's shared API: the `AIBudget` and `AIModelPrice` custom resources, exact money, the
//! Bedrock price catalog, model resolution, budget periods and the pure decisions the
//! controller, the gateway and the Terraform provider all make the same way.
//!
//! Nothing here does I/O.
#![forbid(unsafe_code)]

pub mod bedrock_error;
pub mod budget;
pub mod catalog;
pub mod crd;
mod error;
pub mod evaluation;
pub mod labels;
pub mod mantle;
pub mod model;
pub mod model_price;
pub mod money;
pub mod organisation;
pub mod pattern;
pub mod period;
pub mod pricing;
pub mod request_metadata;
pub mod units;
pub mod usage;

pub use budget::{AIBudget, AIBudgetSpec, AIBudgetStatus};
pub use error::Error;
pub use model_price::{AIModelPrice, AIModelPriceSpec};
pub use money::Usd;
pub use organisation::{AIBudgetTemplate, ClusterAIBudget};
