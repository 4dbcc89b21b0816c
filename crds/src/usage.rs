//! Reading token usage from everywhere Bedrock reports it, and the worst-case cost a request
//! must reserve before it is forwarded. Pure functions over bytes and header values; the
//! gateway feeds them what it relays.

use serde::Deserialize;

use crate::Error;
use crate::money::Usd;
use crate::pricing::{EffectivePrice, Usage};

/// Converse's `usage` object (also inside ConverseStream's final `metadata` event).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_write_input_tokens: u64,
}

impl From<ConverseUsage> for Usage {
    fn from(u: ConverseUsage) -> Usage {
        Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_input_tokens,
            cache_write_tokens: u.cache_write_input_tokens,
            cache_write_1h_tokens: 0,
        }
    }
}

#[derive(Deserialize)]
struct WithUsage {
    usage: ConverseUsage,
}

fn malformed(what: &str, error: impl std::fmt::Display) -> Error {
    Error::MalformedUsage(format!("{what}: {error}"))
}

/// Usage from a Converse response body.
pub fn from_converse_body(body: &[u8]) -> Result<Usage, Error> {
    serde_json::from_slice::<WithUsage>(body)
        .map(|w| w.usage.into())
        .map_err(|e| malformed("Converse body", e))
}

/// Usage from the payload of ConverseStream's `metadata` event (the only event that has it).
pub fn from_converse_stream_metadata(payload: &[u8]) -> Result<Usage, Error> {
    serde_json::from_slice::<WithUsage>(payload)
        .map(|w| w.usage.into())
        .map_err(|e| malformed("metadata event", e))
}

/// The InvokeModel token-count headers Bedrock sets on every model's response.
pub const INPUT_TOKENS_HEADER: &str = "x-amzn-bedrock-input-token-count";
/// Output tokens of an InvokeModel response.
pub const OUTPUT_TOKENS_HEADER: &str = "x-amzn-bedrock-output-token-count";
/// Cache-read tokens of an InvokeModel response (absent for models without caching).
pub const CACHE_READ_HEADER: &str = "x-amzn-bedrock-cache-read-input-token-count";
/// Cache-write tokens of an InvokeModel response (absent for models without caching).
pub const CACHE_WRITE_HEADER: &str = "x-amzn-bedrock-cache-write-input-token-count";

/// Usage from InvokeModel's response headers; `header` looks a header up by lower-case name.
/// The input and output counts are required, the cache counts default to zero.
pub fn from_invoke_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Result<Usage, Error> {
    let count = |name: &str, required: bool| match header(name) {
        Some(v) => v.trim().parse::<u64>().map_err(|e| malformed(name, e)),
        None if required => Err(malformed(name, "missing")),
        None => Ok(0),
    };
    Ok(Usage {
        input_tokens: count(INPUT_TOKENS_HEADER, true)?,
        output_tokens: count(OUTPUT_TOKENS_HEADER, true)?,
        cache_read_tokens: count(CACHE_READ_HEADER, false)?,
        cache_write_tokens: count(CACHE_WRITE_HEADER, false)?,
        cache_write_1h_tokens: 0,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationMetrics {
    input_token_count: u64,
    output_token_count: u64,
    #[serde(default)]
    cache_read_input_token_count: u64,
    #[serde(default)]
    cache_write_input_token_count: u64,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(rename = "amazon-bedrock-invocationMetrics")]
    metrics: Option<InvocationMetrics>,
}

/// Usage from one decoded InvokeModelWithResponseStream chunk: `Some` for the last chunk,
/// which carries `amazon-bedrock-invocationMetrics`, `None` for the others.
pub fn from_stream_chunk(chunk: &[u8]) -> Result<Option<Usage>, Error> {
    let chunk: Chunk = serde_json::from_slice(chunk).map_err(|e| malformed("stream chunk", e))?;
    Ok(chunk.metrics.map(|m| Usage {
        input_tokens: m.input_token_count,
        output_tokens: m.output_token_count,
        cache_read_tokens: m.cache_read_input_token_count,
        cache_write_tokens: m.cache_write_input_token_count,
        cache_write_1h_tokens: 0,
    }))
}

/// An upper bound on a request's input tokens: no tokenizer makes more tokens than the body
/// has bytes of text, and no model reads more than its context window.
pub fn input_token_bound(body_bytes: usize, context_window: u32) -> u64 {
    (body_bytes as u64).min(u64::from(context_window))
}

/// The most a request can cost: every input token at the dearest input rate (a cache write
/// costs more than plain input) and the whole output bound at the output rate, at the
/// long-context rates when the input bound is past their threshold (a request can only be
/// priced at them when its input is). Reserving this before forwarding is what keeps settled
/// spend from passing a limit.
pub fn worst_case_cost(price: &EffectivePrice, input_bound: u64, output_bound: u64) -> Usd {
    let p = price.rates_for(input_bound);
    let dearest_input = [Some(p.input), p.cache_write_5m, p.cache_write_1h]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(p.input);
    Usd::per_million_tokens(dearest_input, input_bound)
        + Usd::per_million_tokens(p.output, output_bound)
}

/// The output bound of a request: what it asked for, capped by the model's maximum; the
/// model's maximum when it did not ask.
pub fn output_token_bound(requested: Option<u64>, model_max: u32) -> u64 {
    requested.map_or(u64::from(model_max), |r| r.min(u64::from(model_max)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::resolve;
    use crate::pricing::PriceBook;

    #[test]
    fn converse_usage_includes_cache_tokens() {
        let body = br#"{"output":{},"stopReason":"end_turn","usage":{"inputTokens":12,"outputTokens":5,"totalTokens":37,"cacheReadInputTokens":20,"cacheWriteInputTokens":0}}"#;
        let usage = from_converse_body(body).unwrap();
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens
            ),
            (12, 5, 20)
        );
    }

    #[test]
    fn converse_usage_without_cache_fields_counts_them_as_zero() {
        let usage = from_converse_stream_metadata(br#"{"usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7},"metrics":{"latencyMs":9}}"#).unwrap();
        assert_eq!(
            usage,
            Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn a_body_without_usage_is_malformed_not_free() {
        assert!(matches!(
            from_converse_body(br#"{"output":{}}"#),
            Err(Error::MalformedUsage(_))
        ));
        assert!(from_converse_body(b"not json").is_err());
        assert!(
            from_converse_stream_metadata(br#"{"usage":{"inputTokens":-1,"outputTokens":1}}"#)
                .is_err()
        );
    }

    #[test]
    fn invoke_headers_give_usage_and_require_the_counts() {
        let headers = [
            (INPUT_TOKENS_HEADER, "100"),
            (OUTPUT_TOKENS_HEADER, "7"),
            (CACHE_READ_HEADER, "50"),
        ];
        let lookup = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let usage = from_invoke_headers(lookup).unwrap();
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens
            ),
            (100, 7, 50, 0)
        );
        assert!(from_invoke_headers(|name| (name == INPUT_TOKENS_HEADER).then_some("1")).is_err());
        assert!(from_invoke_headers(|_| Some("many")).is_err());
    }

    #[test]
    fn only_the_chunk_with_invocation_metrics_has_usage() {
        assert_eq!(
            from_stream_chunk(br#"{"type":"content_block_delta","delta":{"text":"hi"}}"#).unwrap(),
            None
        );
        let last = br#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":9,"outputTokenCount":2,"invocationLatency":5,"firstByteLatency":1,"cacheWriteInputTokenCount":4}}"#;
        assert_eq!(
            from_stream_chunk(last).unwrap(),
            Some(Usage {
                input_tokens: 9,
                output_tokens: 2,
                cache_write_tokens: 4,
                ..Usage::default()
            })
        );
        assert!(from_stream_chunk(b"{truncated").is_err());
    }

    #[test]
    fn the_worst_case_prices_input_at_the_cache_write_rate() {
        // Claude Sonnet 4: 1h cache write $6 is the dearest input rate; output $15.
        // 1,000 input at $6 = 0.006; 500 output at $15 = 0.0075.
        let price = PriceBook::default().price(
            &resolve("anthropic.claude-sonnet-4-20250514-v1:0"),
            "2026-11-24T00:00:00Z".parse().unwrap(),
        );
        assert_eq!(
            worst_case_cost(&price, 1_000, 500),
            Usd::parse("0.0135").unwrap()
        );
        // Llama has no cache rates: input at $0.72.
        let llama = PriceBook::default().price(
            &resolve("meta.llama3-3-70b-instruct-v1:0"),
            "2026-11-24T00:00:00Z".parse().unwrap(),
        );
        assert_eq!(
            worst_case_cost(&llama, 1_000_000, 0),
            Usd::parse("0.72").unwrap()
        );
    }

    #[test]
    fn the_worst_case_is_never_below_what_the_request_can_really_cost() {
        let book = PriceBook::default();
        let at = "2026-11-24T00:00:00Z".parse().unwrap();
        for entry in crate::catalog::entries() {
            let model = resolve(entry.model_id);
            let price = book.price(&model, at);
            // Any split of 1,000 input tokens across the kinds, and any output up to the bound.
            for (plain, read, write) in [(1000, 0, 0), (0, 1000, 0), (0, 0, 1000), (400, 300, 300)]
            {
                let usage = Usage {
                    input_tokens: plain,
                    cache_read_tokens: read,
                    cache_write_tokens: write,
                    output_tokens: 64,
                    cache_write_1h_tokens: 0,
                };
                let actual = book
                    .cost(&model, &usage, crate::pricing::InvocationMode::OnDemand, at)
                    .amount;
                assert!(
                    actual <= worst_case_cost(&price, 1000, 64),
                    "{}",
                    entry.model_id
                );
            }
        }
    }

    #[test]
    fn a_long_prompt_reserves_at_the_long_context_rates_up_to_a_1m_window() {
        let at = "2026-11-24T00:00:00Z".parse().unwrap();
        let model = resolve("global.anthropic.claude-sonnet-4-5-20250929-v1:0");
        let price = PriceBook::default().price(&model, at);
        let window = model.catalog.unwrap().context_window;
        assert_eq!(window, 1_000_000);
        // A 1 MB body: 1,000,000 input tokens at most, at the long-context 1h cache-write
        // rate ($12) = 12; 1,000 output at $22.50 = 0.0225.
        let bound = input_token_bound(1_000_000, window);
        assert_eq!(bound, 1_000_000, "not 200,000");
        assert_eq!(
            worst_case_cost(&price, bound, 1_000),
            Usd::parse("12.0225").unwrap()
        );
        // Up to the threshold, the base rates: 200,000 at $6 (1h write) + 1,000 at $15.
        assert_eq!(
            worst_case_cost(&price, 200_000, 1_000),
            Usd::parse("1.215").unwrap()
        );
        // Never below what the request can really cost, on either side of the threshold.
        let book = PriceBook::default();
        for (input, read) in [(199_000, 1_000), (150_000, 100_000), (250_000, 0)] {
            let usage = Usage {
                input_tokens: input,
                cache_read_tokens: read,
                output_tokens: 1_000,
                ..Usage::default()
            };
            let actual = book
                .cost(&model, &usage, crate::pricing::InvocationMode::OnDemand, at)
                .amount;
            assert!(
                actual <= worst_case_cost(&price, input + read, 1_000),
                "{input} {read}"
            );
        }
    }

    #[test]
    fn bounds_respect_the_model_and_the_request() {
        assert_eq!(input_token_bound(10_000, 8192), 8192);
        assert_eq!(input_token_bound(300, 200_000), 300);
        assert_eq!(output_token_bound(Some(100), 4096), 100);
        assert_eq!(output_token_bound(Some(100_000), 4096), 4096);
        assert_eq!(output_token_bound(None, 4096), 4096);
    }
}
