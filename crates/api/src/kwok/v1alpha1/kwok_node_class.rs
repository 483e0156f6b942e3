//! KWOKNodeClass: the NodeClass of the simulated provider used by tests, `tandem up` and the
//! simulator. Upstream: core `kwok/apis/v1alpha1/kwoknodeclass.go`.

use crate::condition::Condition;
use crate::duration::{AsWritten, GoDuration};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a KWOKNodeClass.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "karpenter.kwok.sh",
    version = "v1alpha1",
    kind = "KWOKNodeClass",
    plural = "kwoknodeclasses",
    singular = "kwoknodeclass",
    shortname = "kwoknc",
    shortname = "kwokncs",
    category = "karpenter",
    status = "KWOKNodeClassStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "KWOKNodeClass is the Schema for the KWOKNodeClass API"
)]
#[serde(rename_all = "camelCase")]
pub struct KWOKNodeClassSpec {
    /// How long after launch the fake Node appears, to simulate boot time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_registration_delay: Option<AsWritten<GoDuration>>,
}

/// Observed state of a KWOKNodeClass; upstream defaults it to Ready so pools work at once.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("default" = { "conditions": [{
    "lastTransitionTime": "2024-01-01T01:01:01Z", "message": "", "reason": "Ready",
    "status": "True", "type": "Ready"
}] }))]
pub struct KWOKNodeClassStatus {
    /// `Ready` (always True unless a test sets otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
