//! The pod mix of Karpenter's scheduling benchmark (core `scheduling_benchmark_test.go`), shared
//! by the scheduling bench and the packing-quality test: one NodePool without requirements,
//! pods in five equal groups (plain, zonal topology spread, hostname topology spread, zonal pod
//! self-affinity, hostname pod anti-affinity on `app: nginx`; the remainder plain), labels
//! `my-label` / `my-affininity` from a…g, CPU from {100, 250, 500, 1000, 1500}m and memory from
//! {100, 256, 512, 1024, 2048, 4096}Mi, drawn from a seeded generator (SplitMix64, which the
//! consolidation bench draws from too).
#![allow(dead_code)] // each user takes what it needs

use std::sync::Arc;

use tandem_model::catalog::Catalog;
use tandem_model::labels;
use tandem_model::resources::{Bytes, Resources};
use tandem_nodescaler::selector::LabelSelector;
use tandem_nodescaler::snapshot::{Limits, NodePool, PendingPod, Snapshot, requests};

/// The benchmark's master seed (upstream uses 42 with Go's generator; ours is SplitMix64).
pub const SEED: u64 = 42;

/// SplitMix64: small, seeded, identical on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }

    fn label_value(&mut self) -> &'static str {
        self.pick(&["a", "b", "c", "d", "e", "f", "g"])
    }

    fn requests(&mut self) -> Resources {
        let cpu = self.pick(&[100, 250, 500, 1000, 1500]);
        let mem = self.pick(&[100, 256, 512, 1024, 2048, 4096]);
        requests(cpu, mem)
    }
}

/// Upstream's `makeDiversePods`.
pub fn diverse_pods(count: usize, rng: &mut Rng) -> Vec<PendingPod> {
    let n = count / 5;
    let mut pods = Vec::with_capacity(count);
    let push = |pods: &mut Vec<PendingPod>, p: PendingPod| {
        let i = pods.len();
        pods.push(p.uid(&format!("uid-{i:06}")).created(i as u64 + 1));
    };
    let name = |i: usize| format!("pod-{i}");
    let generic = |rng: &mut Rng, i: usize| {
        let label = rng.label_value();
        PendingPod::new("default", &name(i), rng.requests()).label("my-label", label)
    };
    for _ in 0..n {
        let p = generic(rng, pods.len());
        push(&mut pods, p);
    }
    for key in [labels::ZONE, labels::HOSTNAME] {
        for _ in 0..n {
            let label = rng.label_value();
            let selector = LabelSelector::labels([("my-label", rng.label_value())]);
            let p = PendingPod::new("default", &name(pods.len()), rng.requests())
                .label("my-label", label)
                .spread(key, 1, selector);
            push(&mut pods, p);
        }
    }
    for _ in 0..n {
        let value = rng.label_value();
        let p = PendingPod::new("default", &name(pods.len()), rng.requests())
            .label("my-affininity", value)
            .affinity(
                labels::ZONE,
                LabelSelector::labels([("my-affininity", value)]),
            );
        push(&mut pods, p);
    }
    for _ in 0..n {
        let p = PendingPod::new("default", &name(pods.len()), rng.requests())
            .label("app", "nginx")
            .anti_affinity(labels::HOSTNAME, LabelSelector::labels([("app", "nginx")]));
        push(&mut pods, p);
    }
    while pods.len() < count {
        let p = generic(rng, pods.len());
        push(&mut pods, p);
    }
    pods
}

pub fn snapshot(catalog: &Arc<Catalog>, pods: Vec<PendingPod>) -> Snapshot {
    let pool = NodePool::new("default", "default").limits(
        Limits::none()
            .cpu_cores(10_000_000)
            .memory(Bytes::from_gib(10_000_000)),
    );
    let mut s = Snapshot::new()
        .catalog("default", catalog.clone())
        .nodepool(pool);
    s.pods = pods;
    s
}
