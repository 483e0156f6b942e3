//! Tandem's what-if simulator: both autoscaling layers, a scheduler and a cloud, on a virtual
//! clock, driven by the same pure decision functions the controllers call.
//!
//! This crate owns the discrete-event loop, the simulated cloud (launch, join and image-pull
//! delays, spot interruptions, insufficient capacity), the event sources (queues, metrics, cron
//! windows), the workload patterns, the scenario file's schema, and the report (JSON, terminal
//! table, self-contained HTML with SVG charts). It must never read a clock, sleep, use a thread
//! RNG, touch the network or the file system, or depend on a Kubernetes client: time is the
//! [`TimeMs`] of the event queue, randomness comes from one master seed, and the shell (`tandem
//! simulate`) reads files and prints. Same input, same seed: the same report, byte for byte.
//!
//! ```text
//!   sources (queue / metric / cron) ──1 s──► values ──► pod layer (podscaler::decide)
//!        ▲ consumption by Running pods             poll every pollingInterval, HPA sync 15 s
//!        │                                              │ SetReplicas
//!   Running ◄── image pull ◄── bound ◄── scheduler ◄── ReplicaSet (create/delete pods)
//!                                 ▲          │ unschedulable
//!                                 │          ▼
//!      Ready node ◄── cloud (provision, join) ◄── node layer (batch 1 s idle / 10 s max,
//!          │            ▲ ICE, spot interruption        nodescaler::plan → launches)
//!          └──► disruption (nodescaler::disruption::decide: emptiness, drift, multi- and
//!               single-node consolidation within budgets) ──► replacements, then terminate
//! ```
//!
//! Every decision of the node layer goes through [`nodelayer`], the one adapter in front of
//! `tandem-nodescaler`, so the simulator follows that crate as it grows (see
//! [`nodelayer::CONSOLIDATION_NOTE`] for what disruption does not model yet).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod cloud;
pub mod input;
pub mod nodelayer;
pub mod pattern;
pub mod podlayer;
pub mod queue;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod scheduler;
pub mod sim;

pub use input::SimInput;
pub use report::Report;
pub use sim::Simulation;
pub use tandem_podscaler::TimeMs;
