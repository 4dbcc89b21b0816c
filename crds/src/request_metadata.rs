//! Bedrock's per-request metadata: the `requestMetadata` map of a Converse or ConverseStream
//! body and the `X-Amzn-Bedrock-Request-Metadata` header (a JSON object of strings) of
//! InvokeModel and InvokeModelWithResponseStream. Bedrock records it in its model invocation
//! logs; aigov reads it to subdivide a budget's spend by feature, user, tenant or job.
//!
//! The rules are Bedrock's service model: the Smithy shape
//! `com.amazonaws.bedrockruntime#RequestMetadata` (AWS API models, `bedrock-runtime-2023-09-30`)
//! and botocore's `bedrock-runtime/2023-09-30/service-2.json` (1.44: `RequestMetadata`,
//! `RequestMetadataKeyString`, `RequestMetadataValueString`, `RequestMetadataJson`): a map of
//! 1 to 16 entries ([`MAX_PAIRS`]); keys of 1 to 256 characters matching
//! `[a-zA-Z0-9\s:_@$#=/+,-.]{1,256}`; values of 0 to 256 characters matching
//! `[a-zA-Z0-9\s:_@$#=/+,-.]{0,256}` (`,-.` is a range: `,`, `-` and `.`; `\s` is Java's:
//! space, tab, newline, vertical tab, form feed, carriage return). The map is `sensitive`, so
//! Bedrock's own messages never quote it.
//!
//! The header is `RequestMetadataJson`: a sensitive string of at most 8,500 characters
//! ([`MAX_HEADER_CHARS`]). Bedrock's user guide ("Per-request metadata tagging") says only that
//! it is "a JSON object whose keys and values are strings you choose"; the limits of its pairs
//! are documented nowhere, so the map's rules apply to them here. An empty header (the shape's
//! minimum length is 0) carries no metadata.
//!
//! One reader for the gateway and the simulator ([`from_body`], [`from_header`]), so both
//! refuse the same calls with the same ValidationException message ([`crate::Error::InvalidRequestMetadata`]),
//! naming the key (cut to 64 characters, so a hostile key is not echoed whole).
//!
//! The gateway adds its own pairs under [`STAMP_PREFIX`] ([`stamp`]); a caller's pairs under
//! that prefix are not the caller's to set and are replaced.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::Error;

/// The most pairs Bedrock accepts in one request.
pub const MAX_PAIRS: usize = 16;
/// The longest key, in characters.
pub const MAX_KEY_CHARS: usize = 256;
/// The longest value, in characters.
pub const MAX_VALUE_CHARS: usize = 256;
/// The Converse and ConverseStream body field.
pub const BODY_FIELD: &str = "requestMetadata";
/// The InvokeModel and InvokeModelWithResponseStream header.
pub const HEADER: &str = "X-Amzn-Bedrock-Request-Metadata";
/// The longest header value, in characters (`RequestMetadataJson`'s `max`).
pub const MAX_HEADER_CHARS: usize = 8_500;
/// The prefix of the pairs the gateway adds; reserved for them.
pub const STAMP_PREFIX: &str = "aigov.";
/// How much of a key a refusal quotes.
const QUOTED_KEY_CHARS: usize = 64;

/// Validated request metadata, ordered by key.
pub type RequestMetadata = BTreeMap<String, String>;

/// Whether `c` is allowed in a key or value: `[a-zA-Z0-9\s:_@$#=/+,-.]`.
pub fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ' ' | '\t'
                | '\n'
                | '\u{b}'
                | '\u{c}'
                | '\r'
                | ':'
                | '_'
                | '@'
                | '$'
                | '#'
                | '='
                | '/'
                | '+'
                | ','
                | '-'
                | '.'
        )
}

/// The metadata of a Converse or ConverseStream body: None when the body has no
/// `requestMetadata`, an error when Bedrock would refuse it.
pub fn from_body(body: &Value) -> Result<Option<RequestMetadata>, Error> {
    match body.get(BODY_FIELD) {
        None => Ok(None),
        Some(value) => validate(value, BODY_FIELD).map(Some),
    }
}

/// The metadata of an InvokeModel header value: None when the header is absent, an error
/// when it is not a JSON object of strings within Bedrock's limits.
pub fn from_header(header: Option<&[u8]>) -> Result<Option<RequestMetadata>, Error> {
    let Some(bytes) = header.filter(|b| !b.trim_ascii().is_empty()) else {
        return Ok(None);
    };
    if bytes.len() > MAX_HEADER_CHARS
        && String::from_utf8_lossy(bytes).chars().count() > MAX_HEADER_CHARS
    {
        return Err(invalid(
            HEADER,
            format!("must have at most {MAX_HEADER_CHARS} characters"),
        ));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        invalid(
            HEADER,
            format!("must be a JSON object of string keys and string values ({e})"),
        )
    })?;
    validate(&value, HEADER).map(Some)
}

/// Checks a parsed metadata object against Bedrock's rules.
fn validate(value: &Value, location: &str) -> Result<RequestMetadata, Error> {
    let Some(map) = value.as_object() else {
        return Err(invalid(
            location,
            "must be a JSON object of string keys and string values".into(),
        ));
    };
    if map.is_empty() || map.len() > MAX_PAIRS {
        return Err(invalid(
            location,
            format!(
                "must have between 1 and {MAX_PAIRS} pairs, not {}",
                map.len()
            ),
        ));
    }
    let mut metadata = RequestMetadata::new();
    for (key, value) in map {
        let quoted = quote(key);
        let chars = key.chars().count();
        if chars == 0 || chars > MAX_KEY_CHARS {
            return Err(invalid(
                location,
                format!(
                    "key {quoted} must have between 1 and {MAX_KEY_CHARS} characters, not {chars}"
                ),
            ));
        }
        if !key.chars().all(allowed_char) {
            return Err(invalid(location, format!("key {quoted} {}", PATTERN_RULE)));
        }
        let Some(value) = value.as_str() else {
            return Err(invalid(
                location,
                format!("the value of key {quoted} must be a string"),
            ));
        };
        let chars = value.chars().count();
        if chars > MAX_VALUE_CHARS {
            return Err(invalid(
                location,
                format!(
                    "the value of key {quoted} must have at most {MAX_VALUE_CHARS} characters, not {chars}"
                ),
            ));
        }
        if !value.chars().all(allowed_char) {
            return Err(invalid(
                location,
                format!("the value of key {quoted} {}", PATTERN_RULE),
            ));
        }
        metadata.insert(key.clone(), value.to_owned());
    }
    Ok(metadata)
}

/// What a key or value may be made of, as a refusal says it.
const PATTERN_RULE: &str =
    "must match [a-zA-Z0-9\\s:_@$#=/+,-.]: letters, digits, whitespace and : _ @ $ # = / + , - .";

/// The ValidationException Bedrock's validation layer answers, in its wording
/// (`1 validation error detected: Value at '...' failed to satisfy constraint: ...`).
fn invalid(location: &str, constraint: String) -> Error {
    Error::InvalidRequestMetadata(format!(
        "1 validation error detected: Value at '{location}' failed to satisfy constraint: {constraint}"
    ))
}

/// A key as a refusal quotes it: at most [`QUOTED_KEY_CHARS`] characters, control characters
/// escaped.
fn quote(key: &str) -> String {
    let cut: String = key.chars().take(QUOTED_KEY_CHARS).collect();
    let more = if key.chars().count() > QUOTED_KEY_CHARS {
        "..."
    } else {
        ""
    };
    format!("{:?}{more}", cut)
}

/// The caller's own pairs: everything but what sits under [`STAMP_PREFIX`].
pub fn callers_pairs(metadata: &RequestMetadata) -> RequestMetadata {
    metadata
        .iter()
        .filter(|(k, _)| !k.starts_with(STAMP_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What the gateway forwards: the caller's pairs and its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamped {
    /// The metadata to send to Bedrock.
    pub metadata: RequestMetadata,
    /// False when the caller's pairs left no room for the gateway's (all of them or none):
    /// the caller's pairs are forwarded as they are.
    pub stamped: bool,
}

/// The caller's pairs (any under [`STAMP_PREFIX`] dropped: the prefix is the gateway's) with
/// `ours` added under the prefix, all or none of them, within [`MAX_PAIRS`]. Each of ours is
/// made to fit Bedrock's rules: disallowed characters become `_`, values are cut to
/// [`MAX_VALUE_CHARS`].
pub fn stamp(caller: &RequestMetadata, ours: &[(&str, String)]) -> Stamped {
    let mut metadata = callers_pairs(caller);
    if metadata.len() + ours.len() > MAX_PAIRS {
        return Stamped {
            metadata,
            stamped: false,
        };
    }
    for (name, value) in ours {
        let value: String = value
            .chars()
            .map(|c| if allowed_char(c) { c } else { '_' })
            .take(MAX_VALUE_CHARS)
            .collect();
        metadata.insert(format!("{STAMP_PREFIX}{name}"), value);
    }
    Stamped {
        metadata,
        stamped: true,
    }
}

/// Budget keys joined with `,` for the `aigov.budgets` pair, within [`MAX_VALUE_CHARS`]: the
/// keys that fit whole, then `,+N` for the `N` left out.
pub fn joined_within_limit(items: &[String]) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        let sep = if out.is_empty() { "" } else { "," };
        let rest = items.len() - i;
        let tail = if rest > 1 {
            format!(",+{}", rest - 1).len()
        } else {
            0
        };
        if out.len() + sep.len() + item.len() + tail > MAX_VALUE_CHARS {
            let more = format!("{sep}+{rest}");
            out.push_str(&more);
            return out;
        }
        out.push_str(sep);
        out.push_str(item);
    }
    out
}

/// Whether a metadata value can also be a CloudWatch metric dimension value, so that a usage
/// record may make its key a dimension and an alarm may watch it. Bedrock allows more than
/// CloudWatch does: an empty value, one of spaces only, and the whitespace control characters
/// (tab, newline, ...), none of which CloudWatch takes ("at least one non-whitespace
/// character", "ASCII control characters are not supported"; its own limit of 1,024
/// characters is above Bedrock's [`MAX_VALUE_CHARS`]).
pub fn is_dimension_value(value: &str) -> bool {
    value.chars().count() <= MAX_VALUE_CHARS
        && value
            .chars()
            .all(|c| allowed_char(c) && !c.is_ascii_control())
        && value.chars().any(|c| c != ' ')
}

/// At most [`MAX_PAIRS`] pairs (the first by key), keys and values cut to their limits: what
/// the controller keeps of a record's metadata, whatever a gateway sent, so no record or
/// status can grow past these bounds.
pub fn bounded(metadata: &RequestMetadata) -> RequestMetadata {
    metadata
        .iter()
        .filter(|(k, _)| !k.is_empty())
        .take(MAX_PAIRS)
        .map(|(k, v)| {
            (
                k.chars().take(MAX_KEY_CHARS).collect(),
                v.chars().take(MAX_VALUE_CHARS).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn message(e: Error) -> String {
        e.to_string()
    }

    #[test]
    fn a_dimension_value_is_a_bedrock_value_with_something_visible_and_no_control_character() {
        for ok in [
            "search",
            "a b",
            "u-1@example.com",
            "x/y:z=1",
            &"v".repeat(MAX_VALUE_CHARS),
        ] {
            assert!(is_dimension_value(ok), "{ok:?}");
        }
        for bad in [
            "",
            "   ",
            "a\tb",
            "line\n",
            "caf\u{e9}",
            "a;b",
            &"v".repeat(MAX_VALUE_CHARS + 1),
        ] {
            assert!(!is_dimension_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_body_without_request_metadata_has_none_and_a_valid_one_reads_in_key_order() {
        assert_eq!(from_body(&json!({"messages": []})).unwrap(), None);
        let m = from_body(
            &json!({"requestMetadata": {"user": "u-1", "feature": "search", "note": ""}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            [
                ("feature".to_owned(), "search".to_owned()),
                ("note".to_owned(), String::new()),
                ("user".to_owned(), "u-1".to_owned())
            ]
        );
    }

    #[test]
    fn seventeen_pairs_are_refused_and_sixteen_are_not() {
        let pairs = |n: usize| {
            let map: serde_json::Map<String, Value> =
                (0..n).map(|i| (format!("k{i}"), json!("v"))).collect();
            json!({ "requestMetadata": map })
        };
        assert_eq!(from_body(&pairs(16)).unwrap().unwrap().len(), 16);
        let e = message(from_body(&pairs(17)).unwrap_err());
        assert_eq!(
            e,
            "1 validation error detected: Value at 'requestMetadata' failed to satisfy constraint: must have between 1 and 16 pairs, not 17"
        );
        assert!(message(from_body(&pairs(0)).unwrap_err()).contains("not 0"));
    }

    #[test]
    fn a_key_or_value_too_long_or_off_pattern_is_refused_naming_the_key() {
        let long_key = "k".repeat(257);
        let e =
            message(from_body(&json!({"requestMetadata": {long_key.clone(): "v"}})).unwrap_err());
        assert!(
            e.contains("must have between 1 and 256 characters, not 257"),
            "{e}"
        );
        assert!(
            e.contains(&format!("{:?}...", "k".repeat(64))),
            "the key is quoted cut: {e}"
        );
        assert!(from_body(&json!({"requestMetadata": {"k".repeat(256): "v"}})).is_ok());
        let e = message(
            from_body(&json!({"requestMetadata": {"tenant": "x".repeat(257)}})).unwrap_err(),
        );
        assert!(
            e.contains("the value of key \"tenant\" must have at most 256"),
            "{e}"
        );
        let e = message(from_body(&json!({"requestMetadata": {"bad*key": "v"}})).unwrap_err());
        assert!(e.contains("key \"bad*key\" must match"), "{e}");
        let e = message(from_body(&json!({"requestMetadata": {"user": "naïve"}})).unwrap_err());
        assert!(e.contains("the value of key \"user\" must match"), "{e}");
        let e = message(from_body(&json!({"requestMetadata": {"user": 7}})).unwrap_err());
        assert!(
            e.contains("the value of key \"user\" must be a string"),
            "{e}"
        );
        let e = message(from_body(&json!({"requestMetadata": ["user"]})).unwrap_err());
        assert!(e.contains("must be a JSON object"), "{e}");
    }

    #[test]
    fn the_header_is_read_as_json_and_held_to_the_same_rules() {
        assert_eq!(from_header(None).unwrap(), None);
        let m = from_header(Some(br#"{"team": "search", "job": "nightly-1"}"#))
            .unwrap()
            .unwrap();
        assert_eq!(m["job"], "nightly-1");
        let e = message(from_header(Some(b"{not json")).unwrap_err());
        assert!(
            e.starts_with("1 validation error detected: Value at 'X-Amzn-Bedrock-Request-Metadata' failed to satisfy constraint: must be a JSON object"),
            "{e}"
        );
        let e = message(from_header(Some(br#"{"n": 1}"#)).unwrap_err());
        assert!(e.contains("the value of key \"n\" must be a string"), "{e}");
        let e = message(from_header(Some(br#""text""#)).unwrap_err());
        assert!(e.contains("must be a JSON object"), "{e}");
        assert_eq!(
            from_header(Some(b"")).unwrap(),
            None,
            "an empty header carries nothing"
        );
        let long = format!(r#"{{"k": "{}"}}"#, " ".repeat(MAX_HEADER_CHARS));
        let e = message(from_header(Some(long.as_bytes())).unwrap_err());
        assert!(e.contains("at most 8500 characters"), "{e}");
    }

    #[test]
    fn stamping_keeps_the_callers_pairs_replaces_theirs_under_the_prefix_and_fits_all_or_none() {
        let caller: RequestMetadata = [("feature", "search"), ("aigov.namespace", "forged")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let ours = [
            ("namespace", "team".to_owned()),
            ("budgets", "team/a b".to_owned()),
        ];
        let s = stamp(&caller, &ours);
        assert!(s.stamped);
        assert_eq!(s.metadata["feature"], "search");
        assert_eq!(s.metadata["aigov.namespace"], "team");
        assert_eq!(s.metadata["aigov.budgets"], "team/a b");
        let full: RequestMetadata = (0..15).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let s = stamp(&full, &ours);
        assert!(!s.stamped);
        assert_eq!(s.metadata, full, "the caller's pairs go as they are");
        let odd = stamp(&RequestMetadata::new(), &[("workload", "a(b)".to_owned())]);
        assert_eq!(odd.metadata["aigov.workload"], "a_b_");
    }

    #[test]
    fn the_budgets_pair_lists_what_fits_and_counts_the_rest() {
        let few = ["team/a".to_owned(), "team/b".to_owned()];
        assert_eq!(joined_within_limit(&few), "team/a,team/b");
        let many: Vec<String> = (0..40)
            .map(|i| format!("namespace/budget-{i:03}"))
            .collect();
        let joined = joined_within_limit(&many);
        assert!(joined.chars().count() <= MAX_VALUE_CHARS, "{joined}");
        let (listed, rest) = joined.rsplit_once(",+").unwrap();
        assert_eq!(
            listed.split(',').count() + rest.parse::<usize>().unwrap(),
            40
        );
    }

    fn allowed() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-zA-Z0-9 :_@$#=/+,.-]{1,300}").unwrap()
    }

    proptest! {
        #[test]
        fn validation_accepts_exactly_what_the_rules_allow(
            pairs in proptest::collection::btree_map(allowed(), allowed(), 1..20),
        ) {
            let body = json!({ "requestMetadata": pairs });
            let within = pairs.len() <= MAX_PAIRS
                && pairs.iter().all(|(k, v)| k.len() <= MAX_KEY_CHARS && v.len() <= MAX_VALUE_CHARS);
            let read = from_body(&body);
            prop_assert_eq!(read.is_ok(), within);
            if let Ok(Some(m)) = read {
                prop_assert_eq!(&m, &pairs);
                prop_assert_eq!(bounded(&m), m);
            }
        }

        #[test]
        fn what_is_bounded_always_passes_validation_when_its_characters_do(
            pairs in proptest::collection::btree_map(allowed(), allowed(), 1..40),
        ) {
            let kept = bounded(&pairs);
            prop_assert!(kept.len() <= MAX_PAIRS);
            let body = json!({ "requestMetadata": kept });
            prop_assert!(from_body(&body).is_ok());
        }

        #[test]
        fn a_stamped_map_is_always_one_bedrock_accepts(
            pairs in proptest::collection::btree_map(allowed(), allowed(), 1..17),
            workload in ".{0,300}",
        ) {
            let caller = bounded(&pairs);
            let s = stamp(&caller, &[("namespace", "team".into()), ("workload", workload)]);
            let body = json!({ "requestMetadata": s.metadata });
            prop_assert!(from_body(&body).is_ok());
            prop_assert_eq!(s.stamped, callers_pairs(&caller).len() + 2 <= MAX_PAIRS);
        }
    }
}
