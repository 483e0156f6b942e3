//! Predictions from the pod layer to the node layer, inside one `tandem run`: where each
//! ScaledObject's target is heading (`podscaler::forecast`), with the pod its template makes.
//!
//! This is how predictive provisioning reaches the snapshot. The pod layer publishes a
//! [`Prediction`] on the tick it reads a metric that sends a target up; the state writer folds
//! the map into the next snapshot as anticipated pods (the target's template, heading-to minus
//! the pods that exist), and the provisioner plans them at once. A prediction is a fact about
//! the pod layer's own decision, so it is shared in memory rather than written to the API
//! server: no extra write per poll, no schema change to KEDA's CRDs, and no delay — the whole
//! point is to beat the HPA, the ReplicaSet and the scheduler to it. With the layers in
//! separate processes (or `--no-predictive-provisioning`) the map stays empty and the node
//! layer reacts to pending pods as Karpenter does. Each prediction expires (`until_ms`), so a
//! pod layer that stops publishing cannot keep capacity launched.

use std::collections::BTreeMap;
use std::sync::Arc;

use tandem_nodescaler::snapshot::PendingPod;
use tokio::sync::watch;

use crate::workloads::WorkloadKey;

/// One ScaledObject's forecast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// The target whose pods are counted.
    pub target: WorkloadKey,
    /// One pod as the target's template makes it.
    pub template: PendingPod,
    /// The replica count the target is heading to.
    pub heading_to: u32,
    /// Ignored after this time (ms since the epoch).
    pub until_ms: i64,
}

/// Predictions by ScaledObject (`namespace/name`).
pub type PredictionMap = BTreeMap<String, Prediction>;

/// The shared map: the pod layer writes, the state writer subscribes.
#[derive(Debug, Clone)]
pub struct Predictions {
    tx: Arc<watch::Sender<Arc<PredictionMap>>>,
}

impl Default for Predictions {
    fn default() -> Self {
        Self::new()
    }
}

impl Predictions {
    /// An empty map.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(Arc::new(PredictionMap::new()));
        Predictions { tx: Arc::new(tx) }
    }

    /// Sets (`Some`) or clears (`None`) a ScaledObject's prediction; subscribers wake only when
    /// the forecast itself changes (a renewed expiry alone is applied silently).
    pub fn set(&self, scaled_object: &str, prediction: Option<Prediction>) {
        self.tx.send_if_modified(|map| {
            let old = map.get(scaled_object);
            let wake = match (&old, &prediction) {
                (None, None) => return false,
                (Some(a), Some(b)) => a.heading_to != b.heading_to || a.target != b.target,
                _ => true,
            };
            let m = Arc::make_mut(map);
            match prediction {
                Some(p) => {
                    m.insert(scaled_object.to_owned(), p);
                }
                None => {
                    m.remove(scaled_object);
                }
            }
            wake
        });
    }

    /// A receiver of the map as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<PredictionMap>> {
        self.tx.subscribe()
    }

    /// The current map.
    pub fn current(&self) -> Arc<PredictionMap> {
        self.tx.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_nodescaler::snapshot::requests;

    fn p(heading_to: u32, until_ms: i64) -> Prediction {
        Prediction {
            target: ("ns".into(), "Deployment".into(), "web".into()),
            template: PendingPod::new("ns", "web", requests(100, 128)),
            heading_to,
            until_ms,
        }
    }

    #[tokio::test]
    async fn subscribers_wake_on_a_new_forecast_not_on_a_renewal() {
        let preds = Predictions::new();
        let mut rx = preds.subscribe();
        preds.set("ns/web", Some(p(10, 1_000)));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        preds.set("ns/web", Some(p(10, 2_000)));
        assert!(!rx.has_changed().unwrap(), "a renewal is silent");
        assert_eq!(preds.current()["ns/web"].until_ms, 2_000);
        preds.set("ns/web", Some(p(20, 2_000)));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        preds.set("ns/web", None);
        assert!(rx.has_changed().unwrap());
        assert!(preds.current().is_empty());
        rx.borrow_and_update();
        preds.set("ns/other", None);
        assert!(!rx.has_changed().unwrap());
    }
}
