//! Property tests of disruption on random clusters (AWS catalog, one on-demand pool): a
//! consolidation never increases cost; every candidate's reschedulable pods fit on the nodes
//! that stay (within their free room) or on the replacements; a command never takes more nodes
//! of a pool than its budget allows; the same input gives the same decision.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use tandem_model::catalog::Catalog;
use tandem_model::labels;
use tandem_model::requirements::Requirement;
use tandem_model::resources::Resources;
use tandem_nodescaler::disruption::{Budgets, Options, Reason, decide};
use tandem_nodescaler::snapshot::{
    BoundPod, Budget, BudgetNodes, ExistingNode, NodeDisruption, NodePool, PendingPod,
    PodDisruption, PoolDisruption, Snapshot, requests,
};

const TYPES: [&str; 5] = [
    "m5.large",
    "m5.xlarge",
    "m5.2xlarge",
    "c5.xlarge",
    "r5.large",
];

fn aws() -> Arc<Catalog> {
    static C: OnceLock<Arc<Catalog>> = OnceLock::new();
    C.get_or_init(|| Arc::new(Catalog::aws_us_east_1().unwrap()))
        .clone()
}

#[derive(Debug, Clone)]
struct NodeSpec {
    ty: usize,
    pods: Vec<(i64, i64)>,
    drifted: bool,
    idle_ms: i64,
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (
        0..TYPES.len(),
        prop::collection::vec(
            (
                prop::sample::select(vec![100i64, 250, 500, 1000]),
                prop::sample::select(vec![128i64, 512, 2048]),
            ),
            0..6,
        ),
        prop::bool::weighted(0.2),
        prop::sample::select(vec![0i64, 10_000, 60_000]),
    )
        .prop_map(|(ty, pods, drifted, idle_ms)| NodeSpec {
            ty,
            pods,
            drifted,
            idle_ms,
        })
}

fn budget() -> impl Strategy<Value = BudgetNodes> {
    prop_oneof![
        (0u32..4).prop_map(BudgetNodes::Count),
        prop::sample::select(vec![10u32, 50, 100]).prop_map(BudgetNodes::Percent),
    ]
}

fn build(nodes: &[NodeSpec], budget: BudgetNodes) -> Snapshot {
    let catalog = aws();
    let mut s = Snapshot::new()
        .catalog("default", catalog.clone())
        .nodepool(
            NodePool::new("default", "default")
                .require(Requirement::in_values(labels::CAPACITY_TYPE, ["on-demand"])),
        )
        .pool_disruption(
            "default",
            PoolDisruption {
                consolidate_after_ms: Some(30_000),
                budgets: vec![Budget::nodes(budget)],
                hash: Some("v2".to_owned()),
                ..PoolDisruption::default()
            },
        );
    for (i, spec) in nodes.iter().enumerate() {
        let ty = TYPES[spec.ty];
        let it = catalog.get(ty).unwrap();
        let name = format!("n{i}");
        let mut n = ExistingNode::new(&name, it.allocatable().clone())
            .label(labels::NODEPOOL, "default")
            .label(labels::INSTANCE_TYPE, ty)
            .label(labels::ZONE, "us-east-1a")
            .label(labels::CAPACITY_TYPE, "on-demand")
            .disruption(NodeDisruption {
                created_ms: Some(0),
                last_pod_event_ms: 60_000 - spec.idle_ms,
                nodepool_hash: Some(if spec.drifted { "v1" } else { "v2" }.to_owned()),
                ..NodeDisruption::default()
            });
        let mut used = Resources::new();
        for (j, (cpu, mem)) in spec.pods.iter().enumerate() {
            let req = requests(*cpu, *mem);
            // Keep the generated cluster valid: no node over its allocatable.
            if !used.saturating_add(&req).fits(it.allocatable()) {
                continue;
            }
            used.add_assign(&req);
            let pod = format!("{name}-p{j}");
            let spec = PendingPod::new("default", &pod, req.clone());
            n = n.pod(
                BoundPod::new("default", &pod, Arc::default(), req).disruption(PodDisruption {
                    spec: Some(Arc::new(spec)),
                    ..PodDisruption::default()
                }),
            );
        }
        s = s.node(n);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn commands_keep_pods_placed_budgets_and_cost(
        nodes in prop::collection::vec(node_spec(), 1..7),
        budget in budget(),
    ) {
        let s = build(&nodes, budget);
        let now = 60_000;
        let options = Options::default();
        let d = decide(&s, now, &options);
        prop_assert_eq!(&d, &decide(&s, now, &options), "same input, same decision");
        let Some(cmd) = d.command else { return Ok(()) };

        // Budgets are never exceeded (expiration ignores them, and cannot happen here).
        prop_assert_ne!(cmd.reason, Reason::Expired);
        let budgets = Budgets::compute(&s, now);
        let reason = cmd.reason.budget_reason().unwrap();
        prop_assert!(cmd.candidates.len() <= budgets.remaining("default", reason));

        // Consolidation never increases cost.
        if cmd.reason == Reason::Underutilized {
            prop_assert!(cmd.cost_after < cmd.cost_before, "{:?}", cmd);
            prop_assert!(cmd.replacements.len() <= 1);
        }
        if cmd.reason == Reason::Empty {
            prop_assert!(cmd.is_delete());
        }

        // Every reschedulable pod of every candidate lands somewhere that stays, within room.
        let gone: BTreeSet<&str> = cmd.candidates.iter().map(String::as_str).collect();
        let mut landed: BTreeMap<(String, String), String> = BTreeMap::new();
        for nom in &cmd.nominations {
            prop_assert!(!gone.contains(nom.node.as_str()), "nominated to a candidate");
            landed.insert((nom.pod.namespace.clone(), nom.pod.name.clone()), nom.node.clone());
        }
        for (k, l) in cmd.replacements.iter().enumerate() {
            for p in &l.pods {
                landed.insert((p.namespace.clone(), p.name.clone()), format!("replacement-{k}"));
            }
        }
        let mut extra: BTreeMap<&str, Resources> = BTreeMap::new();
        for n in s.nodes.iter().filter(|n| gone.contains(n.name.as_str())) {
            for p in &n.pods {
                let to = landed.get(&(p.namespace.clone(), p.name.clone()));
                prop_assert!(to.is_some(), "pod {}/{} of {} goes nowhere", p.namespace, p.name, n.name);
                if let Some(target) = s.nodes.iter().find(|t| Some(&t.name) == to) {
                    extra.entry(target.name.as_str()).or_default().add_assign(&p.requests);
                }
            }
        }
        for (name, add) in extra {
            let t = s.nodes.iter().find(|n| n.name == name).unwrap();
            let mut used = t.pods.iter().fold(Resources::new(), |a, p| a.saturating_add(&p.requests));
            used.add_assign(&add);
            prop_assert!(used.fits(&t.allocatable), "{} overcommitted", name);
        }
    }
}
