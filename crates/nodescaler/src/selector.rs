//! Pod label selectors (`metav1.LabelSelector`), as pod affinity and topology spread use them.
//!
//! This is not the node-requirements algebra of `tandem_model::requirements`: a label selector
//! matches *pods* by their labels, has no numeric operators and no key aliases, and an empty
//! selector matches every pod. Keeping it separate avoids bending the node algebra (which
//! rewrites deprecated keys) to a job it was not written for.

use std::collections::BTreeMap;
use std::fmt;

/// A pod's labels, sorted so that anything built from them is deterministic.
pub type Labels = BTreeMap<String, String>;

/// The operator of one `matchExpressions` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SelectorOperator {
    /// The label is present with one of the values.
    In,
    /// The label is absent or has none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SelectorExpression {
    /// Label key.
    pub key: String,
    /// Operator.
    pub operator: SelectorOperator,
    /// Values for `In` / `NotIn`, sorted.
    pub values: Vec<String>,
}

impl SelectorExpression {
    fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

/// A label selector: every `match_labels` pair and every expression must hold.
///
/// `Ord` so selectors can key the topology groups deterministically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LabelSelector {
    /// Exact label matches.
    pub match_labels: Labels,
    /// Set-based expressions.
    pub match_expressions: Vec<SelectorExpression>,
}

impl LabelSelector {
    /// A selector of exact label matches, the common form (`matchLabels: {app: nginx}`).
    pub fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        LabelSelector {
            match_labels: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    /// Adds one expression (values are sorted so equal selectors compare equal).
    pub fn with_expression(
        mut self,
        key: &str,
        operator: SelectorOperator,
        values: &[&str],
    ) -> Self {
        let mut values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        values.sort();
        values.dedup();
        self.match_expressions.push(SelectorExpression {
            key: key.to_owned(),
            operator,
            values,
        });
        self.match_expressions.sort();
        self
    }

    /// True when a pod with `labels` is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| e.matches(labels))
    }
}

impl fmt::Display for LabelSelector {
    /// `app=nginx,tier In (a b)`, as kubectl prints selectors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for e in &self.match_expressions {
            parts.push(match e.operator {
                SelectorOperator::In => format!("{} in ({})", e.key, e.values.join(" ")),
                SelectorOperator::NotIn => format!("{} notin ({})", e.key, e.values.join(" ")),
                SelectorOperator::Exists => e.key.clone(),
                SelectorOperator::DoesNotExist => format!("!{}", e.key),
            });
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = LabelSelector::labels([("app", "nginx"), ("tier", "web")]);
        assert!(s.matches(&labels(&[("app", "nginx"), ("tier", "web"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("app", "nginx")])));
        assert!(LabelSelector::default().matches(&labels(&[])));
    }

    #[test]
    fn expressions_follow_kubernetes() {
        use SelectorOperator::*;
        let pod = labels(&[("app", "nginx")]);
        let sel = |op, vals: &[&str]| LabelSelector::default().with_expression("app", op, vals);
        assert!(sel(In, &["nginx", "x"]).matches(&pod));
        assert!(!sel(In, &["x"]).matches(&pod));
        assert!(sel(NotIn, &["x"]).matches(&pod));
        assert!(sel(NotIn, &["x"]).matches(&labels(&[])));
        assert!(!sel(NotIn, &["nginx"]).matches(&pod));
        assert!(sel(Exists, &[]).matches(&pod));
        assert!(!sel(DoesNotExist, &[]).matches(&pod));
        assert_eq!(sel(In, &["b", "a"]).to_string(), "app in (a b)");
    }
}
