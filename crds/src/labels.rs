//! Label selectors as Kubernetes defines them: label keys (qualified names), label values
//! and `matchExpressions` operators. The CRD schema refuses a bad selector at `kubectl apply`
//! (regexes and CEL rules below); [`selector_problem`] makes the same judgement in Rust, so
//! the controller can say what is wrong with a selector that was stored before the schema
//! refused it, instead of letting it silently select nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters. The prefix's length (at most 253) is checked by a CEL rule beside it. Written
/// without backslashes so that it can sit inside a CEL string literal.
pub const LABEL_KEY_REGEX: &str = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$";
/// A label value: empty, or at most 63 characters beginning and ending with a letter or digit.
pub const LABEL_VALUE_REGEX: &str = "^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$";
/// The longest label key: a 253-character prefix, `/` and a 63-character name.
pub const MAX_LABEL_KEY_LEN: usize = 317;
/// The operators of a `matchExpressions` requirement.
pub const OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];
/// What a label key looks like, for messages.
pub const LABEL_KEY_RULES: &str = "a label key is an optional DNS subdomain prefix and '/' (at most 253 characters), then a name of at most 63 letters, digits, '-', '_' or '.' that begins and ends with a letter or digit, e.g. app or app.kubernetes.io/name";
/// What a label value looks like, for messages.
pub const LABEL_VALUE_RULES: &str = "a label value is empty or at most 63 letters, digits, '-', '_' or '.' that begins and ends with a letter or digit";

/// True for a valid label key.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && is_label_name(name)
}

/// True for a valid label value (empty is valid).
pub fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_label_name(value)
}

/// A name part: 1 to 63 of `[-A-Za-z0-9_.]`, alphanumeric at both ends.
fn is_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner_ok = |b: &u8| b.is_ascii_alphanumeric() || b"-_.".contains(b);
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(inner_ok)
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated lowercase labels.
fn is_dns_subdomain(text: &str) -> bool {
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    };
    !text.is_empty() && text.len() <= 253 && text.split('.').all(label_ok)
}

/// What is wrong with a pod selector, naming the field under `field` (e.g.
/// `spec.selector.podSelector`) and saying how to fix it; `None` when it is valid.
pub fn selector_problem(selector: &LabelSelector, field: &str) -> Option<String> {
    for (key, value) in selector.match_labels.iter().flatten() {
        if !is_label_key(key) {
            return Some(format!(
                "{field}.matchLabels key {key:?} is not a label key: {LABEL_KEY_RULES}"
            ));
        }
        if !is_label_value(value) {
            return Some(format!(
                "{field}.matchLabels.{key} value {value:?} is not a label value: {LABEL_VALUE_RULES}"
            ));
        }
    }
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{field}.matchExpressions[{i}]");
        let values = e.values.as_deref().unwrap_or_default();
        if !is_label_key(&e.key) {
            return Some(format!(
                "{at}.key {:?} is not a label key: {LABEL_KEY_RULES}",
                e.key
            ));
        }
        let problem = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => "needs at least one value in values",
            "Exists" | "DoesNotExist" if !values.is_empty() => "takes no values: remove values",
            op if !OPERATORS.contains(&op) => {
                return Some(format!(
                    "{at}.operator {op:?} is not a label selector operator: use In, NotIn, Exists or DoesNotExist"
                ));
            }
            _ => match values.iter().find(|v| !is_label_value(v)) {
                Some(v) => {
                    return Some(format!(
                        "{at}.values {v:?} is not a label value: {LABEL_VALUE_RULES}"
                    ));
                }
                None => continue,
            },
        };
        return Some(format!("{at}.operator {} {problem}", e.operator));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    const KEYS: &[(&str, bool)] = &[
        ("app", true),
        ("app.kubernetes.io/name", true),
        ("example.com/a_b-c.d", true),
        ("A9", true),
        ("x", true),
        ("bad key!", false),
        ("", false),
        ("/app", false),
        ("a/b/c", false),
        ("Example.com/app", false),
        ("-app", false),
        ("app-", false),
        ("example..com/app", false),
        ("example.com/", false),
    ];

    #[test]
    fn label_keys_follow_the_qualified_name_rules_and_agree_with_the_schema_regex() {
        let re = regex::Regex::new(LABEL_KEY_REGEX).unwrap();
        let long_name = "a".repeat(64);
        let long_prefix = format!("{}/app", "a".repeat(254));
        let max = format!("{}/{}", "a".repeat(253), "b".repeat(63));
        assert_eq!(max.len(), MAX_LABEL_KEY_LEN);
        let extra = [
            (long_name.as_str(), false),
            (max.as_str(), true),
            (long_prefix.as_str(), false),
        ];
        for (key, valid) in KEYS.iter().chain(extra.iter()) {
            assert_eq!(is_label_key(key), *valid, "{key:?}");
            // The regex leaves the prefix's length to a CEL rule.
            let prefix_fits = key.find('/').is_none_or(|i| i <= 253);
            assert_eq!(re.is_match(key) && prefix_fits, *valid, "regex on {key:?}");
        }
    }

    #[test]
    fn label_values_may_be_empty_and_agree_with_the_schema_regex() {
        let re = regex::Regex::new(LABEL_VALUE_REGEX).unwrap();
        let long = "v".repeat(64);
        for (value, valid) in [
            ("", true),
            ("chat", true),
            ("v1.2_x-y", true),
            ("bad value", false),
            ("-x", false),
            (long.as_str(), false),
        ] {
            assert_eq!(is_label_value(value), valid, "{value:?}");
            assert_eq!(re.is_match(value), valid, "regex on {value:?}");
        }
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: operator.into(),
                values: (!values.is_empty())
                    .then(|| values.iter().map(|v| v.to_string()).collect()),
            }]),
        }
    }

    #[test]
    fn a_bad_selector_is_named_with_its_field_and_the_fix() {
        let field = "spec.selector.podSelector";
        let said = |s: &LabelSelector| selector_problem(s, field).unwrap_or_default();
        assert!(said(&expression("app", "Maybe", &["x"])).contains(
            "spec.selector.podSelector.matchExpressions[0].operator \"Maybe\" is not a label selector operator: use In, NotIn, Exists or DoesNotExist"
        ));
        assert!(said(&expression("bad key!", "Exists", &[])).contains(
            "spec.selector.podSelector.matchExpressions[0].key \"bad key!\" is not a label key"
        ));
        assert!(said(&expression("app", "In", &[])).contains("In needs at least one value"));
        assert!(said(&expression("app", "Exists", &["x"])).contains("Exists takes no values"));
        let labels = LabelSelector {
            match_labels: Some([("bad key!".to_owned(), "x".to_owned())].into()),
            match_expressions: None,
        };
        assert!(said(&labels).contains("matchLabels key \"bad key!\" is not a label key"));
        for good in [
            expression("app.kubernetes.io/name", "In", &["chat"]),
            expression("tier", "NotIn", &["batch", ""]),
            expression("canary", "DoesNotExist", &[]),
            LabelSelector::default(),
        ] {
            assert_eq!(selector_problem(&good, field), None, "{good:?}");
        }
    }
}
