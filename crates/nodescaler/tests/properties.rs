//! Property tests of the planner on random snapshots (KWOK catalog): no pod is ever placed
//! where a requirement, taint, resource, host port or anti-affinity forbids it; NodePool limits
//! are never exceeded; every pod gets exactly one outcome; the same input gives the same plan.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use tandem_model::catalog::Catalog;
use tandem_model::labels;
use tandem_model::pod::HostPort;
use tandem_model::requirements::Requirement;
use tandem_model::resources::Resources;
use tandem_model::taints::{Taint, TaintEffect, Toleration, tolerates_all};
use tandem_nodescaler::provisioning::{Packing, Plan};
use tandem_nodescaler::selector::{LabelSelector, Labels};
use tandem_nodescaler::snapshot::{
    BoundPod, ExistingNode, Limits, NodePool, PendingPod, Snapshot, requests,
};
use tandem_nodescaler::{Options, plan};

const ZONES: [&str; 4] = ["test-zone-a", "test-zone-b", "test-zone-c", "test-zone-d"];
const APPS: [&str; 3] = ["a", "b", "c"];

fn kwok() -> Arc<Catalog> {
    static C: OnceLock<Arc<Catalog>> = OnceLock::new();
    C.get_or_init(|| Arc::new(Catalog::kwok())).clone()
}

fn taint() -> Taint {
    Taint::new("team", "x", TaintEffect::NoSchedule)
}

#[derive(Debug, Clone)]
struct PoolSpec {
    arch: Option<&'static str>,
    zones: Option<Vec<usize>>,
    tainted: bool,
    cpu_limit: Option<i64>,
    weight: i32,
}

#[derive(Debug, Clone)]
struct PodSpec {
    cpu: i64,
    mem: i64,
    app: usize,
    zone: Option<usize>,
    arch: Option<&'static str>,
    tolerates: bool,
    anti_host: bool,
    anti_zone: bool,
    port: Option<u16>,
    spread_zone: bool,
}

#[derive(Debug, Clone)]
struct NodeSpec {
    zone: usize,
    cpu: i64,
    mem: i64,
    tainted: bool,
    bound: Vec<(usize, i64, Option<u16>)>,
}

fn arch() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![Just(None), Just(Some("amd64")), Just(Some("arm64"))]
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (
        arch(),
        proptest::option::of(proptest::collection::btree_set(0..4usize, 1..4)),
        any::<bool>(),
        proptest::option::of(2..40i64),
        0..3i32,
    )
        .prop_map(|(arch, zones, tainted, cpu_limit, weight)| PoolSpec {
            arch,
            zones: zones.map(|z| z.into_iter().collect()),
            tainted,
            cpu_limit,
            weight,
        })
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        (50..3000i64, 64..8192i64, 0..3usize),
        (proptest::option::of(0..4usize), arch(), any::<bool>()),
        (
            prop::bool::weighted(0.3),
            prop::bool::weighted(0.15),
            proptest::option::of(80..82u16),
            prop::bool::weighted(0.2),
        ),
    )
        .prop_map(
            |((cpu, mem, app), (zone, arch, tolerates), (anti_host, anti_zone, port, spread))| {
                PodSpec {
                    cpu,
                    mem,
                    app,
                    zone,
                    arch,
                    tolerates,
                    anti_host,
                    anti_zone,
                    port,
                    spread_zone: spread,
                }
            },
        )
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (
        0..4usize,
        1000..8000i64,
        1024..16384i64,
        prop::bool::weighted(0.3),
        proptest::collection::vec(
            (0..3usize, 50..1500i64, proptest::option::of(80..82u16)),
            0..3,
        ),
    )
        .prop_map(|(zone, cpu, mem, tainted, bound)| NodeSpec {
            zone,
            cpu,
            mem,
            tainted,
            bound,
        })
}

fn app_labels(app: usize) -> Labels {
    Labels::from([("app".to_owned(), APPS[app].to_owned())])
}

fn build(pools: &[PoolSpec], nodes: &[NodeSpec], pods: &[PodSpec]) -> Snapshot {
    let mut s = Snapshot::new().catalog("kwok", kwok());
    for (i, p) in pools.iter().enumerate() {
        let mut np = NodePool::new(&format!("pool-{i}"), "kwok")
            .weight(p.weight)
            .require(Requirement::in_values(labels::OS, ["linux"]));
        if let Some(a) = p.arch {
            np = np.require(Requirement::in_values(labels::ARCH, [a]));
        }
        if let Some(z) = &p.zones {
            np = np.require(Requirement::in_values(
                labels::ZONE,
                z.iter().map(|i| ZONES[*i]),
            ));
        }
        if p.tainted {
            np = np.taint(taint());
        }
        if let Some(c) = p.cpu_limit {
            np = np.limits(Limits::none().cpu_cores(c));
        }
        s = s.nodepool(np);
    }
    for (i, n) in nodes.iter().enumerate() {
        let mut node = ExistingNode::new(
            &format!("node-{i}"),
            Resources {
                pods: 110,
                ..requests(n.cpu, n.mem)
            },
        )
        .label(labels::ZONE, ZONES[n.zone])
        .label(labels::ARCH, "amd64");
        if n.tainted {
            node = node.taint(taint());
        }
        for (j, (app, cpu, port)) in n.bound.iter().enumerate() {
            let mut bp = BoundPod::new(
                "default",
                &format!("bound-{i}-{j}"),
                Arc::new(app_labels(*app)),
                requests(*cpu, 0),
            );
            if let Some(port) = port {
                bp.host_ports.push(HostPort {
                    ip: String::new(),
                    port: *port,
                    protocol: Default::default(),
                });
            }
            node = node.pod(bp);
        }
        s = s.node(node);
    }
    for (i, p) in pods.iter().enumerate() {
        let sel = LabelSelector::labels([("app", APPS[p.app])]);
        let mut pod = PendingPod::new("default", &format!("pod-{i}"), requests(p.cpu, p.mem))
            .label("app", APPS[p.app]);
        if let Some(z) = p.zone {
            pod = pod.node_selector(labels::ZONE, ZONES[z]);
        }
        if let Some(a) = p.arch {
            pod = pod.node_selector(labels::ARCH, a);
        }
        if p.tolerates {
            pod = pod.tolerate(Toleration::equal("team", "x", None));
        }
        if p.anti_host {
            pod = pod.anti_affinity(labels::HOSTNAME, sel.clone());
        }
        if p.anti_zone {
            pod = pod.anti_affinity(labels::ZONE, sel.clone());
        }
        if let Some(port) = p.port {
            pod = pod.host_port(port);
        }
        if p.spread_zone {
            pod = pod.spread(labels::ZONE, 1, sel);
        }
        s = s.pod(pod);
    }
    s
}

/// Where a placed pod ended: a node name or a launch index, and the zones it may be in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Host {
    Node(String),
    Launch(usize),
}

fn check(s: &Snapshot, p: &Plan) -> Result<(), TestCaseError> {
    let catalog = kwok();
    let pod_by_name: BTreeMap<&str, &PendingPod> =
        s.pods.iter().map(|p| (p.name.as_str(), p)).collect();
    // Every pod has exactly one outcome.
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &p.nominations {
        *outcomes.entry(&n.pod.name).or_default() += 1;
    }
    for l in &p.launches {
        for q in &l.pods {
            *outcomes.entry(&q.name).or_default() += 1;
        }
    }
    for u in &p.unschedulable {
        *outcomes.entry(&u.pod.name).or_default() += 1;
        prop_assert!(!u.to_string().is_empty());
    }
    prop_assert_eq!(outcomes.len(), s.pods.len());
    prop_assert!(outcomes.values().all(|c| *c == 1));

    // Where everyone is: hosts, zones, labels, ports.
    let mut members: BTreeMap<Host, Vec<(Labels, Vec<HostPort>, bool)>> = BTreeMap::new();
    let mut zones_of: BTreeMap<Host, BTreeSet<String>> = BTreeMap::new();
    for n in &s.nodes {
        let h = Host::Node(n.name.clone());
        zones_of.insert(
            h.clone(),
            n.labels.get(labels::ZONE).into_iter().cloned().collect(),
        );
        for b in &n.pods {
            members.entry(h.clone()).or_default().push((
                (*b.labels).clone(),
                b.host_ports.clone(),
                false,
            ));
        }
    }
    let mut placed: Vec<(&PendingPod, Host)> = Vec::new();
    for nom in &p.nominations {
        let pod = pod_by_name[nom.pod.name.as_str()];
        let node = s.nodes.iter().find(|n| n.name == nom.node).unwrap();
        prop_assert!(tolerates_all(&pod.tolerations, &node.taints).is_ok());
        for (k, v) in &pod.node_selector {
            prop_assert_eq!(node.labels.get(k), Some(v));
        }
        placed.push((pod, Host::Node(node.name.clone())));
    }
    for n in &s.nodes {
        let mut used = Resources::new();
        for b in &n.pods {
            used.add_assign(&b.requests);
        }
        let mut nominated = false;
        for nom in p.nominations.iter().filter(|x| x.node == n.name) {
            used.add_assign(
                &pod_by_name[nom.pod.name.as_str()]
                    .shape
                    .effective_requests(),
            );
            nominated = true;
        }
        // A node the generator over-committed already is fine as long as nothing joins it.
        prop_assert!(
            !nominated || used.fits(&n.allocatable),
            "node {} over-committed",
            n.name
        );
    }
    for (i, l) in p.launches.iter().enumerate() {
        let pool = s.nodepools.iter().find(|np| np.name == l.nodepool).unwrap();
        let zones: BTreeSet<String> = l
            .requirements
            .get(labels::ZONE)
            .map(|r| r.values().iter().cloned().collect())
            .unwrap_or_default();
        prop_assert!(!zones.is_empty());
        zones_of.insert(Host::Launch(i), zones);
        let mut sum = Resources::new();
        for q in &l.pods {
            let pod = pod_by_name[q.name.as_str()];
            prop_assert!(tolerates_all(&pod.tolerations, &pool.taints).is_ok());
            for (k, v) in &pod.node_selector {
                let r = l.requirements.get(k).unwrap();
                prop_assert!(!r.is_complement() && r.values().iter().all(|x| x == v));
            }
            sum.add_assign(&pod.shape.effective_requests());
            placed.push((pod, Host::Launch(i)));
        }
        prop_assert!(sum.fits(&l.requests));
        prop_assert!(!l.instance_types.is_empty());
        for o in &l.instance_types {
            let it = catalog.get(&o.name).unwrap();
            prop_assert!(
                l.requests.fits(it.allocatable()),
                "{} cannot hold the claim",
                o.name
            );
            prop_assert!(it.requirements().intersects(&l.requirements));
            prop_assert!(it.requirements().intersects(&pool.requirements));
        }
    }
    for (pod, h) in &placed {
        members.entry(h.clone()).or_default().push((
            (*pod.labels).clone(),
            pod.shape.host_ports(),
            true,
        ));
    }
    // Host ports of placed pods never collide on one host (the generator may give two bound
    // pods the same port; that is not the planner's doing).
    for (h, ms) in &members {
        let ports: Vec<(&HostPort, bool)> = ms
            .iter()
            .flat_map(|(_, p, pending)| p.iter().map(move |x| (x, *pending)))
            .collect();
        for (i, (a, pa)) in ports.iter().enumerate() {
            for (b, pb) in &ports[i + 1..] {
                prop_assert!(
                    !(*pa || *pb) || !a.conflicts(b),
                    "port {} twice on {:?}",
                    a,
                    h
                );
            }
        }
    }
    // Anti-affinity: no selected pod shares the host (hostname) or a possible zone (zone).
    for (pod, h) in &placed {
        for term in &pod.pod_anti_affinity {
            for (h2, ms) in &members {
                let same = if term.topology_key == labels::HOSTNAME {
                    h2 == h
                } else {
                    !zones_of[h2].is_disjoint(&zones_of[h])
                };
                if !same {
                    continue;
                }
                let selected = ms
                    .iter()
                    .filter(|(l, _, _)| term.selector.matches(l))
                    .count();
                let own = usize::from(h2 == h && term.selector.matches(&pod.labels));
                prop_assert!(
                    selected <= own,
                    "{} on {:?} shares {} with {} selected pods",
                    pod.name,
                    h,
                    term.topology_key,
                    selected
                );
            }
        }
    }
    // Limits: the largest option of every launch counts.
    for np in &s.nodepools {
        if let Some(limit) = np.limits.by_resource.get("cpu") {
            let reserved: i64 = p
                .launches
                .iter()
                .filter(|l| l.nodepool == np.name)
                .map(|l| {
                    l.instance_types
                        .iter()
                        .map(|o| catalog.get(&o.name).unwrap().capacity().cpu.0)
                        .max()
                        .unwrap_or(0)
                })
                .sum();
            prop_assert!(reserved <= *limit, "{}: {} > {}", np.name, reserved, limit);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn plans_never_break_a_constraint_and_are_deterministic(
        pools in proptest::collection::vec(pool_spec(), 0..3),
        nodes in proptest::collection::vec(node_spec(), 0..4),
        pods in proptest::collection::vec(pod_spec(), 1..24),
        fewest in any::<bool>(),
    ) {
        let s = build(&pools, &nodes, &pods);
        let options = Options {
            packing: if fewest { Packing::FewestPods } else { Packing::CheapestFit },
            ..Options::default()
        };
        let a = plan(&s, &options);
        check(&s, &a)?;
        let b = plan(&s, &options);
        prop_assert_eq!(a, b);
    }
}
