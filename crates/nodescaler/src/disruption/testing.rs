//! Fixtures for the disruption tests: a one-pool cluster on the AWS us-east-1 catalog.

use std::sync::{Arc, OnceLock};

use tandem_model::catalog::Catalog;
use tandem_model::labels;

use crate::snapshot::{
    BoundPod, ExistingNode, NodeDisruption, NodePool, PendingPod, PodDisruption, Snapshot, requests,
};

/// The AWS catalog, parsed once per test binary.
pub fn aws() -> Arc<Catalog> {
    static CATALOG: OnceLock<Arc<Catalog>> = OnceLock::new();
    CATALOG
        .get_or_init(|| Arc::new(Catalog::aws_us_east_1().unwrap()))
        .clone()
}

/// NodePool `default` on NodeClass `default` with the AWS catalog, upstream disruption defaults.
pub fn cluster() -> Snapshot {
    Snapshot::new()
        .catalog("default", aws())
        .nodepool(NodePool::new("default", "default"))
}

/// A Ready on-demand node of `instance_type` in us-east-1a, in pool `default`, created at 0.
pub fn node(name: &str, instance_type: &str) -> ExistingNode {
    let it = aws();
    let alloc = it.get(instance_type).unwrap().allocatable().clone();
    ExistingNode::new(name, alloc)
        .label(labels::NODEPOOL, "default")
        .label(labels::INSTANCE_TYPE, instance_type)
        .label(labels::ZONE, "us-east-1a")
        .label(labels::CAPACITY_TYPE, "on-demand")
        .disruption(NodeDisruption {
            created_ms: Some(0),
            node_class: Some("default".to_owned()),
            ..NodeDisruption::default()
        })
}

/// A workload pod requesting `cpu_milli` and 256 MiB, with its spec for re-simulation.
pub fn workload_pod(name: &str, cpu_milli: i64) -> BoundPod {
    let spec = PendingPod::new("default", name, requests(cpu_milli, 256));
    BoundPod::new("default", name, Arc::default(), requests(cpu_milli, 256)).disruption(
        PodDisruption {
            spec: Some(Arc::new(spec)),
            ..PodDisruption::default()
        },
    )
}
