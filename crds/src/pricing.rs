//! Pricing a request: the catalog, `AIModelPrice` overrides (most specific wins), the regional
//! premium, the batch discount, and a fallback for models nobody priced (flagged, never free).

use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::catalog::{LongContext, TokenPrices};
use crate::model::{ResolvedModel, Routing};
use crate::money::Usd;
use crate::pattern::ModelPattern;

/// Tokens one request consumed, by kind, as Bedrock reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache (5-minute TTL).
    pub cache_write_tokens: u64,
    /// Input tokens written to the prompt cache with the 1-hour TTL.
    pub cache_write_1h_tokens: u64,
}

impl Usage {
    /// Adds another request's tokens, saturating rather than wrapping.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache_read_tokens = self
            .cache_read_tokens
            .saturating_add(other.cache_read_tokens);
        self.cache_write_tokens = self
            .cache_write_tokens
            .saturating_add(other.cache_write_tokens);
        self.cache_write_1h_tokens = self
            .cache_write_1h_tokens
            .saturating_add(other.cache_write_1h_tokens);
    }
}

/// How the request was bought.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvocationMode {
    /// Ordinary on-demand inference.
    OnDemand,
    /// Batch inference: half the on-demand price.
    Batch,
}

/// A price a person set: an `AIModelPrice`, or the provider's `aigov_pricing_override`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceOverride {
    /// The `AIModelPrice` name, shown wherever the price is used.
    pub name: String,
    /// Which models it prices.
    pub pattern: ModelPattern,
    /// USD per 1M tokens; a cache price left `None` is taken from the catalog entry.
    pub prices: TokenPrices,
    /// From when on it applies; `None` means always.
    pub effective_from: Option<Timestamp>,
}

/// Where an effective price came from, for Events, status and the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PriceSource {
    /// The built-in catalog.
    Catalog {
        /// The catalog's model ID.
        model_id: &'static str,
        /// When the figure took effect.
        since: &'static str,
    },
    /// An `AIModelPrice`.
    Override {
        /// Its name.
        name: String,
    },
    /// The configured fallback, because nothing priced this model.
    Fallback,
}

/// Something about a price a person should know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PriceFlag {
    /// Neither the catalog nor an override knows the model: the fallback priced it.
    UnknownModel,
    /// Cache tokens were reported for a price without cache rates: charged at the input rate.
    CacheRateAssumed,
    /// The regional-endpoint premium was added.
    RegionalPremium,
}

/// The price that applies to one request, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectivePrice {
    /// USD per 1M tokens, premium included.
    pub prices: TokenPrices,
    /// Where it came from.
    pub source: PriceSource,
    /// Caveats.
    pub flags: Vec<PriceFlag>,
    /// The model's output bound, for worst-case reservations.
    pub max_output_tokens: u32,
    /// The rates of a long prompt (premium included), for the catalog models that have them;
    /// an `AIModelPrice` prices every token at its own rates.
    pub long_context: Option<LongContext>,
}

impl EffectivePrice {
    /// The rates a request with `input_tokens` of input in all (plain, cache read and cache
    /// write together) is priced at: the long-context rates past their threshold.
    pub fn rates_for(&self, input_tokens: u64) -> &TokenPrices {
        match &self.long_context {
            Some(long) if long.applies(input_tokens) => &long.prices,
            _ => &self.prices,
        }
    }
}

/// The cost of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cost {
    /// Exact USD.
    pub amount: Usd,
    /// The price it was computed with.
    pub price: EffectivePrice,
}

/// The catalog plus the overrides in force, plus the fallback: everything needed to price a
/// request, shared read-only by the data path.
#[derive(Clone, Debug)]
pub struct PriceBook {
    overrides: Vec<PriceOverride>,
    fallback: TokenPrices,
    fallback_max_output_tokens: u32,
}

impl Default for PriceBook {
    /// No overrides; unknown models priced like Claude Opus 4 (the dearest catalog model), so
    /// that an unpriced model over-reserves rather than slipping through.
    fn default() -> Self {
        let opus = crate::catalog::lookup("anthropic.claude-opus-4-20250514-v1:0")
            .expect("catalog has Opus 4");
        PriceBook::new(Vec::new(), opus.prices.clone(), 64_000)
    }
}

impl PriceBook {
    /// A price book from overrides and the fallback for unknown models.
    pub fn new(
        overrides: Vec<PriceOverride>,
        fallback: TokenPrices,
        fallback_max_output_tokens: u32,
    ) -> Self {
        PriceBook {
            overrides,
            fallback,
            fallback_max_output_tokens,
        }
    }

    /// This book with `overrides` in place of its own (same fallback).
    pub fn with_overrides(mut self, overrides: Vec<PriceOverride>) -> Self {
        self.overrides = overrides;
        self
    }

    /// The overrides in force.
    pub fn overrides(&self) -> &[PriceOverride] {
        &self.overrides
    }

    /// The override that prices `model` at `at`: among those in effect that match, the most
    /// specific (an exact match on what was requested, then on the foundation model, then
    /// the pattern with most literal characters), then the most recent, then by name.
    pub fn matching_override(
        &self,
        model: &ResolvedModel,
        at: Timestamp,
    ) -> Option<&PriceOverride> {
        self.overrides
            .iter()
            .filter(|o| o.effective_from.is_none_or(|from| from <= at))
            .filter_map(|o| specificity(&o.pattern, model).map(|rank| (rank, o)))
            .max_by(|(rank_a, a), (rank_b, b)| {
                rank_a
                    .cmp(rank_b)
                    .then(a.effective_from.cmp(&b.effective_from))
                    .then(b.name.cmp(&a.name))
            })
            .map(|(_, o)| o)
    }

    /// The effective price of `model` at `at`.
    pub fn price(&self, model: &ResolvedModel, at: Timestamp) -> EffectivePrice {
        let catalog = model.catalog;
        let max_output_tokens =
            catalog.map_or(self.fallback_max_output_tokens, |e| e.max_output_tokens);
        if let Some(o) = self.matching_override(model, at) {
            let inherited = catalog.map(|e| &e.prices);
            let prices = TokenPrices {
                input: o.prices.input,
                output: o.prices.output,
                cache_read: o.prices.cache_read.or(inherited.and_then(|p| p.cache_read)),
                cache_write_5m: o
                    .prices
                    .cache_write_5m
                    .or(inherited.and_then(|p| p.cache_write_5m)),
                cache_write_1h: o
                    .prices
                    .cache_write_1h
                    .or(inherited.and_then(|p| p.cache_write_1h)),
            };
            return EffectivePrice {
                prices,
                source: PriceSource::Override {
                    name: o.name.clone(),
                },
                flags: Vec::new(),
                max_output_tokens,
                long_context: None,
            };
        }
        match catalog {
            Some(entry) => {
                let premium = entry
                    .regional_premium_percent
                    .filter(|_| model.routing != Routing::Global)
                    .map(|percent| Decimal::ONE + Decimal::new(i64::from(percent), 2));
                let scale = |p: &TokenPrices| premium.map_or_else(|| p.clone(), |f| p.scaled(f));
                let flags = premium.map_or_else(Vec::new, |_| vec![PriceFlag::RegionalPremium]);
                EffectivePrice {
                    prices: scale(&entry.prices),
                    source: PriceSource::Catalog {
                        model_id: entry.model_id,
                        since: entry.since,
                    },
                    flags,
                    max_output_tokens,
                    long_context: entry.long_context.as_ref().map(|long| LongContext {
                        above: long.above,
                        prices: scale(&long.prices),
                    }),
                }
            }
            None => EffectivePrice {
                prices: self.fallback.clone(),
                source: PriceSource::Fallback,
                flags: vec![PriceFlag::UnknownModel],
                max_output_tokens,
                long_context: None,
            },
        }
    }

    /// The exact cost of `usage` on `model` at `at`.
    pub fn cost(
        &self,
        model: &ResolvedModel,
        usage: &Usage,
        mode: InvocationMode,
        at: Timestamp,
    ) -> Cost {
        let mut price = self.price(model, at);
        let input_tokens = usage
            .input_tokens
            .saturating_add(usage.cache_read_tokens)
            .saturating_add(usage.cache_write_tokens)
            .saturating_add(usage.cache_write_1h_tokens);
        let p = price.rates_for(input_tokens).clone();
        let p = &p;
        let mut assumed = false;
        let mut cache_rate = |rate: Option<Usd>, tokens: u64| match rate {
            Some(rate) => rate,
            None => {
                assumed |= tokens > 0;
                p.input
            }
        };
        let cache_read = cache_rate(p.cache_read, usage.cache_read_tokens);
        let cache_write = cache_rate(p.cache_write_5m, usage.cache_write_tokens);
        let cache_write_1h = cache_rate(
            p.cache_write_1h.or(p.cache_write_5m),
            usage.cache_write_1h_tokens,
        );
        let mut amount = Usd::per_million_tokens(p.input, usage.input_tokens)
            + Usd::per_million_tokens(p.output, usage.output_tokens)
            + Usd::per_million_tokens(cache_read, usage.cache_read_tokens)
            + Usd::per_million_tokens(cache_write, usage.cache_write_tokens)
            + Usd::per_million_tokens(cache_write_1h, usage.cache_write_1h_tokens);
        if mode == InvocationMode::Batch {
            amount = amount.scaled(Decimal::new(5, 1));
        }
        if assumed {
            price.flags.push(PriceFlag::CacheRateAssumed);
        }
        Cost { amount, price }
    }
}

/// How specifically `pattern` names `model`, or `None` if it does not match it.
fn specificity(pattern: &ModelPattern, model: &ResolvedModel) -> Option<(u8, usize)> {
    let exact = !pattern.has_wildcard();
    if exact && pattern.as_str() == model.requested {
        return Some((3, pattern.literal_len()));
    }
    if exact && model.model_id.as_deref() == Some(pattern.as_str()) {
        return Some((2, pattern.literal_len()));
    }
    (!exact && pattern.matches_model(model)).then(|| (1, pattern.literal_len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::resolve;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }
    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }
    fn over(name: &str, pattern: &str, input: &str, from: Option<&str>) -> PriceOverride {
        PriceOverride {
            name: name.into(),
            pattern: ModelPattern::parse(pattern).unwrap(),
            prices: TokenPrices {
                input: usd(input),
                output: usd("1"),
                cache_read: None,
                cache_write_5m: None,
                cache_write_1h: None,
            },
            effective_from: from.map(at),
        }
    }
    const NOW: &str = "2026-11-24T12:00:00Z";

    #[test]
    fn cache_tokens_are_priced_at_their_own_rates() {
        // Claude Sonnet 4 in region: in $3, out $15, cache read $0.30, write 5m $3.75, write 1h $6.
        // 1,000 in = 0.003; 500 out = 0.0075; 10,000 read = 0.003; 2,000 write = 0.0075;
        // 1,000 write-1h = 0.006. Total 0.027 exactly.
        let usage = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
            cache_read_tokens: 10_000,
            cache_write_tokens: 2_000,
            cache_write_1h_tokens: 1_000,
        };
        let cost = PriceBook::default().cost(
            &resolve("anthropic.claude-sonnet-4-20250514-v1:0"),
            &usage,
            InvocationMode::OnDemand,
            at(NOW),
        );
        assert_eq!(cost.amount, usd("0.027"));
        assert!(cost.price.flags.is_empty());
    }

    #[test]
    fn nova_cache_reads_cost_a_quarter_of_input() {
        // Nova Micro: 1M cache-read tokens at $0.00875, 1M input at $0.035.
        let usage = Usage {
            input_tokens: 1_000_000,
            cache_read_tokens: 1_000_000,
            ..Usage::default()
        };
        let cost = PriceBook::default().cost(
            &resolve("us.amazon.nova-micro-v1:0"),
            &usage,
            InvocationMode::OnDemand,
            at(NOW),
        );
        assert_eq!(cost.amount, usd("0.04375"));
    }

    #[test]
    fn claude_4_5_regional_endpoints_cost_ten_percent_more_than_global() {
        // 200,000 input tokens: the most priced at the base rates (past it, long context).
        let usage = Usage {
            input_tokens: 200_000,
            output_tokens: 1_000_000,
            ..Usage::default()
        };
        let book = PriceBook::default();
        let global = book.cost(
            &resolve("global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            &usage,
            InvocationMode::OnDemand,
            at(NOW),
        );
        let geo = book.cost(
            &resolve("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            &usage,
            InvocationMode::OnDemand,
            at(NOW),
        );
        let in_region = book.cost(
            &resolve("anthropic.claude-sonnet-4-5-20250929-v1:0"),
            &usage,
            InvocationMode::OnDemand,
            at(NOW),
        );
        assert_eq!(global.amount, usd("15.6"));
        assert_eq!(geo.amount, usd("17.16"));
        assert_eq!(in_region.amount, usd("17.16"));
        assert_eq!(geo.price.flags, vec![PriceFlag::RegionalPremium]);
        // Older models have one price wherever they run.
        let h3 = book.cost(
            &resolve("us.anthropic.claude-3-haiku-20240307-v1:0"),
            &usage,
            InvocationMode::OnDemand,
            at(NOW),
        );
        assert_eq!(h3.amount, usd("1.3"));
    }

    #[test]
    fn a_prompt_past_200k_tokens_is_priced_whole_at_the_long_context_rates() {
        let book = PriceBook::default();
        let cost = |id: &str, usage: Usage| {
            book.cost(&resolve(id), &usage, InvocationMode::OnDemand, at(NOW))
                .amount
        };
        let global = "global.anthropic.claude-sonnet-4-5-20250929-v1:0";
        // 250,000 input at $6 = 1.5; 1,000 output at $22.50 = 0.0225.
        let long = Usage {
            input_tokens: 250_000,
            output_tokens: 1_000,
            ..Usage::default()
        };
        assert_eq!(cost(global, long), usd("1.5225"));
        // Regional: 10% more, long-context rates included.
        assert_eq!(
            cost("us.anthropic.claude-sonnet-4-5-20250929-v1:0", long),
            usd("1.67475")
        );
        // 200,000 exactly is not past the threshold: $3 and $15.
        let at_threshold = Usage {
            input_tokens: 200_000,
            output_tokens: 1_000,
            ..Usage::default()
        };
        assert_eq!(cost(global, at_threshold), usd("0.615"));
        // Cache tokens count toward the threshold and are priced at the long-context cache
        // rates: 150,000 read at $0.60 = 0.09; 50,000 written at $7.50 = 0.375; 1,000 plain
        // input at $6 = 0.006; 100 output at $22.50 = 0.00225.
        let cached = Usage {
            input_tokens: 1_000,
            cache_read_tokens: 150_000,
            cache_write_tokens: 50_000,
            output_tokens: 100,
            ..Usage::default()
        };
        assert_eq!(
            cost("anthropic.claude-sonnet-4-20250514-v1:0", cached),
            usd("0.47325")
        );
        // A model without long-context rates keeps its rates at any length.
        let haiku = Usage {
            input_tokens: 250_000,
            ..Usage::default()
        };
        assert_eq!(
            cost("anthropic.claude-3-haiku-20240307-v1:0", haiku),
            usd("0.0625")
        );
    }

    #[test]
    fn batch_is_half_price() {
        let usage = Usage {
            input_tokens: 3_000,
            output_tokens: 1_000,
            ..Usage::default()
        };
        let model = resolve("anthropic.claude-3-haiku-20240307-v1:0");
        let book = PriceBook::default();
        let on_demand = book
            .cost(&model, &usage, InvocationMode::OnDemand, at(NOW))
            .amount;
        let batch = book
            .cost(&model, &usage, InvocationMode::Batch, at(NOW))
            .amount;
        assert_eq!(on_demand, usd("0.002")); // 3000*0.25/1M + 1000*1.25/1M
        assert_eq!(batch, usd("0.001"));
    }

    #[test]
    fn unknown_models_use_the_fallback_and_are_flagged() {
        let usage = Usage {
            input_tokens: 1_000_000,
            ..Usage::default()
        };
        let cost = PriceBook::default().cost(
            &resolve("acme.unknown-v1"),
            &usage,
            InvocationMode::OnDemand,
            at(NOW),
        );
        assert_eq!(cost.amount, usd("15"));
        assert_eq!(cost.price.source, PriceSource::Fallback);
        assert_eq!(cost.price.flags, vec![PriceFlag::UnknownModel]);
    }

    #[test]
    fn cache_tokens_on_a_model_without_cache_prices_are_charged_as_input_and_flagged() {
        let usage = Usage {
            cache_read_tokens: 1_000_000,
            ..Usage::default()
        };
        let cost = PriceBook::default().cost(
            &resolve("meta.llama3-3-70b-instruct-v1:0"),
            &usage,
            InvocationMode::OnDemand,
            at(NOW),
        );
        assert_eq!(cost.amount, usd("0.72"));
        assert!(cost.price.flags.contains(&PriceFlag::CacheRateAssumed));
    }

    #[test]
    fn the_most_specific_override_wins() {
        let book = PriceBook::new(
            vec![
                over("all-claude", "*claude*", "9", None),
                over("haiku-family", "anthropic.claude-3-haiku*", "8", None),
                over(
                    "haiku-exact",
                    "anthropic.claude-3-haiku-20240307-v1:0",
                    "7",
                    None,
                ),
                over(
                    "us-profile",
                    "us.anthropic.claude-3-haiku-20240307-v1:0",
                    "6",
                    None,
                ),
            ],
            PriceBook::default().price(&resolve("acme"), at(NOW)).prices,
            1000,
        );
        let name = |id: &str| match book.price(&resolve(id), at(NOW)).source {
            PriceSource::Override { name } => name,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            name("us.anthropic.claude-3-haiku-20240307-v1:0"),
            "us-profile"
        );
        assert_eq!(
            name("eu.anthropic.claude-3-haiku-20240307-v1:0"),
            "haiku-exact"
        );
        assert_eq!(
            name("anthropic.claude-3-haiku-20240307-v1:0:200k"),
            "haiku-family"
        );
        assert_eq!(
            name("anthropic.claude-sonnet-4-20250514-v1:0"),
            "all-claude"
        );
    }

    #[test]
    fn an_override_applies_from_its_effective_time_and_the_newest_wins() {
        let book = PriceBook::new(
            vec![
                over(
                    "old",
                    "amazon.nova-pro-v1:0",
                    "1",
                    Some("2026-01-01T00:00:00Z"),
                ),
                over(
                    "new",
                    "amazon.nova-pro-v1:0",
                    "2",
                    Some("2026-06-01T00:00:00Z"),
                ),
            ],
            PriceBook::default().price(&resolve("acme"), at(NOW)).prices,
            1000,
        );
        let model = resolve("amazon.nova-pro-v1:0");
        let input = |t: &str| book.price(&model, at(t)).prices.input;
        assert_eq!(input("2025-12-31T23:59:59Z"), usd("0.80")); // catalog
        assert_eq!(input("2026-03-01T00:00:00Z"), usd("1"));
        assert_eq!(input("2026-06-01T00:00:00Z"), usd("2"));
    }

    #[test]
    fn an_override_without_cache_prices_inherits_the_catalogs() {
        let book = PriceBook::new(
            vec![over(
                "cheap",
                "anthropic.claude-3-5-haiku-20241022-v1:0",
                "0.5",
                None,
            )],
            PriceBook::default().price(&resolve("x"), at(NOW)).prices,
            1,
        );
        let p = book.price(
            &resolve("anthropic.claude-3-5-haiku-20241022-v1:0"),
            at(NOW),
        );
        assert_eq!(p.prices.input, usd("0.5"));
        assert_eq!(p.prices.cache_read, Some(usd("0.08")));
        assert_eq!(p.prices.cache_write_5m, Some(usd("1")));
    }

    #[test]
    fn an_application_profile_is_priced_by_an_override_naming_its_arn() {
        let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/team-a";
        let book = PriceBook::new(
            vec![over("team-a", arn, "2.5", None)],
            PriceBook::default().price(&resolve("x"), at(NOW)).prices,
            1,
        );
        assert_eq!(book.price(&resolve(arn), at(NOW)).prices.input, usd("2.5"));
    }
}
