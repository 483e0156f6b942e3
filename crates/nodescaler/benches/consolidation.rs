//! Consolidation benchmark (DESIGN.md §5: "full pass over 1,000 nodes < 1 s"): clusters of 100,
//! 1,000 and 5,000 on-demand nodes on the AWS us-east-1 catalog, 20 pods each, node types drawn
//! among the three cheapest of a short list that hold their pods (so some capacity is wasted),
//! one NodePool restricted to on-demand with a 100% budget.
//!
//! For each size it prints, never asserts:
//! - the first pass (`disruption::decide`): time, simulations, the command's size and saving;
//! - passes repeated until no command is left or a pass cap (100; 20 at 5,000 nodes), each
//!   command applied (candidates removed, pods moved to the nominated nodes or to the
//!   replacements' cheapest option): passes, total time, nodes removed and launched, cost
//!   after — for our greedy multi-node search and for upstream's prefix binary search
//!   (`MultiNodeSearch::PrefixBinarySearch`);
//! - the cost a first-fit-decreasing reference reaches on the same cluster (least-utilized node
//!   first, its pods largest first into the fullest nodes that stay; resources only).
//!
//! ```text
//! cargo bench -p tandem-nodescaler --bench consolidation
//! cargo bench -p tandem-nodescaler --bench consolidation -- 1000
//! ```
#![allow(clippy::disallowed_methods)] // a bench binary reads the clock; the library never does

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_model::catalog::{Catalog, UsdPerHour};
use tandem_model::labels;
use tandem_model::requirements::Requirement;
use tandem_nodescaler::disruption::candidates::node_price;
use tandem_nodescaler::disruption::{Disrupt, MultiNodeSearch, Options, decide};
use tandem_nodescaler::snapshot::{
    BoundPod, Budget, BudgetNodes, ExistingNode, NodePool, PendingPod, PodDisruption,
    PoolDisruption, Snapshot, requests,
};

const SEED: u64 = 42;
const PODS_PER_NODE: usize = 20;
const TYPES: &[&str] = &[
    "m5.large",
    "m5.xlarge",
    "m5.2xlarge",
    "m5.4xlarge",
    "c5.xlarge",
    "c5.2xlarge",
    "c5.4xlarge",
    "r5.large",
    "r5.xlarge",
    "r5.2xlarge",
];
const ZONES: &[&str] = &["us-east-1a", "us-east-1b", "us-east-1c"];

#[path = "../tests/support/benchmark_mix.rs"]
mod benchmark_mix;
use benchmark_mix::Rng;

fn bound(name: &str, cpu: i64, mem: i64) -> BoundPod {
    let mut req = requests(cpu, mem);
    req.pods = 1;
    let spec = PendingPod::new("default", name, requests(cpu, mem));
    BoundPod::new("default", name, Arc::default(), req).disruption(PodDisruption {
        spec: Some(Arc::new(spec)),
        ..PodDisruption::default()
    })
}

fn node_of(catalog: &Catalog, name: &str, it: &str, zone: &str) -> ExistingNode {
    let alloc = catalog
        .get(it)
        .map(|t| t.allocatable().clone())
        .unwrap_or_default();
    ExistingNode::new(name, alloc)
        .label(labels::NODEPOOL, "default")
        .label(labels::INSTANCE_TYPE, it)
        .label(labels::ZONE, zone)
        .label(labels::CAPACITY_TYPE, "on-demand")
}

fn cluster(catalog: &Arc<Catalog>, nodes: usize) -> Snapshot {
    let mut rng = Rng(SEED ^ nodes as u64);
    let pool = NodePool::new("default", "default")
        .require(Requirement::in_values(labels::CAPACITY_TYPE, ["on-demand"]));
    let mut s = Snapshot::new()
        .catalog("default", catalog.clone())
        .nodepool(pool)
        .pool_disruption(
            "default",
            PoolDisruption {
                budgets: vec![Budget::nodes(BudgetNodes::Percent(100))],
                expire_after_ms: None,
                ..PoolDisruption::default()
            },
        );
    for i in 0..nodes {
        let pods: Vec<(i64, i64)> = (0..PODS_PER_NODE)
            .map(|_| {
                (
                    rng.pick(&[50, 100, 250, 500]),
                    rng.pick(&[128, 256, 512, 1024]),
                )
            })
            .collect();
        let cpu: i64 = pods.iter().map(|p| p.0).sum();
        let mem: i64 = pods.iter().map(|p| p.1).sum::<i64>() << 20;
        let mut holders: Vec<(UsdPerHour, &str)> = TYPES
            .iter()
            .filter_map(|t| {
                let it = catalog.get(t)?;
                let a = it.allocatable();
                (a.cpu.0 >= cpu && a.memory.0 >= mem && a.pods >= PODS_PER_NODE as i64).then(|| {
                    (
                        it.offerings().first().map(|o| o.price).unwrap_or_default(),
                        *t,
                    )
                })
            })
            .collect();
        holders.sort();
        holders.truncate(3);
        let it = rng.pick(&holders).1;
        let name = format!("node-{i:05}");
        let mut n = node_of(catalog, &name, it, rng.pick(ZONES));
        for (j, (c, m)) in pods.into_iter().enumerate() {
            n = n.pod(bound(&format!("{name}-p{j}"), c, m));
        }
        s = s.node(n);
    }
    s
}

fn cost(s: &Snapshot) -> UsdPerHour {
    let catalog = s.catalogs.get("default").map(AsRef::as_ref);
    s.nodes
        .iter()
        .filter_map(|n| node_price(catalog, n))
        .fold(UsdPerHour::default(), UsdPerHour::saturating_add)
}

/// Executes a command on the snapshot, as the queue would once replacements are ready.
fn apply(s: &mut Snapshot, cmd: &Disrupt, pass: usize) {
    let gone: BTreeSet<&str> = cmd.candidates.iter().map(String::as_str).collect();
    let mut moving: BTreeMap<(String, String), BoundPod> = BTreeMap::new();
    s.nodes.retain(|n| {
        if gone.contains(n.name.as_str()) {
            for p in &n.pods {
                moving.insert((p.namespace.clone(), p.name.clone()), p.clone());
            }
            false
        } else {
            true
        }
    });
    let mut by_name: BTreeMap<String, usize> = s
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    for nom in &cmd.nominations {
        if let (Some(p), Some(i)) = (
            moving.remove(&(nom.pod.namespace.clone(), nom.pod.name.clone())),
            by_name.get(&nom.node),
        ) {
            s.nodes[*i].pods.push(p);
        }
    }
    let catalog = s.catalogs.get("default").cloned();
    for (k, l) in cmd.replacements.iter().enumerate() {
        let Some(catalog) = &catalog else { break };
        let Some(opt) = l.instance_types.first() else {
            continue;
        };
        let Some(offer) = catalog
            .get(&opt.name)
            .and_then(|it| it.cheapest_offering(&l.requirements))
        else {
            continue;
        };
        let name = format!("repl-{pass}-{k}");
        let mut n = node_of(catalog, &name, &opt.name, &offer.zone)
            .label(labels::CAPACITY_TYPE, offer.capacity_type.as_str());
        for p in &l.pods {
            if let Some(bp) = moving.remove(&(p.namespace.clone(), p.name.clone())) {
                n = n.pod(bp);
            }
        }
        by_name.insert(name, s.nodes.len());
        s.nodes.push(n);
    }
    assert!(moving.is_empty(), "pods lost by a command");
}

struct Run {
    first_removed: usize,
    first_launched: usize,
    first_cost: UsdPerHour,
    passes: usize,
    removed: usize,
    launched: usize,
    simulations: usize,
    time: Duration,
    first: Duration,
    cost: UsdPerHour,
}

fn run(mut s: Snapshot, options: &Options, max_passes: usize) -> Run {
    let before = s.nodes.len();
    let mut r = Run {
        first_removed: 0,
        first_launched: 0,
        first_cost: cost(&s),
        passes: 0,
        removed: 0,
        launched: 0,
        simulations: 0,
        time: Duration::ZERO,
        first: Duration::ZERO,
        cost: UsdPerHour::default(),
    };
    for pass in 0..max_passes {
        let t = Instant::now();
        let d = decide(&s, 0, options);
        let dt = t.elapsed();
        if pass == 0 {
            r.first = dt;
        }
        r.time += dt;
        r.simulations += d.simulations;
        let Some(cmd) = d.command else { break };
        r.passes += 1;
        r.launched += cmd.replacements.len();
        apply(&mut s, &cmd, pass);
        if pass == 0 {
            r.first_removed = cmd.candidates.len();
            r.first_launched = cmd.replacements.len();
            r.first_cost = cost(&s);
        }
    }
    r.removed = before + r.launched - s.nodes.len();
    r.cost = cost(&s);
    r
}

/// First-fit decreasing over free room: least-utilized node first, its pods largest first into
/// the fullest remaining nodes; a node goes when all its pods fit. Resources only.
fn ffd(s: &Snapshot) -> (usize, UsdPerHour, Duration) {
    let t = Instant::now();
    let catalog = s.catalogs.get("default").map(AsRef::as_ref);
    let mut free: Vec<[i64; 3]> = s
        .nodes
        .iter()
        .map(|n| {
            let used = n.pods.iter().fold([0, 0, 0], |a, p| {
                [
                    a[0] + p.requests.cpu.0,
                    a[1] + p.requests.memory.0,
                    a[2] + 1,
                ]
            });
            [
                n.allocatable.cpu.0 - used[0],
                n.allocatable.memory.0 - used[1],
                n.allocatable.pods - used[2],
            ]
        })
        .collect();
    let util = |i: usize| {
        let n = &s.nodes[i];
        1.0 - free[i][0] as f64 / n.allocatable.cpu.0.max(1) as f64
    };
    let mut order: Vec<usize> = (0..s.nodes.len()).collect();
    order.sort_by(|a, b| util(*a).total_cmp(&util(*b)).then(a.cmp(b)));
    let targets: Vec<usize> = order.iter().rev().copied().collect();
    let mut alive = vec![true; s.nodes.len()];
    let mut kept = vec![false; s.nodes.len()];
    for &i in &order {
        if kept[i] {
            continue;
        }
        let mut pods: Vec<[i64; 3]> = s.nodes[i]
            .pods
            .iter()
            .map(|p| [p.requests.cpu.0, p.requests.memory.0, 1])
            .collect();
        pods.sort_by(|a, b| b.cmp(a));
        let mut placed = Vec::new();
        let mut ok = true;
        for p in &pods {
            let Some(&t) = targets
                .iter()
                .find(|&&t| t != i && alive[t] && (0..3).all(|k| free[t][k] >= p[k]))
            else {
                ok = false;
                break;
            };
            for k in 0..3 {
                free[t][k] -= p[k];
            }
            placed.push((t, *p));
        }
        if ok {
            alive[i] = false;
            for (t, _) in placed {
                kept[t] = true;
            }
        } else {
            for (t, p) in placed {
                for k in 0..3 {
                    free[t][k] += p[k];
                }
            }
        }
    }
    let cost = s
        .nodes
        .iter()
        .zip(&alive)
        .filter(|(_, a)| **a)
        .filter_map(|(n, _)| node_price(catalog, n))
        .fold(UsdPerHour::default(), UsdPerHour::saturating_add);
    (alive.iter().filter(|a| !**a).count(), cost, t.elapsed())
}

fn main() {
    let sizes: Vec<usize> = {
        let args: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
        if args.is_empty() {
            vec![100, 1_000, 5_000]
        } else {
            args
        }
    };
    let catalog = Arc::new(Catalog::aws_us_east_1().unwrap_or_else(|e| panic!("catalog: {e}")));
    println!(
        "consolidation pass, AWS us-east-1 catalog, {PODS_PER_NODE} pods per node, budget 100%"
    );
    for n in sizes {
        let s = cluster(&catalog, n);
        let before = cost(&s);
        println!(
            "\n{n} nodes, {} pods, cost before ${before}/h",
            n * PODS_PER_NODE
        );
        let (ffd_removed, ffd_cost, ffd_time) = ffd(&s);
        println!(
            "  first-fit decreasing reference: {ffd_removed} nodes removed, cost ${ffd_cost}/h ({:.1}%), {:.1} ms",
            100.0 * ffd_cost.as_f64() / before.as_f64(),
            ffd_time.as_secs_f64() * 1e3
        );
        for (label, search) in [
            ("tandem greedy multi-node", MultiNodeSearch::Greedy),
            (
                "upstream prefix search  ",
                MultiNodeSearch::PrefixBinarySearch,
            ),
        ] {
            let options = Options {
                multi_node_search: search,
                ..Options::default()
            };
            let max_passes = if n >= 5_000 { 20 } else { 100 };
            let r = run(s.clone(), &options, max_passes);
            println!(
                "  {label}: first pass {:.1} ms: -{} +{} nodes, cost ${}/h ({:.1}%)",
                r.first.as_secs_f64() * 1e3,
                r.first_removed,
                r.first_launched,
                r.first_cost,
                100.0 * r.first_cost.as_f64() / before.as_f64(),
            );
            println!(
                "  {label}: {} passes (cap {max_passes}) in {:.2} s ({} simulations): {} nodes removed, {} launched, cost ${}/h ({:.1}%)",
                r.passes,
                r.time.as_secs_f64(),
                r.simulations,
                r.removed,
                r.launched,
                r.cost,
                100.0 * r.cost.as_f64() / before.as_f64(),
            );
        }
    }
}
