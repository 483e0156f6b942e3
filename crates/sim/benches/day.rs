//! A simulated day: a queue whose arrivals swing between ~50 and ~950 pods' worth of work every
//! 6 hours, 1,000 replicas at most, 1-core pods on 8-core KWOK nodes (about 100 at the peak).
//! Prints the wall time; never asserts it (STYLE.md §2 rule 18). Target: under 10 s.
//!
//! `cargo bench -p tandem-sim --bench day`

use std::sync::Arc;
use std::time::Instant;

use tandem_model::catalog::Catalog;
use tandem_model::requirements::Requirement;
use tandem_model::resources::{Bytes, MilliCpu, Resources};
use tandem_nodescaler::snapshot::{NodePool, PendingPod};
use tandem_podscaler::TimeMs;
use tandem_podscaler::activation::ActivationConfig;
use tandem_podscaler::decision::{ScaledObjectConfig, TriggerConfig, TriggerKind};
use tandem_podscaler::fallback::TargetType;
use tandem_sim::Simulation;
use tandem_sim::input::{PoolInput, ScalerInput, SimInput, SourceInput, SourceKind, WorkloadInput};
use tandem_sim::pattern::{Millis, Pattern, Sine};

/// The allocator `tandem simulate` runs with, so the figure is the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn day() -> SimInput {
    let mut input = SimInput::new("bench: a day of churn", 1, 86_400_000);
    input
        .catalogs
        .insert("default".into(), Arc::new(Catalog::kwok()));
    input.pools.push(PoolInput {
        pool: NodePool::new("default", "default")
            .require(Requirement::in_values(
                "karpenter.kwok.sh/instance-size",
                ["8"],
            ))
            .require(Requirement::in_values("kubernetes.io/os", ["linux"])),
        consolidate_after_ms: Some(60_000),
        budgets: Vec::new(),
    });
    let template = PendingPod::new(
        "bench",
        "worker",
        Resources::cpu_memory(MilliCpu(1000), Bytes::from_gib(1)),
    )
    .label("app", "worker");
    input.workloads.push(WorkloadInput {
        key: "bench/worker".into(),
        replicas: 0,
        template,
        image: "worker:1".into(),
    });
    input.sources.push(SourceInput {
        name: "jobs".into(),
        kind: SourceKind::Queue {
            arrivals: Pattern::Sine(Sine {
                mean: 500.0,
                amplitude: 450.0,
                period: Millis(6 * 3_600_000),
                phase: Millis(0),
            }),
            per_pod_rate: 1.0,
            consumer: 0,
            initial: 0.0,
        },
    });
    input.scalers.push(ScalerInput {
        key: "bench/worker".into(),
        target: 0,
        polling_interval_ms: 30_000,
        config: ScaledObjectConfig {
            activation: ActivationConfig {
                max_replicas: 1000,
                ..ActivationConfig::default()
            },
            triggers: vec![TriggerConfig {
                metric_name: "s0-aws-sqs-jobs".into(),
                name: None,
                kind: TriggerKind::External {
                    target: 10.0,
                    target_type: TargetType::AverageValue,
                    activation_threshold: 0.0,
                },
            }],
            fallback: None,
            behavior: None,
            modifiers: None,
            annotations: Default::default(),
            created_at: TimeMs(0),
        },
        sources: vec![Some(0)],
    });
    input
}

fn main() {
    let input = day();
    #[allow(clippy::disallowed_methods)] // the bench measures wall time; the simulation never does
    let start = Instant::now();
    let mut sim = Simulation::new(input);
    let report = sim.run();
    let wall = start.elapsed();
    println!(
        "simulated 24 h: {:.2} s wall; peak {} pods, {} nodes; {} launches, {} consolidations, {} provisioning passes, ${:.2}",
        wall.as_secs_f64(),
        report.peak_pods,
        report.peak_nodes,
        report.launches,
        report.consolidations,
        report.provisioning_passes,
        report.cost_usd
    );
}
