//! The instance types an EC2NodeClass can launch: the region's catalog with offerings limited
//! to the zones of the class's subnets, and offerings EC2 refused recently marked unavailable,
//! so the scheduler plans only what a launch can get. Pure.

use std::collections::{BTreeMap, BTreeSet};

use tandem_cloud::OfferingRef;
use tandem_model::catalog::{CapacityType, Catalog, InstanceType, Offering, UsdPerHour};
use tandem_model::labels;
use tandem_model::requirements::Requirement;

/// `catalog` with each type's offerings rewritten by `edit` (which filters and changes them);
/// `narrow_zones` also limits each type's zone requirement to the zones left, for views of one
/// class rather than of the region.
fn rewrite(
    catalog: &Catalog,
    narrow_zones: bool,
    mut edit: impl FnMut(&InstanceType, &Offering) -> Option<Offering>,
) -> Catalog {
    let types = catalog
        .types()
        .iter()
        .map(|it| {
            let offerings: Vec<Offering> =
                it.offerings().iter().filter_map(|o| edit(it, o)).collect();
            let mut reqs = it.requirements().clone();
            if narrow_zones {
                let left: BTreeSet<&str> = offerings.iter().map(|o| o.zone.as_str()).collect();
                reqs.add(Requirement::in_values(labels::ZONE, left));
            }
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

/// `catalog` seen through a class whose subnets are in `zones`, with `refused` offerings
/// unavailable. Types with no offering left in those zones are kept without offerings, so a
/// pod that needs one is reported unschedulable for the right reason.
pub fn for_zones(catalog: &Catalog, zones: &[String], refused: &BTreeSet<OfferingRef>) -> Catalog {
    rewrite(catalog, true, |it, o| {
        if !zones.contains(&o.zone) {
            return None;
        }
        let key = OfferingRef {
            instance_type: it.name().to_owned(),
            zone: o.zone.clone(),
            capacity_type: o.capacity_type.as_str().to_owned(),
        };
        Some(Offering {
            available: o.available && !refused.contains(&key),
            ..o.clone()
        })
    })
}

/// What EC2 says about the region now: which types each zone offers
/// (`DescribeInstanceTypeOfferings`) and the latest spot price per type and zone
/// (`DescribeSpotPriceHistory`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionOfferings {
    /// `(instance type, zone)` pairs offered; empty means "not known", and keeps every offering.
    pub offered: BTreeSet<(String, String)>,
    /// Latest spot price per `(instance type, zone)`.
    pub spot_prices: BTreeMap<(String, String), UsdPerHour>,
}

/// `catalog` with only the offerings EC2 offers, and spot prices from EC2 where it gave one
/// (the bundled data has on-demand prices only; spot is modelled until EC2 answers).
pub fn with_region(catalog: &Catalog, region: &RegionOfferings) -> Catalog {
    rewrite(catalog, false, |it, o| {
        let key = (it.name().to_owned(), o.zone.clone());
        if !region.offered.is_empty() && !region.offered.contains(&key) {
            return None;
        }
        let mut o = o.clone();
        if o.capacity_type == CapacityType::Spot
            && let Some(p) = region.spot_prices.get(&key)
        {
            o.price = *p;
        }
        Some(o)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_answers_limit_offerings_and_price_spot() {
        let all = Catalog::aws_us_east_1().unwrap();
        let region = RegionOfferings {
            offered: [("m5.large".to_owned(), "us-east-1b".to_owned())].into(),
            spot_prices: [(
                ("m5.large".to_owned(), "us-east-1b".to_owned()),
                "0.0312".parse().unwrap(),
            )]
            .into(),
        };
        let c = with_region(&all, &region);
        let m5 = c.get("m5.large").unwrap();
        assert!(m5.offerings().iter().all(|o| o.zone == "us-east-1b"));
        let spot = m5
            .offerings()
            .iter()
            .find(|o| o.capacity_type == CapacityType::Spot)
            .unwrap();
        assert_eq!(spot.price.to_string(), "0.0312");
        assert!(c.get("c5.large").unwrap().offerings().is_empty());
        let unknown = with_region(&all, &RegionOfferings::default());
        assert_eq!(unknown, all, "no answer keeps the catalog");
    }

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
