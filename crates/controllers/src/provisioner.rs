//! The provisioner's pure half: a NodeClaim from a planned launch and its NodePool, the
//! NodePool hash, and the Event texts. The driver in `lib.rs` batches, calls
//! `nodescaler::plan` and executes what this builds.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;
use tandem_api::karpenter::v1::{NodeClaimResources, NodeClaimSpec};
use tandem_api::karpenter::{NodeClaim, NodePool};
use tandem_nodescaler::provisioning::Launch;

pub use tandem_state::convert::{NODEPOOL_HASH, nodepool_hash};
/// NodeClaim annotation: version of the hash scheme (upstream `v3`).
pub const NODEPOOL_HASH_VERSION: &str = "karpenter.sh/nodepool-hash-version";

/// The NodeClaim a launch creates: owned by its NodePool, labelled with the pool, its template
/// labels and the single-valued requirements, requirements and requests from the plan.
pub fn nodeclaim_for(launch: &Launch, np: &NodePool) -> NodeClaim {
    let t = &np.spec.template;
    let mut labels: BTreeMap<String, String> = t.metadata.labels.clone();
    // Upstream labels a claim with one value of every requirement that is not a well-known
    // label (those the provider resolves at launch: zone, instance type, capacity type …), so a
    // custom label such as seed 002's `capacity-spread In [2,3,4,5]` lands on the node. Upstream
    // picks any value; the smallest keeps plans reproducible.
    let well_known = tandem_model::labels::LabelSet::all();
    for r in launch.requirements.iter() {
        let resolved_by_provider = r.values().len() > 1 && well_known.contains(r.key());
        if r.is_complement() || resolved_by_provider {
            continue;
        }
        if let Some(v) = r.values().first() {
            labels.insert(r.key().to_owned(), v.clone());
        }
    }
    labels.insert(
        tandem_model::labels::NODEPOOL.to_owned(),
        launch.nodepool.clone(),
    );
    let class = &t.spec.node_class_ref;
    labels.insert(
        format!("{}/{}", class.group, class.kind.to_lowercase()),
        class.name.clone(),
    );
    let mut annotations = t.metadata.annotations.clone();
    annotations.insert(NODEPOOL_HASH.to_owned(), nodepool_hash(np));
    annotations.insert(NODEPOOL_HASH_VERSION.to_owned(), "v3".to_owned());
    let requirements = launch
        .requirements
        .to_api()
        .into_iter()
        .filter_map(|r| serde_json::from_value(serde_json::to_value(r).ok()?).ok())
        .collect();
    let requests = launch
        .requests
        .to_quantities()
        .into_iter()
        .map(|(k, v)| (k, tandem_api::quantity::Quantity(v.to_string())))
        .collect();
    NodeClaim {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", launch.nodepool)),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "karpenter.sh/v1".into(),
                kind: "NodePool".into(),
                name: np.metadata.name.clone().unwrap_or_default(),
                uid: np.metadata.uid.clone().unwrap_or_default(),
                block_owner_deletion: Some(true),
                controller: None,
            }]),
            ..ObjectMeta::default()
        },
        spec: NodeClaimSpec {
            taints: t.spec.taints.clone(),
            startup_taints: t.spec.startup_taints.clone(),
            requirements,
            resources: NodeClaimResources { requests },
            node_class_ref: t.spec.node_class_ref.clone(),
            termination_grace_period: t.spec.termination_grace_period.clone(),
            expire_after: t.spec.expire_after.clone(),
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use tandem_model::catalog::Catalog;
    use tandem_nodescaler::snapshot::{NodePool as SnapPool, PendingPod, Snapshot, requests};

    #[test]
    fn claim_is_owned_labelled_hashed_and_carries_the_plan() {
        let np: NodePool = serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
            "metadata": {"name": "default", "uid": "np-uid"},
            "spec": {"template": {"metadata": {"labels": {"team": "a"}}, "spec": {
                "requirements": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}],
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "kc"}}}},
        }))
        .unwrap();
        let snap = Snapshot::new()
            .catalog("kc", Arc::new(Catalog::kwok()))
            .nodepool(SnapPool::new("default", "kc").label("team", "a"))
            .pod(PendingPod::new("ns", "p", requests(1000, 0)));
        let plan = tandem_nodescaler::plan(&snap, &tandem_nodescaler::Options::default());
        assert_eq!(plan.launches.len(), 1);
        let c = nodeclaim_for(&plan.launches[0], &np);
        let labels = c.metadata.labels.clone().unwrap();
        assert_eq!(labels["karpenter.sh/nodepool"], "default");
        assert_eq!(labels["team"], "a");
        assert_eq!(labels["karpenter.kwok.sh/kwoknodeclass"], "kc");
        assert_eq!(c.metadata.generate_name.as_deref(), Some("default-"));
        let owner = &c.metadata.owner_references.clone().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("NodePool", "np-uid")
        );
        let ann = c.metadata.annotations.clone().unwrap();
        assert_eq!(ann[NODEPOOL_HASH], nodepool_hash(&np));
        assert_eq!(ann[NODEPOOL_HASH_VERSION], "v3");
        assert!(
            c.spec
                .requirements
                .iter()
                .any(|r| r.key == "node.kubernetes.io/instance-type")
        );
        assert_eq!(c.spec.resources.requests["cpu"].0, "1");
        // The hash ignores requirements but not labels.
        let mut other = np.clone();
        other.spec.template.spec.requirements.clear();
        assert_eq!(nodepool_hash(&other), nodepool_hash(&np));
        other
            .spec
            .template
            .metadata
            .labels
            .insert("x".into(), "y".into());
        assert_ne!(nodepool_hash(&other), nodepool_hash(&np));
    }

    #[test]
    fn a_custom_label_with_several_values_gets_one_and_well_known_ones_wait_for_the_provider() {
        let np: NodePool = serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
            "metadata": {"name": "node-spot", "uid": "np-uid"},
            "spec": {"template": {"spec": {
                "requirements": [],
                "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "kc"}}}},
        }))
        .unwrap();
        use tandem_model::requirements::Requirement;
        let snap = Snapshot::new()
            .catalog("kc", Arc::new(Catalog::kwok()))
            .nodepool(
                SnapPool::new("node-spot", "kc")
                    .require(Requirement::in_values(
                        "capacity-spread",
                        ["3", "2", "5", "4"],
                    ))
                    .require(Requirement::in_values(
                        "topology.kubernetes.io/zone",
                        ["test-zone-a", "test-zone-b"],
                    )),
            )
            .pod(PendingPod::new("ns", "p", requests(1000, 0)));
        let plan = tandem_nodescaler::plan(&snap, &tandem_nodescaler::Options::default());
        let c = nodeclaim_for(&plan.launches[0], &np);
        let labels = c.metadata.labels.clone().unwrap();
        assert_eq!(labels.get("capacity-spread").map(String::as_str), Some("2"));
        assert!(
            !labels.contains_key("topology.kubernetes.io/zone"),
            "{labels:?}"
        );
    }
}
