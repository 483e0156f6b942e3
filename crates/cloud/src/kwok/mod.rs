//! The kwok provider: "instances" are Node objects in a real API server (reference §9.2), and a
//! [`Kubelet`] task plays kubelet for them.
//!
//! ```text
//!   create(claim) ─ launch delay ─► choose offering ─► (registration delay) ─► Node <claim name>
//!                                                        spec.providerID = kwok://<name>
//!                                                        taint karpenter.sh/unregistered:NoExecute
//!                                                        capacity/allocatable/labels of the type
//!   Kubelet ── Node Ready once `ready-after` passed (never, with the never-ready fault)
//!           ── Lease kube-node-lease/<node> renewed every 10 s
//!           ── pods bound to its nodes → Running, Ready, pod IP from 198.19.0.0/17
//!           ── pods being deleted → removed (grace 0) once their deletionTimestamp has passed
//! ```
//!
//! Everything an instance is lives on its Node (labels, annotations), so a restarted controller
//! (or a second replica) sees the same instances; only a Node still inside its registration
//! delay is held in memory, and a claim whose launch is repeated after a restart gets the same
//! Node name back (create is idempotent by NodeClaim name because the Node is named after it).
//!
//! Addresses: node InternalIPs come from 198.19.192.0/18 and pod IPs from 198.19.0.0/17, inside
//! testkit's `NODE_CIDR`/`POD_CIDR` but away from the low end of `NODE_CIDR` that testkit's own
//! fake nodes count up from.

mod kubelet;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tandem_api::condition::find;
use tandem_api::karpenter::NodeClaim;
use tandem_api::kwok::KWOKNodeClass;
use tandem_model::catalog::Catalog;
use tandem_model::resources::Resources;

use crate::error::{Error, OfferingRef};
use crate::interruption::{Notice, NoticeKind};
use crate::requirements::{choose, instance_labels};
use crate::{CloudProvider, DriftReason, Instance};

pub use kubelet::Kubelet;

/// Prefix of every kwok provider ID.
pub const PROVIDER_ID_PREFIX: &str = "kwok://";
/// Label (and annotation) upstream kwok puts on its nodes; the kubelet selects on it.
pub const FAKE_NODE_LABEL: &str = "kwok.x-k8s.io/node";
/// Annotation: the NodeClaim an instance was launched for.
pub const NODECLAIM_ANNOTATION: &str = "karpenter.kwok.sh/nodeclaim";
/// Annotation: RFC 3339 time after which the kubelet reports the Node Ready.
pub const READY_AFTER_ANNOTATION: &str = "karpenter.kwok.sh/ready-after";
/// Annotation: the node never becomes Ready (failure injection).
pub const NEVER_READY_ANNOTATION: &str = "karpenter.kwok.sh/never-ready";
/// Annotation: the instance was terminated; the Node object may linger while finalizers run.
pub const TERMINATED_ANNOTATION: &str = "karpenter.kwok.sh/terminated";
/// Taint the kubelet registers with; the lifecycle controller removes it at registration.
pub const UNREGISTERED_TAINT: &str = "karpenter.sh/unregistered";
/// Node label that delivers an interruption notice for the node's instance: its value is an
/// upstream message type (`spot_interrupted`, `rebalance_recommendation`, `scheduled_change`,
/// `instance_stopped`, `instance_terminated`). A label, not an annotation, so the provider
/// finds the few interrupted nodes with a selector instead of listing all of them.
pub const INTERRUPTION_LABEL: &str = "karpenter.kwok.sh/interruption";
/// Field manager of the provider's and kubelet's writes.
pub const FIELD_MANAGER: &str = "tandem-kwok";

/// Simulated boot timings; all zero by default so tests measure the controllers, not sleeps.
#[derive(Debug, Clone, Default)]
pub struct KwokOptions {
    /// How long `create` takes before it returns (the cloud API call).
    pub launch_delay: Duration,
    /// How long after `create` the Node object appears (boot until kubelet registers).
    pub registration_delay: Duration,
    /// How long after the Node appears it turns Ready.
    pub ready_delay: Duration,
}

#[derive(Debug, Default)]
struct Faults {
    next_launch_error: Option<Error>,
    unavailable: BTreeSet<OfferingRef>,
    never_ready: bool,
    hang_launches: bool,
    /// Every `create` call, answered or not: what a retry storm would show in.
    create_calls: u64,
}

/// The kwok cloud provider.
pub struct KwokCloud {
    client: Client,
    catalog: Arc<Catalog>,
    options: KwokOptions,
    faults: Mutex<Faults>,
    /// Instances inside their registration delay, by provider ID.
    booting: Arc<Mutex<BTreeMap<String, Instance>>>,
}

impl std::fmt::Debug for KwokCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KwokCloud")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl KwokCloud {
    /// A provider launching from Karpenter's KWOK catalog.
    pub fn new(client: Client, options: KwokOptions) -> Self {
        Self::with_catalog(client, Arc::new(Catalog::kwok()), options)
    }

    /// A provider launching from any catalog.
    pub fn with_catalog(client: Client, catalog: Arc<Catalog>, options: KwokOptions) -> Self {
        KwokCloud {
            client,
            catalog,
            options,
            faults: Mutex::new(Faults::default()),
            booting: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// The catalog instances come from.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Failure injection: the next `create` fails with `error`.
    pub fn fail_next_launch(&self, error: Error) {
        lock(&self.faults).next_launch_error = Some(error);
    }

    /// Failure injection: an offering has no capacity until further notice.
    pub fn insufficient_capacity(&self, offering: OfferingRef) {
        lock(&self.faults).unavailable.insert(offering);
    }

    /// Failure injection ends for `offering`: it has capacity again.
    pub fn capacity_restored(&self, offering: &OfferingRef) {
        lock(&self.faults).unavailable.remove(offering);
    }

    /// Failure injection: `create` calls from now on (and those waiting) never answer while
    /// `on` (a cloud API that hangs); with `false` they proceed.
    pub fn hang_launches(&self, on: bool) {
        lock(&self.faults).hang_launches = on;
    }

    /// How many times `create` was called so far (idempotent repeats included).
    pub fn create_calls(&self) -> u64 {
        lock(&self.faults).create_calls
    }

    /// Failure injection: Nodes launched from now on never become Ready (or, with `false`,
    /// behave again).
    pub fn never_ready(&self, on: bool) {
        lock(&self.faults).never_ready = on;
    }

    fn node_name(provider_id: &str) -> Option<&str> {
        provider_id.strip_prefix(PROVIDER_ID_PREFIX)
    }

    async fn check_node_class(&self, name: &str) -> Result<(), Error> {
        let api: Api<KWOKNodeClass> = Api::all(self.client.clone());
        let class = api
            .get_opt(name)
            .await
            .map_err(|e| Error::api(format!("get KWOKNodeClass {name}"), e))?;
        // Upstream: a missing NodeClass is insufficient capacity, a not-Ready one is its own
        // error.
        let Some(class) = class else {
            return Err(Error::InsufficientCapacity {
                offerings: Vec::new(),
            });
        };
        let ready = class
            .status
            .as_ref()
            .and_then(|s| find(&s.conditions, "Ready"))
            .is_none_or(|c| c.is_true());
        if ready {
            Ok(())
        } else {
            Err(Error::NodeClassNotReady {
                name: name.to_owned(),
            })
        }
    }
}

/// A stable address inside `base/prefix` for `key` (FNV-1a), skipping the network and
/// broadcast addresses.
pub(crate) fn address(base: [u8; 4], prefix_len: u32, key: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let size = 1u32 << (32 - prefix_len);
    let offset = 1 + h % (size - 2);
    let ip = u32::from_be_bytes(base) + offset;
    std::net::Ipv4Addr::from(ip).to_string()
}

fn node_ip(name: &str) -> String {
    address([198, 19, 192, 0], 18, name)
}

fn instance_from_node(node: &Node) -> Option<Instance> {
    let provider_id = node.spec.as_ref()?.provider_id.clone()?;
    if !provider_id.starts_with(PROVIDER_ID_PREFIX) {
        return None;
    }
    let annotations = node.metadata.annotations.clone().unwrap_or_default();
    if annotations.contains_key(TERMINATED_ANNOTATION) {
        return None;
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    let to_resources = |list: Option<
        BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        let mut r = Resources::new();
        for (k, q) in list.unwrap_or_default() {
            if let Ok(q) = q.0.parse() {
                r.set(&k, &q);
            }
        }
        r
    };
    Some(Instance {
        provider_id,
        nodeclaim: annotations
            .get(NODECLAIM_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        instance_type: get(tandem_model::labels::INSTANCE_TYPE),
        zone: get(tandem_model::labels::ZONE),
        capacity_type: get(tandem_model::labels::CAPACITY_TYPE),
        capacity: to_resources(status.capacity),
        allocatable: to_resources(status.allocatable),
        labels,
        created: node
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0),
    })
}

/// The Node object that *is* the instance.
fn build_node(instance: &Instance, ready_after: Option<Timestamp>, never_ready: bool) -> Node {
    let name = instance
        .provider_id
        .trim_start_matches(PROVIDER_ID_PREFIX)
        .to_owned();
    let mut labels = instance.labels.clone();
    labels.insert(tandem_model::labels::HOSTNAME.to_owned(), name.clone());
    labels.insert(FAKE_NODE_LABEL.to_owned(), "fake".to_owned());
    let mut annotations = BTreeMap::new();
    annotations.insert(FAKE_NODE_LABEL.to_owned(), "fake".to_owned());
    annotations.insert(NODECLAIM_ANNOTATION.to_owned(), instance.nodeclaim.clone());
    if let Some(t) = ready_after {
        annotations.insert(READY_AFTER_ANNOTATION.to_owned(), t.to_string());
    }
    if never_ready {
        annotations.insert(NEVER_READY_ANNOTATION.to_owned(), "true".to_owned());
    }
    let quantities = |r: &Resources| {
        r.to_quantities()
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity(v.to_string()),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let arch = labels
        .get(tandem_model::labels::ARCH)
        .cloned()
        .unwrap_or_else(|| "amd64".to_owned());
    let os = labels
        .get(tandem_model::labels::OS)
        .cloned()
        .unwrap_or_else(|| "linux".to_owned());
    let now = Time(Timestamp::now());
    let ready_now = ready_after.is_none() && !never_ready;
    let condition = |type_: &str, status: &str, reason: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some("kwok".into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    };
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            provider_id: Some(instance.provider_id.clone()),
            taints: Some(vec![Taint {
                key: UNREGISTERED_TAINT.into(),
                value: None,
                effect: "NoExecute".into(),
                time_added: None,
            }]),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            capacity: Some(quantities(&instance.capacity)),
            allocatable: Some(quantities(&instance.allocatable)),
            conditions: Some(vec![
                if ready_now {
                    condition("Ready", "True", "KubeletReady")
                } else {
                    condition("Ready", "False", "KubeletNotReady")
                },
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            ]),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: node_ip(&name),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.clone(),
                },
            ]),
            node_info: Some(NodeSystemInfo {
                architecture: arch,
                operating_system: os,
                container_runtime_version: "kwok://0.0.0".into(),
                kubelet_version: "v1.36.3".into(),
                kernel_version: "0.0.0".into(),
                os_image: "tandem-kwok".into(),
                ..NodeSystemInfo::default()
            }),
            phase: Some("Running".into()),
            ..NodeStatus::default()
        }),
    }
}

/// Creates the Node (or finds it), then sets its status, which create may drop.
async fn register(client: Client, node: Node) -> Result<(), Error> {
    let api: Api<Node> = Api::all(client);
    let name = node.metadata.name.clone().unwrap_or_default();
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
        Err(e) => return Err(Error::api(format!("create Node {name}"), e)),
    }
    let status = serde_json::json!({ "status": node.status });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(|e| Error::api(format!("set the status of Node {name}"), e))?;
    Ok(())
}

impl CloudProvider for KwokCloud {
    fn name(&self) -> &'static str {
        "kwok"
    }

    fn create<'a>(&'a self, claim: &'a NodeClaim) -> BoxFuture<'a, Result<Instance, Error>> {
        Box::pin(async move {
            lock(&self.faults).create_calls += 1;
            while lock(&self.faults).hang_launches {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let claim_name = claim.metadata.name.clone().unwrap_or_default();
            let provider_id = crate::kwok_provider_id(&claim_name);
            // Idempotent: an instance that exists (booting or registered) is returned as is.
            if let Some(i) = lock(&self.booting).get(&provider_id).cloned() {
                return Ok(i);
            }
            let nodes: Api<Node> = Api::all(self.client.clone());
            if let Some(node) = nodes
                .get_opt(&claim_name)
                .await
                .map_err(|e| Error::api(format!("get Node {claim_name}"), e))?
                && let Some(i) = instance_from_node(&node)
            {
                return Ok(i);
            }
            if !self.options.launch_delay.is_zero() {
                tokio::time::sleep(self.options.launch_delay).await;
            }
            let (unavailable, never_ready) = {
                let mut f = lock(&self.faults);
                if let Some(e) = f.next_launch_error.take() {
                    return Err(e);
                }
                (f.unavailable.clone(), f.never_ready)
            };
            let class = &claim.spec.node_class_ref.name;
            self.check_node_class(class).await?;
            let (it, o) = choose(&self.catalog, claim, class, &unavailable)?;
            let mut labels = instance_labels(it, o);
            // Claim labels win over resolved ones, as upstream merges them.
            for (k, v) in claim.metadata.labels.clone().unwrap_or_default() {
                labels.insert(k, v);
            }
            let instance = Instance {
                provider_id: provider_id.clone(),
                nodeclaim: claim_name,
                instance_type: it.name().to_owned(),
                zone: o.zone.clone(),
                capacity_type: o.capacity_type.as_str().to_owned(),
                capacity: it.capacity().clone(),
                allocatable: it.allocatable().clone(),
                labels,
                created: Timestamp::now(),
            };
            let ready_after = (!self.options.ready_delay.is_zero()).then(|| {
                let d = self.options.registration_delay + self.options.ready_delay;
                Timestamp::now()
                    .checked_add(k8s_openapi::jiff::SignedDuration::try_from(d).unwrap_or_default())
                    .unwrap_or_else(|_| Timestamp::now())
            });
            let node = build_node(&instance, ready_after, never_ready);
            if self.options.registration_delay.is_zero() {
                register(self.client.clone(), node).await?;
            } else {
                lock(&self.booting).insert(provider_id.clone(), instance.clone());
                let client = self.client.clone();
                let booting = self.booting.clone();
                let delay = self.options.registration_delay;
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Err(e) = register(client, node).await {
                        tracing::warn!(error = %e, provider_id, "kwok node registration failed");
                    }
                    lock(&booting).remove(&provider_id);
                });
            }
            Ok(instance)
        })
    }

    fn delete<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            lock(&self.booting).remove(provider_id);
            let Some(name) = Self::node_name(provider_id) else {
                return Ok(());
            };
            let api: Api<Node> = Api::all(self.client.clone());
            // Mark first: the Node may stay while finalizers run, but the machine is gone.
            let mark =
                serde_json::json!({"metadata": {"annotations": {TERMINATED_ANNOTATION: "true"}}});
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&mark))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(e) => return Err(Error::api(format!("mark Node {name} terminated"), e)),
            }
            match api.delete(name, &kube::api::DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(Error::api(format!("delete Node {name}"), e)),
            }
        })
    }

    fn get<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<Instance, Error>> {
        Box::pin(async move {
            if let Some(i) = lock(&self.booting).get(provider_id).cloned() {
                return Ok(i);
            }
            let not_found = || Error::NodeClaimNotFound {
                provider_id: provider_id.to_owned(),
            };
            let name = Self::node_name(provider_id).ok_or_else(not_found)?;
            let api: Api<Node> = Api::all(self.client.clone());
            let node = api
                .get_opt(name)
                .await
                .map_err(|e| Error::api(format!("get Node {name}"), e))?;
            node.as_ref()
                .and_then(instance_from_node)
                .ok_or_else(not_found)
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Instance>, Error>> {
        Box::pin(async move {
            let api: Api<Node> = Api::all(self.client.clone());
            let nodes = api
                .list(&ListParams::default().labels(&format!("{FAKE_NODE_LABEL}=fake")))
                .await
                .map_err(|e| Error::api("list kwok Nodes", e))?;
            let mut out: Vec<Instance> =
                nodes.items.iter().filter_map(instance_from_node).collect();
            out.extend(lock(&self.booting).values().cloned());
            out.sort_by(|a, b| a.provider_id.cmp(&b.provider_id));
            out.dedup_by(|a, b| a.provider_id == b.provider_id);
            Ok(out)
        })
    }

    fn instance_types<'a>(
        &'a self,
        _node_class: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Catalog>, Error>> {
        Box::pin(async move { Ok(self.catalog.clone()) })
    }

    fn is_drifted<'a>(
        &'a self,
        _claim: &'a NodeClaim,
    ) -> BoxFuture<'a, Result<Option<DriftReason>, Error>> {
        // Upstream kwok never reports drift.
        Box::pin(async move { Ok(None) })
    }

    fn interruptions(&self) -> BoxFuture<'_, Result<Vec<Notice>, Error>> {
        Box::pin(async move {
            let api: Api<Node> = Api::all(self.client.clone());
            let nodes = api
                .list_metadata(&ListParams::default().labels(INTERRUPTION_LABEL))
                .await
                .map_err(|e| Error::api("list interrupted kwok Nodes", e))?;
            let mut out = Vec::new();
            for n in &nodes.items {
                let name = n.metadata.name.clone().unwrap_or_default();
                let value = n
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(INTERRUPTION_LABEL))
                    .map(String::as_str)
                    .unwrap_or_default();
                match value.parse::<NoticeKind>() {
                    Ok(kind) => out.push(Notice {
                        provider_id: crate::kwok_provider_id(&name),
                        id: name,
                        kind,
                    }),
                    Err(e) => {
                        tracing::warn!(node = %name, error = %e, "ignoring the node's interruption label")
                    }
                }
            }
            Ok(out)
        })
    }

    fn acknowledge<'a>(&'a self, notice: &'a Notice) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let api: Api<Node> = Api::all(self.client.clone());
            let patch = serde_json::json!({"metadata": {"labels": {INTERRUPTION_LABEL: null}}});
            match api
                .patch(&notice.id, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(Error::api(
                    format!("acknowledge interruption of Node {}", notice.id),
                    e,
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_stay_inside_their_ranges() {
        for key in ["a", "b", "kwok-node-1", "ns/pod-0", ""] {
            let ip: std::net::Ipv4Addr = node_ip(key).parse().unwrap();
            let o = ip.octets();
            assert_eq!((o[0], o[1]), (198, 19));
            assert!(o[2] >= 192, "{ip}");
            let pod: std::net::Ipv4Addr = address([198, 19, 0, 0], 17, key).parse().unwrap();
            let o = pod.octets();
            assert_eq!((o[0], o[1]), (198, 19));
            assert!(o[2] < 128, "{pod}");
            assert_ne!(pod.octets(), [198, 19, 0, 0]);
        }
    }

    #[test]
    fn node_carries_type_labels_provider_id_and_unregistered_taint() {
        let catalog = Catalog::kwok();
        let it = catalog.get("c-2x-amd64-linux").unwrap();
        let o = &it.offerings()[0];
        let instance = Instance {
            provider_id: "kwok://np-abc".into(),
            nodeclaim: "np-abc".into(),
            instance_type: it.name().into(),
            zone: o.zone.clone(),
            capacity_type: o.capacity_type.as_str().into(),
            capacity: it.capacity().clone(),
            allocatable: it.allocatable().clone(),
            labels: instance_labels(it, o),
            created: Timestamp::now(),
        };
        let node = build_node(&instance, None, false);
        let labels = node.metadata.labels.clone().unwrap();
        assert_eq!(
            labels["node.kubernetes.io/instance-type"],
            "c-2x-amd64-linux"
        );
        assert_eq!(labels["kubernetes.io/hostname"], "np-abc");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        let spec = node.spec.clone().unwrap();
        assert_eq!(spec.provider_id.as_deref(), Some("kwok://np-abc"));
        assert_eq!(spec.taints.unwrap()[0].key, UNREGISTERED_TAINT);
        let status = node.status.clone().unwrap();
        assert_eq!(status.capacity.unwrap()["cpu"].0, "2");
        let back = instance_from_node(&node).unwrap();
        assert_eq!(back.instance_type, "c-2x-amd64-linux");
        assert_eq!(back.nodeclaim, "np-abc");
        assert_eq!(back.capacity, instance.capacity);
    }
}
