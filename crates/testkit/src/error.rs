//! The one error type of the testkit.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while starting, using or stopping the test control plane.
///
/// Messages are lowercase and print only themselves; the source chain carries the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upstream binaries have not been built yet.
    #[error(
        "control-plane binaries not found in {dir}: build them with `hack/controlplane/build.sh` \
         (or point TANDEM_CONTROLPLANE_DIR at a directory holding {missing})"
    )]
    BinariesMissing {
        /// Where they were looked for.
        dir: PathBuf,
        /// The first binary that was missing.
        missing: String,
    },

    /// `hack/controlplane/build.sh --dir` could not be run at all.
    #[error("failed to run {script} to locate the control-plane binaries")]
    LocateBinaries {
        /// The script that was run.
        script: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },

    /// A file or directory operation failed.
    #[error("failed to {action} {path}")]
    Io {
        /// What was being done, e.g. "write".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },

    /// A process could not be started.
    #[error("failed to start {component}")]
    Spawn {
        /// The component, e.g. "kube-apiserver".
        component: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },

    /// A component exited while it was expected to run.
    #[error("{component} exited ({status}); last lines of {log}:\n{tail}")]
    Exited {
        /// The component.
        component: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },

    /// A component did not become ready in time.
    #[error("{component} not ready after {waited:?}; last lines of {log}:\n{tail}")]
    NotReady {
        /// The component.
        component: String,
        /// How long we waited.
        waited: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },

    /// Generating a key or certificate failed.
    #[error("failed to generate {what}")]
    Pki {
        /// The key or certificate.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: rcgen::Error,
    },

    /// A TLS configuration could not be built.
    #[error("failed to configure TLS for {what}")]
    Tls {
        /// The server or client being configured.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The generated kubeconfig could not be turned into a client configuration.
    #[error("failed to load the generated kubeconfig {path}")]
    Kubeconfig {
        /// The kubeconfig.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// A URL built for a component is invalid.
    #[error("invalid URL {url}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why it is invalid.
        #[source]
        source: http::uri::InvalidUri,
    },

    /// A kube client could not be built.
    #[error("failed to build a kube client")]
    Client(#[source] kube::Error),

    /// An API request failed.
    #[error("failed to {action}")]
    Kube {
        /// What was being done, e.g. "create namespace tandem-1".
        action: String,
        /// Why it failed.
        #[source]
        source: kube::Error,
    },

    /// A watch used for waiting failed.
    #[error("failed to watch while waiting for {what}")]
    Watch {
        /// What was awaited.
        what: String,
        /// Why the watch failed.
        #[source]
        source: kube::runtime::wait::Error,
    },

    /// A YAML manifest could not be parsed.
    #[error("failed to parse {path}")]
    Yaml {
        /// The manifest.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: serde_yaml_ng::Error,
    },

    /// A manifest parsed but is not what was expected.
    #[error("invalid manifest {path}: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A bounded wait ran out of time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound.
        after: Duration,
    },

    /// Starting the shared control plane failed earlier in this test binary.
    #[error("the shared control plane failed to start earlier in this process: {0}")]
    SharedStartFailed(String),
}

/// `Result` with the testkit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }
}
