//! The simulator drives `nodescaler::disruption` as the controllers do: after a scale-in, empty
//! and underutilized nodes go (within budgets), no pod is lost and no instance leaks at any step,
//! and the same seed gives the same report.

use std::sync::Arc;

use tandem_model::catalog::Catalog;
use tandem_model::requirements::Requirement;
use tandem_model::resources::{Bytes, MilliCpu, Resources};
use tandem_nodescaler::snapshot::{NodePool, PendingPod};
use tandem_sim::Simulation;
use tandem_sim::input::{Budget, ManualScale, PoolInput, SimInput, WorkloadInput};

fn scale_in(seed: u64) -> SimInput {
    let mut input = SimInput::new("scale in", seed, 2 * 3_600_000);
    input
        .catalogs
        .insert("default".into(), Arc::new(Catalog::kwok()));
    input.pools.push(PoolInput {
        pool: NodePool::new("default", "default")
            .require(Requirement::in_values("kubernetes.io/os", ["linux"])),
        consolidate_after_ms: Some(60_000),
        budgets: vec![Budget::Percent(50)],
    });
    for (w, cpu) in [("web", 700), ("batch", 1500)] {
        input.workloads.push(WorkloadInput {
            key: format!("default/{w}"),
            replicas: 40,
            template: PendingPod::new(
                "default",
                w,
                Resources::cpu_memory(MilliCpu(cpu), Bytes::from_mib(512)),
            )
            .label("app", w),
            image: format!("{w}:1"),
        });
    }
    for workload in 0..2 {
        input.manual.push(ManualScale {
            at_ms: 30 * 60_000,
            workload,
            replicas: 7,
        });
    }
    input
}

#[test]
fn scale_in_consolidates_without_losing_pods_or_leaking_nodes() {
    let mut sim = Simulation::new(scale_in(7));
    let mut peak = 0;
    while sim.step() {
        if let Err(e) = sim.check_invariants() {
            panic!("at {} ms: {e}", sim.now().0);
        }
        peak = peak.max(sim.node_count());
    }
    let report = sim.run();
    assert!(report.consolidations > 0, "nothing was consolidated");
    assert!(
        sim.node_count() < peak,
        "{} nodes at the end, {peak} at the peak",
        sim.node_count()
    );
    assert_eq!(sim.pod_count(), 14);
}

#[test]
fn same_seed_same_report() {
    let a = serde_json::to_string(&Simulation::new(scale_in(3)).run()).unwrap();
    let b = serde_json::to_string(&Simulation::new(scale_in(3)).run()).unwrap();
    assert_eq!(a, b);
}
