//! Reading a request body for what the simulator reports: how much prompt text there is,
//! which prefix a cache point marks, and the output bound the caller set.

use aigov_api::catalog::ModelFamily;
use serde_json::Value;

/// What matters about a request body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptShape {
    /// Characters of prompt text in the body.
    pub text_chars: usize,
    /// The prompt text up to the last cache point (`cachePoint` or `cache_control`), if any.
    pub cached_prefix: Option<String>,
    /// `maxTokens` (Converse) or the family's own output bound (InvokeModel), if set.
    pub max_tokens: Option<u64>,
}

/// Roughly four characters a token, at least one token for a non-empty prompt.
pub fn tokens_for_chars(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// Analyses a Converse body (`family: None`) or an InvokeModel body of `family`.
pub fn analyze(body: &Value, family: Option<ModelFamily>) -> PromptShape {
    let mut text = String::new();
    let mut prefix_end = None;
    // Bedrock assembles a prompt as tools, then system, then messages; cache prefixes follow
    // that order, whatever order the keys have in the JSON.
    for key in PROMPT_ORDER {
        if let Some(part) = body.get(key) {
            walk(part, Some(key), &mut text, &mut prefix_end);
        }
    }
    if let Value::Object(map) = body {
        for (key, part) in map
            .iter()
            .filter(|(k, _)| !PROMPT_ORDER.contains(&k.as_str()))
        {
            walk(part, Some(key), &mut text, &mut prefix_end);
        }
    }
    let max_tokens = match family {
        None => body.pointer("/inferenceConfig/maxTokens"),
        Some(ModelFamily::AnthropicClaude | ModelFamily::Mistral) => body.get("max_tokens"),
        Some(ModelFamily::AmazonNova) => body
            .pointer("/inferenceConfig/max_new_tokens")
            .or_else(|| body.pointer("/inferenceConfig/maxTokens")),
        Some(ModelFamily::AmazonTitanText) => body.pointer("/textGenerationConfig/maxTokenCount"),
        Some(ModelFamily::MetaLlama) => body.get("max_gen_len"),
        Some(ModelFamily::OpenAiChat) => body
            .get("max_completion_tokens")
            .or_else(|| body.get("max_tokens")),
    }
    .and_then(Value::as_u64);
    PromptShape {
        text_chars: text.chars().count(),
        cached_prefix: prefix_end.map(|end: usize| text[..end].to_owned()),
        max_tokens,
    }
}

const PROMPT_ORDER: [&str; 4] = ["toolConfig", "tools", "system", "messages"];

const TEXT_KEYS: &[&str] = &[
    "text",
    "prompt",
    "inputText",
    "content",
    "system",
    "input",
    "instructions",
];

fn walk(value: &Value, key: Option<&str>, text: &mut String, prefix_end: &mut Option<usize>) {
    match value {
        Value::String(s) if key.is_some_and(|k| TEXT_KEYS.contains(&k)) => text.push_str(s),
        Value::Array(items) => items.iter().for_each(|v| walk(v, key, text, prefix_end)),
        Value::Object(map) => {
            for (k, v) in map {
                if k == "cachePoint" {
                    *prefix_end = Some(text.len());
                } else {
                    walk(v, Some(k), text, prefix_end);
                }
            }
            // Anthropic marks the block that ends the cached prefix, after its text.
            if map.contains_key("cache_control") {
                *prefix_end = Some(text.len());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converse_text_and_cache_point_are_found() {
        let body = json!({
            "system": [{"text": "You are terse."}, {"cachePoint": {"type": "default"}}],
            "messages": [{"role": "user", "content": [{"text": "Hi there"}]}],
            "inferenceConfig": {"maxTokens": 64}
        });
        let shape = analyze(&body, None);
        assert_eq!(shape.text_chars, 14 + 8);
        assert_eq!(shape.cached_prefix.as_deref(), Some("You are terse."));
        assert_eq!(shape.max_tokens, Some(64));
    }

    #[test]
    fn anthropic_cache_control_ends_the_prefix_after_its_block() {
        let body = json!({
            "anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
            "system": [{"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "question"}]
        });
        let shape = analyze(&body, Some(ModelFamily::AnthropicClaude));
        assert_eq!(shape.cached_prefix.as_deref(), Some("long context"));
        assert_eq!(shape.text_chars, 20);
        assert_eq!(shape.max_tokens, Some(10));
    }

    #[test]
    fn token_estimate_rounds_up() {
        assert_eq!(tokens_for_chars(0), 0);
        assert_eq!(tokens_for_chars(1), 1);
        assert_eq!(tokens_for_chars(8), 2);
        assert_eq!(tokens_for_chars(9), 3);
    }
}
