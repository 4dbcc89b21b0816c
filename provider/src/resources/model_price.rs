//! Data source `aigov_model_price`: the price aigov charges for a model — the catalog with the
//! cluster's `AIModelPrice` overrides applied, exactly as the gateway prices a call.

use aigov_api::model::resolve;
use aigov_api::model_price::AIModelPrice;
use aigov_api::pricing::{PriceBook, PriceSource};
use async_trait::async_trait;
use kube::Api;
use kube::api::ListParams;

use super::DataSource;
use crate::Error;
use crate::config::Clients;
use crate::diag::{Diagnostics, Path};
use crate::schema::{Attribute, Block, Type};
use crate::value::Value;

/// The data source.
pub struct ModelPrice;

#[async_trait]
impl DataSource for ModelPrice {
    fn type_name(&self) -> &'static str {
        "aigov_model_price"
    }

    fn schema(&self) -> Block {
        Block {
            description: "The effective price of a Bedrock model: aigov's catalog with the cluster's `AIModelPrice` overrides (`aigov_pricing_override`) applied.",
            attributes: vec![
                Attribute::required(
                    "model",
                    Type::String,
                    "A model ID, cross-region inference profile ID (`us.`, `eu.`, ...) or ARN.",
                ),
                Attribute::optional(
                    "at",
                    Type::String,
                    "The time to price at (RFC 3339); defaults to now. Overrides with a later `effective_from` do not apply.",
                ),
                Attribute::optional(
                    "include_overrides",
                    Type::Bool,
                    "Apply the cluster's `AIModelPrice` overrides (default true); false gives the catalog price alone and needs no cluster.",
                ),
                Attribute::computed("id", Type::String, "The model as given."),
                Attribute::computed(
                    "billing_model",
                    Type::String,
                    "The model the price belongs to, after resolving profiles and ARNs.",
                ),
                Attribute::computed("input", Type::Number, "USD per 1M uncached input tokens."),
                Attribute::computed("output", Type::Number, "USD per 1M output tokens."),
                Attribute::computed(
                    "cache_read",
                    Type::Number,
                    "USD per 1M prompt-cache read tokens (null: no prompt caching).",
                ),
                Attribute::computed(
                    "cache_write",
                    Type::Number,
                    "USD per 1M prompt-cache write tokens, 5-minute TTL.",
                ),
                Attribute::computed(
                    "cache_write_1h",
                    Type::Number,
                    "USD per 1M prompt-cache write tokens, 1-hour TTL.",
                ),
                Attribute::computed(
                    "source",
                    Type::String,
                    "Where the price comes from: `catalog`, `override:<AIModelPrice name>` or `fallback` (an unknown model).",
                ),
            ],
            blocks: vec![],
        }
    }

    fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        if let Some(at) = config.get("at").as_str()
            && at.parse::<jiff::Timestamp>().is_err()
        {
            diags.attr_error(
                &Path::attr("at"),
                "Invalid time",
                format!("{at:?} is not an RFC 3339 time; write it like 2026-01-01T00:00:00Z."),
            );
        }
        if config.get("model").as_str().is_some_and(str::is_empty) {
            diags.attr_error(
                &Path::attr("model"),
                "Empty model",
                "name a Bedrock model ID such as anthropic.claude-sonnet-4-5-20250929-v1:0.",
            );
        }
    }

    async fn read(&self, clients: &Clients, config: &Value) -> Result<Value, Error> {
        let model = config.get("model").as_str().unwrap_or_default().to_owned();
        let at = match config.get("at").as_str() {
            Some(at) => at
                .parse::<jiff::Timestamp>()
                .map_err(|e| Error::Value(format!("at: {e}")))?,
            None => jiff::Timestamp::now(),
        };
        let mut book = PriceBook::default();
        if config.get("include_overrides").as_bool() != Some(false) {
            let api: Api<AIModelPrice> = Api::all(clients.kube().await?);
            let overrides = api
                .list(&ListParams::default())
                .await
                .map_err(|e| clients.kube_error(e))?
                .items
                .iter()
                .filter_map(|o| o.to_override().ok())
                .collect();
            book = book.with_overrides(overrides);
        }
        let resolved = resolve(&model);
        let price = book.price(&resolved, at);
        let source = match &price.source {
            PriceSource::Catalog { .. } => "catalog".to_owned(),
            PriceSource::Override { name } => format!("override:{name}"),
            PriceSource::Fallback => "fallback".to_owned(),
        };
        let usd = |u: Option<aigov_api::money::Usd>| Value::opt_number(u.map(|u| u.as_decimal()));
        let mut state = config.clone();
        for (k, v) in [
            ("id", Value::string(&model)),
            ("billing_model", Value::string(resolved.billing_name())),
            ("input", usd(Some(price.prices.input))),
            ("output", usd(Some(price.prices.output))),
            ("cache_read", usd(price.prices.cache_read)),
            ("cache_write", usd(price.prices.cache_write_5m)),
            ("cache_write_1h", usd(price.prices.cache_write_1h)),
            ("source", Value::string(source)),
        ] {
            state.set(k, v);
        }
        Ok(state)
    }
}
