//! The scale target: found through discovery from `scaleTargetRef.apiVersion/kind`, read and
//! written only through its `/scale` subresource, so anything that has one can be scaled.

use k8s_openapi::api::autoscaling::v1::Scale;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Api, Client};
use serde_json::json;
use tandem_api::keda::v1alpha1::{GroupVersionKindResource, ScaleTarget};

use crate::error::{Error, is_not_found};

/// A resolved scale target type.
#[derive(Debug, Clone)]
pub struct TargetType {
    /// The resource, for dynamic API calls.
    pub resource: ApiResource,
    /// `status.scaleTargetGVKR`.
    pub gvkr: GroupVersionKindResource,
}

impl TargetType {
    /// `group/version` (or `version` for the core group), as on an HPA's `scaleTargetRef`.
    #[must_use]
    pub fn api_version(&self) -> &str {
        &self.resource.api_version
    }

    /// `status.scaleTargetKind`: `apps/v1.Deployment`.
    #[must_use]
    pub fn kind_string(&self) -> String {
        format!("{}.{}", self.resource.api_version, self.resource.kind)
    }
}

/// `group` and `version` of an `apiVersion` (default `apps/v1`).
#[must_use]
pub fn split_api_version(api_version: Option<&str>) -> (String, String) {
    let av = api_version.filter(|s| !s.is_empty()).unwrap_or("apps/v1");
    match av.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), av.to_owned()),
    }
}

/// Resolves the target's type through discovery and checks that it has `/scale`.
///
/// # Errors
/// [`Error::Target`] naming `spec.scaleTargetRef` when the kind is unknown or has no `/scale`.
pub async fn resolve(client: &Client, target: &ScaleTarget) -> Result<TargetType, Error> {
    let (group, version) = split_api_version(target.api_version.as_deref());
    let kind = target.kind_or_default().to_owned();
    let gvk = GroupVersionKind::gvk(&group, &version, &kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| Error::Target {
            message: format!(
                "spec.scaleTargetRef: kind {kind} of {}{version} is not served by the cluster ({e})",
                if group.is_empty() { String::new() } else { format!("{group}/") },
            ),
        })?;
    if !caps.subresources.iter().any(|(r, _)| r.plural == "scale") {
        return Err(Error::Target {
            message: format!(
                "spec.scaleTargetRef: Target resource doesn't expose /scale subresource ({kind} {}/{version})",
                group
            ),
        });
    }
    let gvkr = GroupVersionKindResource {
        group,
        version,
        kind,
        resource: resource.plural.clone(),
    };
    Ok(TargetType { resource, gvkr })
}

/// How long a resolved target type is reused before discovery is asked again: a CRD whose
/// `/scale` changes is picked up within it.
pub const DISCOVERY_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Target types resolved by every worker of one controller, by `(apiVersion, kind)`.
///
/// Without it, each ScaledObject asked discovery for its group on its own: 10,000
/// Deployments' objects made 10,000 `GET /apis/apps/v1` at start-up (the audit log of #15's
/// bench). One lookup at a time, so that the first burst of workers waits for a single
/// answer instead of sending one each; failures are not kept (the next tick asks again).
#[derive(Debug, Default)]
pub struct TargetTypes {
    resolved:
        tokio::sync::Mutex<std::collections::HashMap<TypeKey, (tokio::time::Instant, TargetType)>>,
}

/// `(scaleTargetRef.apiVersion, kind)`.
type TypeKey = (Option<String>, String);

impl TargetTypes {
    /// The type of `target`, from the cache when fresh, else through [`resolve`].
    ///
    /// # Errors
    /// As [`resolve`].
    pub async fn get(&self, client: &Client, target: &ScaleTarget) -> Result<TargetType, Error> {
        let key = (
            target.api_version.clone(),
            target.kind_or_default().to_owned(),
        );
        let mut resolved = self.resolved.lock().await;
        let now = tokio::time::Instant::now();
        if let Some((at, t)) = resolved.get(&key)
            && now.duration_since(*at) < DISCOVERY_TTL
        {
            return Ok(t.clone());
        }
        let t = resolve(client, target).await?;
        resolved.insert(key, (now, t.clone()));
        Ok(t)
    }
}

/// The target's replicas as `/scale` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas {
    /// `spec.replicas`.
    pub spec: u32,
    /// `status.replicas`.
    pub status: u32,
}

fn api(client: &Client, namespace: &str, t: &TargetType) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &t.resource)
}

/// Reads `/scale`; `Ok(None)` when the target does not exist.
///
/// # Errors
/// [`Error::Kube`] on any other failure.
pub async fn read(
    client: &Client,
    namespace: &str,
    name: &str,
    t: &TargetType,
) -> Result<Option<Replicas>, Error> {
    match api(client, namespace, t).get_scale(name).await {
        Ok(scale) => Ok(Some(replicas(&scale))),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(Error::kube(
            format!("read /scale of {} {namespace}/{name}", t.resource.kind),
            e,
        )),
    }
}

fn replicas(scale: &Scale) -> Replicas {
    let n = |v: Option<i32>| u32::try_from(v.unwrap_or(0)).unwrap_or(0);
    Replicas {
        spec: n(scale.spec.as_ref().and_then(|s| s.replicas)),
        status: scale
            .status
            .as_ref()
            .map_or(0, |s| u32::try_from(s.replicas).unwrap_or(0)),
    }
}

/// Writes `/scale` `spec.replicas`.
///
/// # Errors
/// [`Error::Kube`] when the patch fails.
pub async fn write(
    client: &Client,
    namespace: &str,
    name: &str,
    t: &TargetType,
    n: u32,
) -> Result<(), Error> {
    api(client, namespace, t)
        .patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": n}})),
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            Error::kube(
                format!("write /scale of {} {namespace}/{name}", t.resource.kind),
                e,
            )
        })
}

/// One pod as the target's template makes it (labels, spec, namespace), in the node layer's
/// terms: what predictive provisioning plans room for before the ReplicaSet creates it.
/// `None` when the target has no pod template (a custom resource with only `/scale`).
///
/// # Errors
/// [`Error::Kube`] when the target cannot be read.
pub async fn pod_template(
    client: &Client,
    namespace: &str,
    name: &str,
    t: &TargetType,
) -> Result<Option<tandem_nodescaler::snapshot::PendingPod>, Error> {
    let obj = api(client, namespace, t)
        .get(name)
        .await
        .map_err(|e| Error::kube(format!("read {} {namespace}/{name}", t.resource.kind), e))?;
    let Some(template) = obj.data.pointer("/spec/template") else {
        return Ok(None);
    };
    let Ok(mut pod) = serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(template.clone())
    else {
        return Ok(None);
    };
    pod.metadata.namespace = Some(namespace.to_owned());
    pod.metadata.name = Some(name.to_owned());
    Ok(tandem_state::convert::pending_pod(&pod, 0))
}

/// The literal env of each container of the target's pod template, in order (for
/// TriggerAuthentication `env` and `<name>FromEnv`). `valueFrom` entries are not resolved.
///
/// # Errors
/// [`Error::Kube`] when the target cannot be read.
pub async fn container_env(
    client: &Client,
    namespace: &str,
    name: &str,
    t: &TargetType,
) -> Result<Vec<(String, Vec<(String, String)>)>, Error> {
    let obj = api(client, namespace, t)
        .get(name)
        .await
        .map_err(|e| Error::kube(format!("read {} {namespace}/{name}", t.resource.kind), e))?;
    let containers = obj
        .data
        .pointer("/spec/template/spec/containers")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    Ok(containers
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default().to_owned();
            let env = c["env"]
                .as_array()
                .map(|env| {
                    env.iter()
                        .filter_map(|e| {
                            Some((
                                e["name"].as_str()?.to_owned(),
                                e["value"].as_str()?.to_owned(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            (name, env)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_default_to_apps_v1_and_core_has_no_group() {
        assert_eq!(split_api_version(None), ("apps".into(), "v1".into()));
        assert_eq!(split_api_version(Some("v1")), (String::new(), "v1".into()));
        assert_eq!(
            split_api_version(Some("argoproj.io/v1alpha1")),
            ("argoproj.io".into(), "v1alpha1".into())
        );
    }
}
