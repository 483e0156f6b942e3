//! What a document is: its apiVersion, kind, name and namespace, and whether Tandem knows the kind.

use serde_json::Value;

/// The identity of one object in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// `group/version`, or `v1` for the core group.
    pub api_version: String,
    /// The kind, e.g. `NodePool`.
    pub kind: String,
    /// `metadata.name` (empty when missing; that is reported separately).
    pub name: String,
    /// `metadata.namespace`, when written.
    pub namespace: Option<String>,
}

impl ObjectRef {
    /// Reads the identity fields of a document, if it has an apiVersion and a kind.
    pub fn of(value: &Value) -> Option<ObjectRef> {
        let api_version = value.get("apiVersion")?.as_str()?.to_string();
        let kind = value.get("kind")?.as_str()?.to_string();
        let meta = value.get("metadata");
        let text = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Some(ObjectRef {
            api_version,
            kind,
            name: text("name").unwrap_or_default(),
            namespace: text("namespace"),
        })
    }

    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
    }

    /// The namespace the object lands in when applied without `-n`: its own, or `default`.
    pub fn effective_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }

    /// `Kind namespace/name` as findings print it (`Kind name` without a written namespace).
    pub fn display(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {}/{}", self.kind, ns, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// Core and apps kinds whose pod templates Tandem reads (requests decide node shapes).
pub const WORKLOAD_KINDS: &[(&str, &str)] = &[
    ("v1", "Pod"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "ReplicaSet"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
];

/// Other built-in kinds the seeds and users put beside their autoscaling objects. Tandem
/// recognises them (so they are not reported as unknown) and checks only what it relies on.
pub const OTHER_CORE_KINDS: &[(&str, &str)] = &[
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "LimitRange"),
    ("v1", "ResourceQuota"),
    ("networking.k8s.io/v1", "Ingress"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("storage.k8s.io/v1", "StorageClass"),
];
