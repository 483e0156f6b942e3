//! Errors of the pod layer's shell. Each variant is named for the action that failed and has a
//! stable [`Error::category`], used as the Event reason where an Event is published.

/// A failed action of the pod layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The metrics server could not bind its address.
    #[error("bind the external metrics server to {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS material of the metrics server was refused.
    #[error("configure TLS of the external metrics server")]
    Tls {
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// The client CA of the metrics server could not be used to verify client certificates.
    #[error("configure client certificate verification of the external metrics server")]
    ClientVerifier {
        /// The cause.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// A Kubernetes API call failed.
    #[error("{action}")]
    Kube {
        /// What was being done, e.g. `patch /scale of Deployment ns/name`.
        action: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The scale target cannot be used.
    #[error("{message}")]
    Target {
        /// What is wrong, naming the field (`spec.scaleTargetRef…`).
        message: String,
    },
}

impl Error {
    /// A Kubernetes API error with what was being done.
    pub(crate) fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }

    /// Stable label for metrics and Event reasons.
    #[must_use]
    pub fn category(&self) -> &'static str {
        match self {
            Error::Bind { .. } => "MetricsServerBindFailed",
            Error::Tls { .. } | Error::ClientVerifier { .. } => "MetricsServerTlsFailed",
            Error::Kube { .. } => "KubernetesApiFailed",
            Error::Target { .. } => "ScaledObjectCheckFailed",
        }
    }

    /// The message with its causes, for a condition or an Event (`Display` prints only itself).
    #[must_use]
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            out.push_str(": ");
            out.push_str(&s.to_string());
            source = s.source();
        }
        out
    }
}

/// Whether a kube error is a 404.
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
