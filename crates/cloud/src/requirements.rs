//! From a NodeClaim to a concrete offering: the claim's requirements in the model's normal
//! form, and the cheapest available offering among the instance types they allow (upstream
//! providers launch the cheapest compatible offering; ties by type name, zone, capacity type so
//! the choice is deterministic).

use std::collections::BTreeSet;

use tandem_api::karpenter::NodeClaim;
use tandem_model::catalog::{Catalog, InstanceType, Offering};
use tandem_model::requirements::{Requirements, SelectorRequirement};
use tandem_model::resources::Resources;

use crate::error::{Error, OfferingRef};

/// The claim's `spec.requirements` in normal form, plus its labels as `In` requirements.
/// Requirements the model cannot parse are dropped: the API server validated them already, so
/// this only happens with a newer operator, and a launch should not fail for it.
pub fn claim_requirements(claim: &NodeClaim) -> Requirements {
    let api: Vec<SelectorRequirement> = claim
        .spec
        .requirements
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    let mut reqs = Requirements::new();
    for r in &api {
        if let Ok(one) = tandem_model::requirements::Requirement::from_api(r) {
            reqs.add(one);
        }
    }
    reqs
}

/// The requests a claim must fit (`spec.resources.requests`).
pub fn claim_requests(claim: &NodeClaim) -> Resources {
    let mut out = Resources::new();
    for (name, q) in &claim.spec.resources.requests {
        if let Ok(q) = q.as_str().parse() {
            out.set(name, &q);
        }
    }
    out
}

/// The offering a provider launches for `claim`: among instance types the requirements allow
/// and whose allocatable holds the requests, the cheapest offering the requirements allow that
/// is available and not in `unavailable`.
pub(crate) fn choose<'c>(
    catalog: &'c Catalog,
    claim: &NodeClaim,
    node_class: &str,
    unavailable: &BTreeSet<OfferingRef>,
) -> Result<(&'c InstanceType, &'c Offering), Error> {
    let reqs = claim_requirements(claim);
    let requests = claim_requests(claim);
    let mut tried = Vec::new();
    let mut best: Option<(&InstanceType, &Offering)> = None;
    let mut compatible = false;
    for it in catalog.types() {
        if !it.requirements().intersects(&reqs) || !requests.fits(it.allocatable()) {
            continue;
        }
        compatible = true;
        for o in it.offerings() {
            if !o.matches(&reqs) {
                continue;
            }
            let key = OfferingRef {
                instance_type: it.name().to_owned(),
                zone: o.zone.clone(),
                capacity_type: o.capacity_type.as_str().to_owned(),
            };
            if !o.available || unavailable.contains(&key) {
                tried.push(key);
                continue;
            }
            let better = best.is_none_or(|(bt, bo)| {
                (o.price, it.name(), &o.zone, o.capacity_type.as_str())
                    < (bo.price, bt.name(), &bo.zone, bo.capacity_type.as_str())
            });
            if better {
                best = Some((it, o));
            }
        }
    }
    match best {
        Some(found) => Ok(found),
        None if compatible => Err(Error::InsufficientCapacity { offerings: tried }),
        None => Err(Error::NoCompatibleInstanceType {
            node_class: node_class.to_owned(),
        }),
    }
}

/// The labels an instance resolves: every single-valued requirement of its type, plus zone and
/// capacity type of the offering.
pub fn instance_labels(
    it: &InstanceType,
    o: &Offering,
) -> std::collections::BTreeMap<String, String> {
    let mut labels = std::collections::BTreeMap::new();
    for r in it.requirements().iter() {
        if !r.is_complement()
            && r.values().len() == 1
            && let Some(v) = r.values().first()
        {
            labels.insert(r.key().to_owned(), v.clone());
        }
    }
    labels.insert(tandem_model::labels::ZONE.to_owned(), o.zone.clone());
    labels.insert(
        tandem_model::labels::CAPACITY_TYPE.to_owned(),
        o.capacity_type.as_str().to_owned(),
    );
    labels
}
