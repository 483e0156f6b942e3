//! One test per constraint the planner honours, on the KWOK catalog (4 zones × spot/on-demand,
//! amd64/arm64, linux/windows).

use std::sync::{Arc, OnceLock};

use tandem_model::catalog::Catalog;
use tandem_model::labels;
use tandem_model::requirements::{Requirement, Requirements};
use tandem_model::resources::Resources;
use tandem_model::taints::{Taint, TaintEffect, Toleration};

use super::*;
use crate::selector::LabelSelector;
use crate::snapshot::{
    BoundPod, DaemonSet, ExistingNode, InFlightClaim, Limits, NodeInclusionPolicy, NodePool,
    NodeState, PendingPod, Snapshot, TopologySpreadConstraint, WhenUnsatisfiable, requests,
};

fn kwok() -> Arc<Catalog> {
    static C: OnceLock<Arc<Catalog>> = OnceLock::new();
    C.get_or_init(|| Arc::new(Catalog::kwok())).clone()
}

fn linux_pool() -> NodePool {
    NodePool::new("default", "kwok").require(Requirement::in_values(labels::OS, ["linux"]))
}

fn base() -> Snapshot {
    Snapshot::new()
        .catalog("kwok", kwok())
        .nodepool(linux_pool())
}

fn pod(name: &str, cpu: i64, mem: i64) -> PendingPod {
    PendingPod::new("default", name, requests(cpu, mem))
}

fn values(l: &Launch, key: &str) -> Vec<String> {
    l.requirements
        .get(key)
        .map(|r| r.values().iter().cloned().collect())
        .unwrap_or_default()
}

fn launch_of<'a>(plan: &'a Plan, pod: &str) -> &'a Launch {
    plan.launches
        .iter()
        .find(|l| l.pods.iter().any(|p| p.name == pod))
        .unwrap_or_else(|| panic!("{pod} not launched: {plan:?}"))
}

/// Allocatable of a node: CPU, memory and 110 pods.
fn alloc(cpu: i64, mem: i64) -> Resources {
    Resources {
        pods: 110,
        ..requests(cpu, mem)
    }
}

fn app(v: &str) -> LabelSelector {
    LabelSelector::labels([("app", v)])
}

#[test]
fn node_selector_narrows_the_launch_to_matching_instance_types() {
    let s = base().pod(pod("a", 500, 512).node_selector(labels::ARCH, "arm64"));
    let p = plan(&s, &Options::default());
    let l = launch_of(&p, "a");
    assert_eq!(values(l, labels::ARCH), ["arm64"]);
    for o in &l.instance_types {
        assert!(o.name.contains("arm64"), "{}", o.name);
    }
}

#[test]
fn required_node_affinity_terms_are_tried_in_order() {
    let nowhere = Requirements::from_iter([Requirement::in_values(labels::ZONE, ["nowhere"])]);
    let b = Requirements::from_iter([Requirement::in_values(labels::ZONE, ["test-zone-b"])]);
    let s = base().pod(pod("a", 500, 512).require(nowhere).require(b));
    let p = plan(&s, &Options::default());
    assert_eq!(values(launch_of(&p, "a"), labels::ZONE), ["test-zone-b"]);
    assert!(
        matches!(&p.events[0], Event::PreferenceRelaxed { relaxed, .. }
        if relaxed.starts_with("required node affinity"))
    );
}

#[test]
fn preferred_node_affinity_is_honoured_then_relaxed() {
    let c = Requirements::from_iter([Requirement::in_values(labels::ZONE, ["test-zone-c"])]);
    let s = base().pod(pod("a", 500, 512).prefer(10, c));
    let p = plan(&s, &Options::default());
    assert_eq!(values(launch_of(&p, "a"), labels::ZONE), ["test-zone-c"]);
    assert!(p.events.is_empty());

    let nowhere = Requirements::from_iter([Requirement::in_values(labels::ZONE, ["nowhere"])]);
    let s = base().pod(pod("b", 500, 512).prefer(10, nowhere));
    let p = plan(&s, &Options::default());
    assert_eq!(p.launches.len(), 1);
    assert!(
        matches!(&p.events[0], Event::PreferenceRelaxed { relaxed, .. }
        if relaxed == "preferred node affinity term")
    );
    let ignore = Options {
        preference_policy: PreferencePolicy::Ignore,
        ..Options::default()
    };
    assert!(plan(&s, &ignore).events.is_empty());
}

#[test]
fn hostname_anti_affinity_puts_each_pod_on_its_own_node() {
    let web = pod("web", 100, 128)
        .label("app", "web")
        .anti_affinity(labels::HOSTNAME, app("web"));
    let s = base().replicas(3, &web);
    let p = plan(&s, &Options::default());
    assert_eq!(p.launches.len(), 3);
    assert!(p.launches.iter().all(|l| l.pods.len() == 1));
}

#[test]
fn zone_anti_affinity_uses_each_zone_once_and_says_why_not_more() {
    let web = pod("web", 100, 128)
        .label("app", "web")
        .anti_affinity(labels::ZONE, app("web"));
    let s = base().replicas(5, &web);
    let p = plan(&s, &Options::default());
    assert_eq!(p.launches.len(), 4);
    let mut zones: Vec<String> = p
        .launches
        .iter()
        .flat_map(|l| values(l, labels::ZONE))
        .collect();
    zones.sort();
    zones.dedup();
    assert_eq!(zones.len(), 4, "{zones:?}");
    assert_eq!(p.unschedulable.len(), 1);
    assert!(
        p.unschedulable[0]
            .to_string()
            .contains("pod anti-affinity on topology.kubernetes.io/zone")
    );
}

#[test]
fn zone_affinity_follows_the_pod_it_selects() {
    let db = pod("db", 1000, 1024)
        .label("app", "db")
        .volume_zone("test-zone-c");
    let api = pod("api", 2000, 1024).affinity(labels::ZONE, app("db"));
    let s = base().pod(api).pod(db);
    let p = plan(&s, &Options::default());
    assert!(p.unschedulable.is_empty(), "{:?}", p.unschedulable);
    assert_eq!(values(launch_of(&p, "db"), labels::ZONE), ["test-zone-c"]);
    assert_eq!(values(launch_of(&p, "api"), labels::ZONE), ["test-zone-c"]);
}

#[test]
fn affinity_to_pods_that_do_not_exist_is_unschedulable() {
    let s = base().pod(pod("api", 100, 128).affinity(labels::HOSTNAME, app("missing")));
    let p = plan(&s, &Options::default());
    assert!(p.launches.is_empty());
    assert!(
        p.unschedulable[0]
            .to_string()
            .contains("pod affinity on kubernetes.io/hostname")
    );
}

#[test]
fn zone_spread_balances_within_max_skew() {
    let web = pod("web", 100, 128)
        .label("app", "web")
        .spread(labels::ZONE, 1, app("web"));
    let s = base().replicas(8, &web);
    let p = plan(&s, &Options::default());
    let mut per_zone = std::collections::BTreeMap::<String, usize>::new();
    for l in &p.launches {
        let z = values(l, labels::ZONE);
        assert_eq!(z.len(), 1, "a spread pod decides its claim's zone");
        *per_zone.entry(z[0].clone()).or_default() += l.pods.len();
    }
    assert_eq!(per_zone.values().copied().collect::<Vec<_>>(), [2, 2, 2, 2]);
}

#[test]
fn hostname_spread_needs_a_node_per_pod_with_max_skew_1() {
    let web = pod("web", 100, 128)
        .label("app", "web")
        .spread(labels::HOSTNAME, 1, app("web"));
    let p = plan(&base().replicas(4, &web), &Options::default());
    assert_eq!(p.launches.len(), 4);
}

#[test]
fn capacity_type_spread_uses_spot_and_on_demand() {
    let web = pod("web", 100, 128)
        .label("app", "web")
        .spread(labels::CAPACITY_TYPE, 1, app("web"));
    let p = plan(&base().replicas(4, &web), &Options::default());
    let mut cts: Vec<Vec<String>> = p
        .launches
        .iter()
        .map(|l| values(l, labels::CAPACITY_TYPE))
        .collect();
    cts.sort();
    cts.dedup();
    assert_eq!(cts, [vec!["on-demand".to_owned()], vec!["spot".to_owned()]]);
}

#[test]
fn min_domains_caps_pods_per_domain_until_enough_domains_exist() {
    let one_zone = linux_pool().require(Requirement::in_values(labels::ZONE, ["test-zone-a"]));
    let mut c = TopologySpreadConstraint::new(labels::ZONE, 1, app("web"));
    c.min_domains = Some(4);
    c.node_affinity_policy = NodeInclusionPolicy::Honor;
    let web = pod("web", 100, 128)
        .label("app", "web")
        .spread_constraint(c.clone());
    let s = Snapshot::new()
        .catalog("kwok", kwok())
        .nodepool(one_zone.clone())
        .replicas(3, &web);
    let p = plan(&s, &Options::default());
    assert_eq!(p.placed(), 1);
    assert_eq!(p.unschedulable.len(), 2);
    assert!(p.unschedulable[0].to_string().contains("topology spread"));

    // ScheduleAnyway: enforced first, then relaxed.
    c.when_unsatisfiable = WhenUnsatisfiable::ScheduleAnyway;
    let soft = pod("web", 100, 128)
        .label("app", "web")
        .spread_constraint(c);
    let s = Snapshot::new()
        .catalog("kwok", kwok())
        .nodepool(one_zone)
        .replicas(3, &soft);
    let p = plan(&s, &Options::default());
    assert_eq!(p.placed(), 3);
    assert!(
        p.events
            .iter()
            .any(|e| matches!(e, Event::PreferenceRelaxed { relaxed, .. }
        if relaxed.contains("ScheduleAnyway")))
    );
}

#[test]
fn pool_taints_must_be_tolerated_but_startup_taints_do_not_block() {
    let tainted = linux_pool()
        .taint(Taint::new("dedicated", "gpu", TaintEffect::NoSchedule))
        .startup_taint(Taint::new("init", "", TaintEffect::NoSchedule));
    let s = Snapshot::new()
        .catalog("kwok", kwok())
        .nodepool(tainted)
        .pod(pod("plain", 100, 128))
        .pod(pod("ok", 100, 128).tolerate(Toleration::exists("dedicated", None)));
    let p = plan(&s, &Options::default());
    assert_eq!(launch_of(&p, "ok").pods.len(), 1);
    assert_eq!(
        p.unschedulable[0].to_string(),
        "incompatible with nodepool \"default\": did not tolerate dedicated=gpu:NoSchedule"
    );
}

#[test]
fn host_ports_keep_pods_apart() {
    let node = ExistingNode::new("n1", alloc(4000, 8192))
        .label(labels::ZONE, "test-zone-a")
        .pod(BoundPod {
            host_ports: pod("x", 0, 0).host_port(80).shape.host_ports(),
            ..BoundPod::new("default", "x", Arc::default(), Resources::new())
        });
    let s = base()
        .node(node)
        .pod(pod("a", 100, 128).host_port(80))
        .pod(pod("b", 100, 128).host_port(80))
        .pod(pod("c", 100, 128).host_port(81));
    let p = plan(&s, &Options::default());
    assert_eq!(p.nominations.len(), 1);
    assert_eq!(p.nominations[0].pod.name, "c");
    assert_eq!(
        p.launches.len(),
        2,
        "two pods binding :80 need two new nodes"
    );
}

#[test]
fn volume_zones_pin_the_launch() {
    let s = base().pod(pod("a", 100, 128).volume_zone("test-zone-d"));
    let p = plan(&s, &Options::default());
    assert_eq!(values(launch_of(&p, "a"), labels::ZONE), ["test-zone-d"]);
}

#[test]
fn existing_capacity_is_used_first_and_deleting_nodes_never() {
    let full = ExistingNode::new("full", alloc(1000, 1024)).pod(BoundPod::new(
        "default",
        "x",
        Arc::default(),
        requests(900, 0),
    ));
    let gone = ExistingNode::new("gone", alloc(8000, 8192)).state(NodeState::Deleting);
    let room = ExistingNode::new("room", alloc(2000, 2048));
    let s = base()
        .node(full)
        .node(gone)
        .node(room)
        .pod(pod("a", 500, 512))
        .pod(pod("b", 1800, 512));
    let p = plan(&s, &Options::default());
    assert_eq!(p.nominations.len(), 1);
    assert_eq!(
        (
            p.nominations[0].pod.name.as_str(),
            p.nominations[0].node.as_str()
        ),
        ("b", "room")
    );
    assert_eq!(launch_of(&p, "a").pods.len(), 1);
}

#[test]
fn initializing_nodes_ignore_startup_and_not_ready_taints() {
    let pool = linux_pool().startup_taint(Taint::new("init", "", TaintEffect::NoSchedule));
    let node = ExistingNode::new("n", alloc(2000, 2048))
        .label(labels::NODEPOOL, "default")
        .taint(Taint::new("init", "", TaintEffect::NoSchedule))
        .taint(Taint::new(
            "node.kubernetes.io/not-ready",
            "",
            TaintEffect::NoSchedule,
        ))
        .state(NodeState::Initializing);
    let s = Snapshot::new()
        .catalog("kwok", kwok())
        .nodepool(pool)
        .node(node)
        .pod(pod("a", 100, 128));
    let p = plan(&s, &Options::default());
    assert_eq!(p.nominations.len(), 1);
}

#[test]
fn in_flight_claims_are_used_before_new_ones() {
    let claim = InFlightClaim {
        name: "claim-1".into(),
        nodepool: "default".into(),
        requirements: Requirements::from_iter([Requirement::in_values(
            labels::ZONE,
            ["test-zone-a"],
        )]),
        allocatable: alloc(1900, 4096),
        capacity: requests(2000, 4096),
        pods: Vec::new(),
    };
    let s = base()
        .in_flight(claim)
        .pod(pod("a", 1000, 512))
        .pod(pod("b", 1000, 512));
    let p = plan(&s, &Options::default());
    assert_eq!(p.nominations.len(), 1);
    assert_eq!(p.nominations[0].node, "claim-1");
    assert_eq!(p.launches.len(), 1);
}

#[test]
fn node_count_limit_is_never_exceeded() {
    let pool = linux_pool().limits(Limits::none().nodes(2));
    let web = pod("web", 100, 128)
        .label("app", "web")
        .anti_affinity(labels::HOSTNAME, app("web"));
    let s = Snapshot::new()
        .catalog("kwok", kwok())
        .nodepool(pool)
        .replicas(3, &web);
    let p = plan(&s, &Options::default());
    assert_eq!(p.launches.len(), 2);
    assert!(
        p.unschedulable[0].to_string().contains("limit on nodes"),
        "{}",
        p.unschedulable[0]
    );
}

#[test]
fn daemonset_overhead_lands_only_where_the_daemonset_runs() {
    let ds_arm = DaemonSet::new("kube-system", "arm-agent", requests(1000, 0))
        .node_selector(labels::ARCH, "arm64");
    let ds_tainted_only = DaemonSet::new("kube-system", "gpu-agent", requests(1000, 0))
        .node_selector("dedicated", "gpu");
    let s = base()
        .daemonset(ds_arm)
        .daemonset(ds_tainted_only)
        .pod(pod("x86", 500, 128).node_selector(labels::ARCH, "amd64"))
        .pod(pod("arm", 500, 128).node_selector(labels::ARCH, "arm64"));
    let p = plan(&s, &Options::default());
    assert_eq!(launch_of(&p, "x86").requests.cpu.0, 500);
    assert_eq!(launch_of(&p, "arm").requests.cpu.0, 1500);
}

#[test]
fn min_values_keeps_enough_distinct_values_or_refuses() {
    let pool = linux_pool()
        .require(Requirement::exists(labels::KWOK_INSTANCE_FAMILY).with_min_values(Some(3)));
    let s = Snapshot::new()
        .catalog("kwok", kwok())
        .nodepool(pool.clone())
        .pod(pod("a", 500, 512));
    let p = plan(&s, &Options::default());
    let l = launch_of(&p, "a");
    let families: std::collections::BTreeSet<&str> =
        l.instance_types.iter().map(|o| &o.name[..1]).collect();
    assert!(families.len() >= 3, "{families:?}");

    let s = Snapshot::new()
        .catalog("kwok", kwok())
        .nodepool(pool)
        .pod(pod("b", 500, 512).node_selector(labels::KWOK_INSTANCE_FAMILY, "c"));
    let p = plan(&s, &Options::default());
    assert!(p.launches.is_empty());
    assert!(
        p.unschedulable[0].to_string().contains("minValues"),
        "{}",
        p.unschedulable[0]
    );
}

#[test]
fn anti_affinity_of_bound_pods_keeps_selected_pods_away() {
    let guard = BoundPod {
        anti_affinity: vec![crate::snapshot::PodAffinityTerm::new(
            labels::HOSTNAME,
            app("web"),
        )],
        ..BoundPod::new("default", "guard", Arc::default(), requests(100, 0))
    };
    let node = ExistingNode::new("n", alloc(4000, 8192)).pod(guard);
    let s = base()
        .node(node)
        .pod(pod("web", 100, 128).label("app", "web"))
        .pod(pod("other", 100, 128));
    let p = plan(&s, &Options::default());
    assert_eq!(p.nominations.len(), 1);
    assert_eq!(p.nominations[0].pod.name, "other");
    assert_eq!(launch_of(&p, "web").pods.len(), 1);
}

#[test]
fn fewest_pods_packing_is_upstreams_rule_and_never_cheaper() {
    let mut s = base();
    for i in 0..40 {
        s = s.pod(pod(
            &format!("p{i}"),
            100 + (i % 7) * 150,
            128 + (i % 5) * 400,
        ));
    }
    let ours = plan(&s, &Options::default());
    let upstream = plan(
        &s,
        &Options {
            packing: Packing::FewestPods,
            ..Options::default()
        },
    );
    assert_eq!(ours.placed(), 40);
    assert_eq!(upstream.placed(), 40);
    assert!(ours.cost() <= upstream.cost());
}
