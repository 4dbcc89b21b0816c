//! Directives embedded in prompt text: `[sim:key=value]` or `[sim:flag]`.

/// What a request's directives ask of the simulator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// Report exactly this many output tokens (capped by the request's max tokens).
    pub output_tokens: Option<u64>,
    /// Report exactly this many input tokens.
    pub input_tokens: Option<u64>,
    /// Report this many cache-read tokens.
    pub cache_read: Option<u64>,
    /// Report this many cache-write tokens.
    pub cache_write: Option<u64>,
    /// Answer with this Bedrock error instead.
    pub error: Option<String>,
    /// Send this exception event in the middle of a stream.
    pub stream_error: Option<String>,
    /// Wait this long before answering.
    pub latency_ms: Option<u64>,
    /// Wait this long between stream events.
    pub chunk_delay_ms: Option<u64>,
    /// `[sim:word_bytes=N]`: each generated word padded to N bytes.
    pub word_bytes: Option<u64>,
    /// End the stream before its usage-bearing final event.
    pub truncate: bool,
}

/// Scans raw request text for directives; unknown keys are ignored.
pub fn parse(text: &str) -> Directives {
    let mut out = Directives::default();
    let mut rest = text;
    while let Some(start) = rest.find("[sim:") {
        let after = &rest[start + 5..];
        let Some(end) = after.find(']') else { break };
        let body = &after[..end];
        let (key, value) = body.split_once('=').unwrap_or((body, ""));
        let number = value.trim().parse::<u64>().ok();
        match key.trim() {
            "output_tokens" => out.output_tokens = number,
            "input_tokens" => out.input_tokens = number,
            "cache_read" => out.cache_read = number,
            "cache_write" => out.cache_write = number,
            "error" => out.error = Some(value.trim().to_owned()),
            "stream_error" => out.stream_error = Some(value.trim().to_owned()),
            "latency_ms" => out.latency_ms = number,
            "chunk_delay_ms" => out.chunk_delay_ms = number,
            "word_bytes" => out.word_bytes = number,
            "truncate" => out.truncate = true,
            _ => {}
        }
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_read_from_anywhere_in_the_text() {
        let d = parse(
            r#"{"text":"hello [sim:output_tokens=7] and [sim:error=ThrottlingException][sim:truncate]"}"#,
        );
        assert_eq!(d.output_tokens, Some(7));
        assert_eq!(d.error.as_deref(), Some("ThrottlingException"));
        assert!(d.truncate);
        assert_eq!(parse("no directives"), Directives::default());
        assert_eq!(parse("[sim:output_tokens=7"), Directives::default());
    }
}
