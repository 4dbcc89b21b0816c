//! The Bedrock on-demand price catalog: what aigov charges when no `AIModelPrice` says
//! otherwise. Every figure is USD per 1M tokens, transcribed from the Amazon Bedrock pricing
//! page (on-demand, US East (N. Virginia)); `since` is the date the price took effect there.
//! That page renders its prices client-side, so a figure read elsewhere (the AWS Price List,
//! the model provider's own page, a public mirror of Bedrock's rates) says so in its row's
//! comment, with the date it was read, and is marked UNVERIFIED where no AWS source confirms
//! it; where such a row has no known launch date, `since` is the date of its source.
//!
//! Cache prices are listed explicitly per model. A model whose cache prices are `None` does not
//! support prompt caching on Bedrock; a cache token reported for it is priced at the input
//! rate and flagged, never at zero.

use std::sync::LazyLock;

use rust_decimal::Decimal;

use crate::money::Usd;

/// The page every catalog figure is transcribed from.
pub const PRICING_SOURCE: &str = "https://aws.amazon.com/bedrock/pricing/ (on-demand, us-east-1)";

/// Request/response body shape a model speaks on InvokeModel, so that a downgrade only
/// rewrites a model ID to another model that reads the same body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelFamily {
    /// Anthropic Messages API bodies (`anthropic_version`, `messages`, `max_tokens`).
    AnthropicClaude,
    /// Amazon Nova bodies (`messages`, `inferenceConfig.maxTokens`).
    AmazonNova,
    /// Amazon Titan Text bodies (`inputText`, `textGenerationConfig.maxTokenCount`).
    AmazonTitanText,
    /// Meta Llama bodies (`prompt`, `max_gen_len`).
    MetaLlama,
    /// Mistral bodies (`prompt` or `messages`, `max_tokens`).
    Mistral,
    /// OpenAI Chat Completions bodies (`messages`, `max_completion_tokens`), which the
    /// open-weight models on Bedrock read on InvokeModel (gpt-oss, DeepSeek, Qwen).
    OpenAiChat,
}

/// Per-token prices of one model, USD per 1M tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPrices {
    /// Uncached input tokens.
    pub input: Usd,
    /// Output tokens.
    pub output: Usd,
    /// Tokens read from the prompt cache; `None` where the model has no prompt caching.
    pub cache_read: Option<Usd>,
    /// Tokens written to the prompt cache with the default 5-minute TTL.
    pub cache_write_5m: Option<Usd>,
    /// Tokens written to the prompt cache with the 1-hour TTL, where it is priced apart.
    pub cache_write_1h: Option<Usd>,
}

/// The rates a model charges for a long prompt: every token of a request whose input (plain,
/// cache read and cache write together) exceeds `above` tokens is priced at `prices`, not
/// only the tokens past it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LongContext {
    /// Input tokens a request may have at the base rates; one more and the whole request is
    /// priced at the long-context rates.
    pub above: u64,
    /// The long-context rates, USD per 1M tokens.
    pub prices: TokenPrices,
}

impl LongContext {
    /// True when a request with `input_tokens` in all is priced at these rates.
    pub fn applies(&self, input_tokens: u64) -> bool {
        input_tokens > self.above
    }
}

/// What a model's Priority and Flex service tiers cost next to its Standard rates, as far as a
/// source says: `None` where none was found, and then pricing assumes (and flags) the safe
/// side, a premium for Priority and no discount for Flex, so that a budget is never
/// under-counted by a discount nobody checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TierRates {
    /// Percent Priority adds to every Standard rate.
    pub priority_premium_percent: Option<u32>,
    /// Percent Flex takes off every Standard rate.
    pub flex_discount_percent: Option<u32>,
}

/// One model in the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The foundation-model ID Bedrock knows it by (`anthropic.claude-3-haiku-20240307-v1:0`).
    pub model_id: &'static str,
    /// The name people use for it.
    pub name: &'static str,
    /// The InvokeModel body family.
    pub family: ModelFamily,
    /// On-demand prices for the base (global, or only) endpoint.
    pub prices: TokenPrices,
    /// Percent added when invoked through an in-region or geographic endpoint rather than the
    /// `global.` profile (10 for the Claude 4.5 generation, none for older models).
    pub regional_premium_percent: Option<u32>,
    /// The most output tokens one request may produce: the worst-case reservation's bound.
    pub max_output_tokens: u32,
    /// The context window, in tokens (the largest the model accepts: 1M for the models with
    /// a long-context rate).
    pub context_window: u32,
    /// Rates for prompts past 200K tokens, for the models that have them.
    pub long_context: Option<LongContext>,
    /// What the Priority and Flex service tiers cost next to Standard, where a source gives it.
    pub service_tiers: TierRates,
    /// The date this price took effect on the source page.
    pub since: &'static str,
}

struct Row {
    id: &'static str,
    name: &'static str,
    family: ModelFamily,
    input: &'static str,
    output: &'static str,
    cache_read: Option<&'static str>,
    cache_write_5m: Option<&'static str>,
    cache_write_1h: Option<&'static str>,
    regional_premium_percent: Option<u32>,
    max_output_tokens: u32,
    context_window: u32,
    since: &'static str,
}

use ModelFamily::*;

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // Anthropic Claude 3
    Row { id: "anthropic.claude-3-haiku-20240307-v1:0", name: "Claude 3 Haiku", family: AnthropicClaude, input: "0.25", output: "1.25", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 4096, context_window: 200_000, since: "2024-03-13" },
    Row { id: "anthropic.claude-3-sonnet-20240229-v1:0", name: "Claude 3 Sonnet", family: AnthropicClaude, input: "3", output: "15", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 4096, context_window: 200_000, since: "2024-03-04" },
    Row { id: "anthropic.claude-3-opus-20240229-v1:0", name: "Claude 3 Opus", family: AnthropicClaude, input: "15", output: "75", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 4096, context_window: 200_000, since: "2024-04-16" },
    // Anthropic Claude 3.5 / 3.7
    Row { id: "anthropic.claude-3-5-haiku-20241022-v1:0", name: "Claude 3.5 Haiku", family: AnthropicClaude, input: "0.80", output: "4", cache_read: Some("0.08"), cache_write_5m: Some("1"), cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 8192, context_window: 200_000, since: "2024-12-10" },
    Row { id: "anthropic.claude-3-5-sonnet-20240620-v1:0", name: "Claude 3.5 Sonnet", family: AnthropicClaude, input: "3", output: "15", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 8192, context_window: 200_000, since: "2024-06-20" },
    Row { id: "anthropic.claude-3-5-sonnet-20241022-v2:0", name: "Claude 3.5 Sonnet v2", family: AnthropicClaude, input: "3", output: "15", cache_read: Some("0.30"), cache_write_5m: Some("3.75"), cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 8192, context_window: 200_000, since: "2024-10-22" },
    Row { id: "anthropic.claude-3-7-sonnet-20250219-v1:0", name: "Claude 3.7 Sonnet", family: AnthropicClaude, input: "3", output: "15", cache_read: Some("0.30"), cache_write_5m: Some("3.75"), cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 64_000, context_window: 200_000, since: "2025-02-24" },
    // Anthropic Claude 4 / 4.1
    Row { id: "anthropic.claude-sonnet-4-20250514-v1:0", name: "Claude Sonnet 4", family: AnthropicClaude, input: "3", output: "15", cache_read: Some("0.30"), cache_write_5m: Some("3.75"), cache_write_1h: Some("6"), regional_premium_percent: None, max_output_tokens: 64_000, context_window: 200_000, since: "2025-05-22" },
    Row { id: "anthropic.claude-opus-4-20250514-v1:0", name: "Claude Opus 4", family: AnthropicClaude, input: "15", output: "75", cache_read: Some("1.50"), cache_write_5m: Some("18.75"), cache_write_1h: Some("30"), regional_premium_percent: None, max_output_tokens: 32_000, context_window: 200_000, since: "2025-05-22" },
    Row { id: "anthropic.claude-opus-4-1-20250805-v1:0", name: "Claude Opus 4.1", family: AnthropicClaude, input: "15", output: "75", cache_read: Some("1.50"), cache_write_5m: Some("18.75"), cache_write_1h: Some("30"), regional_premium_percent: None, max_output_tokens: 32_000, context_window: 200_000, since: "2025-08-05" },
    // Anthropic Claude 4.5: the global profile is the base price; regional endpoints add 10%.
    Row { id: "anthropic.claude-sonnet-4-5-20250929-v1:0", name: "Claude Sonnet 4.5", family: AnthropicClaude, input: "3", output: "15", cache_read: Some("0.30"), cache_write_5m: Some("3.75"), cache_write_1h: Some("6"), regional_premium_percent: Some(10), max_output_tokens: 64_000, context_window: 200_000, since: "2025-09-29" },
    Row { id: "anthropic.claude-haiku-4-5-20251001-v1:0", name: "Claude Haiku 4.5", family: AnthropicClaude, input: "1", output: "5", cache_read: Some("0.10"), cache_write_5m: Some("1.25"), cache_write_1h: Some("2"), regional_premium_percent: Some(10), max_output_tokens: 64_000, context_window: 200_000, since: "2025-10-15" },
    Row { id: "anthropic.claude-opus-4-5-20251101-v1:0", name: "Claude Opus 4.5", family: AnthropicClaude, input: "5", output: "25", cache_read: Some("0.50"), cache_write_5m: Some("6.25"), cache_write_1h: Some("10"), regional_premium_percent: Some(10), max_output_tokens: 64_000, context_window: 200_000, since: "2025-11-24" },
    // Anthropic Claude 4.6 (UNVERIFIED against AWS's page, which renders its prices
    // client-side): $5/$25 and $3/$15 from Anthropic's model pages
    // (https://platform.claude.com/docs/en/models/opus-4-6/overview, .../sonnet-4-6/overview,
    // read 2026-12-02), the cache rates Anthropic's 1.25x / 2x / 0.1x of input; Bedrock IDs,
    // and the same base and cache figures, from pi-ai's bundled Bedrock data
    // (@earendil-works/pi-ai 0.84.1, mirrored 2026-08-20). Opus 4.6's 1M window, 128K output
    // and launch date from AWS's model card
    // (https://docs.aws.amazon.com/bedrock/latest/userguide/model-card-anthropic-claude-opus-4-6.md);
    // Sonnet 4.6's from Anthropic's page (128K there; some write-ups say 64K: the larger bound
    // is kept, as a reservation may over-estimate but never under-). Whether Bedrock still adds
    // a long-context rate past 200K for these two was not found: none is applied (UNVERIFIED).
    // The 10% regional premium follows the 4.5 generation's rule (pi-ai's eu. figures agree).
    Row { id: "anthropic.claude-opus-4-6-v1", name: "Claude Opus 4.6", family: AnthropicClaude, input: "5", output: "25", cache_read: Some("0.50"), cache_write_5m: Some("6.25"), cache_write_1h: Some("10"), regional_premium_percent: Some(10), max_output_tokens: 128_000, context_window: 1_000_000, since: "2026-02-05" },
    Row { id: "anthropic.claude-sonnet-4-6", name: "Claude Sonnet 4.6", family: AnthropicClaude, input: "3", output: "15", cache_read: Some("0.30"), cache_write_5m: Some("3.75"), cache_write_1h: Some("6"), regional_premium_percent: Some(10), max_output_tokens: 128_000, context_window: 1_000_000, since: "2026-02-17" },
    // Anthropic Claude 5: every figure (input, output, 5-minute and 1-hour cache writes, cache
    // reads, the 1M window at one rate, 128K output, release date) from Anthropic's model pages
    // (https://platform.claude.com/docs/en/models/sonnet-5/overview and .../opus-5/overview,
    // read 2026-12-02); the Bedrock IDs (served as `global.`, `us.`, `eu.`, `jp.`, `au.`
    // profiles) and the same base figures from pi-ai's Bedrock data (mirrored 2026-08-20).
    // UNVERIFIED against AWS's page. The 5.5 generation (Opus 5.5, Sonnet 5.5, Haiku 5.5) and
    // Fable are left out: no Bedrock ID for them was found.
    Row { id: "anthropic.claude-sonnet-5", name: "Claude Sonnet 5", family: AnthropicClaude, input: "2", output: "10", cache_read: Some("0.20"), cache_write_5m: Some("2.50"), cache_write_1h: Some("4"), regional_premium_percent: Some(10), max_output_tokens: 128_000, context_window: 1_000_000, since: "2026-06-30" },
    Row { id: "anthropic.claude-opus-5", name: "Claude Opus 5", family: AnthropicClaude, input: "5", output: "25", cache_read: Some("0.50"), cache_write_5m: Some("6.25"), cache_write_1h: Some("10"), regional_premium_percent: Some(10), max_output_tokens: 128_000, context_window: 1_000_000, since: "2026-07-24" },
    // Amazon Nova: cache reads at a 75% discount; cache writes cost the input rate.
    Row { id: "amazon.nova-micro-v1:0", name: "Nova Micro", family: AmazonNova, input: "0.035", output: "0.14", cache_read: Some("0.00875"), cache_write_5m: Some("0.035"), cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 10_000, context_window: 128_000, since: "2024-12-03" },
    Row { id: "amazon.nova-lite-v1:0", name: "Nova Lite", family: AmazonNova, input: "0.06", output: "0.24", cache_read: Some("0.015"), cache_write_5m: Some("0.06"), cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 10_000, context_window: 300_000, since: "2024-12-03" },
    Row { id: "amazon.nova-pro-v1:0", name: "Nova Pro", family: AmazonNova, input: "0.80", output: "3.20", cache_read: Some("0.20"), cache_write_5m: Some("0.80"), cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 10_000, context_window: 300_000, since: "2024-12-03" },
    // Nova Sonic (speech to speech, InvokeModelWithBidirectionalStream only): these are its
    // text-token rates; its speech tokens are priced in `units::SPEECH_RATES`. UNVERIFIED
    // against AWS's own page (its prices render client-side): $0.06 / $0.24 per 1M text
    // tokens as published by several independent write-ups of the launch (April 2025). The
    // output bound is the largest `maxTokens` the session accepts (also unverified).
    Row { id: "amazon.nova-sonic-v1:0", name: "Nova Sonic", family: AmazonNova, input: "0.06", output: "0.24", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 10_000, context_window: 300_000, since: "2025-04-08" },
    // Nova 2 Lite (cross-region profiles only; no in-region endpoint). UNVERIFIED: $0.33 /
    // $2.75 per pi-ai's Bedrock data (mirrored 2026-08-20) and Vercel's AI Gateway page;
    // LiteLLM's price file (snapshot 2026-08-06) says $0.30 / $2.50 with $0.075 cache reads.
    // The higher pair is kept and no cache rate is claimed (cache tokens are charged at the
    // input rate and flagged) until AWS's own figure is read. The 1M window, 64K output
    // (65,536 kept: AWS's migration post says 65K) and the 2025-12-02 launch are the model
    // card's (https://docs.aws.amazon.com/bedrock/latest/userguide/model-card-amazon-nova-2-lite.html).
    // Nova Premier is left out: its model card gives an EOL date of 2026-09-14.
    Row { id: "amazon.nova-2-lite-v1:0", name: "Nova 2 Lite", family: AmazonNova, input: "0.33", output: "2.75", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 65_536, context_window: 1_000_000, since: "2025-12-02" },
    // Amazon Titan Text
    Row { id: "amazon.titan-text-lite-v1", name: "Titan Text G1 - Lite", family: AmazonTitanText, input: "0.15", output: "0.20", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 4096, context_window: 4096, since: "2023-11-29" },
    Row { id: "amazon.titan-text-express-v1", name: "Titan Text G1 - Express", family: AmazonTitanText, input: "0.20", output: "0.60", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 8192, context_window: 8192, since: "2023-11-29" },
    Row { id: "amazon.titan-text-premier-v1:0", name: "Titan Text G1 - Premier", family: AmazonTitanText, input: "0.50", output: "1.50", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 3072, context_window: 32_000, since: "2024-05-07" },
    // Meta Llama 3.x
    Row { id: "meta.llama3-8b-instruct-v1:0", name: "Llama 3 8B Instruct", family: MetaLlama, input: "0.30", output: "0.60", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 2048, context_window: 8192, since: "2024-04-23" },
    Row { id: "meta.llama3-70b-instruct-v1:0", name: "Llama 3 70B Instruct", family: MetaLlama, input: "2.65", output: "3.50", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 2048, context_window: 8192, since: "2024-04-23" },
    Row { id: "meta.llama3-1-8b-instruct-v1:0", name: "Llama 3.1 8B Instruct", family: MetaLlama, input: "0.22", output: "0.22", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 2048, context_window: 128_000, since: "2024-07-23" },
    Row { id: "meta.llama3-1-70b-instruct-v1:0", name: "Llama 3.1 70B Instruct", family: MetaLlama, input: "0.72", output: "0.72", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 2048, context_window: 128_000, since: "2024-07-23" },
    Row { id: "meta.llama3-1-405b-instruct-v1:0", name: "Llama 3.1 405B Instruct", family: MetaLlama, input: "2.40", output: "2.40", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 2048, context_window: 128_000, since: "2024-07-23" },
    Row { id: "meta.llama3-2-1b-instruct-v1:0", name: "Llama 3.2 1B Instruct", family: MetaLlama, input: "0.10", output: "0.10", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 2048, context_window: 128_000, since: "2024-09-25" },
    Row { id: "meta.llama3-2-3b-instruct-v1:0", name: "Llama 3.2 3B Instruct", family: MetaLlama, input: "0.15", output: "0.15", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 2048, context_window: 128_000, since: "2024-09-25" },
    Row { id: "meta.llama3-2-11b-instruct-v1:0", name: "Llama 3.2 11B Vision Instruct", family: MetaLlama, input: "0.16", output: "0.16", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 2048, context_window: 128_000, since: "2024-09-25" },
    Row { id: "meta.llama3-2-90b-instruct-v1:0", name: "Llama 3.2 90B Vision Instruct", family: MetaLlama, input: "0.72", output: "0.72", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 2048, context_window: 128_000, since: "2024-09-25" },
    Row { id: "meta.llama3-3-70b-instruct-v1:0", name: "Llama 3.3 70B Instruct", family: MetaLlama, input: "0.72", output: "0.72", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 2048, context_window: 128_000, since: "2024-12-19" },
    // Meta Llama 4. UNVERIFIED against AWS's page: $0.24 / $0.97 and $0.17 / $0.66 from
    // pi-ai's Bedrock data (mirrored 2026-08-20; `since` is that date, the launch date was not
    // found), the same figures in two other public price tables. Windows: Maverick 1M (pi-ai,
    // braintrust-proxy#557), Scout 10M (braintrust-proxy#557, Meta's figure; Bedrock may serve
    // less, which only loosens the bound). Output: 16,384 (pi-ai's Maverick figure; #557 says
    // 8,000), the larger kept for both.
    Row { id: "meta.llama4-maverick-17b-instruct-v1:0", name: "Llama 4 Maverick 17B Instruct", family: MetaLlama, input: "0.24", output: "0.97", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 16_384, context_window: 1_000_000, since: "2026-08-20" },
    Row { id: "meta.llama4-scout-17b-instruct-v1:0", name: "Llama 4 Scout 17B Instruct", family: MetaLlama, input: "0.17", output: "0.66", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 16_384, context_window: 10_000_000, since: "2026-08-20" },
    // Mistral
    Row { id: "mistral.mistral-large-2402-v1:0", name: "Mistral Large (24.02)", family: Mistral, input: "4", output: "12", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 8192, context_window: 32_000, since: "2024-04-02" },
    Row { id: "mistral.mistral-large-2407-v1:0", name: "Mistral Large 2 (24.07)", family: Mistral, input: "2", output: "6", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 8192, context_window: 128_000, since: "2024-07-24" },
    // Mistral Large 3 and Pixtral Large. UNVERIFIED against AWS's page: $0.50 / $1.50 and
    // $2 / $6 from pi-ai's Bedrock data (mirrored 2026-08-20); Large 3's figures are also
    // Mistral's own, and its 262,144-token window, 256,000 output and 2025-12-02 announcement
    // are from Vercel's AI Gateway page for Mistral's API. Pixtral Large's window (128K) and
    // output bound (the window) were not found for Bedrock: both UNVERIFIED, and `since` is
    // the mirror's date.
    Row { id: "mistral.mistral-large-3-675b-instruct", name: "Mistral Large 3", family: Mistral, input: "0.50", output: "1.50", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 256_000, context_window: 262_144, since: "2025-12-02" },
    Row { id: "mistral.pixtral-large-2502-v1:0", name: "Pixtral Large (25.02)", family: Mistral, input: "2", output: "6", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 128_000, context_window: 128_000, since: "2026-08-20" },
    // Open-weight models, served on bedrock-runtime and on bedrock-mantle (where their IDs
    // drop the version suffix: `openai.gpt-oss-120b`, resolved by `lookup`). No prompt caching.
    Row { id: "openai.gpt-oss-120b-1:0", name: "gpt-oss-120b", family: OpenAiChat, input: "0.15", output: "0.60", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 128_000, context_window: 128_000, since: "2025-08-05" },
    Row { id: "openai.gpt-oss-20b-1:0", name: "gpt-oss-20b", family: OpenAiChat, input: "0.07", output: "0.30", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 128_000, context_window: 128_000, since: "2025-08-05" },
    Row { id: "deepseek.v3-v1:0", name: "DeepSeek-V3.1", family: OpenAiChat, input: "0.58", output: "1.68", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 128_000, context_window: 128_000, since: "2025-09-18" },
    Row { id: "deepseek.r1-v1:0", name: "DeepSeek-R1", family: OpenAiChat, input: "1.35", output: "5.40", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 32_768, context_window: 128_000, since: "2025-03-10" },
    Row { id: "qwen.qwen3-32b-v1:0", name: "Qwen3 32B", family: OpenAiChat, input: "0.15", output: "0.60", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 32_768, context_window: 128_000, since: "2025-09-18" },
    Row { id: "qwen.qwen3-coder-30b-a3b-v1:0", name: "Qwen3 Coder 30B A3B", family: OpenAiChat, input: "0.15", output: "0.60", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 65_536, context_window: 256_000, since: "2025-09-18" },
    Row { id: "qwen.qwen3-235b-a22b-2507-v1:0", name: "Qwen3 235B A22B 2507", family: OpenAiChat, input: "0.22", output: "0.88", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 81_920, context_window: 256_000, since: "2025-09-18" },
    Row { id: "qwen.qwen3-coder-480b-a35b-v1:0", name: "Qwen3 Coder 480B A35B", family: OpenAiChat, input: "0.22", output: "1.80", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 65_536, context_window: 256_000, since: "2025-09-18" },
    // DeepSeek-V3.2: $0.62 / $1.85 (and Flex at half) as read from the AWS Price List API
    // (`aws pricing get-products --service-code AmazonBedrock`, us-east-1, 2026-10-03) and
    // quoted in a public Bedrock proxy; pi-ai's data agrees. The 163,840-token window is the
    // one Bedrock's own ValidationException states ("maximum context length is 163840
    // tokens"); 81,920 output from pi-ai's data.
    Row { id: "deepseek.v3.2", name: "DeepSeek-V3.2", family: OpenAiChat, input: "0.62", output: "1.85", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 81_920, context_window: 163_840, since: "2026-10-03" },
    // Moonshot Kimi, MiniMax and Google Gemma 3 (open-weight, on bedrock-runtime and
    // bedrock-mantle; assumed to read OpenAI Chat bodies like the models above). UNVERIFIED
    // against AWS's page: prices from pi-ai's Bedrock data (mirrored 2026-08-20, the `since`
    // of each row: launch dates were not found), each also in at least one other public
    // Bedrock price table. Windows: Kimi K2.5 256K (a public app's model table). The others
    // were not found in any source read (UNVERIFIED): Kimi K2 Thinking takes K2.5's, MiniMax
    // 262,144 and Gemma 3 131,072 are generous bounds, not documented figures. A window only
    // caps the input bound (the body's bytes bound it first), and output bounds are set to
    // the window, so a wrong guess over-reserves and never under-.
    Row { id: "moonshotai.kimi-k2.5", name: "Kimi K2.5", family: OpenAiChat, input: "0.60", output: "3", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 256_000, context_window: 256_000, since: "2026-08-20" },
    Row { id: "moonshot.kimi-k2-thinking", name: "Kimi K2 Thinking", family: OpenAiChat, input: "0.60", output: "2.50", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 256_000, context_window: 256_000, since: "2026-08-20" },
    Row { id: "minimax.minimax-m2", name: "MiniMax M2", family: OpenAiChat, input: "0.30", output: "1.20", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 262_144, context_window: 262_144, since: "2026-08-20" },
    Row { id: "minimax.minimax-m2.5", name: "MiniMax M2.5", family: OpenAiChat, input: "0.30", output: "1.20", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 262_144, context_window: 262_144, since: "2026-08-20" },
    Row { id: "google.gemma-3-27b-it", name: "Gemma 3 27B IT", family: OpenAiChat, input: "0.12", output: "0.20", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 131_072, context_window: 131_072, since: "2026-08-20" },
    Row { id: "google.gemma-3-4b-it", name: "Gemma 3 4B IT", family: OpenAiChat, input: "0.04", output: "0.08", cache_read: None, cache_write_5m: None, cache_write_1h: None, regional_premium_percent: None, max_output_tokens: 131_072, context_window: 131_072, since: "2026-08-20" },
];

/// Long-context rates (USD per 1M tokens) of the models that read up to 1M tokens: input,
/// output, cache read, cache write 5m, cache write 1h, for a request with more than 200K
/// input tokens (plain, cache read and cache write together), on the base (global) endpoint.
/// Claude Sonnet 4 and Sonnet 4.5 (the 1M context window, beta header
/// `context-1m-2025-08-07`): $6 input and $22.50 output (twice and one and a half times the
/// base rates), cache reads $0.60, 5-minute writes $7.50, 1-hour writes $12 (the usual
/// 0.1x / 1.25x / 2x of the long-context input rate); Sonnet 4.5's regional premium applies
/// to them as to its base rates.
#[rustfmt::skip]
const LONG_CONTEXT: &[(&str, u64, [&str; 5])] = &[
    ("anthropic.claude-sonnet-4-20250514-v1:0", 200_000, ["6", "22.50", "0.60", "7.50", "12"]),
    ("anthropic.claude-sonnet-4-5-20250929-v1:0", 200_000, ["6", "22.50", "0.60", "7.50", "12"]),
];

/// Service-tier rates by model: (model, Priority premium %, Flex discount %).
///
/// Flex at exactly half the Standard rates for every token kind: read from the AWS Price List
/// API (`aws pricing get-products --service-code AmazonBedrock`, us-east-1, 2026-10-03) for
/// gpt-oss-120b ($0.075 / $0.30), Qwen3 235B A22B 2507 ($0.11 / $0.44) and DeepSeek-V3.2
/// ($0.31 / $0.925), as quoted in a public Bedrock proxy's price table. The other models AWS
/// launched the tiers with (gpt-oss-20b, DeepSeek-V3.1, the other Qwen3 models, Nova Pro;
/// https://aws.amazon.com/about-aws/whats-new/2025/11/amazon-bedrock-priority-flex-inference-service-tiers)
/// likely follow the same ratio, but no figure for them was read, so none is claimed.
/// Priority has no per-model figure here: AWS says only "Standard rate + premium"
/// (https://aws.amazon.com/bedrock/service-tiers), and a summary of the Price List gives
/// "roughly 1.75x"; pricing applies [`ASSUMED_PRIORITY_PREMIUM_PERCENT`] and flags it.
#[rustfmt::skip]
const SERVICE_TIERS: &[(&str, Option<u32>, Option<u32>)] = &[
    ("openai.gpt-oss-120b-1:0", None, Some(50)),
    ("qwen.qwen3-235b-a22b-2507-v1:0", None, Some(50)),
    ("deepseek.v3.2", None, Some(50)),
];

/// The Priority premium assumed where a model has no sourced figure: 75%, from a summary of
/// the AWS Price List ("Priority ... roughly 1.75x the on-demand token price",
/// api-evangelist/amazon-nova plans, read from the Price List 2026-09-01). UNVERIFIED as an
/// exact per-model figure; erring high keeps a Priority call from being under-reserved.
pub const ASSUMED_PRIORITY_PREMIUM_PERCENT: u32 = 75;

fn service_tiers(id: &str) -> TierRates {
    SERVICE_TIERS
        .iter()
        .find(|(model, _, _)| *model == id)
        .map_or_else(TierRates::default, |(_, priority, flex)| TierRates {
            priority_premium_percent: *priority,
            flex_discount_percent: *flex,
        })
}

/// The context window of a model with long-context rates.
pub const LONG_CONTEXT_WINDOW: u32 = 1_000_000;

fn long_context(id: &str) -> Option<LongContext> {
    LONG_CONTEXT.iter().find(|(model, _, _)| *model == id).map(
        |(_, above, [input, output, read, write_5m, write_1h])| LongContext {
            above: *above,
            prices: TokenPrices {
                input: usd(input),
                output: usd(output),
                cache_read: Some(usd(read)),
                cache_write_5m: Some(usd(write_5m)),
                cache_write_1h: Some(usd(write_1h)),
            },
        },
    )
}

fn usd(text: &'static str) -> Usd {
    Usd::parse(text).unwrap_or_else(|e| panic!("catalog figure {text:?} is malformed: {e}"))
}

static CATALOG: LazyLock<Vec<CatalogEntry>> = LazyLock::new(|| {
    ROWS.iter()
        .map(|row| CatalogEntry {
            model_id: row.id,
            name: row.name,
            family: row.family,
            prices: TokenPrices {
                input: usd(row.input),
                output: usd(row.output),
                cache_read: row.cache_read.map(usd),
                cache_write_5m: row.cache_write_5m.map(usd),
                cache_write_1h: row.cache_write_1h.map(usd),
            },
            regional_premium_percent: row.regional_premium_percent,
            max_output_tokens: row.max_output_tokens,
            context_window: match long_context(row.id) {
                Some(_) => LONG_CONTEXT_WINDOW,
                None => row.context_window,
            },
            long_context: long_context(row.id),
            service_tiers: service_tiers(row.id),
            since: row.since,
        })
        .collect()
});

/// Every model in the catalog.
pub fn entries() -> &'static [CatalogEntry] {
    &CATALOG
}

/// The catalog entry for a foundation-model ID, tolerating Bedrock's context-window variants
/// (`anthropic.claude-3-haiku-20240307-v1:0:200k`) and the names bedrock-mantle gives the same
/// models ([`mantle_name_matches`]: `anthropic.claude-haiku-4-5`, `openai.gpt-oss-120b`).
pub fn lookup(model_id: &str) -> Option<&'static CatalogEntry> {
    entries()
        .iter()
        .find(|entry| {
            model_id == entry.model_id
                || model_id
                    .strip_prefix(entry.model_id)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|variant| variant.ends_with('k') || variant == "mm")
        })
        .or_else(|| {
            // Only a name that stands for one model: `anthropic.claude-3-5-sonnet` is two.
            let mut matching = entries()
                .iter()
                .filter(|entry| mantle_name_matches(model_id, entry.model_id));
            matching.next().filter(|_| matching.next().is_none())
        })
}

/// True when `name` is the bedrock-mantle name of `model_id`: the Bedrock ID without its
/// release date and version (`anthropic.claude-haiku-4-5` for
/// `anthropic.claude-haiku-4-5-20251001-v1:0`, `openai.gpt-oss-120b` for
/// `openai.gpt-oss-120b-1:0`, `qwen.qwen3-32b` for `qwen.qwen3-32b-v1:0`). Only a date
/// (`-YYYYMMDD-`) or a version (`-vN:M`, `-N:M`, `-vN`) may follow the name, so
/// `anthropic.claude-opus-4` names Opus 4 and not Opus 4.1 (`...-opus-4-1-2025...`).
pub fn mantle_name_matches(name: &str, model_id: &str) -> bool {
    let Some(rest) = model_id
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix('-'))
    else {
        return false;
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    // `vN:M`, `N:M`, or a bare `vN` (`anthropic.claude-opus-4-6-v1`); never a bare `N`, which
    // would make `anthropic.claude-opus-4` the name of Opus 4.6.
    let version = |v: &str| match v.strip_prefix('v') {
        Some(v) => v
            .split_once(':')
            .map_or(digits(v), |(a, b)| digits(a) && digits(b)),
        None => v
            .split_once(':')
            .is_some_and(|(a, b)| digits(a) && digits(b)),
    };
    let dated = rest.len() > 9
        && rest.as_bytes()[..8].iter().all(u8::is_ascii_digit)
        && rest.as_bytes()[8] == b'-'
        && version(&rest[9..]);
    dated || version(rest)
}

impl TokenPrices {
    /// These prices scaled by an exact factor (a regional premium, the batch discount).
    pub fn scaled(&self, factor: Decimal) -> TokenPrices {
        TokenPrices {
            input: self.input.scaled(factor),
            output: self.output.scaled(factor),
            cache_read: self.cache_read.map(|p| p.scaled(factor)),
            cache_write_5m: self.cache_write_5m.map(|p| p.scaled(factor)),
            cache_write_1h: self.cache_write_1h.map(|p| p.scaled(factor)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mantle_names_resolve_to_the_same_entries_as_bedrock_ids() {
        for (mantle, id) in [
            (
                "anthropic.claude-haiku-4-5",
                "anthropic.claude-haiku-4-5-20251001-v1:0",
            ),
            (
                "anthropic.claude-sonnet-4-5",
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
            ),
            (
                "anthropic.claude-opus-4",
                "anthropic.claude-opus-4-20250514-v1:0",
            ),
            (
                "anthropic.claude-opus-4-1",
                "anthropic.claude-opus-4-1-20250805-v1:0",
            ),
            ("openai.gpt-oss-120b", "openai.gpt-oss-120b-1:0"),
            ("openai.gpt-oss-20b", "openai.gpt-oss-20b-1:0"),
            ("qwen.qwen3-32b", "qwen.qwen3-32b-v1:0"),
            ("deepseek.v3", "deepseek.v3-v1:0"),
            ("anthropic.claude-opus-4-6", "anthropic.claude-opus-4-6-v1"),
            ("anthropic.claude-sonnet-4-6", "anthropic.claude-sonnet-4-6"),
            ("deepseek.v3.2", "deepseek.v3.2"),
        ] {
            assert_eq!(lookup(mantle).map(|e| e.model_id), Some(id), "{mantle}");
        }
        assert!(lookup("anthropic.claude").is_none());
        assert!(lookup("openai.gpt-oss").is_none());
        assert!(!mantle_name_matches(
            "anthropic.claude-opus-4",
            "anthropic.claude-opus-4-5-20251101-v1:0"
        ));
        // A bare `-vN` is a version; a bare `-N` is another model.
        assert!(!mantle_name_matches(
            "anthropic.claude-opus-4",
            "anthropic.claude-opus-4-6-v1"
        ));
        assert!(!mantle_name_matches(
            "anthropic.claude-sonnet-4",
            "anthropic.claude-sonnet-4-6"
        ));
    }

    #[test]
    fn every_model_family_the_design_names_is_in_the_catalog() {
        for name in [
            "Claude 3 Haiku",
            "Claude 3 Sonnet",
            "Claude 3 Opus",
            "Claude 3.5 Haiku",
            "Claude 3.5 Sonnet",
            "Claude 3.7 Sonnet",
            "Claude Sonnet 4",
            "Claude Opus 4",
            "Claude Sonnet 4.5",
            "Claude Haiku 4.5",
            "Claude Opus 4.5",
            "Nova Micro",
            "Nova Lite",
            "Nova Pro",
            "Titan Text G1 - Express",
            "Llama 3 8B Instruct",
            "Llama 3.1 70B Instruct",
            "Llama 3.3 70B Instruct",
            "Mistral Large (24.02)",
        ] {
            assert!(entries().iter().any(|e| e.name == name), "{name} missing");
        }
    }

    #[test]
    fn every_entry_is_well_formed() {
        let mut ids = std::collections::HashSet::new();
        for e in entries() {
            assert!(ids.insert(e.model_id), "duplicate {}", e.model_id);
            assert!(
                !e.prices.input.is_zero() && !e.prices.output.is_zero(),
                "{}",
                e.model_id
            );
            assert!(
                e.max_output_tokens > 0 && e.context_window > 0,
                "{}",
                e.model_id
            );
            assert!(
                jiff::civil::Date::strptime("%Y-%m-%d", e.since).is_ok(),
                "{}",
                e.model_id
            );
            // A cache read is always cheaper than an uncached input token, and a cache write
            // never cheaper: the catalog never prices cache tokens at 0 or at the input rate by accident.
            if let Some(read) = e.prices.cache_read {
                assert!(!read.is_zero() && read < e.prices.input, "{}", e.model_id);
                assert!(e.prices.cache_write_5m.is_some(), "{}", e.model_id);
            }
            if let Some(write) = e.prices.cache_write_5m {
                assert!(write >= e.prices.input, "{}", e.model_id);
            }
        }
    }

    #[test]
    fn claude_cache_prices_follow_the_published_multipliers() {
        // Anthropic on Bedrock: 5-minute writes 1.25x input, 1-hour writes 2x, reads 0.1x.
        for e in entries()
            .iter()
            .filter(|e| e.family == AnthropicClaude && e.prices.cache_write_1h.is_some())
        {
            let input = e.prices.input.as_decimal();
            assert_eq!(
                e.prices.cache_write_5m.unwrap().as_decimal(),
                input * Decimal::new(125, 2),
                "{}",
                e.model_id
            );
            assert_eq!(
                e.prices.cache_write_1h.unwrap().as_decimal(),
                input * Decimal::TWO,
                "{}",
                e.model_id
            );
            assert_eq!(
                e.prices.cache_read.unwrap().as_decimal(),
                input / Decimal::TEN,
                "{}",
                e.model_id
            );
        }
    }

    #[test]
    fn sonnet_4_and_4_5_have_long_context_rates_and_a_1m_window() {
        for name in ["Claude Sonnet 4", "Claude Sonnet 4.5"] {
            let e = entries().iter().find(|e| e.name == name).unwrap();
            let long = e.long_context.as_ref().expect(name);
            assert_eq!(long.above, 200_000, "{name}");
            assert_eq!(e.context_window, 1_000_000, "{name}");
            let p = &long.prices;
            assert_eq!(
                p.input.as_decimal(),
                e.prices.input.as_decimal() * Decimal::TWO
            );
            assert_eq!(
                p.output.as_decimal(),
                e.prices.output.as_decimal() * Decimal::new(15, 1)
            );
            assert_eq!(
                p.cache_read.unwrap().as_decimal(),
                p.input.as_decimal() / Decimal::TEN
            );
            assert_eq!(
                p.cache_write_5m.unwrap().as_decimal(),
                p.input.as_decimal() * Decimal::new(125, 2)
            );
            assert_eq!(
                p.cache_write_1h.unwrap().as_decimal(),
                p.input.as_decimal() * Decimal::TWO
            );
            assert!(!long.applies(200_000) && long.applies(200_001), "{name}");
        }
        // Past 300K tokens without long-context rates: only the models whose source prices
        // the whole window at one rate (Claude 5, Nova 2 Lite, Llama 4 as their sources give
        // them), or for which no long-context rate was found (Claude 4.6, UNVERIFIED).
        let mut flat: Vec<_> = entries()
            .iter()
            .filter(|e| e.long_context.is_none() && e.context_window > 300_000)
            .map(|e| e.name)
            .collect();
        flat.sort_unstable();
        assert_eq!(
            flat,
            [
                "Claude Opus 4.6",
                "Claude Opus 5",
                "Claude Sonnet 4.6",
                "Claude Sonnet 5",
                "Llama 4 Maverick 17B Instruct",
                "Llama 4 Scout 17B Instruct",
                "Nova 2 Lite",
            ]
        );
    }

    /// Asserts a catalog entry's rates, USD per 1M tokens: input, output, cache read, 5-minute
    /// and 1-hour cache writes.
    fn assert_rates(id: &str, [input, output]: [&str; 2], cache: [Option<&str>; 3]) {
        let e = lookup(id).unwrap_or_else(|| panic!("{id} missing"));
        let usd = |s: &str| Usd::parse(s).unwrap();
        let p = &e.prices;
        assert_eq!((p.input, p.output), (usd(input), usd(output)), "{id}");
        let got = [p.cache_read, p.cache_write_5m, p.cache_write_1h];
        assert_eq!(got, cache.map(|c| c.map(usd)), "{id}");
    }

    #[test]
    fn claude_4_6_matches_anthropics_model_pages_and_the_bedrock_model_card() {
        // platform.claude.com/docs/en/models/opus-4-6/overview and .../sonnet-4-6/overview;
        // AWS model card for Opus 4.6 (1M window, 128K output, launched 2026-02-05).
        let cache = |r, w5, w1| [Some(r), Some(w5), Some(w1)];
        assert_rates(
            "anthropic.claude-opus-4-6-v1",
            ["5", "25"],
            cache("0.50", "6.25", "10"),
        );
        assert_rates(
            "anthropic.claude-sonnet-4-6",
            ["3", "15"],
            cache("0.30", "3.75", "6"),
        );
        for (id, since) in [
            ("anthropic.claude-opus-4-6-v1", "2026-02-05"),
            ("anthropic.claude-sonnet-4-6", "2026-02-17"),
        ] {
            let e = lookup(id).unwrap();
            assert_eq!(
                (e.max_output_tokens, e.context_window),
                (128_000, 1_000_000)
            );
            assert_eq!((e.since, e.regional_premium_percent), (since, Some(10)));
            assert!(
                e.long_context.is_none(),
                "{id}: no long-context rate was sourced"
            );
        }
    }

    #[test]
    fn claude_5_matches_anthropics_model_pages() {
        // platform.claude.com/docs/en/models/sonnet-5/overview and .../opus-5/overview.
        let cache = |r, w5, w1| [Some(r), Some(w5), Some(w1)];
        assert_rates(
            "anthropic.claude-sonnet-5",
            ["2", "10"],
            cache("0.20", "2.50", "4"),
        );
        assert_rates(
            "anthropic.claude-opus-5",
            ["5", "25"],
            cache("0.50", "6.25", "10"),
        );
        assert_eq!(
            lookup("anthropic.claude-sonnet-5").unwrap().since,
            "2026-06-30"
        );
        assert_eq!(
            lookup("anthropic.claude-opus-5").unwrap().since,
            "2026-07-24"
        );
        assert_eq!(
            lookup("anthropic.claude-opus-5").unwrap().context_window,
            1_000_000
        );
    }

    #[test]
    fn nova_2_lite_takes_the_higher_published_pair_and_claims_no_cache_rate() {
        // pi-ai's Bedrock data and Vercel's AI Gateway page: $0.33 / $2.75 (LiteLLM: $0.30 /
        // $2.50); the model card: 1M window, launched 2025-12-02.
        assert_rates(
            "amazon.nova-2-lite-v1:0",
            ["0.33", "2.75"],
            [None, None, None],
        );
        let e = lookup("amazon.nova-2-lite-v1:0").unwrap();
        assert_eq!((e.context_window, e.max_output_tokens), (1_000_000, 65_536));
        assert_eq!(e.since, "2025-12-02");
    }

    #[test]
    fn llama_4_mistral_kimi_minimax_and_gemma_match_pi_ais_bedrock_data() {
        // @earendil-works/pi-ai 0.84.1 Bedrock provider data, mirrored 2026-08-20.
        for (id, pair) in [
            ("meta.llama4-maverick-17b-instruct-v1:0", ["0.24", "0.97"]),
            ("meta.llama4-scout-17b-instruct-v1:0", ["0.17", "0.66"]),
            ("mistral.mistral-large-3-675b-instruct", ["0.50", "1.50"]),
            ("mistral.pixtral-large-2502-v1:0", ["2", "6"]),
            ("moonshotai.kimi-k2.5", ["0.60", "3"]),
            ("moonshot.kimi-k2-thinking", ["0.60", "2.50"]),
            ("minimax.minimax-m2", ["0.30", "1.20"]),
            ("minimax.minimax-m2.5", ["0.30", "1.20"]),
            ("google.gemma-3-27b-it", ["0.12", "0.20"]),
            ("google.gemma-3-4b-it", ["0.04", "0.08"]),
        ] {
            assert_rates(id, pair, [None, None, None]);
        }
        assert_eq!(
            lookup("meta.llama4-maverick-17b-instruct-v1:0")
                .unwrap()
                .context_window,
            1_000_000
        );
    }

    #[test]
    fn deepseek_v3_2_and_flex_rates_match_the_aws_price_list_read_2026_10_03() {
        // us-east-1 Price List, read 2026-10-03: Standard $0.62 / $1.85, Flex $0.31 / $0.925;
        // gpt-oss-120b Flex $0.075 / $0.30; Qwen3 235B A22B 2507 Flex $0.11 / $0.44.
        assert_rates("deepseek.v3.2", ["0.62", "1.85"], [None, None, None]);
        assert_eq!(lookup("deepseek.v3.2").unwrap().context_window, 163_840);
        for (id, flex) in [
            ("deepseek.v3.2", ["0.31", "0.925"]),
            ("openai.gpt-oss-120b-1:0", ["0.075", "0.30"]),
            ("qwen.qwen3-235b-a22b-2507-v1:0", ["0.11", "0.44"]),
        ] {
            let e = lookup(id).unwrap();
            assert_eq!(e.service_tiers.flex_discount_percent, Some(50), "{id}");
            assert_eq!(e.service_tiers.priority_premium_percent, None, "{id}");
            let half = e.prices.scaled(Decimal::new(5, 1));
            let usd = |s: &str| Usd::parse(s).unwrap();
            assert_eq!([half.input, half.output], flex.map(usd), "{id}");
        }
        assert_eq!(
            lookup("amazon.nova-pro-v1:0").unwrap().service_tiers,
            TierRates::default(),
            "no Flex figure was read for Nova Pro"
        );
    }

    #[test]
    fn context_window_variants_resolve_to_their_base_model() {
        assert_eq!(
            lookup("anthropic.claude-3-haiku-20240307-v1:0:200k")
                .unwrap()
                .name,
            "Claude 3 Haiku"
        );
        assert_eq!(lookup("amazon.nova-pro-v1:0").unwrap().name, "Nova Pro");
        assert!(lookup("anthropic.claude-3-haiku-20240307-v1:0:oops").is_none());
        assert_eq!(
            lookup("anthropic.claude-3-haiku").unwrap().name,
            "Claude 3 Haiku",
            "a name without date and version, as bedrock-mantle writes it"
        );
        assert!(
            lookup("anthropic.claude-3-5-sonnet").is_none(),
            "two models answer to it"
        );
    }
}
