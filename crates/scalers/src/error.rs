//! What can go wrong while a built scaler talks to its source.
//!
//! Every message starts with the trigger (`rabbitmq trigger 0: …`) so a status condition or an
//! Event says which trigger failed, and names the source by a printable address (no userinfo,
//! no query string). Texts from client libraries pass through [`crate::secret::scrub`] before
//! they are stored, so a password echoed by a server cannot reach a log.

use crate::params::{ParamError, TriggerId};
use crate::secret::{Secret, printable_url, scrub};

/// A scaler failure; see [`ScalerError::category`] for the stable label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScalerError {
    /// The trigger's parameters are wrong; retrying will not help.
    #[error(transparent)]
    Config(#[from] ParamError),
    /// The source could not be reached (refused, timed out, DNS).
    #[error("{trigger}: cannot reach {target}: {detail}")]
    Unreachable {
        /// The trigger.
        trigger: TriggerId,
        /// The source's printable address.
        target: String,
        /// What happened, scrubbed.
        detail: String,
    },
    /// The source refused our credentials.
    #[error("{trigger}: {target} refused the credentials: {detail}")]
    Unauthorized {
        /// The trigger.
        trigger: TriggerId,
        /// The source's printable address.
        target: String,
        /// What the source said, scrubbed.
        detail: String,
    },
    /// The queue, stream, metric or table does not exist.
    #[error("{trigger}: {target} has no {what}")]
    NotFound {
        /// The trigger.
        trigger: TriggerId,
        /// The source's printable address.
        target: String,
        /// What is missing, e.g. `queue "jobs" in vhost "orders"`.
        what: String,
    },
    /// The source answered with an error.
    #[error("{trigger}: {target} failed the query: {detail}")]
    Query {
        /// The trigger.
        trigger: TriggerId,
        /// The source's printable address.
        target: String,
        /// What the source said, scrubbed.
        detail: String,
    },
    /// The source answered, but not with something we can read as a number.
    #[error("{trigger}: unexpected answer from {target}: {detail}")]
    BadResponse {
        /// The trigger.
        trigger: TriggerId,
        /// The source's printable address.
        target: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The trigger asks for something Tandem does not do (yet).
    #[error("{trigger}: {what} is not supported")]
    Unsupported {
        /// The trigger.
        trigger: TriggerId,
        /// The feature.
        what: String,
    },
}

impl ScalerError {
    /// Stable PascalCase label for metrics and Event reasons; never the Debug text.
    pub fn category(&self) -> &'static str {
        match self {
            ScalerError::Config(e) => e.category(),
            ScalerError::Unreachable { .. } => "SourceUnreachable",
            ScalerError::Unauthorized { .. } => "Unauthorized",
            ScalerError::NotFound { .. } => "SourceObjectNotFound",
            ScalerError::Query { .. } => "QueryFailed",
            ScalerError::BadResponse { .. } => "BadResponse",
            ScalerError::Unsupported { .. } => "Unsupported",
        }
    }

    /// Whether the next poll may succeed without a configuration change.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ScalerError::Unreachable { .. }
                | ScalerError::Query { .. }
                | ScalerError::BadResponse { .. }
                | ScalerError::NotFound { .. }
        )
    }
}

/// Builds errors for one scaler: knows the trigger, the printable source address and the
/// secrets to scrub from foreign texts.
#[derive(Debug, Clone)]
pub struct ErrorContext {
    trigger: TriggerId,
    target: String,
    secrets: Vec<Secret<String>>,
}

impl ErrorContext {
    /// `target` is printed through [`printable_url`].
    pub fn new(trigger: TriggerId, target: &str, secrets: Vec<Secret<String>>) -> Self {
        ErrorContext {
            trigger,
            target: printable_url(target),
            secrets,
        }
    }

    /// The trigger.
    pub fn trigger(&self) -> &TriggerId {
        &self.trigger
    }

    fn clean(&self, detail: impl std::fmt::Display) -> String {
        scrub(&detail.to_string(), &self.secrets)
    }

    /// [`ScalerError::Unreachable`].
    pub fn unreachable(&self, detail: impl std::fmt::Display) -> ScalerError {
        ScalerError::Unreachable {
            trigger: self.trigger.clone(),
            target: self.target.clone(),
            detail: self.clean(detail),
        }
    }

    /// [`ScalerError::Unauthorized`].
    pub fn unauthorized(&self, detail: impl std::fmt::Display) -> ScalerError {
        ScalerError::Unauthorized {
            trigger: self.trigger.clone(),
            target: self.target.clone(),
            detail: self.clean(detail),
        }
    }

    /// [`ScalerError::NotFound`].
    pub fn not_found(&self, what: impl std::fmt::Display) -> ScalerError {
        ScalerError::NotFound {
            trigger: self.trigger.clone(),
            target: self.target.clone(),
            what: self.clean(what),
        }
    }

    /// [`ScalerError::Query`].
    pub fn query(&self, detail: impl std::fmt::Display) -> ScalerError {
        ScalerError::Query {
            trigger: self.trigger.clone(),
            target: self.target.clone(),
            detail: self.clean(detail),
        }
    }

    /// [`ScalerError::BadResponse`].
    pub fn bad_response(&self, detail: impl std::fmt::Display) -> ScalerError {
        ScalerError::BadResponse {
            trigger: self.trigger.clone(),
            target: self.target.clone(),
            detail: self.clean(detail),
        }
    }

    /// [`ScalerError::Unsupported`].
    pub fn unsupported(&self, what: impl std::fmt::Display) -> ScalerError {
        ScalerError::Unsupported {
            trigger: self.trigger.clone(),
            what: what.to_string(),
        }
    }
}
