//! The provisioner's recent nominations, for disruption: a node (or claim) the provisioner
//! just chose for a pending pod must not look empty to emptiness and consolidation while the
//! scheduler has not bound the pod yet. Upstream marks such nodes nominated for
//! `2 × BATCH_MAX_DURATION` (cluster state `NominateNodeForPod`); without it, with a short
//! `consolidateAfter` the node launched for a pod can be removed in the second between its
//! Ready and the pod's binding, and the pod waits for another launch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem_nodescaler::snapshot::{BoundPod, Snapshot};
use tandem_state::ClusterState;

/// How long a nomination protects its node (upstream: twice the batch max duration, 20 s).
pub const WINDOW: Duration = Duration::from_secs(20);

/// Pod UID → (node or NodeClaim name, when).
#[derive(Debug, Clone, Default)]
pub struct Nominations {
    inner: Arc<Mutex<BTreeMap<String, (String, Instant)>>>,
}

impl Nominations {
    /// Records that `pod_uid` should land on `target` (a node or a NodeClaim name).
    pub fn record(&self, pod_uid: &str, target: &str, now: Instant) {
        if let Ok(mut m) = self.inner.lock() {
            m.retain(|_, (_, at)| now.duration_since(*at) < WINDOW);
            m.insert(pod_uid.to_owned(), (target.to_owned(), now));
        }
    }

    /// The snapshot with each recent nomination of a still-pending pod shown as a nominated
    /// pod on its node (a claim's nomination counts once its node exists). The state's own
    /// snapshot, not a copy, when no nomination applies.
    pub fn apply(&self, st: &ClusterState, now: Instant) -> Arc<Snapshot> {
        let live: Vec<(String, String)> = match self.inner.lock() {
            Ok(m) => m
                .iter()
                .filter(|(_, (_, at))| now.duration_since(*at) < WINDOW)
                .map(|(uid, (target, _))| (uid.clone(), target.clone()))
                .collect(),
            Err(_) => Vec::new(),
        };
        if live.is_empty() {
            return Arc::clone(&st.snapshot);
        }
        let pending: BTreeMap<&str, &tandem_nodescaler::snapshot::PendingPod> = st
            .snapshot
            .pods
            .iter()
            .map(|p| (p.uid.as_str(), p))
            .collect();
        let mut extra: BTreeMap<String, Vec<BoundPod>> = BTreeMap::new();
        for (uid, target) in live {
            let Some(pod) = pending.get(uid.as_str()) else {
                continue;
            };
            let node = if st.nodes.contains_key(&target) {
                target
            } else {
                match st
                    .nodeclaims
                    .get(&target)
                    .and_then(|c| c.status.as_ref()?.node_name.clone())
                {
                    Some(n) => n,
                    None => continue,
                }
            };
            extra
                .entry(node)
                .or_default()
                .push(BoundPod::nominated(pod));
        }
        if extra.is_empty() {
            return Arc::clone(&st.snapshot);
        }
        let mut snap = Snapshot::clone(&st.snapshot);
        for n in &mut snap.nodes {
            if let Some(pods) = extra.remove(&n.name) {
                n.pods.extend(pods);
            }
        }
        Arc::new(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tandem_model::catalog::Catalog;

    fn state(claim_node: Option<&str>) -> ClusterState {
        let mut ix = tandem_state::Index::new(Arc::new(Catalog::kwok()));
        ix.mark_synced();
        ix.apply_node(
            serde_json::from_value(json!({
                "metadata": {"name": "n1", "labels": {"karpenter.sh/nodepool": "default",
                    "karpenter.sh/initialized": "true"}},
                "spec": {"providerID": "kwok://n1"},
                "status": {"allocatable": {"cpu": "1900m", "pods": "32"},
                           "conditions": [{"type": "Ready", "status": "True"}]},
            }))
            .unwrap(),
        );
        let mut claim = json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": {"name": "c1", "labels": {"karpenter.sh/nodepool": "default"}},
            "spec": {"requirements": [], "resources": {"requests": {"cpu": "1"}},
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "kc"}},
        });
        if let Some(n) = claim_node {
            claim["status"] = json!({"nodeName": n, "providerID": format!("kwok://{n}")});
        }
        ix.apply_nodeclaim(serde_json::from_value(claim).unwrap());
        ix.apply_pod(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "ns", "uid": "p-uid"},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
                "status": {"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]},
            }))
            .unwrap(),
        );
        ix.state()
    }

    fn nominated_on(snap: &Snapshot, node: &str) -> usize {
        snap.nodes
            .iter()
            .filter(|n| n.name == node)
            .flat_map(|n| &n.pods)
            .filter(|p| p.nominated)
            .count()
    }

    #[test]
    fn a_recent_nomination_makes_its_node_non_empty_for_the_window() {
        let st = state(None);
        let noms = Nominations::default();
        let t0 = Instant::now();
        assert!(
            Arc::ptr_eq(&noms.apply(&st, t0), &st.snapshot),
            "nothing to add"
        );
        noms.record("p-uid", "n1", t0);
        assert_eq!(nominated_on(&noms.apply(&st, t0), "n1"), 1);
        assert_eq!(
            nominated_on(&noms.apply(&st, t0 + WINDOW), "n1"),
            0,
            "expired"
        );
    }

    #[test]
    fn a_claims_nomination_protects_its_node_once_registered() {
        let noms = Nominations::default();
        let t0 = Instant::now();
        noms.record("p-uid", "c1", t0);
        assert_eq!(nominated_on(&noms.apply(&state(None), t0), "n1"), 0);
        assert_eq!(nominated_on(&noms.apply(&state(Some("n1")), t0), "n1"), 1);
    }
}
