//! Taints and tolerations, matched exactly as Kubernetes does
//! (`k8s.io/component-helpers/scheduling/corev1` `ToleratesTaint`, `v1.Taint.MatchTaint`):
//!
//! - a toleration with an effect only matches taints of that effect; an empty effect matches all;
//! - a toleration with a key only matches taints with that key; an empty key matches every key
//!   (the API allows that only with `Exists`, which then tolerates everything);
//! - `Exists` ignores the value; `Equal` (also the default) compares values exactly;
//! - any other operator (the feature-gated `Lt`/`Gt`) never matches, as with its gate off.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// What a taint does to pods that do not tolerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaintEffect {
    /// New pods are not scheduled; running pods stay.
    NoSchedule,
    /// The scheduler avoids the node but may still use it (Karpenter relaxes these last).
    PreferNoSchedule,
    /// New pods are not scheduled and running ones are evicted.
    NoExecute,
}

impl TaintEffect {
    /// The effect's API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

impl fmt::Display for TaintEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a taint or toleration field does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TaintError {
    /// The effect is not one of the three Kubernetes defines.
    #[error("unknown taint effect {effect:?} (expected NoSchedule, PreferNoSchedule or NoExecute)")]
    UnknownEffect {
        /// The effect as written.
        effect: String,
    },
    /// A `key[=value]:effect` string without the `:effect` part.
    #[error("taint {text:?} has no effect (expected key[=value]:Effect)")]
    MissingEffect {
        /// The text as written.
        text: String,
    },
}

impl FromStr for TaintEffect {
    type Err = TaintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "NoSchedule" => Ok(TaintEffect::NoSchedule),
            "PreferNoSchedule" => Ok(TaintEffect::PreferNoSchedule),
            "NoExecute" => Ok(TaintEffect::NoExecute),
            other => Err(TaintError::UnknownEffect {
                effect: other.to_owned(),
            }),
        }
    }
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value; empty when the taint has none.
    pub value: String,
    /// Taint effect.
    pub effect: TaintEffect,
}

impl Taint {
    /// A taint from its parts.
    pub fn new(key: &str, value: &str, effect: TaintEffect) -> Self {
        Taint {
            key: key.to_owned(),
            value: value.to_owned(),
            effect,
        }
    }

    /// True when both taints have the same key and effect (Kubernetes `MatchTaint`): a node may
    /// not carry two such taints, and updating one replaces the other.
    pub fn same_slot(&self, other: &Taint) -> bool {
        self.key == other.key && self.effect == other.effect
    }
}

impl fmt::Display for Taint {
    /// `key=value:Effect`, or `key:Effect` without a value, as `kubectl taint` writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.key, self.effect)
        } else {
            write!(f, "{}={}:{}", self.key, self.value, self.effect)
        }
    }
}

impl FromStr for Taint {
    type Err = TaintError;

    /// Parses `key[=value]:Effect`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (head, effect) = s
            .rsplit_once(':')
            .ok_or_else(|| TaintError::MissingEffect { text: s.to_owned() })?;
        let (key, value) = head.split_once('=').unwrap_or((head, ""));
        Ok(Taint::new(key, value, effect.parse()?))
    }
}

/// How a toleration compares its value with a taint's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum TolerationOperator {
    /// Values must be equal; the default when the operator is omitted.
    #[default]
    Equal,
    /// Any value matches.
    Exists,
    /// An operator this crate does not evaluate (e.g. alpha `Lt`/`Gt`); never matches.
    Other(String),
}

impl From<&str> for TolerationOperator {
    /// Maps the API spelling; the empty string means `Equal`.
    fn from(s: &str) -> Self {
        match s {
            "" | "Equal" => TolerationOperator::Equal,
            "Exists" => TolerationOperator::Exists,
            other => TolerationOperator::Other(other.to_owned()),
        }
    }
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Toleration {
    /// Key to match; empty matches every key.
    pub key: String,
    /// How to compare values.
    pub operator: TolerationOperator,
    /// Value to compare with `Equal`.
    pub value: String,
    /// Effect to match; `None` matches every effect.
    pub effect: Option<TaintEffect>,
    /// For `NoExecute`: how long the pod stays after the taint appears; `None` is forever.
    pub toleration_seconds: Option<i64>,
}

impl Toleration {
    /// `key=value` with `Equal`, for one effect or all.
    pub fn equal(key: &str, value: &str, effect: Option<TaintEffect>) -> Self {
        Toleration {
            key: key.to_owned(),
            value: value.to_owned(),
            effect,
            ..Toleration::default()
        }
    }

    /// `key` with `Exists`, for one effect or all; an empty key tolerates every taint.
    pub fn exists(key: &str, effect: Option<TaintEffect>) -> Self {
        Toleration {
            key: key.to_owned(),
            operator: TolerationOperator::Exists,
            effect,
            ..Toleration::default()
        }
    }

    /// True when this toleration tolerates `taint` (Kubernetes `ToleratesTaint`).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match &self.operator {
            TolerationOperator::Equal => self.value == taint.value,
            TolerationOperator::Exists => true,
            TolerationOperator::Other(_) => false,
        }
    }
}

/// A taint that no toleration matched; the reason a pod cannot land on a node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("did not tolerate {taint}")]
pub struct UntoleratedTaint {
    /// The first taint (in the node's order) that nothing tolerated.
    pub taint: Taint,
}

/// True when some toleration in `tolerations` tolerates `taint`.
pub fn tolerates(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

/// Checks that every taint is tolerated. `PreferNoSchedule` taints are checked too, as
/// Karpenter does; callers that treat them as soft filter them out first.
pub fn tolerates_all(tolerations: &[Toleration], taints: &[Taint]) -> Result<(), UntoleratedTaint> {
    match taints.iter().find(|taint| !tolerates(tolerations, taint)) {
        Some(taint) => Err(UntoleratedTaint {
            taint: taint.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaintEffect::*;
    use proptest::prelude::*;

    fn taint(s: &str) -> Taint {
        s.parse().unwrap()
    }

    #[test]
    fn matching_follows_kubernetes() {
        let t = taint("intent=workload-split:NoSchedule");
        assert!(Toleration::equal("intent", "workload-split", Some(NoSchedule)).tolerates(&t));
        assert!(Toleration::equal("intent", "workload-split", None).tolerates(&t));
        assert!(!Toleration::equal("intent", "other", None).tolerates(&t));
        assert!(!Toleration::equal("intent", "workload-split", Some(NoExecute)).tolerates(&t));
        assert!(Toleration::exists("intent", None).tolerates(&t));
        assert!(!Toleration::exists("other", None).tolerates(&t));
        assert!(Toleration::exists("", None).tolerates(&t));
        assert!(Toleration::exists("", Some(NoSchedule)).tolerates(&t));
        assert!(!Toleration::exists("", Some(PreferNoSchedule)).tolerates(&t));
        // An empty key with Equal (invalid in the API) still compares values, as upstream.
        assert!(Toleration::equal("", "workload-split", None).tolerates(&t));
        let gt = Toleration {
            key: "intent".into(),
            operator: TolerationOperator::from("Gt"),
            value: "1".into(),
            ..Toleration::default()
        };
        assert!(!gt.tolerates(&t));
        assert_eq!(TolerationOperator::from(""), TolerationOperator::Equal);
    }

    #[test]
    fn valueless_taints_match_empty_equal_values() {
        let t = taint("karpenter.sh/disrupted:NoSchedule");
        assert_eq!(t.value, "");
        assert!(Toleration::equal("karpenter.sh/disrupted", "", None).tolerates(&t));
        assert!(!Toleration::equal("karpenter.sh/disrupted", "x", None).tolerates(&t));
    }

    #[test]
    fn tolerates_all_names_the_first_untolerated_taint() {
        let taints = [
            taint("a=1:NoSchedule"),
            taint("intent=workload-split:NoSchedule"),
            taint("b:PreferNoSchedule"),
        ];
        let tols = [Toleration::exists("a", None)];
        let err = tolerates_all(&tols, &taints).unwrap_err();
        assert_eq!(
            err.to_string(),
            "did not tolerate intent=workload-split:NoSchedule"
        );
        assert!(tolerates_all(&[Toleration::exists("", None)], &taints).is_ok());
        assert!(tolerates_all(&[], &[]).is_ok());
    }

    #[test]
    fn taint_strings_round_trip_and_errors_say_why() {
        for s in [
            "a=b:NoSchedule",
            "a:NoExecute",
            "example.com/x=y:PreferNoSchedule",
        ] {
            assert_eq!(taint(s).to_string(), s);
        }
        assert_eq!(
            "a=b".parse::<Taint>().unwrap_err().to_string(),
            "taint \"a=b\" has no effect (expected key[=value]:Effect)"
        );
        assert!("a=b:Sometimes".parse::<Taint>().is_err());
        assert!(taint("a=b:NoSchedule").same_slot(&taint("a=c:NoSchedule")));
        assert!(!taint("a=b:NoSchedule").same_slot(&taint("a=b:NoExecute")));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn empty_key_exists_tolerates_everything(key in "[a-z]{0,5}", value in "[a-z]{0,3}", e in 0usize..3) {
            let effect = [NoSchedule, PreferNoSchedule, NoExecute][e];
            let t = Taint::new(&key, &value, effect);
            prop_assert!(Toleration::exists("", None).tolerates(&t));
            prop_assert!(Toleration::exists(&key, Some(effect)).tolerates(&t));
            prop_assert!(Toleration::equal(&key, &value, None).tolerates(&t));
        }
    }
}
