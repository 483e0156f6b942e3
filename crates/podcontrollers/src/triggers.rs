//! Building one trigger's scaler: read its (Cluster)TriggerAuthentication and the Secrets and
//! ConfigMaps it names, resolve them with `tandem_scalers::auth::resolve` (pure), and build the
//! scaler. Only the objects a trigger references are read, never whole namespaces.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret as KubeSecret};
use kube::{Api, Client};
use tandem_api::keda::v1alpha1::{
    ClusterTriggerAuthentication, ScaleTrigger, ScaledObject, TriggerAuthentication,
    TriggerAuthenticationSpec,
};
use tandem_scalers::auth::{AuthError, AuthInputs, AuthObject, TargetEnv};
use tandem_scalers::{MetricType, Scaler, ScalerError, Secret, TriggerParams};

use crate::error::is_not_found;

/// Why a trigger has no scaler.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// Its authentication cannot be resolved.
    #[error("trigger {index}: resolve authentication")]
    Auth {
        /// Index in `spec.triggers`.
        index: usize,
        /// The cause.
        #[source]
        source: AuthError,
    },
    /// The scaler refused its parameters or could not start.
    #[error(transparent)]
    Build(#[from] ScalerError),
    /// Its TriggerAuthentication names a Secret outside the one namespace the pod layer may
    /// read Secrets from (`KEDA_RESTRICT_SECRET_ACCESS`). Refused before any request, so
    /// the message says why instead of the API server's "forbidden".
    #[error(
        "trigger {index}: {authentication} names Secret {secret}, but secret access is \
         restricted to namespace {allowed:?} (KEDA_RESTRICT_SECRET_ACCESS=true): reference a \
         ClusterTriggerAuthentication, whose Secrets live there"
    )]
    SecretAccessRestricted {
        /// Index in `spec.triggers`.
        index: usize,
        /// `TriggerAuthentication <namespace>/<name>`.
        authentication: String,
        /// `<namespace>/<name>` of the first Secret refused.
        secret: String,
        /// The namespace Secrets may be read from.
        allowed: String,
    },
    /// An object it references could not be read.
    #[error("trigger {index}: read {what}")]
    Read {
        /// Index in `spec.triggers`.
        index: usize,
        /// The object.
        what: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

impl TriggerError {
    /// Stable label for metrics and Event reasons.
    #[must_use]
    pub fn category(&self) -> &'static str {
        match self {
            TriggerError::Auth { source, .. } => source.category(),
            TriggerError::Build(e) => e.category(),
            TriggerError::SecretAccessRestricted { .. } => "SecretAccessRestricted",
            TriggerError::Read { .. } => "KubernetesApiFailed",
        }
    }

    /// The message with its causes (`Display` prints only this error's own part).
    #[must_use]
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        // `Build` is transparent: its source is already in the text.
        if matches!(self, TriggerError::Build(_)) {
            source = None;
        }
        while let Some(s) = source {
            out.push_str(": ");
            out.push_str(&s.to_string());
            source = s.source();
        }
        out
    }
}

/// A `TargetEnv` from the target's containers and their literal env.
#[must_use]
pub fn target_env(containers: &[(String, Vec<(String, String)>)]) -> TargetEnv {
    containers
        .iter()
        .fold(TargetEnv::default(), |env, (name, vars)| {
            env.container(
                name,
                vars.iter()
                    .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
                    .collect(),
            )
        })
}

/// Where a trigger's authentication may read Secrets from.
#[derive(Debug, Clone, Copy)]
pub struct AuthScope<'a> {
    /// The namespace ClusterTriggerAuthentications read their Secrets and ConfigMaps from
    /// (KEDA: `KEDA_CLUSTER_OBJECT_NAMESPACE`, the operator's own).
    pub cluster_object_namespace: &'a str,
    /// Secrets only from `cluster_object_namespace` (KEDA: `KEDA_RESTRICT_SECRET_ACCESS`), for
    /// clusters that grant the autoscaler no Secret outside its own namespace. A namespaced
    /// TriggerAuthentication's `secretTargetRef` is then refused; ConfigMaps, `env` and
    /// ClusterTriggerAuthentications work as before.
    pub restrict_secret_access: bool,
}

async fn get_opt<K>(api: &Api<K>, name: &str) -> Result<Option<K>, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get(name).await {
        Ok(o) => Ok(Some(o)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Builds the scaler of trigger `index` of `so`.
///
/// # Errors
/// [`TriggerError`] when its authentication cannot be resolved, its objects cannot be read
/// or the scaler refuses its parameters.
pub async fn build(
    client: &Client,
    so: &ScaledObject,
    index: usize,
    env: &TargetEnv,
    scope: AuthScope<'_>,
) -> Result<Box<dyn Scaler>, TriggerError> {
    let namespace = so.metadata.namespace.clone().unwrap_or_default();
    let name = so.metadata.name.clone().unwrap_or_default();
    let owner = TriggerOwner {
        namespace: &namespace,
        name: &name,
        triggers: &so.spec.triggers,
        env_source_container: so
            .spec
            .scale_target_ref
            .env_source_container_name
            .as_deref(),
        uses_scaling_modifiers: so
            .spec
            .advanced
            .as_ref()
            .and_then(|a| a.scaling_modifiers.as_ref())
            .is_some_and(|m| m.formula.is_some()),
    };
    build_for(client, &owner, index, env, scope).await
}

/// The object whose triggers are built: a ScaledObject or a ScaledJob. Both resolve their
/// authentication the same way upstream (`pkg/scaling/resolver`), so one builder serves both.
#[derive(Debug, Clone, Copy)]
pub struct TriggerOwner<'a> {
    /// Namespace of the object (TriggerAuthentications and Secrets are read from here).
    pub namespace: &'a str,
    /// Name of the object.
    pub name: &'a str,
    /// Its `spec.triggers`.
    pub triggers: &'a [ScaleTrigger],
    /// `envSourceContainerName`: whose env feeds `*FromEnv` metadata (first container if unset).
    pub env_source_container: Option<&'a str>,
    /// Whether the object uses scalingModifiers (ScaledObjects only).
    pub uses_scaling_modifiers: bool,
}

/// Builds the scaler of trigger `index` of `owner`.
///
/// # Errors
/// [`TriggerError`] when its authentication cannot be resolved, its objects cannot be read
/// or the scaler refuses its parameters.
pub async fn build_for(
    client: &Client,
    owner: &TriggerOwner<'_>,
    index: usize,
    env: &TargetEnv,
    scope: AuthScope<'_>,
) -> Result<Box<dyn Scaler>, TriggerError> {
    let cluster_object_namespace = scope.cluster_object_namespace;
    let namespace = owner.namespace.to_owned();
    let name = owner.name.to_owned();
    let Some(trigger) = owner.triggers.get(index) else {
        return Err(TriggerError::Build(ScalerError::Unsupported {
            trigger: tandem_scalers::TriggerId {
                kind: String::new(),
                index,
                name: None,
            },
            what: "a trigger index past spec.triggers".into(),
        }));
    };
    let read = |what: String| {
        move |source| TriggerError::Read {
            index,
            what,
            source,
        }
    };
    let reference = trigger.authentication_ref.as_ref();
    let mut ta = None;
    let mut cta = None;
    if let Some(r) = reference {
        if r.kind_or_default() == "ClusterTriggerAuthentication" {
            let api: Api<ClusterTriggerAuthentication> = Api::all(client.clone());
            cta = get_opt(&api, &r.name)
                .await
                .map_err(read(format!("ClusterTriggerAuthentication {}", r.name)))?;
        } else {
            let api: Api<TriggerAuthentication> = Api::namespaced(client.clone(), &namespace);
            ta = get_opt(&api, &r.name).await.map_err(read(format!(
                "TriggerAuthentication {namespace}/{}",
                r.name
            )))?;
        }
    }
    let (spec, read_ns): (Option<&TriggerAuthenticationSpec>, &str) = match (&ta, &cta) {
        (Some(t), _) => (Some(&t.spec), &namespace),
        (_, Some(c)) => (Some(&c.spec.inner), cluster_object_namespace),
        _ => (None, &namespace),
    };
    if let (Some(t), Some(spec)) = (&ta, spec) {
        let name = t.metadata.name.as_deref().unwrap_or_default();
        if let Some(refused) = restricted_refusal(scope, index, (&namespace, name), spec) {
            return Err(refused);
        }
    }
    let mut secrets: Vec<KubeSecret> = Vec::new();
    let mut config_maps: Vec<ConfigMap> = Vec::new();
    if let Some(spec) = spec {
        let sapi: Api<KubeSecret> = Api::namespaced(client.clone(), read_ns);
        let mut names: Vec<&str> = spec
            .secret_target_ref
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        for n in names {
            if let Some(s) = get_opt(&sapi, n)
                .await
                .map_err(read(format!("Secret {read_ns}/{n}")))?
            {
                secrets.push(s);
            }
        }
        let capi: Api<ConfigMap> = Api::namespaced(client.clone(), read_ns);
        let mut names: Vec<&str> = spec
            .config_map_target_ref
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        for n in names {
            if let Some(c) = get_opt(&capi, n)
                .await
                .map_err(read(format!("ConfigMap {read_ns}/{n}")))?
            {
                config_maps.push(c);
            }
        }
    }
    let env_source = owner.env_source_container;
    let inputs = AuthInputs {
        namespace: &namespace,
        cluster_object_namespace,
        env_source_container: env_source,
        target_env: env,
        secrets: &secrets,
        config_maps: &config_maps,
    };
    let object = match (&ta, &cta) {
        (Some(t), _) => Some(AuthObject::Namespaced(t)),
        (_, Some(c)) => Some(AuthObject::Cluster(c)),
        _ => None,
    };
    let auth = tandem_scalers::auth::resolve(&inputs, reference, object)
        .map_err(|source| TriggerError::Auth { index, source })?;
    let container_env: BTreeMap<String, Secret<String>> =
        env.of(env_source).cloned().unwrap_or_default();
    let uses_modifiers = owner.uses_scaling_modifiers;
    let params = TriggerParams::new(&trigger.type_, index, &trigger.metadata)
        .with_name(trigger.name.as_deref())
        .with_owner(&namespace, &name)
        .with_metric_type(MetricType::parse(trigger.metric_type.as_deref()).unwrap_or_default())
        .with_auth(auth)
        .with_env(container_env)
        .with_scaling_modifiers(uses_modifiers);
    Ok(tandem_scalers::build(params).await?)
}

/// In restricted mode, the refusal of a namespaced TriggerAuthentication that names a Secret
/// outside the cluster object namespace (decided before any request is sent).
fn restricted_refusal(
    scope: AuthScope<'_>,
    index: usize,
    (namespace, name): (&str, &str),
    spec: &TriggerAuthenticationSpec,
) -> Option<TriggerError> {
    if !scope.restrict_secret_access || namespace == scope.cluster_object_namespace {
        return None;
    }
    let first = spec.secret_target_ref.first()?;
    Some(TriggerError::SecretAccessRestricted {
        index,
        authentication: format!("TriggerAuthentication {namespace}/{name}"),
        secret: format!("{namespace}/{}", first.name),
        allowed: scope.cluster_object_namespace.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with_secret(name: &str) -> TriggerAuthenticationSpec {
        serde_json::from_value(serde_json::json!({
            "secretTargetRef": [{"parameter": "host", "name": name, "key": "host"}],
            "configMapTargetRef": [{"parameter": "queueName", "name": "cm", "key": "q"}],
        }))
        .expect("spec")
    }

    #[test]
    fn restricted_mode_refuses_only_secrets_outside_the_cluster_object_namespace() {
        let restricted = AuthScope {
            cluster_object_namespace: "keda",
            restrict_secret_access: true,
        };
        let open = AuthScope {
            restrict_secret_access: false,
            ..restricted
        };
        let spec = spec_with_secret("creds");
        let e = restricted_refusal(restricted, 1, ("shop", "rabbit"), &spec).expect("refused");
        assert_eq!(
            e.chain(),
            "trigger 1: TriggerAuthentication shop/rabbit names Secret shop/creds, but secret \
             access is restricted to namespace \"keda\" (KEDA_RESTRICT_SECRET_ACCESS=true): \
             reference a ClusterTriggerAuthentication, whose Secrets live there"
        );
        assert_eq!(e.category(), "SecretAccessRestricted");
        // Not restricted; in the allowed namespace; no Secret named (ConfigMaps stay allowed).
        assert!(restricted_refusal(open, 0, ("shop", "rabbit"), &spec).is_none());
        assert!(restricted_refusal(restricted, 0, ("keda", "rabbit"), &spec).is_none());
        let no_secret = TriggerAuthenticationSpec {
            secret_target_ref: Vec::new(),
            ..spec
        };
        assert!(restricted_refusal(restricted, 0, ("shop", "rabbit"), &no_secret).is_none());
    }

    #[test]
    fn an_auth_error_reads_once_with_its_cause() {
        let e = TriggerError::Auth {
            index: 0,
            source: AuthError::AuthenticationNotFound {
                kind: "TriggerAuthentication".into(),
                name: "shop/rabbit".into(),
            },
        };
        assert_eq!(
            e.chain(),
            "trigger 0: resolve authentication: TriggerAuthentication shop/rabbit not found"
        );
        assert_eq!(
            e.category(),
            AuthError::AuthenticationNotFound {
                kind: String::new(),
                name: String::new(),
            }
            .category()
        );
    }

    #[test]
    fn target_env_keeps_container_order_for_the_default_container() {
        let env = target_env(&[
            ("app".into(), vec![("HOST".into(), "a".into())]),
            ("sidecar".into(), vec![("HOST".into(), "b".into())]),
        ]);
        assert_eq!(env.of(None).unwrap()["HOST"].expose(), "a");
        assert_eq!(env.of(Some("sidecar")).unwrap()["HOST"].expose(), "b");
    }
}
