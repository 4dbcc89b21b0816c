//! The provider library's one error type, and the wording of AWS failures: every AWS error names
//! the service, the endpoint the call went to, the status or cause, and what to change.

use std::time::Duration;

use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

/// What can go wrong below the protocol layer; the server turns each into a diagnostic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value Terraform sent could not be decoded.
    #[error("{0}")]
    Value(String),
    /// The plugin handshake or transport could not be set up.
    #[error("plugin transport: {0}")]
    Transport(String),
    /// An AWS call failed.
    #[error("{0}")]
    Aws(String),
    /// A Kubernetes call failed: the cluster it went to and why, worded by [`kube_message`].
    #[error("{}", kube_message(server, source))]
    Kube {
        /// The API server URL from the kubeconfig.
        server: String,
        /// What kube said.
        source: kube::Error,
    },
    /// The kubeconfig could not be loaded.
    #[error("Kubernetes configuration: {0}")]
    KubeConfig(String),
    /// The object was created but could not be read back: the state to save anyway (so Terraform
    /// tracks, and can later destroy, what exists) and why the read failed.
    #[error("{cause}")]
    Created {
        /// What was planned, with the IDs the create returned.
        state: Box<crate::value::Value>,
        /// The read-back failure.
        cause: Box<Error>,
    },
    /// aigov's own API refused a value.
    #[error(transparent)]
    Api(#[from] aigov_api::Error),
}

/// Where an AWS call went and the limits it ran under, so a failure can say so.
#[derive(Clone, Debug)]
pub struct AwsTarget {
    /// The service as named in `endpoints { }` (`budgets`, `sns`, ...).
    pub service: &'static str,
    /// The endpoint URL, or a description of the default one.
    pub endpoint: String,
    /// Whether `endpoints { }` set it (the fix is then to check that setting).
    pub overridden: bool,
    /// The connect timeout.
    pub connect_timeout: Duration,
    /// The timeout of one whole call, retries included.
    pub operation_timeout: Duration,
    /// Attempts per call (the first plus retries).
    pub attempts: u32,
}

/// Error codes that mean the credentials are missing, wrong, expired or not allowed.
const CREDENTIAL_CODES: [&str; 10] = [
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "ExpiredToken",
    "ExpiredTokenException",
    "AccessDenied",
    "AccessDeniedException",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
];

const CREDENTIALS_FIX: &str = "check the AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the provider's profile, and that they allow this call";

impl Error {
    /// An AWS SDK error worded for a person: `{what}: AWS {service} at {endpoint} {cause}; {fix}`.
    /// The SDK's own `Display` says only "service error" or "dispatch failure", and its debug
    /// form dumps the credential chain (twice); neither names the endpoint or says what to do.
    pub fn aws<E>(target: &AwsTarget, what: &str, err: SdkError<E>) -> Error
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        let (cause, fix) = cause_and_fix(target, &err);
        Error::Aws(format!(
            "{what}: AWS {} at {} {cause}; {fix}.",
            target.service, target.endpoint
        ))
    }
}

fn cause_and_fix<E>(t: &AwsTarget, err: &SdkError<E>) -> (String, String)
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let endpoint_fix = if t.overridden {
        format!(
            "check endpoints.{} in the provider block points at AWS {} (or an emulator of it)",
            t.service, t.service
        )
    } else {
        "check the provider's region and the network path to AWS (proxy, VPC endpoint)".to_owned()
    };
    let chain = causes(err);
    // Before a request is sent, a failure mentioning credentials is the credential chain's.
    let unsent = !matches!(err, SdkError::ServiceError(_) | SdkError::ResponseError(_));
    if unsent && chain.to_ascii_lowercase().contains("credential") {
        return (
            format!("was not called: no usable AWS credentials ({chain})"),
            CREDENTIALS_FIX.to_owned(),
        );
    }
    match err {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            match (s.err().code(), s.err().message()) {
                (Some(code), message) if CREDENTIAL_CODES.contains(&code) => (
                    format!("refused the credentials: HTTP {status} {code}: {}", message.unwrap_or("")),
                    CREDENTIALS_FIX.to_owned(),
                ),
                (Some(code), message) => (
                    format!("answered HTTP {status} {code}: {}", message.unwrap_or("")),
                    "correct the configuration as the message says, or see the AWS documentation of this error code".to_owned(),
                ),
                (None, _) => (
                    format!("answered HTTP {status}, which is not an AWS {} answer", t.service),
                    endpoint_fix,
                ),
            }
        }
        SdkError::ResponseError(r) => (
            format!(
                "answered HTTP {} with a response that is not an AWS {} answer ({chain})",
                r.raw().status().as_u16(),
                t.service
            ),
            endpoint_fix,
        ),
        SdkError::TimeoutError(_) => (
            format!(
                "did not answer within {}s ({} attempts)",
                t.operation_timeout.as_secs(),
                t.attempts
            ),
            format!(
                "{endpoint_fix}; if it is only slow, raise operation_timeout_seconds or max_retries in the provider block"
            ),
        ),
        SdkError::DispatchFailure(d) if d.is_timeout() => (
            format!(
                "could not be connected to within {}s",
                t.connect_timeout.as_secs()
            ),
            format!(
                "{endpoint_fix}; if it is only slow, raise connect_timeout_seconds in the provider block"
            ),
        ),
        SdkError::DispatchFailure(_) => (format!("could not be reached ({chain})"), endpoint_fix),
        _ => (format!("failed ({chain})"), endpoint_fix),
    }
}

/// The distinct messages of an error's source chain, outermost first: each level often repeats
/// the one below, and generic wrappers ("dispatch failure") say nothing.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        let generic = matches!(
            text.as_str(),
            "dispatch failure" | "io error" | "other" | "failed to construct request" | "timeout"
        );
        if !generic && !seen.iter().any(|s| s.contains(&text)) {
            seen.push(text);
        }
        next = e.source();
    }
    if seen.is_empty() {
        err.to_string()
    } else {
        seen.join(": ")
    }
}

/// A Kubernetes failure worded for a person: the server, the status or cause, and the fix. kube's
/// own `Display` says "ServiceError: client error (Connect)" with no server and no remedy.
pub fn kube_message(server: &str, err: &kube::Error) -> String {
    const CONFIG_FIX: &str = "check kubernetes.config_path and kubernetes.context in the provider block (or KUBECONFIG) name a running cluster this machine can reach";
    let (cause, fix) = match err {
        kube::Error::Api(status) => {
            let fix = match status.code {
                401 => "the kubeconfig's credentials were refused; renew them".to_owned(),
                403 => "grant the kubeconfig's user get, list, create, patch and delete on aimodelprices.aigov.dev".to_owned(),
                404 => "install aigov's CRDs (kubectl apply -f crds/) if the AIModelPrice type is missing".to_owned(),
                _ => "correct the value as the message says".to_owned(),
            };
            (
                format!(
                    "answered HTTP {} {}: {}",
                    status.code, status.reason, status.message
                ),
                fix,
            )
        }
        other => (
            format!("could not be reached ({})", causes(other)),
            CONFIG_FIX.to_owned(),
        ),
    };
    format!("Kubernetes API server at {server} {cause}; {fix}.")
}
