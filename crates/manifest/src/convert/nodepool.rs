//! `karpenter.sh/v1` NodePool → nodescaler's [`snapshot::NodePool`] plus what provisioning does
//! not read but disruption does (policy, `consolidateAfter`, budgets, `expireAfter`) and the
//! NodeClass reference that picks the catalog.

use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use tandem_api::karpenter::v1::{self as karpenter, NodePool as ApiNodePool};
use tandem_model::quantity::Quantity;
use tandem_model::requirements::{Operator, Requirements, SelectorRequirement};
use tandem_model::taints::{Taint, TaintEffect};
use tandem_nodescaler::headroom::{self, Headroom};
use tandem_nodescaler::snapshot::{self, Limits};

use super::FieldError;
use super::nodeclass::CatalogKind;
use crate::typed::parse_as;

/// `spec.disruption.consolidationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsolidationPolicy {
    /// Only empty nodes.
    WhenEmpty,
    /// Empty and underutilized nodes (upstream default).
    WhenEmptyOrUnderutilized,
    /// Underutilized only when the saving is worth the disruption.
    Balanced,
}

/// `budgets[].nodes`: a count or a percentage of the pool's nodes (rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetNodes {
    /// At most this many nodes.
    Count(u32),
    /// At most this percentage of the pool's nodes, rounded up.
    Percent(u32),
}

impl BudgetNodes {
    /// How many of `total` nodes may be disrupting at once.
    pub fn allowed(self, total: usize) -> usize {
        match self {
            BudgetNodes::Count(n) => n as usize,
            BudgetNodes::Percent(p) => (total * p as usize).div_ceil(100),
        }
    }
}

/// One budget that is always in force (budgets with a `schedule` are kept apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// The limit.
    pub nodes: BudgetNodes,
    /// `schedule` (cron, UTC) when the budget has a window.
    pub schedule: Option<String>,
    /// Window length after each `schedule` hit.
    pub duration: Option<Duration>,
    /// Reasons it limits (`Empty`, `Underutilized`, `Drifted`); empty means all.
    pub reasons: Vec<String>,
}

/// `spec.disruption` with upstream defaults applied by the API types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disruption {
    /// Policy.
    pub policy: ConsolidationPolicy,
    /// `consolidateAfter`; `None` is `Never` (no consolidation, no emptiness).
    pub consolidate_after: Option<Duration>,
    /// Budgets.
    pub budgets: Vec<Budget>,
}

/// A NodePool ready for the node layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePool {
    /// What provisioning reads (NodeClass name in `node_class`).
    pub pool: snapshot::NodePool,
    /// What disruption reads.
    pub disruption: Disruption,
    /// `nodeClassRef.group`/`kind`/`name`.
    pub node_class_group: String,
    /// `nodeClassRef.kind`.
    pub node_class_kind: String,
    /// The catalog the NodeClass group selects (`None` for an unknown provider).
    pub catalog: Option<CatalogKind>,
    /// `template.spec.expireAfter`; `None` is `Never`.
    pub expire_after: Option<Duration>,
    /// False when the NodePool opted out of pod-layer coordination with the annotation
    /// [`snapshot::COORDINATION_ANNOTATION`]` = "false"`.
    pub coordinated: bool,
    /// Warm capacity from the `tandem.dev/headroom` annotations.
    pub headroom: Option<Headroom>,
}

/// Reads a NodePool's warm-capacity annotations ([`headroom::ANNOTATION`] and its schedule
/// and duration); `None` without the annotation. The live state and the file converters both
/// call this, so a cluster and `tandem simulate` read the same annotation the same way.
///
/// # Errors
/// [`FieldError`] at `metadata.annotations["tandem.dev/headroom…"]` naming what is wrong.
pub fn headroom(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<Option<Headroom>, FieldError> {
    let get = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    let Some(value) = get(headroom::ANNOTATION) else {
        return Ok(None);
    };
    let field = |k: &str| format!("metadata.annotations[\"{k}\"]");
    let window_ms = match get(headroom::DURATION_ANNOTATION) {
        None => None,
        Some(d) => {
            let parsed = tandem_api::duration::parse_go_duration(d).map_err(|e| {
                FieldError::new(field(headroom::DURATION_ANNOTATION), e.to_string())
            })?;
            Some(i64::try_from(parsed.as_millis()).unwrap_or(i64::MAX))
        }
    };
    Headroom::parse(value, get(headroom::SCHEDULE_ANNOTATION), window_ms)
        .map(Some)
        .map_err(|e| FieldError::new(field(headroom::ANNOTATION), e.to_string()))
}

/// Converts a NodePool document.
///
/// # Errors
/// [`FieldError`] when the document does not parse, or a requirement, taint or limit is
/// unreadable.
pub fn convert(v: &Value) -> Result<NodePool, FieldError> {
    let np: ApiNodePool = parse_as(v)?;
    let name = np.metadata.name.clone().unwrap_or_default();
    let spec = &np.spec;
    let tspec = &spec.template.spec;
    let mut pool = snapshot::NodePool::new(&name, &tspec.node_class_ref.name);
    pool.weight = spec.weight.unwrap_or(0);
    pool.labels = spec.template.metadata.labels.clone();
    let mut api = Vec::with_capacity(tspec.requirements.len());
    for (i, r) in tspec.requirements.iter().enumerate() {
        api.push(requirement(r, i)?);
    }
    let mut reqs = Requirements::from_api(&api)
        .map_err(|e| FieldError::new("spec.template.spec.requirements", e.to_string()))?;
    for (k, val) in &pool.labels {
        reqs.add(tandem_model::requirements::Requirement::in_values(
            k,
            [val.clone()],
        ));
    }
    pool.requirements = reqs;
    pool.taints = taints(&tspec.taints, "spec.template.spec.taints")?;
    pool.startup_taints = taints(&tspec.startup_taints, "spec.template.spec.startupTaints")?;
    pool.limits = limits(&spec.limits)?;
    let policy = match spec.disruption.consolidation_policy {
        karpenter::ConsolidationPolicy::WhenEmpty => ConsolidationPolicy::WhenEmpty,
        karpenter::ConsolidationPolicy::WhenEmptyOrUnderutilized => {
            ConsolidationPolicy::WhenEmptyOrUnderutilized
        }
        karpenter::ConsolidationPolicy::Balanced => ConsolidationPolicy::Balanced,
    };
    let mut budgets = Vec::new();
    for (i, b) in spec.disruption.budgets.iter().enumerate() {
        let field = format!("spec.disruption.budgets[{i}].nodes");
        let nodes = match b.nodes.strip_suffix('%') {
            Some(p) => p.parse().map(BudgetNodes::Percent),
            None => b.nodes.parse().map(BudgetNodes::Count),
        }
        .map_err(|_| FieldError::new(field, "must be a count or a percentage"))?;
        budgets.push(Budget {
            nodes,
            schedule: b.schedule.clone(),
            duration: b.duration.as_ref().map(|d| d.value().0),
            reasons: b.reasons.iter().map(|r| format!("{r:?}")).collect(),
        });
    }
    Ok(NodePool {
        pool,
        disruption: Disruption {
            policy,
            consolidate_after: spec.disruption.consolidate_after.value().as_duration(),
            budgets,
        },
        node_class_group: tspec.node_class_ref.group.clone(),
        node_class_kind: tspec.node_class_ref.kind.clone(),
        catalog: CatalogKind::of_group(&tspec.node_class_ref.group),
        expire_after: tspec.expire_after.value().as_duration(),
        coordinated: np
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(snapshot::COORDINATION_ANNOTATION))
            .is_none_or(|v| v != "false"),
        headroom: headroom(np.metadata.annotations.as_ref())?,
    })
}

fn requirement(r: &karpenter::Requirement, i: usize) -> Result<SelectorRequirement, FieldError> {
    let field = format!("spec.template.spec.requirements[{i}]");
    let op_text = serde_json::to_value(r.operator)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let operator = Operator::from_str(&op_text)
        .map_err(|e| FieldError::new(format!("{field}.operator"), e.to_string()))?;
    Ok(SelectorRequirement {
        key: r.key.clone(),
        operator,
        values: r.values.clone(),
        min_values: r.min_values.and_then(|m| u32::try_from(m).ok()),
    })
}

fn taints(list: &[karpenter::Taint], path: &str) -> Result<Vec<Taint>, FieldError> {
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let effect = match t.effect {
                karpenter::TaintEffect::NoSchedule => "NoSchedule",
                karpenter::TaintEffect::PreferNoSchedule => "PreferNoSchedule",
                karpenter::TaintEffect::NoExecute => "NoExecute",
            };
            let effect = TaintEffect::from_str(effect)
                .map_err(|e| FieldError::new(format!("{path}[{i}].effect"), e.to_string()))?;
            Ok(Taint::new(&t.key, t.value.as_deref().unwrap_or(""), effect))
        })
        .collect()
}

fn limits(list: &tandem_api::quantity::ResourceList) -> Result<Limits, FieldError> {
    let mut out = Limits::none();
    for (name, q) in list {
        let parsed = Quantity::from_str(q.as_str())
            .map_err(|e| FieldError::new(format!("spec.limits.{name}"), e.to_string()))?;
        let amount = if name == "cpu" {
            parsed.as_milli()
        } else {
            parsed.as_value()
        };
        out = out.resource(name, amount);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::test_support::seed;
    use tandem_model::resources::{Bytes, MilliCpu};

    #[test]
    fn seed_002_spot_pool_keeps_limits_taint_labels_and_consolidate_after() {
        let files = seed("002_85c0937ec41394ee");
        let np = convert(&files[0].documents[0].value).unwrap();
        assert_eq!(np.pool.name, "node-spot");
        assert_eq!(np.pool.node_class, "default");
        assert_eq!(np.catalog, Some(CatalogKind::Aws));
        assert_eq!(
            np.pool.limits.by_resource["cpu"],
            MilliCpu::from_cores(1000).0
        );
        assert_eq!(np.pool.limits.by_resource["memory"], Bytes::from_gib(500).0);
        assert_eq!(np.pool.taints[0].key, "intent");
        assert_eq!(np.pool.labels["intent"], "apps");
        assert!(
            np.pool
                .requirements
                .has("karpenter.sh/capacity-type", "spot")
        );
        assert!(
            !np.pool
                .requirements
                .allows("karpenter.sh/capacity-type", "on-demand")
        );
        assert!(np.pool.requirements.has("intent", "apps"));
        assert_eq!(
            np.disruption.consolidate_after,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            np.disruption.policy,
            ConsolidationPolicy::WhenEmptyOrUnderutilized
        );
        assert_eq!(np.disruption.budgets[0].nodes, BudgetNodes::Percent(10));
        assert_eq!(np.expire_after, Some(Duration::from_secs(168 * 3600)));
    }

    #[test]
    fn seed_003_arm_pool_is_weighted_and_azure() {
        let files = seed("003_76bb3cb27d73d62f");
        let np = convert(&files[5].documents[0].value).unwrap();
        assert_eq!(np.pool.weight, 10);
        assert_eq!(np.catalog, Some(CatalogKind::Azure));
        assert_eq!(np.pool.node_class, "default-azurelinux");
        assert!(np.pool.requirements.has("kubernetes.io/arch", "arm64"));
        assert_eq!(
            np.disruption.consolidate_after,
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn budget_percent_rounds_up() {
        assert_eq!(BudgetNodes::Percent(10).allowed(11), 2);
        assert_eq!(BudgetNodes::Percent(10).allowed(0), 0);
        assert_eq!(BudgetNodes::Count(3).allowed(1), 3);
    }
}
