//! Karpenter's scheduling benchmark (core `scheduling_benchmark_test.go`, DESIGN.md §5), run on
//! Tandem's planner: one NodePool without requirements, the 400 `fake-it-N` instance types,
//! pods in five equal groups (plain, zonal topology spread, hostname topology spread, zonal pod
//! self-affinity, hostname pod anti-affinity on `app: nginx`; the remainder plain), labels
//! `my-label` / `my-affininity` from a…g, CPU from {100, 250, 500, 1000, 1500}m and memory
//! from {100, 256, 512, 1024, 2048, 4096}Mi, drawn from a seeded generator.
//!
//! Prints pods/s, nodes launched, cost over the LP lower bound and peak RSS; asserts nothing.
//! Modes (arguments after `--`): `bench` (the benchmark catalog), `aws` (the same mix on the AWS
//! us-east-1 catalog), `memory` (a 5,000-node / 100,000-pod snapshot), `all` (default).
//!
//! ```text
//! cargo bench -p tandem-nodescaler --bench scheduling
//! cargo bench -p tandem-nodescaler --bench scheduling -- memory
//! ```
#![allow(clippy::disallowed_methods)] // a bench binary reads the clock; the library never does

use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_model::catalog::Catalog;
use tandem_model::labels;
use tandem_model::resources::{Bytes, MilliCpu, Resources};
use tandem_nodescaler::lower_bound::{Cuts, cost_ratio_with};
use tandem_nodescaler::provisioning::Packing;
use tandem_nodescaler::selector::Labels;
use tandem_nodescaler::snapshot::{BoundPod, ExistingNode, Snapshot, requests};
use tandem_nodescaler::{Options, Plan, plan};

#[path = "../tests/support/benchmark_mix.rs"]
mod benchmark_mix;
use benchmark_mix::{Rng, SEED, diverse_pods, snapshot};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs `plan` until at least `budget` has passed (and at least twice), returning the last plan
/// and the mean time per run.
fn timed(snap: &Snapshot, options: &Options, budget: Duration) -> (Plan, Duration) {
    let mut runs = 0u32;
    let start = Instant::now();
    let mut last;
    loop {
        last = plan(snap, options);
        runs += 1;
        if runs >= 2 && start.elapsed() >= budget {
            break;
        }
    }
    (last, start.elapsed() / runs)
}

fn run_catalog(title: &str, catalog: &Arc<Catalog>, batches: &[usize]) {
    println!(
        "\n## {title} ({} instance types), seed {SEED}",
        catalog.len()
    );
    println!(
        "{:>7} {:>10} {:>10} {:>7} {:>7} {:>10} {:>10} {:>10} {:>8} {:>9} | {:>7} {:>10}",
        "pods",
        "ms/plan",
        "pods/s",
        "nodes",
        "unsched",
        "cost/LP",
        "cost/LP+n",
        "cost/shape",
        "shape ms",
        "peak MiB",
        "fp nodes",
        "fp cost/LP"
    );
    for &count in batches {
        let mut rng = Rng(SEED);
        let snap = snapshot(catalog, diverse_pods(count, &mut rng));
        let budget = Duration::from_millis(if count >= 5000 { 1500 } else { 700 });
        let (p, per) = timed(&snap, &Options::default(), budget);
        let ratio = cost_ratio_with(&p, &snap, Cuts::Resources);
        let ratio_n = cost_ratio_with(&p, &snap, Cuts::ResourcesAndNodes);
        let shape_start = Instant::now();
        let ratio_s = cost_ratio_with(&p, &snap, Cuts::Shapes);
        let shape_ms = shape_start.elapsed().as_secs_f64() * 1e3;
        let fewest = Options {
            packing: Packing::FewestPods,
            ..Options::default()
        };
        let fp = plan(&snap, &fewest);
        let fp_ratio = cost_ratio_with(&fp, &snap, Cuts::Resources);
        println!(
            "{:>7} {:>10.2} {:>10.0} {:>7} {:>7} {:>10.4} {:>10.4} {:>10.4} {:>8.0} {:>9.1} | {:>7} {:>10.4}",
            count,
            per.as_secs_f64() * 1e3,
            count as f64 / per.as_secs_f64(),
            p.launches.len(),
            p.unschedulable.len(),
            ratio,
            ratio_n,
            ratio_s,
            shape_ms,
            mib(status_kib("VmHWM:")),
            fp.launches.len(),
            fp_ratio,
        );
    }
}

/// A snapshot of 5,000 nodes carrying 100,000 bound pods (20 each, labels shared per
/// deployment as the state crate would intern them), plus 1,000 pending pods.
fn memory_mode() {
    println!("\n## memory: 5,000 nodes / 100,000 pods of state");
    let before = status_kib("VmRSS:");
    let catalog = Arc::new(Catalog::benchmark());
    let deployments: Vec<Arc<Labels>> = (0..500)
        .map(|i| {
            Arc::new(Labels::from([
                ("app".to_owned(), format!("app-{i}")),
                (
                    "my-label".to_owned(),
                    ["a", "b", "c", "d", "e", "f", "g"][i % 7].to_owned(),
                ),
            ]))
        })
        .collect();
    let zones = ["test-zone-1", "test-zone-2", "test-zone-3"];
    let mut snap = snapshot(&catalog, Vec::new());
    let mut k = 0usize;
    for n in 0..5000 {
        let name = format!("node-{n:05}");
        let mut node = ExistingNode::new(
            &name,
            Resources {
                cpu: MilliCpu(31_900),
                memory: Bytes::from_gib(64),
                pods: 320,
                ..Resources::default()
            },
        )
        .label(labels::ZONE, zones[n % 3])
        .label(labels::NODEPOOL, "default")
        .label(labels::INSTANCE_TYPE, "fake-it-31");
        node.pods.reserve(20);
        for _ in 0..20 {
            let labels = deployments[k % deployments.len()].clone();
            node.pods.push(BoundPod::new(
                "default",
                &format!("pod-{k:06}"),
                labels,
                requests(1000, 2048),
            ));
            k += 1;
        }
        snap.nodes.push(node);
    }
    let built = status_kib("VmRSS:");
    let mut rng = Rng(SEED);
    snap.pods = diverse_pods(1000, &mut rng);
    let start = Instant::now();
    let p = plan(&snap, &Options::default());
    let took = start.elapsed();
    println!(
        "state: {:.1} MiB (RSS {:.1} → {:.1} MiB); plan over it for 1,000 pods: {:.1} ms, {} nominated, {} launches; peak RSS {:.1} MiB",
        mib(built.saturating_sub(before)),
        mib(before),
        mib(built),
        took.as_secs_f64() * 1e3,
        p.nominations.len(),
        p.launches.len(),
        mib(status_kib("VmHWM:")),
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |m: &str| args.is_empty() || args.iter().any(|a| a == m || a == "all");
    let batches = [1, 50, 100, 500, 1000, 2000, 5000, 10_000, 20_000];
    if args.iter().any(|a| a == "analyze") {
        // `-- analyze [pods]`: 5,000 unless a count follows.
        let count = args
            .iter()
            .find_map(|a| a.parse::<usize>().ok())
            .unwrap_or(5000);
        if args.iter().any(|a| a == "aws") {
            match Catalog::aws_us_east_1() {
                Ok(c) => launches(&Arc::new(c), count),
                Err(e) => println!("aws catalog: {e}"),
            }
        } else {
            analyze(count);
        }
        return;
    }
    if args.iter().any(|a| a == "profile-aws") {
        if let Ok(c) = Catalog::aws_us_east_1() {
            let mut rng = Rng(SEED);
            let snap = snapshot(&Arc::new(c), diverse_pods(5000, &mut rng));
            let p = plan(&snap, &Options::default());
            println!("{} launches", p.launches.len());
        }
        return;
    }
    if want("memory") {
        memory_mode();
    }
    if want("bench") {
        run_catalog(
            "Karpenter's benchmark catalog",
            &Arc::new(Catalog::benchmark()),
            &batches,
        );
    }
    if want("aws") {
        match Catalog::aws_us_east_1() {
            Ok(c) => run_catalog("AWS us-east-1", &Arc::new(c), &batches[..7]),
            Err(e) => println!("aws catalog: {e}"),
        }
    }
}

/// The launches of one plan (`-- analyze aws [pods]`): type, capacity type and zone, price,
/// pods and what they request against the type's allocatable, beside the bound.
fn launches(catalog: &Arc<Catalog>, count: usize) {
    let mut rng = Rng(SEED);
    let snap = snapshot(catalog, diverse_pods(count, &mut rng));
    let p = plan(&snap, &Options::default());
    for l in &p.launches {
        let first = &l.instance_types[0];
        let alloc = catalog.get(&first.name).map(|t| t.allocatable());
        println!(
            "{:>14} ${:.4}/h (first option ${:.4}/h) {} pods {:>3} cpu {:>6}m/{:>6}m mem {:>6}Mi/{:>6}Mi options {}",
            first.name,
            l.price.as_f64(),
            first.price.as_f64(),
            l.requirements,
            l.pods.len(),
            l.requests.cpu.0,
            alloc.map_or(0, |a| a.cpu.0),
            l.requests.memory.0 >> 20,
            alloc.map_or(0, |a| a.memory.0 >> 20),
            l.instance_types.len(),
        );
    }
    let bound = tandem_nodescaler::lower_bound::lower_bound(&p, &snap, Cuts::ResourcesAndNodes);
    let shaped = tandem_nodescaler::lower_bound::lower_bound(&p, &snap, Cuts::Shapes);
    println!(
        "{} launches, ${:.4}/h; bound {bound:?}; shape bound {shaped:?}",
        p.launches.len(),
        p.cost().as_f64()
    );
}

/// Where the cost above the bound goes (`-- analyze`): node sizes, room left unused in both
/// resources (underfilled) and in one only (imbalance), in units of the smallest type.
fn analyze(count: usize) {
    let catalog = Arc::new(Catalog::benchmark());
    let mut rng = Rng(SEED);
    let snap = snapshot(&catalog, diverse_pods(count, &mut rng));
    let p = plan(&snap, &Options::default());
    let (mut units, mut cpu_units, mut mem_units) = (0.0, 0.0, 0.0);
    let mut hist = std::collections::BTreeMap::<usize, usize>::new();
    let mut buckets = std::collections::BTreeMap::<usize, (f64, f64, f64)>::new();
    let (mut under, mut imbalance) = (0.0, 0.0);
    for l in &p.launches {
        let it = catalog.get(&l.instance_types[0].name).unwrap();
        let n = it.capacity().cpu.0 as f64 / 1000.0;
        units += n;
        cpu_units += l.requests.cpu.0 as f64 / 1000.0;
        mem_units += l.requests.memory.0 as f64 / (2.0 * 1024.0 * 1024.0 * 1024.0);
        *hist.entry(n as usize).or_default() += 1;
        let b = buckets
            .entry(if n < 4.0 {
                n as usize
            } else if n < 50.0 {
                10
            } else {
                100
            })
            .or_insert((0.0, 0.0, 0.0));
        b.0 += n;
        b.1 += l.requests.cpu.0 as f64 / 1000.0;
        b.2 += l.requests.memory.0 as f64 / (2.0 * 1024.0 * 1024.0 * 1024.0);
        let wc = (it.allocatable().cpu.0 - l.requests.cpu.0) as f64 / 1000.0;
        let wm = (it.allocatable().memory.0 - l.requests.memory.0) as f64 / (2u64 << 30) as f64;
        under += wc.min(wm);
        imbalance += (wc - wm).abs();
    }
    println!(
        "launches {} units {units:.0} cpu-used {cpu_units:.0} mem-used {mem_units:.0}; sizes {hist:?}",
        p.launches.len()
    );
    println!("  underfilled units {under:.0}, imbalance units {imbalance:.0}");
    for (k, (u, c, m)) in &buckets {
        println!("  bucket {k}: units {u:.0} cpu {c:.0} mem {m:.0}");
    }
}
