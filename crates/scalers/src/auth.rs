//! TriggerAuthentication / ClusterTriggerAuthentication resolution, as a pure function over
//! objects the shell has already fetched (keda.md §8).
//!
//! ```text
//!  ScaledObject ns/so ── trigger.authenticationRef {name, kind}
//!        │                          │
//!        │            TriggerAuthentication ns/name   (must be in ns)
//!        │            ClusterTriggerAuthentication name  (reads Secrets of the operator ns)
//!        ▼                          ▼
//!  target container env ──► env → configMapTargetRef → secretTargetRef ──► ResolvedAuth
//!                                 (later sources overwrite the same parameter)
//! ```
//!
//! Isolation is the point of this module: a ScaledObject may only read Secrets and ConfigMaps
//! of its own namespace (through a TriggerAuthentication of that namespace), and a
//! ClusterTriggerAuthentication only those of the cluster-object namespace. The shell may hand
//! us every Secret it has cached; we pick by namespace and name, and a reference that would
//! only resolve in another namespace is refused with [`AuthError::CrossNamespace`].
//! Values come out as [`Secret`]s; errors name objects and keys, never values.

use crate::params::PodIdentity;
use crate::secret::Secret;
use k8s_openapi::api::core::v1::{ConfigMap, Secret as KubeSecret};
use std::collections::BTreeMap;
use tandem_api::keda::v1alpha1::{
    AuthenticationRef, ClusterTriggerAuthentication, TriggerAuthentication,
    TriggerAuthenticationSpec,
};

/// Why a trigger's authentication cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The object handed in is not the one the trigger references.
    #[error("authenticationRef asks for {expected_kind} {expected_name}, got {kind} {name}")]
    WrongObject {
        /// Kind named by the reference.
        expected_kind: String,
        /// Name in the reference.
        expected_name: String,
        /// Kind handed in.
        kind: &'static str,
        /// Name handed in.
        name: String,
    },
    /// The trigger references an authentication that was not found.
    #[error("{kind} {name} not found")]
    AuthenticationNotFound {
        /// `TriggerAuthentication` or `ClusterTriggerAuthentication`.
        kind: String,
        /// Its name (namespace/name for a TriggerAuthentication).
        name: String,
    },
    /// An object of another namespace was referenced; never allowed.
    #[error(
        "{kind} {name} is in namespace {found_namespace}, but {reader} may only read namespace {allowed_namespace}"
    )]
    CrossNamespace {
        /// The kind of the object that would have been read.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The namespace it was found in.
        found_namespace: String,
        /// The namespace the reader is allowed to read.
        allowed_namespace: String,
        /// Who is reading, e.g. `TriggerAuthentication shop/rabbit`.
        reader: String,
    },
    /// A referenced Secret or ConfigMap does not exist in the allowed namespace.
    #[error("{kind} {namespace}/{name} not found (needed for parameter {parameter})")]
    ObjectNotFound {
        /// `Secret` or `ConfigMap`.
        kind: &'static str,
        /// Namespace looked in.
        namespace: String,
        /// Object name.
        name: String,
        /// The parameter it would fill.
        parameter: String,
    },
    /// The object exists but lacks the key.
    #[error("{kind} {namespace}/{name} has no key {key} (needed for parameter {parameter})")]
    KeyNotFound {
        /// `Secret` or `ConfigMap`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Object name.
        name: String,
        /// The missing key.
        key: String,
        /// The parameter it would fill.
        parameter: String,
    },
    /// A Secret value is not UTF-8 text.
    #[error("key {key} of Secret {namespace}/{name} is not UTF-8 text")]
    NotText {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
    /// The env var named by `env[]` is not set on the container.
    #[error(
        "container {container} of the scale target has no env var {var} (needed for parameter {parameter})"
    )]
    EnvNotFound {
        /// Container.
        container: String,
        /// Variable.
        var: String,
        /// The parameter it would fill.
        parameter: String,
    },
    /// The scale target has no such container.
    #[error("the scale target has no container {container}")]
    ContainerNotFound {
        /// Container.
        container: String,
    },
    /// `filePath` on a namespaced TriggerAuthentication (upstream refuses it too).
    #[error("filePath is only supported for ClusterTriggerAuthentication")]
    FilePathOnNamespaced,
    /// A source Tandem does not read (yet).
    #[error("{source_name} in {reader} is not supported by tandem yet")]
    UnsupportedSource {
        /// The spec field, e.g. `hashiCorpVault`.
        source_name: &'static str,
        /// The authentication object.
        reader: String,
    },
}

impl AuthError {
    /// Stable label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            AuthError::WrongObject { .. } => "AuthenticationMismatch",
            AuthError::AuthenticationNotFound { .. } => "AuthenticationNotFound",
            AuthError::CrossNamespace { .. } => "CrossNamespaceReference",
            AuthError::ObjectNotFound { .. } | AuthError::KeyNotFound { .. } => {
                "AuthenticationSourceNotFound"
            }
            AuthError::NotText { .. } => "AuthenticationValueInvalid",
            AuthError::EnvNotFound { .. } | AuthError::ContainerNotFound { .. } => "EnvNotFound",
            AuthError::FilePathOnNamespaced => "InvalidAuthentication",
            AuthError::UnsupportedSource { .. } => "UnsupportedAuthentication",
        }
    }
}

/// The outcome: parameter name → value, plus pod identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedAuth {
    /// Resolved parameters (`Debug` shows only names).
    pub params: BTreeMap<String, Secret<String>>,
    /// `podIdentity`, when set and not `none`.
    pub pod_identity: Option<PodIdentity>,
}

/// The scale target's containers with their resolved environment, in pod-spec order (the
/// first is the default `envSourceContainerName`). The shell resolves `valueFrom` refs of the
/// target's own namespace before calling us.
#[derive(Debug, Clone, Default)]
pub struct TargetEnv {
    containers: Vec<(String, BTreeMap<String, Secret<String>>)>,
}

impl TargetEnv {
    /// Adds a container (call in pod-spec order).
    pub fn container(mut self, name: &str, env: BTreeMap<String, Secret<String>>) -> Self {
        self.containers.push((name.to_owned(), env));
        self
    }

    /// The env of `name`, or of the first container when `name` is `None`.
    pub fn of(&self, name: Option<&str>) -> Result<&BTreeMap<String, Secret<String>>, AuthError> {
        match name {
            Some(n) => self
                .containers
                .iter()
                .find(|(c, _)| c == n)
                .map(|(_, e)| e)
                .ok_or_else(|| AuthError::ContainerNotFound {
                    container: n.to_owned(),
                }),
            None => Ok(self.containers.first().map_or(&EMPTY, |(_, e)| e)),
        }
    }
}

static EMPTY: BTreeMap<String, Secret<String>> = BTreeMap::new();

/// The authentication object found for a trigger's `authenticationRef`.
#[derive(Debug, Clone, Copy)]
pub enum AuthObject<'a> {
    /// A namespaced TriggerAuthentication.
    Namespaced(&'a TriggerAuthentication),
    /// A ClusterTriggerAuthentication.
    Cluster(&'a ClusterTriggerAuthentication),
}

/// What resolution may read.
#[derive(Debug, Clone, Copy)]
pub struct AuthInputs<'a> {
    /// Namespace of the ScaledObject / ScaledJob.
    pub namespace: &'a str,
    /// Where ClusterTriggerAuthentication Secrets live (KEDA: the operator namespace).
    pub cluster_object_namespace: &'a str,
    /// `scaleTargetRef.envSourceContainerName` (or the ScaledJob's).
    pub env_source_container: Option<&'a str>,
    /// The target's containers and env.
    pub target_env: &'a TargetEnv,
    /// Secrets the shell has (any namespaces; we pick).
    pub secrets: &'a [KubeSecret],
    /// ConfigMaps the shell has (any namespaces; we pick).
    pub config_maps: &'a [ConfigMap],
}

/// Resolves one trigger's authentication. `reference` is the trigger's `authenticationRef`
/// and `object` what the shell found for it (`None` if nothing).
pub fn resolve(
    inputs: &AuthInputs<'_>,
    reference: Option<&AuthenticationRef>,
    object: Option<AuthObject<'_>>,
) -> Result<ResolvedAuth, AuthError> {
    let Some(reference) = reference else {
        return Ok(ResolvedAuth::default());
    };
    let wanted_kind = reference.kind_or_default();
    let Some(object) = object else {
        return Err(AuthError::AuthenticationNotFound {
            kind: wanted_kind.to_owned(),
            name: if wanted_kind == "ClusterTriggerAuthentication" {
                reference.name.clone()
            } else {
                format!("{}/{}", inputs.namespace, reference.name)
            },
        });
    };
    let (kind, name, spec, read_ns) = match object {
        AuthObject::Namespaced(ta) => {
            let ns = ta.metadata.namespace.clone().unwrap_or_default();
            let name = ta.metadata.name.clone().unwrap_or_default();
            if ns != inputs.namespace {
                return Err(AuthError::CrossNamespace {
                    kind: "TriggerAuthentication",
                    name,
                    found_namespace: ns,
                    allowed_namespace: inputs.namespace.to_owned(),
                    reader: format!("a ScaledObject of namespace {}", inputs.namespace),
                });
            }
            ("TriggerAuthentication", name, &ta.spec, inputs.namespace)
        }
        AuthObject::Cluster(cta) => (
            "ClusterTriggerAuthentication",
            cta.metadata.name.clone().unwrap_or_default(),
            &cta.spec.inner,
            inputs.cluster_object_namespace,
        ),
    };
    if kind != wanted_kind || name != reference.name {
        return Err(AuthError::WrongObject {
            expected_kind: wanted_kind.to_owned(),
            expected_name: reference.name.clone(),
            kind,
            name,
        });
    }
    let reader = if kind == "TriggerAuthentication" {
        format!("{kind} {read_ns}/{name}")
    } else {
        format!("{kind} {name}")
    };
    resolve_spec(inputs, spec, kind, &reader, read_ns)
}

fn resolve_spec(
    inputs: &AuthInputs<'_>,
    spec: &TriggerAuthenticationSpec,
    kind: &str,
    reader: &str,
    read_ns: &str,
) -> Result<ResolvedAuth, AuthError> {
    let unsupported = |source_name| AuthError::UnsupportedSource {
        source_name,
        reader: reader.to_owned(),
    };
    if spec.file_path.is_some() {
        if kind == "TriggerAuthentication" {
            return Err(AuthError::FilePathOnNamespaced);
        }
        return Err(unsupported("filePath"));
    }
    if spec.hashi_corp_vault.is_some() {
        return Err(unsupported("hashiCorpVault"));
    }
    if spec.azure_key_vault.is_some() {
        return Err(unsupported("azureKeyVault"));
    }
    if spec.gcp_secret_manager.is_some() {
        return Err(unsupported("gcpSecretManager"));
    }
    if spec.aws_secret_manager.is_some() {
        return Err(unsupported("awsSecretManager"));
    }
    if !spec.bound_service_account_token.is_empty() {
        return Err(unsupported("boundServiceAccountToken"));
    }
    if spec.oauth2.is_some() {
        return Err(unsupported("oauth2"));
    }

    let mut out = ResolvedAuth::default();
    // Upstream order: env → (filePath) → configMapTargetRef → secretTargetRef; later wins.
    for e in &spec.env {
        let container = e.container_name.as_deref().or(inputs.env_source_container);
        let env = inputs.target_env.of(container)?;
        let value = env.get(&e.name).ok_or_else(|| AuthError::EnvNotFound {
            container: container.unwrap_or("(first)").to_owned(),
            var: e.name.clone(),
            parameter: e.parameter.clone(),
        })?;
        out.params.insert(e.parameter.clone(), value.clone());
    }
    for r in &spec.config_map_target_ref {
        let cm = pick(
            inputs.config_maps,
            "ConfigMap",
            &r.name,
            read_ns,
            reader,
            &r.parameter,
            |c| &c.metadata,
        )?;
        let value = cm
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key).cloned())
            .or_else(|| {
                cm.binary_data
                    .as_ref()
                    .and_then(|d| d.get(&r.key))
                    .and_then(|b| String::from_utf8(b.0.clone()).ok())
            })
            .ok_or_else(|| AuthError::KeyNotFound {
                kind: "ConfigMap",
                namespace: read_ns.to_owned(),
                name: r.name.clone(),
                key: r.key.clone(),
                parameter: r.parameter.clone(),
            })?;
        out.params.insert(r.parameter.clone(), Secret::new(value));
    }
    for r in &spec.secret_target_ref {
        let s = pick(
            inputs.secrets,
            "Secret",
            &r.name,
            read_ns,
            reader,
            &r.parameter,
            |s| &s.metadata,
        )?;
        let value = if let Some(b) = s.data.as_ref().and_then(|d| d.get(&r.key)) {
            String::from_utf8(b.0.clone()).map_err(|_| AuthError::NotText {
                namespace: read_ns.to_owned(),
                name: r.name.clone(),
                key: r.key.clone(),
            })?
        } else if let Some(v) = s.string_data.as_ref().and_then(|d| d.get(&r.key)) {
            v.clone()
        } else {
            return Err(AuthError::KeyNotFound {
                kind: "Secret",
                namespace: read_ns.to_owned(),
                name: r.name.clone(),
                key: r.key.clone(),
                parameter: r.parameter.clone(),
            });
        };
        out.params.insert(r.parameter.clone(), Secret::new(value));
    }
    out.pod_identity = spec
        .pod_identity
        .as_ref()
        .and_then(|p| match p.provider.as_str() {
            "none" | "" => None,
            "aws" | "aws-eks" => Some(PodIdentity::Aws {
                role_arn: p.role_arn.clone().filter(|s| !s.is_empty()),
                external_id: p.external_id.clone().filter(|s| !s.is_empty()),
            }),
            other => Some(PodIdentity::Other(other.to_owned())),
        });
    Ok(out)
}

/// The object `name` of namespace `ns`; refuses one that exists only elsewhere.
fn pick<'o, T>(
    objects: &'o [T],
    kind: &'static str,
    name: &str,
    ns: &str,
    reader: &str,
    parameter: &str,
    meta: impl Fn(&T) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Result<&'o T, AuthError> {
    let named = |o: &&T| meta(o).name.as_deref() == Some(name);
    if let Some(o) = objects
        .iter()
        .filter(named)
        .find(|o| meta(o).namespace.as_deref() == Some(ns))
    {
        return Ok(o);
    }
    if let Some(other) = objects.iter().find(named) {
        return Err(AuthError::CrossNamespace {
            kind,
            name: name.to_owned(),
            found_namespace: meta(other).namespace.clone().unwrap_or_default(),
            allowed_namespace: ns.to_owned(),
            reader: reader.to_owned(),
        });
    }
    Err(AuthError::ObjectNotFound {
        kind,
        namespace: ns.to_owned(),
        name: name.to_owned(),
        parameter: parameter.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use tandem_api::keda::v1alpha1::{ClusterTriggerAuthenticationSpec, EnvRef, SecretTargetRef};

    const CANARY: &str = "canary-s3cr3t-value";

    fn secret(ns: &str, name: &str, key: &str, value: &str) -> KubeSecret {
        KubeSecret {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some([(key.to_owned(), ByteString(value.as_bytes().to_vec()))].into()),
            ..Default::default()
        }
    }

    fn config_map(ns: &str, name: &str, key: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some([(key.to_owned(), value.to_owned())].into()),
            ..Default::default()
        }
    }

    fn ta(ns: &str, name: &str, spec: TriggerAuthenticationSpec) -> TriggerAuthentication {
        let mut ta = TriggerAuthentication::new(name, spec);
        ta.metadata.namespace = Some(ns.into());
        ta
    }

    fn secret_ref(parameter: &str, name: &str, key: &str) -> SecretTargetRef {
        SecretTargetRef {
            parameter: parameter.into(),
            name: name.into(),
            key: key.into(),
        }
    }

    fn reference(name: &str, kind: Option<&str>) -> AuthenticationRef {
        AuthenticationRef {
            name: name.into(),
            kind: kind.map(Into::into),
        }
    }

    fn inputs<'a>(
        env: &'a TargetEnv,
        secrets: &'a [KubeSecret],
        cms: &'a [ConfigMap],
    ) -> AuthInputs<'a> {
        AuthInputs {
            namespace: "shop",
            cluster_object_namespace: "tandem",
            env_source_container: None,
            target_env: env,
            secrets,
            config_maps: cms,
        }
    }

    #[test]
    fn later_sources_overwrite_earlier_ones_env_configmap_secret() {
        let env = TargetEnv::default().container(
            "app",
            [("HOST".to_owned(), Secret::from("from-env"))].into(),
        );
        let secrets = [secret("shop", "creds", "host", "from-secret")];
        let cms = [
            config_map("shop", "cfg", "host", "from-cm"),
            config_map("shop", "cfg2", "vhost", "v1"),
        ];
        let spec = TriggerAuthenticationSpec {
            env: vec![EnvRef {
                parameter: "host".into(),
                name: "HOST".into(),
                container_name: None,
            }],
            config_map_target_ref: vec![
                secret_ref("host", "cfg", "host"),
                secret_ref("vhostName", "cfg2", "vhost"),
            ],
            secret_target_ref: vec![secret_ref("host", "creds", "host")],
            ..Default::default()
        };
        let ta = ta("shop", "rmq", spec);
        let got = resolve(
            &inputs(&env, &secrets, &cms),
            Some(&reference("rmq", None)),
            Some(AuthObject::Namespaced(&ta)),
        )
        .unwrap();
        assert_eq!(got.params["host"].expose(), "from-secret");
        assert_eq!(got.params["vhostName"].expose(), "v1");
    }

    #[test]
    fn secret_of_another_namespace_is_refused() {
        let env = TargetEnv::default();
        // The only Secret named "creds" lives in "payments"; the ScaledObject is in "shop".
        let secrets = [secret("payments", "creds", "password", CANARY)];
        let spec = TriggerAuthenticationSpec {
            secret_target_ref: vec![secret_ref("password", "creds", "password")],
            ..Default::default()
        };
        let ta = ta("shop", "rmq", spec);
        let err = resolve(
            &inputs(&env, &secrets, &[]),
            Some(&reference("rmq", None)),
            Some(AuthObject::Namespaced(&ta)),
        )
        .unwrap_err();
        assert!(matches!(err, AuthError::CrossNamespace { .. }), "{err:?}");
        assert_eq!(err.category(), "CrossNamespaceReference");
        let text = format!("{err} {err:?}");
        assert!(text.contains("payments") && text.contains("shop"), "{text}");
        assert!(!text.contains(CANARY));
    }

    #[test]
    fn trigger_authentication_of_another_namespace_is_refused() {
        let env = TargetEnv::default();
        let secrets = [secret("payments", "creds", "password", CANARY)];
        let spec = TriggerAuthenticationSpec {
            secret_target_ref: vec![secret_ref("password", "creds", "password")],
            ..Default::default()
        };
        let foreign = ta("payments", "rmq", spec);
        let err = resolve(
            &inputs(&env, &secrets, &[]),
            Some(&reference("rmq", None)),
            Some(AuthObject::Namespaced(&foreign)),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            AuthError::CrossNamespace {
                kind: "TriggerAuthentication",
                ..
            }
        ));
    }

    #[test]
    fn cluster_trigger_authentication_reads_the_cluster_object_namespace_only() {
        let env = TargetEnv::default();
        let spec = ClusterTriggerAuthenticationSpec {
            inner: TriggerAuthenticationSpec {
                secret_target_ref: vec![secret_ref("password", "creds", "password")],
                ..Default::default()
            },
        };
        let cta = ClusterTriggerAuthentication::new("global", spec);
        let r = reference("global", Some("ClusterTriggerAuthentication"));
        let ok = [secret("tandem", "creds", "password", "pw")];
        let got = resolve(
            &inputs(&env, &ok, &[]),
            Some(&r),
            Some(AuthObject::Cluster(&cta)),
        )
        .unwrap();
        assert_eq!(got.params["password"].expose(), "pw");
        // The ScaledObject's own namespace is not where a CTA reads from.
        let wrong = [secret("shop", "creds", "password", "pw")];
        let err = resolve(
            &inputs(&env, &wrong, &[]),
            Some(&r),
            Some(AuthObject::Cluster(&cta)),
        )
        .unwrap_err();
        assert!(matches!(err, AuthError::CrossNamespace { .. }), "{err:?}");
    }

    #[test]
    fn resolved_values_are_redacted_in_debug() {
        let env = TargetEnv::default();
        let secrets = [secret("shop", "creds", "password", CANARY)];
        let spec = TriggerAuthenticationSpec {
            secret_target_ref: vec![secret_ref("password", "creds", "password")],
            pod_identity: None,
            ..Default::default()
        };
        let ta = ta("shop", "rmq", spec);
        let got = resolve(
            &inputs(&env, &secrets, &[]),
            Some(&reference("rmq", None)),
            Some(AuthObject::Namespaced(&ta)),
        )
        .unwrap();
        let dbg = format!("{got:?}");
        assert!(dbg.contains("password") && !dbg.contains(CANARY), "{dbg}");
    }

    #[test]
    fn missing_key_and_missing_object_name_the_parameter() {
        let env = TargetEnv::default();
        let secrets = [secret("shop", "creds", "other", "x")];
        let spec = TriggerAuthenticationSpec {
            secret_target_ref: vec![
                secret_ref("password", "creds", "password"),
                secret_ref("host", "nope", "h"),
            ],
            ..Default::default()
        };
        let ta = ta("shop", "rmq", spec);
        let err = resolve(
            &inputs(&env, &secrets, &[]),
            Some(&reference("rmq", None)),
            Some(AuthObject::Namespaced(&ta)),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Secret shop/creds has no key password (needed for parameter password)"
        );
    }

    #[test]
    fn env_comes_from_the_named_or_first_container_and_pod_identity_aws_is_kept() {
        let env = TargetEnv::default()
            .container("app", [("Q".to_owned(), Secret::from("first"))].into())
            .container("side", [("Q".to_owned(), Secret::from("second"))].into());
        let spec = TriggerAuthenticationSpec {
            env: vec![
                EnvRef {
                    parameter: "a".into(),
                    name: "Q".into(),
                    container_name: None,
                },
                EnvRef {
                    parameter: "b".into(),
                    name: "Q".into(),
                    container_name: Some("side".into()),
                },
            ],
            pod_identity: Some(tandem_api::keda::v1alpha1::PodIdentity {
                provider: "aws".into(),
                identity_id: None,
                identity_tenant_id: None,
                identity_authority_host: None,
                role_arn: Some("arn:aws:iam::1:role/r".into()),
                external_id: None,
                identity_owner: None,
            }),
            ..Default::default()
        };
        let ta = ta("shop", "x", spec);
        let got = resolve(
            &inputs(&env, &[], &[]),
            Some(&reference("x", None)),
            Some(AuthObject::Namespaced(&ta)),
        )
        .unwrap();
        assert_eq!(got.params["a"].expose(), "first");
        assert_eq!(got.params["b"].expose(), "second");
        assert!(matches!(
            got.pod_identity,
            Some(PodIdentity::Aws {
                role_arn: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn unsupported_sources_are_refused_not_ignored() {
        let env = TargetEnv::default();
        let spec = TriggerAuthenticationSpec {
            file_path: Some("x".into()),
            ..Default::default()
        };
        let ta = ta("shop", "x", spec);
        let err = resolve(
            &inputs(&env, &[], &[]),
            Some(&reference("x", None)),
            Some(AuthObject::Namespaced(&ta)),
        )
        .unwrap_err();
        assert_eq!(err, AuthError::FilePathOnNamespaced);
    }
}
