//! The simulated cloud: how long a launch takes, which offerings have no capacity, and when a
//! spot instance is reclaimed.
//!
//! Defaults are seed 002's latency table (KubeDojo, "KEDA and Karpenter Together"): provisioning
//! 30–60 s, join and Ready 10–20 s, image pull 5–30 s; EC2's spot warning is 2 minutes. Each
//! delay is uniform over its range, drawn from the cloud's own seeded stream. Insufficient
//! capacity (ICE) is either listed per offering or drawn per launch attempt; an offering that
//! failed is unavailable for 3 minutes, as Karpenter's unavailable-offerings cache
//! (`UnavailableOfferingsTTL`) keeps it, and the catalogs the planner sees mark it so.

use std::collections::BTreeMap;
use std::sync::Arc;

use tandem_model::catalog::{CapacityType, Catalog, InstanceType, Offering, UsdPerHour};
use tandem_model::requirements::Requirements;

use crate::rng::Stream;

/// A uniform range of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Shortest.
    pub min_ms: i64,
    /// Longest.
    pub max_ms: i64,
}

impl Range {
    /// `min..=max` seconds.
    pub const fn secs(min: i64, max: i64) -> Self {
        Range {
            min_ms: min * 1000,
            max_ms: max * 1000,
        }
    }
}

/// Which offerings have no capacity: any field left `None` matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OfferingMatch {
    /// Instance type name.
    pub instance_type: Option<String>,
    /// Zone.
    pub zone: Option<String>,
    /// Capacity type.
    pub capacity_type: Option<CapacityType>,
}

impl OfferingMatch {
    fn matches(&self, instance_type: &str, offering: &Offering) -> bool {
        self.instance_type
            .as_deref()
            .is_none_or(|t| t == instance_type)
            && self.zone.as_deref().is_none_or(|z| z == offering.zone)
            && self
                .capacity_type
                .is_none_or(|c| c == offering.capacity_type)
    }
}

/// The cloud's behaviour; every default cites seed 002 or upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudConfig {
    /// NodeClaim created → instance running (seed 002: 30–60 s).
    pub provisioning: Range,
    /// Instance running → node Ready (seed 002: 10–20 s).
    pub join: Range,
    /// First pull of an image on a node (seed 002: 5–30 s).
    pub image_pull: Range,
    /// Container start when the image is already on the node (1 s).
    pub container_start_ms: i64,
    /// Spot interruptions per spot instance-hour (default 0: none).
    pub spot_interruptions_per_hour: f64,
    /// Warning before a spot instance is reclaimed (EC2: 2 minutes).
    pub interruption_notice_ms: i64,
    /// Chance that one launch attempt on an offering fails with insufficient capacity.
    pub ice_probability: f64,
    /// Offerings that always fail with insufficient capacity.
    pub unavailable: Vec<OfferingMatch>,
    /// How long a failed offering stays unavailable (Karpenter: 3 minutes).
    pub ice_ttl_ms: i64,
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            provisioning: Range::secs(30, 60),
            join: Range::secs(10, 20),
            image_pull: Range::secs(5, 30),
            container_start_ms: 1_000,
            spot_interruptions_per_hour: 0.0,
            interruption_notice_ms: 120_000,
            ice_probability: 0.0,
            unavailable: Vec::new(),
            ice_ttl_ms: 180_000,
        }
    }
}

/// The instance a launch got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Instance type.
    pub instance_type: String,
    /// Zone.
    pub zone: String,
    /// Capacity type.
    pub capacity_type: CapacityType,
    /// Price per hour.
    pub price: UsdPerHour,
}

/// Key of the unavailable-offerings cache.
type OfferingKey = (String, String, CapacityType);

/// The simulated provider: seeded streams, the ICE cache and the catalogs as the planner sees
/// them.
#[derive(Debug, Clone)]
pub struct Cloud {
    config: CloudConfig,
    delays: Stream,
    spot: Stream,
    capacity: Stream,
    ice: BTreeMap<OfferingKey, i64>,
    version: u64,
    views: BTreeMap<String, (u64, Arc<Catalog>)>,
}

impl Cloud {
    /// A cloud whose streams derive from `seed`.
    pub fn new(config: CloudConfig, seed: u64) -> Self {
        Cloud {
            config,
            delays: Stream::new(seed, "cloud.delays"),
            spot: Stream::new(seed, "cloud.spot"),
            capacity: Stream::new(seed, "cloud.capacity"),
            ice: BTreeMap::new(),
            version: 0,
            views: BTreeMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CloudConfig {
        &self.config
    }

    /// `(provisioning, join)` delays of one launch.
    pub fn launch_delays(&mut self) -> (i64, i64) {
        let p = self.config.provisioning;
        let j = self.config.join;
        (
            self.delays.between(p.min_ms, p.max_ms),
            self.delays.between(j.min_ms, j.max_ms),
        )
    }

    /// Time for a pod to start on a node that has (`cached`) or lacks its image.
    pub fn start_delay(&mut self, cached: bool) -> i64 {
        if cached {
            self.config.container_start_ms
        } else {
            let r = self.config.image_pull;
            self.delays.between(r.min_ms, r.max_ms)
        }
    }

    /// When (ms after launch) a new spot instance will get its interruption warning, if ever.
    pub fn interruption_after(&mut self, capacity_type: CapacityType) -> Option<i64> {
        if capacity_type != CapacityType::Spot || self.config.spot_interruptions_per_hour <= 0.0 {
            return None;
        }
        let mean_ms = 3_600_000.0 / self.config.spot_interruptions_per_hour;
        self.spot.exponential(mean_ms).map(|ms| ms.round() as i64)
    }

    fn expire(&mut self, now: i64) {
        let before = self.ice.len();
        self.ice.retain(|_, until| *until > now);
        if self.ice.len() != before {
            self.version += 1;
        }
    }

    /// The catalog with cached-unavailable offerings marked so, rebuilt only when the cache
    /// changed.
    pub fn view(&mut self, node_class: &str, base: &Arc<Catalog>, now: i64) -> Arc<Catalog> {
        self.expire(now);
        if self.ice.is_empty() {
            return Arc::clone(base);
        }
        if let Some((v, c)) = self.views.get(node_class)
            && *v == self.version
        {
            return Arc::clone(c);
        }
        let types = base
            .types()
            .iter()
            .map(|t| {
                let offerings = t
                    .offerings()
                    .iter()
                    .map(|o| {
                        let key = (t.name().to_owned(), o.zone.clone(), o.capacity_type);
                        Offering {
                            available: o.available && !self.ice.contains_key(&key),
                            ..o.clone()
                        }
                    })
                    .collect();
                InstanceType::new(
                    t.name(),
                    t.requirements().clone(),
                    offerings,
                    t.capacity().clone(),
                    t.overhead().clone(),
                )
            })
            .collect();
        let view = Arc::new(Catalog::new(types, base.well_known_labels().clone()));
        self.views
            .insert(node_class.to_owned(), (self.version, Arc::clone(&view)));
        view
    }

    /// Tries the launch's options cheapest first, each over its cheapest allowed offerings;
    /// returns the instance or, when every offering failed, `None`. Failed offerings enter the
    /// cache. `tried` counts the insufficient-capacity errors.
    pub fn launch(
        &mut self,
        catalog: &Catalog,
        options: &[String],
        requirements: &Requirements,
        now: i64,
        tried: &mut u32,
    ) -> Option<Instance> {
        self.expire(now);
        for name in options {
            let Some(t) = catalog.get(name) else { continue };
            let mut offerings: Vec<&Offering> = t
                .offerings()
                .iter()
                .filter(|o| o.available && o.matches(requirements))
                .collect();
            offerings.sort_by(|a, b| {
                (a.price, &a.zone, a.capacity_type).cmp(&(b.price, &b.zone, b.capacity_type))
            });
            for o in offerings {
                let key = (name.clone(), o.zone.clone(), o.capacity_type);
                if self.ice.contains_key(&key) {
                    continue;
                }
                let listed = self.config.unavailable.iter().any(|m| m.matches(name, o));
                let drawn = self.config.ice_probability > 0.0
                    && self.capacity.unit() < self.config.ice_probability;
                if listed || drawn {
                    *tried += 1;
                    self.ice.insert(key, now + self.config.ice_ttl_ms);
                    self.version += 1;
                    continue;
                }
                return Some(Instance {
                    instance_type: name.clone(),
                    zone: o.zone.clone(),
                    capacity_type: o.capacity_type,
                    price: o.price,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_offerings_fail_and_the_next_option_is_taken() {
        let base = Arc::new(Catalog::kwok());
        let cfg = CloudConfig {
            unavailable: vec![OfferingMatch {
                instance_type: Some("c-1x-amd64-linux".into()),
                ..OfferingMatch::default()
            }],
            ..CloudConfig::default()
        };
        let mut cloud = Cloud::new(cfg, 1);
        let mut ice = 0;
        let got = cloud
            .launch(
                &base,
                &["c-1x-amd64-linux".into(), "c-2x-amd64-linux".into()],
                &Requirements::new(),
                0,
                &mut ice,
            )
            .unwrap();
        assert_eq!(got.instance_type, "c-2x-amd64-linux");
        assert_eq!(got.capacity_type, CapacityType::Spot);
        assert_eq!(ice, 8);
        let view = cloud.view("k", &base, 1);
        let t = view.get("c-1x-amd64-linux").unwrap();
        assert!(t.offerings().iter().all(|o| !o.available));
        // After the TTL the offering is back.
        let view = cloud.view("k", &base, 200_000);
        assert!(view.get("c-1x-amd64-linux").unwrap().offerings()[0].available);
    }

    #[test]
    fn delays_follow_the_configured_ranges() {
        let mut cloud = Cloud::new(CloudConfig::default(), 3);
        for _ in 0..100 {
            let (p, j) = cloud.launch_delays();
            assert!((30_000..=60_000).contains(&p) && (10_000..=20_000).contains(&j));
            assert!((5_000..=30_000).contains(&cloud.start_delay(false)));
        }
        assert_eq!(cloud.start_delay(true), 1_000);
        assert_eq!(cloud.interruption_after(CapacityType::Spot), None);
    }
}
