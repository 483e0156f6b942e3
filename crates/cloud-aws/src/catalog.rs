//! The instance types an EC2NodeClass can launch: the region's catalog with offerings limited
//! to the zones of the class's subnets, and offerings EC2 refused recently marked unavailable,
//! so the scheduler plans only what a launch can get. Pure.

use std::collections::BTreeSet;

use tandem_cloud::OfferingRef;
use tandem_model::catalog::{Catalog, InstanceType, Offering};
use tandem_model::labels;
use tandem_model::requirements::Requirement;

/// `catalog` seen through a class whose subnets are in `zones`, with `refused` offerings
/// unavailable. Types with no offering left in those zones are kept without offerings, so a
/// pod that needs one is reported unschedulable for the right reason.
pub fn for_zones(catalog: &Catalog, zones: &[String], refused: &BTreeSet<OfferingRef>) -> Catalog {
    let types = catalog
        .types()
        .iter()
        .map(|it| {
            let offerings: Vec<Offering> = it
                .offerings()
                .iter()
                .filter(|o| zones.contains(&o.zone))
                .map(|o| {
                    let key = OfferingRef {
                        instance_type: it.name().to_owned(),
                        zone: o.zone.clone(),
                        capacity_type: o.capacity_type.as_str().to_owned(),
                    };
                    Offering {
                        available: o.available && !refused.contains(&key),
                        ..o.clone()
                    }
                })
                .collect();
            let mut reqs = it.requirements().clone();
            let left: BTreeSet<&str> = offerings.iter().map(|o| o.zone.as_str()).collect();
            reqs.add(Requirement::in_values(labels::ZONE, left));
            InstanceType::new(
                it.name(),
                reqs,
                offerings,
                it.capacity().clone(),
                it.overhead().clone(),
            )
        })
        .collect();
    Catalog::new(types, catalog.well_known_labels().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offerings_outside_the_class_zones_disappear_and_refusals_stay_visible() {
        let all = Catalog::aws_us_east_1().unwrap();
        let refused: BTreeSet<OfferingRef> = [OfferingRef {
            instance_type: "m5.large".into(),
            zone: "us-east-1a".into(),
            capacity_type: "spot".into(),
        }]
        .into();
        let c = for_zones(&all, &["us-east-1a".into()], &refused);
        assert_eq!(c.len(), all.len());
        let m5 = c.get("m5.large").unwrap();
        assert!(m5.offerings().iter().all(|o| o.zone == "us-east-1a"));
        let spot = m5
            .offerings()
            .iter()
            .find(|o| o.capacity_type.as_str() == "spot")
            .unwrap();
        assert!(!spot.available);
        assert!(m5.requirements().allows(labels::ZONE, "us-east-1a"));
        assert!(!m5.requirements().allows(labels::ZONE, "us-east-1b"));
    }
}
