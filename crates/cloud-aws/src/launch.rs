//! What one EC2 Fleet request for a NodeClaim asks for: the capacity type and the ordered
//! overrides (instance type × subnet), as upstream builds them
//! (aws `pkg/providers/instance/instance.go`): spot when the claim allows it and a spot offering
//! is available, else on-demand; at most [`MAX_OVERRIDES`] overrides, cheapest first, one subnet
//! per zone; offerings EC2 refused recently are left out. Pure: the class's catalog (already
//! limited to its zones and refusals), the claim and the subnets in, a plan out.

use std::collections::BTreeSet;

use tandem_api::aws::v1::ResolvedSubnet;
use tandem_api::karpenter::NodeClaim;
use tandem_cloud::{Error, OfferingRef, claim_requests, claim_requirements};
use tandem_model::catalog::{CapacityType, Catalog, UsdPerHour};
use tandem_model::labels;

/// EC2 Fleet accepts at most this many overrides per request (upstream's cap as well).
pub const MAX_OVERRIDES: usize = 60;

/// One launch-template override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Instance type.
    pub instance_type: String,
    /// Subnet the instance goes into.
    pub subnet_id: String,
    /// That subnet's zone.
    pub zone: String,
    /// `kubernetes.io/arch` of the type, which picks the AMI (and so the launch template).
    pub arch: String,
    /// The offering's price, the override's priority.
    pub price: UsdPerHour,
}

/// A Fleet request for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetPlan {
    /// The capacity type asked for.
    pub capacity_type: CapacityType,
    /// Overrides, cheapest first.
    pub overrides: Vec<Override>,
}

impl FleetPlan {
    /// The offerings this plan tries, for an insufficient-capacity report.
    pub fn offerings(&self) -> Vec<OfferingRef> {
        let set: BTreeSet<OfferingRef> = self
            .overrides
            .iter()
            .map(|o| OfferingRef {
                instance_type: o.instance_type.clone(),
                zone: o.zone.clone(),
                capacity_type: self.capacity_type.as_str().to_owned(),
            })
            .collect();
        set.into_iter().collect()
    }
}

/// The plan for `claim` over `catalog` (offerings already limited to the class's zones, refused
/// ones unavailable) and the class's `subnets`.
pub fn plan(
    catalog: &Catalog,
    claim: &NodeClaim,
    node_class: &str,
    subnets: &[ResolvedSubnet],
) -> Result<FleetPlan, Error> {
    let reqs = claim_requirements(claim);
    let requests = claim_requests(claim);
    // One subnet per zone: the first the class resolved (upstream prefers the one with most
    // free addresses; EC2's DescribeSubnets order is stable, so this is deterministic).
    let mut subnet_of = std::collections::BTreeMap::new();
    for s in subnets {
        subnet_of.entry(s.zone.as_str()).or_insert(s.id.as_str());
    }
    let mut candidates: Vec<(CapacityType, Override)> = Vec::new();
    let mut refused = Vec::new();
    let mut compatible = false;
    for it in catalog.types() {
        if !it.requirements().intersects(&reqs) || !requests.fits(it.allocatable()) {
            continue;
        }
        compatible = true;
        let arch = it
            .requirements()
            .get(labels::ARCH)
            .and_then(|r| r.values().first().cloned())
            .unwrap_or_else(|| "amd64".to_owned());
        for o in it.offerings() {
            if !o.matches(&reqs) {
                continue;
            }
            let Some(subnet) = subnet_of.get(o.zone.as_str()) else {
                continue;
            };
            if !o.available {
                refused.push(OfferingRef {
                    instance_type: it.name().to_owned(),
                    zone: o.zone.clone(),
                    capacity_type: o.capacity_type.as_str().to_owned(),
                });
                continue;
            }
            candidates.push((
                o.capacity_type,
                Override {
                    instance_type: it.name().to_owned(),
                    subnet_id: (*subnet).to_owned(),
                    zone: o.zone.clone(),
                    arch: arch.clone(),
                    price: o.price,
                },
            ));
        }
    }
    if !compatible {
        return Err(Error::NoCompatibleInstanceType {
            node_class: node_class.to_owned(),
        });
    }
    let capacity_type = if candidates.iter().any(|(c, _)| *c == CapacityType::Spot) {
        CapacityType::Spot
    } else {
        CapacityType::OnDemand
    };
    let mut overrides: Vec<Override> = candidates
        .into_iter()
        .filter(|(c, _)| *c == capacity_type)
        .map(|(_, o)| o)
        .collect();
    if overrides.is_empty() {
        return Err(Error::InsufficientCapacity { offerings: refused });
    }
    overrides.sort_by(|a, b| {
        (a.price, &a.instance_type, &a.zone).cmp(&(b.price, &b.instance_type, &b.zone))
    });
    overrides.truncate(MAX_OVERRIDES);
    Ok(FleetPlan {
        capacity_type,
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::for_zones;
    use std::collections::BTreeSet;

    fn claim(reqs: serde_json::Value) -> NodeClaim {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodeClaim",
            "metadata": {"name": "default-abc"},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                "requirements": reqs,
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}
            }
        }))
        .unwrap()
    }

    fn subnets() -> Vec<ResolvedSubnet> {
        ["us-east-1a", "us-east-1b"]
            .iter()
            .enumerate()
            .map(|(i, z)| ResolvedSubnet {
                id: format!("subnet-{i}"),
                zone: (*z).into(),
                zone_id: None,
            })
            .collect()
    }

    fn catalog(refused: &BTreeSet<OfferingRef>) -> Catalog {
        let all = Catalog::aws_us_east_1().unwrap();
        for_zones(&all, &["us-east-1a".into(), "us-east-1b".into()], refused)
    }

    #[test]
    fn spot_when_allowed_cheapest_first_within_the_class_zones() {
        let c = claim(serde_json::json!([
            {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r"]},
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]}
        ]));
        let p = plan(&catalog(&BTreeSet::new()), &c, "default", &subnets()).unwrap();
        assert_eq!(p.capacity_type, CapacityType::Spot);
        assert!(p.overrides.len() <= MAX_OVERRIDES && !p.overrides.is_empty());
        assert!(p.overrides.windows(2).all(|w| w[0].price <= w[1].price));
        for o in &p.overrides {
            assert!(["us-east-1a", "us-east-1b"].contains(&o.zone.as_str()));
            assert!(matches!(
                o.instance_type.chars().next(),
                Some('c' | 'm' | 'r')
            ));
            assert_eq!(o.arch, "amd64");
        }
    }

    #[test]
    fn on_demand_only_claims_and_refused_offerings() {
        let c = claim(serde_json::json!([
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m5.large"]},
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a"]}
        ]));
        let p = plan(&catalog(&BTreeSet::new()), &c, "default", &subnets()).unwrap();
        assert_eq!(p.capacity_type, CapacityType::OnDemand);
        assert_eq!(p.overrides.len(), 1);
        assert_eq!(p.overrides[0].subnet_id, "subnet-0");
        let refused: BTreeSet<OfferingRef> = p.offerings().into_iter().collect();
        let err = plan(&catalog(&refused), &c, "default", &subnets()).unwrap_err();
        assert!(
            matches!(err, Error::InsufficientCapacity { ref offerings } if offerings.len() == 1)
        );
        let none = claim(serde_json::json!([
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["no.such"]}
        ]));
        assert!(matches!(
            plan(&catalog(&BTreeSet::new()), &none, "default", &subnets()),
            Err(Error::NoCompatibleInstanceType { .. })
        ));
    }
}
