//! Fake Ready nodes without a kubelet (controlplane.md §5): the Node object with Ready
//! conditions and capacity, plus a task renewing `kube-node-lease/<node>` so kcm's node
//! lifecycle controller keeps it Ready and removes the creation-time `not-ready` taint.

use crate::controlplane::FIELD_MANAGER;
use crate::error::{Error, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Taint the `TaintNodesByCondition` admission plugin puts on every new Node.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// Namespace of node heartbeat leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Describes a fake node; [`FakeNodeBuilder::create`] makes it.
#[derive(Debug, Clone)]
pub struct FakeNodeBuilder {
    name: String,
    capacity: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
    lease_renew_interval: Duration,
}

impl FakeNodeBuilder {
    /// CPU capacity (and allocatable), a quantity such as `"4"` or `"3500m"`. Default 4.
    pub fn cpu(mut self, quantity: &str) -> Self {
        self.capacity.insert("cpu".into(), quantity.into());
        self
    }

    /// Memory capacity (and allocatable), e.g. `"16Gi"`. Default 16Gi.
    pub fn memory(mut self, quantity: &str) -> Self {
        self.capacity.insert("memory".into(), quantity.into());
        self
    }

    /// Maximum pods. Default 110.
    pub fn pods(mut self, pods: u32) -> Self {
        self.capacity.insert("pods".into(), pods.to_string());
        self
    }

    /// Any other resource's capacity (and allocatable).
    pub fn resource(mut self, name: &str, quantity: &str) -> Self {
        self.capacity.insert(name.into(), quantity.into());
        self
    }

    /// Adds a label (on top of `kubernetes.io/hostname`, `kubernetes.io/os`, `kubernetes.io/arch`).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a taint.
    pub fn taint(mut self, key: &str, value: Option<&str>, effect: &str) -> Self {
        self.taints.push(Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            time_added: None,
        });
        self
    }

    /// How often the lease is renewed. Default 10 s (a kubelet's 40 s lease / 4).
    pub fn lease_renew_interval(mut self, interval: Duration) -> Self {
        self.lease_renew_interval = interval;
        self
    }

    /// Creates the Node (Ready, with capacity), sets its status, creates its Lease and starts
    /// renewing it on the current tokio runtime.
    pub async fn create(self, client: &Client) -> Result<FakeNode> {
        static NEXT_IP: AtomicU32 = AtomicU32::new(1);
        let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
        // NODE_CIDR = 198.19.128.0/17.
        let ip = format!("198.19.{}.{}", 128 + (n >> 8) % 128, n & 0xff);
        let name = self.name.clone();
        let mut labels = self.labels.clone();
        for (k, v) in [
            ("kubernetes.io/hostname", name.as_str()),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
        ] {
            labels.entry(k.into()).or_insert_with(|| v.into());
        }
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: (!self.taints.is_empty()).then(|| self.taints.clone()),
                ..Default::default()
            }),
            status: Some(self.status(&ip)),
        };
        let nodes: Api<Node> = Api::all(client.clone());
        let created = nodes
            .create(&PostParams::default(), &node)
            .await
            .map_err(|e| Error::kube(format!("create Node {name}"), e))?;
        // Status is a subresource; set it explicitly in case create dropped it.
        let status = serde_json::json!({ "status": self.status(&ip) });
        nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(|e| Error::kube(format!("set the status of Node {name}"), e))?;
        let uid = created.metadata.uid.clone().unwrap_or_default();
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(LEASE_NAMESPACE.into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.clone(),
                    uid,
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(name.clone()),
                lease_duration_seconds: Some(40),
                renew_time: Some(MicroTime(Timestamp::now())),
                ..Default::default()
            }),
        };
        let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
        leases
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&lease),
            )
            .await
            .map_err(|e| Error::kube(format!("create Lease {LEASE_NAMESPACE}/{name}"), e))?;
        let interval = self.lease_renew_interval;
        let lease_name = name.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let patch = serde_json::json!({
                    "spec": { "renewTime": MicroTime(Timestamp::now()) }
                });
                // A failed renewal is retried next interval, like a kubelet would.
                let _ = tokio::time::timeout(
                    interval,
                    leases.patch(&lease_name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await;
            }
        });
        Ok(FakeNode {
            name,
            nodes,
            heartbeat: Some(heartbeat),
        })
    }

    fn status(&self, ip: &str) -> NodeStatus {
        let now = Time(Timestamp::now());
        let condition = |type_: &str, status: &str, reason: &str| NodeCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some("tandem-testkit fake node".into()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(now.clone()),
        };
        let resources: BTreeMap<String, Quantity> = self
            .capacity
            .iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect();
        NodeStatus {
            capacity: Some(resources.clone()),
            allocatable: Some(resources),
            conditions: Some(vec![
                condition("Ready", "True", "KubeletReady"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            ]),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.into(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: self.name.clone(),
                },
            ]),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                boot_id: String::new(),
                container_runtime_version: "fake://0.0.0".into(),
                kernel_version: "0.0.0".into(),
                kube_proxy_version: String::new(),
                kubelet_version: "v1.36.3".into(),
                machine_id: String::new(),
                operating_system: "linux".into(),
                os_image: "tandem-testkit".into(),
                system_uuid: String::new(),
                ..Default::default()
            }),
            phase: Some("Running".into()),
            ..Default::default()
        }
    }
}

/// A fake node whose lease is being renewed. Dropping it stops the renewals (the Node object
/// stays; kcm marks it `Unknown` after the grace period). Use [`FakeNode::delete`] to remove it.
#[derive(Debug)]
pub struct FakeNode {
    name: String,
    nodes: Api<Node>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl FakeNode {
    /// Starts describing a node named `name` with 4 CPU, 16Gi memory and 110 pods.
    pub fn builder(name: &str) -> FakeNodeBuilder {
        FakeNodeBuilder {
            name: name.into(),
            capacity: [
                ("cpu", "4"),
                ("memory", "16Gi"),
                ("pods", "110"),
                ("ephemeral-storage", "100Gi"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            lease_renew_interval: Duration::from_secs(10),
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops renewing the lease, as if the kubelet died.
    pub fn stop_heartbeat(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }

    /// Waits (bounded) until the node lifecycle controller has removed the `not-ready` taint,
    /// i.e. the scheduler may place pods on it.
    pub async fn wait_schedulable(&self, timeout: Duration) -> Result<Node> {
        let node =
            crate::wait::wait_for_object(&self.nodes, &self.name, timeout, |n: Option<&Node>| {
                n.is_some_and(|n| {
                    !n.spec
                        .as_ref()
                        .and_then(|s| s.taints.as_ref())
                        .is_some_and(|t| t.iter().any(|t| t.key == NOT_READY_TAINT))
                })
            })
            .await?;
        node.ok_or_else(|| Error::Timeout {
            what: format!("Node {} to become schedulable", self.name),
            after: timeout,
        })
    }

    /// Stops the heartbeat and deletes the Node.
    pub async fn delete(mut self) -> Result<()> {
        self.stop_heartbeat();
        match self
            .nodes
            .delete(&self.name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::kube(format!("delete Node {}", self.name), e)),
        }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}
