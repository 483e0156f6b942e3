//! The real things Tandem's tests run against, started on this host: a Kubernetes control
//! plane built from the upstream sources, fake nodes, and an external-metrics backend reached
//! through the real aggregation layer.
//!
//! It owns process lifecycles and test fixtures. It must never talk to anything off this
//! machine: every server listens on 127.0.0.1, every wait is bounded.
//!
//! # The control plane
//!
//! ```text
//!  test process                                             temp dir (removed at the end)
//!  ─────────────                                            ───────────────────────────────
//!  ControlPlane::start()                                    pki/  kubeconfig  logs/*.log  etcd/
//!     │ rcgen PKI ──────────────────────────────────────────► pki/
//!     ├─► etcd                 127.0.0.1:<client>, <peer>, --unsafe-no-fsync
//!     ├─► kube-apiserver       127.0.0.1:<port>, RBAC, aggregator (requestheader flags),
//!     │                        --advertise-address=127.0.0.1 --endpoint-reconciler-type=none
//!     ├─► kube-controller-manager  --controllers=* (node lifecycle kept), HPA sync 1 s
//!     ├─► kube-scheduler
//!     └─► CRDs from config/crds/*.yaml, awaited until Established
//! ```
//!
//! Binaries come from `hack/controlplane/build.sh --dir` (or `TANDEM_CONTROLPLANE_DIR`); when
//! they are missing, [`ControlPlane::start`] fails with [`Error::BinariesMissing`], which says
//! to run `hack/controlplane/build.sh`. Each component logs to `logs/<name>.log` in the temp
//! dir; a component that exits or does not become ready yields an error carrying the tail of
//! its log. The start time is printed to stderr.
//!
//! Tests in one binary share one control plane, [`ControlPlane::shared`], started lazily, and
//! isolate themselves with [`ControlPlane::namespace`]; they may run in parallel. A test that
//! breaks things on purpose (e.g. [`ControlPlane::restart_apiserver`]) starts its own with
//! [`ControlPlane::start_with`]. Clients are cheap: make one per test with
//! [`ControlPlane::client`], because a kube client must not outlive its tokio runtime and
//! every `#[tokio::test]` has its own.
//!
//! Addresses: services get ClusterIPs from [`SERVICE_CIDR`]; fake pods and nodes should take
//! theirs from [`POD_CIDR`] and [`NODE_CIDR`]. All three lie in 198.18.0.0/15 (benchmarking
//! range): not loopback/link-local (which the API server refuses in EndpointSlices), not a
//! range anything routes to, and disjoint.
//!
//! With [`Options::audit_log`] kube-apiserver also writes `logs/audit.log` (level `Metadata`:
//! user, verb, resource, response code, one JSON event per line), which is how the chart test
//! learns every request the controller's ServiceAccount made;
//! [`Options::admission_plugins`] turns on plugins hardened clusters use.
//!
//! # Teardown, also when a test panics or the process is SIGKILLed
//!
//! - `Drop` of a [`ControlPlane`] kills its processes and removes its temp dir. A panicking
//!   test unwinds through it.
//! - Every component runs as `setpriv --pdeathsig KILL <binary>`: the kernel SIGKILLs it when
//!   the thread that forked it dies. All forks happen on one dedicated thread that lives as long
//!   as the process, so this fires exactly when the test process dies (`unsafe_code` is
//!   forbidden, which rules out calling `prctl` in a `pre_exec` hook ourselves).
//! - One watchdog `sh` per control plane holds the read end of a pipe whose write end only the
//!   test process has. When the process dies by any means, `read` sees EOF; the watchdog kills
//!   the registered pids that still have the temp dir on their command line (a recycled pid
//!   never matches) and removes the temp dir. This is what cleans up the shared control plane,
//!   which lives in a `static` and is never dropped.
//! - Components run in their own process group, so a Ctrl-C at `tandem up` reaches only
//!   `tandem`, which then tears down in order.
//!
//! # External metrics through the aggregation layer
//!
//! [`ControlPlane::external_metrics`] starts an [`ExternalMetrics`] server in the test process
//! (its own thread and runtime, rustls, 127.0.0.1) and registers it:
//!
//! ```text
//!  kcm (HPA) ─► kube-apiserver ── APIService v1beta1.external.metrics.k8s.io
//!                                   service: tandem-testkit/external-metrics, port: <backend port>
//!                                   caBundle: cluster CA
//!               Service tandem-testkit/external-metrics: type ExternalName, externalName 127.0.0.1
//!               ─► https://127.0.0.1:<backend port>  (SNI external-metrics.tandem-testkit.svc,
//!                   client cert front-proxy-client, verified by the backend)
//! ```
//!
//! With `--enable-aggregator-routing=false` (set explicitly) the aggregator resolves a Service
//! by type; for `ExternalName` it dials `<externalName>:<APIService port>`, so the Service needs
//! no ports and no endpoints (loopback endpoints would be rejected by validation). The backend
//! certificate is issued by the cluster CA for `external-metrics.tandem-testkit.svc`, the name
//! the aggregator always verifies, and the backend only accepts clients presenting a
//! certificate from the front-proxy CA, which only kube-apiserver holds. No privileges, no
//! network namespace, all traffic on loopback. This breaks if someone turns aggregator routing
//! on (then only ClusterIP services with endpoints are routable).
//!
//! # Fake nodes
//!
//! [`FakeNode`] creates a Ready Node with capacity and renews its lease in
//! `kube-node-lease`, so kcm's node lifecycle controller removes the `not-ready` taint that
//! admission adds at creation and keeps the node Ready; stop the heartbeat to simulate a dead
//! kubelet.

mod binaries;
mod controlplane;
pub mod describe;
mod error;
pub mod manifest;
mod metrics;
mod node;
mod pki;
mod process;
pub mod services;
mod wait;

pub use binaries::{Binaries, DIR_ENV, REQUIRED, workspace_root};
pub use controlplane::{
    ControlPlane, FIELD_MANAGER, FIRST_SERVICE_IP, MemoryUsage, NODE_CIDR, Options, POD_CIDR,
    SERVICE_CIDR, apply_crds,
};
pub use error::{Error, Result};
pub use metrics::{
    API_SERVICE, ExternalMetrics, NAMESPACE as METRICS_NAMESPACE, SERVICE as METRICS_SERVICE,
    get_as as external_metrics_get, register as register_external_metrics,
    serving_names as external_metrics_serving_names,
};
pub use node::{FakeNode, FakeNodeBuilder, LEASE_NAMESPACE, NOT_READY_TAINT};
pub use pki::{CertFiles, CertPair, FRONT_PROXY_CLIENT_CN, Pki};
pub use wait::{MAX_POLL_INTERVAL, MIN_POLL_INTERVAL, wait_for, wait_for_object};
