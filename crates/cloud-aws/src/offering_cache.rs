//! Offerings EC2 recently refused for lack of capacity. Upstream keeps each refused offering
//! (type × zone × capacity type) out of launches for three minutes, so the next NodeClaim tries
//! elsewhere instead of hitting the same empty pool; this is that cache, with the time passed in
//! so it is tested without sleeping.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tandem_cloud::OfferingRef;

/// Upstream's TTL for an insufficient-capacity mark.
pub const DEFAULT_TTL: Duration = Duration::from_secs(180);

/// The refused offerings and when each mark lapses.
#[derive(Debug, Clone)]
pub struct OfferingCache {
    ttl: SignedDuration,
    until: BTreeMap<OfferingRef, Timestamp>,
}

impl Default for OfferingCache {
    fn default() -> Self {
        Self::new(DEFAULT_TTL)
    }
}

impl OfferingCache {
    /// An empty cache whose marks last `ttl`.
    pub fn new(ttl: Duration) -> Self {
        OfferingCache {
            ttl: SignedDuration::try_from(ttl).unwrap_or(SignedDuration::from_secs(180)),
            until: BTreeMap::new(),
        }
    }

    /// Marks `offering` unavailable from `now` for the TTL.
    pub fn mark(&mut self, offering: OfferingRef, now: Timestamp) {
        let until = now.checked_add(self.ttl).unwrap_or(now);
        self.until.insert(offering, until);
    }

    /// Whether `offering` is marked at `now`.
    pub fn is_unavailable(&self, offering: &OfferingRef, now: Timestamp) -> bool {
        self.until.get(offering).is_some_and(|u| *u > now)
    }

    /// Every offering marked at `now` (expired marks are dropped).
    pub fn unavailable(&mut self, now: Timestamp) -> std::collections::BTreeSet<OfferingRef> {
        self.until.retain(|_, u| *u > now);
        self.until.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(t: &str) -> OfferingRef {
        OfferingRef {
            instance_type: t.into(),
            zone: "us-east-1a".into(),
            capacity_type: "spot".into(),
        }
    }

    #[test]
    fn a_mark_lasts_exactly_the_ttl() {
        let mut c = OfferingCache::default();
        let t0 = Timestamp::from_second(1_000).unwrap();
        c.mark(o("m5.large"), t0);
        let at = |s: i64| Timestamp::from_second(1_000 + s).unwrap();
        assert!(c.is_unavailable(&o("m5.large"), at(179)));
        assert!(!c.is_unavailable(&o("m5.large"), at(180)));
        assert!(!c.is_unavailable(&o("c5.large"), at(1)));
        assert_eq!(c.unavailable(at(10)).len(), 1);
        assert!(c.unavailable(at(200)).is_empty());
    }
}
