//! Topology groups: one per distinct (kind, key, selector, namespaces) among the pods' spread
//! constraints and pod (anti-)affinity terms, with per-domain counts of the pods they select.
//!
//! Domains of zone, capacity type and other label keys are bits of the key's value table
//! (`prepare::KeyTable`); hostname domains are the targets themselves (nodes, in-flight claims
//! and the claims of this plan), so a new claim is always a fresh, empty hostname domain.
//!
//! Counting follows core `topology.go` `Record`: a selected pod counts for spread and affinity
//! only where its domain is decided (a single bit), and for anti-affinity in every domain it
//! could still end in. `owners` holds the same for the pods that *have* a required
//! anti-affinity term, so a pod they select stays out of their domains (upstream's inverse
//! groups).

use std::collections::BTreeMap;

use crate::selector::{LabelSelector, Labels};

use super::prepare::Masks;

/// What a group constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Topology spread.
    Spread {
        max_skew: i32,
        min_domains: Option<i32>,
        honor_affinity: bool,
        honor_taints: bool,
    },
    /// Pod affinity.
    Affinity,
    /// Pod anti-affinity.
    Anti,
}

/// Where a group's domains live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// `kubernetes.io/hostname`: one domain per target.
    Host,
    /// A tracked key slot.
    Slot(usize),
    /// A key beyond the tracked slots: no domain can be found, so owners cannot be placed.
    Untracked,
}

/// One topology group.
#[derive(Debug, Clone)]
pub struct Group {
    pub kind: Kind,
    pub key: Key,
    pub key_name: String,
    pub selector: LabelSelector,
    pub namespaces: Vec<String>,
    counts: Vec<i32>,
    owners: Vec<i32>,
    /// Selected pods recorded anywhere (decided or not); affinity bootstraps only when zero.
    pub any: i64,
}

impl Group {
    pub fn selects(&self, namespace: &str, labels: &Labels) -> bool {
        self.namespaces.iter().any(|n| n == namespace) && self.selector.matches(labels)
    }

    #[inline]
    pub fn count(&self, d: usize) -> i32 {
        self.counts.get(d).copied().unwrap_or(0)
    }

    #[inline]
    pub fn owner(&self, d: usize) -> i32 {
        self.owners.get(d).copied().unwrap_or(0)
    }

    /// Domains (bits) with a selected pod.
    pub fn occupied(&self) -> u64 {
        bits_where(&self.counts)
    }

    /// Domains (bits) an owner may be in.
    pub fn owned(&self) -> u64 {
        bits_where(&self.owners)
    }

    fn bump(v: &mut Vec<i32>, d: usize, delta: i32) {
        if v.len() <= d {
            v.resize(d + 1, 0);
        }
        v[d] += delta;
    }

    /// Records a pod on a target (`host`, `masks`): `owner` for a pod that has this group as
    /// a required anti-affinity term, else for a pod the group selects.
    pub fn record(&mut self, host: usize, masks: &Masks, delta: i32, owner: bool) {
        let anti = matches!(self.kind, Kind::Anti);
        match self.key {
            Key::Untracked => {}
            Key::Host => {
                if owner {
                    Self::bump(&mut self.owners, host, delta);
                } else {
                    Self::bump(&mut self.counts, host, delta);
                    self.any += i64::from(delta);
                }
            }
            Key::Slot(k) => {
                let m = masks[k];
                if owner {
                    for_bits(m, |d| Self::bump(&mut self.owners, d, delta));
                } else {
                    self.any += i64::from(delta);
                    if anti {
                        for_bits(m, |d| Self::bump(&mut self.counts, d, delta));
                    } else if m.count_ones() == 1 {
                        Self::bump(&mut self.counts, m.trailing_zeros() as usize, delta);
                    }
                }
            }
        }
    }
}

fn bits_where(v: &[i32]) -> u64 {
    v.iter()
        .take(64)
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .fold(0, |m, (i, _)| m | (1u64 << i))
}

/// Calls `f` with the index of every set bit, lowest first.
#[inline]
pub fn for_bits(mut m: u64, mut f: impl FnMut(usize)) {
    while m != 0 {
        let d = m.trailing_zeros() as usize;
        f(d);
        m &= m - 1;
    }
}

/// All groups of a plan, deduplicated.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub groups: Vec<Group>,
    index: BTreeMap<(Kind, String, LabelSelector, Vec<String>), u32>,
}

impl Topology {
    /// The id of the group, created on first use.
    pub fn intern(
        &mut self,
        kind: Kind,
        key_name: &str,
        key: Key,
        selector: &LabelSelector,
        namespaces: Vec<String>,
    ) -> u32 {
        let mut namespaces = namespaces;
        namespaces.sort();
        namespaces.dedup();
        let k = (kind, key_name.to_owned(), selector.clone(), namespaces);
        if let Some(id) = self.index.get(&k) {
            return *id;
        }
        let id = u32::try_from(self.groups.len()).unwrap_or(u32::MAX);
        self.groups.push(Group {
            kind,
            key,
            key_name: k.1.clone(),
            selector: k.2.clone(),
            namespaces: k.3.clone(),
            counts: Vec::new(),
            owners: Vec::new(),
            any: 0,
        });
        self.index.insert(k, id);
        id
    }

    /// The groups that select a pod of `namespace` with `labels`.
    pub fn selecting(&self, namespace: &str, labels: &Labels) -> Vec<u32> {
        self.groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.selects(namespace, labels))
            .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(kind: Kind, key: Key) -> Group {
        let mut t = Topology::default();
        t.intern(
            kind,
            "k",
            key,
            &LabelSelector::labels([("app", "a")]),
            vec!["ns".into()],
        );
        t.groups.remove(0)
    }

    #[test]
    fn spread_counts_only_decided_domains() {
        let mut g = group(
            Kind::Spread {
                max_skew: 1,
                min_domains: None,
                honor_affinity: true,
                honor_taints: false,
            },
            Key::Slot(0),
        );
        let mut m = [0u64; 8];
        m[0] = 0b110;
        g.record(0, &m, 1, false);
        assert_eq!(g.occupied(), 0);
        assert_eq!(g.any, 1);
        m[0] = 0b100;
        g.record(0, &m, 1, false);
        assert_eq!(g.occupied(), 0b100);
        assert_eq!(g.count(2), 1);
    }

    #[test]
    fn anti_affinity_counts_every_possible_domain() {
        let mut g = group(Kind::Anti, Key::Slot(0));
        let mut m = [0u64; 8];
        m[0] = 0b011;
        g.record(0, &m, 1, false);
        g.record(0, &m, 1, true);
        assert_eq!(g.occupied(), 0b011);
        assert_eq!(g.owned(), 0b011);
        g.record(0, &m, -1, true);
        assert_eq!(g.owned(), 0);
    }

    #[test]
    fn hostname_domains_are_targets() {
        let mut g = group(Kind::Anti, Key::Host);
        g.record(7, &[0; 8], 1, false);
        assert_eq!(g.count(7), 1);
        assert_eq!(g.count(3), 0);
        assert_eq!(g.count(100), 0);
    }

    #[test]
    fn groups_are_deduplicated_and_select_by_namespace() {
        let mut t = Topology::default();
        let sel = LabelSelector::labels([("app", "a")]);
        let a = t.intern(Kind::Anti, "k", Key::Host, &sel, vec!["x".into()]);
        let b = t.intern(Kind::Anti, "k", Key::Host, &sel, vec!["x".into()]);
        let c = t.intern(Kind::Affinity, "k", Key::Host, &sel, vec!["x".into()]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let labels: Labels = [("app".to_owned(), "a".to_owned())].into();
        assert_eq!(t.selecting("x", &labels), vec![a, c]);
        assert!(t.selecting("y", &labels).is_empty());
    }
}
