//! Scenarios from the seed articles (`examples/seeds/`), built in code from the manifests'
//! values, against the real AWS and Azure catalogs.

use std::sync::{Arc, OnceLock};

use tandem_model::allocatable::{BasisPoints, aws};
use tandem_model::catalog::Catalog;
use tandem_model::labels;
use tandem_model::requirements::{Operator, Requirement};
use tandem_model::resources::{Bytes, MilliCpu, Resources};
use tandem_model::taints::{Taint, TaintEffect, Toleration};
use tandem_nodescaler::lower_bound::cost_ratio;
use tandem_nodescaler::provisioning::Plan;
use tandem_nodescaler::snapshot::{DaemonSet, Limits, NodePool, PendingPod, Snapshot, requests};
use tandem_nodescaler::{Options, plan};

fn aws_catalog() -> Arc<Catalog> {
    static C: OnceLock<Arc<Catalog>> = OnceLock::new();
    C.get_or_init(|| Arc::new(Catalog::aws_us_east_1().unwrap()))
        .clone()
}

fn azure_catalog() -> Arc<Catalog> {
    static C: OnceLock<Arc<Catalog>> = OnceLock::new();
    C.get_or_init(|| Arc::new(Catalog::azure_eastus().unwrap()))
        .clone()
}

fn req(key: &str, op: Operator, values: &[&str]) -> Requirement {
    let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    Requirement::new(key, op, &values, None).unwrap()
}

/// Seed 004 `01-nodepool-default.yaml`.
fn seed_004_nodepool() -> NodePool {
    NodePool::new("default", "default")
        .weight(10)
        .require(req(labels::ARCH, Operator::In, &["amd64"]))
        .require(req(labels::OS, Operator::In, &["linux"]))
        .require(req(
            labels::CAPACITY_TYPE,
            Operator::In,
            &["spot", "on-demand", "reserved"],
        ))
        .require(req(
            labels::AWS_INSTANCE_CATEGORY,
            Operator::In,
            &["c", "m", "r"],
        ))
        .require(req(labels::AWS_INSTANCE_GENERATION, Operator::Gt, &["2"]))
        .limits(Limits::none().cpu_cores(64))
}

/// The cheapest price any instance type of `pool` that holds `need` is offered at: an oracle
/// computed without the planner.
fn cheapest_holding(catalog: &Catalog, pool: &NodePool, need: &Resources) -> i64 {
    let mut reqs = pool.requirements.clone();
    for (k, v) in &pool.labels {
        reqs.add(Requirement::in_values(k, [v.as_str()]));
    }
    catalog
        .types()
        .iter()
        .filter(|it| it.requirements().intersects(&reqs))
        .filter(|it| need.fits(it.allocatable()))
        .filter_map(|it| it.cheapest_offering(&reqs).map(|o| o.price.as_picos()))
        .min()
        .unwrap()
}

fn check_launch_invariants(plan: &Plan, catalog: &Catalog, pool: &NodePool) {
    for l in &plan.launches {
        assert!(!l.instance_types.is_empty());
        assert!(l.instance_types.len() <= 60);
        let prices: Vec<_> = l.instance_types.iter().map(|o| o.price).collect();
        assert!(
            prices.windows(2).all(|w| w[0] <= w[1]),
            "options sorted by price"
        );
        assert_eq!(l.price, prices[0]);
        for o in &l.instance_types {
            let it = catalog.get(&o.name).unwrap();
            assert!(
                it.requirements().intersects(&pool.requirements),
                "{}",
                o.name
            );
            assert!(
                l.requests.fits(it.allocatable()),
                "{} holds the claim",
                o.name
            );
            assert!(it.requirements().intersects(&l.requirements));
        }
        // The launch's requirements keep the NodePool's.
        for r in pool.requirements.iter() {
            let got = l.requirements.get(r.key()).unwrap();
            assert!(
                got.values().iter().all(|v| r.has(v)),
                "{} narrowed from {}",
                got,
                r
            );
        }
    }
}

fn inflate_like(n: usize, name: &str, cpu_milli: i64) -> Snapshot {
    Snapshot::new()
        .catalog("default", aws_catalog())
        .nodepool(seed_004_nodepool())
        .replicas(
            n,
            &PendingPod::new("default", name, requests(cpu_milli, 0)).label("app", name),
        )
}

#[test]
fn seed_000_inflate_5_cpus_cost_no_more_than_the_cheapest_node_for_all() {
    let snap = inflate_like(5, "inflate", 1000);
    let plan = plan(&snap, &Options::default());
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    assert_eq!(plan.placed(), 5);
    // Never dearer than the cheapest single node that holds all five (prices are linear within
    // a family, so two half-size nodes can tie with it).
    let all = Resources {
        pods: 5,
        ..requests(5000, 0)
    };
    let one_node = cheapest_holding(&aws_catalog(), &seed_004_nodepool(), &all);
    assert!(plan.cost().as_picos() <= one_node);
    for l in &plan.launches {
        let want = cheapest_holding(&aws_catalog(), &seed_004_nodepool(), &l.requests);
        assert_eq!(
            l.price.as_picos(),
            want,
            "each launch is on its cheapest holding type"
        );
        // limits.cpu 64: no option may be larger, so whichever is launched the pool stays
        // within.
        for o in &l.instance_types {
            let it = aws_catalog().get(&o.name).cloned().unwrap();
            assert!(it.capacity().cpu <= MilliCpu::from_cores(64), "{}", o.name);
        }
    }
    check_launch_invariants(&plan, &aws_catalog(), &seed_004_nodepool());
    assert!(cost_ratio(&plan, &snap) >= 1.0 - 1e-9);
}

#[test]
fn seed_004_ten_nginx_of_500m_cost_no_more_than_one_node_for_all() {
    let snap = inflate_like(10, "nginx", 500);
    let plan = plan(&snap, &Options::default());
    assert!(plan.unschedulable.is_empty());
    assert_eq!(plan.placed(), 10);
    let all = Resources {
        pods: 10,
        ..requests(5000, 0)
    };
    let one_node = cheapest_holding(&aws_catalog(), &seed_004_nodepool(), &all);
    assert!(plan.cost().as_picos() <= one_node);
    for l in &plan.launches {
        let want = cheapest_holding(&aws_catalog(), &seed_004_nodepool(), &l.requests);
        assert_eq!(l.price.as_picos(), want);
        let ct = l.requirements.get(labels::CAPACITY_TYPE).unwrap();
        assert!(ct.values().iter().all(|v| v == "spot" || v == "on-demand"));
    }
    check_launch_invariants(&plan, &aws_catalog(), &seed_004_nodepool());
}

#[test]
fn seed_004_cpu_limit_caps_what_one_plan_launches() {
    // 200 × 500m = 100 CPUs against limits.cpu 64: what launches stays within 64 cores of
    // capacity (largest option counted), and the rest is reported with the limit.
    let snap = inflate_like(200, "nginx", 500);
    let plan = plan(&snap, &Options::default());
    let mut reserved = 0;
    for l in &plan.launches {
        let max = l
            .instance_types
            .iter()
            .map(|o| aws_catalog().get(&o.name).unwrap().capacity().cpu.0)
            .max()
            .unwrap();
        reserved += max;
    }
    assert!(reserved <= 64_000, "reserved {reserved}m");
    assert!(!plan.unschedulable.is_empty());
    let msg = plan.unschedulable[0].to_string();
    assert!(
        msg.contains("incompatible with nodepool \"default\": limit on cpu"),
        "{msg}"
    );
}

/// Seed 002 `01-nodepool-node-spot.yaml`.
fn seed_002_nodepool() -> NodePool {
    NodePool::new("node-spot", "default")
        .label("intent", "apps")
        .require(req("capacity-spread", Operator::In, &["2", "3", "4", "5"]))
        .require(req(labels::ARCH, Operator::In, &["amd64"]))
        .require(req(labels::CAPACITY_TYPE, Operator::In, &["spot"]))
        .require(req(labels::OS, Operator::In, &["linux"]))
        .require(req(
            labels::AWS_INSTANCE_CATEGORY,
            Operator::In,
            &["c", "m", "r"],
        ))
        .require(req(labels::AWS_INSTANCE_GENERATION, Operator::Gt, &["2"]))
        .taint(Taint::new(
            "intent",
            "workload-split",
            TaintEffect::NoSchedule,
        ))
        .limits(Limits::none().cpu_cores(1000).memory(Bytes::from_gib(500)))
}

/// Seed 002 `04-deployment-sqs-consumer.yaml`'s pod template.
fn sqs_consumer() -> PendingPod {
    PendingPod::new("processing", "sqs-consumer", requests(256, 512))
        .label("app", "sqs-consumer")
        .node_selector("intent", "apps")
        .tolerate(Toleration::equal(
            "intent",
            "workload-split",
            Some(TaintEffect::NoSchedule),
        ))
}

#[test]
fn seed_002_spot_pool_takes_tolerating_consumers_with_capacity_spread() {
    let snap = Snapshot::new()
        .catalog("default", aws_catalog())
        .nodepool(seed_002_nodepool())
        .replicas(20, &sqs_consumer());
    let plan = plan(&snap, &Options::default());
    assert!(plan.unschedulable.is_empty(), "{:?}", plan.unschedulable);
    check_launch_invariants(&plan, &aws_catalog(), &seed_002_nodepool());
    for l in &plan.launches {
        let ct = l.requirements.get(labels::CAPACITY_TYPE).unwrap();
        assert_eq!(ct.values().iter().collect::<Vec<_>>(), ["spot"]);
        let spread = l.requirements.get("capacity-spread").unwrap();
        assert_eq!(spread.values().len(), 4);
        assert!(l.requirements.has("intent", "apps"));
    }
    assert_eq!(plan.placed(), 20);
}

#[test]
fn seed_002_pods_without_the_toleration_are_refused_with_the_reason() {
    let plain = PendingPod::new("processing", "no-toleration", requests(256, 512))
        .node_selector("intent", "apps");
    let huge = PendingPod::new("processing", "huge", requests(1_000_000, 1024));
    let snap = Snapshot::new()
        .catalog("default", aws_catalog())
        .nodepool(seed_002_nodepool())
        .pod(plain)
        .pod(huge);
    let plan = plan(&snap, &Options::default());
    assert!(plan.launches.is_empty());
    assert_eq!(plan.unschedulable.len(), 2);
    let by_name = |n: &str| {
        plan.unschedulable
            .iter()
            .find(|u| u.pod.name == n)
            .unwrap()
            .to_string()
    };
    assert_eq!(
        by_name("no-toleration"),
        "incompatible with nodepool \"node-spot\": did not tolerate intent=workload-split:NoSchedule"
    );
    assert_eq!(
        by_name("huge"),
        "incompatible with nodepool \"node-spot\": did not tolerate intent=workload-split:NoSchedule; no instance type has 1k cpu"
    );
}

/// Seed 003 `04-nodepool-arm-nodepool.yaml` plus a default pool without requirements.
fn seed_003(default_weight: i32) -> Snapshot {
    let arm = NodePool::new("arm-nodepool", "default")
        .weight(10)
        .require(req(labels::ARCH, Operator::In, &["arm64"]))
        .require(req(labels::OS, Operator::In, &["linux"]))
        .require(req(labels::CAPACITY_TYPE, Operator::In, &["on-demand"]))
        .require(req(labels::AZURE_SKU_FAMILY, Operator::In, &["D"]));
    let default = NodePool::new("default", "default")
        .weight(default_weight)
        .require(req(labels::OS, Operator::In, &["linux"]));
    Snapshot::new()
        .catalog("default", azure_catalog())
        .nodepool(default)
        .nodepool(arm)
}

#[test]
fn seed_003_arm_pool_with_weight_10_is_preferred_over_default() {
    let snap = seed_003(0).replicas(
        4,
        &PendingPod::new("default", "worker", requests(500, 1024)),
    );
    let plan = plan(&snap, &Options::default());
    assert!(plan.unschedulable.is_empty());
    assert_eq!(plan.launches.len(), 1);
    let l = &plan.launches[0];
    assert_eq!(l.nodepool, "arm-nodepool");
    assert_eq!(
        l.requirements
            .get(labels::ARCH)
            .unwrap()
            .values()
            .iter()
            .collect::<Vec<_>>(),
        ["arm64"]
    );
    for o in &l.instance_types {
        let it = azure_catalog().get(&o.name).cloned().unwrap();
        assert!(
            it.requirements().has(labels::AZURE_SKU_FAMILY, "D"),
            "{}",
            o.name
        );
        assert!(it.requirements().has(labels::ARCH, "arm64"), "{}", o.name);
    }
    // A pod that needs amd64 cannot use the arm pool and falls to the default one.
    let amd = seed_003(0).pod(
        PendingPod::new("default", "x86", requests(500, 1024)).node_selector(labels::ARCH, "amd64"),
    );
    let plan = tandem_nodescaler::plan(&amd, &Options::default());
    assert_eq!(plan.launches.len(), 1);
    assert_eq!(plan.launches[0].nodepool, "default");
    // With equal weights, upstream's tie-break (name descending) picks "default".
    let tie = seed_003(10).pod(PendingPod::new("default", "w", requests(500, 1024)));
    let plan = tandem_nodescaler::plan(&tie, &Options::default());
    assert_eq!(plan.launches[0].nodepool, "default");
}

/// Seed 001's Provisioner: t3.medium only.
fn seed_001_nodepool() -> NodePool {
    NodePool::new("default", "default")
        .require(req(labels::AWS_INSTANCE_CATEGORY, Operator::In, &["t"]))
        .require(req(labels::AWS_INSTANCE_CPU, Operator::In, &["2"]))
        .require(req(
            labels::AWS_INSTANCE_HYPERVISOR,
            Operator::In,
            &["nitro"],
        ))
        .require(req(labels::AWS_INSTANCE_GENERATION, Operator::Gt, &["2"]))
        .require(req(labels::AWS_INSTANCE_FAMILY, Operator::In, &["t3"]))
        .require(req(labels::AWS_INSTANCE_SIZE, Operator::In, &["medium"]))
}

/// t3.medium from the formulas (reference §8.2): 2 vCPU, 4096 MiB, 3 ENIs × 6 IPv4.
fn t3_medium_allocatable() -> (i64, i64, i64) {
    let pods = aws::eni_limited_pods(3, 6, 0);
    let cpu = 2000 - aws::kube_reserved_cpu(MilliCpu(2000)).0;
    let memory = aws::memory_capacity(4096, false, BasisPoints::DEFAULT_VM_MEMORY_OVERHEAD).0
        - aws::kube_reserved_memory(pods).0
        - Bytes::from_mib(100).0;
    (cpu, memory, pods)
}

#[test]
fn seed_001_hundred_pods_on_t3_medium_node_count_follows_max_pods_and_allocatable() {
    let (cpu, memory, max_pods) = t3_medium_allocatable();
    assert_eq!((cpu, max_pods), (1930, 17));
    let it = aws_catalog().get("t3.medium").cloned().unwrap();
    assert_eq!(it.allocatable().cpu.0, cpu);
    assert_eq!(it.allocatable().memory.0, memory);
    assert_eq!(it.allocatable().pods, max_pods);

    // Tiny pods: the 17-pod limit decides, ⌈100 / 17⌉ = 6 nodes.
    let tiny = Snapshot::new()
        .catalog("default", aws_catalog())
        .nodepool(seed_001_nodepool())
        .replicas(100, &PendingPod::new("default", "tiny", requests(10, 16)));
    let p = plan(&tiny, &Options::default());
    assert!(p.unschedulable.is_empty());
    assert_eq!(p.launches.len(), 100usize.div_ceil(max_pods as usize));
    assert!(
        p.launches
            .iter()
            .all(|l| l.instance_types.len() == 1 && l.instance_types[0].name == "t3.medium")
    );

    // 250m pods: CPU decides, ⌊1930 / 250⌋ = 7 per node, ⌈100 / 7⌉ = 15 nodes (the article's
    // "around 15 nodes").
    let per_node = (cpu / 250) as usize;
    let cpu_bound = Snapshot::new()
        .catalog("default", aws_catalog())
        .nodepool(seed_001_nodepool())
        .replicas(100, &PendingPod::new("default", "web", requests(250, 256)));
    let p = plan(&cpu_bound, &Options::default());
    assert_eq!(p.launches.len(), 100usize.div_ceil(per_node));
    assert_eq!(p.launches.len(), 15);

    // DaemonSets (aws-node, kube-proxy) take two pod slots and their CPU on every node:
    // ⌈100 / (17 − 2)⌉ = 7 nodes of tiny pods.
    let with_ds = tiny
        .daemonset(DaemonSet::new("kube-system", "aws-node", requests(25, 0)))
        .daemonset(DaemonSet::new(
            "kube-system",
            "kube-proxy",
            requests(100, 0),
        ));
    let p = plan(&with_ds, &Options::default());
    assert_eq!(p.launches.len(), 100usize.div_ceil(max_pods as usize - 2));
    for l in &p.launches {
        assert!(l.requests.pods <= max_pods);
        assert!(l.requests.cpu.0 >= 125);
    }
}

#[test]
fn plans_are_identical_for_the_same_snapshot() {
    let snap = inflate_like(30, "nginx", 700);
    let a = plan(&snap, &Options::default());
    let b = plan(&snap, &Options::default());
    assert_eq!(a, b);
}
