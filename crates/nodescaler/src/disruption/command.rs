//! What a disruption pass returns: at most one [`Disrupt`] command and diagnostics, all data.
//! The shell turns diagnostics into Events (`DisruptionBlocked`, `Unconsolidatable`) and executes
//! the command through its queue (taint, launch replacements, wait, delete), re-validating it
//! against a fresh snapshot after [`Disrupt::revalidate_after_ms`].

use std::fmt;

use tandem_model::catalog::UsdPerHour;

use crate::provisioning::{Launch, Nominate};
use crate::snapshot::BudgetReason;

/// Why nodes are disrupted (`DisruptionReason` condition, `nodeclaims_disrupted_total` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// No reschedulable pods for `consolidateAfter`.
    Empty,
    /// The node no longer matches its NodePool.
    Drifted,
    /// Older than `expireAfter`.
    Expired,
    /// Its pods fit elsewhere, or on a cheaper node.
    Underutilized,
}

impl Reason {
    /// The API spelling (`Empty`, `Drifted`, `Expired`, `Underutilized`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Empty => "Empty",
            Reason::Drifted => "Drifted",
            Reason::Expired => "Expired",
            Reason::Underutilized => "Underutilized",
        }
    }

    /// The budget reason it counts against; `None` for expiration, which ignores budgets.
    pub fn budget_reason(self) -> Option<BudgetReason> {
        match self {
            Reason::Empty => Some(BudgetReason::Empty),
            Reason::Drifted => Some(BudgetReason::Drifted),
            Reason::Underutilized => Some(BudgetReason::Underutilized),
            Reason::Expired => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The method that produced a command (`consolidation_type` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MethodKind {
    /// [`super::expiration`].
    Expiration,
    /// [`super::emptiness`].
    Emptiness,
    /// [`super::drift`].
    Drift,
    /// [`super::multi_node`].
    MultiNode,
    /// [`super::single_node`].
    SingleNode,
}

impl MethodKind {
    /// Upstream's label (`empty`, `multi`, `single` …).
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Expiration => "expiration",
            MethodKind::Emptiness => "empty",
            MethodKind::Drift => "drift",
            MethodKind::MultiNode => "multi",
            MethodKind::SingleNode => "single",
        }
    }
}

/// How the executor removes the candidates (`termination_mode` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TerminationMode {
    /// Drain respecting PDBs and do-not-disrupt; the command is dropped if it cannot be done.
    Graceful,
    /// As graceful, but the NodeClaim's `terminationGracePeriod` bounds the drain.
    Eventual,
    /// Delete the NodeClaim now; drain still respects PDBs until the termination timestamp.
    Forceful,
}

/// Disrupt `candidates`, launching `replacements` first (a delete when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disrupt {
    /// Node names, in the order the method chose them.
    pub candidates: Vec<String>,
    /// NodeClaims to launch (and wait for) before the candidates are deleted; each lists the
    /// pods it is for.
    pub replacements: Vec<Launch>,
    /// Where the candidates' pods go on existing nodes (the executor nominates them, as
    /// upstream's queue does, so provisioning does not launch for them meanwhile).
    pub nominations: Vec<Nominate>,
    /// Why.
    pub reason: Reason,
    /// Which method decided.
    pub method: MethodKind,
    /// How the nodes are removed.
    pub mode: TerminationMode,
    /// The executor waits this long, then re-validates against a fresh snapshot
    /// ([`super::validate`]); 0 for methods upstream does not re-validate.
    pub revalidate_after_ms: i64,
    /// Hourly price of the candidates (their current offerings).
    pub cost_before: UsdPerHour,
    /// Hourly price of the replacements (their cheapest options).
    pub cost_after: UsdPerHour,
}

impl Disrupt {
    /// True when nothing is launched.
    pub fn is_delete(&self) -> bool {
        self.replacements.is_empty()
    }

    /// What the command saves per hour (negative for drift replacements that cost more).
    pub fn savings(&self) -> i64 {
        self.cost_before.as_picos() - self.cost_after.as_picos()
    }
}

/// Who a diagnostic is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// A Node (and its NodeClaim).
    Node(String),
    /// A NodePool.
    NodePool(String),
}

/// Something a person wants to know about a pass; the shell publishes these as Events.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Diagnostic {
    /// `DisruptionBlocked`: a node cannot be disrupted, or a pool's budget allows nothing.
    Blocked {
        /// The node or NodePool.
        subject: Subject,
        /// Why, as the event message.
        message: String,
    },
    /// `Unconsolidatable`: a candidate's pods cannot move to cheaper capacity.
    Unconsolidatable {
        /// The node.
        node: String,
        /// Why, as the event message.
        message: String,
    },
}

/// The outcome of one disruption pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// The first command a method produced, in method order.
    pub command: Option<Disrupt>,
    /// Diagnostics from every method that ran, sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// Scheduling simulations run (the pass's work, for metrics and benches).
    pub simulations: usize,
    /// Candidates each reason's methods wanted this pass, before blocks and budgets
    /// (`karpenter_voluntary_disruption_eligible_nodes`); only reasons whose methods ran.
    pub eligible: std::collections::BTreeMap<Reason, usize>,
    /// What to hand the next pass so it can skip consolidation on an unchanged cluster
    /// (see [`super::settled`]).
    pub settled: super::Settled,
}
