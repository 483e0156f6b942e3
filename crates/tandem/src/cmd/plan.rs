//! `tandem plan`: both layers' decision for one observed moment, as a command a person can run.
//!
//! The pod layer first: each ScaledObject's desired replicas from the metric values given on the
//! command line, with the arithmetic that produced them. Then the node layer: the workloads are
//! expanded to that many pods and handed to the same provisioning core the controllers call,
//! which says which NodeClaims it would launch and which pods it cannot place, and why.

use anyhow::Context as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use tandem_manifest::convert::{self, CatalogKind, Converted, ScaledObject};
use tandem_model::catalog::Catalog;
use tandem_nodescaler::lower_bound::{Cuts, lower_bound};
use tandem_nodescaler::snapshot::Snapshot;
use tandem_nodescaler::{Options, Plan, plan};
use tandem_podscaler::activation::Pause;
use tandem_podscaler::decision::{
    Decision, Observation, PodLayerState, TriggerArithmetic, TriggerObservation, decide,
};
use tandem_podscaler::fallback::fallback_replicas;

/// Show what both layers would decide now: desired replicas per ScaledObject (with the
/// arithmetic), then the NodeClaims the node layer would launch for the resulting pods (cheapest
/// instance type and the ordered options, capacity type, zone, price) and the pods it cannot
/// place, with the reason per NodePool.
///
/// Deployments, StatefulSets and Jobs are expanded to their replica count (pods named
/// `<workload>-<index>`); a ScaledObject's target gets the replicas the pod layer decides. The
/// observation is taken as the first one: no HPA stabilization window or rate limit applies, and
/// an inactive target goes to its idle or minimum count without waiting for the cooldown.
///
/// Exit code 0 when every pod is placed, 1 when some cannot be, 2 on unreadable or invalid input.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories of manifests (NodePools, NodeClasses, workloads, ScaledObjects).
    #[arg(required = true, value_name = "FILE|DIR|-")]
    pub inputs: Vec<String>,
    /// A trigger's current value: `<namespace>/<scaledobject>/<trigger-name-or-index>=<value>`.
    /// Repeatable. A trigger with no value reads 0.
    #[arg(long = "metric", value_name = "NS/SO/TRIGGER=VALUE")]
    pub metrics: Vec<String>,
    /// A workload's current replicas: `<namespace>/<workload>=<n>` (default: its spec.replicas).
    #[arg(long = "current-replicas", value_name = "NS/WORKLOAD=N")]
    pub current_replicas: Vec<String>,
    /// Mark a trigger's source as failing: `<namespace>/<scaledobject>/<trigger-name-or-index>`.
    /// Its fallback applies when the ScaledObject has one; otherwise the replicas are held.
    #[arg(long = "failing", value_name = "NS/SO/TRIGGER")]
    pub failing: Vec<String>,
    /// Use this catalog for every NodePool instead of the one its NodeClass implies.
    #[arg(long, value_enum)]
    pub catalog: Option<CatalogArg>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The catalogs `--catalog` can force.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CatalogArg {
    /// AWS us-east-1 instance types and on-demand prices.
    Aws,
    /// Azure eastus VM sizes and prices.
    Azure,
    /// The synthetic KWOK catalog of Karpenter's kwok provider.
    Kwok,
}

impl From<CatalogArg> for CatalogKind {
    fn from(c: CatalogArg) -> Self {
        match c {
            CatalogArg::Aws => CatalogKind::Aws,
            CatalogArg::Azure => CatalogKind::Azure,
            CatalogArg::Kwok => CatalogKind::Kwok,
        }
    }
}

/// One ScaledObject's outcome, for printing.
struct Scaling {
    so: ScaledObject,
    current: u32,
    desired: u32,
    active: bool,
    decision: Decision,
    why: String,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (files, _) = match super::valid_inputs(&args.inputs) {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let mut converted = match convert::convert(&files) {
        Ok(c) => c,
        Err(errs) => {
            for e in errs {
                eprintln!("{e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let metrics = parse_assignments(&args.metrics, 3, "--metric")?;
    // Observed replicas replace spec.replicas before anything reads them: the pod layer
    // starts from them, and workloads no ScaledObject targets keep them.
    for (key, n) in parse_assignments(&args.current_replicas, 2, "--current-replicas")? {
        let n: u32 = n
            .parse()
            .with_context(|| format!("--current-replicas {key}={n}: not a number"))?;
        if let Some(w) = converted
            .workloads
            .iter_mut()
            .find(|w| format!("{}/{}", w.namespace, w.name) == key)
        {
            w.replicas = n;
        }
    }
    let failing: Vec<Vec<String>> = args
        .failing
        .iter()
        .map(|s| s.split('/').map(str::to_string).collect())
        .collect();
    for f in &failing {
        anyhow::ensure!(
            f.len() == 3,
            "--failing {:?}: expected <namespace>/<scaledobject>/<trigger>",
            f.join("/")
        );
    }

    let mut scalings = Vec::new();
    for so in converted.scaled_objects.clone() {
        let s = scale(&so, &converted, &metrics, &failing)?;
        if let Some(w) = converted
            .workloads
            .iter_mut()
            .find(|w| w.namespace == so.namespace && w.name == so.target_name)
        {
            w.replicas = s.desired;
        }
        scalings.push(s);
    }
    let (snapshot, catalog_notes) = snapshot(&converted, args.catalog.map(Into::into))?;
    let result = plan(&snapshot, &Options::default());
    let bound = lower_bound(&result, &snapshot, Cuts::ResourcesAndNodes)
        .ok()
        .map(|b| b.usd_per_hour);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&scalings, &result, &snapshot, bound))?
        );
    } else {
        print_text(&scalings, &result, &snapshot, bound, &catalog_notes);
    }
    Ok(ExitCode::from(if result.unschedulable.is_empty() {
        0
    } else {
        1
    }))
}

/// Splits `a/b[/c]=value` assignments into (`a/b[/c]`, value).
fn parse_assignments(
    items: &[String],
    parts: usize,
    flag: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let (key, value) = item
            .split_once('=')
            .with_context(|| format!("{flag} {item:?}: expected <key>=<value>"))?;
        anyhow::ensure!(
            key.split('/').count() == parts,
            "{flag} {item:?}: the key needs {parts} parts separated by '/'"
        );
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

/// Whether `sel` (a trigger name or index) names trigger `i` of `so`.
fn names_trigger(so: &ScaledObject, i: usize, sel: &str) -> bool {
    sel == i.to_string() || so.triggers[i].name.as_deref() == Some(sel)
}

/// The pod layer's answer for one ScaledObject.
fn scale(
    so: &ScaledObject,
    converted: &Converted,
    metrics: &BTreeMap<String, String>,
    failing: &[Vec<String>],
) -> anyhow::Result<Scaling> {
    let prefix = format!("{}/{}", so.namespace, so.name);
    // The target's replicas as observed (`--current-replicas`, already applied) or written.
    let cur = converted
        .workloads
        .iter()
        .find(|w| w.namespace == so.namespace && w.name == so.target_name)
        .map(|w| w.replicas)
        .unwrap_or(0);
    let mut observations = Vec::new();
    let mut any_failing = false;
    for i in 0..so.triggers.len() {
        let is_failing = failing
            .iter()
            .any(|f| format!("{}/{}", f[0], f[1]) == prefix && names_trigger(so, i, &f[2]));
        any_failing |= is_failing;
        let given = metrics.iter().find(|(k, _)| {
            let parts: Vec<&str> = k.split('/').collect();
            format!("{}/{}", parts[0], parts[1]) == prefix && names_trigger(so, i, parts[2])
        });
        let value = match given {
            Some((k, v)) => v
                .trim()
                .parse::<f64>()
                .with_context(|| format!("--metric {k}={v}: not a number"))?,
            None => 0.0,
        };
        observations.push(if is_failing {
            TriggerObservation {
                value: None,
                is_active: None,
            }
        } else {
            TriggerObservation::value(value)
        });
    }
    // The HPA arithmetic needs a running target; the activation step is explained separately.
    let obs = Observation {
        current_replicas: cur.max(1),
        status_replicas: cur.max(1),
        ready_pods: cur.max(1),
        triggers: observations,
    };
    let (_, decision) = decide(
        &so.config,
        &obs,
        &PodLayerState::default(),
        so.config.created_at,
    );
    let act = &so.config.activation;
    let implied = decision
        .composite
        .as_ref()
        .map(|c| c.replicas.unwrap_or(0))
        .unwrap_or_else(|| {
            decision
                .triggers
                .iter()
                .filter_map(|t| t.replicas)
                .max()
                .unwrap_or(0)
        });
    let (desired, why) = match so.config.annotations.pause {
        Pause::Replicas(n) => (
            n,
            format!("paused at {n} replicas (autoscaling.keda.sh/paused-replicas)"),
        ),
        Pause::Frozen => (
            cur,
            "paused (autoscaling.keda.sh/paused): replicas held".to_string(),
        ),
        Pause::None if any_failing => match &so.config.fallback {
            Some(fb) => {
                let n = fallback_replicas(fb, cur);
                (
                    n,
                    format!("a trigger is failing: fallback gives {n} replicas"),
                )
            }
            None => (
                cur,
                "a trigger is failing and there is no fallback: replicas held".to_string(),
            ),
        },
        Pause::None if decision.active => {
            let floor = act.min_replicas.max(1);
            let n = implied.clamp(floor, act.max_replicas.max(floor));
            (
                n,
                format!(
                    "active: max over triggers {implied}, clamped to [{floor}, {}]",
                    act.max_replicas
                ),
            )
        }
        Pause::None => {
            let n = act.idle_replicas.unwrap_or(act.min_replicas);
            let which = if act.idle_replicas.is_some() {
                "idleReplicaCount"
            } else {
                "minReplicaCount"
            };
            (
                n,
                format!(
                    "inactive: no trigger above its activation threshold, {which} {n} (after the {} s cooldown)",
                    act.cooldown_secs
                ),
            )
        }
    };
    Ok(Scaling {
        so: so.clone(),
        current: cur,
        desired,
        active: decision.active,
        decision,
        why,
    })
}

/// Builds the node layer's snapshot: NodePools with their catalogs, and the pending pods.
fn snapshot(c: &Converted, force: Option<CatalogKind>) -> anyhow::Result<(Snapshot, Vec<String>)> {
    let mut snap = Snapshot::new();
    let mut notes = Vec::new();
    let mut catalogs: BTreeMap<&'static str, Arc<Catalog>> = BTreeMap::new();
    for np in &c.nodepools {
        let Some(kind) = force.or(np.catalog) else {
            notes.push(format!(
                "NodePool {}: NodeClass kind {} has no catalog; pass --catalog",
                np.pool.name, np.node_class_kind
            ));
            continue;
        };
        let catalog = match catalogs.get(kind.as_str()) {
            Some(c) => Arc::clone(c),
            None => {
                let cat = Arc::new(match kind {
                    CatalogKind::Aws => {
                        Catalog::aws_us_east_1().context("loading the AWS catalog")?
                    }
                    CatalogKind::Azure => {
                        Catalog::azure_eastus().context("loading the Azure catalog")?
                    }
                    CatalogKind::Kwok => Catalog::kwok(),
                });
                catalogs.insert(kind.as_str(), Arc::clone(&cat));
                cat
            }
        };
        // Keyed by kind and name: an EC2NodeClass and an AKSNodeClass may share a name.
        let mut pool = np.pool.clone();
        pool.node_class = format!("{}/{}", np.node_class_kind, pool.node_class);
        snap = snap.catalog(&pool.node_class, catalog).nodepool(pool);
    }
    for w in &c.workloads {
        snap = snap.replicas(w.replicas as usize, &w.template);
    }
    Ok((snap, notes))
}

fn offering_of(
    result_launch: &tandem_nodescaler::provisioning::Launch,
    snap: &Snapshot,
) -> (String, String) {
    let pool = snap
        .nodepools
        .iter()
        .find(|p| p.name == result_launch.nodepool);
    let catalog = pool.and_then(|p| snap.catalogs.get(&p.node_class));
    let first = result_launch.instance_types.first();
    let offering = catalog
        .zip(first)
        .and_then(|(c, it)| c.get(&it.name))
        .and_then(|it| it.cheapest_offering(&result_launch.requirements));
    match offering {
        Some(o) => (o.capacity_type.to_string(), o.zone.clone()),
        None => (String::new(), String::new()),
    }
}

fn arithmetic_json(t: &TriggerArithmetic) -> Value {
    json!({
        "name": t.metric_name,
        "value": t.value,
        "target": t.target,
        "replicas": t.replicas,
        "active": t.active,
    })
}

fn to_json(scalings: &[Scaling], p: &Plan, snap: &Snapshot, bound: Option<f64>) -> Value {
    let scaling: Vec<Value> = scalings
        .iter()
        .map(|s| {
            json!({
                "scaledObject": format!("{}/{}", s.so.namespace, s.so.name),
                "target": format!("{}/{}", s.so.namespace, s.so.target_name),
                "currentReplicas": s.current,
                "active": s.active,
                "desiredReplicas": s.desired,
                "reason": s.why,
                "metrics": s.decision.triggers.iter().map(arithmetic_json).collect::<Vec<_>>(),
                "formula": s.decision.composite.as_ref().map(arithmetic_json),
            })
        })
        .collect();
    let claims: Vec<Value> = p
        .launches
        .iter()
        .map(|l| {
            let (capacity_type, zone) = offering_of(l, snap);
            json!({
                "nodePool": l.nodepool,
                "instanceType": l.instance_types.first().map(|i| i.name.clone()),
                "instanceTypes": l.instance_types.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
                "capacityType": capacity_type,
                "zone": zone,
                "pricePerHour": l.price.as_f64(),
                "pods": l.pods.iter().map(|r| format!("{}/{}", r.namespace, r.name)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let unschedulable: Vec<Value> = p
        .unschedulable
        .iter()
        .map(|u| json!({"pod": format!("{}/{}", u.pod.namespace, u.pod.name), "reason": u.to_string()}))
        .collect();
    json!({
        "scaling": scaling,
        "nodeClaims": claims,
        "nominations": p.nominations.iter().map(|n| json!({"pod": format!("{}/{}", n.pod.namespace, n.pod.name), "node": n.node})).collect::<Vec<_>>(),
        "unschedulable": unschedulable,
        "totalPricePerHour": p.cost().as_f64(),
        "lowerBoundPricePerHour": bound,
    })
}

fn print_text(
    scalings: &[Scaling],
    p: &Plan,
    snap: &Snapshot,
    bound: Option<f64>,
    notes: &[String],
) {
    if !scalings.is_empty() {
        println!("pod layer (the observation is taken as the first one: no stabilization window)");
        for s in scalings {
            println!(
                "  ScaledObject {}/{} → {} {}/{}: {} → {} replicas",
                s.so.namespace,
                s.so.name,
                s.so.target_kind,
                s.so.namespace,
                s.so.target_name,
                s.current,
                s.desired
            );
            for t in &s.decision.triggers {
                let value = t
                    .value
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "failed".into());
                let replicas = t
                    .replicas
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "-".into());
                println!(
                    "    {:<28} value {value:<10} target {:<8} → {replicas} replicas{}",
                    t.metric_name,
                    t.target,
                    if t.active { " (active)" } else { "" }
                );
            }
            if let Some(c) = &s.decision.composite {
                println!(
                    "    formula {:<20} value {:?} target {} → {:?} replicas",
                    c.metric_name, c.value, c.target, c.replicas
                );
            }
            println!("    {}", s.why);
        }
        println!();
    }
    println!("node layer");
    if p.launches.is_empty() {
        println!("  no NodeClaim to launch");
    }
    for l in &p.launches {
        let (capacity_type, zone) = offering_of(l, snap);
        let options: Vec<&str> = l
            .instance_types
            .iter()
            .take(5)
            .map(|i| i.name.as_str())
            .collect();
        let more = l.instance_types.len().saturating_sub(options.len());
        println!(
            "  NodeClaim in {:<14} {:<16} {capacity_type:<9} {zone:<12} ${:.4}/h  {} pods",
            l.nodepool,
            l.instance_types
                .first()
                .map(|i| i.name.as_str())
                .unwrap_or("-"),
            l.price.as_f64(),
            l.pods.len()
        );
        println!(
            "    options: {}{}",
            options.join(", "),
            if more > 0 {
                format!(" (+{more} more)")
            } else {
                String::new()
            }
        );
    }
    if !p.nominations.is_empty() {
        println!(
            "  {} pods fit on existing or in-flight capacity",
            p.nominations.len()
        );
    }
    for u in &p.unschedulable {
        println!("  cannot place {}/{}: {u}", u.pod.namespace, u.pod.name);
    }
    for n in notes {
        println!("  note: {n}");
    }
    print!("  total ${:.4}/h", p.cost().as_f64());
    match bound {
        Some(b) if b > 0.0 => println!(
            "  (LP lower bound ${b:.4}/h, ratio {:.3})",
            p.cost().as_f64() / b
        ),
        _ => println!(),
    }
}
