//! What can go wrong at the cloud seam, typed so the lifecycle controller can react per kind
//! (upstream `pkg/cloudprovider/types.go`: `InsufficientCapacityError`, `NodeClaimNotFoundError`,
//! `NodeClassNotReadyError`, `CreateError`).

use std::fmt;

use thiserror::Error;

/// One offering a launch tried: instance type, zone, capacity type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OfferingRef {
    /// Instance type name.
    pub instance_type: String,
    /// Zone.
    pub zone: String,
    /// Capacity type (`spot`, `on-demand`).
    pub capacity_type: String,
}

impl fmt::Display for OfferingRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.instance_type, self.zone, self.capacity_type
        )
    }
}

/// A cloud-provider failure.
#[derive(Debug, Error)]
pub enum Error {
    /// None of the offerings the claim allows had capacity; the claim should be deleted so the
    /// next plan picks something else.
    #[error("insufficient capacity for {} offering(s){}", offerings.len(), first(offerings))]
    InsufficientCapacity {
        /// The offerings that were tried.
        offerings: Vec<OfferingRef>,
    },
    /// The instance does not exist (never launched, or terminated).
    #[error("instance {provider_id} not found")]
    NodeClaimNotFound {
        /// The provider ID asked about.
        provider_id: String,
    },
    /// The claim's NodeClass exists but is not Ready.
    #[error("node class {name} is not ready")]
    NodeClassNotReady {
        /// NodeClass name.
        name: String,
    },
    /// The claim's requirements allow no instance type of the catalog.
    #[error("no instance type of node class {node_class} satisfies the nodeclaim requirements")]
    NoCompatibleInstanceType {
        /// NodeClass name.
        node_class: String,
    },
    /// The launch call failed for a reason the provider reports as transient.
    #[error("create failed: {message}")]
    CreateFailed {
        /// What the provider said.
        message: String,
    },
    /// A test capped the number of calls and the cap was reached.
    #[error("call limit of {limit} reached")]
    CallLimit {
        /// The cap.
        limit: usize,
    },
    /// A request to the API server (where kwok keeps its instances) failed.
    #[error("failed to {action}")]
    Api {
        /// What was being done, naming the object.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A call to the cloud's own API failed (throttled, refused, unreachable); retried with
    /// backoff like an API-server failure.
    #[error("cloud API call {action} failed: {message}")]
    Cloud {
        /// The call, naming what it was for (`CreateFleet for nodeclaim default-x7k2p`).
        action: String,
        /// The cloud's error code and message.
        message: String,
    },
}

fn first(offerings: &[OfferingRef]) -> String {
    offerings
        .first()
        .map(|o| format!(", first {o}"))
        .unwrap_or_default()
}

impl Error {
    /// True when calling again later may succeed without anything else changing; false when
    /// the caller must change course (delete the claim, wait for the NodeClass).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::CreateFailed { .. } | Error::Api { .. } | Error::Cloud { .. } => true,
            Error::InsufficientCapacity { .. }
            | Error::NodeClaimNotFound { .. }
            | Error::NodeClassNotReady { .. }
            | Error::NoCompatibleInstanceType { .. }
            | Error::CallLimit { .. } => false,
        }
    }

    /// A stable PascalCase name for metric labels and Event reasons (never the Debug text).
    pub fn category(&self) -> &'static str {
        match self {
            Error::InsufficientCapacity { .. } => "InsufficientCapacity",
            Error::NodeClaimNotFound { .. } => "NodeClaimNotFound",
            Error::NodeClassNotReady { .. } => "NodeClassNotReady",
            Error::NoCompatibleInstanceType { .. } => "NoCompatibleInstanceType",
            Error::CreateFailed { .. } => "CreateFailed",
            Error::CallLimit { .. } => "CallLimit",
            Error::Api { .. } => "ApiError",
            Error::Cloud { .. } => "CloudProviderError",
        }
    }

    /// True for [`Error::NodeClaimNotFound`]: the instance is gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NodeClaimNotFound { .. })
    }

    /// A failed cloud API call.
    pub fn cloud(action: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Cloud {
            action: action.into(),
            message: message.into(),
        }
    }

    /// A failed API-server request.
    pub fn api(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Api {
            action: action.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_failures_are_retryable() {
        let ice = Error::InsufficientCapacity {
            offerings: vec![OfferingRef {
                instance_type: "c-1x-amd64-linux".into(),
                zone: "test-zone-a".into(),
                capacity_type: "spot".into(),
            }],
        };
        assert!(!ice.is_retryable());
        assert_eq!(ice.category(), "InsufficientCapacity");
        assert_eq!(
            ice.to_string(),
            "insufficient capacity for 1 offering(s), first c-1x-amd64-linux/test-zone-a/spot"
        );
        assert!(
            Error::CreateFailed {
                message: "boom".into()
            }
            .is_retryable()
        );
        assert!(
            Error::NodeClaimNotFound {
                provider_id: "kwok://x".into()
            }
            .is_not_found()
        );
    }
}
