//! A wire-faithful Amazon Bedrock runtime simulator, for aigov's tests and demo.
//!
//! It serves the four runtime operations on their REST paths (`/model/{modelId}/converse`,
//! `converse-stream`, `invoke`, `invoke-with-response-stream`), with the model ID percent-decoded
//! from its path segment, usage where Bedrock puts it (Converse `usage`, the final stream
//! `metadata` event, the InvokeModel token-count headers, `amazon-bedrock-invocationMetrics` in
//! the last InvokeModelWithResponseStream chunk), AWS event-stream framing, and Bedrock's error
//! shapes. Real SDK clients work against it unchanged.
//!
//! InvokeModelWithBidirectionalStream (Nova Sonic speech sessions) is served over HTTP/2 with
//! prior knowledge, its chained event signatures checked ([`bidi`]).
//!
//! Behaviour is steered without touching clients: by `POST /_sim/config` (latency, default output
//! tokens, queued errors) or by directives in the prompt text, e.g. `[sim:output_tokens=50]`,
//! `[sim:error=ThrottlingException]`, `[sim:latency_ms=200]`, `[sim:truncate]`. Every request it
//! served is listed at `GET /_sim/requests`, so tests can check that each was charged once.
//!
//! With `--aws-endpoint` (moto), it also writes Bedrock's model invocation logs to CloudWatch
//! Logs as the account's logging configuration says ([`invocation_logs`]).
#![forbid(unsafe_code)]

pub mod bidi;
pub mod directives;
pub mod errors;
pub mod families;
pub mod invocation_logs;
pub mod mantle;
pub mod prompt;
pub mod runtime_ops;
pub mod server;
pub mod sigv4;
pub mod stream;

pub use server::{Config, Served, Simulator, serve};
