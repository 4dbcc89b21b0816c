//! The provider library's one error type.

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
    /// A Kubernetes call failed.
    #[error("Kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The kubeconfig could not be loaded.
    #[error("Kubernetes configuration: {0}")]
    KubeConfig(String),
    /// aigov's own API refused a value.
    #[error(transparent)]
    Api(#[from] aigov_api::Error),
}

impl Error {
    /// An AWS SDK error with its service message (the SDK's `Display` alone says only "service error").
    pub fn aws<E>(what: &str, err: aws_sdk_sts::error::SdkError<E>) -> Error
    where
        E: std::error::Error + 'static,
    {
        let detail = match &err {
            aws_sdk_sts::error::SdkError::ServiceError(service) => format!("{}", service.err()),
            other => format!("{}", aws_sdk_sts::error::DisplayErrorContext(other)),
        };
        Error::Aws(format!("{what}: {detail}"))
    }
}
