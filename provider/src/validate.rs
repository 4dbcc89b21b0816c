//! Plan-time validation shared by the resources: each check skips unknown values (known only after
//! apply) and reports on the exact attribute path with the fix in the message.

use std::sync::LazyLock;

use regex::Regex;
use rust_decimal::Decimal;

use crate::diag::{Diagnostics, Path};
use crate::value::Value;

static SNS_TOPIC_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^arn:aws(-[a-z]+)*:sns:[a-z]{2}(-[a-z]+)+-\d:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$",
    )
    .expect("valid regex")
});
static SQS_QUEUE_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws(-[a-z]+)*:sqs:[a-z]{2}(-[a-z]+)+-\d:\d{12}:[A-Za-z0-9_-]{1,80}(\.fifo)?$")
        .expect("valid regex")
});
static LAMBDA_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws(-[a-z]+)*:lambda:[a-z]{2}(-[a-z]+)+-\d:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]+)?$")
        .expect("valid regex")
});
static KMS_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(arn:aws(-[a-z]+)*:kms:[a-z]{2}(-[a-z]+)+-\d:\d{12}:(key|alias)/[A-Za-z0-9/_-]+|alias/[A-Za-z0-9/_-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
        .expect("valid regex")
});
static IAM_ROLE_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws(-[a-z]+)*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
        .expect("valid regex")
});
// S3's rules for general purpose buckets: 3 to 63 lower-case letters, digits, dots and hyphens,
// starting and ending with a letter or digit.
static S3_BUCKET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$").expect("valid regex"));
/// A Kubernetes object name (a DNS subdomain).
pub static KUBE_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .expect("valid regex")
});
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[^@\s]+@[^@\s]+\.[^@\s]+$").expect("valid regex"));

/// The kinds of identifiers a string attribute may have to be.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// An SNS topic ARN.
    SnsTopicArn,
    /// An SQS queue ARN.
    SqsQueueArn,
    /// A Lambda function ARN.
    LambdaArn,
    /// A KMS key ID, key ARN or alias.
    KmsKey,
    /// An IAM role ARN.
    IamRoleArn,
    /// An S3 bucket name.
    S3Bucket,
    /// An e-mail address.
    Email,
    /// An `https://` URL.
    HttpsUrl,
    /// An `http://` or `https://` URL.
    Url,
    /// A 12-digit AWS account ID.
    AccountId,
}

impl Kind {
    fn accepts(self, s: &str) -> bool {
        match self {
            Kind::SnsTopicArn => SNS_TOPIC_ARN.is_match(s),
            Kind::SqsQueueArn => SQS_QUEUE_ARN.is_match(s),
            Kind::LambdaArn => LAMBDA_ARN.is_match(s),
            Kind::KmsKey => KMS_KEY.is_match(s),
            Kind::IamRoleArn => IAM_ROLE_ARN.is_match(s),
            Kind::S3Bucket => S3_BUCKET.is_match(s) && !s.contains(".."),
            Kind::Email => EMAIL.is_match(s),
            Kind::HttpsUrl => s.starts_with("https://") && s.len() > "https://".len(),
            Kind::Url => {
                (s.starts_with("https://") && s.len() > 8)
                    || (s.starts_with("http://") && s.len() > 7)
            }
            Kind::AccountId => s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()),
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::SnsTopicArn => {
                "an SNS topic ARN such as arn:aws:sns:us-east-1:123456789012:alerts (use an aigov_alert_channel's arn)"
            }
            Kind::SqsQueueArn => {
                "an SQS queue ARN such as arn:aws:sqs:us-east-1:123456789012:inbox"
            }
            Kind::LambdaArn => {
                "a Lambda function ARN such as arn:aws:lambda:us-east-1:123456789012:function:notify"
            }
            Kind::KmsKey => "a KMS key ID, key ARN, alias ARN or alias/NAME",
            Kind::IamRoleArn => {
                "an IAM role ARN such as arn:aws:iam::123456789012:role/bedrock-invocation-logging"
            }
            Kind::S3Bucket => {
                "an S3 bucket name: 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit"
            }
            Kind::Email => "an e-mail address such as finops@example.com",
            Kind::HttpsUrl => "an https:// URL",
            Kind::Url => "an http:// or https:// URL",
            Kind::AccountId => "a 12-digit AWS account ID",
        }
    }
}

/// Checks a string attribute is of the given kind.
pub fn kind(value: &Value, kind: Kind, path: &Path, diags: &mut Diagnostics) {
    if let Some(s) = value.as_str()
        && !kind.accepts(s)
    {
        diags.attr_error(
            path,
            "Invalid value",
            format!("{s:?} is not {}.", kind.expected()),
        );
    }
}

/// Checks a sensitive string attribute is of the given kind without ever quoting it: Terraform
/// redacts a sensitive value in its own output, but a diagnostic's text is shown as written, so a
/// webhook URL (which carries its secret in the path) would otherwise be printed whole. The
/// message says what is wrong with it (scheme, shape) instead.
pub fn secret_kind(value: &Value, kind: Kind, path: &Path, diags: &mut Diagnostics) {
    if let Some(s) = value.as_str()
        && !kind.accepts(s)
    {
        let scheme = match s.split_once("://") {
            Some((scheme, _)) if scheme.len() <= 10 && !scheme.is_empty() => {
                format!(" (it starts with {scheme}://)")
            }
            _ => String::new(),
        };
        diags.attr_error(
            path,
            "Invalid value",
            format!(
                "The value (sensitive, not shown){scheme} is not {}.",
                kind.expected()
            ),
        );
    }
}

/// Checks every string of a set or list is of the given kind.
pub fn each_kind(value: &Value, k: Kind, path: &Path, diags: &mut Diagnostics) {
    for (i, item) in value.items().iter().enumerate() {
        kind(item, k, &path.index(i), diags);
    }
}

/// Checks a string attribute is one of the allowed values.
pub fn one_of(value: &Value, allowed: &[&str], path: &Path, diags: &mut Diagnostics) {
    if let Some(s) = value.as_str()
        && !allowed.contains(&s)
    {
        diags.attr_error(
            path,
            "Invalid value",
            format!(
                "{s:?} is not allowed here; use one of: {}.",
                allowed.join(", ")
            ),
        );
    }
}

/// Checks a number lies within `[min, max]` (`min` exclusive when `min_exclusive`).
pub fn range(
    value: &Value,
    min: Decimal,
    min_exclusive: bool,
    max: Option<Decimal>,
    path: &Path,
    diags: &mut Diagnostics,
) {
    let Some(n) = value.as_decimal() else {
        return;
    };
    let low = if min_exclusive { n <= min } else { n < min };
    let high = max.is_some_and(|m| n > m);
    if low || high {
        let bound = match (min_exclusive, max) {
            (true, Some(m)) => format!("greater than {min} and at most {m}"),
            (false, Some(m)) => format!("between {min} and {m}"),
            (true, None) => format!("greater than {min}"),
            (false, None) => format!("at least {min}"),
        };
        diags.attr_error(
            path,
            "Value out of range",
            format!("{n} is out of range: it must be {bound}."),
        );
    }
}

/// Checks a number is a whole number.
pub fn whole(value: &Value, path: &Path, diags: &mut Diagnostics) {
    if let Some(n) = value.as_decimal()
        && !n.fract().is_zero()
    {
        diags.attr_error(
            path,
            "Invalid value",
            format!("{n} must be a whole number."),
        );
    }
}

/// Checks a number has at most `places` decimal places.
pub fn max_places(value: &Value, places: u32, path: &Path, diags: &mut Diagnostics) {
    if let Some(n) = value.as_decimal()
        && n.normalize().scale() > places
    {
        diags.attr_error(
            path,
            "Too many decimal places",
            format!("{n} has more than {places} decimal places; round it to {places}."),
        );
    }
}

/// Checks a string matches a name rule, saying the rule.
pub fn name(value: &Value, rule: &Regex, explained: &str, path: &Path, diags: &mut Diagnostics) {
    if let Some(s) = value.as_str()
        && !rule.is_match(s)
    {
        diags.attr_error(
            path,
            "Invalid name",
            format!("{s:?} is not a valid name: {explained}."),
        );
    }
}

/// Checks AWS resource tags: key and value lengths and the reserved `aws:` prefix.
pub fn tags(value: &Value, path: &Path, diags: &mut Diagnostics) {
    let Some(map) = value.as_map() else {
        return;
    };
    for (k, v) in map {
        let p = path.key(k);
        if k.is_empty() || k.chars().count() > 128 {
            diags.attr_error(
                &p,
                "Invalid tag key",
                format!("tag key {k:?} must be 1 to 128 characters."),
            );
        } else if k.to_ascii_lowercase().starts_with("aws:") {
            diags.attr_error(
                &p,
                "Invalid tag key",
                format!("tag key {k:?} uses the reserved prefix aws:; choose another key."),
            );
        }
        if let Some(s) = v.as_str()
            && s.chars().count() > 256
        {
            diags.attr_error(
                &p,
                "Invalid tag value",
                format!("the value of tag {k:?} is longer than 256 characters."),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_checked_by_service() {
        assert!(Kind::SnsTopicArn.accepts("arn:aws:sns:us-east-1:123456789012:alerts"));
        assert!(!Kind::SnsTopicArn.accepts("arn:aws:sqs:us-east-1:123456789012:alerts"));
        assert!(!Kind::SnsTopicArn.accepts("arn:aws:sns:us-east-1:12345:alerts"));
        assert!(Kind::LambdaArn.accepts("arn:aws:lambda:eu-west-1:123456789012:function:f"));
        assert!(Kind::KmsKey.accepts("alias/aigov"));
        assert!(Kind::IamRoleArn.accepts("arn:aws:iam::123456789012:role/service/bedrock-logs"));
        assert!(!Kind::IamRoleArn.accepts("arn:aws:iam::123456789012:user/bedrock-logs"));
        assert!(!Kind::IamRoleArn.accepts("bedrock-logs"));
        assert!(Kind::S3Bucket.accepts("aigov-invocation-logs"));
        assert!(!Kind::S3Bucket.accepts("Aigov_Logs"));
    }

    #[test]
    fn a_sensitive_value_is_never_quoted_in_its_error() {
        let secret = "http://hooks.example.com/services/T000/B000/very-secret-token";
        let mut diags = Diagnostics::default();
        secret_kind(
            &Value::string(secret),
            Kind::HttpsUrl,
            &Path::attr("endpoint"),
            &mut diags,
        );
        let detail = &diags.0[0].detail;
        assert!(!detail.contains("very-secret-token"), "{detail}");
        assert!(!detail.contains("hooks.example.com"), "{detail}");
        assert!(
            detail.contains("http://") && detail.contains("https://"),
            "{detail}"
        );
    }

    #[test]
    fn unknown_values_are_not_validated() {
        let mut d = Diagnostics::default();
        kind(
            &Value::unknown(),
            Kind::SnsTopicArn,
            &Path::attr("x"),
            &mut d,
        );
        range(
            &Value::unknown(),
            Decimal::ZERO,
            true,
            None,
            &Path::attr("x"),
            &mut d,
        );
        assert!(!d.has_errors());
    }

    #[test]
    fn a_negative_amount_is_refused_on_its_attribute() {
        let mut d = Diagnostics::default();
        range(
            &Value::Number((-5).into()),
            Decimal::ZERO,
            true,
            None,
            &Path::attr("amount"),
            &mut d,
        );
        assert!(d.has_errors());
        assert!(d.0[0].detail.contains("greater than 0"));
        assert_eq!(d.0[0].attribute, Some(Path::attr("amount").to_proto()));
    }
}
