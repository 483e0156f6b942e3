//! Which NodePools a workload's pods can use, asked of the provisioning core itself, and the
//! three rules built on that: `no-matching-nodepool`, `unfittable-pod` and
//! `replicas-exceed-nodepool-limits`.
//!
//! One pod of the workload is planned against each NodePool alone, with its limits lifted (a
//! limit is a capacity question, judged separately): the core's reasons then say whether the
//! pool's labels, requirements and taints refuse the pod (it does not *match*) or only its
//! instance types are too small (it does not *fit*). The catalog is the one the pool's
//! NodeClass group selects, exactly as `tandem plan` uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use tandem_model::catalog::Catalog;
use tandem_model::resources::{Bytes, MilliCpu};
use tandem_nodescaler::provisioning::Reason;
use tandem_nodescaler::snapshot::{Limits, Snapshot};
use tandem_nodescaler::{Options, plan};

use super::{CheckFinding, Inputs, Located, Rule, Severity};
use crate::convert::{CatalogKind, NodePool, Workload};

/// How one NodePool answers one workload's pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolFit {
    /// The pod can run on a node of this pool.
    Fits,
    /// The pool's labels, requirements or taints refuse the pod.
    Mismatch {
        /// The reasons, as the core says them.
        reasons: Vec<String>,
        /// Only taints refuse it: a toleration would make it match.
        taints_only: bool,
    },
    /// The pool admits the pod, but none of its instance types can hold it.
    TooBig(Vec<String>),
    /// The pool's NodeClass has no catalog Tandem knows: nothing can be said.
    Unknown,
}

/// `fits[w][p]`: how NodePool `p` (input order) answers workload `w` (input order).
#[derive(Debug, Clone, Default)]
pub struct Fits(pub Vec<Vec<PoolFit>>);

impl Fits {
    /// The NodePools (indices) workload `w`'s pods can run on.
    pub fn landing(&self, w: usize) -> Vec<usize> {
        self.0
            .get(w)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .filter(|(_, f)| **f == PoolFit::Fits)
                    .map(|(i, _)| i)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True when every pool's answer for `w` is known (no unknown catalog), and there is a pool.
    fn judgeable(&self, w: usize) -> bool {
        self.0
            .get(w)
            .is_some_and(|row| !row.is_empty() && row.iter().all(|f| *f != PoolFit::Unknown))
    }
}

/// Plans one pod of every workload against every NodePool alone.
pub fn fits(inputs: &Inputs) -> Fits {
    let mut catalogs: BTreeMap<CatalogKind, Option<Arc<Catalog>>> = BTreeMap::new();
    let rows = inputs
        .workloads
        .iter()
        .map(|w| {
            inputs
                .nodepools
                .iter()
                .map(|p| {
                    let Some(kind) = p.value.catalog else {
                        return PoolFit::Unknown;
                    };
                    let catalog = catalogs.entry(kind).or_insert_with(|| load(kind));
                    match catalog {
                        Some(c) => pool_fit(&w.value, &p.value, Arc::clone(c)),
                        None => PoolFit::Unknown,
                    }
                })
                .collect()
        })
        .collect();
    Fits(rows)
}

/// The compiled-in catalog of a provider (the same ones `tandem plan` uses).
fn load(kind: CatalogKind) -> Option<Arc<Catalog>> {
    let catalog = match kind {
        CatalogKind::Aws => Catalog::aws_us_east_1().ok()?,
        CatalogKind::Azure => Catalog::azure_eastus().ok()?,
        CatalogKind::Kwok => Catalog::kwok(),
    };
    Some(Arc::new(catalog))
}

/// How `pool` answers one pod of `w`, with the pool's limits and usage lifted.
pub fn pool_fit(w: &Workload, pool: &NodePool, catalog: Arc<Catalog>) -> PoolFit {
    let mut p = pool.pool.clone();
    p.limits = Limits::none();
    p.node_class = format!("{}/{}", pool.node_class_kind, p.node_class);
    let snap = Snapshot::new()
        .catalog(&p.node_class, catalog)
        .nodepool(p)
        .pod(w.template.clone());
    let result = plan(&snap, &Options::default());
    let Some(u) = result.unschedulable.first() else {
        return PoolFit::Fits;
    };
    let reasons: Vec<&Reason> = u.by_nodepool.iter().flat_map(|r| &r.reasons).collect();
    let mismatch: Vec<String> = reasons
        .iter()
        .filter(|r| matches!(r, Reason::Taint(_) | Reason::Requirements(_)))
        .map(ToString::to_string)
        .collect();
    if !mismatch.is_empty() {
        let taints_only = !reasons.iter().any(|r| matches!(r, Reason::Requirements(_)));
        return PoolFit::Mismatch {
            reasons: mismatch,
            taints_only,
        };
    }
    if reasons.iter().any(|r| matches!(r, Reason::NoCatalog(_))) {
        return PoolFit::Unknown;
    }
    PoolFit::TooBig(reasons.iter().map(ToString::to_string).collect())
}

/// `no-matching-nodepool` (error): every NodePool of the input refuses the workload's pods by
/// labels, requirements or taints, so they stay Pending forever. Only judged when the input has
/// NodePools (a file of workloads alone says nothing about the cluster's pools).
pub fn no_matching_nodepool(inputs: &Inputs, fits: &Fits) -> Vec<CheckFinding> {
    let mut out = Vec::new();
    for (wi, w) in inputs.workloads.iter().enumerate() {
        if !fits.judgeable(wi) {
            continue;
        }
        let row = &fits.0[wi];
        if !row.iter().all(|f| matches!(f, PoolFit::Mismatch { .. })) {
            continue;
        }
        let mut why = Vec::new();
        let mut objects = vec![w.at("spec.template.spec")];
        let mut taint_only = Vec::new();
        for (pi, f) in row.iter().enumerate() {
            let p = &inputs.nodepools[pi];
            if let PoolFit::Mismatch {
                reasons,
                taints_only,
            } = f
            {
                why.push(format!("{}: {}", p.display(), reasons.join("; ")));
                if *taints_only {
                    taint_only.push(p.object.name.clone());
                }
            }
            objects.push(p.at("spec.template.spec"));
        }
        let fix = if taint_only.is_empty() {
            format!(
                "change {}'s nodeSelector/affinity (spec.template.spec) to labels a NodePool's \
                 template labels and requirements allow, or add a NodePool that allows them",
                w.display()
            )
        } else {
            format!(
                "{} matches NodePool {} except for its taints: add a toleration for them to \
                 spec.template.spec.tolerations (or remove the taint if the pool is meant for \
                 these pods)",
                w.display(),
                taint_only.join(", ")
            )
        };
        out.push(CheckFinding {
            rule: Rule::NoMatchingNodepool,
            severity: Severity::Error,
            objects,
            message: format!(
                "no NodePool admits the pods of {}, so they stay Pending: {}",
                w.display(),
                why.join(" | ")
            ),
            fix,
        });
    }
    out
}

/// `unfittable-pod` (error): some NodePool admits the pod, but no instance type any admitting
/// pool allows is large enough for it (requests plus DaemonSet and system overhead).
pub fn unfittable_pod(inputs: &Inputs, fits: &Fits) -> Vec<CheckFinding> {
    let mut out = Vec::new();
    for (wi, w) in inputs.workloads.iter().enumerate() {
        if !fits.judgeable(wi) {
            continue;
        }
        let row = &fits.0[wi];
        if row.contains(&PoolFit::Fits) || !row.iter().any(|f| matches!(f, PoolFit::TooBig(_))) {
            continue;
        }
        let mut objects = vec![w.at("spec.template.spec.containers")];
        let mut why = Vec::new();
        for (pi, f) in row.iter().enumerate() {
            if let PoolFit::TooBig(reasons) = f {
                let p = &inputs.nodepools[pi];
                why.push(format!("{}: {}", p.display(), reasons.join("; ")));
                objects.push(p.at("spec.template.spec.requirements"));
            }
        }
        let requests = w.value.template.shape.effective_requests();
        out.push(CheckFinding {
            rule: Rule::UnfittablePod,
            severity: Severity::Error,
            objects,
            message: format!(
                "one pod of {} requests cpu {} and memory {}, more than any instance type its \
                 NodePools allow can hold: {}",
                w.display(),
                requests.cpu,
                requests.memory,
                why.join(" | ")
            ),
            fix: "lower the pod's requests (spec.template.spec.containers[].resources.requests) \
                  or widen the NodePool's requirements (instance category, size, generation) \
                  to larger instance types"
                .to_owned(),
        });
    }
    out
}

/// `replicas-exceed-nodepool-limits` (warning): a ScaledObject's `maxReplicaCount` pods need
/// more CPU or memory than the limits of all NodePools they can land on together. The
/// comparison counts only the pods' requests; a limit counts whole nodes' capacity (system
/// reserve, DaemonSets, unused room), so the real ceiling is lower still and a finding is
/// never a false alarm. A landing pool without a limit on the resource clears it.
pub fn replicas_exceed_nodepool_limits(inputs: &Inputs, fits: &Fits) -> Vec<CheckFinding> {
    let mut out = Vec::new();
    for (so, w) in inputs.scaled_targets() {
        let Some(wi) = inputs.workloads.iter().position(|x| std::ptr::eq(x, w)) else {
            continue;
        };
        let landing = fits.landing(wi);
        if landing.is_empty() {
            continue;
        }
        let max = so.value.config.activation.max_replicas;
        let one = w.value.template.shape.effective_requests();
        let pools: Vec<&Located<NodePool>> =
            landing.iter().map(|&i| &inputs.nodepools[i]).collect();
        let total = |resource: &str| -> Option<i64> {
            pools.iter().try_fold(0i64, |acc, p| {
                p.value
                    .pool
                    .limits
                    .by_resource
                    .get(resource)
                    .map(|l| acc.saturating_add(*l))
            })
        };
        let mut over = Vec::new();
        let need_cpu = one.cpu.0.saturating_mul(i64::from(max));
        if let Some(limit) = total("cpu")
            && need_cpu > limit
        {
            over.push(format!(
                "cpu {} × {max} = {} > {}",
                one.cpu,
                MilliCpu(need_cpu),
                MilliCpu(limit)
            ));
        }
        let need_mem = one.memory.0.saturating_mul(i64::from(max));
        if let Some(limit) = total("memory")
            && need_mem > limit
        {
            over.push(format!(
                "memory {} × {max} = {} > {}",
                one.memory,
                Bytes(need_mem),
                Bytes(limit)
            ));
        }
        if over.is_empty() {
            continue;
        }
        let names: Vec<String> = pools.iter().map(|p| p.display()).collect();
        let mut objects = vec![so.at("spec.maxReplicaCount"), w.at("spec.template.spec")];
        objects.extend(pools.iter().map(|p| p.at("spec.limits")));
        out.push(CheckFinding {
            rule: Rule::ReplicasExceedNodepoolLimits,
            severity: Severity::Warning,
            objects,
            message: format!(
                "{} may scale {} to {max} replicas, but their requests exceed the limits of {} \
                 ({}): the last replicas stay Pending while KEDA keeps asking for them",
                so.display(),
                w.display(),
                names.join(", "),
                over.join(", ")
            ),
            fix: format!(
                "raise spec.limits of {} above the requests of {max} pods plus node overhead, \
                 or lower maxReplicaCount of {} to what the limits hold",
                names.join(", "),
                so.display()
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        SPOT_POOL, deployment, inputs, join, scaled_object, spot_pod,
    };
    use super::*;

    fn run(text: &str) -> Vec<CheckFinding> {
        super::super::check_inputs(&inputs(text))
    }

    fn rules(text: &str) -> Vec<&'static str> {
        run(text).iter().map(|f| f.rule.id()).collect()
    }

    #[test]
    fn a_pod_that_selects_and_tolerates_the_pool_fits() {
        let i = inputs(&join(&[SPOT_POOL, &deployment(&spot_pod("256m", "512Mi"))]));
        let f = fits(&i);
        assert_eq!(f.0[0], vec![PoolFit::Fits]);
        assert!(no_matching_nodepool(&i, &f).is_empty());
        assert!(unfittable_pod(&i, &f).is_empty());
    }

    #[test]
    fn a_pod_without_the_toleration_matches_no_pool_and_the_fix_says_tolerate() {
        let spec = "      nodeSelector:\n        intent: apps\n      containers:\n      - name: c\n        image: x\n        resources:\n          requests:\n            cpu: 100m\n            memory: 64Mi\n";
        let i = inputs(&join(&[SPOT_POOL, &deployment(spec)]));
        let found = no_matching_nodepool(&i, &fits(&i));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Error);
        assert!(
            found[0].message.contains("did not tolerate"),
            "{}",
            found[0].message
        );
        assert!(found[0].fix.contains("toleration"), "{}", found[0].fix);
        assert_eq!(found[0].objects.len(), 2);
    }

    #[test]
    fn a_selector_no_pool_allows_matches_no_pool() {
        let spec = spot_pod("100m", "64Mi").replace("intent: apps", "intent: batch");
        let i = inputs(&join(&[SPOT_POOL, &deployment(&spec)]));
        let found = no_matching_nodepool(&i, &fits(&i));
        assert_eq!(found.len(), 1);
        assert!(found[0].fix.contains("nodeSelector"), "{}", found[0].fix);
    }

    #[test]
    fn workloads_alone_are_not_judged() {
        assert!(rules(&deployment(&spot_pod("100m", "64Mi"))).is_empty());
    }

    #[test]
    fn a_pod_larger_than_every_instance_type_is_unfittable() {
        let i = inputs(&join(&[SPOT_POOL, &deployment(&spot_pod("100m", "100Ti"))]));
        let f = fits(&i);
        assert!(matches!(f.0[0][0], PoolFit::TooBig(_)), "{:?}", f.0[0][0]);
        let found = unfittable_pod(&i, &f);
        assert_eq!(found.len(), 1);
        assert!(no_matching_nodepool(&i, &f).is_empty());
    }

    #[test]
    fn max_replicas_beyond_the_pool_limit_is_reported_with_the_arithmetic() {
        let pool = SPOT_POOL.replace("cpu: \"1000\"", "cpu: \"10\"");
        let text = join(&[
            &pool,
            &deployment(&spot_pod("256m", "512Mi")),
            &scaled_object("  maxReplicaCount: 50\n"),
        ]);
        let found: Vec<_> = run(&text)
            .into_iter()
            .filter(|f| f.rule == Rule::ReplicasExceedNodepoolLimits)
            .collect();
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.contains("cpu 256m × 50 = 12800m > 10"),
            "{}",
            found[0].message
        );
        assert_eq!(found[0].objects.len(), 3);
    }

    #[test]
    fn max_replicas_within_the_limit_or_an_unlimited_pool_is_fine() {
        let text = join(&[
            SPOT_POOL,
            &deployment(&spot_pod("256m", "512Mi")),
            &scaled_object("  maxReplicaCount: 50\n"),
        ]);
        assert!(!rules(&text).contains(&"replicas-exceed-nodepool-limits"));
        let unlimited = SPOT_POOL.replace("  limits:\n    cpu: \"1000\"\n", "");
        let text = join(&[
            &unlimited,
            &deployment(&spot_pod("256m", "512Mi")),
            &scaled_object("  maxReplicaCount: 5000\n"),
        ]);
        assert!(!rules(&text).contains(&"replicas-exceed-nodepool-limits"));
    }
}
