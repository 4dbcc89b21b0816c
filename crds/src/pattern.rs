//! Model patterns: a Bedrock model ID, profile ID or ARN in which `*` matches any run of
//! characters. Used by `AIBudget.spec.models`, downgrade maps and `AIModelPrice.spec.model`.

use std::fmt;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// The characters a model pattern may contain; the CRD schema carries the same rule.
pub const PATTERN_REGEX: &str = r"^[A-Za-z0-9._:/*-]+$";
/// The longest pattern accepted (an ARN is well under this).
pub const MAX_PATTERN_LEN: usize = 256;

/// A validated model pattern.
#[derive(Clone)]
pub struct ModelPattern {
    text: String,
    matcher: GlobMatcher,
}

impl ModelPattern {
    /// Validates and compiles a pattern.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidModelPattern {
            input: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        if text.len() > MAX_PATTERN_LEN {
            return Err(invalid("it is longer than 256 characters"));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/*-".contains(&b))
        {
            return Err(invalid(
                "only letters, digits and . _ : / - and the wildcard * are allowed",
            ));
        }
        if text.contains("**") {
            return Err(invalid("use a single * as the wildcard"));
        }
        if !text.bytes().any(|b| b.is_ascii_alphanumeric()) && text != "*" {
            return Err(invalid("it names no model"));
        }
        let glob = GlobBuilder::new(text)
            .literal_separator(false)
            .build()
            .map_err(|_| invalid("it is not a valid pattern"))?;
        Ok(ModelPattern {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// True when the pattern matches the model reference.
    pub fn matches(&self, model: &str) -> bool {
        self.matcher.is_match(model)
    }

    /// True when the pattern matches the model as requested or its foundation model, so
    /// `*claude-3-5-sonnet*` covers `us.` profiles and ARNs alike.
    pub fn matches_model(&self, model: &crate::model::ResolvedModel) -> bool {
        self.matches(&model.requested)
            || model.model_id.as_deref().is_some_and(|id| self.matches(id))
    }

    /// True when the pattern has a `*`.
    pub fn has_wildcard(&self) -> bool {
        self.text.contains('*')
    }

    /// How many non-wildcard characters it has: more means more specific.
    pub fn literal_len(&self) -> usize {
        self.text.chars().filter(|c| *c != '*').count()
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for ModelPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for ModelPattern {}

impl fmt::Debug for ModelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ModelPattern").field(&self.text).finish()
    }
}

impl Serialize for ModelPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ModelPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ModelPattern::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_across_dots_colons_and_slashes() {
        let p = ModelPattern::parse("*anthropic.claude-3-*").unwrap();
        assert!(p.matches("anthropic.claude-3-haiku-20240307-v1:0"));
        assert!(p.matches("us.anthropic.claude-3-5-haiku-20241022-v1:0"));
        assert!(p.matches(
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-opus-20240229-v1:0"
        ));
        assert!(!p.matches("anthropic.claude-sonnet-4-20250514-v1:0"));
        assert!(ModelPattern::parse("*").unwrap().matches("anything.at-all"));
    }

    #[test]
    fn an_exact_pattern_matches_only_itself() {
        let p = ModelPattern::parse("amazon.nova-pro-v1:0").unwrap();
        assert!(p.matches("amazon.nova-pro-v1:0"));
        assert!(!p.matches("us.amazon.nova-pro-v1:0"));
        assert!(!p.has_wildcard());
        assert_eq!(p.literal_len(), 20);
    }

    #[test]
    fn malformed_patterns_are_refused_with_the_reason() {
        for (text, reason) in [
            ("", "it is empty"),
            (
                "claude 3",
                "only letters, digits and . _ : / - and the wildcard * are allowed",
            ),
            (
                "claude?",
                "only letters, digits and . _ : / - and the wildcard * are allowed",
            ),
            (
                "[abc]",
                "only letters, digits and . _ : / - and the wildcard * are allowed",
            ),
            ("anthropic.**", "use a single * as the wildcard"),
            ("*.*", "it names no model"),
        ] {
            assert_eq!(
                ModelPattern::parse(text).unwrap_err(),
                Error::InvalidModelPattern {
                    input: text.into(),
                    reason
                },
                "{text:?}"
            );
        }
        assert!(ModelPattern::parse(&"a".repeat(257)).is_err());
    }

    #[test]
    fn the_schema_regex_agrees_with_the_parser() {
        let re = regex::Regex::new(PATTERN_REGEX).unwrap();
        for text in [
            "anthropic.claude-*",
            "arn:aws:bedrock:us-east-1::foundation-model/x",
            "a b",
            "x?",
            "",
        ] {
            assert_eq!(
                re.is_match(text),
                ModelPattern::parse(text).is_ok() || text.contains("**"),
                "{text:?}"
            );
        }
    }
}
