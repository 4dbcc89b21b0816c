//! `AIModelPrice`: a cluster-wide price for a model (or a pattern of models) that overrides the
//! built-in catalog, written with kubectl or by the provider's `aigov_pricing_override`.

use kube::CustomResource;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::catalog::TokenPrices;
use crate::money::Usd;
use crate::pattern::ModelPattern;
use crate::pricing::PriceOverride;

/// A price per 1M tokens: a plain decimal, up to 9 decimal places.
pub const PRICE_REGEX: &str = r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,9})?$";

/// The desired state of an `AIModelPrice`: USD per 1M tokens.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "aigov.dev",
    version = "v1alpha1",
    kind = "AIModelPrice",
    plural = "aimodelprices",
    shortname = "aimp",
    category = "aigov",
    doc = "A Bedrock model price (USD per 1M tokens) that overrides aigov's built-in catalog; the most specific match wins.",
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.model"}"#,
    printcolumn = r#"{"name":"Input","type":"string","description":"USD per 1M input tokens","jsonPath":".spec.input"}"#,
    printcolumn = r#"{"name":"Output","type":"string","description":"USD per 1M output tokens","jsonPath":".spec.output"}"#,
    printcolumn = r#"{"name":"CacheRead","type":"string","priority":1,"jsonPath":".spec.cacheRead"}"#,
    printcolumn = r#"{"name":"CacheWrite","type":"string","priority":1,"jsonPath":".spec.cacheWrite"}"#,
    printcolumn = r#"{"name":"Effective","type":"string","description":"From when the price applies (RFC 3339): a date column would print a future time as <invalid>","jsonPath":".spec.effectiveFrom"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AIModelPriceSpec {
    /// The model ID, profile ID or ARN it prices; `*` matches any run of characters.
    #[schemars(regex(pattern = crate::pattern::PATTERN_REGEX), length(max = 256))]
    #[x_kube(validation = Rule::new("!self.contains('**')").message("model patterns use a single * as the wildcard"))]
    pub model: String,
    /// USD per 1M uncached input tokens.
    #[schemars(regex(pattern = PRICE_REGEX))]
    pub input: String,
    /// USD per 1M output tokens.
    #[schemars(regex(pattern = PRICE_REGEX))]
    pub output: String,
    /// USD per 1M cache-read tokens; absent inherits the catalog's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PRICE_REGEX))]
    pub cache_read: Option<String>,
    /// USD per 1M cache-write tokens (5-minute TTL); absent inherits the catalog's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PRICE_REGEX))]
    pub cache_write: Option<String>,
    /// USD per 1M cache-write tokens with the 1-hour TTL; absent inherits the catalog's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PRICE_REGEX))]
    pub cache_write_1h: Option<String>,
    /// From when on this price applies (RFC 3339); absent means always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("timestamp(self) > timestamp('1970-01-01T00:00:00Z')").message("effectiveFrom must be an RFC 3339 time such as 2026-01-01T00:00:00Z"))]
    pub effective_from: Option<String>,
    /// Why this price exists (a contract, a discount), for the people reading it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
}

impl AIModelPrice {
    /// The price override this object declares, validated again on the client side so that
    /// objects written before a schema change cannot slip through.
    pub fn to_override(&self) -> Result<PriceOverride, Error> {
        let name = self.metadata.name.clone().unwrap_or_default();
        let spec = &self.spec;
        let optional = |v: &Option<String>| v.as_deref().map(Usd::parse).transpose();
        let effective_from = spec
            .effective_from
            .as_deref()
            .map(|t| {
                t.parse::<jiff::Timestamp>()
                    .map_err(|e| Error::TimeOutOfRange(format!("effectiveFrom {t:?}: {e}")))
            })
            .transpose()?;
        Ok(PriceOverride {
            name,
            pattern: ModelPattern::parse(&spec.model)?,
            prices: TokenPrices {
                input: Usd::parse(&spec.input)?,
                output: Usd::parse(&spec.output)?,
                cache_read: optional(&spec.cache_read)?,
                cache_write_5m: optional(&spec.cache_write)?,
                cache_write_1h: optional(&spec.cache_write_1h)?,
            },
            effective_from,
        })
    }
}
