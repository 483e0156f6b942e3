//! The in-memory cluster index of the node layer: watchers feed it, it publishes immutable
//! snapshots.
//!
//! This crate owns the translation of live objects (Pods, Nodes, NodePools, NodeClaims,
//! KWOKNodeClasses, DaemonSets, PodDisruptionBudgets; VolumeAttachments and
//! PersistentVolumeClaims for termination; PersistentVolumes and StorageClasses for the zones a
//! pending pod's volumes allow)
//! into `nodescaler`'s [`Snapshot`](tandem_nodescaler::Snapshot)
//! and the relist-safe index that holds them. It must never decide anything (that is
//! nodescaler's job) nor write to the API server (that is the controllers'): one writer task
//! applies watch events, readers get an `Arc<ClusterState>` that never changes under them.
//!
//! ```text
//!   watch Pods ──────┐
//!   watch Nodes ─────┤                 Index (one writer)            watch::Receiver
//!   watch NodePools ─┼─► ready_chunks ─► apply / delete / reset ─► Arc<ClusterState> ──► controllers
//!   watch NodeClaims ┤                   (relist buffered until      { synced, snapshot,
//!   watch NodeClasses┤                    InitDone)                    nodeclaims, nodes … }
//!   watch DaemonSets ┤
//!   watch PodDisruptionBudgets ┤      (+ per node: last pod bound/removed, observed at `now`)
//!   watch VolumeAttachments, PersistentVolumeClaims ┤
//!   watch PersistentVolumes, StorageClasses ┘
//!
//!   Node ──spec.providerID── NodeClaim.status.providerID      (claims without a Node are in flight)
//!   Node ──label karpenter.sh/nodepool── NodePool             (usage, node count)
//!   Pod ──spec.nodeName── Node                                 (bound pods; unbound + Unschedulable = pending)
//!   Pod ──volumes── PVC ──volumeName── PV (nodeAffinity zones)  (a pod's volume zones, resolved per state;
//!                   PVC ──storageClassName── StorageClass        unbound: allowedTopologies, or the default class)
//! ```

pub mod convert;
pub mod created;
pub mod dedupe;
pub mod index;
pub mod intern;
pub mod pod_view;
pub mod predictions;
pub mod settled;
pub mod watch;
pub mod workloads;

pub use created::CreatedClaims;
pub use index::{
    ClaimRecord, ClusterState, Ec2ClassRecord, Index, PdbRecord, PodRecord, StorageClassRecord,
    VolumeAttachmentRecord, ZoneCatalog,
};
pub use pod_view::PodView;

/// Node label Karpenter sets once a node is initialized.
pub const INITIALIZED_LABEL: &str = "karpenter.sh/initialized";
