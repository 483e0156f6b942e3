//! Reading YAML manifests and submitting them to the API server: as a server-side dry run
//! ([`dry_run`]) or for real ([`apply`]).

use crate::controlplane::FIELD_MANAGER;
use crate::error::{Error, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::Scope;
use kube::{Api, Client};
use serde::Deserialize as _;
use std::path::{Path, PathBuf};

/// Every non-empty YAML document of `path`, as JSON values.
pub fn read_documents(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    parse_documents(&text).map_err(|source| Error::Yaml {
        path: path.to_owned(),
        source,
    })
}

/// Every non-empty document of a (multi-document) YAML string, as JSON values.
pub fn parse_documents(text: &str) -> Result<Vec<serde_json::Value>, serde_yaml_ng::Error> {
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Files under `dir` (recursively) whose name ends in `.yaml` or `.yml`, sorted; empty when
/// `dir` does not exist.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| Error::io("list", &dir, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What the API server said about one manifest.
#[derive(Debug)]
pub enum DryRun {
    /// Accepted (server-side apply, dry run, strict field validation).
    Accepted,
    /// No resource of this `apiVersion`/`kind` is served (e.g. its CRD is not installed).
    UnknownKind(String),
    /// Rejected; the API error says why.
    Rejected(kube::Error),
}

fn gvk_of(doc: &serde_json::Value) -> Option<GroupVersionKind> {
    let api_version = doc.get("apiVersion")?.as_str()?;
    let kind = doc.get("kind")?.as_str()?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Some(GroupVersionKind::gvk(group, version, kind))
}

/// The namespace a namespaced manifest names, if any.
pub fn namespace_of(doc: &serde_json::Value) -> Option<&str> {
    doc.get("metadata")?.get("namespace")?.as_str()
}

/// Creates namespace `name` unless it exists.
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(Error::kube(format!("create namespace {name}"), e)),
    }
}

/// Submits one manifest as a server-side-apply dry run with strict field validation (unknown
/// fields are errors). Namespaced objects without `metadata.namespace` go to
/// `default_namespace`; the namespace must exist. Objects with only `generateName` are sent as
/// a dry-run create instead.
pub async fn dry_run(
    client: &Client,
    doc: &serde_json::Value,
    default_namespace: &str,
) -> Result<DryRun> {
    let Some(gvk) = gvk_of(doc) else {
        return Ok(DryRun::UnknownKind(
            "document without apiVersion/kind".into(),
        ));
    };
    let (resource, caps): (ApiResource, _) = match kube::discovery::pinned_kind(client, &gvk).await
    {
        Ok(found) => found,
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Ok(DryRun::UnknownKind(format!(
                "{}/{} {}",
                gvk.group, gvk.version, gvk.kind
            )));
        }
        Err(kube::Error::Discovery(_)) => {
            return Ok(DryRun::UnknownKind(format!(
                "{}/{} {}",
                gvk.group, gvk.version, gvk.kind
            )));
        }
        Err(e) => return Err(Error::kube(format!("discover {}", gvk.kind), e)),
    };
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            namespace_of(doc).unwrap_or(default_namespace),
            &resource,
        ),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let name = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str());
    let result = match name {
        // The raw document is sent, so the server (not our parser) judges it.
        Some(name) => api
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER)
                    .force()
                    .dry_run()
                    .validation_strict(),
                &Patch::Apply(doc),
            )
            .await
            .map(drop),
        None => {
            let obj: DynamicObject = match serde_json::from_value(doc.clone()) {
                Ok(obj) => obj,
                Err(e) => return Ok(DryRun::Rejected(kube::Error::SerdeError(e))),
            };
            api.create(
                &PostParams {
                    dry_run: true,
                    field_manager: Some(FIELD_MANAGER.into()),
                },
                &obj,
            )
            .await
            .map(drop)
        }
    };
    match result {
        Ok(()) => Ok(DryRun::Accepted),
        Err(e @ kube::Error::Api(_)) => Ok(DryRun::Rejected(e)),
        Err(e) => Err(Error::kube(format!("dry-run {}", gvk.kind), e)),
    }
}

/// Server-side applies one manifest for real (field manager `tandem-testkit`, forced), as
/// `kubectl apply --server-side` would: how tests install rendered charts and seed files.
/// Namespaced objects without `metadata.namespace` go to `default_namespace`.
pub async fn apply(
    client: &Client,
    doc: &serde_json::Value,
    default_namespace: &str,
) -> Result<()> {
    let what = || {
        format!(
            "apply {} {}",
            doc.get("kind").and_then(|k| k.as_str()).unwrap_or("?"),
            doc.pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .unwrap_or("?")
        )
    };
    let invalid = |reason: &str| Error::Manifest {
        path: PathBuf::from("<document>"),
        reason: format!("{}: {reason}", what()),
    };
    let gvk = gvk_of(doc).ok_or_else(|| invalid("no apiVersion/kind"))?;
    let name = doc
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .ok_or_else(|| invalid("no metadata.name"))?;
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| Error::kube(what(), e))?;
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            namespace_of(doc).unwrap_or(default_namespace),
            &resource,
        ),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(doc),
    )
    .await
    .map(drop)
    .map_err(|e| Error::kube(what(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_skips_empty_documents() {
        let docs = parse_documents("---\na: 1\n---\n---\nkind: X\n").unwrap();
        assert_eq!(
            docs,
            vec![
                serde_json::json!({"a": 1}),
                serde_json::json!({"kind": "X"})
            ]
        );
    }

    #[test]
    fn core_and_grouped_api_versions_split_into_group_and_version() {
        let core = gvk_of(&serde_json::json!({"apiVersion": "v1", "kind": "Pod"})).unwrap();
        assert_eq!((core.group.as_str(), core.version.as_str()), ("", "v1"));
        let np = gvk_of(&serde_json::json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool"}))
            .unwrap();
        assert_eq!(
            (np.group.as_str(), np.version.as_str()),
            ("karpenter.sh", "v1")
        );
        assert!(gvk_of(&serde_json::json!({"replicas": 1})).is_none());
    }
}
