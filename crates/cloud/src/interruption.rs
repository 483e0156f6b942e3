//! Interruption notices: a cloud telling the node layer that an instance is going away (spot
//! reclaim, maintenance, a stop) or might (rebalance recommendation). Upstream receives them
//! from an SQS queue fed by EventBridge; the kwok provider reads them from a Node label, so a
//! test or a demo can interrupt a node with `kubectl label node`.

use std::fmt;
use std::str::FromStr;

/// What the cloud announced, with upstream's message-type names (the `message_type` label of
/// `karpenter_interruption_received_messages_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoticeKind {
    /// The spot instance will be reclaimed (two minutes' warning on AWS).
    SpotInterrupted,
    /// The instance is at elevated risk of spot interruption: an Event only.
    RebalanceRecommendation,
    /// Scheduled maintenance will stop or retire the instance.
    ScheduledChange,
    /// The instance is stopping or stopped.
    InstanceStopped,
    /// The instance is shutting down or terminated.
    InstanceTerminated,
}

impl NoticeKind {
    /// Every kind, in upstream's order.
    pub const ALL: [NoticeKind; 5] = [
        NoticeKind::SpotInterrupted,
        NoticeKind::RebalanceRecommendation,
        NoticeKind::ScheduledChange,
        NoticeKind::InstanceStopped,
        NoticeKind::InstanceTerminated,
    ];

    /// Upstream's message type name.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::SpotInterrupted => "spot_interrupted",
            NoticeKind::RebalanceRecommendation => "rebalance_recommendation",
            NoticeKind::ScheduledChange => "scheduled_change",
            NoticeKind::InstanceStopped => "instance_stopped",
            NoticeKind::InstanceTerminated => "instance_terminated",
        }
    }

    /// True when the instance goes away and its node must be drained (upstream's
    /// CordonAndDrain); false for a recommendation, which is only reported.
    pub fn drains(self) -> bool {
        self != NoticeKind::RebalanceRecommendation
    }

    /// The Event reason upstream publishes on the Node and NodeClaim for this notice.
    pub fn event_reason(self) -> &'static str {
        match self {
            NoticeKind::SpotInterrupted => "SpotInterrupted",
            NoticeKind::RebalanceRecommendation => "SpotRebalanceRecommendation",
            NoticeKind::ScheduledChange => "InstanceUnhealthy",
            NoticeKind::InstanceStopped => "InstanceStopping",
            NoticeKind::InstanceTerminated => "InstanceTerminating",
        }
    }

    /// The Event message upstream publishes with [`NoticeKind::event_reason`].
    pub fn event_message(self) -> &'static str {
        match self {
            NoticeKind::SpotInterrupted => "A spot interruption warning was triggered for the node",
            NoticeKind::RebalanceRecommendation => {
                "A spot rebalance recommendation was triggered for the node"
            }
            NoticeKind::ScheduledChange => "An unhealthy warning was triggered for the node",
            NoticeKind::InstanceStopped => "Instance is stopping",
            NoticeKind::InstanceTerminated => "Instance is terminating",
        }
    }
}

impl fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message type name that is not one of [`NoticeKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown interruption kind `{0}`: expected one of spot_interrupted, rebalance_recommendation, scheduled_change, instance_stopped, instance_terminated"
)]
pub struct UnknownKind(pub String);

impl FromStr for NoticeKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NoticeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// One notice, as received; acknowledged once handled so it is not delivered again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The provider's handle for acknowledging it (an SQS receipt handle; the Node name for
    /// kwok).
    pub id: String,
    /// The instance it is about.
    pub provider_id: String,
    /// What was announced.
    pub kind: NoticeKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_upstream_names() {
        for k in NoticeKind::ALL {
            assert_eq!(k.as_str().parse::<NoticeKind>(), Ok(k));
        }
        let e = "spot".parse::<NoticeKind>().unwrap_err();
        assert!(e.to_string().contains("unknown interruption kind `spot`"));
    }

    #[test]
    fn only_a_recommendation_leaves_the_node_alone() {
        let draining: Vec<_> = NoticeKind::ALL.into_iter().filter(|k| k.drains()).collect();
        assert_eq!(draining.len(), 4);
        assert!(!NoticeKind::RebalanceRecommendation.drains());
    }
}
