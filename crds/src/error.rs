//! The one error type of `aigov-api`.

use thiserror::Error;

/// Why a value handed to the API crate was refused. Each variant names the offending input
/// so that callers (the controller, the provider, the gateway) can surface it verbatim.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A money amount that is not a non-negative decimal string.
    #[error(
        "invalid USD amount {input:?}: {reason} (write a non-negative decimal such as \"250.00\")"
    )]
    InvalidAmount {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A time zone name that the IANA database does not know.
    #[error("unknown time zone {0:?} (use an IANA name such as \"UTC\" or \"Europe/Berlin\")")]
    UnknownTimeZone(String),
    /// A model pattern that cannot match a Bedrock model ID or ARN.
    #[error("invalid model pattern {input:?}: {reason}")]
    InvalidModelPattern {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Thresholds that are not strictly ascending percents in 1..=100.
    #[error("invalid thresholds {0:?}: use strictly ascending percents between 1 and 100")]
    InvalidThresholds(Vec<u32>),
    /// A Bedrock response whose usage could not be read; it is never counted as free.
    #[error("malformed usage in {0}")]
    MalformedUsage(String),
    /// Request metadata Bedrock would refuse; the message is the ValidationException Bedrock
    /// answers, naming the key (see [`crate::request_metadata`]).
    #[error("{0}")]
    InvalidRequestMetadata(String),
    /// A service tier Bedrock does not know, as sent in Converse's `serviceTier.type` or
    /// InvokeModel's `X-Amzn-Bedrock-Service-Tier` header; priced as nothing rather than guessed.
    #[error(
        "unknown service tier {0:?} in serviceTier.type / X-Amzn-Bedrock-Service-Tier (Bedrock accepts \"default\", \"priority\", \"flex\" or \"reserved\")"
    )]
    UnknownServiceTier(String),
    /// Date arithmetic left the range jiff supports (years -9999..=9999).
    #[error("time out of range: {0}")]
    TimeOutOfRange(String),
}
