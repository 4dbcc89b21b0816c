//! Pricing a request: the catalog, `AIModelPrice` overrides (most specific wins), the regional
//! premium, the service tier, the batch discount, and a fallback for models nobody priced
//! (flagged, never free).

use std::str::FromStr;

use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::catalog::{ASSUMED_PRIORITY_PREMIUM_PERCENT, CatalogEntry, LongContext, TokenPrices};
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

/// The service tier a request asked Bedrock for, which sets its per-token rates: Converse's
/// `serviceTier.type` field, InvokeModel's `X-Amzn-Bedrock-Service-Tier` header (values
/// `priority | default | flex | reserved`, per Bedrock's `ServiceTier` API reference). A
/// request that names none is served, and priced, at Standard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ServiceTier {
    /// `default` on the wire, or no tier named: the on-demand rates.
    #[default]
    Standard,
    /// `priority`: served ahead of the other tiers, at a premium over Standard.
    Priority,
    /// `flex`: served behind the other tiers, at a discount from Standard.
    Flex,
    /// `reserved`: capacity bought per tokens-per-minute by the month. Its overflow is served
    /// at Standard and the reservation is not per-token, so a reserved call is priced at
    /// Standard (flagged): an over-count, never a free call.
    Reserved,
}

impl ServiceTier {
    /// The tier of a request whose tier field or header is `value` (`None`: not sent).
    pub fn from_request(value: Option<&str>) -> Result<ServiceTier, Error> {
        value.map_or(Ok(ServiceTier::Standard), str::parse)
    }

    /// The value Bedrock reads on the wire for this tier.
    pub fn as_wire(self) -> &'static str {
        match self {
            ServiceTier::Standard => "default",
            ServiceTier::Priority => "priority",
            ServiceTier::Flex => "flex",
            ServiceTier::Reserved => "reserved",
        }
    }

    /// The factor this tier scales a model's Standard rates by (`None`: unchanged) and the
    /// flags that say so. Where the catalog has no sourced figure the safe side is taken:
    /// Priority at the assumed premium, Flex at Standard, both flagged as assumed.
    fn factor(self, entry: Option<&CatalogEntry>) -> (Option<Decimal>, Vec<PriceFlag>) {
        let rates = entry.map(|e| e.service_tiers).unwrap_or_default();
        let percent = |p: u32| Decimal::new(i64::from(p), 2);
        match (
            self,
            rates.priority_premium_percent,
            rates.flex_discount_percent,
        ) {
            (ServiceTier::Standard, _, _) => (None, Vec::new()),
            (ServiceTier::Reserved, _, _) => (None, vec![PriceFlag::ReservedAtStandard]),
            (ServiceTier::Priority, Some(p), _) => (
                Some(Decimal::ONE + percent(p)),
                vec![PriceFlag::PriorityPremium],
            ),
            (ServiceTier::Priority, None, _) => (
                Some(Decimal::ONE + percent(ASSUMED_PRIORITY_PREMIUM_PERCENT)),
                vec![PriceFlag::PriorityPremium, PriceFlag::TierRateAssumed],
            ),
            (ServiceTier::Flex, _, Some(p)) => (
                Some(Decimal::ONE - percent(p)),
                vec![PriceFlag::FlexDiscount],
            ),
            (ServiceTier::Flex, _, None) => (None, vec![PriceFlag::TierRateAssumed]),
        }
    }
}

impl FromStr for ServiceTier {
    type Err = Error;

    /// Bedrock's own spelling only (`default`, not `standard`; lower case): a value Bedrock
    /// would refuse is refused here, naming the field, rather than priced as a guess.
    fn from_str(value: &str) -> Result<Self, Error> {
        match value {
            "default" => Ok(ServiceTier::Standard),
            "priority" => Ok(ServiceTier::Priority),
            "flex" => Ok(ServiceTier::Flex),
            "reserved" => Ok(ServiceTier::Reserved),
            other => Err(Error::UnknownServiceTier(other.to_owned())),
        }
    }
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
    /// The Priority service tier's premium was added.
    PriorityPremium,
    /// The Flex service tier's discount was taken off.
    FlexDiscount,
    /// The model has no sourced rate for the tier asked for: Priority was priced at the
    /// assumed premium, Flex at the Standard rates.
    TierRateAssumed,
    /// A `reserved` call, priced at the Standard rates its overflow is billed at.
    ReservedAtStandard,
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
    /// The service tier these rates are for (its premium or discount included).
    pub service_tier: ServiceTier,
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

    /// The effective price of `model` at `at` at the Standard tier (what a request that names
    /// no service tier is billed at).
    pub fn price(&self, model: &ResolvedModel, at: Timestamp) -> EffectivePrice {
        self.price_in(model, ServiceTier::Standard, at)
    }

    /// The effective price of `model` at `at` in `tier`: the Standard price (override,
    /// catalog or fallback, regional premium included) scaled by the tier's premium or
    /// discount, long-context rates too. An `AIModelPrice` states Standard rates, so the tier
    /// scales it the same way, with the catalog entry's tier figures.
    pub fn price_in(
        &self,
        model: &ResolvedModel,
        tier: ServiceTier,
        at: Timestamp,
    ) -> EffectivePrice {
        let mut price = self.standard_price(model, at);
        let (factor, flags) = tier.factor(model.catalog);
        if let Some(factor) = factor {
            price.prices = price.prices.scaled(factor);
            if let Some(long) = price.long_context.as_mut() {
                long.prices = long.prices.scaled(factor);
            }
        }
        price.flags.extend(flags);
        price.service_tier = tier;
        price
    }

    /// The override's rates, its missing cache rates taken from the catalog entry.
    fn override_price(
        o: &PriceOverride,
        catalog: Option<&CatalogEntry>,
        max_output_tokens: u32,
    ) -> EffectivePrice {
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
        EffectivePrice {
            prices,
            source: PriceSource::Override {
                name: o.name.clone(),
            },
            flags: Vec::new(),
            max_output_tokens,
            long_context: None,
            service_tier: ServiceTier::Standard,
        }
    }

    /// The Standard-tier price of `model` at `at`: an override, else the catalog (regional
    /// premium included), else the flagged fallback.
    fn standard_price(&self, model: &ResolvedModel, at: Timestamp) -> EffectivePrice {
        let catalog = model.catalog;
        let max_output_tokens =
            catalog.map_or(self.fallback_max_output_tokens, |e| e.max_output_tokens);
        if let Some(o) = self.matching_override(model, at) {
            return Self::override_price(o, catalog, max_output_tokens);
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
                    service_tier: ServiceTier::Standard,
                }
            }
            None => EffectivePrice {
                prices: self.fallback.clone(),
                source: PriceSource::Fallback,
                flags: vec![PriceFlag::UnknownModel],
                max_output_tokens,
                long_context: None,
                service_tier: ServiceTier::Standard,
            },
        }
    }

    /// The exact cost of `usage` on `model` at `at` at the Standard tier.
    pub fn cost(
        &self,
        model: &ResolvedModel,
        usage: &Usage,
        mode: InvocationMode,
        at: Timestamp,
    ) -> Cost {
        self.cost_in(model, usage, mode, ServiceTier::Standard, at)
    }

    /// The exact cost of `usage` on `model` at `at`, served in `tier` (the tier Bedrock reports
    /// having served, where it reports one: that is the one it bills).
    pub fn cost_in(
        &self,
        model: &ResolvedModel,
        usage: &Usage,
        mode: InvocationMode,
        tier: ServiceTier,
        at: Timestamp,
    ) -> Cost {
        let mut price = self.price_in(model, tier, at);
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
    fn service_tiers_parse_bedrocks_wire_values_and_an_unknown_one_names_the_field() {
        assert_eq!(ServiceTier::from_request(None), Ok(ServiceTier::Standard));
        for (wire, tier) in [
            ("default", ServiceTier::Standard),
            ("priority", ServiceTier::Priority),
            ("flex", ServiceTier::Flex),
            ("reserved", ServiceTier::Reserved),
        ] {
            assert_eq!(ServiceTier::from_request(Some(wire)), Ok(tier));
            assert_eq!(tier.as_wire(), wire);
        }
        // Bedrock's spelling only: not "standard", not "Priority".
        for wrong in ["standard", "Priority", ""] {
            let err = ServiceTier::from_request(Some(wrong)).unwrap_err();
            assert_eq!(err, Error::UnknownServiceTier(wrong.into()));
            let text = err.to_string();
            assert!(text.contains("serviceTier.type"), "{text}");
            assert!(text.contains("X-Amzn-Bedrock-Service-Tier"), "{text}");
        }
    }

    fn tier_cost(id: &str, usage: Usage, tier: ServiceTier) -> Cost {
        PriceBook::default().cost_in(
            &resolve(id),
            &usage,
            InvocationMode::OnDemand,
            tier,
            at(NOW),
        )
    }

    #[test]
    fn flex_is_half_price_where_the_price_list_says_so() {
        // DeepSeek-V3.2: 10,000 in at $0.31 = 0.0031; 2,000 out at $0.925 = 0.00185.
        let usage = Usage {
            input_tokens: 10_000,
            output_tokens: 2_000,
            ..Usage::default()
        };
        let standard = tier_cost("deepseek.v3.2", usage, ServiceTier::Standard);
        let flex = tier_cost("deepseek.v3.2", usage, ServiceTier::Flex);
        assert_eq!(standard.amount, usd("0.0099"));
        assert_eq!(flex.amount, usd("0.00495"));
        assert_eq!(flex.price.flags, vec![PriceFlag::FlexDiscount]);
        assert_eq!(flex.price.service_tier, ServiceTier::Flex);
        assert_eq!(flex.price.prices.input, usd("0.31"));
    }

    #[test]
    fn flex_without_a_sourced_discount_is_priced_at_standard_and_flagged() {
        // Nova Pro: AWS offers Flex for it, but no figure was read: 1M in at $0.80.
        let usage = Usage {
            input_tokens: 1_000_000,
            ..Usage::default()
        };
        let flex = tier_cost("amazon.nova-pro-v1:0", usage, ServiceTier::Flex);
        assert_eq!(flex.amount, usd("0.80"));
        assert_eq!(flex.price.flags, vec![PriceFlag::TierRateAssumed]);
    }

    #[test]
    fn priority_adds_the_assumed_75_percent_and_says_it_is_assumed() {
        // gpt-oss-120b: 1M in at $0.15 + 1M out at $0.60 = 0.75 Standard; x 1.75 = 1.3125.
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            ..Usage::default()
        };
        let priority = tier_cost("openai.gpt-oss-120b-1:0", usage, ServiceTier::Priority);
        assert_eq!(priority.amount, usd("1.3125"));
        assert_eq!(priority.price.prices.input, usd("0.2625"));
        assert_eq!(priority.price.prices.output, usd("1.05"));
        assert_eq!(
            priority.price.flags,
            vec![PriceFlag::PriorityPremium, PriceFlag::TierRateAssumed]
        );
    }

    #[test]
    fn priority_stacks_on_the_regional_premium_and_the_long_context_rates() {
        // Sonnet 4.5 in region, 100,000 in at $3 + 10,000 out at $15 = 0.45; x 1.10 = 0.495;
        // x 1.75 = 0.86625.
        let short = Usage {
            input_tokens: 100_000,
            output_tokens: 10_000,
            ..Usage::default()
        };
        let id = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        let cost = tier_cost(id, short, ServiceTier::Priority);
        assert_eq!(cost.amount, usd("0.86625"));
        assert!(cost.price.flags.contains(&PriceFlag::RegionalPremium));
        // Global, 250,000 in at the long-context $6 = 1.5 + 1,000 out at $22.50 = 0.0225:
        // 1.5225; x 1.75 = 2.664375.
        let long = Usage {
            input_tokens: 250_000,
            output_tokens: 1_000,
            ..Usage::default()
        };
        let global = format!("global.{id}");
        assert_eq!(
            tier_cost(&global, long, ServiceTier::Priority).amount,
            usd("2.664375")
        );
    }

    #[test]
    fn reserved_is_priced_at_standard_and_an_override_is_scaled_by_the_tier() {
        let usage = Usage {
            input_tokens: 1_000_000,
            ..Usage::default()
        };
        let reserved = tier_cost("openai.gpt-oss-120b-1:0", usage, ServiceTier::Reserved);
        assert_eq!(reserved.amount, usd("0.15"));
        assert_eq!(reserved.price.flags, vec![PriceFlag::ReservedAtStandard]);
        // An AIModelPrice of $2 input states Standard; Flex halves it with the catalog's 50%.
        let book = PriceBook::new(
            vec![over("deal", "openai.gpt-oss-120b-1:0", "2", None)],
            PriceBook::default().price(&resolve("x"), at(NOW)).prices,
            1,
        );
        let model = resolve("openai.gpt-oss-120b-1:0");
        let flex = book.cost_in(
            &model,
            &usage,
            InvocationMode::OnDemand,
            ServiceTier::Flex,
            at(NOW),
        );
        assert_eq!(flex.amount, usd("1"));
        assert_eq!(
            book.price(&model, at(NOW)).service_tier,
            ServiceTier::Standard
        );
    }

    #[test]
    fn claude_4_6_prices_a_500k_prompt_at_its_base_rate_as_no_long_context_rate_was_sourced() {
        // Opus 4.6 global: 500,000 in at $5 = 2.5 + 1,000 out at $25 = 0.025; regional +10%.
        let usage = Usage {
            input_tokens: 500_000,
            output_tokens: 1_000,
            ..Usage::default()
        };
        let cost = |id: &str| tier_cost(id, usage, ServiceTier::Standard).amount;
        assert_eq!(cost("global.anthropic.claude-opus-4-6-v1"), usd("2.525"));
        assert_eq!(cost("us.anthropic.claude-opus-4-6-v1"), usd("2.7775"));
        // Sonnet 5 global: 500,000 at $2 = 1 + 1,000 at $10 = 0.01.
        assert_eq!(cost("global.anthropic.claude-sonnet-5"), usd("1.01"));
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
