//! Model-native InvokeModel bodies: what each family requires of a request, and how it shapes
//! its response and its stream chunks.

use aigov_api::catalog::ModelFamily;
use serde_json::{Value, json};

/// The usage and text one invocation reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-read tokens.
    pub cache_read: u64,
    /// Cache-write tokens.
    pub cache_write: u64,
    /// Simulated latency, reported in metrics.
    pub latency_ms: u64,
    /// `stop` reason: `end_turn`, or `max_tokens` when the bound cut the answer.
    pub hit_max_tokens: bool,
    /// Each word padded to this many bytes (`[sim:word_bytes=N]`; 0: as short as it is), for a
    /// stream larger than any socket buffers it passes through.
    pub word_bytes: u64,
}

impl Outcome {
    /// The generated words; one word is one output token.
    pub fn words(&self) -> Vec<String> {
        let width = usize::try_from(self.word_bytes)
            .unwrap_or(0)
            .saturating_sub(1);
        (0..self.output_tokens)
            .map(|i| format!("{:x<width$} ", format!("w{i}")))
            .collect()
    }

    fn text(&self) -> String {
        self.words().concat()
    }

    fn metrics(&self) -> Value {
        json!({
            "inputTokenCount": self.input_tokens,
            "outputTokenCount": self.output_tokens,
            "invocationLatency": self.latency_ms,
            "firstByteLatency": self.latency_ms / 2,
            "cacheReadInputTokenCount": self.cache_read,
            "cacheWriteInputTokenCount": self.cache_write,
        })
    }
}

/// Checks what Bedrock checks of a family's body; the error is a ValidationException message.
pub fn validate(family: ModelFamily, body: &Value) -> Result<(), String> {
    let need = |pointer: &str, ok: fn(&Value) -> bool, what: &str| match body.pointer(pointer) {
        Some(v) if ok(v) => Ok(()),
        _ => Err(format!(
            "Malformed input request: {what}, please reformat your input and try again."
        )),
    };
    match family {
        ModelFamily::AnthropicClaude => {
            need("/anthropic_version", Value::is_string, "#: required key [anthropic_version] not found")?;
            need("/max_tokens", Value::is_u64, "#: required key [max_tokens] not found")?;
            need("/messages", Value::is_array, "#: required key [messages] not found")
        }
        ModelFamily::AmazonNova => need("/messages", Value::is_array, "#: required key [messages] not found"),
        ModelFamily::AmazonTitanText => need("/inputText", Value::is_string, "#: required key [inputText] not found"),
        ModelFamily::MetaLlama => need("/prompt", Value::is_string, "#: required key [prompt] not found"),
        ModelFamily::OpenAiChat => need("/messages", Value::is_array, "#: required key [messages] not found"),
        ModelFamily::Mistral => match (body.get("prompt"), body.get("messages")) {
            (Some(Value::String(_)), _) | (_, Some(Value::Array(_))) => Ok(()),
            _ => Err("Malformed input request: #: required key [prompt] not found, please reformat your input and try again.".into()),
        },
    }
}

/// The InvokeModel response body.
pub fn response(family: ModelFamily, model_id: &str, request_id: &str, o: &Outcome) -> Value {
    let stop = if o.hit_max_tokens {
        "max_tokens"
    } else {
        "end_turn"
    };
    match family {
        ModelFamily::AnthropicClaude => json!({
            "id": format!("msg_bdrk_{request_id}"), "type": "message", "role": "assistant", "model": model_id,
            "content": [{"type": "text", "text": o.text()}], "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": o.input_tokens, "output_tokens": o.output_tokens,
                      "cache_creation_input_tokens": o.cache_write, "cache_read_input_tokens": o.cache_read}
        }),
        ModelFamily::AmazonNova => json!({
            "output": {"message": {"role": "assistant", "content": [{"text": o.text()}]}},
            "stopReason": stop,
            "usage": {"inputTokens": o.input_tokens, "outputTokens": o.output_tokens,
                      "totalTokens": o.input_tokens + o.output_tokens + o.cache_read + o.cache_write,
                      "cacheReadInputTokenCount": o.cache_read, "cacheWriteInputTokenCount": o.cache_write}
        }),
        ModelFamily::AmazonTitanText => json!({
            "inputTextTokenCount": o.input_tokens,
            "results": [{"tokenCount": o.output_tokens, "outputText": o.text(),
                         "completionReason": if o.hit_max_tokens { "LENGTH" } else { "FINISH" }}]
        }),
        ModelFamily::MetaLlama => json!({
            "generation": o.text(), "prompt_token_count": o.input_tokens,
            "generation_token_count": o.output_tokens, "stop_reason": if o.hit_max_tokens { "length" } else { "stop" }
        }),
        ModelFamily::OpenAiChat => json!({
            "id": format!("chatcmpl-{request_id}"), "object": "chat.completion", "model": model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": o.text()},
                         "finish_reason": if o.hit_max_tokens { "length" } else { "stop" }}],
            "usage": {"prompt_tokens": o.input_tokens, "completion_tokens": o.output_tokens,
                      "total_tokens": o.input_tokens + o.output_tokens}
        }),
        ModelFamily::Mistral => json!({
            "outputs": [{"text": o.text(), "stop_reason": if o.hit_max_tokens { "length" } else { "stop" }}]
        }),
    }
}

/// The model-native chunks of InvokeModelWithResponseStream; the last one carries
/// `amazon-bedrock-invocationMetrics`, as Bedrock's does.
pub fn chunks(family: ModelFamily, model_id: &str, request_id: &str, o: &Outcome) -> Vec<Value> {
    let words = o.words();
    let mut chunks: Vec<Value> = match family {
        ModelFamily::AnthropicClaude => {
            let mut c = vec![
                json!({"type": "message_start", "message": {"id": format!("msg_bdrk_{request_id}"), "type": "message",
                    "role": "assistant", "model": model_id, "content": [], "stop_reason": null,
                    "usage": {"input_tokens": o.input_tokens, "output_tokens": 1,
                              "cache_creation_input_tokens": o.cache_write, "cache_read_input_tokens": o.cache_read}}}),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ];
            c.extend(words.iter().map(|w| json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})));
            c.push(json!({"type": "content_block_stop", "index": 0}));
            c.push(json!({"type": "message_delta", "delta": {"stop_reason": if o.hit_max_tokens { "max_tokens" } else { "end_turn" }, "stop_sequence": null},
                "usage": {"output_tokens": o.output_tokens}}));
            c.push(json!({"type": "message_stop"}));
            c
        }
        ModelFamily::AmazonNova => {
            let mut c = vec![json!({"messageStart": {"role": "assistant"}})];
            c.extend(words.iter().map(
                |w| json!({"contentBlockDelta": {"delta": {"text": w}, "contentBlockIndex": 0}}),
            ));
            c.push(json!({"contentBlockStop": {"contentBlockIndex": 0}}));
            c.push(json!({"messageStop": {"stopReason": if o.hit_max_tokens { "max_tokens" } else { "end_turn" }}}));
            c.push(json!({"metadata": {"usage": {"inputTokens": o.input_tokens, "outputTokens": o.output_tokens,
                "cacheReadInputTokenCount": o.cache_read, "cacheWriteInputTokenCount": o.cache_write}}}));
            c
        }
        ModelFamily::AmazonTitanText => {
            let mut c: Vec<Value> = words.iter().enumerate().map(|(i, w)| json!({"outputText": w, "index": 0,
                "totalOutputTextTokenCount": i + 1, "completionReason": null, "inputTextTokenCount": o.input_tokens})).collect();
            c.push(json!({"outputText": "", "index": 0, "totalOutputTextTokenCount": o.output_tokens,
                "completionReason": if o.hit_max_tokens { "LENGTH" } else { "FINISH" }, "inputTextTokenCount": o.input_tokens}));
            c
        }
        ModelFamily::MetaLlama => {
            let mut c: Vec<Value> = words.iter().enumerate().map(|(i, w)| json!({"generation": w,
                "prompt_token_count": if i == 0 { Some(o.input_tokens) } else { None }, "generation_token_count": i + 1, "stop_reason": null})).collect();
            c.push(json!({"generation": "", "prompt_token_count": null, "generation_token_count": o.output_tokens,
                "stop_reason": if o.hit_max_tokens { "length" } else { "stop" }}));
            c
        }
        ModelFamily::OpenAiChat => {
            let mut c: Vec<Value> = words
                .iter()
                .map(|w| json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": w}}]}))
                .collect();
            c.push(
                json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {},
                "finish_reason": if o.hit_max_tokens { "length" } else { "stop" }}]}),
            );
            c
        }
        ModelFamily::Mistral => {
            let mut c: Vec<Value> = words
                .iter()
                .map(|w| json!({"outputs": [{"text": w, "stop_reason": null}]}))
                .collect();
            c.push(json!({"outputs": [{"text": "", "stop_reason": if o.hit_max_tokens { "length" } else { "stop" }}]}));
            c
        }
    };
    if let Some(Value::Object(last)) = chunks.last_mut() {
        last.insert("amazon-bedrock-invocationMetrics".into(), o.metrics());
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Outcome {
        Outcome {
            input_tokens: 12,
            output_tokens: 3,
            cache_read: 4,
            cache_write: 5,
            latency_ms: 10,
            hit_max_tokens: false,
            word_bytes: 0,
        }
    }

    #[test]
    fn only_the_last_chunk_carries_invocation_metrics_for_every_family() {
        for family in [
            ModelFamily::AnthropicClaude,
            ModelFamily::AmazonNova,
            ModelFamily::AmazonTitanText,
            ModelFamily::MetaLlama,
            ModelFamily::Mistral,
        ] {
            let chunks = chunks(family, "m", "r", &outcome());
            let with_metrics: Vec<_> = chunks
                .iter()
                .filter(|c| c.get("amazon-bedrock-invocationMetrics").is_some())
                .collect();
            assert_eq!(with_metrics.len(), 1, "{family:?}");
            let last = chunks.last().unwrap()["amazon-bedrock-invocationMetrics"].clone();
            assert_eq!(last["inputTokenCount"], 12, "{family:?}");
            assert_eq!(last["outputTokenCount"], 3, "{family:?}");
            assert_eq!(last["cacheReadInputTokenCount"], 4, "{family:?}");
        }
    }

    #[test]
    fn aigov_reads_the_same_usage_from_every_family_s_last_chunk() {
        for family in [
            ModelFamily::AnthropicClaude,
            ModelFamily::AmazonNova,
            ModelFamily::AmazonTitanText,
            ModelFamily::MetaLlama,
            ModelFamily::Mistral,
        ] {
            let chunks = chunks(family, "m", "r", &outcome());
            let usages: Vec<_> = chunks
                .iter()
                .map(|c| aigov_api::usage::from_stream_chunk(c.to_string().as_bytes()).unwrap())
                .collect();
            assert!(
                usages[..usages.len() - 1].iter().all(Option::is_none),
                "{family:?}"
            );
            let last = usages.last().unwrap().unwrap();
            assert_eq!(
                (
                    last.input_tokens,
                    last.output_tokens,
                    last.cache_read_tokens,
                    last.cache_write_tokens
                ),
                (12, 3, 4, 5),
                "{family:?}"
            );
        }
    }

    #[test]
    fn words_are_padded_to_the_bytes_asked_for() {
        let o = Outcome {
            output_tokens: 3,
            word_bytes: 8,
            ..outcome()
        };
        assert_eq!(o.words(), ["w0xxxxx ", "w1xxxxx ", "w2xxxxx "]);
        assert_eq!(outcome().words()[0], "w0 ");
    }

    #[test]
    fn anthropic_bodies_need_version_max_tokens_and_messages() {
        assert!(
            validate(
                ModelFamily::AnthropicClaude,
                &json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": []})
            )
            .is_ok()
        );
        let err = validate(ModelFamily::AnthropicClaude, &json!({"messages": []})).unwrap_err();
        assert!(err.contains("anthropic_version"), "{err}");
        assert!(validate(ModelFamily::MetaLlama, &json!({"prompt": 3})).is_err());
    }
}
