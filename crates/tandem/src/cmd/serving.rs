//! Which replicas serve the external metrics API.
//!
//! Every replica is Ready (a follower must be, or rollouts and PodDisruptionBudgets stall), but
//! only a replica whose `external.metrics.k8s.io` server is bound can answer: every replica
//! once its server runs (followers from an observe-only pod layer), or the leader alone with
//! `--leader-only-metrics-server`, or none without a certificate. A Service that selected every
//! replica would send requests to one that does not listen, and the HPA would fail to read its
//! metrics that often. So a replica labels its own pod once its server is bound, and the
//! Service the APIService names selects that label; every process clears the label from its
//! pod when it starts (a container restarted after losing the lease keeps its pod and labels)
//! and when it stops.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

/// The pod label the external metrics Service selects.
pub const LABEL: &str = "tandem.dev/external-metrics";

/// This process's pod (downward API: `POD_NAMESPACE`, `POD_NAME`).
#[derive(Debug, Clone)]
pub struct OwnPod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Sets (`serving`) or removes the label on the pod. Best effort: a failure is reported and
/// the replica goes on (a missing label costs availability of the metrics API, not
/// correctness).
pub async fn mark(client: &kube::Client, pod: &OwnPod, serving: bool) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let value = if serving { json!("true") } else { Value::Null };
    let patch = json!({"metadata": {"labels": {LABEL: value}}});
    match api
        .patch(&pod.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => eprintln!(
            "tandem: pod {}/{} {} the external metrics API ({LABEL})",
            pod.namespace,
            pod.name,
            if serving { "serves" } else { "does not serve" }
        ),
        Err(e) => eprintln!(
            "tandem: cannot label pod {}/{} ({LABEL}): {e}",
            pod.namespace, pod.name
        ),
    }
}
