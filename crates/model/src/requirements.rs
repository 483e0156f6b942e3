//! The node-requirements algebra, in Karpenter's normal form.
//!
//! Every operator (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`, `Gte`, `Lte`) is stored
//! as one shape (core `pkg/scheduling/requirement.go`):
//!
//! ```text
//!   Requirement { key, complement, values, gte, lte, min_values }
//!
//!   In [a b]       complement=false values={a,b}
//!   DoesNotExist   complement=false values={}
//!   NotIn [a]      complement=true  values={a}
//!   Exists         complement=true  values={}
//!   Gt 4 / Gte 5   complement=true  values={} gte=5      (bounds are inclusive)
//!   Lt 9 / Lte 8   complement=true  values={} lte=8
//! ```
//!
//! A requirement *allows* a value when the value is in (or, for a complement, not in) the set and,
//! if bounds are present, parses as an integer within them. Intersection is set algebra on that
//! shape; a non-complement result drops its bounds after filtering its values by them, and crossing
//! bounds collapse to `DoesNotExist`. Unlike upstream, the value set is a `BTreeSet`, `any_value`
//! is deterministic, and error text names the first conflicting key in sorted order.
//!
//! [`Requirements`] is a set of requirements keyed by label key; adding a requirement for a key
//! that is already present intersects the two, which is how a pod's `nodeSelector`, its
//! node-affinity term, a NodePool and an instance type are combined.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::labels::{self, LabelSet};

/// A node-selector operator as written in the API (`spec.requirements[].operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// The label has one of the values.
    In,
    /// The label is absent or has none of the values.
    NotIn,
    /// The label is present, with any value.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// The label is an integer strictly greater than the value.
    Gt,
    /// The label is an integer strictly less than the value.
    Lt,
    /// The label is an integer greater than or equal to the value (Karpenter v1.9+).
    Gte,
    /// The label is an integer less than or equal to the value (Karpenter v1.9+).
    Lte,
}

impl Operator {
    /// The operator's API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
            Operator::Gt => "Gt",
            Operator::Lt => "Lt",
            Operator::Gte => "Gte",
            Operator::Lte => "Lte",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operator {
    type Err = RequirementError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            "Gt" => Operator::Gt,
            "Lt" => Operator::Lt,
            "Gte" => Operator::Gte,
            "Lte" => Operator::Lte,
            other => {
                return Err(RequirementError::UnknownOperator {
                    operator: other.to_owned(),
                });
            }
        })
    }
}

/// Why an API-form requirement cannot be turned into the normal form.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequirementError {
    /// The operator is not one of the eight supported.
    #[error(
        "unknown operator {operator:?} (expected In, NotIn, Exists, DoesNotExist, Gt, Lt, Gte or Lte)"
    )]
    UnknownOperator {
        /// The operator as written.
        operator: String,
    },
    /// The key is empty.
    #[error("requirement key is empty")]
    EmptyKey,
    /// `In`/`NotIn` without values.
    #[error("key {key:?}: operator {operator} needs at least one value")]
    MissingValues {
        /// Requirement key.
        key: String,
        /// Operator used.
        operator: Operator,
    },
    /// `Exists`/`DoesNotExist` with values.
    #[error("key {key:?}: operator {operator} takes no values, got {count}")]
    UnexpectedValues {
        /// Requirement key.
        key: String,
        /// Operator used.
        operator: Operator,
        /// How many values were given.
        count: usize,
    },
    /// A numeric operator without exactly one integer value.
    #[error("key {key:?}: operator {operator} needs exactly one integer value, got {values:?}")]
    NotOneInteger {
        /// Requirement key.
        key: String,
        /// Operator used.
        operator: Operator,
        /// The values given.
        values: Vec<String>,
    },
}

/// One requirement in API form (`NodeSelectorRequirementWithMinValues`): what a NodePool,
/// NodeClaim or pod affinity term spells out, before normalisation.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub struct SelectorRequirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub operator: Operator,
    /// Values, sorted when rendered by this crate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Minimum number of distinct values the launch must keep open (Karpenter `minValues`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_values: Option<u32>,
}

impl serde::Serialize for Operator {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Operator {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One label key's constraint in normal form (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    complement: bool,
    values: BTreeSet<String>,
    gte: Option<i64>,
    lte: Option<i64>,
    min_values: Option<u32>,
}

/// True when `value` satisfies the inclusive bounds (always true without bounds).
fn within_bounds(value: &str, gte: Option<i64>, lte: Option<i64>) -> bool {
    if gte.is_none() && lte.is_none() {
        return true;
    }
    // Go's strconv.Atoi and Rust's i64 parsing accept the same texts: optional sign, digits.
    let Ok(v) = value.parse::<i64>() else {
        return false;
    };
    gte.is_none_or(|g| v >= g) && lte.is_none_or(|l| v <= l)
}

impl Requirement {
    /// Normalises one API-form requirement. The key is rewritten through [`labels::ALIASES`];
    /// `Gt N` becomes `Gte N+1` and `Lt N` becomes `Lte N-1` (an impossible bound becomes
    /// `DoesNotExist`).
    pub fn new(
        key: &str,
        operator: Operator,
        values: &[String],
        min_values: Option<u32>,
    ) -> Result<Self, RequirementError> {
        if key.is_empty() {
            return Err(RequirementError::EmptyKey);
        }
        let key = labels::normalize_key(key).to_owned();
        let base = |complement: bool, values: BTreeSet<String>| Requirement {
            key: key.clone(),
            complement,
            values,
            gte: None,
            lte: None,
            min_values,
        };
        let one_integer = || -> Result<i64, RequirementError> {
            match values {
                [v] => v.parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| RequirementError::NotOneInteger {
                key: key.clone(),
                operator,
                values: values.to_vec(),
            })
        };
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    return Err(RequirementError::MissingValues {
                        key: key.clone(),
                        operator,
                    });
                }
                Ok(base(
                    operator == Operator::NotIn,
                    values.iter().cloned().collect(),
                ))
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    return Err(RequirementError::UnexpectedValues {
                        key: key.clone(),
                        operator,
                        count: values.len(),
                    });
                }
                Ok(base(operator == Operator::Exists, BTreeSet::new()))
            }
            Operator::Gt | Operator::Gte => {
                let n = one_integer()?;
                let bound = if operator == Operator::Gt {
                    n.checked_add(1)
                } else {
                    Some(n)
                };
                Ok(match bound {
                    Some(g) => Requirement {
                        gte: Some(g),
                        ..base(true, BTreeSet::new())
                    },
                    None => base(false, BTreeSet::new()),
                })
            }
            Operator::Lt | Operator::Lte => {
                let n = one_integer()?;
                let bound = if operator == Operator::Lt {
                    n.checked_sub(1)
                } else {
                    Some(n)
                };
                Ok(match bound {
                    Some(l) => Requirement {
                        lte: Some(l),
                        ..base(true, BTreeSet::new())
                    },
                    None => base(false, BTreeSet::new()),
                })
            }
        }
    }

    /// Normalises an API-form requirement.
    pub fn from_api(api: &SelectorRequirement) -> Result<Self, RequirementError> {
        Self::new(&api.key, api.operator, &api.values, api.min_values)
    }

    /// `key In [values]`; with no values this is `DoesNotExist`, as in the algebra.
    pub fn in_values<S: Into<String>>(key: &str, values: impl IntoIterator<Item = S>) -> Self {
        Requirement {
            key: labels::normalize_key(key).to_owned(),
            complement: false,
            values: values.into_iter().map(Into::into).collect(),
            gte: None,
            lte: None,
            min_values: None,
        }
    }

    /// `key NotIn [values]`; with no values this is `Exists`.
    pub fn not_in<S: Into<String>>(key: &str, values: impl IntoIterator<Item = S>) -> Self {
        Requirement {
            complement: true,
            ..Self::in_values(key, values)
        }
    }

    /// `key Exists`.
    pub fn exists(key: &str) -> Self {
        Self::not_in(key, std::iter::empty::<String>())
    }

    /// `key DoesNotExist`.
    pub fn does_not_exist(key: &str) -> Self {
        Self::in_values(key, std::iter::empty::<String>())
    }

    /// `key Gte n`: an integer label of at least `n`.
    pub fn at_least(key: &str, n: i64) -> Self {
        Requirement {
            gte: Some(n),
            ..Self::exists(key)
        }
    }

    /// `key Lte n`: an integer label of at most `n`.
    pub fn at_most(key: &str, n: i64) -> Self {
        Requirement {
            lte: Some(n),
            ..Self::exists(key)
        }
    }

    /// The same requirement with a `minValues`.
    pub fn with_min_values(self, min_values: Option<u32>) -> Self {
        Requirement { min_values, ..self }
    }

    /// The label key (already normalised).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// True for `NotIn`/`Exists`/bounded shapes, whose value set lists exclusions.
    pub fn is_complement(&self) -> bool {
        self.complement
    }

    /// The listed values: allowed ones for `In`, excluded ones for a complement.
    pub fn values(&self) -> &BTreeSet<String> {
        &self.values
    }

    /// Inclusive lower bound, if any.
    pub fn gte(&self) -> Option<i64> {
        self.gte
    }

    /// Inclusive upper bound, if any.
    pub fn lte(&self) -> Option<i64> {
        self.lte
    }

    /// Karpenter `minValues`, if any.
    pub fn min_values(&self) -> Option<u32> {
        self.min_values
    }

    /// The operator this shape reads as (bounds read as `Exists` or `NotIn` with bounds), as
    /// upstream's `Operator()`.
    pub fn operator(&self) -> Operator {
        match (self.complement, self.values.is_empty()) {
            (true, false) => Operator::NotIn,
            (true, true) => Operator::Exists,
            (false, false) => Operator::In,
            (false, true) => Operator::DoesNotExist,
        }
    }

    /// True when a node whose label `key` has `value` satisfies this requirement.
    pub fn has(&self, value: &str) -> bool {
        self.values.contains(value) != self.complement && within_bounds(value, self.gte, self.lte)
    }

    /// The requirement that allows exactly the values both allow (core `Intersection`).
    ///
    /// Keeps `self`'s key; `minValues` is the larger of the two.
    pub fn intersection(&self, other: &Requirement) -> Requirement {
        let complement = self.complement && other.complement;
        let gte = self.gte.max(other.gte);
        let lte = match (self.lte, other.lte) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let min_values = self.min_values.max(other.min_values);
        if let (Some(g), Some(l)) = (gte, lte)
            && g > l
        {
            return Requirement {
                min_values,
                ..Self::does_not_exist(&self.key)
            };
        }
        let values: BTreeSet<String> = match (self.complement, other.complement) {
            (true, true) => self.values.union(&other.values).cloned().collect(),
            (true, false) => other.values.difference(&self.values).cloned().collect(),
            (false, true) => self.values.difference(&other.values).cloned().collect(),
            (false, false) => self.values.intersection(&other.values).cloned().collect(),
        };
        let values = values
            .into_iter()
            .filter(|v| within_bounds(v, gte, lte))
            .collect();
        let (gte, lte) = if complement { (gte, lte) } else { (None, None) };
        Requirement {
            key: self.key.clone(),
            complement,
            values,
            gte,
            lte,
            min_values,
        }
    }

    /// True when some value satisfies both requirements; allocation-free, unlike
    /// [`intersection`](Self::intersection).
    pub fn has_intersection(&self, other: &Requirement) -> bool {
        let gte = self.gte.max(other.gte);
        let lte = match (self.lte, other.lte) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let (Some(g), Some(l)) = (gte, lte)
            && g > l
        {
            return false;
        }
        match (self.complement, other.complement) {
            (true, true) => true,
            (true, false) => other
                .values
                .iter()
                .any(|v| !self.values.contains(v) && within_bounds(v, gte, lte)),
            (false, true) => self
                .values
                .iter()
                .any(|v| !other.values.contains(v) && within_bounds(v, gte, lte)),
            (false, false) => self
                .values
                .iter()
                .any(|v| other.values.contains(v) && within_bounds(v, gte, lte)),
        }
    }

    /// One allowed value, chosen deterministically: the smallest listed value for `In`, the
    /// smallest allowed integer (from the lower bound, else from 0) for complements, `None` for
    /// `DoesNotExist` or an exhausted range. Upstream draws a random integer here.
    pub fn any_value(&self) -> Option<String> {
        if !self.complement {
            return self.values.iter().next().cloned();
        }
        let excluded = i64::try_from(self.values.len()).unwrap_or(i64::MAX);
        let start = self.gte.unwrap_or_else(|| match self.lte {
            Some(l) if l < 0 => l.saturating_sub(excluded),
            _ => 0,
        });
        let mut candidate = start;
        for _ in 0..=self.values.len() {
            if self.lte.is_some_and(|l| candidate > l) {
                return None;
            }
            let text = candidate.to_string();
            if !self.values.contains(&text) {
                return Some(text);
            }
            candidate = candidate.checked_add(1)?;
        }
        None
    }

    /// True unless this is an `In` with fewer values than its `minValues`.
    pub fn satisfies_min_values(&self) -> bool {
        match self.min_values {
            Some(n) if !self.complement => {
                self.values.len() >= usize::try_from(n).unwrap_or(usize::MAX)
            }
            _ => true,
        }
    }

    /// Renders back to API form. One requirement may need several entries (`NotIn` plus `Gte`
    /// plus `Lte`); parsing them back and intersecting gives this requirement again. Bounds are
    /// rendered inclusively (`Gte`/`Lte`), as Karpenter does.
    pub fn to_api(&self) -> Vec<SelectorRequirement> {
        let entry = |operator: Operator, values: Vec<String>| SelectorRequirement {
            key: self.key.clone(),
            operator,
            values,
            min_values: self.min_values,
        };
        if !self.complement {
            return vec![if self.values.is_empty() {
                entry(Operator::DoesNotExist, Vec::new())
            } else {
                entry(Operator::In, self.values.iter().cloned().collect())
            }];
        }
        let mut out = Vec::new();
        if !self.values.is_empty() {
            out.push(entry(
                Operator::NotIn,
                self.values.iter().cloned().collect(),
            ));
        }
        if let Some(g) = self.gte {
            out.push(entry(Operator::Gte, vec![g.to_string()]));
        }
        if let Some(l) = self.lte {
            out.push(entry(Operator::Lte, vec![l.to_string()]));
        }
        if out.is_empty() {
            out.push(entry(Operator::Exists, Vec::new()));
        }
        out
    }
}

impl fmt::Display for Requirement {
    /// Upstream's `String()`: `key In [a b]`, at most five values then `and N others`, then
    /// bounds and minValues.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.operator();
        write!(f, "{} {}", self.key, op)?;
        if matches!(op, Operator::In | Operator::NotIn) {
            let shown: Vec<&str> = self.values.iter().take(5).map(String::as_str).collect();
            write!(f, " [{}", shown.join(" "))?;
            if self.values.len() > 5 {
                write!(f, " and {} others", self.values.len() - 5)?;
            }
            f.write_str("]")?;
        }
        if let Some(g) = self.gte {
            write!(f, " >={g}")?;
        }
        if let Some(l) = self.lte {
            write!(f, " <={l}")?;
        }
        if let Some(n) = self.min_values {
            write!(f, " minValues {n}")?;
        }
        Ok(())
    }
}

/// Why two requirement sets cannot describe the same node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Incompatible {
    /// The incoming side requires a custom label the existing side never defines.
    #[error("label {key:?} does not have known values{}", hint_text(.hint))]
    UndefinedLabel {
        /// The label key.
        key: String,
        /// A close well-known or existing key, when one looks like a typo of this one.
        hint: Option<String>,
    },
    /// Both sides constrain the key, and no value satisfies both.
    #[error("key {key:?}: {incoming} does not intersect {existing}")]
    NoCommonValue {
        /// The label key.
        key: String,
        /// The incoming requirement, rendered.
        incoming: Box<Requirement>,
        /// The existing requirement, rendered.
        existing: Box<Requirement>,
    },
}

fn hint_text(hint: &Option<String>) -> String {
    hint.as_ref()
        .map(|h| format!(" (did you mean {h:?}?)"))
        .unwrap_or_default()
}

/// Why a set of requirements cannot keep `minValues` distinct values open.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "minValues requirement is not met for label {key:?}: needs {required} values, found {found}"
)]
pub struct MinValuesError {
    /// The label key (the first failing one in sorted order).
    pub key: String,
    /// The `minValues` asked for.
    pub required: u32,
    /// How many distinct values were available.
    pub found: usize,
}

/// A conjunction of requirements, at most one per label key (intersected on insert).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Requirements {
    by_key: BTreeMap<String, Requirement>,
}

impl Requirements {
    /// The empty set, which every node satisfies.
    pub fn new() -> Self {
        Self::default()
    }

    /// Normalises a list of API-form requirements, intersecting repeated keys.
    pub fn from_api(api: &[SelectorRequirement]) -> Result<Self, RequirementError> {
        let mut out = Self::new();
        for r in api {
            out.add(Requirement::from_api(r)?);
        }
        Ok(out)
    }

    /// One `In [value]` per label, the meaning of a `nodeSelector` or a node's labels.
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out = Self::new();
        for (k, v) in labels {
            out.add(Requirement::in_values(k, [v]));
        }
        out
    }

    /// Adds a requirement, intersecting it with any existing one for the same key.
    pub fn add(&mut self, requirement: Requirement) {
        match self.by_key.get_mut(&requirement.key) {
            Some(existing) => *existing = requirement.intersection(existing),
            None => {
                self.by_key.insert(requirement.key.clone(), requirement);
            }
        }
    }

    /// Adds every requirement of `other`.
    pub fn add_all(&mut self, other: &Requirements) {
        for r in other.by_key.values() {
            self.add(r.clone());
        }
    }

    /// The conjunction of both sets.
    pub fn intersect(&self, other: &Requirements) -> Requirements {
        let mut out = self.clone();
        out.add_all(other);
        out
    }

    /// The requirement for `key`, if the set constrains it.
    pub fn get(&self, key: &str) -> Option<&Requirement> {
        self.by_key.get(key)
    }

    /// The requirement for `key`, or `Exists` when unconstrained (upstream `Get`).
    pub fn get_or_exists(&self, key: &str) -> Cow<'_, Requirement> {
        self.by_key
            .get(key)
            .map_or_else(|| Cow::Owned(Requirement::exists(key)), Cow::Borrowed)
    }

    /// True when the set constrains `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    /// True when the set constrains `key` and allows `value` for it.
    pub fn has(&self, key: &str, value: &str) -> bool {
        self.by_key.get(key).is_some_and(|r| r.has(value))
    }

    /// True when `value` is allowed for `key`, counting an unconstrained key as allowing all.
    pub fn allows(&self, key: &str, value: &str) -> bool {
        self.by_key.get(key).is_none_or(|r| r.has(value))
    }

    /// A deterministic allowed value for `key` (see [`Requirement::any_value`]).
    pub fn any_value(&self, key: &str) -> Option<String> {
        self.get_or_exists(key).any_value()
    }

    /// The requirements in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Requirement> {
        self.by_key.values()
    }

    /// The constrained keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.by_key.keys().map(String::as_str)
    }

    /// Number of constrained keys.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when nothing is constrained.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// True when any requirement carries `minValues`.
    pub fn has_min_values(&self) -> bool {
        self.by_key.values().any(|r| r.min_values.is_some())
    }

    /// True when every shared key has a common value (undefined keys are fine), without
    /// building an error; the hot-path form of [`conflict`](Self::conflict).
    pub fn intersects(&self, incoming: &Requirements) -> bool {
        self.conflict_key(incoming).is_none()
    }

    /// The first shared key (in sorted order) where the two sets have no common value
    /// (upstream `Intersects`). Two "absent-or-excluded" shapes (`NotIn`/`DoesNotExist`) never
    /// conflict, since a node without the label satisfies both.
    pub fn conflict(&self, incoming: &Requirements) -> Option<Incompatible> {
        let key = self.conflict_key(incoming)?;
        let existing = self.by_key.get(key)?;
        let incoming = incoming.by_key.get(key)?;
        Some(Incompatible::NoCommonValue {
            key: key.to_owned(),
            incoming: Box::new(incoming.clone()),
            existing: Box::new(existing.clone()),
        })
    }

    fn conflict_key<'a>(&'a self, incoming: &'a Requirements) -> Option<&'a str> {
        let (small, large) = if self.by_key.len() <= incoming.by_key.len() {
            (&self.by_key, &incoming.by_key)
        } else {
            (&incoming.by_key, &self.by_key)
        };
        let absent_ok =
            |r: &Requirement| matches!(r.operator(), Operator::NotIn | Operator::DoesNotExist);
        small.iter().find_map(|(key, a)| {
            let b = large.get(key)?;
            if a.has_intersection(b) || (absent_ok(a) && absent_ok(b)) {
                return None;
            }
            Some(key.as_str())
        })
    }

    /// Checks that `incoming` can be met by a node described by `self`, with every label
    /// required to be defined (upstream `Compatible` without options).
    pub fn compatible(&self, incoming: &Requirements) -> Result<(), Incompatible> {
        self.compatible_allowing(incoming, &LabelSet::empty())
    }

    /// Checks that `incoming` can be met by a node described by `self` (upstream `Compatible`).
    ///
    /// A key in `allow_undefined` (typically [`LabelSet::for_provider`]) may be missing from
    /// `self`; any other incoming key must be defined by `self` unless its operator is `NotIn` or
    /// `DoesNotExist`. Then every shared key must have a common value. The error names the first
    /// offending key in sorted order and, for an undefined key, suggests a well-known or existing
    /// key it may be a typo of.
    pub fn compatible_allowing(
        &self,
        incoming: &Requirements,
        allow_undefined: &LabelSet,
    ) -> Result<(), Incompatible> {
        for (key, r) in &incoming.by_key {
            if allow_undefined.contains(key)
                || self.by_key.contains_key(key)
                || matches!(r.operator(), Operator::NotIn | Operator::DoesNotExist)
            {
                continue;
            }
            return Err(Incompatible::UndefinedLabel {
                key: key.clone(),
                hint: self.typo_hint(key, allow_undefined),
            });
        }
        match self.conflict(incoming) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A key `key` may be a typo of: first upstream's rule (a candidate containing `key`, or
    /// ending with its name part), then the closest candidate by edit distance ≤ 3. Candidates
    /// are the allowed-undefined keys, every well-known key, then `self`'s keys, each sorted.
    fn typo_hint(&self, key: &str, allow_undefined: &LabelSet) -> Option<String> {
        let all = LabelSet::all();
        let candidates: Vec<&str> = allow_undefined
            .iter()
            .chain(all.iter())
            .chain(self.keys())
            .filter(|c| *c != key)
            .collect();
        let name = key.split_once('/').map_or(key, |(_, n)| n);
        if let Some(c) = candidates
            .iter()
            .find(|c| c.contains(key) || (!name.is_empty() && c.ends_with(name)))
        {
            return Some((*c).to_owned());
        }
        candidates
            .iter()
            .map(|c| (edit_distance(key, c), *c))
            .filter(|(d, _)| *d <= 3)
            .min_by_key(|(d, _)| *d)
            .map(|(_, c)| c.to_owned())
    }

    /// Checks `minValues` against instance types taken in order (cheapest first): returns how
    /// many leading types are needed so that, for every key with `minValues`, the types' allowed
    /// values for that key number at least `minValues` (upstream `SatisfiesMinValues`).
    pub fn min_values_needed<'a>(
        &self,
        instance_types: impl IntoIterator<Item = &'a Requirements>,
    ) -> Result<usize, MinValuesError> {
        let keyed: Vec<(&str, u32)> = self
            .by_key
            .values()
            .filter_map(|r| r.min_values.map(|n| (r.key.as_str(), n)))
            .collect();
        if keyed.is_empty() {
            return Ok(0);
        }
        let mut seen: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); keyed.len()];
        let mut count = 0;
        for it in instance_types {
            count += 1;
            for ((key, _), set) in keyed.iter().zip(seen.iter_mut()) {
                if let Some(r) = it.get(key)
                    && !r.complement
                {
                    set.extend(r.values.iter().map(String::as_str));
                }
            }
            let met = keyed
                .iter()
                .zip(&seen)
                .all(|((_, n), set)| set.len() >= usize::try_from(*n).unwrap_or(usize::MAX));
            if met {
                return Ok(count);
            }
        }
        let ((key, required), set) = keyed
            .iter()
            .zip(&seen)
            .find(|((_, n), set)| set.len() < usize::try_from(*n).unwrap_or(usize::MAX))
            .ok_or(MinValuesError {
                key: String::new(),
                required: 0,
                found: 0,
            })?;
        Err(MinValuesError {
            key: (*key).to_owned(),
            required: *required,
            found: set.len(),
        })
    }

    /// Renders back to API form, in key order; `from_api(to_api(r)) == r`.
    pub fn to_api(&self) -> Vec<SelectorRequirement> {
        self.by_key.values().flat_map(Requirement::to_api).collect()
    }
}

impl fmt::Display for Requirements {
    /// Upstream's `String()`: requirements joined by `, ` in key order, hostname omitted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for r in self.by_key.values().filter(|r| r.key != labels::HOSTNAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromIterator<Requirement> for Requirements {
    fn from_iter<T: IntoIterator<Item = Requirement>>(iter: T) -> Self {
        let mut out = Requirements::new();
        for r in iter {
            out.add(r);
        }
        out
    }
}

/// Levenshtein distance over bytes, for typo hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K: &str = "key";

    fn api(op: Operator, values: &[&str]) -> Requirement {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        Requirement::new(K, op, &values, None).unwrap()
    }

    fn complement(values: &[&str], gte: Option<i64>, lte: Option<i64>) -> Requirement {
        Requirement {
            key: K.to_owned(),
            complement: true,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            gte,
            lte,
            min_values: None,
        }
    }

    /// The fourteen operands of upstream's truth table, by name.
    fn named(name: &str) -> Requirement {
        use Operator::*;
        match name {
            "exists" => api(Exists, &[]),
            "dne" => api(DoesNotExist, &[]),
            "inA" => api(In, &["A"]),
            "inB" => api(In, &["B"]),
            "inAB" => api(In, &["A", "B"]),
            "notInA" => api(NotIn, &["A"]),
            "in1" => api(In, &["1"]),
            "in9" => api(In, &["9"]),
            "in19" => api(In, &["1", "9"]),
            "notIn12" => api(NotIn, &["1", "2"]),
            "gt1" => api(Gt, &["1"]),
            "gt9" => api(Gt, &["9"]),
            "lt1" => api(Lt, &["1"]),
            "lt9" => api(Lt, &["9"]),
            // Results that are not themselves operands.
            "notInA12" => complement(&["A", "1", "2"], None, None),
            "notIn2_gte2" => complement(&["2"], Some(2), None),
            "notIn12_lte8" => complement(&["1", "2"], None, Some(8)),
            "gte2_lte8" => complement(&[], Some(2), Some(8)),
            other => panic!("unknown operand {other}"),
        }
    }

    const OPERANDS: [&str; 14] = [
        "exists", "dne", "inA", "inB", "inAB", "notInA", "in1", "in9", "in19", "notIn12", "gt1",
        "gt9", "lt1", "lt9",
    ];

    /// Row = left operand, column = right operand (in `OPERANDS` order), cell = the
    /// intersection. Written from Karpenter's documented behaviour (requirement_test.go).
    const TRUTH_TABLE: [(&str, [&str; 14]); 14] = [
        ("exists", OPERANDS),
        ("dne", ["dne"; 14]),
        (
            "inA",
            [
                "inA", "dne", "inA", "dne", "inA", "dne", "dne", "dne", "dne", "inA", "dne", "dne",
                "dne", "dne",
            ],
        ),
        (
            "inB",
            [
                "inB", "dne", "dne", "inB", "inB", "inB", "dne", "dne", "dne", "inB", "dne", "dne",
                "dne", "dne",
            ],
        ),
        (
            "inAB",
            [
                "inAB", "dne", "inA", "inB", "inAB", "inB", "dne", "dne", "dne", "inAB", "dne",
                "dne", "dne", "dne",
            ],
        ),
        (
            "notInA",
            [
                "notInA", "dne", "dne", "inB", "inB", "notInA", "in1", "in9", "in19", "notInA12",
                "gt1", "gt9", "lt1", "lt9",
            ],
        ),
        (
            "in1",
            [
                "in1", "dne", "dne", "dne", "dne", "in1", "in1", "dne", "in1", "dne", "dne", "dne",
                "dne", "in1",
            ],
        ),
        (
            "in9",
            [
                "in9", "dne", "dne", "dne", "dne", "in9", "dne", "in9", "in9", "in9", "in9", "dne",
                "dne", "dne",
            ],
        ),
        (
            "in19",
            [
                "in19", "dne", "dne", "dne", "dne", "in19", "in1", "in9", "in19", "in9", "in9",
                "dne", "dne", "in1",
            ],
        ),
        (
            "notIn12",
            [
                "notIn12",
                "dne",
                "inA",
                "inB",
                "inAB",
                "notInA12",
                "dne",
                "in9",
                "in9",
                "notIn12",
                "notIn2_gte2",
                "gt9",
                "lt1",
                "notIn12_lte8",
            ],
        ),
        (
            "gt1",
            [
                "gt1",
                "dne",
                "dne",
                "dne",
                "dne",
                "gt1",
                "dne",
                "in9",
                "in9",
                "notIn2_gte2",
                "gt1",
                "gt9",
                "dne",
                "gte2_lte8",
            ],
        ),
        (
            "gt9",
            [
                "gt9", "dne", "dne", "dne", "dne", "gt9", "dne", "dne", "dne", "gt9", "gt9", "gt9",
                "dne", "dne",
            ],
        ),
        (
            "lt1",
            [
                "lt1", "dne", "dne", "dne", "dne", "lt1", "dne", "dne", "dne", "lt1", "dne", "dne",
                "lt1", "lt1",
            ],
        ),
        (
            "lt9",
            [
                "lt9",
                "dne",
                "dne",
                "dne",
                "dne",
                "lt9",
                "in1",
                "dne",
                "in1",
                "notIn12_lte8",
                "gte2_lte8",
                "dne",
                "lt1",
                "lt9",
            ],
        ),
    ];

    #[test]
    fn intersection_matches_the_upstream_truth_table() {
        for (lhs, row) in TRUTH_TABLE {
            for (rhs, want) in OPERANDS.iter().zip(row) {
                let got = named(lhs).intersection(&named(rhs));
                assert_eq!(got, named(want), "{lhs} ∩ {rhs}");
            }
        }
    }

    #[test]
    fn intersection_with_min_values_keeps_the_larger() {
        let a = named("inAB").with_min_values(Some(2));
        let b = named("notInA").with_min_values(Some(1));
        let got = a.intersection(&b);
        assert_eq!(got.min_values(), Some(2));
        assert_eq!(got.values().iter().collect::<Vec<_>>(), ["B"]);
        assert!(!got.satisfies_min_values());
        let crossed = named("gt9")
            .with_min_values(Some(3))
            .intersection(&named("lt1"));
        assert_eq!(crossed.operator(), Operator::DoesNotExist);
        assert_eq!(crossed.min_values(), Some(3));
    }

    #[test]
    fn has_matches_the_upstream_table() {
        let allowed: [(&str, &[&str]); 14] = [
            ("exists", &["A", "B", "1", "2", "9"]),
            ("dne", &[]),
            ("inA", &["A"]),
            ("inB", &["B"]),
            ("inAB", &["A", "B"]),
            ("notInA", &["B", "1", "2", "9"]),
            ("in1", &["1"]),
            ("in9", &["9"]),
            ("in19", &["1", "9"]),
            ("notIn12", &["A", "B", "9"]),
            ("gt1", &["2", "9"]),
            ("gt9", &[]),
            ("lt1", &[]),
            ("lt9", &["1", "2"]),
        ];
        for (name, yes) in allowed {
            for v in ["A", "B", "1", "2", "9"] {
                assert_eq!(named(name).has(v), yes.contains(&v), "{name} has {v}");
            }
        }
    }

    #[test]
    fn operators_and_strings_match_upstream() {
        let cases = [
            ("exists", Operator::Exists, "key Exists"),
            ("dne", Operator::DoesNotExist, "key DoesNotExist"),
            ("inAB", Operator::In, "key In [A B]"),
            ("notInA", Operator::NotIn, "key NotIn [A]"),
            ("notIn12", Operator::NotIn, "key NotIn [1 2]"),
            ("gt1", Operator::Exists, "key Exists >=2"),
            ("gt9", Operator::Exists, "key Exists >=10"),
            ("lt1", Operator::Exists, "key Exists <=0"),
            ("lt9", Operator::Exists, "key Exists <=8"),
            ("gte2_lte8", Operator::Exists, "key Exists >=2 <=8"),
        ];
        for (name, op, text) in cases {
            assert_eq!(named(name).operator(), op, "{name}");
            assert_eq!(named(name).to_string(), text, "{name}");
        }
        let many = Requirement::in_values(K, ["a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!(many.to_string(), "key In [a b c d e and 2 others]");
    }

    #[test]
    fn gte_and_lte_are_inclusive_and_gt_lt_shift_by_one() {
        let gte2 = api(Operator::Gte, &["2"]);
        assert!(gte2.has("2") && gte2.has("100") && !gte2.has("1") && !gte2.has("x"));
        assert_eq!(gte2, api(Operator::Gt, &["1"]));
        assert_eq!(api(Operator::Lte, &["8"]), api(Operator::Lt, &["9"]));
        let both = api(Operator::Gt, &["4"]).intersection(&api(Operator::Gte, &["5"]));
        assert_eq!(both.gte(), Some(5));
        let both = api(Operator::Gt, &["5"]).intersection(&api(Operator::Gte, &["5"]));
        assert_eq!(both.gte(), Some(6));
        assert_eq!(
            api(Operator::Gt, &[&i64::MAX.to_string()]).operator(),
            Operator::DoesNotExist
        );
        assert_eq!(
            api(Operator::Lt, &[&i64::MIN.to_string()]).operator(),
            Operator::DoesNotExist
        );
        assert!(api(Operator::Gte, &["+5"]).has("007"));
    }

    #[test]
    fn render_gives_upstream_api_form() {
        let one = |name: &str| {
            let mut v = named(name).to_api();
            assert_eq!(v.len(), 1, "{name}");
            v.remove(0)
        };
        assert_eq!(one("gt1").operator, Operator::Gte);
        assert_eq!(one("gt1").values, ["2"]);
        assert_eq!(one("lt9").operator, Operator::Lte);
        assert_eq!(one("lt9").values, ["8"]);
        assert_eq!(one("inAB").values, ["A", "B"]);
        assert_eq!(one("exists").operator, Operator::Exists);
        assert_eq!(one("dne").operator, Operator::DoesNotExist);
        let split = named("notIn12_lte8").to_api();
        assert_eq!(
            split.iter().map(|r| r.operator).collect::<Vec<_>>(),
            [Operator::NotIn, Operator::Lte]
        );
        assert_eq!(
            Requirements::from_api(&split).unwrap().get(K),
            Some(&named("notIn12_lte8"))
        );
    }

    #[test]
    fn invalid_api_requirements_are_rejected_with_reasons() {
        let bad = |op: Operator, values: &[&str]| {
            let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
            Requirement::new(K, op, &values, None)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad(Operator::In, &[]),
            "key \"key\": operator In needs at least one value"
        );
        assert_eq!(
            bad(Operator::Exists, &["a"]),
            "key \"key\": operator Exists takes no values, got 1"
        );
        assert_eq!(
            bad(Operator::Gt, &["x"]),
            "key \"key\": operator Gt needs exactly one integer value, got [\"x\"]"
        );
        assert!(Requirement::new(K, Operator::Lt, &["1".into(), "2".into()], None).is_err());
        assert!(Requirement::new("", Operator::Exists, &[], None).is_err());
        assert!("Foo".parse::<Operator>().is_err());
    }

    #[test]
    fn aliases_are_normalized_on_construction() {
        let r = Requirement::new(
            "failure-domain.beta.kubernetes.io/zone",
            Operator::In,
            &["a".into()],
            None,
        )
        .unwrap();
        assert_eq!(r.key(), labels::ZONE);
        let reqs = Requirements::from_labels([("beta.kubernetes.io/arch", "arm64")]);
        assert!(reqs.has(labels::ARCH, "arm64"));
    }

    #[test]
    fn any_value_is_deterministic() {
        assert_eq!(named("inAB").any_value().as_deref(), Some("A"));
        assert_eq!(named("dne").any_value(), None);
        assert_eq!(named("exists").any_value().as_deref(), Some("0"));
        assert_eq!(named("notIn12").any_value().as_deref(), Some("0"));
        assert_eq!(
            Requirement::not_in(K, ["0", "1"]).any_value().as_deref(),
            Some("2")
        );
        assert_eq!(named("gt9").any_value().as_deref(), Some("10"));
        assert_eq!(named("lt1").any_value().as_deref(), Some("0"));
        assert_eq!(
            Requirement::at_most(K, -5).any_value().as_deref(),
            Some("-5")
        );
        let exhausted = complement(&["2"], Some(2), Some(2));
        assert_eq!(exhausted.any_value(), None);
    }

    fn reqs(list: &[Requirement]) -> Requirements {
        list.iter().cloned().collect()
    }

    #[test]
    fn compatible_requires_custom_labels_to_be_defined() {
        let pool = reqs(&[Requirement::in_values(labels::ZONE, ["a", "b"])]);
        let pod = reqs(&[Requirement::in_values("team", ["x"])]);
        let err = pool.compatible(&pod).unwrap_err();
        assert_eq!(err.to_string(), "label \"team\" does not have known values");
        let absent = reqs(&[Requirement::not_in("team", ["x"])]);
        assert!(pool.compatible(&absent).is_ok());
        assert!(
            pool.compatible(&reqs(&[Requirement::does_not_exist("team")]))
                .is_ok()
        );
    }

    #[test]
    fn compatible_hints_typos_of_well_known_labels() {
        let pool = Requirements::new();
        let allow = LabelSet::for_provider(labels::Provider::Aws);
        let pod = reqs(&[Requirement::in_values("kubernetes.io/arc", ["arm64"])]);
        assert_eq!(
            pool.compatible_allowing(&pod, &allow)
                .unwrap_err()
                .to_string(),
            "label \"kubernetes.io/arc\" does not have known values (did you mean \"kubernetes.io/arch\"?)"
        );
        let pod = reqs(&[Requirement::in_values("example.com/zone", ["a"])]);
        assert_eq!(
            pool.compatible_allowing(&pod, &allow).unwrap_err(),
            Incompatible::UndefinedLabel {
                key: "example.com/zone".into(),
                hint: Some(labels::ZONE.into())
            }
        );
        let pod = reqs(&[Requirement::in_values(
            "karpenter.k8s.aws/instance-familly",
            ["m5"],
        )]);
        assert!(matches!(
            pool.compatible(&pod),
            Err(Incompatible::UndefinedLabel { hint: Some(h), .. }) if h == labels::AWS_INSTANCE_FAMILY
        ));
        let pod = reqs(&[Requirement::in_values("completely-unrelated", ["a"])]);
        assert!(matches!(
            pool.compatible(&pod),
            Err(Incompatible::UndefinedLabel { hint: None, .. })
        ));
    }

    #[test]
    fn compatible_allows_undefined_well_known_and_reports_first_conflict() {
        let allow = LabelSet::core();
        let pool = reqs(&[
            Requirement::in_values(labels::ARCH, ["amd64"]),
            Requirement::in_values(labels::ZONE, ["a"]),
        ]);
        let pod = reqs(&[Requirement::in_values(labels::CAPACITY_TYPE, ["spot"])]);
        assert!(pool.compatible_allowing(&pod, &allow).is_ok());
        assert!(pool.compatible(&pod).is_err());
        let pod = reqs(&[
            Requirement::in_values(labels::ZONE, ["b"]),
            Requirement::in_values(labels::ARCH, ["arm64"]),
        ]);
        let err = pool.compatible_allowing(&pod, &allow).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key \"kubernetes.io/arch\": kubernetes.io/arch In [arm64] does not intersect kubernetes.io/arch In [amd64]"
        );
        assert!(!pool.intersects(&pod));
    }

    #[test]
    fn absent_shapes_never_conflict() {
        let a = reqs(&[Requirement::does_not_exist("gpu")]);
        let b = reqs(&[Requirement::not_in("gpu", ["x"])]);
        assert!(a.intersects(&b) && b.intersects(&a) && a.intersects(&a));
        let c = reqs(&[Requirement::exists("gpu")]);
        assert!(!a.intersects(&c));
        assert!(b.intersects(&c));
    }

    #[test]
    fn min_values_counts_distinct_values_across_types() {
        let pool = reqs(&[Requirement::exists(labels::INSTANCE_TYPE).with_min_values(Some(2))]);
        let types: Vec<Requirements> = ["a", "a", "b"]
            .iter()
            .map(|n| reqs(&[Requirement::in_values(labels::INSTANCE_TYPE, [*n])]))
            .collect();
        assert_eq!(pool.min_values_needed(&types), Ok(3));
        let err = pool.min_values_needed(&types[..2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "minValues requirement is not met for label \"node.kubernetes.io/instance-type\": needs 2 values, found 1"
        );
        assert_eq!(Requirements::new().min_values_needed(&types), Ok(0));
    }

    // ---- property tests -------------------------------------------------------------------

    const POOL: [&str; 7] = ["A", "B", "1", "2", "9", "-3", "007"];

    fn value_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(&POOL[..]).prop_map(str::to_owned),
            (-4i64..12).prop_map(|n| n.to_string()),
        ]
    }

    fn requirement_strategy() -> impl Strategy<Value = Requirement> {
        let values = proptest::collection::vec(value_strategy(), 1..4);
        let op = proptest::sample::select(vec![
            Operator::In,
            Operator::NotIn,
            Operator::Exists,
            Operator::DoesNotExist,
            Operator::Gt,
            Operator::Lt,
            Operator::Gte,
            Operator::Lte,
        ]);
        (op, values, -4i64..12, proptest::option::of(1u32..4)).prop_map(|(op, values, n, mv)| {
            let values = match op {
                Operator::In | Operator::NotIn => values,
                Operator::Exists | Operator::DoesNotExist => Vec::new(),
                _ => vec![n.to_string()],
            };
            Requirement::new(K, op, &values, mv).unwrap()
        })
    }

    /// Intersections of up to three operands, so composite shapes (NotIn with bounds) appear.
    fn composite_strategy() -> impl Strategy<Value = Requirement> {
        proptest::collection::vec(requirement_strategy(), 1..4).prop_map(|rs| {
            rs.iter()
                .skip(1)
                .fold(rs[0].clone(), |acc, r| acc.intersection(r))
        })
    }

    fn requirements_strategy() -> impl Strategy<Value = Requirements> {
        let keyed = (
            proptest::sample::select(vec!["k1", "k2", "k3"]),
            composite_strategy(),
        )
            .prop_map(|(key, r)| Requirement {
                key: key.to_owned(),
                ..r
            });
        proptest::collection::vec(keyed, 0..5).prop_map(|v| v.into_iter().collect())
    }

    fn probe_values() -> Vec<String> {
        let mut v: Vec<String> = POOL.iter().map(|s| (*s).to_owned()).collect();
        v.extend((-6..14).map(|n: i64| n.to_string()));
        v.push(String::new());
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn intersection_is_commutative(a in composite_strategy(), b in composite_strategy()) {
            prop_assert_eq!(a.intersection(&b), b.intersection(&a));
        }

        #[test]
        fn intersection_is_associative(a in composite_strategy(), b in composite_strategy(), c in composite_strategy()) {
            prop_assert_eq!(a.intersection(&b).intersection(&c), a.intersection(&b.intersection(&c)));
        }

        #[test]
        fn intersection_is_idempotent(a in composite_strategy()) {
            prop_assert_eq!(a.intersection(&a), a);
        }

        #[test]
        fn has_distributes_over_intersection(a in composite_strategy(), b in composite_strategy()) {
            let both = a.intersection(&b);
            for v in probe_values() {
                prop_assert_eq!(both.has(&v), a.has(&v) && b.has(&v), "value {:?}", v);
            }
        }

        #[test]
        fn has_intersection_agrees_with_concrete_intersections(a in composite_strategy(), b in composite_strategy()) {
            let both = a.intersection(&b);
            if !both.is_complement() {
                prop_assert_eq!(a.has_intersection(&b), !both.values().is_empty());
            }
            prop_assert_eq!(a.has_intersection(&b), b.has_intersection(&a));
        }

        #[test]
        fn any_value_is_allowed(a in composite_strategy()) {
            if let Some(v) = a.any_value() {
                prop_assert!(a.has(&v), "{} does not allow {}", a, v);
            }
        }

        #[test]
        fn parse_of_render_is_identity(r in requirements_strategy()) {
            let back = Requirements::from_api(&r.to_api()).unwrap();
            prop_assert_eq!(back, r);
        }

        #[test]
        fn requirements_intersect_laws(a in requirements_strategy(), b in requirements_strategy(), c in requirements_strategy()) {
            prop_assert_eq!(a.intersect(&b), b.intersect(&a));
            prop_assert_eq!(a.intersect(&b).intersect(&c), a.intersect(&b.intersect(&c)));
            prop_assert_eq!(a.intersect(&a), a.clone());
            for key in ["k1", "k2", "k3"] {
                for v in probe_values() {
                    prop_assert_eq!(a.intersect(&b).allows(key, &v), a.allows(key, &v) && b.allows(key, &v));
                }
            }
        }

        #[test]
        fn compatibility_is_deterministic(a in requirements_strategy(), b in requirements_strategy()) {
            let first = a.compatible(&b);
            prop_assert_eq!(&a.compatible(&b), &first);
            prop_assert_eq!(a.intersects(&b), a.conflict(&b).is_none());
        }

        #[test]
        fn no_input_panics(
            key in "\\PC{0,12}",
            op in "\\PC{0,12}|In|NotIn|Exists|DoesNotExist|Gt|Lt|Gte|Lte",
            values in proptest::collection::vec("\\PC{0,8}|-?[0-9]{1,20}", 0..3),
            mv in proptest::option::of(any::<u32>()),
        ) {
            if let Ok(op) = op.parse::<Operator>() {
                let entry = SelectorRequirement { key, operator: op, values, min_values: mv };
                if let Ok(r) = Requirements::from_api(std::slice::from_ref(&entry)) {
                    let _ = r.to_string();
                    let _ = r.compatible(&r);
                    let _ = r.iter().map(Requirement::any_value).count();
                    prop_assert_eq!(Requirements::from_api(&r.to_api()).unwrap(), r);
                }
            }
        }
    }
}
