//! Workloads' pod counts over time, as the node layer sees them in its pod watch: the live
//! input of pod-layer coordination (`nodescaler::disruption::coordination`).
//!
//! A ScaledObject scales a Deployment or StatefulSet; its pods carry the owner (a ReplicaSet
//! named `<deployment>-<pod-template-hash>`, or the StatefulSet). Counting live pods per owner
//! and noting each change gives the replica history `podscaler::comeback` reads, without a
//! second watch and without asking the pod layer: the same facts reach the simulator from its
//! own replica counts, so both run the same decision.

use std::collections::{BTreeMap, BTreeSet};

use tandem_nodescaler::snapshot::{Comeback, PendingPod};
use tandem_podscaler::TimeMs;
use tandem_podscaler::comeback::{self, ReplicaChange};

use crate::pod_view::PodView;

/// `(namespace, kind, name)` of a scale target: `Deployment` or `StatefulSet`.
pub type WorkloadKey = (String, String, String);

/// The scale target a pod belongs to, from its controller owner.
pub fn key_of(pod: &PodView) -> Option<WorkloadKey> {
    let ns = pod.namespace.clone();
    let owner = pod.controller()?;
    match owner.kind.as_str() {
        "ReplicaSet" => {
            let name = match pod.labels.get("pod-template-hash") {
                Some(h) => owner
                    .name
                    .strip_suffix(&format!("-{h}"))
                    .unwrap_or(&owner.name),
                None => &owner.name,
            };
            Some((ns, "Deployment".into(), name.to_owned()))
        }
        "StatefulSet" => Some((ns, "StatefulSet".into(), owner.name.clone())),
        _ => None,
    }
}

/// A ScaledObject as coordination needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaledTarget {
    /// `namespace/name` of the ScaledObject.
    pub scaled_object: String,
    /// What it scales.
    pub target: WorkloadKey,
    /// `max(cooldownPeriod, scale-down stabilization)` in seconds, before the ceiling.
    pub window_secs: u32,
}

/// Live pods per workload and the history of their count.
#[derive(Debug, Default)]
pub struct Workloads {
    pods: BTreeMap<WorkloadKey, BTreeSet<String>>,
    /// The live pods already bound to a node (pending ones still need room somewhere).
    bound: BTreeMap<WorkloadKey, BTreeSet<String>>,
    history: BTreeMap<WorkloadKey, Vec<ReplicaChange>>,
    templates: BTreeMap<WorkloadKey, PendingPod>,
}

impl Workloads {
    /// A pod applied or deleted at `now_ms`. `template` is asked for the pod's scheduling
    /// constraints only when its workload has no template yet.
    pub fn observe(
        &mut self,
        pod_key: &str,
        pod: &PodView,
        deleted: bool,
        now_ms: i64,
        template: impl FnOnce() -> Option<PendingPod>,
    ) {
        let Some(key) = key_of(pod) else {
            return;
        };
        if !deleted && pod.live() {
            self.add(&key, pod_key, pod, template);
        } else {
            if let Some(set) = self.pods.get_mut(&key) {
                set.remove(pod_key);
            }
            if let Some(set) = self.bound.get_mut(&key) {
                set.remove(pod_key);
            }
        }
        self.record(&key, now_ms);
    }

    /// Every pod at once (a finished relist), each with its template as in [`Self::observe`].
    pub fn reset<'a, T>(
        &mut self,
        pods: impl IntoIterator<Item = (&'a str, &'a PodView, T)>,
        now_ms: i64,
    ) where
        T: FnOnce() -> Option<PendingPod>,
    {
        let before: Vec<WorkloadKey> = self.pods.keys().cloned().collect();
        self.pods.clear();
        self.bound.clear();
        for (k, p, template) in pods {
            if let Some(key) = key_of(p)
                && p.live()
            {
                self.add(&key, k, p, template);
            }
        }
        let keys: BTreeSet<WorkloadKey> = before
            .into_iter()
            .chain(self.pods.keys().cloned())
            .collect();
        for key in keys {
            self.record(&key, now_ms);
        }
    }

    /// Counts a live pod under its workload; its spec becomes the workload's template if it
    /// has none yet.
    fn add(
        &mut self,
        key: &WorkloadKey,
        pod_key: &str,
        pod: &PodView,
        template: impl FnOnce() -> Option<PendingPod>,
    ) {
        self.pods
            .entry(key.clone())
            .or_default()
            .insert(pod_key.to_owned());
        let set = self.bound.entry(key.clone()).or_default();
        if pod.node_name.is_some() {
            set.insert(pod_key.to_owned());
        } else {
            set.remove(pod_key);
        }
        if !self.templates.contains_key(key)
            && let Some(t) = template()
        {
            self.templates.insert(key.clone(), t);
        }
    }

    /// Notes the current count when it changed; drops history older than the ceiling.
    fn record(&mut self, key: &WorkloadKey, now_ms: i64) {
        let count = self
            .pods
            .get(key)
            .map_or(0, |s| u32::try_from(s.len()).unwrap_or(u32::MAX));
        let h = self.history.entry(key.clone()).or_default();
        if h.last().map(|c| c.replicas) != Some(count) {
            h.push(ReplicaChange {
                at: TimeMs(now_ms),
                replicas: count,
            });
        }
        let keep = now_ms - i64::from(COORDINATION_CEILING_SECS) * 1000;
        while h.len() > 1 && h[1].at.as_millis() < keep {
            h.remove(0);
        }
    }

    /// Live pods of a workload.
    pub fn pod_count(&self, key: &WorkloadKey) -> u32 {
        self.pods
            .get(key)
            .map_or(0, |s| u32::try_from(s.len()).unwrap_or(u32::MAX))
    }

    /// Live pods of a workload that are bound to a node.
    pub fn bound_count(&self, key: &WorkloadKey) -> u32 {
        self.bound
            .get(key)
            .map_or(0, |s| u32::try_from(s.len()).unwrap_or(u32::MAX))
    }

    /// The comebacks of every scaled target at `now_ms`.
    pub fn comebacks(&self, targets: &[ScaledTarget], now_ms: i64) -> Vec<Comeback> {
        let mut out = Vec::new();
        for t in targets {
            let (Some(history), Some(template)) =
                (self.history.get(&t.target), self.templates.get(&t.target))
            else {
                continue;
            };
            let current = self
                .pods
                .get(&t.target)
                .map_or(0, |s| u32::try_from(s.len()).unwrap_or(u32::MAX));
            let window = t.window_secs.min(COORDINATION_CEILING_SECS);
            if let Some((count, until)) =
                comeback::comebacks(history, current, window, TimeMs(now_ms))
            {
                out.push(Comeback {
                    workload: t.scaled_object.clone(),
                    pod: template.clone(),
                    count,
                    until_ms: until.as_millis(),
                });
            }
        }
        out
    }
}

/// The longest a node is kept for pods the pod layer may bring back (10 minutes).
pub const COORDINATION_CEILING_SECS: u32 = 600;

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(name: &str, deleting: bool) -> Pod {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "shop",
                "labels": {"app": "worker", "pod-template-hash": "7d9f"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "worker-7d9f", "uid": "rs", "controller": true}]},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
        });
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(v).unwrap()
    }

    fn view(p: &Pod) -> PodView {
        PodView::new(p, Arc::new(p.metadata.labels.clone().unwrap_or_default()))
    }

    /// Applies or deletes `p` as the index does.
    fn observe(w: &mut Workloads, key: &str, p: &Pod, deleted: bool, now_ms: i64) {
        w.observe(key, &view(p), deleted, now_ms, || {
            crate::convert::pending_pod(p, 0)
        });
    }

    fn target(window_secs: u32) -> ScaledTarget {
        ScaledTarget {
            scaled_object: "shop/worker".into(),
            target: ("shop".into(), "Deployment".into(), "worker".into()),
            window_secs,
        }
    }

    #[test]
    fn a_deployments_pods_are_counted_under_the_deployment() {
        assert_eq!(
            key_of(&view(&pod("a", false))),
            Some(("shop".into(), "Deployment".into(), "worker".into()))
        );
    }

    #[test]
    fn pods_scaled_away_come_back_as_comebacks_for_the_window() {
        let mut w = Workloads::default();
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            observe(
                &mut w,
                &format!("shop/{n}"),
                &pod(n, false),
                false,
                1_000 * i as i64,
            );
        }
        assert!(
            w.comebacks(&[target(60)], 5_000).is_empty(),
            "still at peak"
        );
        // Two are deleted at 10 s (first marked deleting, then gone).
        observe(&mut w, "shop/b", &pod("b", true), false, 10_000);
        observe(&mut w, "shop/c", &pod("c", true), true, 10_000);
        let c = w.comebacks(&[target(60)], 20_000);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].count, c[0].until_ms), (2, 70_000));
        assert_eq!(
            c[0].pod.shape.effective_requests().to_quantities()["cpu"].to_string(),
            "1"
        );
        assert!(w.comebacks(&[target(60)], 70_001).is_empty(), "window over");
    }

    #[test]
    fn the_ceiling_bounds_a_long_window() {
        let mut w = Workloads::default();
        observe(&mut w, "shop/a", &pod("a", false), false, 0);
        observe(&mut w, "shop/b", &pod("b", false), false, 0);
        observe(&mut w, "shop/b", &pod("b", false), true, 1_000);
        let c = w.comebacks(&[target(3_600)], 2_000);
        assert_eq!(c[0].until_ms, 601_000);
    }

    #[test]
    fn a_relist_recounts() {
        let mut w = Workloads::default();
        observe(&mut w, "shop/a", &pod("a", false), false, 0);
        observe(&mut w, "shop/b", &pod("b", false), false, 0);
        let a = view(&pod("a", false));
        w.reset([("shop/a", &a, || None)], 5_000);
        let c = w.comebacks(&[target(60)], 6_000);
        assert_eq!(c[0].count, 1);
    }
}
