//! A recording, in-memory [`CloudProvider`] for controller tests (upstream
//! `pkg/cloudprovider/fake/cloudprovider.go`): every call is recorded, the next create can be
//! made to fail once, creates can be capped, and [`FakeCloud::reset`] starts over.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use tandem_api::karpenter::NodeClaim;
use tandem_model::catalog::Catalog;

use crate::error::{Error, OfferingRef};
use crate::requirements::{choose, instance_labels};
use crate::{CloudProvider, DriftReason, Instance};

/// One call made to the fake, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `create` for the named NodeClaim.
    Create(String),
    /// `delete` of a provider ID.
    Delete(String),
    /// `get` of a provider ID.
    Get(String),
    /// `list`.
    List,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<Call>,
    instances: BTreeMap<String, Instance>,
    next_create_error: Option<Error>,
    allowed_create_calls: Option<usize>,
    create_calls: usize,
    unavailable: BTreeSet<OfferingRef>,
}

/// The fake provider; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct FakeCloud {
    catalog: Arc<Catalog>,
    inner: Mutex<Inner>,
}

// Compile-time proof that the fake implements the whole contract.
const _: fn() = || {
    fn is_provider<T: CloudProvider>() {}
    is_provider::<FakeCloud>();
};

impl FakeCloud {
    /// A fake launching from `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        FakeCloud {
            catalog,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock only happens in a failing test; keep going.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Makes the next `create` fail with `error` (once).
    pub fn fail_next_create(&self, error: Error) {
        self.lock().next_create_error = Some(error);
    }

    /// Allows only `n` more successful-or-not `create` calls; later ones fail with
    /// [`Error::CallLimit`].
    pub fn allow_create_calls(&self, n: usize) {
        let mut inner = self.lock();
        inner.allowed_create_calls = Some(inner.create_calls + n);
    }

    /// Marks an offering as out of capacity.
    pub fn insufficient_capacity(&self, offering: OfferingRef) {
        self.lock().unavailable.insert(offering);
    }

    /// Live instances by provider ID.
    pub fn instances(&self) -> BTreeMap<String, Instance> {
        self.lock().instances.clone()
    }

    /// Forgets calls, instances and injected failures.
    pub fn reset(&self) {
        *self.lock() = Inner::default();
    }
}

impl CloudProvider for FakeCloud {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn create<'a>(&'a self, claim: &'a NodeClaim) -> BoxFuture<'a, Result<Instance, Error>> {
        Box::pin(async move {
            let name = claim.metadata.name.clone().unwrap_or_default();
            let mut inner = self.lock();
            inner.calls.push(Call::Create(name.clone()));
            inner.create_calls += 1;
            if let Some(limit) = inner.allowed_create_calls
                && inner.create_calls > limit
            {
                return Err(Error::CallLimit { limit });
            }
            if let Some(e) = inner.next_create_error.take() {
                return Err(e);
            }
            let provider_id = format!("fake://{name}");
            if let Some(existing) = inner.instances.get(&provider_id) {
                return Ok(existing.clone());
            }
            let (it, o) = choose(
                &self.catalog,
                claim,
                &claim.spec.node_class_ref.name,
                &inner.unavailable,
            )?;
            let instance = Instance {
                provider_id: provider_id.clone(),
                nodeclaim: name,
                instance_type: it.name().to_owned(),
                zone: o.zone.clone(),
                capacity_type: o.capacity_type.as_str().to_owned(),
                capacity: it.capacity().clone(),
                allocatable: it.allocatable().clone(),
                labels: instance_labels(it, o),
                created: Timestamp::now(),
            };
            inner.instances.insert(provider_id, instance.clone());
            Ok(instance)
        })
    }

    fn delete<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut inner = self.lock();
            inner.calls.push(Call::Delete(provider_id.to_owned()));
            inner.instances.remove(provider_id);
            Ok(())
        })
    }

    fn get<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<Instance, Error>> {
        Box::pin(async move {
            let mut inner = self.lock();
            inner.calls.push(Call::Get(provider_id.to_owned()));
            inner
                .instances
                .get(provider_id)
                .cloned()
                .ok_or_else(|| Error::NodeClaimNotFound {
                    provider_id: provider_id.to_owned(),
                })
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Instance>, Error>> {
        Box::pin(async move {
            let mut inner = self.lock();
            inner.calls.push(Call::List);
            Ok(inner.instances.values().cloned().collect())
        })
    }

    fn instance_types<'a>(
        &'a self,
        _node_class: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Catalog>, Error>> {
        Box::pin(async move { Ok(self.catalog.clone()) })
    }

    fn is_drifted<'a>(
        &'a self,
        _claim: &'a NodeClaim,
    ) -> BoxFuture<'a, Result<Option<DriftReason>, Error>> {
        Box::pin(async move { Ok(None) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_api::karpenter::v1::{NodeClaimSpec, Operator, Requirement};

    fn claim(name: &str, types: &[&str]) -> NodeClaim {
        let spec: NodeClaimSpec = serde_json::from_value(serde_json::json!({
            "requirements": [],
            "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"},
        }))
        .unwrap();
        let mut c = NodeClaim::new(name, spec);
        c.spec.requirements.push(Requirement {
            key: "node.kubernetes.io/instance-type".into(),
            operator: Operator::In,
            values: types.iter().map(|s| (*s).to_owned()).collect(),
            min_values: None,
        });
        c.spec.requirements.push(Requirement {
            key: "karpenter.sh/capacity-type".into(),
            operator: Operator::In,
            values: vec!["on-demand".into()],
            min_values: None,
        });
        c
    }

    #[tokio::test]
    async fn create_is_idempotent_by_claim_name_and_picks_the_cheapest_offering() {
        let cloud = FakeCloud::new(Arc::new(Catalog::kwok()));
        let c = claim("a", &["c-2x-amd64-linux", "c-1x-amd64-linux"]);
        let first = cloud.create(&c).await.unwrap();
        let again = cloud.create(&c).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(first.instance_type, "c-1x-amd64-linux");
        assert_eq!(first.capacity_type, "on-demand");
        assert_eq!(first.zone, "test-zone-a");
        assert_eq!(cloud.instances().len(), 1);
    }

    #[tokio::test]
    async fn one_shot_error_cap_and_reset() {
        let cloud = FakeCloud::new(Arc::new(Catalog::kwok()));
        cloud.fail_next_create(Error::CreateFailed {
            message: "boom".into(),
        });
        let c = claim("a", &["c-1x-amd64-linux"]);
        assert!(matches!(
            cloud.create(&c).await,
            Err(Error::CreateFailed { .. })
        ));
        assert!(cloud.create(&c).await.is_ok());
        cloud.allow_create_calls(0);
        assert!(matches!(
            cloud.create(&c).await,
            Err(Error::CallLimit { .. })
        ));
        assert_eq!(cloud.calls().len(), 3);
        cloud.reset();
        assert!(cloud.calls().is_empty());
        assert!(cloud.instances().is_empty());
    }

    #[tokio::test]
    async fn insufficient_capacity_names_every_refused_offering_and_delete_of_missing_is_ok() {
        let cloud = FakeCloud::new(Arc::new(Catalog::kwok()));
        for zone in ["test-zone-a", "test-zone-b", "test-zone-c", "test-zone-d"] {
            cloud.insufficient_capacity(OfferingRef {
                instance_type: "c-1x-amd64-linux".into(),
                zone: zone.into(),
                capacity_type: "on-demand".into(),
            });
        }
        let err = cloud
            .create(&claim("a", &["c-1x-amd64-linux"]))
            .await
            .unwrap_err();
        match err {
            Error::InsufficientCapacity { offerings } => assert_eq!(offerings.len(), 4),
            other => panic!("unexpected {other}"),
        }
        // Falls through to the next type when one is out of capacity.
        let ok = cloud
            .create(&claim("b", &["c-1x-amd64-linux", "c-2x-amd64-linux"]))
            .await
            .unwrap();
        assert_eq!(ok.instance_type, "c-2x-amd64-linux");
        cloud.delete("fake://nope").await.unwrap();
        assert!(cloud.get("fake://nope").await.unwrap_err().is_not_found());
    }
}
