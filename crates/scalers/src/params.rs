//! A trigger's parameters as upstream looks them up: metadata (M), resolved
//! TriggerAuthentication parameters (A) and `<name>FromEnv` keys read from the scale target's
//! container (E), in the order each scaler declares (keda.md §7), first non-blank wins.
//!
//! Parsing is pure: [`TriggerParams`] holds already-resolved values, and every typed getter
//! fails with a [`ParamError`] that names the trigger and the parameter. Values that came from
//! A or E may be secrets, so an error never quotes them; metadata values (they are in the
//! ScaledObject spec for anyone to read) are quoted to make mistakes easy to spot.

use crate::secret::Secret;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Which trigger of which object: the prefix of every error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerId {
    /// `spec.triggers[].type`.
    pub kind: String,
    /// Position in `spec.triggers`.
    pub index: usize,
    /// `spec.triggers[].name`, if set.
    pub name: Option<String>,
}

impl fmt::Display for TriggerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} trigger {}", self.kind, self.index)?;
        if let Some(name) = &self.name {
            write!(f, " ({name})")?;
        }
        Ok(())
    }
}

/// Where a parameter may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `spec.triggers[].metadata`.
    Metadata,
    /// The resolved TriggerAuthentication / ClusterTriggerAuthentication.
    Auth,
    /// `metadata.<name>FromEnv`, naming an env var of the scale target's container.
    Env,
}

/// Metadata only.
pub const M: &[Source] = &[Source::Metadata];
/// Authentication only.
pub const A: &[Source] = &[Source::Auth];
/// Metadata, then authentication.
pub const MA: &[Source] = &[Source::Metadata, Source::Auth];
/// Metadata, then env.
pub const ME: &[Source] = &[Source::Metadata, Source::Env];
/// Authentication, then env.
pub const AE: &[Source] = &[Source::Auth, Source::Env];
/// Metadata, authentication, env.
pub const MAE: &[Source] = &[Source::Metadata, Source::Auth, Source::Env];

/// A parameter that is missing, malformed or contradicts another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A required parameter has no value in any allowed source.
    #[error("{trigger}: missing required parameter {param}")]
    Missing {
        /// The trigger.
        trigger: TriggerId,
        /// The parameter.
        param: String,
    },
    /// A parameter has a value that cannot be used.
    #[error("{trigger}: invalid parameter {param}: {reason}")]
    Invalid {
        /// The trigger.
        trigger: TriggerId,
        /// The parameter.
        param: String,
        /// What is wrong and what would be right; never a secret value.
        reason: String,
    },
    /// Two parameters cannot be used together.
    #[error("{trigger}: parameters {first} and {second} cannot be combined")]
    Conflict {
        /// The trigger.
        trigger: TriggerId,
        /// One parameter.
        first: String,
        /// The other.
        second: String,
    },
}

impl ParamError {
    /// Stable label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            ParamError::Missing { .. } => "MissingParameter",
            ParamError::Invalid { .. } => "InvalidParameter",
            ParamError::Conflict { .. } => "ConflictingParameters",
        }
    }
}

/// How the HPA reads a trigger's metric (`spec.triggers[].metricType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricType {
    /// desired = ceil(value / target); KEDA's default.
    #[default]
    AverageValue,
    /// desired = ceil(current × value / target).
    Value,
    /// Percent of requests; only cpu/memory.
    Utilization,
}

impl MetricType {
    /// Parses the trigger field; unset means `AverageValue` (keda.md §2.1).
    pub fn parse(raw: Option<&str>) -> Option<MetricType> {
        match raw.map(str::trim).unwrap_or_default() {
            "" | "AverageValue" => Some(MetricType::AverageValue),
            "Value" => Some(MetricType::Value),
            "Utilization" => Some(MetricType::Utilization),
            _ => None,
        }
    }
}

/// Pod identity, reduced to what the scalers act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodIdentity {
    /// `aws` / `aws-eks`: the default AWS credential chain (web identity, env, profile),
    /// optionally assuming `role_arn`.
    Aws {
        /// Role to assume on top of the chain.
        role_arn: Option<String>,
        /// External id for that assume-role call.
        external_id: Option<String>,
    },
    /// A provider no Tandem scaler supports yet (`azure-workload`, `gcp`).
    Other(String),
}

/// The namespace and name of the ScaledObject/ScaledJob a trigger belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Everything a scaler is built from, already resolved; building it does no I/O.
#[derive(Debug, Clone)]
pub struct TriggerParams {
    /// Which trigger this is.
    pub id: TriggerId,
    /// The owning ScaledObject / ScaledJob.
    pub owner: ObjectRef,
    /// `spec.triggers[].metricType`.
    pub metric_type: MetricType,
    /// The owner uses `advanced.scalingModifiers`, which lifts some "target required" rules.
    pub uses_scaling_modifiers: bool,
    /// Resolved pod identity, if any.
    pub pod_identity: Option<PodIdentity>,
    metadata: BTreeMap<String, String>,
    auth: BTreeMap<String, Secret<String>>,
    env: BTreeMap<String, Secret<String>>,
}

/// A looked-up value and where it came from.
#[derive(Clone)]
pub struct Value {
    text: String,
    /// The source that supplied it.
    pub from: Source,
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.from {
            Source::Metadata => write!(f, "{:?} (metadata)", self.text),
            Source::Auth | Source::Env => write!(f, "[redacted] ({:?})", self.from),
        }
    }
}

impl Value {
    /// The text, for parsing or the wire.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The value as a [`Secret`].
    pub fn into_secret(self) -> Secret<String> {
        Secret::new(self.text)
    }

    /// The value as it may appear in an error: quoted if it came from metadata, else hidden.
    fn quoted(&self) -> String {
        match self.from {
            Source::Metadata => format!("{:?}", self.text),
            Source::Auth | Source::Env => "(value hidden)".to_owned(),
        }
    }
}

impl TriggerParams {
    /// Builds the parameters of trigger `index` of type `kind`. Metadata values are trimmed
    /// and blank ones dropped, as upstream does.
    pub fn new(kind: &str, index: usize, metadata: &BTreeMap<String, String>) -> Self {
        TriggerParams {
            id: TriggerId {
                kind: kind.to_owned(),
                index,
                name: None,
            },
            owner: ObjectRef::default(),
            metric_type: MetricType::AverageValue,
            uses_scaling_modifiers: false,
            pod_identity: None,
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.trim().to_owned()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
            auth: BTreeMap::new(),
            env: BTreeMap::new(),
        }
    }

    /// Sets the trigger name.
    pub fn with_name(mut self, name: Option<&str>) -> Self {
        self.id.name = name.map(str::to_owned);
        self
    }

    /// Sets the owner.
    pub fn with_owner(mut self, namespace: &str, name: &str) -> Self {
        self.owner = ObjectRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self
    }

    /// Sets the metric type.
    pub fn with_metric_type(mut self, metric_type: MetricType) -> Self {
        self.metric_type = metric_type;
        self
    }

    /// Adds resolved authentication parameters and pod identity.
    pub fn with_auth(mut self, auth: crate::auth::ResolvedAuth) -> Self {
        self.auth = auth.params;
        self.pod_identity = auth.pod_identity;
        self
    }

    /// Adds the scale target container's environment (for `<name>FromEnv`).
    pub fn with_env(mut self, env: BTreeMap<String, Secret<String>>) -> Self {
        self.env = env;
        self
    }

    /// Marks the owner as using scalingModifiers.
    pub fn with_scaling_modifiers(mut self, on: bool) -> Self {
        self.uses_scaling_modifiers = on;
        self
    }

    /// The trimmed metadata, to forward as-is (the external scaler sends it on the wire).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// All values from the authentication, for scrubbing foreign error texts.
    pub fn secrets(&self) -> Vec<Secret<String>> {
        self.auth
            .values()
            .chain(self.env.values())
            .cloned()
            .collect()
    }

    /// The first non-blank value of `key` among `sources`, in that order.
    pub fn lookup(&self, key: &str, sources: &[Source]) -> Option<Value> {
        sources.iter().find_map(|from| {
            let text = match from {
                Source::Metadata => self.metadata.get(key).cloned(),
                Source::Auth => self.auth.get(key).map(|s| s.expose().trim().to_owned()),
                Source::Env => self
                    .metadata
                    .get(&format!("{key}FromEnv"))
                    .and_then(|var| self.env.get(var))
                    .map(|s| s.expose().trim().to_owned()),
            }?;
            (!text.is_empty()).then_some(Value { text, from: *from })
        })
    }

    /// A value that must be present.
    pub fn required(&self, key: &str, sources: &[Source]) -> Result<Value, ParamError> {
        self.lookup(key, sources)
            .ok_or_else(|| ParamError::Missing {
                trigger: self.id.clone(),
                param: key.to_owned(),
            })
    }

    /// A plain text value (not a secret) that must be present.
    pub fn required_text(&self, key: &str, sources: &[Source]) -> Result<String, ParamError> {
        self.required(key, sources).map(|v| v.text)
    }

    /// An optional plain text value.
    pub fn text(&self, key: &str, sources: &[Source]) -> Option<String> {
        self.lookup(key, sources).map(|v| v.text)
    }

    /// An optional secret value.
    pub fn secret(&self, key: &str, sources: &[Source]) -> Option<Secret<String>> {
        self.lookup(key, sources).map(Value::into_secret)
    }

    /// An error about `param`.
    pub fn invalid(&self, param: &str, reason: impl Into<String>) -> ParamError {
        ParamError::Invalid {
            trigger: self.id.clone(),
            param: param.to_owned(),
            reason: reason.into(),
        }
    }

    /// An error about two parameters that exclude each other.
    pub fn conflict(&self, first: &str, second: &str) -> ParamError {
        ParamError::Conflict {
            trigger: self.id.clone(),
            first: first.to_owned(),
            second: second.to_owned(),
        }
    }

    /// An optional float, finite.
    pub fn f64_opt(&self, key: &str, sources: &[Source]) -> Result<Option<f64>, ParamError> {
        let Some(v) = self.lookup(key, sources) else {
            return Ok(None);
        };
        match v.text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(self.invalid(key, format!("{} is not a number", v.quoted()))),
        }
    }

    /// A float with a default.
    pub fn f64_or(&self, key: &str, sources: &[Source], default: f64) -> Result<f64, ParamError> {
        Ok(self.f64_opt(key, sources)?.unwrap_or(default))
    }

    /// An optional non-negative integer.
    pub fn u64_opt(&self, key: &str, sources: &[Source]) -> Result<Option<u64>, ParamError> {
        let Some(v) = self.lookup(key, sources) else {
            return Ok(None);
        };
        v.text
            .parse::<u64>()
            .map(Some)
            .map_err(|_| self.invalid(key, format!("{} is not a non-negative integer", v.quoted())))
    }

    /// A boolean with a default; accepts what Go's `strconv.ParseBool` accepts.
    pub fn bool_or(
        &self,
        key: &str,
        sources: &[Source],
        default: bool,
    ) -> Result<bool, ParamError> {
        let Some(v) = self.lookup(key, sources) else {
            return Ok(default);
        };
        match v.text.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            _ => Err(self.invalid(key, format!("{} is not true or false", v.quoted()))),
        }
    }

    /// One of `allowed` (exact match), or `default` when absent.
    pub fn choice<'a>(
        &self,
        key: &str,
        sources: &[Source],
        allowed: &[&'a str],
        default: &'a str,
    ) -> Result<&'a str, ParamError> {
        let Some(v) = self.lookup(key, sources) else {
            return Ok(default);
        };
        allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(&v.text))
            .copied()
            .ok_or_else(|| {
                self.invalid(
                    key,
                    format!("{} is not one of {}", v.quoted(), allowed.join(", ")),
                )
            })
    }

    /// A `k=v,k2=v2` map (upstream's map syntax).
    pub fn map(
        &self,
        key: &str,
        sources: &[Source],
    ) -> Result<BTreeMap<String, String>, ParamError> {
        let Some(v) = self.lookup(key, sources) else {
            return Ok(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        for pair in v.text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, val) = pair
                .split_once('=')
                .ok_or_else(|| self.invalid(key, "expected key=value pairs separated by commas"))?;
            out.insert(k.trim().to_owned(), val.trim().to_owned());
        }
        Ok(out)
    }

    /// A duration: a Go duration string (`500ms`, `3s`, `1m30s`) or a bare integer in
    /// milliseconds (keda.md §2.1).
    pub fn duration_opt(
        &self,
        key: &str,
        sources: &[Source],
    ) -> Result<Option<Duration>, ParamError> {
        let Some(v) = self.lookup(key, sources) else {
            return Ok(None);
        };
        parse_go_duration(&v.text).map(Some).ok_or_else(|| {
            self.invalid(
                key,
                format!("{} is not a duration such as 3s or 3000", v.quoted()),
            )
        })
    }
}

/// `3000` (ms) or a Go duration such as `1m30s`, `250ms`, `1.5s`.
fn parse_go_duration(s: &str) -> Option<Duration> {
    if let Ok(ms) = s.parse::<u64>() {
        return Some(Duration::from_millis(ms));
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ResolvedAuth;

    fn params(pairs: &[(&str, &str)]) -> TriggerParams {
        let md = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TriggerParams::new("rabbitmq", 2, &md)
    }

    #[test]
    fn metadata_is_trimmed_and_blank_counts_as_absent() {
        let p = params(&[("queueName", "  jobs "), ("host", "   ")]);
        assert_eq!(p.text("queueName", M).as_deref(), Some("jobs"));
        assert_eq!(p.text("host", M), None);
        let err = p.required("host", M).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rabbitmq trigger 2: missing required parameter host"
        );
    }

    #[test]
    fn sources_are_tried_in_order() {
        let mut auth = ResolvedAuth::default();
        auth.params
            .insert("host".into(), Secret::from("amqp://from-auth"));
        let mut env = BTreeMap::new();
        env.insert("RMQ_HOST".to_owned(), Secret::from("amqp://from-env"));
        let p = params(&[("hostFromEnv", "RMQ_HOST")])
            .with_auth(auth)
            .with_env(env);
        assert_eq!(
            p.required("host", MAE).unwrap().expose(),
            "amqp://from-auth"
        );
        assert_eq!(p.required("host", ME).unwrap().expose(), "amqp://from-env");
        assert!(p.lookup("host", M).is_none());
    }

    #[test]
    fn errors_quote_metadata_but_hide_auth_values() {
        let mut auth = ResolvedAuth::default();
        auth.params
            .insert("value".into(), Secret::from("canary-123"));
        let p = params(&[("threshold", "ten")]).with_auth(auth);
        let e = p.f64_or("threshold", M, 1.0).unwrap_err().to_string();
        assert!(e.contains("\"ten\""), "{e}");
        let e = p.f64_or("value", A, 1.0).unwrap_err().to_string();
        assert!(!e.contains("canary-123"), "{e}");
        assert!(e.contains("value hidden"), "{e}");
    }

    #[test]
    fn go_durations_and_bare_milliseconds() {
        assert_eq!(parse_go_duration("3000"), Some(Duration::from_secs(3)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("soon"), None);
    }

    #[test]
    fn maps_and_bools_follow_upstream_syntax() {
        let p = params(&[("customHeaders", "X-A=1, X-B = two"), ("useRegex", "T")]);
        let m = p.map("customHeaders", M).unwrap();
        assert_eq!(m.get("X-B").map(String::as_str), Some("two"));
        assert!(p.bool_or("useRegex", M, false).unwrap());
    }
}
