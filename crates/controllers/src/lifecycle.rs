//! The NodeClaim lifecycle as an explicit state machine (reference §4): launch through the
//! CloudProvider, register the Node (match by providerID, sync labels and taints), initialize
//! (Node Ready, startup taints gone), liveness, and the claim's own deletion.
//!
//! ```text
//!   New ──finalizer──► Launching ──create ok──► Launched ──Node with providerID──► Registered
//!    │                    │ ICE / no class: delete claim      │ 15 min: delete        │ Ready, no
//!    │                    │ 5 min: delete                     ▼                       ▼ startup taints
//!    └────────────── any state, deletionTimestamp ──► Deleting ──► (Node gone) delete instance
//!                                                                   ──► (instance NotFound)
//!                                                                       remove finalizer
//! ```
//!
//! [`step`] is pure: it takes what was observed ([`Facts`]) or what an effect returned
//! ([`Input`]) and the time, and returns the next [`State`] and the [`Effect`]s to execute. The
//! driver in `lib.rs` reads the index, calls `step`, executes effects, and feeds results back.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tandem_cloud::Instance;

/// The finalizer on NodeClaims and Nodes.
pub const TERMINATION_FINALIZER: &str = "karpenter.sh/termination";
/// Launch timeout (reference §4.2).
pub const LAUNCH_TTL: Duration = Duration::from_secs(5 * 60);
/// Registration timeout (reference §4.2).
pub const REGISTRATION_TTL: Duration = Duration::from_secs(15 * 60);

/// What the driver saw of a claim and its Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The claim carries `karpenter.sh/termination`.
    pub has_finalizer: bool,
    /// The claim has a deletionTimestamp.
    pub deleting: bool,
    /// When the claim was created.
    pub created: Timestamp,
    /// `status.providerID` and when Launched turned True, once launched.
    pub launched: Option<(String, Timestamp)>,
    /// Condition Registered is True.
    pub registered: bool,
    /// Condition Initialized is True.
    pub initialized: bool,
    /// The Node whose providerID matches, if any.
    pub node: Option<NodeFacts>,
    /// The cloud reports the instance gone (`NodeClaimNotFound`); only asked for claims being
    /// deleted, `false` otherwise.
    pub instance_gone: bool,
}

/// What matters about the claim's Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// Node name.
    pub name: String,
    /// Ready condition True.
    pub ready: bool,
    /// A startup taint of the claim is still on the Node.
    pub startup_taints: bool,
    /// The Node is being deleted.
    pub deleting: bool,
}

/// Where a claim is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Without the finalizer: nothing else happens before it is on.
    New,
    /// Waiting for the cloud to launch.
    Launching,
    /// Launched; waiting for its Node to appear.
    Launched,
    /// Node found and synced; waiting for it to be Ready without startup taints.
    Registered,
    /// Launched, Registered, Initialized: Ready.
    Initialized,
    /// Being deleted: Node first, then the instance, then the finalizer.
    Deleting,
}

/// What happened since the last step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A fresh observation.
    Observed(Facts),
    /// `create` returned an instance.
    LaunchSucceeded(Box<Instance>),
    /// `create` failed.
    LaunchFailed {
        /// [`tandem_cloud::Error::category`].
        category: &'static str,
        /// [`tandem_cloud::Error::is_retryable`].
        retryable: bool,
        /// Display text, for the condition message.
        message: String,
    },
}

/// A condition to set on the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCondition {
    /// Type (`Launched`, `Registered`, `Initialized`, `Ready`).
    pub type_: &'static str,
    /// True/False/Unknown.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Detail.
    pub message: String,
}

/// Work for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Add the termination finalizer to the claim.
    AddFinalizer,
    /// Call `CloudProvider::create` and step again with the result.
    Launch,
    /// Record the instance: providerID, capacity, allocatable in status; instance type, zone,
    /// capacity type as labels.
    RecordLaunch(Box<Instance>),
    /// Set conditions (the driver keeps transition times of unchanged ones and derives Ready).
    Conditions(Vec<SetCondition>),
    /// Sync the Node: claim labels and taints, finalizer, owner, `registered` label; remove the
    /// unregistered taint; set `status.nodeName`.
    SyncNode {
        /// Node name.
        node: String,
    },
    /// Label the Node `karpenter.sh/initialized=true`.
    MarkNodeInitialized {
        /// Node name.
        node: String,
    },
    /// Delete the claim (it then goes through Deleting).
    DeleteClaim {
        /// Metric reason (`insufficient_capacity`, `launch_timeout` …).
        reason: &'static str,
    },
    /// Delete the Node (its termination drains it).
    DeleteNode {
        /// Node name.
        node: String,
    },
    /// Terminate the instance (NotFound is success).
    DeleteInstance {
        /// Provider ID.
        provider_id: String,
    },
    /// Remove the termination finalizer from the claim.
    RemoveFinalizer,
    /// Publish an Event on the claim.
    Event {
        /// Warning or Normal.
        warning: bool,
        /// Reason.
        reason: &'static str,
        /// Message.
        message: String,
    },
}

impl Effect {
    /// The effect's name, for logs (`LOG_LEVEL=info,tandem_controllers::lifecycle=debug`).
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::AddFinalizer => "AddFinalizer",
            Effect::Launch => "Launch",
            Effect::RecordLaunch(_) => "RecordLaunch",
            Effect::Conditions(_) => "Conditions",
            Effect::SyncNode { .. } => "SyncNode",
            Effect::MarkNodeInitialized { .. } => "MarkNodeInitialized",
            Effect::DeleteClaim { .. } => "DeleteClaim",
            Effect::DeleteNode { .. } => "DeleteNode",
            Effect::DeleteInstance { .. } => "DeleteInstance",
            Effect::RemoveFinalizer => "RemoveFinalizer",
            Effect::Event { .. } => "Event",
        }
    }
}

fn cond(
    type_: &'static str,
    status: &'static str,
    reason: &'static str,
    message: &str,
) -> SetCondition {
    SetCondition {
        type_,
        status,
        reason,
        message: message.to_owned(),
    }
}

fn older_than(since: Timestamp, now: Timestamp, ttl: Duration) -> bool {
    now.duration_since(since).as_secs() >= i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)
}

/// The state a claim is in, from what was observed.
pub fn state_of(f: &Facts) -> State {
    if f.deleting {
        State::Deleting
    } else if !f.has_finalizer {
        State::New
    } else if f.launched.is_none() {
        State::Launching
    } else if !f.registered || f.node.is_none() {
        State::Launched
    } else if !f.initialized {
        State::Registered
    } else {
        State::Initialized
    }
}

/// One step of the machine: see the [module documentation](self).
pub fn step(input: Input, now: Timestamp) -> (State, Vec<Effect>) {
    match input {
        Input::LaunchSucceeded(instance) => (
            State::Launched,
            vec![
                Effect::RecordLaunch(instance),
                Effect::Conditions(vec![
                    cond("Launched", "True", "Launched", ""),
                    cond(
                        "Registered",
                        "Unknown",
                        "NodeNotFound",
                        "Node not registered with cluster",
                    ),
                    cond(
                        "Initialized",
                        "Unknown",
                        "NodeNotFound",
                        "Node not registered with cluster",
                    ),
                ]),
            ],
        ),
        Input::LaunchFailed {
            category,
            retryable,
            message,
        } => {
            let mut effects = vec![Effect::Conditions(vec![cond(
                "Launched",
                "Unknown",
                "LaunchFailed",
                &message.chars().take(300).collect::<String>(),
            )])];
            match category {
                "InsufficientCapacity" | "NoCompatibleInstanceType" => {
                    effects.push(Effect::Event {
                        warning: true,
                        reason: "InsufficientCapacityError",
                        message: format!("NodeClaim launch failed, {message}"),
                    });
                    effects.push(Effect::DeleteClaim {
                        reason: "insufficient_capacity",
                    });
                }
                "NodeClassNotReady" => {
                    effects.push(Effect::Event {
                        warning: true,
                        reason: "NodeClassNotReady",
                        message,
                    });
                    effects.push(Effect::DeleteClaim {
                        reason: "nodeclass_not_ready",
                    });
                }
                _ if !retryable => effects.push(Effect::DeleteClaim {
                    reason: "launch_failed",
                }),
                _ => {}
            }
            (State::Launching, effects)
        }
        Input::Observed(f) => {
            let state = state_of(&f);
            let effects = match state {
                State::New => vec![Effect::AddFinalizer],
                State::Launching => {
                    if older_than(f.created, now, LAUNCH_TTL) {
                        vec![Effect::DeleteClaim {
                            reason: "launch_timeout",
                        }]
                    } else {
                        vec![Effect::Launch]
                    }
                }
                State::Launched => match (&f.node, &f.launched) {
                    (Some(node), _) if !node.deleting => vec![
                        Effect::SyncNode {
                            node: node.name.clone(),
                        },
                        Effect::Conditions(vec![cond("Registered", "True", "Registered", "")]),
                    ],
                    (_, Some((_, at))) if older_than(*at, now, REGISTRATION_TTL) => {
                        vec![Effect::DeleteClaim {
                            reason: "registration_timeout",
                        }]
                    }
                    _ => Vec::new(),
                },
                State::Registered => match &f.node {
                    Some(n) if n.ready && !n.startup_taints => vec![
                        Effect::MarkNodeInitialized {
                            node: n.name.clone(),
                        },
                        Effect::Conditions(vec![cond("Initialized", "True", "Initialized", "")]),
                    ],
                    Some(n) if !n.ready => vec![Effect::Conditions(vec![cond(
                        "Initialized",
                        "Unknown",
                        "NodeNotReady",
                        "Node status is NotReady",
                    )])],
                    Some(_) => vec![Effect::Conditions(vec![cond(
                        "Initialized",
                        "Unknown",
                        "StartupTaintsExist",
                        "StartupTaints exist",
                    )])],
                    None => Vec::new(),
                },
                State::Initialized => Vec::new(),
                State::Deleting => match (&f.node, &f.launched) {
                    (Some(n), _) if !n.deleting => vec![Effect::DeleteNode {
                        node: n.name.clone(),
                    }],
                    // The Node's own termination drains it and terminates the instance.
                    (Some(_), _) => Vec::new(),
                    // Upstream: terminate, then hold the claim until the cloud says NotFound,
                    // so a slow termination still counts against the pool's limits.
                    (None, Some((pid, _))) if f.has_finalizer && !f.instance_gone => vec![
                        Effect::DeleteInstance {
                            provider_id: pid.clone(),
                        },
                        Effect::Conditions(vec![cond(
                            "InstanceTerminating",
                            "True",
                            "InstanceTerminating",
                            "",
                        )]),
                    ],
                    (None, _) if f.has_finalizer => vec![Effect::RemoveFinalizer],
                    _ => Vec::new(),
                },
            };
            (state, effects)
        }
    }
}

/// The Ready condition upstream derives: True when Launched, Registered and Initialized are.
pub fn ready(conditions: &BTreeMap<String, String>) -> bool {
    ["Launched", "Registered", "Initialized"]
        .iter()
        .all(|t| conditions.get(*t).map(String::as_str) == Some("True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn facts() -> Facts {
        Facts {
            has_finalizer: true,
            deleting: false,
            created: t(0),
            launched: None,
            registered: false,
            initialized: false,
            node: None,
            instance_gone: false,
        }
    }

    fn node(ready: bool, startup_taints: bool, deleting: bool) -> Option<NodeFacts> {
        Some(NodeFacts {
            name: "n".into(),
            ready,
            startup_taints,
            deleting,
        })
    }

    fn kinds(effects: &[Effect]) -> Vec<&'static str> {
        effects.iter().map(Effect::kind).collect()
    }

    #[test]
    fn observed_states_and_their_effects() {
        let launched = Some(("kwok://n".to_owned(), t(10)));
        let table: Vec<(&str, Facts, i64, State, Vec<&str>)> = vec![
            (
                "new claim gets the finalizer",
                Facts {
                    has_finalizer: false,
                    ..facts()
                },
                1,
                State::New,
                vec!["AddFinalizer"],
            ),
            (
                "unlaunched claim launches",
                facts(),
                1,
                State::Launching,
                vec!["Launch"],
            ),
            (
                "launch timeout deletes",
                facts(),
                300,
                State::Launching,
                vec!["DeleteClaim"],
            ),
            (
                "launched, no node yet: wait",
                Facts {
                    launched: launched.clone(),
                    ..facts()
                },
                60,
                State::Launched,
                vec![],
            ),
            (
                "registration timeout deletes",
                Facts {
                    launched: launched.clone(),
                    ..facts()
                },
                910,
                State::Launched,
                vec!["DeleteClaim"],
            ),
            (
                "node appears: sync and register",
                Facts {
                    launched: launched.clone(),
                    node: node(false, false, false),
                    ..facts()
                },
                20,
                State::Launched,
                vec!["SyncNode", "Conditions"],
            ),
            (
                "registered, node not ready",
                Facts {
                    launched: launched.clone(),
                    registered: true,
                    node: node(false, false, false),
                    ..facts()
                },
                20,
                State::Registered,
                vec!["Conditions"],
            ),
            (
                "registered, startup taints",
                Facts {
                    launched: launched.clone(),
                    registered: true,
                    node: node(true, true, false),
                    ..facts()
                },
                20,
                State::Registered,
                vec!["Conditions"],
            ),
            (
                "ready node initializes",
                Facts {
                    launched: launched.clone(),
                    registered: true,
                    node: node(true, false, false),
                    ..facts()
                },
                20,
                State::Registered,
                vec!["MarkNodeInitialized", "Conditions"],
            ),
            (
                "initialized: nothing to do",
                Facts {
                    launched: launched.clone(),
                    registered: true,
                    initialized: true,
                    node: node(true, false, false),
                    ..facts()
                },
                20,
                State::Initialized,
                vec![],
            ),
            (
                "deleting with live node deletes the node",
                Facts {
                    deleting: true,
                    launched: launched.clone(),
                    node: node(true, false, false),
                    ..facts()
                },
                20,
                State::Deleting,
                vec!["DeleteNode"],
            ),
            (
                "deleting, node draining: wait",
                Facts {
                    deleting: true,
                    launched: launched.clone(),
                    node: node(true, false, true),
                    ..facts()
                },
                20,
                State::Deleting,
                vec![],
            ),
            (
                "deleting, node gone: terminate the instance",
                Facts {
                    deleting: true,
                    launched: launched.clone(),
                    ..facts()
                },
                20,
                State::Deleting,
                vec!["DeleteInstance", "Conditions"],
            ),
            (
                "deleting, instance NotFound: finalizer off",
                Facts {
                    deleting: true,
                    launched: launched.clone(),
                    instance_gone: true,
                    ..facts()
                },
                25,
                State::Deleting,
                vec!["RemoveFinalizer"],
            ),
            (
                "deleting, never launched",
                Facts {
                    deleting: true,
                    ..facts()
                },
                20,
                State::Deleting,
                vec!["RemoveFinalizer"],
            ),
        ];
        for (what, f, at, state, effects) in table {
            let (s, e) = step(Input::Observed(f), t(at));
            assert_eq!(s, state, "{what}");
            assert_eq!(kinds(&e), effects, "{what}");
        }
    }

    #[test]
    fn launch_results() {
        let (_, e) = step(
            Input::LaunchFailed {
                category: "InsufficientCapacity",
                retryable: false,
                message: "insufficient capacity".into(),
            },
            t(0),
        );
        assert_eq!(kinds(&e), ["Conditions", "Event", "DeleteClaim"]);
        let (_, e) = step(
            Input::LaunchFailed {
                category: "ApiError",
                retryable: true,
                message: "timeout".into(),
            },
            t(0),
        );
        assert_eq!(kinds(&e), ["Conditions"], "retryable: try again next step");
        let mut c = BTreeMap::new();
        c.insert("Launched".to_owned(), "True".to_owned());
        assert!(!ready(&c));
        c.insert("Registered".to_owned(), "True".to_owned());
        c.insert("Initialized".to_owned(), "True".to_owned());
        assert!(ready(&c));
    }
}
